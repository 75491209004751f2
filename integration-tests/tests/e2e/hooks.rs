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
    assert_eq!(first["castellan"]["trace_id"], "55555555555555555555555555555555", "the hook sees the trace: {first}");
    assert_eq!(first["castellan"]["server"], "customers", "and the server: {first}");
    assert_eq!(first["tool_use_id"], "jsonrpc:7", "Claude Code's shape: {first}");
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

/// The shim sends a `traceparent` derived from the payload's `tool_use_id`, so its hook_events rows
/// land under the trace id the gateway derives from `_meta["claudecode/toolUseId"]` of the same
/// call (`castellan::trace_ids`). Before, each hook request got a random trace id.
#[test]
fn the_shim_records_a_tool_use_under_the_trace_id_derived_from_its_tool_use_id() {
    let app = spawn_app_with(AppOptions::new(Database::Sqlite));
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/claude_code_hooks");
    let load = |name: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(fixtures.join(name)).expect("fixture")).expect("fixture json")
    };
    let pre = load("PreToolUse.json");
    let post = load("PostToolUse.json");
    let tool_use_id = pre["tool_use_id"].as_str().expect("the fixture names its tool use").to_string();
    let expected = castellan::trace_ids::trace_id_for_tool_use(&tool_use_id).expect("a trace id");
    let mut post = post;
    post["tool_use_id"] = json!(tool_use_id);
    assert_eq!(shim("PreToolUse", &app.base_url, Some(&app.admin_key), &pre).0, 0, "PreToolUse answered");
    assert_eq!(shim("PostToolUse", &app.base_url, Some(&app.admin_key), &post).0, 0, "PostToolUse answered");

    let recorded = trace(&app, &expected);
    let events: Vec<&str> = recorded["hook_events"]
        .as_array()
        .expect("hook events")
        .iter()
        .filter_map(|event| event["event"].as_str())
        .collect();
    assert_eq!(events, ["PreToolUse", "PostToolUse"], "both events of the tool use are under its trace id: {recorded}");
    // Claude Code's tools/call for the same tool use names it in `_meta`: the gateway's row joins
    // the trace (even though this client also sends a traceparent of its own).
    let mut session = integration_tests::mcp::Session::open(&format!("{}/mcp", app.base_url), &bearer(&app.admin_key));
    let params = json!({"name": "customers__get_customer", "arguments": {"id": 1}, "_meta": {"claudecode/toolUseId": tool_use_id}});
    assert_eq!(session.request("tools/call", params).status, 200);
    let recorded = trace(&app, &expected);
    let executions = recorded["tool_executions"].as_array().cloned().unwrap_or_default();
    assert_eq!(executions.len(), 1, "the gateway's row of the call is under the tool use's trace: {recorded}");
    assert_eq!(executions[0]["tool"], "get_customer");

    let prompt = json!({"session_id": "abc123", "hook_event_name": "UserPromptSubmit", "prompt": "hello"});
    assert_eq!(shim("UserPromptSubmit", &app.base_url, Some(&app.admin_key), &prompt).0, 0);
    let total = app.database.query_scalar("SELECT count(*) FROM hook_events");
    let under_trace =
        app.database.query_scalar(&format!("SELECT count(*) FROM hook_events WHERE trace_id = '{expected}'"));
    assert_eq!(
        (total.as_str(), under_trace.as_str()),
        ("3", "2"),
        "an event without a tool use gets a trace of its own"
    );
}

