//! Revision 2026-07-28 end to end with a raw client: discovery, the same governance as with
//! sessions (RBAC, audit), and every envelope or header defect refused without touching a tool.

use integration_tests::mcp::{Stateless, bearer, post_raw};
use integration_tests::{Database, spawn_app};
use serde_json::{Value, json};

fn delete_rows(rows: &[Value]) -> usize {
    rows.iter().filter(|row| row["tool"] == "delete_customer").count()
}

#[test]
fn stateless_clients_discover_list_and_call_under_the_same_policy() {
    let app = spawn_app(Database::Sqlite);
    let user_key = app.user_with_key("carol", "user");
    let url = format!("{}/mcp", app.base_url);
    let mut admin = Stateless::new(&url, &bearer(&app.admin_key));
    let mut user = Stateless::new(&url, &bearer(&user_key));

    let discover = admin.request("server/discover", json!({}));
    assert_eq!(discover.status, 200, "discover: {}", discover.raw);
    assert_eq!(discover.body["result"]["supportedVersions"], json!(["2026-07-28"]));
    assert_eq!(discover.body["result"]["resultType"], "complete");
    assert_eq!(discover.body["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "castellan");
    assert!(discover.session_id.is_none(), "no session is minted");

    let listed = user.request("tools/list", json!({}));
    assert_eq!(listed.status, 200, "{}", listed.raw);
    assert_eq!(listed.body["result"]["cacheScope"], "private", "lists are per caller");
    let names: Vec<&str> = listed.body["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|tool| tool["name"].as_str())
        .collect();
    assert!(names.contains(&"customers__get_customer") && !names.contains(&"customers__delete_customer"), "{names:?}");

    let got = user.request("tools/call", json!({"name": "customers__get_customer", "arguments": {"id": 2}}));
    assert_eq!(got.status, 200, "{}", got.raw);
    assert_eq!(got.body["result"]["structuredContent"]["id"], 2);
    assert_eq!(got.body["result"]["resultType"], "complete");

    let denied = user.request("tools/call", json!({"name": "customers__delete_customer", "arguments": {"id": 2}}));
    assert_eq!(denied.body["error"]["code"], -32003, "{}", denied.raw);
    let rows = app.audit_rows();
    let denial = rows.iter().find(|row| row["tool"] == "delete_customer").expect("denial audited");
    assert_eq!((denial["status"].as_str(), denial["session_id"].as_str()), (Some("denied"), None), "{denial}");
    let still = user.request("tools/call", json!({"name": "customers__get_customer", "arguments": {"id": 2}}));
    assert_eq!(still.body["result"]["structuredContent"]["id"], 2, "the denied delete changed nothing");

    let removed = admin.request("initialize", json!({}));
    assert_eq!((removed.status, removed.body["error"]["code"].clone()), (404, json!(-32601)), "{}", removed.raw);
    let get = ureq::get(&url)
        .set("authorization", &bearer(&app.admin_key))
        .set("accept", "text/event-stream")
        .set("mcp-protocol-version", "2026-07-28")
        .call();
    match get {
        Err(ureq::Error::Status(405, response)) => assert_eq!(response.header("allow"), Some("POST")),
        other => panic!("GET in 2026-07-28 is 405, got {other:?}"),
    }
}

#[test]
fn envelope_and_header_defects_are_refused_before_any_tool_runs() {
    let app = spawn_app(Database::Sqlite);
    let url = format!("{}/mcp", app.base_url);
    let mut admin = Stateless::new(&url, &bearer(&app.admin_key));
    let call = json!({"name": "customers__delete_customer", "arguments": {"id": 4}});
    type Spoil = fn(&mut String, &mut Vec<(String, String)>);
    // A header sent twice is refused too; ureq cannot send one twice, so a unit test covers it.
    let cases: [(&str, Spoil, u16, i64); 5] = [
        ("Mcp-Name names another tool", |_, headers| set(headers, "mcp-name", "customers__get_customer"), 400, -32020),
        ("Mcp-Method differs", |_, headers| set(headers, "mcp-method", "tools/list"), 400, -32020),
        ("Mcp-Name missing", |_, headers| headers.retain(|(name, _)| name != "mcp-name"), 400, -32020),
        (
            "unknown revision in header and _meta",
            |body, headers| {
                *body = body.replace("2026-07-28", "2031-01-01");
                set(headers, "mcp-protocol-version", "2031-01-01");
            },
            400,
            -32022,
        ),
        ("_meta missing", |body, _| *body = body.replace("\"_meta\"", "\"_other\""), 400, -32602),
    ];
    for (what, spoil, status, code) in cases {
        let (mut body, mut headers) = admin.parts("tools/call", call.clone());
        spoil(&mut body, &mut headers);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
        let reply = post_raw(&url, &headers, &body);
        assert_eq!(reply.status, status, "{what}: {}", reply.raw);
        assert_eq!(reply.body["error"]["code"], code, "{what}: {}", reply.raw);
    }
    assert_eq!(delete_rows(&app.audit_rows()), 0, "no refused request reached the tool or the audit");
    let customer = admin.request("tools/call", json!({"name": "customers__get_customer", "arguments": {"id": 4}}));
    assert_eq!(customer.body["result"]["structuredContent"]["id"], 4, "customer 4 still exists");
}

fn set(headers: &mut [(String, String)], name: &str, value: &str) {
    for header in headers.iter_mut().filter(|(key, _)| key == name) {
        header.1 = value.to_string();
    }
}
