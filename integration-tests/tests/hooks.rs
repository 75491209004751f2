//! PreToolUse hooks on the gateway: built-in rules deny what they name, after RBAC and before the
//! tool runs; every decision is a hook_events row that the admin trace API returns.

use integration_tests::mcp::{bearer, initialize_body, post_raw, standard_headers};
use integration_tests::{AppOptions, DEFAULT_TEST_PROFILE, Database, TestApp, spawn_app_with};
use serde_json::{Value, json};

const HOOKS: &str = r#"hooks:
  PreToolUse:
    - { builtin: deny_arguments, pattern: "(?i)drop\\s+table" }
    - { builtin: require_tier, tier: admin, tools: ["list_*"] }
    - { builtin: block_credentials }
"#;

/// One tools/call under `traceparent` trace `trace`; returns the JSON-RPC answer.
fn call(app: &TestApp, key: &str, trace: &str, tool: &str, arguments: Value) -> Value {
    let url = format!("{}/mcp", app.base_url);
    let authorization = bearer(key);
    let traceparent = format!("00-{trace}-00f067aa0ba902b7-01");
    let mut headers = standard_headers(&authorization, None);
    headers.push(("traceparent", &traceparent));
    let session = post_raw(&url, &headers, &initialize_body("2025-11-25")).session_id.expect("a session");
    let mut headers = standard_headers(&authorization, Some(&session));
    headers.push(("traceparent", &traceparent));
    headers.push(("MCP-Protocol-Version", "2025-11-25"));
    let body =
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": tool, "arguments": arguments}});
    post_raw(&url, &headers, &body.to_string()).body
}

fn trace(app: &TestApp, trace: &str) -> Value {
    ureq::get(&format!("{}/api/v1/traces/{trace}", app.base_url))
        .set("Authorization", &bearer(&app.admin_key))
        .call()
        .expect("trace API")
        .into_json()
        .expect("json")
}

#[test]
fn builtin_pre_tool_use_rules_deny_before_the_tool_runs_and_every_decision_is_recorded() {
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&format!("{DEFAULT_TEST_PROFILE}{HOOKS}")));
    let allowed_trace = "11111111111111111111111111111111";
    let answer = call(&app, &app.admin_key, allowed_trace, "customers__get_customer", json!({"id": 1}));
    assert!(answer["result"].is_object(), "an ordinary call passes every hook: {answer}");
    let recorded = trace(&app, allowed_trace);
    let decisions: Vec<&str> = recorded["hook_events"]
        .as_array()
        .expect("hook events")
        .iter()
        .filter_map(|event| event["decision"].as_str())
        .collect();
    assert_eq!(decisions, ["allow", "allow", "allow"], "one allow per handler: {recorded}");

    let denied_trace = "22222222222222222222222222222222";
    let answer = call(
        &app,
        &app.admin_key,
        denied_trace,
        "customers__get_customer",
        json!({"id": 1, "note": "then DROP TABLE customers"}),
    );
    assert_eq!(answer["error"]["code"], -32003, "denied: {answer}");
    assert!(
        answer["error"]["message"].as_str().unwrap_or_default().contains("builtin:deny_arguments"),
        "names the rule: {answer}"
    );
    let recorded = trace(&app, denied_trace);
    let events = recorded["hook_events"].as_array().expect("hook events");
    assert_eq!(events.len(), 1, "the first denial stops the chain: {recorded}");
    assert_eq!(
        (events[0]["decision"].as_str(), events[0]["handler"].as_str()),
        (Some("deny"), Some("builtin:deny_arguments"))
    );
    let executions = recorded["tool_executions"].as_array().expect("executions");
    assert_eq!(executions[0]["status"], "denied", "the audit row says denied and the tool did not run: {recorded}");

    let user_key = app.user_with_key("uma", "user");
    let answer = call(&app, &user_key, "33333333333333333333333333333333", "customers__list_customers", json!({}));
    assert!(answer["error"]["message"].as_str().unwrap_or_default().contains("needs the admin tier"), "{answer}");
    let answer = call(
        &app,
        &app.admin_key,
        "44444444444444444444444444444444",
        "customers__get_customer",
        json!({"id": 1, "key": "AKIAIOSFODNN7EXAMPLE"}),
    );
    assert!(answer["error"]["message"].as_str().unwrap_or_default().contains("builtin:block_credentials"), "{answer}");
}

