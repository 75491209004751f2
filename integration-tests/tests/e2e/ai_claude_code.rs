//! Claude Code itself (the pinned `@anthropic-ai/claude-code`, `claude -p`) with `ANTHROPIC_BASE_URL`
//! at Castellan and `fake-provider` upstream: its answer, its session id on the `ai_requests` row,
//! and, with Castellan's MCP endpoint configured, its model calls and its tool call under one user.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integration_tests::ai::FakeProvider;
use integration_tests::{
    AppOptions, DEFAULT_TEST_PROFILE, Database, TempDir, TestApp, eventually, spawn_app_with, tools_dir,
};
use serde_json::{Value, json};

const ANSWER: &str = "fake answer to: What is the capital of France?";
const PROVIDER_KEY: &str = "sk-provider-key-that-must-stay-inside-castellan-0123456789";
/// The fake answers a model whose name contains `call-NAME` with a call of the tool whose name ends
/// with NAME, input `{"id":1}`; Claude Code names Castellan's `customers__get_customer` this way.
const CALLING_MODEL: &str = "claude-call-customers__get_customer";
const MCP_TOOL: &str = "mcp__castellan__customers__get_customer";
/// How long one `claude -p` may take (it takes about a second against loopback).
const CLAUDE_LIMIT: Duration = Duration::from_secs(90);

/// The default test profile (which supervises `customers`) with Anthropic routed to the fake: the
/// `claude-*` names and, last, anything else Claude Code may ask for. The key has a default because
/// `app.cli` (users, keys, audit) reads the same profile without the daemon's environment.
fn profile(fake: &FakeProvider) -> String {
    let url = fake.url();
    DEFAULT_TEST_PROFILE.replace(
        "rbac:\n  default: deny\n  rules:\n",
        &format!(
            r#"providers:
  anthropic: {{ api_key: "${{PROVIDER_KEY:-not-the-daemons-key}}", base_url: "{url}" }}
models:
  "claude-*": {{ provider: anthropic }}
  "*": {{ provider: anthropic }}
rbac:
  default: deny
  rules:
    - {{ name: users-may-use-models, effect: allow, min_tier: user, models: ["*"] }}
"#
        ),
    )
}

fn spawn(fake: &FakeProvider) -> TestApp {
    spawn_app_with(AppOptions::new(Database::Sqlite).profile(&profile(fake)).env("PROVIDER_KEY", PROVIDER_KEY))
}

/// The Claude Code binary `scripts/install-test-deps.sh` links (the native binary of the pinned
/// `@anthropic-ai/claude-code-linux-x64`).
fn claude_binary() -> PathBuf {
    let binary = tools_dir().join("bin/claude");
    assert!(binary.exists(), "run scripts/install-test-deps.sh first ({} missing)", binary.display());
    binary
}

/// Runs `claude -p "What is the capital of France?" --output-format json` against `base_url` with
/// `token` as `ANTHROPIC_AUTH_TOKEN`, in a fresh HOME and working directory, and returns the JSON
/// result it prints (`result`, `session_id`, `num_turns`, `permission_denials`, ...).
fn run_claude(base_url: &str, token: &str, extra_args: &[&str]) -> Value {
    let scratch = TempDir::new();
    run_claude_in(&scratch.0.join("home"), base_url, token, extra_args)
}

