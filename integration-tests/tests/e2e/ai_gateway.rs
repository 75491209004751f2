//! The AI gateway end to end: the official SDKs (anthropic, openai, google-genai) through the real
//! daemon to `fake-provider`, which records what reached it. Same-format pass-through, translation,
//! RBAC on models, hooks, budgets, fallbacks, hang-ups, crashes, bad input, rows and costs.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use integration_tests::ai::{FakeProvider, run_ai_sdks};
use integration_tests::{AppOptions, DEFAULT_TEST_PROFILE, Database, TestApp, eventually, spawn_app_with};
use serde_json::{Value, json};

const ANSWER: &str = "fake answer to: What is the capital of France?";
const PROVIDER_KEY: &str = "sk-provider-key-that-must-stay-inside-castellan-0123456789";

/// A profile routing each family to the fake, keys from the environment.
fn profile(fake: &FakeProvider, extra: &str) -> String {
    let url = fake.url();
    DEFAULT_TEST_PROFILE.replace("oauth: 100000 }", "oauth: 100000, ai_request: 100000 }").replace(
        "rbac:\n  default: deny\n  rules:\n",
        &format!(
            r#"providers:
  anthropic: {{ api_key: "${{PROVIDER_KEY:-not-the-daemons-key}}", base_url: "{url}" }}
  openai: {{ api_key: "${{PROVIDER_KEY:-not-the-daemons-key}}", base_url: "{url}/v1" }}
  gemini: {{ api_key: "${{PROVIDER_KEY:-not-the-daemons-key}}", base_url: "{url}" }}
  backup: {{ kind: anthropic, api_key: "${{PROVIDER_KEY:-not-the-daemons-key}}", base_url: "{url}" }}
models:
  claude-to-gpt: {{ provider: openai, model: gpt-4.1-mini }}
  gpt-to-claude: {{ provider: anthropic, model: claude-sonnet-4-5 }}
  flaky: {{ provider: anthropic, model: claude-fail-529, fallbacks: [steady] }}
  steady: {{ provider: backup, model: claude-haiku-4-5 }}
  "claude-*": {{ provider: anthropic }}
  "gpt-*": {{ provider: openai }}
  "gemini-*": {{ provider: gemini }}
{extra}rbac:
  default: deny
  rules:
    - {{ name: users-may-use-models, effect: allow, min_tier: user, models: ["*"] }}
    - {{ name: no-forbidden-models, effect: deny, max_tier: user, models: ["*forbidden*"] }}
"#
        ),
    )
}

fn spawn(fake: &FakeProvider, database: Database, extra: &str) -> TestApp {
    let options = AppOptions::new(database).profile(&profile(fake, extra)).env("PROVIDER_KEY", PROVIDER_KEY);
    spawn_app_with(options)
}

fn ok<'a>(report: &'a Value, scenario: &str) -> &'a Value {
    let result = &report[scenario];
    assert_eq!(result["ok"], true, "{scenario} succeeded through Castellan: {result}");
    result
}

/// The rows of `ai_requests`, oldest first, through the admin API.
fn ai_rows(app: &TestApp) -> Vec<Value> {
    ai_rows_with(&app.base_url, &app.admin_key)
}

fn ai_rows_with(base_url: &str, admin_key: &str) -> Vec<Value> {
    let response = ureq::get(&format!("{base_url}/api/v1/ai-requests?limit=1000"))
        .set("Authorization", &format!("Bearer {admin_key}"))
        .call()
        .expect("GET /api/v1/ai-requests");
    let body: Value = response.into_json().expect("json");
    let mut rows = body["ai_requests"].as_array().cloned().unwrap_or_default();
    rows.sort_by_key(|row| row["id"].as_i64());
    rows
}

/// Waits until no row is `started` any more (streams complete their row as they end).
fn settled_rows(app: &TestApp, expected: usize) -> Vec<Value> {
    let mut rows = Vec::new();
    let settled = eventually(Duration::from_secs(10), || {
        rows = ai_rows(app);
        rows.len() >= expected && rows.iter().all(|row| row["status"] != "started")
    });
    assert!(settled, "{expected} rows, all ended: {rows:#?}");
    rows
}