/// A fresh directory for one test's files.
fn scratch(name: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos();
    let dir = std::env::temp_dir().join(format!("castellan-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A command hook: logs what it got (event and environment), then answers by the tool's arguments
/// the way interface.md says command hooks answer.
const COMMAND_HOOK: &str = r#"#!/usr/bin/env python3
import json, os, subprocess, sys
event = json.load(sys.stdin)
with open(sys.argv[1], "a") as log:
    log.write(json.dumps({"event": event, "env": dict(os.environ)}) + "\n")
arguments = event.get("tool_input") or {}
if arguments.get("word") == "forbidden":
    print("forbidden word, says the command", file=sys.stderr)
    sys.exit(2)
if arguments.get("rewrite"):
    print(json.dumps({"decision": "allow", "updated_input": {"id": 2}}))
    sys.exit(0)
if arguments.get("slow"):
    sleeper = subprocess.Popen(["sleep", "300"])
    with open(sys.argv[2], "w") as pid_file:
        pid_file.write(str(sleeper.pid))
    sleeper.wait()
if arguments.get("broken"):
    sys.exit(3)
if arguments.get("chatty"):
    print("this is not JSON")
"#;

fn process_is_gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // A zombie has ended; only its parent has not collected it yet.
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn a_command_hook_allows_denies_rewrites_and_takes_its_failure_mode() {
    let dir = scratch("command-hook");
    let script = dir.join("check.py");
    std::fs::write(&script, COMMAND_HOOK).expect("script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let log = dir.join("log.jsonl");
    let pid_file = dir.join("sleeper.pid");
    let hooks = format!(
        "hooks:\n  PreToolUse:\n    - {{ command: \"{}\", args: [\"{}\", \"{}\"], env: {{ HOOK_TOKEN: \"${{secret:hook_token}}\" }}, timeout: 1s, on_failure: deny }}\n",
        script.display(),
        log.display(),
        pid_file.display()
    );
    let app = spawn_app_with(
        AppOptions::new(Database::Sqlite)
            .profile(&format!("{DEFAULT_TEST_PROFILE}{hooks}"))
            .env("CASTELLAN_TEST_LEAK_CANARY", "daemon-environment-must-not-reach-hooks"),
    );
    let stored = app.cli_with_stdin(&["secrets", "set", "hook_token"], "hook-token-value-1234");
    assert!(stored.status.success(), "secrets set: {}", String::from_utf8_lossy(&stored.stderr));
    let key = app.admin_key.clone();
    // The secret store is re-read every few seconds; the hook fails (and denies) until it is.
    let mut allowed = Value::Null;
    let ready = integration_tests::eventually(std::time::Duration::from_secs(15), || {
        allowed = call(&app, &key, "a1111111111111111111111111111111", "customers__get_customer", json!({"id": 1}));
        allowed.to_string().contains("Ada Lovelace")
    });
    assert!(ready, "allowed once the hook's secret is readable: {allowed}\n{}", app.log());

    let denied = call(
        &app,
        &key,
        "a2222222222222222222222222222222",
        "customers__get_customer",
        json!({"id": 1, "word": "forbidden"}),
    );
    let message = denied["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("forbidden word, says the command"), "exit 2 denies with stderr: {denied}");

    let rewritten = call(
        &app,
        &key,
        "a3333333333333333333333333333333",
        "customers__get_customer",
        json!({"id": 1, "rewrite": true}),
    );
    assert!(rewritten.to_string().contains("Grace Hopper"), "stdout rewrote the input to id 2: {rewritten}");
    let recorded = trace(&app, "a3333333333333333333333333333333");
    assert_eq!(recorded["hook_events"][0]["decision"], "rewrite", "{recorded}");

    let broken = call(
        &app,
        &key,
        "a4444444444444444444444444444444",
        "customers__get_customer",
        json!({"id": 1, "broken": true}),
    );
    assert!(broken["error"]["message"].as_str().unwrap_or_default().contains("exited with 3"), "{broken}");
    let chatty = call(
        &app,
        &key,
        "a5555555555555555555555555555555",
        "customers__get_customer",
        json!({"id": 1, "chatty": true}),
    );
    assert!(chatty["error"]["message"].as_str().unwrap_or_default().contains("not JSON"), "{chatty}");

    let started = std::time::Instant::now();
    let hung =
        call(&app, &key, "a6666666666666666666666666666666", "customers__get_customer", json!({"id": 1, "slow": true}));
    let waited = started.elapsed();
    assert!(hung["error"]["message"].as_str().unwrap_or_default().contains("did not finish within"), "{hung}");
    assert!(waited < std::time::Duration::from_millis(2500), "the timeout (1 s) cut the wait: {waited:?}");
    let sleeper = std::fs::read_to_string(&pid_file).expect("the hook started its sleeper");
    let gone = integration_tests::eventually(std::time::Duration::from_secs(3), || process_is_gone(sleeper.trim()));
    assert!(gone, "a timed-out hook leaves no process behind (pid {sleeper})");

    let entries: Vec<Value> = std::fs::read_to_string(&log)
        .expect("log")
        .lines()
        .map(|line| serde_json::from_str(line).expect("json line"))
        .collect();
    let first =
        entries.iter().find(|entry| entry["event"]["castellan"]["trace_id"] == "a1111111111111111111111111111111");
    let first = first.expect("the allowed call reached the hook");
    assert_eq!(first["event"]["hook_event_name"], "PreToolUse");
    assert_eq!(first["event"]["tool_input"], json!({"id": 1}));
    let mut names: Vec<&str> = first["env"].as_object().expect("env").keys().map(String::as_str).collect();
    names.retain(|name| *name != "LC_CTYPE"); // set by Python itself under the C locale
    assert_eq!(names, ["HOOK_TOKEN", "PATH"], "only PATH and the hook's own env: {}", first["env"]);
    assert_eq!(first["env"]["HOOK_TOKEN"], "hook-token-value-1234", "its secret is injected");
}

#[test]
fn the_gateway_raises_post_tool_use_failure_and_session_events() {
    let hook = integration_tests::Fixture::start("hook_server.py", &[], "hook-server listening on ");
    let hooks = format!(
        "hooks:\n  PostToolUse:\n    - {{ builtin: deny_arguments, pattern: \"Lovelace\" }}\n  PostToolUseFailure:\n    - {{ http: \"{0}/hook\" }}\n  SessionStart:\n    - {{ http: \"{0}/hook\" }}\n  SessionEnd:\n    - {{ http: \"{0}/hook\" }}\n",
        hook.url
    );
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&format!("{DEFAULT_TEST_PROFILE}{hooks}")));
    let key = app.admin_key.clone();
    let withheld = call(&app, &key, "b1111111111111111111111111111111", "customers__get_customer", json!({"id": 1}));
    assert!(!withheld.to_string().contains("ada@example.com"), "the response is withheld: {withheld}");
    assert!(withheld["result"].is_null(), "no result at all: {withheld}");
    assert!(
        withheld["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("result was withheld by hook builtin:deny_arguments"),
        "{withheld}"
    );
    let recorded = trace(&app, "b1111111111111111111111111111111");
    let events: Vec<(&str, &str)> = recorded["hook_events"]
        .as_array()
        .expect("hook events")
        .iter()
        .map(|event| (event["event"].as_str().unwrap_or_default(), event["decision"].as_str().unwrap_or_default()))
        .collect();
    // The initialize carried the same traceparent, so the session's start is part of the trace.
    assert_eq!(events, [("SessionStart", "allow"), ("PostToolUse", "deny")], "{recorded}");
    let execution = &recorded["tool_executions"][0];
    assert_eq!(execution["status"], "denied", "{recorded}");
    assert!(
        execution["output"].as_str().unwrap_or_default().contains("Lovelace"),
        "the audit row keeps what ran: {recorded}"
    );

    let other = call(&app, &key, "b2222222222222222222222222222222", "customers__get_customer", json!({"id": 2}));
    assert!(other.to_string().contains("Grace Hopper"), "other results pass: {other}");
    let missing = call(&app, &key, "b3333333333333333333333333333333", "customers__get_customer", json!({"id": 99}));
    assert_eq!(missing["result"]["isError"], true, "a tool error reaches the caller: {missing}");

    // Sessions: `call` opened one per call; end one explicitly.
    let url = format!("{}/mcp", app.base_url);
    let session = integration_tests::mcp::Session::open(&url, &bearer(&key));
    let ended = ureq::delete(&url)
        .set("Authorization", &bearer(&key))
        .set("Mcp-Session-Id", &session.session_id)
        .set("MCP-Protocol-Version", "2025-06-18")
        .call()
        .expect("DELETE");
    assert_eq!(ended.status(), 204);

    let log: Value = ureq::get(&format!("{}/log", hook.url)).call().expect("log").into_json().expect("json");
    let events = log.as_array().expect("array");
    let failure = events.iter().find(|event| event["hook_event_name"] == "PostToolUseFailure").expect("failure event");
    assert!(failure["error"].as_str().unwrap_or_default().contains("no customer with id 99"), "{failure}");
    assert_eq!(failure["tool_input"], json!({"id": 99}), "{failure}");
    assert_eq!(failure["castellan"]["trace_id"], "b3333333333333333333333333333333", "{failure}");
    let starts = events.iter().filter(|event| event["hook_event_name"] == "SessionStart").count();
    assert_eq!(starts, 4, "one SessionStart per initialize: {log}");
    assert!(
        events.iter().any(|event| event["hook_event_name"] == "SessionStart"
            && event["source"] == "startup"
            && event["session_id"] == session.session_id.as_str()),
        "{log}"
    );
    let end = events.iter().find(|event| event["hook_event_name"] == "SessionEnd").expect("SessionEnd");
    assert_eq!(
        (end["session_id"].as_str(), end["reason"].as_str()),
        (Some(session.session_id.as_str()), Some("other"))
    );
}

/// What the shim prints: nothing, or JSON with `value` at `pointer`.
type Expected = Option<(&'static str, &'static str)>;

/// Every Claude Code payload in fixtures/claude_code_hooks goes through the shim, against a
/// profile with handlers for the events that can block.
#[test]
fn the_shim_takes_every_claude_code_payload_and_prints_what_claude_code_expects() {
    let dir = scratch("stop-hook");
    let stop = dir.join("stop.sh");
    std::fs::write(&stop, "#!/bin/sh\nif grep -q 'TODO' ; then echo 'there is a TODO left' >&2; exit 2; fi\n")
        .expect("script");
    std::fs::set_permissions(&stop, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let hooks = format!(
        "hooks:\n  PreToolUse:\n    - {{ builtin: deny_arguments, pattern: \"(?i)drop\\\\s+table\" }}\n    - {{ builtin: block_credentials }}\n  UserPromptSubmit:\n    - {{ builtin: block_credentials }}\n  PostToolUse:\n    - {{ builtin: block_credentials }}\n  Stop:\n    - {{ command: \"{}\" }}\n",
        stop.display()
    );
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&format!("{DEFAULT_TEST_PROFILE}{hooks}")));
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/claude_code_hooks");
    let load = |name: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(fixtures.join(name)).expect("fixture")).expect("fixture json")
    };
    let cases: [(&str, &str, Expected); 13] = [
        ("PreToolUse.json", "PreToolUse", Some(("/hookSpecificOutput/permissionDecision", "deny"))),
        ("PreToolUse.write_env.json", "PreToolUse", Some(("/hookSpecificOutput/permissionDecision", "deny"))),
        ("PreToolUse.unknown_field.json", "PreToolUse", None),
        ("PreToolUse.older_version.json", "PreToolUse", None),
        ("PostToolUse.json", "PostToolUse", None),
        ("PostToolUseFailure.json", "PostToolUseFailure", None),
        ("UserPromptSubmit.json", "UserPromptSubmit", None),
        ("Notification.json", "Notification", None),
        ("Stop.json", "Stop", None),
        ("SubagentStart.json", "SubagentStart", None),
        ("SubagentStop.json", "SubagentStop", None),
        ("SessionStart.json", "SessionStart", None),
        ("SessionEnd.json", "SessionEnd", None),
    ];
    for (fixture, event, expected) in cases {
        let payload = load(fixture);
        assert_eq!(payload["hook_event_name"], event, "{fixture} is a {event} payload");
        let (code, out) = shim(event, &app.base_url, Some(&app.admin_key), &payload);
        assert_eq!(code, 0, "{fixture}: exit 0 (the decision is on stdout)");
        match expected {
            None => assert_eq!(out, "", "{fixture}: allowed, nothing printed"),
            Some((pointer, value)) => {
                let answer: Value = serde_json::from_str(&out).expect("decision JSON");
                assert_eq!(answer.pointer(pointer).and_then(Value::as_str), Some(value), "{fixture}: {answer}");
            }
        }
    }
    // The events that can block, blocked: the form Claude Code reads for each.
    let mut prompt = load("UserPromptSubmit.json");
    prompt["prompt"] = json!("deploy with AKIAIOSFODNN7EXAMPLE please");
    let (_, out) = shim("UserPromptSubmit", &app.base_url, Some(&app.admin_key), &prompt);
    let answer: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(answer["decision"], "block", "the prompt is erased: {answer}");
    let mut stop_payload = load("Stop.json");
    stop_payload["last_assistant_message"] = json!("Done, except one TODO in export.ts");
    let (_, out) = shim("Stop", &app.base_url, Some(&app.admin_key), &stop_payload);
    let answer: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(answer["decision"], "block", "Claude keeps going: {answer}");
    assert!(answer["reason"].as_str().unwrap_or_default().contains("there is a TODO left"), "{answer}");
    let mut post = load("PostToolUse.json");
    post["tool_response"] = json!([{"type": "text", "text": "token ghp_abcdefghijklmnopqrstuvwxyz0123456789"}]);
    let (_, out) = shim("PostToolUse", &app.base_url, Some(&app.admin_key), &post);
    let answer: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(answer["decision"], "block", "Claude reads the reason beside the result: {answer}");

    let counts = app.database.query_scalar("SELECT count(DISTINCT event) FROM hook_events");
    assert_eq!(counts, "10", "every one of the ten events is on record");
}