#[test]
fn an_http_hook_allows_denies_rewrites_and_takes_its_failure_mode() {
    let hook = integration_tests::Fixture::start("hook_server.py", &[], "hook-server listening on ");
    let hooks =
        format!("hooks:\n  PreToolUse:\n    - {{ http: \"{}/hook\", timeout: 1s, on_failure: deny }}\n", hook.url);
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&format!("{DEFAULT_TEST_PROFILE}{hooks}")));
    let key = app.admin_key.clone();
    let allowed = call(&app, &key, "55555555555555555555555555555555", "customers__get_customer", json!({"id": 1}));
    assert!(allowed.to_string().contains("Ada Lovelace"), "allowed, customer 1: {allowed}");

    let denied = call(
        &app,
        &key,
        "66666666666666666666666666666666",
        "customers__get_customer",
        json!({"id": 1, "word": "forbidden"}),
    );
    assert!(
        denied["error"]["message"].as_str().unwrap_or_default().contains("forbidden word"),
        "the hook's reason: {denied}"
    );

    let rewritten = call(
        &app,
        &key,
        "77777777777777777777777777777777",
        "customers__get_customer",
        json!({"id": 1, "rewrite": true}),
    );
    assert!(!rewritten.to_string().contains("Ada Lovelace"), "the tool ran with the rewritten arguments: {rewritten}");
    assert!(rewritten["result"].is_object(), "and answered: {rewritten}");
    let recorded = trace(&app, "77777777777777777777777777777777");
    assert_eq!(recorded["hook_events"][0]["decision"], "rewrite", "{recorded}");
    assert_eq!(recorded["tool_executions"][0]["input"], r#"{"id":2}"#, "the audit row shows what ran: {recorded}");

    let started = std::time::Instant::now();
    let slow =
        call(&app, &key, "88888888888888888888888888888888", "customers__get_customer", json!({"id": 1, "slow": true}));
    assert!(started.elapsed() < std::time::Duration::from_millis(2900), "the timeout cut the wait");
    assert!(
        slow["error"]["message"].as_str().unwrap_or_default().contains("on_failure is deny"),
        "timeout → deny: {slow}"
    );
    let broken = call(
        &app,
        &key,
        "99999999999999999999999999999999",
        "customers__get_customer",
        json!({"id": 1, "broken": true}),
    );
    assert!(
        broken["error"]["message"].as_str().unwrap_or_default().contains("HTTP 500"),
        "error status → deny: {broken}"
    );

    let log: Value = ureq::get(&format!("{}/log", hook.url)).call().expect("log").into_json().expect("json");
    let first = &log[0];
    assert_eq!(first["hook_event_name"], "PreToolUse");
    assert_eq!(first["tool_name"], "customers__get_customer");
    assert_eq!(first["trace_id"], "55555555555555555555555555555555", "the hook sees the trace: {first}");
    assert!(
        first["_traceparent"].as_str().unwrap_or_default().starts_with("00-55555555555555555555555555555555-"),
        "{first}"
    );
}

/// Runs `castellan hook EVENT` the way Claude Code does: the payload on stdin.
fn shim(event: &str, url: &str, key: Option<&str>, payload: &Value) -> (i32, String) {
    use std::io::Write;
    let mut command = std::process::Command::new(integration_tests::castellan_binary());
    command.args(["hook", event]).env("CASTELLAN_URL", url).env_remove("CASTELLAN_API_KEY");
    if let Some(key) = key {
        command.env("CASTELLAN_API_KEY", key);
    }
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("castellan hook runs");
    child.stdin.take().expect("stdin").write_all(payload.to_string().as_bytes()).expect("payload");
    let output = child.wait_with_output().expect("finishes");
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stdout).trim().to_string())
}

#[test]
fn the_claude_code_shim_gets_decisions_for_built_in_tools_and_fails_closed() {
    let hooks = "hooks:\n  PreToolUse:\n    - { builtin: deny_arguments, pattern: \"rm\\\\s+-rf\" }\n";
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&format!("{DEFAULT_TEST_PROFILE}{hooks}")));
    let bash = |command: &str| {
        json!({"session_id": "abc123", "transcript_path": "/tmp/t.jsonl", "cwd": "/work", "permission_mode": "default",
               "hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": {"command": command}, "tool_use_id": "toolu_01"})
    };
    let (code, out) = shim("PreToolUse", &app.base_url, Some(&app.admin_key), &bash("rm -rf /"));
    assert_eq!(code, 0, "Claude Code reads the decision from stdout");
    let decision: Value = serde_json::from_str(&out).expect("decision JSON");
    assert_eq!(decision["hookSpecificOutput"]["permissionDecision"], "deny", "{decision}");
    assert_eq!(decision["hookSpecificOutput"]["hookEventName"], "PreToolUse", "{decision}");

    let (code, out) = shim("PreToolUse", &app.base_url, Some(&app.admin_key), &bash("ls -la"));
    assert_eq!((code, out.as_str()), (0, ""), "allowed: nothing printed, so the person's own prompt still applies");

    let prompt = json!({"session_id": "abc123", "hook_event_name": "UserPromptSubmit", "prompt": "hello"});
    assert_eq!(
        shim("UserPromptSubmit", &app.base_url, Some(&app.admin_key), &prompt),
        (0, String::new()),
        "recorded, allowed"
    );
    let recorded = app.database.query_scalar("SELECT count(*) FROM hook_events WHERE event = 'UserPromptSubmit'");
    assert_eq!(recorded, "1", "every event lands in hook_events");

    let down = "http://127.0.0.1:1";
    assert_eq!(
        shim("PreToolUse", down, Some("cas_x"), &bash("ls")).0,
        2,
        "an unreachable daemon blocks a gating event"
    );
    assert_eq!(shim("Stop", down, Some("cas_x"), &json!({"hook_event_name": "Stop"})).0, 0, "and never blocks Stop");
    assert_eq!(shim("PreToolUse", &app.base_url, None, &bash("ls")).0, 2, "no key, no tool");
    assert_eq!(
        shim(
            "PreToolUse",
            &app.base_url,
            Some("cas_aaaaaaaaaaaa_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            &bash("ls")
        )
        .0,
        2,
        "a bad key blocks"
    );
}