fn post(app: &TestApp, path: &str, key: &str, body: &str) -> (u16, Value, Vec<(String, String)>) {
    let response = ureq::post(&format!("{}{path}", app.base_url))
        .set("x-api-key", key)
        .set("content-type", "application/json")
        .set("anthropic-version", "2023-06-01")
        .send_string(body);
    let response = match response {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(error) => panic!("POST {path}: {error}"),
    };
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .map(|name| (name.clone(), response.header(&name).unwrap_or_default().to_string()))
        .collect();
    let text = response.into_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)), headers)
}

#[test]
fn every_sdk_and_endpoint_passes_through_castellan_with_the_provider_key_never_the_callers() {
    let fake = FakeProvider::start();
    let app = spawn(&fake, Database::Sqlite, "");
    let key = app.user_with_key("alice", "user");
    let scenarios = [
        "anthropic.create",
        "anthropic.stream",
        "anthropic.tool",
        "anthropic.tool_stream",
        "anthropic.count_tokens",
        "anthropic.models",
        "openai.chat",
        "openai.chat_stream",
        "openai.chat_tool",
        "openai.chat_tool_stream",
        "openai.responses",
        "openai.responses_stream",
        "openai.models",
        "gemini.generate",
        "gemini.stream",
        "gemini.tool",
        "gemini.count_tokens",
        "gemini.models",
    ];
    let report = run_ai_sdks(&scenarios, &app.base_url, &key, &[]);
    for scenario in [
        "anthropic.create",
        "anthropic.stream",
        "openai.chat",
        "openai.chat_stream",
        "openai.responses",
        "openai.responses_stream",
        "gemini.generate",
        "gemini.stream",
    ] {
        assert_eq!(ok(&report, scenario)["text"], ANSWER, "{scenario}: the provider's answer, unchanged");
    }
    for scenario in
        ["anthropic.tool", "anthropic.tool_stream", "openai.chat_tool", "openai.chat_tool_stream", "gemini.tool"]
    {
        let result = ok(&report, scenario);
        assert_eq!(result["tool"]["name"], "search", "{scenario}: {result}");
        assert_eq!(result["tool"]["input"], json!({"query": "x"}), "{scenario}: {result}");
    }
    ok(&report, "anthropic.count_tokens");
    ok(&report, "gemini.count_tokens");
    for scenario in ["anthropic.models", "openai.models", "gemini.models"] {
        let listed = ok(&report, scenario).to_string();
        assert!(
            listed.contains("claude-to-gpt") && listed.contains("steady"),
            "{scenario} lists the exact routes: {listed}"
        );
    }

    // What reached the provider: its own key in its own header, never the caller's.
    let received = fake.requests();
    assert!(!received.is_empty(), "the fake was called");
    for request in &received {
        let text = request.to_string();
        assert!(!text.contains(&key), "the Castellan key never goes upstream: {text}");
        let headers = &request["headers"];
        let path = request["path"].as_str().unwrap_or_default();
        let carried =
            [headers["x-api-key"].as_str(), headers["authorization"].as_str(), headers["x-goog-api-key"].as_str()];
        assert!(
            carried.iter().flatten().any(|value| value.ends_with(PROVIDER_KEY)),
            "{path} carries the provider key: {headers}"
        );
    }

    // One row per billed request (count_tokens and model lists write none), tokens and cost.
    let rows = settled_rows(&app, 13);
    assert_eq!(rows.len(), 13, "13 generating requests, 13 rows: {rows:#?}");
    for row in &rows {
        assert_eq!(row["status"], "success", "{row}");
        assert_eq!(row["user_id"], "alice", "{row}");
        assert_eq!(row["input_tokens"], 11, "input tokens from the provider's usage: {row}");
    }
    let sonnet =
        rows.iter().find(|row| row["model"] == "claude-sonnet-4-5" && row["streamed"] == false).expect("a sonnet row");
    // 11 in at $3/MTok and 9 out at $15/MTok: 33 + 135 = 168 microdollars.
    assert_eq!(sonnet["cost_microdollars"], 168, "cost from the catalog, exactly: {sonnet}");
    let streamed =
        rows.iter().find(|row| row["model"] == "claude-sonnet-4-5" && row["streamed"] == true).expect("a streamed row");
    assert!(streamed["ttft_ms"].as_i64().is_some(), "a stream has a time to first token: {streamed}");
    let dump = format!("{rows:?}{}", app.log());
    assert!(!dump.contains(PROVIDER_KEY), "the provider key is in no row and no log line");
}

