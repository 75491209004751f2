//! The governed gateway end to end: the real binary, the demo server supervised, SQLite and
//! PostgreSQL, raw Streamable HTTP so that every status code and error is visible.

use integration_tests::mcp::{Session, bearer, initialize_body, post_raw, standard_headers};
use integration_tests::{Database, spawn_app};
use serde_json::{Value, json};

fn audit_for<'a>(rows: &'a [Value], tool: &str) -> Vec<&'a Value> {
    rows.iter().filter(|row| row["tool"] == tool).collect()
}

#[test]
fn rbac_matrix_filters_lists_guards_calls_and_audits_every_decision() {
    for database in Database::ALL {
        let app = spawn_app(database);
        let user_key = app.user_with_key("alice", "user");
        let service_key = app.user_with_key("robot", "service");
        let url = format!("{}/mcp", app.base_url);

        let mut admin = Session::open(&url, &bearer(&app.admin_key));
        let mut user = Session::open(&url, &bearer(&user_key));
        let mut service = Session::open(&url, &bearer(&service_key));

        let admin_tools = admin.tool_names();
        for expected in ["customers__list_customers", "customers__get_customer", "customers__delete_customer"] {
            assert!(
                admin_tools.contains(&expected.to_string()),
                "{database:?}: admin sees {expected} in {admin_tools:?}"
            );
        }
        let user_tools = user.tool_names();
        assert!(user_tools.contains(&"customers__get_customer".to_string()), "{database:?}: user sees read tools");
        assert!(
            !user_tools.contains(&"customers__delete_customer".to_string()),
            "{database:?}: user must not see delete_customer"
        );
        let service_tools = service.tool_names();
        assert!(
            service_tools.contains(&"customers__get_customer".to_string())
                && !service_tools.contains(&"customers__delete_customer".to_string()),
            "{database:?}: service (40) is allowed by its own rule and, being below user (50), denied delete: {service_tools:?}"
        );
        let mcp_key = app.user_with_key("bridge", "mcp");
        let mut bridge = Session::open(&url, &bearer(&mcp_key));
        assert_eq!(
            bridge.tool_names(),
            Vec::<String>::new(),
            "{database:?}: mcp tier matches no allow rule: default deny"
        );
        let refused = bridge.call("customers__get_customer", json!({"id": 1}));
        assert_eq!(refused["error"]["code"], -32003, "{database:?}: default deny on call: {refused}");
        assert!(
            refused["error"]["message"].as_str().unwrap_or_default().contains("rbac.default"),
            "{database:?}: the default is named as the deciding rule: {refused}"
        );

        let denied = user.call("customers__delete_customer", json!({"id": 1}));
        assert_eq!(denied["error"]["code"], -32003, "{database:?}: denied call gets -32003: {denied}");
        let message = denied["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("forbidden:") && message.contains("no-destructive-for-users"),
            "{database:?}: names the rule: {message}"
        );
        // The row is there the moment the answer is.
        let rows = app.audit_rows();
        let denied_rows = audit_for(&rows, "delete_customer");
        assert_eq!(denied_rows.len(), 1, "{database:?}: one audit row for the denial");
        assert_eq!(denied_rows[0]["status"], "denied");
        assert_eq!(denied_rows[0]["user_id"], "alice");
        assert_eq!(denied_rows[0]["server"], "customers");

        let still_there = user.call("customers__get_customer", json!({"id": 1}));
        assert_eq!(
            still_there["result"]["structuredContent"]["name"], "Ada Lovelace",
            "{database:?}: the denied delete changed nothing"
        );

        let deleted = admin.call("customers__delete_customer", json!({"id": 5}));
        assert_eq!(deleted["result"]["isError"], false, "{database:?}: admin may delete: {deleted}");
        let rows = app.audit_rows();
        let success = rows
            .iter()
            .find(|row| row["tool"] == "delete_customer" && row["status"] == "success")
            .expect("success row");
        assert_eq!(success["user_id"], "admin");
        assert_eq!(success["input"], "{\"id\":5}", "{database:?}: input recorded");
        assert!(success["output"].as_str().unwrap_or_default().contains("deleted"), "{database:?}: output recorded");
        let missing = admin.call("customers__get_customer", json!({"id": 5}));
        assert_eq!(missing["result"]["isError"], true);
        let rows = app.audit_rows();
        assert_eq!(
            rows.last().expect("row")["status"],
            "tool_error",
            "{database:?}: a tool-level error is audited as tool_error"
        );

        let verify = app.cli(&["audit", "verify"]);
        assert!(verify.status.success(), "{database:?}: chain verifies: {}", String::from_utf8_lossy(&verify.stdout));
    }
}

