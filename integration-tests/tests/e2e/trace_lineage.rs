//! Trace lineage: a caller's W3C `traceparent` becomes the call's trace id, reaches HTTP backends
//! (same trace, a span of Castellan's own), names the audit row, and the admin API returns the
//! trace's executions.

use integration_tests::mcp::{bearer, initialize_body, post_raw, standard_headers};
use integration_tests::{AppOptions, DEFAULT_TEST_PROFILE, Database, Fixture, spawn_app_with};
use serde_json::{Value, json};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn call_with_traceparent(url: &str, key: &str, traceparent: &str) -> Value {
    let authorization = bearer(key);
    let mut headers = standard_headers(&authorization, None);
    headers.push(("traceparent", traceparent));
    let opened = post_raw(url, &headers, &initialize_body("2025-11-25"));
    let session = opened.session_id.expect("a session");
    let mut headers = standard_headers(&authorization, Some(&session));
    headers.push(("traceparent", traceparent));
    headers.push(("MCP-Protocol-Version", "2025-11-25"));
    let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "tracer__show_traceparent", "arguments": {}}});
    post_raw(url, &headers, &body.to_string()).body
}

#[test]
fn the_callers_trace_reaches_the_backend_the_audit_row_and_the_admin_api() {
    let backend = Fixture::start("trace_echo_server.py", &[], "trace-echo listening on ");
    let profile = DEFAULT_TEST_PROFILE.replace("rbac:\n", &format!("  tracer:\n    url: {}\nrbac:\n", backend.url));
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&profile));
    let url = format!("{}/mcp", app.base_url);
    let answer = call_with_traceparent(&url, &app.admin_key, &format!("00-{TRACE}-{PARENT}-01"));
    let text = answer.pointer("/result/content/0/text").and_then(Value::as_str).expect("the tool's answer");
    let seen: Value = serde_json::from_str(text).expect("json");
    let forwarded = seen["traceparent"].as_str().expect("the backend saw a traceparent");
    let parts: Vec<&str> = forwarded.split('-').collect();
    assert_eq!(parts.len(), 4, "{forwarded}");
    assert_eq!((parts[0], parts[1], parts[3]), ("00", TRACE, "01"), "the same trace, sampled: {forwarded}");
    assert_ne!(parts[2], PARENT, "Castellan's own span is the backend's parent: {forwarded}");
    assert!(castellan::trace::parse_traceparent(forwarded).is_some(), "a valid traceparent: {forwarded}");

    let rows = app.audit_rows();
    let row = rows.iter().find(|row| row["tool"] == "show_traceparent").expect("the call's audit row");
    assert_eq!(row["trace_id"], TRACE, "the audit row carries the caller's trace id");

    let malformed = call_with_traceparent(&url, &app.admin_key, &format!("00-{}-{PARENT}-01", TRACE.to_uppercase()));
    let text = malformed.pointer("/result/content/0/text").and_then(Value::as_str).expect("an answer");
    assert!(!text.contains(TRACE), "an invalid traceparent (upper case) starts a new trace: {text}");

    let get = |authorization: &str, path: &str| {
        let mut request = ureq::get(&format!("{}{path}", app.base_url));
        if !authorization.is_empty() {
            request = request.set("Authorization", authorization);
        }
        match request.call() {
            Ok(response) => (response.status(), response.into_json::<Value>().unwrap_or(Value::Null)),
            Err(ureq::Error::Status(status, response)) => {
                (status, response.into_json::<Value>().unwrap_or(Value::Null))
            }
            Err(error) => panic!("{error}"),
        }
    };
    let (status, trace) = get(&bearer(&app.admin_key), &format!("/api/v1/traces/{TRACE}"));
    assert_eq!(status, 200, "{trace}");
    let executions = trace["tool_executions"].as_array().expect("executions");
    assert_eq!(executions.len(), 1, "exactly the one call of this trace: {trace}");
    assert_eq!(executions[0]["tool"], "show_traceparent");
    let user_key = app.user_with_key("ulla", "user");
    assert_eq!(get(&bearer(&user_key), &format!("/api/v1/traces/{TRACE}")).0, 403, "admins only");
    assert_eq!(get("", &format!("/api/v1/traces/{TRACE}")).0, 401, "a credential is required");
    assert_eq!(get(&bearer(&app.admin_key), "/api/v1/traces/not-a-trace").0, 400, "a malformed id is refused");
}