#[test]
fn a_request_in_another_format_is_translated_both_ways_streams_and_tools_included() {
    let fake = FakeProvider::start();
    let app = spawn(&fake, Database::Sqlite, "");
    let key = app.user_with_key("bob", "user");
    let scenarios = [
        "openai.chat=gpt-to-claude",
        "openai.chat_stream=gpt-to-claude",
        "anthropic.create=claude-to-gpt",
        "anthropic.stream=claude-to-gpt",
    ];
    let report = run_ai_sdks(&scenarios, &app.base_url, &key, &[]);
    for scenario in scenarios {
        assert_eq!(ok(&report, scenario)["text"], ANSWER, "{scenario}");
    }
    let anthropic = fake.requests_to("/v1/messages");
    assert_eq!(anthropic.len(), 2, "the OpenAI requests went to the Anthropic provider");
    let body: Value = serde_json::from_str(anthropic[0]["body"].as_str().unwrap_or("{}")).expect("json");
    assert_eq!(body["model"], "claude-sonnet-4-5", "the route's upstream model");
    assert!(body["max_tokens"].as_u64().is_some(), "Anthropic's required max_tokens is filled in: {body}");
    let openai = fake.requests_to("/v1/chat/completions");
    assert_eq!(openai.len(), 2, "the Anthropic requests went to the OpenAI provider");
    let rows = settled_rows(&app, 4);
    assert!(rows.iter().all(|row| row["status"] == "success" && row["input_tokens"] == 11), "{rows:#?}");
}