/// [`run_claude`] with a HOME prepared by the caller (its `.claude/` is what Claude Code reads).
fn run_claude_in(home: &Path, base_url: &str, token: &str, extra_args: &[&str]) -> Value {
    let scratch = TempDir::new();
    let (home, work) = (home.to_path_buf(), scratch.0.join("work"));
    for dir in [&home, &work] {
        std::fs::create_dir_all(dir).expect("claude's scratch directories");
    }
    let (stdout_path, stderr_path) = (scratch.0.join("stdout"), scratch.0.join("stderr"));
    let mut child = Command::new(claude_binary())
        .args(["-p", "What is the capital of France?", "--output-format", "json", "--strict-mcp-config"])
        .args(extra_args)
        .current_dir(&work)
        // Nothing of the caller's environment (an ANTHROPIC_API_KEY, a proxy, settings) leaks in.
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("ANTHROPIC_BASE_URL", base_url)
        .env("ANTHROPIC_AUTH_TOKEN", token)
        // With these four Claude Code connects to nothing but ANTHROPIC_BASE_URL and the configured
        // MCP servers (no telemetry, error reports, feature flags or update checks).
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_ERROR_REPORTING", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        // MCP tools go into the request's `tools` instead of behind the ToolSearch tool, so the
        // fake can call one by name.
        .env("ENABLE_TOOL_SEARCH", "false")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("claude starts");
    let deadline = Instant::now() + CLAUDE_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    let (stdout, stderr) = (read(&stdout_path), read(&stderr_path));
    let status =
        status.unwrap_or_else(|| panic!("claude -p ran past {CLAUDE_LIMIT:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"));
    assert!(status.success(), "claude -p failed: {status}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    let result: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|error| panic!("claude -p printed no JSON ({error}):\n{stdout}\nstderr:\n{stderr}"));
    assert_eq!(result["is_error"], false, "claude -p reports success: {result}\nstderr:\n{stderr}");
    result
}

/// The rows of `ai_requests`, oldest first, once none is `started` any more.
fn settled_ai_rows(app: &TestApp, expected: usize) -> Vec<Value> {
    let mut rows = Vec::new();
    let settled = eventually(Duration::from_secs(10), || {
        let response = ureq::get(&format!("{}/api/v1/ai-requests?limit=1000", app.base_url))
            .set("Authorization", &format!("Bearer {}", app.admin_key))
            .call()
            .expect("GET /api/v1/ai-requests");
        let body: Value = response.into_json().expect("ai-requests is JSON");
        rows = body["ai_requests"].as_array().cloned().unwrap_or_default();
        rows.sort_by_key(|row| row["id"].as_i64());
        rows.len() >= expected && rows.iter().all(|row| row["status"] != "started")
    });
    assert!(settled, "{expected} ai_requests rows, all ended: {rows:#?}\nlog:\n{}", app.log());
    rows
}

/// What reached the fake's `/v1/messages`: each with the provider's key, none with `castellan_key`.
fn messages_reaching_the_provider(fake: &FakeProvider, castellan_key: &str) -> Vec<Value> {
    let received = fake.requests_to("/v1/messages");
    for request in &received {
        let text = request.to_string();
        assert!(!text.contains(castellan_key), "the Castellan key never goes upstream: {text}");
        let headers = &request["headers"];
        let carried = [headers["x-api-key"].as_str(), headers["authorization"].as_str()];
        assert!(
            carried.iter().flatten().any(|value| value.ends_with(PROVIDER_KEY)),
            "the provider key went upstream: {headers}"
        );
        assert_eq!(request["path"], "/v1/messages?beta=true", "Claude Code's query string is forwarded");
        let betas = headers["anthropic-beta"].as_str().unwrap_or_default();
        assert!(betas.contains("claude-code-20250219"), "Claude Code's betas are forwarded: {headers}");
    }
    received
}

fn body_of(request: &Value) -> Value {
    serde_json::from_str(request["body"].as_str().unwrap_or("{}")).expect("a JSON body")
}

/// The baseline without Castellan: the fake speaks what Claude Code needs (a streamed Messages
/// answer to `/v1/messages?beta=true`), so a failure of the tests below is the gateway's.
#[test]
fn claude_code_gets_the_fakes_answer_straight_from_the_fake() {
    let fake = FakeProvider::start();
    let result = run_claude(&fake.url(), "token-for-the-fake", &[]);
    assert_eq!(result["result"], ANSWER, "{result}");
    let received = fake.requests();
    assert_eq!(received.len(), 1, "one request, to /v1/messages, and nothing else: {received:#?}");
    let request = &received[0];
    assert_eq!(request["path"], "/v1/messages?beta=true");
    let headers = &request["headers"];
    assert_eq!(headers["authorization"], "Bearer token-for-the-fake", "ANTHROPIC_AUTH_TOKEN is a Bearer token");
    assert_eq!(headers["x-claude-code-session-id"], result["session_id"], "the session header: {headers}");
    assert_eq!(body_of(request)["stream"], true, "Claude Code streams");
}

#[test]
fn claude_code_answers_through_castellan_and_the_row_carries_its_session_id() {
    let fake = FakeProvider::start();
    let app = spawn(&fake);
    let key = app.user_with_key("alice", "user");

    let result = run_claude(&app.base_url, &key, &[]);
    assert_eq!(result["result"], ANSWER, "the fake's answer, through Castellan: {result}");
    let session_id = result["session_id"].as_str().expect("claude -p prints its session id").to_string();

    let received = messages_reaching_the_provider(&fake, &key);
    assert_eq!(received.len(), 1, "one model call for a one-turn answer: {received:#?}");
    let model = body_of(&received[0])["model"].as_str().unwrap_or_default().to_string();
    assert!(model.starts_with("claude-"), "Claude Code's default model, routed by `claude-*`: {model}");

    let rows = settled_ai_rows(&app, 1);
    assert_eq!(rows.len(), 1, "one row per model call: {rows:#?}");
    let row = &rows[0];
    assert_eq!(row["status"], "success", "{row}");
    assert_eq!(row["user_id"], "alice", "the row carries the Castellan user: {row}");
    assert_eq!(row["session_id"], session_id.as_str(), "X-Claude-Code-Session-Id is the row's session_id: {row}");
    assert_eq!((row["endpoint"].as_str(), row["provider"].as_str()), (Some("messages"), Some("anthropic")), "{row}");
    assert_eq!(row["model"], model.as_str(), "{row}");
    assert_eq!(row["streamed"], true, "Claude Code streams: {row}");
    assert_eq!(row["input_tokens"], 11, "usage read from the stream: {row}");
    assert!(!format!("{rows:?}{}", app.log()).contains(PROVIDER_KEY), "the provider key is in no row and no log line");
}

#[test]
fn claude_code_with_castellans_mcp_endpoint_shows_the_model_calls_and_the_tool_call_under_one_user() {
    let fake = FakeProvider::start();
    let app = spawn(&fake);
    let key = app.user_with_key("bob", "user");
    let mcp_config = app.dir.0.join("claude-mcp.json");
    let servers = json!({"mcpServers": {"castellan": {
        "type": "http",
        "url": format!("{}/mcp", app.base_url),
        "headers": {"Authorization": format!("Bearer {key}")},
    }}});
    std::fs::write(&mcp_config, servers.to_string()).expect("write the MCP config");
    let mcp_config = mcp_config.display().to_string();

    let result = run_claude(
        &app.base_url,
        &key,
        &["--model", CALLING_MODEL, "--mcp-config", &mcp_config, "--allowedTools", MCP_TOOL],
    );
    assert_eq!(result["permission_denials"], json!([]), "the MCP tool was allowed: {result}");
    assert_eq!(result["num_turns"], 2, "a tool call, then the answer: {result}");
    let answer = result["result"].as_str().unwrap_or_default();
    assert!(
        answer.starts_with("fake answer to: {") && answer.contains(r#""id":1"#),
        "the fake answered the tool's result (customer 1): {result}"
    );
    let session_id = result["session_id"].as_str().expect("claude -p prints its session id").to_string();

    // The model saw Castellan's tool, called it, and got the demo server's answer back.
    let received = messages_reaching_the_provider(&fake, &key);
    assert_eq!(received.len(), 2, "the tool call's turn and the answer's: {received:#?}");
    let first = body_of(&received[0]);
    let tools: Vec<&str> =
        first["tools"].as_array().into_iter().flatten().filter_map(|tool| tool["name"].as_str()).collect();
    assert!(tools.contains(&MCP_TOOL), "Claude Code offered Castellan's tool to the model: {tools:?}");
    let second = received[1]["body"].as_str().unwrap_or_default();
    assert!(
        second.contains("tool_result") && second.contains("Ada Lovelace"),
        "the tool's result went back to the model"
    );

    let audit = app.audit_rows();
    let calls: Vec<&Value> =
        audit.iter().filter(|row| row["server"] == "customers" && row["tool"] == "get_customer").collect();
    assert_eq!(calls.len(), 1, "one audited tool call: {audit:#?}");
    assert_eq!(calls[0]["status"], "success", "{}", calls[0]);
    assert_eq!(calls[0]["input"], r#"{"id":1}"#, "the model's input reached the tool: {}", calls[0]);

    let rows = settled_ai_rows(&app, 2);
    assert_eq!(rows.len(), 2, "one row per model call: {rows:#?}");
    for row in &rows {
        assert_eq!(row["status"], "success", "{row}");
        assert_eq!(row["model"], CALLING_MODEL, "{row}");
        assert_eq!(row["session_id"], session_id.as_str(), "both model calls are in Claude Code's session: {row}");
        assert_eq!(row["user_id"], calls[0]["user_id"], "the model calls and the tool call have one user: {row}");
    }
    assert_eq!(rows[0]["user_id"], "bob", "that user is the key's: {}", rows[0]);
    // The tool call joins the trace of the model request whose answer asked for it.
    assert_eq!(calls[0]["trace_id"], rows[0]["trace_id"], "the tool call is in its prompt's trace: {rows:#?}");
    assert_ne!(rows[1]["trace_id"], rows[0]["trace_id"], "the next model request has a trace of its own");
    let trace = rows[0]["trace_id"].as_str().expect("a trace id");
    let view: Value = ureq::get(&format!("{}/api/v1/traces/{trace}", app.base_url))
        .set("Authorization", &format!("Bearer {}", app.admin_key))
        .call()
        .expect("GET /api/v1/traces")
        .into_json()
        .expect("json");
    assert_eq!(view["ai_requests"].as_array().map(Vec::len), Some(1), "the prompt is in the trace: {view}");
    assert_eq!(view["tool_executions"].as_array().map(Vec::len), Some(1), "with its tool call: {view}");
}

/// `castellan skills sync` into a fresh HOME, then Claude Code started with that HOME: the skill
/// is among what Claude Code offers the model (its Skill tool lists the installed skills), and a
/// skill RBAC keeps from the user is not there.
#[test]
fn claude_code_offers_the_skills_that_sync_installed() {
    let fake = FakeProvider::start();
    let profile = profile(&fake).replace(
        "    - { name: users-may-use-models, effect: allow, min_tier: user, models: [\"*\"] }\n",
        "    - { name: users-may-use-models, effect: allow, min_tier: user, models: [\"*\"] }\n    - { name: skills-for-users, effect: allow, min_tier: user, skills: [\"*\"] }\n    - { name: no-release-skills, effect: deny, max_tier: user, skills: [\"release-*\"] }\n",
    );
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&profile).env("PROVIDER_KEY", PROVIDER_KEY));
    let scratch = TempDir::new();
    for (name, description) in [
        ("quarterly-report", "Builds the quarterly revenue report from the finance export."),
        ("release-train", "Cuts a release branch."),
    ] {
        let dir = scratch.0.join("src").join(name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("SKILL.md"), format!("---\nname: {name}\ndescription: {description}\n---\n\nSteps.\n"))
            .expect("write");
        let published = app.cli(&["skills", "publish", dir.to_str().expect("utf-8")]);
        assert!(published.status.success(), "{}", String::from_utf8_lossy(&published.stdout));
    }
    let key = app.user_with_key("alice", "user");
    let home = scratch.0.join("home");
    let listed = eventually(Duration::from_secs(10), || {
        let synced = app.cli(
            &["skills", "sync", "--url", &app.base_url, "--token", &key, "--dest"]
                .into_iter()
                .chain([home.join(".claude/skills").to_str().expect("utf-8")])
                .collect::<Vec<_>>(),
        );
        String::from_utf8_lossy(&synced.stdout).contains("installed quarterly-report")
    });
    assert!(listed, "sync installs the skill");
    assert!(!home.join(".claude/skills/release-train").exists(), "RBAC keeps release-* from users");
    run_claude_in(&home, &app.base_url, &key, &[]);
    let offered = messages_reaching_the_provider(&fake, &key)
        .iter()
        .map(|request| body_of(request).to_string())
        .any(|body| body.contains("quarterly-report") && body.contains("Builds the quarterly revenue report"));
    assert!(offered, "Claude Code offers the synced skill to the model: {:?}", fake.requests_to("/v1/messages"));
}

/// `claude plugin marketplace add` against Castellan's marketplace URL: Claude Code fetches and
/// validates it, and lists the marketplace with the skills as its plugins. (Anonymous callers are
/// let in here: `marketplace add` sends no credential of its own; a deployment gives it headers
/// in Claude Code's settings instead.)
#[test]
fn claude_code_adds_castellans_marketplace() {
    let fake = FakeProvider::start();
    let profile = profile(&fake)
        .replace("server:\n  listen: 127.0.0.1:0\n", "server:\n  listen: 127.0.0.1:0\n  allow_anonymous: true\n")
        .replace(
            "    - { name: users-may-use-models, effect: allow, min_tier: user, models: [\"*\"] }\n",
            "    - { name: users-may-use-models, effect: allow, min_tier: user, models: [\"*\"] }\n    - { name: skills-for-all, effect: allow, min_tier: anonymous, skills: [\"*\"] }\n",
        );
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&profile).env("PROVIDER_KEY", PROVIDER_KEY));
    let scratch = TempDir::new();
    let dir = scratch.0.join("src/quarterly-report");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("SKILL.md"), "---\nname: quarterly-report\ndescription: Builds the report.\n---\nSteps.\n")
        .expect("write");
    assert!(app.cli(&["skills", "publish", dir.to_str().expect("utf-8")]).status.success());
    let url = format!("{}/marketplace/.claude-plugin/marketplace.json", app.base_url);
    assert!(eventually(Duration::from_secs(10), || {
        ureq::get(&url)
            .call()
            .ok()
            .and_then(|response| response.into_string().ok())
            .is_some_and(|body| body.contains("quarterly-report"))
    }));
    let home = scratch.0.join("home");
    std::fs::create_dir_all(&home).expect("home");
    let claude = |args: &[&str]| {
        Command::new(claude_binary())
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("DISABLE_TELEMETRY", "1")
            .env("DISABLE_ERROR_REPORTING", "1")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env("DISABLE_AUTOUPDATER", "1")
            .stdin(Stdio::null())
            .output()
            .expect("claude runs")
    };
    let added = claude(&["plugin", "marketplace", "add", &url]);
    let printed = format!("{}{}", String::from_utf8_lossy(&added.stdout), String::from_utf8_lossy(&added.stderr));
    assert!(added.status.success(), "{printed}");
    let listed = claude(&["plugin", "marketplace", "list"]);
    let printed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(printed.contains("castellan"), "the marketplace is listed: {printed}");
}