#[test]
fn single_server_endpoint_uses_bare_names_and_the_same_policy() {
    let app = spawn_app(Database::Sqlite);
    let user_key = app.user_with_key("bob", "user");
    let mut session = Session::open(&format!("{}/mcp/customers", app.base_url), &bearer(&user_key));
    let names = session.tool_names();
    assert_eq!(names, vec!["list_customers", "get_customer"], "bare names, destructive tool filtered");
    let listed = session.call("list_customers", json!({}));
    assert_eq!(listed["result"]["structuredContent"]["customers"].as_array().map(Vec::len), Some(5));
    let denied = session.call("delete_customer", json!({"id": 1}));
    assert_eq!(denied["error"]["code"], -32003);
    let unknown = post_raw(
        &format!("{}/mcp/nope", app.base_url),
        &standard_headers(&bearer(&user_key), None),
        &initialize_body("2025-06-18"),
    );
    assert_eq!(unknown.status, 404, "an unknown server is 404");
}

#[test]
fn trace_id_from_traceparent_lands_in_the_audit_row() {
    let app = spawn_app(Database::Sqlite);
    let key = bearer(&app.admin_key);
    let url = format!("{}/mcp", app.base_url);
    let session = Session::open(&url, &key);
    let mut headers = session.headers();
    headers.push(("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "customers__list_customers", "arguments": {}}});
    let reply = post_raw(&url, &headers, &body.to_string());
    assert_eq!(reply.status, 200);
    let rows = app.audit_rows();
    assert_eq!(rows.last().expect("row")["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(rows.last().expect("row")["session_id"], session.session_id.as_str());
}

#[test]
fn missing_or_bad_credentials_get_a_401_challenge() {
    let app = spawn_app(Database::Sqlite);
    let url = format!("{}/mcp", app.base_url);
    for (label, key) in [
        ("none", ""),
        ("garbage", "Bearer nope"),
        ("basic", "Basic YWxpY2U6cHc="),
        ("unknown key", "Bearer cas_aaaaaaaaaaaa_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    ] {
        let reply = post_raw(&url, &standard_headers(key, None), &initialize_body("2025-06-18"));
        assert_eq!(reply.status, 401, "{label}: {}", reply.raw);
        let challenge = reply.www_authenticate.unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer ") && challenge.contains("resource_metadata=\""),
            "{label}: challenge {challenge}"
        );
    }
    let revoked_key = app.user_with_key("carol", "user");
    let listed = app.cli(&["keys", "list"]);
    let listing = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(!listing.contains(&revoked_key), "keys list never prints a secret");
    let metadata: Value = ureq::get(&format!("{}/.well-known/oauth-protected-resource/mcp", app.base_url))
        .call()
        .expect("metadata")
        .into_json()
        .expect("json");
    assert_eq!(metadata["resource"], format!("{}/mcp", app.public_url), "the resource is named by the public URL");
    assert_eq!(
        metadata["authorization_servers"],
        json!([app.public_url]),
        "the built-in authorization server, named by the same issuer string: {metadata}"
    );
    let root: Value = ureq::get(&format!("{}/.well-known/oauth-protected-resource", app.base_url))
        .call()
        .expect("root metadata")
        .into_json()
        .expect("json");
    assert_eq!(root["resource"], app.public_url, "the root document describes the origin itself");
}

#[test]
fn anonymous_access_is_opt_in_floor_tier_and_never_excuses_a_bad_key() {
    let profile = integration_tests::DEFAULT_TEST_PROFILE.replace("server:\n", "server:\n  allow_anonymous: true\n");
    let app = integration_tests::spawn_app_with(integration_tests::AppOptions::new(Database::Sqlite).profile(&profile));
    let url = format!("{}/mcp", app.base_url);
    let mut anonymous = Session::open(&url, "");
    assert_eq!(anonymous.tool_names(), Vec::<String>::new(), "no rule allows the anonymous tier: default deny");
    let refused = anonymous.call("customers__get_customer", json!({"id": 1}));
    assert_eq!(refused["error"]["code"], -32003, "{refused}");
    let rows = app.audit_rows();
    assert_eq!(
        rows.last().map(|row| (row["user_id"].clone(), row["status"].clone())),
        Some((json!("anonymous"), json!("denied")))
    );
    let bad = post_raw(
        &url,
        &standard_headers("Bearer cas_aaaaaaaaaaaa_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", None),
        &initialize_body("2025-06-18"),
    );
    assert_eq!(bad.status, 401, "a bad credential is refused even where anonymous access is allowed");
}

#[test]
fn bad_input_gets_the_right_error_and_changes_nothing() {
    let app = spawn_app(Database::Sqlite);
    let key = bearer(&app.admin_key);
    let url = format!("{}/mcp", app.base_url);
    let mut session = Session::open(&url, &key);
    let headers = session.headers();

    let malformed = post_raw(&url, &headers, "{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": ");
    assert_eq!((malformed.status, malformed.body["error"]["code"].clone()), (400, json!(-32700)), "malformed JSON");
    let batch = post_raw(&url, &headers, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]");
    assert_eq!((batch.status, batch.body["error"]["code"].clone()), (400, json!(-32600)), "batches refused");
    let oversized = post_raw(
        &url,
        &headers,
        &format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{{\"pad\":\"{}\"}}}}",
            "x".repeat(5 * 1024 * 1024)
        ),
    );
    assert_eq!(oversized.status, 413, "oversized body");
    let unknown_method = session.request("tools/frobnicate", json!({}));
    assert_eq!(unknown_method.body["error"]["code"], -32601, "unknown method");

    let no_session =
        post_raw(&url, &standard_headers(&key, None), "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
    assert_eq!(no_session.status, 400, "missing session");
    let bad_session = post_raw(
        &url,
        &standard_headers(&key, Some("0123456789abcdef0123456789abcdef")),
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}",
    );
    assert_eq!(bad_session.status, 404, "unknown session");
    let mut versioned = session.headers();
    versioned.push(("mcp-protocol-version", "1999-01-01"));
    let bad_version = post_raw(&url, &versioned, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
    assert_eq!(bad_version.status, 400, "unsupported protocol version");
    let mut foreign = session.headers();
    foreign.push(("origin", "http://evil.example"));
    let rebinding = post_raw(&url, &foreign, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
    assert_eq!(rebinding.status, 403, "foreign Origin");
    let mut wrong_type = session.headers();
    wrong_type[0] = ("content-type", "text/plain");
    assert_eq!(post_raw(&url, &wrong_type, "{}").status, 415, "wrong content type");

    let before = app.audit_rows().len();
    for trick in [
        "Customers__delete_customer",
        "customers__Delete_customer",
        "customers__delete_custоmer",
        "custom__delete_customer",
        "customers_delete_customer",
        "customers__",
        "__delete_customer",
        "customers__delete_customer\u{0}",
    ] {
        let answer = session.call(trick, json!({"id": 1}));
        assert_eq!(answer["error"]["code"], -32602, "{trick:?} is an unknown tool: {answer}");
    }
    let rows = app.audit_rows();
    assert_eq!(rows.len(), before + 8, "every refused call is audited");
    assert!(rows[before..].iter().all(|row| row["status"] == "rpc_error"), "as rpc_error");
    let still_there = session.call("customers__get_customer", json!({"id": 1}));
    assert_eq!(still_there["result"]["structuredContent"]["id"], 1, "no trick deleted anything");

    let ended = ureq::delete(&url)
        .set("authorization", &key)
        .set("mcp-session-id", &session.session_id)
        .call()
        .expect("delete");
    assert_eq!(ended.status(), 204, "DELETE ends the session");
    assert_eq!(session.request("tools/list", json!({})).status, 404, "ended session is unknown");
}