#[test]
fn unknown_fields_and_beta_headers_reach_the_provider_byte_for_byte() {
    let fake = FakeProvider::start();
    let app = spawn(&fake, Database::Sqlite, "");
    let key = app.user_with_key("carol", "user");
    let body = r#"{"model":"claude-sonnet-4-5",  "max_tokens":64,"messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"future_block","x":1}]}],"brand_new_field":{"nested":[1,2,3]}}"#;
    let mut stream = TcpStream::connect(app.base_url.trim_start_matches("http://")).expect("connect");
    write!(
        stream,
        "POST /v1/messages?beta=true HTTP/1.1\r\nHost: x\r\nx-api-key: {key}\r\nanthropic-version: 2023-06-01\r\nanthropic-beta: tools-2099-01-01,  other-beta\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let received = fake.requests_to("/v1/messages");
    assert_eq!(received.len(), 1);
    assert_eq!(received[0]["body"], body, "the body went upstream as the client wrote it");
    assert_eq!(received[0]["headers"]["anthropic-beta"], "tools-2099-01-01,  other-beta", "betas byte for byte");
    assert_eq!(received[0]["headers"]["anthropic-version"], "2023-06-01");
    assert_eq!(received[0]["path"], "/v1/messages?beta=true", "the query string is forwarded");
}

#[test]
fn a_denied_model_or_prompt_never_reaches_the_provider_and_is_a_row() {
    let fake = FakeProvider::start();
    let hooks = "hooks:\n  UserPromptSubmit:\n    - { builtin: deny_arguments, pattern: \"(?i)launch codes\" }\n";
    let app = spawn(&fake, Database::Sqlite, hooks);
    let key = app.user_with_key("dave", "user");
    let report =
        run_ai_sdks(&["anthropic.create=claude-forbidden", "openai.chat=gpt-forbidden"], &app.base_url, &key, &[]);
    for scenario in ["anthropic.create=claude-forbidden", "openai.chat=gpt-forbidden"] {
        let error = &report[scenario]["error"];
        assert_eq!(error["class"], "PermissionDeniedError", "{scenario}: {error}");
        assert_eq!(error["status"], 403, "{scenario}: {error}");
    }
    let prompt = run_ai_sdks(&["anthropic.create"], &app.base_url, &key, &["--prompt", "what are the launch codes?"]);
    assert_eq!(prompt["anthropic.create"]["error"]["status"], 403, "the hook denied the prompt: {prompt}");
    assert!(fake.requests().is_empty(), "nothing denied reached the provider: {:?}", fake.requests());
    let explained = app.cli(&["policy", "explain", "--user", "dave", "--model", "claude-forbidden"]);
    let text = String::from_utf8_lossy(&explained.stdout);
    assert_eq!(explained.status.code(), Some(1), "policy explain says deny: {text}");
    assert!(text.contains("no-forbidden-models") && text.contains("route 'claude-*'"), "{text}");
    let allowed = app.cli(&["policy", "explain", "--user", "dave", "--model", "claude-sonnet-4-5"]);
    assert_eq!(allowed.status.code(), Some(0), "{}", String::from_utf8_lossy(&allowed.stdout));
    let rows = settled_rows(&app, 3);
    assert!(rows.iter().all(|row| row["status"] == "denied"), "{rows:#?}");
    assert!(
        rows[0]["error_message"].as_str().unwrap_or_default().contains("no-forbidden-models"),
        "the rule is named: {}",
        rows[0]
    );
}

#[test]
fn fallbacks_answer_when_the_first_provider_is_overloaded() {
    let fake = FakeProvider::start();
    let app = spawn(&fake, Database::Sqlite, "");
    let key = app.user_with_key("erin", "user");
    let report = run_ai_sdks(&["anthropic.create=flaky", "anthropic.stream=flaky"], &app.base_url, &key, &[]);
    assert_eq!(ok(&report, "anthropic.create=flaky")["text"], ANSWER);
    assert_eq!(ok(&report, "anthropic.stream=flaky")["text"], ANSWER);
    let models: Vec<String> = fake
        .requests_to("/v1/messages")
        .iter()
        .map(|request| {
            serde_json::from_str::<Value>(request["body"].as_str().unwrap_or("{}")).unwrap_or_default()["model"]
                .to_string()
        })
        .collect();
    assert_eq!(
        models,
        ["\"claude-fail-529\"", "\"claude-haiku-4-5\"", "\"claude-fail-529\"", "\"claude-haiku-4-5\""],
        "529, then the fallback"
    );
    let rows = settled_rows(&app, 2);
    for row in &rows {
        assert_eq!(
            (row["status"].as_str(), row["provider"].as_str(), row["upstream_model"].as_str()),
            (Some("success"), Some("backup"), Some("claude-haiku-4-5")),
            "{row}"
        );
    }
}

#[test]
fn bad_input_and_bad_providers_get_clear_errors_in_the_endpoints_shape_and_a_row() {
    let fake = FakeProvider::start();
    let app = spawn(&fake, Database::Sqlite, "");
    let key = app.user_with_key("frank", "user");
    let cases = [
        ("/v1/messages", "{not json", 400, "invalid_request_error"),
        ("/v1/messages", r#"{"model": 5, "max_tokens": 1, "messages": []}"#, 400, "invalid_request_error"),
        (
            "/v1/messages",
            r#"{"model":"nobody-routes-this","max_tokens":1,"messages":[{"role":"user","content":"x"}]}"#,
            404,
            "not_found_error",
        ),
        (
            "/v1/messages",
            r#"{"model":"claude-garbage","max_tokens":1,"messages":[{"role":"user","content":"x"}]}"#,
            502,
            "api_error",
        ),
    ];
    for (path, body, status, kind) in cases {
        let (got, answer, _) = post(&app, path, &key, body);
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["type"], "error", "{body}: Anthropic's error shape: {answer}");
        assert_eq!(answer["error"]["type"], kind, "{body}: {answer}");
    }
    let (status, answer, _) = post(&app, "/v1/chat/completions", &key, "[1,2]");
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"]["message"].as_str().is_some(), "OpenAI's error shape: {answer}");
    let huge = format!(
        r#"{{"model":"claude-sonnet-4-5","max_tokens":1,"messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(11 * 1024 * 1024)
    );
    let (status, answer, _) = post(&app, "/v1/messages", &key, &huge);
    assert_eq!(status, 413, "an oversized body is refused: {answer}");
    let (status, _, _) = post(&app, "/v1/messages", "cas_wrong_key", r#"{"model":"claude-sonnet-4-5"}"#);
    assert_eq!(status, 401, "a bad credential");
    let rows = settled_rows(&app, 5);
    let statuses: Vec<&str> = rows.iter().filter_map(|row| row["status"].as_str()).collect();
    assert_eq!(
        statuses,
        ["failed", "failed", "failed", "failed", "failed"],
        "every refused request is a row: {rows:#?}"
    );
    assert_eq!(fake.requests().len(), 1, "only the garbage-answering model reached the provider");
}

#[test]
fn a_client_that_hangs_up_mid_stream_cancels_upstream_and_its_row_is_client_closed() {
    let fake = FakeProvider::start();
    let app = spawn(&fake, Database::Sqlite, "");
    let key = app.user_with_key("gina", "user");
    let body =
        r#"{"model":"claude-stall-mid","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    // Ten clients read what has arrived, then close cleanly (a FIN, no reset), while the provider
    // has gone quiet: the daemon notices at its next keepalive write.
    let streams: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut stream = TcpStream::connect(app.base_url.trim_start_matches("http://")).expect("connect");
            write!(stream, "POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len()).expect("write");
            stream
        })
        .collect();
    for mut stream in streams {
        stream.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        while let Ok(read) = stream.read(&mut buffer) {
            if read == 0 {
                break;
            }
            received.extend_from_slice(&buffer[..read]);
        }
        assert!(String::from_utf8_lossy(&received).contains("message_start"), "the stream started");
        drop(stream);
    }
    let cancelled = eventually(Duration::from_secs(20), || fake.stats()["streams_cancelled"].as_u64() == Some(10));
    assert!(cancelled, "every upstream stream was cancelled: {}", fake.stats());
    let rows = settled_rows(&app, 10);
    assert!(rows.iter().all(|row| row["status"] == "client_closed"), "{rows:#?}");
}

#[test]
fn a_crash_mid_stream_leaves_a_row_that_the_next_start_marks_failed() {
    let fake = FakeProvider::start();
    let mut app = spawn(&fake, Database::Sqlite, "");
    let key = app.user_with_key("hank", "user");
    let body =
        r#"{"model":"claude-stall-mid","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let mut stream = TcpStream::connect(app.base_url.trim_start_matches("http://")).expect("connect");
    write!(stream, "POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len()).expect("write");
    let mut first = [0u8; 512];
    let _ = stream.read(&mut first).expect("the stream started");
    assert_eq!(
        app.database.query_scalar("SELECT status FROM ai_requests"),
        "started",
        "the row was committed before the request went upstream"
    );
    app.signal(nix::sys::signal::Signal::SIGKILL);
    app.wait_exit(Duration::from_secs(10));
    let restarted = spawn_app_with(
        AppOptions::new(Database::Sqlite)
            .profile(&profile(&fake, ""))
            .env("PROVIDER_KEY", PROVIDER_KEY)
            .sharing_database_of(&app),
    );
    // The second daemon has no bootstrap key of its own: the first one's admin key reads.
    let rows = ai_rows_with(&restarted.base_url, &app.admin_key);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["status"], "failed", "{}", rows[0]);
    assert!(rows[0]["error_message"].as_str().unwrap_or_default().starts_with("interrupted"), "{}", rows[0]);
}

#[test]
fn twenty_concurrent_requests_overshoot_a_budget_by_at_most_their_reservations() {
    let fake = FakeProvider::start();
    // Each request: 11 in, 9 out at sonnet's prices = 168 µ$; reserved: its input estimate plus
    // max_tokens 100 at $15/MTok. A budget of $0.005 admits a handful and refuses the rest.
    let budgets = "budgets:\n  - { name: tiny, per: user, usd: 0.005, period: day }\n";
    let app = spawn(&fake, Database::Sqlite, budgets);
    let key = app.user_with_key("ivy", "user");
    let body = r#"{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"What is the capital of France?"}]}"#;
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let (url, key) = (app.base_url.clone(), key.clone());
            std::thread::spawn(move || {
                let response = ureq::post(&format!("{url}/v1/messages"))
                    .set("x-api-key", &key)
                    .set("content-type", "application/json")
                    .send_string(body);
                match response {
                    Ok(response) => (response.status(), String::new()),
                    Err(ureq::Error::Status(status, response)) => (status, response.into_string().unwrap_or_default()),
                    Err(error) => panic!("{error}"),
                }
            })
        })
        .collect();
    let answers: Vec<(u16, String)> = handles.into_iter().map(|handle| handle.join().expect("thread")).collect();
    let passed = answers.iter().filter(|(status, _)| *status == 200).count();
    let refused: Vec<&String> = answers.iter().filter(|(status, _)| *status == 429).map(|(_, body)| body).collect();
    assert_eq!(passed + refused.len(), 20, "{answers:?}");
    assert!(passed >= 1 && !refused.is_empty(), "the budget admits some and refuses the rest: {answers:?}");
    assert!(refused.iter().all(|body| body.contains("tiny")), "the refusal names the budget: {refused:?}");
    let rows = settled_rows(&app, 20);
    let spent: i64 = rows.iter().filter_map(|row| row["cost_microdollars"].as_i64()).sum();
    assert!(spent <= 5_000, "concurrent requests never spent past the budget (reservations are the bound): {spent}");
    assert_eq!(
        rows.iter().filter(|row| row["status"] == "budget_exceeded").count(),
        refused.len(),
        "each refusal is a row"
    );
    let budgets = app.cli(&["budgets", "--json"]);
    let printed = String::from_utf8_lossy(&budgets.stdout);
    assert!(
        printed.contains("\"tiny\"") && printed.contains(&format!("\"spent_microdollars\":{spent}")),
        "castellan budgets shows the spend: {printed}"
    );
    let costs = app.cli(&["costs", "--by", "model", "--json"]);
    assert!(
        String::from_utf8_lossy(&costs.stdout).contains("claude-sonnet-4-5"),
        "castellan costs: {}",
        String::from_utf8_lossy(&costs.stdout)
    );
}

#[test]
fn postgres_holds_the_rows_as_sqlite_does() {
    let fake = FakeProvider::start();
    let app = spawn(&fake, Database::Postgres, "");
    let key = app.user_with_key("jo", "user");
    let report = run_ai_sdks(&["anthropic.create", "openai.chat_stream"], &app.base_url, &key, &[]);
    ok(&report, "anthropic.create");
    ok(&report, "openai.chat_stream");
    let rows = settled_rows(&app, 2);
    assert!(rows.iter().all(|row| row["status"] == "success" && row["output_tokens"] == 9), "{rows:#?}");
    let started = Instant::now();
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn the_provider_key_from_the_secret_store_and_secrets_in_prompts_never_leave_castellan() {
    const CANARY: &str = "canary-value-7f3a9c2e5b1d4680";
    let fake = FakeProvider::start();
    let app = spawn(&fake, Database::Sqlite, "");
    let mut events =
        integration_tests::events::EventStream::open(&app.base_url, &format!("Bearer {}", app.admin_key), "")
            .expect("the event stream opens");
    for (name, value) in [("anthropic_key", PROVIDER_KEY), ("canary", CANARY)] {
        let stored = app.cli_with_stdin(&["secrets", "set", name], value);
        assert!(stored.status.success(), "secrets set {name}: {}", String::from_utf8_lossy(&stored.stderr));
    }
    let from_store = profile(&fake, "").replacen("${PROVIDER_KEY:-not-the-daemons-key}", "${secret:anthropic_key}", 1);
    std::fs::write(&app.profile_path, from_store).expect("rewrite the profile");
    let key = app.user_with_key("kim", "user");
    let prompt = format!("my token is {CANARY}, keep it");
    let mut report = Value::Null;
    let reached = eventually(Duration::from_secs(20), || {
        fake.clear();
        report = run_ai_sdks(&["anthropic.create"], &app.base_url, &key, &["--prompt", &prompt]);
        report["anthropic.create"]["ok"] == true
            && fake.requests().iter().any(|request| request["headers"]["x-api-key"] == PROVIDER_KEY)
    });
    assert!(reached, "the reloaded profile takes the key from the secret store: {report}");
    let received = fake.requests().iter().map(Value::to_string).collect::<String>();
    assert!(!received.contains(CANARY), "a secret-store value in a prompt is redacted before it leaves: {received}");
    assert!(received.contains("[REDACTED:canary]"), "{received}");
    let answer = report["anthropic.create"]["text"].as_str().unwrap_or_default().to_string();
    assert!(!answer.contains(CANARY), "{answer}");

    let metrics = ureq::get(&format!("{}/metrics", app.base_url)).call().expect("metrics").into_string().expect("text");
    let counted = metrics.lines().any(|line| {
        line.starts_with("castellan_ai_requests_total{")
            && line.contains("provider=\"anthropic\"")
            && line.contains("model=\"claude-sonnet-4-5\"")
            && line.contains("status=\"success\"")
    });
    assert!(counted, "the request is counted under configured names: {metrics}");
    assert!(metrics.contains("castellan_ai_cost_microdollars_total{"), "cost is exported");
    let event = events
        .find(Duration::from_secs(5), |message| message.event == "ai_request" && message.data["status"] == "success");
    assert!(event.is_some(), "the bus carried the request: {}", events.received);

    let mut everything =
        format!("{}{}{}", app.log(), events.received, serde_json::to_string(&ai_rows(&app)).unwrap_or_default());
    let dump = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys\nprint('\\n'.join(sqlite3.connect(sys.argv[1]).iterdump()))",
            app.database.url.trim_start_matches("sqlite://"),
        ])
        .output()
        .expect("python3 runs");
    everything.push_str(&String::from_utf8_lossy(&dump.stdout));
    assert!(dump.stdout.len() > 1000, "the dump covers the database");
    for secret in [PROVIDER_KEY, CANARY] {
        assert!(!everything.contains(secret), "{secret} is in no log line, event, row or table");
    }
}

#[test]
fn a_stalling_provider_times_out_with_a_504_and_gemini_clients_reach_claude_models() {
    let fake = FakeProvider::start();
    let app = spawn(&fake, Database::Sqlite, "");
    let stalling = profile(&fake, "").replacen(
        &format!("base_url: \"{}\" }}\n  openai", fake.url()),
        &format!("base_url: \"{}\", timeout: 2s, connect_timeout: 1s }}\n  openai", fake.url()),
        1,
    );
    assert_ne!(stalling, profile(&fake, ""), "the anthropic provider got a timeout");
    std::fs::write(&app.profile_path, &stalling).expect("rewrite the profile");
    let key = app.user_with_key("lee", "user");
    // Before the reload the stall would last the fake's 120 s: wait for the new profile first.
    assert!(eventually(Duration::from_secs(20), || app.log_shows("profile reloaded")), "the profile was reloaded");
    let started = Instant::now();
    let body = r#"{"model":"claude-stall","max_tokens":8,"messages":[{"role":"user","content":"x"}]}"#;
    let (status, answer, _) = post(&app, "/v1/messages", &key, body);
    assert_eq!(status, 504, "a stalled provider is a 504: {answer}");
    assert_eq!(answer["error"]["type"], "timeout_error", "{answer}");
    assert!(started.elapsed() < Duration::from_secs(6), "within the provider's 2 s timeout: {:?}", started.elapsed());
    let report = run_ai_sdks(
        &["gemini.generate=claude-sonnet-4-5", "gemini.stream=claude-sonnet-4-5"],
        &app.base_url,
        &key,
        &[],
    );
    assert_eq!(ok(&report, "gemini.generate=claude-sonnet-4-5")["text"], ANSWER, "Gemini to Anthropic and back");
    assert_eq!(ok(&report, "gemini.stream=claude-sonnet-4-5")["text"], ANSWER, "streamed too");
    let rows = settled_rows(&app, 3);
    assert_eq!(
        rows.iter()
            .filter(|row| row["endpoint"] == "gemini" && row["provider"] == "anthropic" && row["status"] == "success")
            .count(),
        2,
        "{rows:#?}"
    );
}

#[test]
fn a_chat_stream_that_does_not_ask_for_usage_is_metered_all_the_same() {
    let fake = FakeProvider::start();
    let app = spawn(&fake, Database::Sqlite, "");
    let key = app.user_with_key("max", "user");
    let body = r#"{"model":"gpt-4.1-mini","stream":true,"messages":[{"role":"user","content":"What is the capital of France?"}]}"#;
    let response = ureq::post(&format!("{}/v1/chat/completions", app.base_url))
        .set("Authorization", &format!("Bearer {key}"))
        .set("content-type", "application/json")
        .send_string(body)
        .expect("the stream answers");
    let streamed = response.into_string().expect("the stream reads to its end");
    assert!(streamed.contains("data: [DONE]"), "{streamed}");
    let sent = fake.requests_to("/v1/chat/completions");
    let upstream: Value = serde_json::from_str(sent[0]["body"].as_str().unwrap_or("{}")).expect("json");
    assert_eq!(upstream["stream_options"]["include_usage"], true, "Castellan asked for the usage: {upstream}");
    let rows = settled_rows(&app, 1);
    assert_eq!(
        (rows[0]["input_tokens"].as_i64(), rows[0]["output_tokens"].as_i64()),
        (Some(11), Some(9)),
        "{}",
        rows[0]
    );
    assert!(rows[0]["cost_microdollars"].as_i64().is_some_and(|cost| cost > 0), "{}", rows[0]);
}
