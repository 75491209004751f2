//! The live event stream (`GET /api/v1/events`): admins only, Server-Sent Events, and a tool call made
//! through `/mcp` shows up on it with its tool name and trace id within seconds.

use std::time::Duration;

use integration_tests::events::EventStream;
use integration_tests::mcp::{Session, bearer, post_raw};
use integration_tests::{Database, eventually, spawn_app};
use serde_json::json;

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

#[test]
fn only_admins_may_open_the_stream_and_unknown_types_are_refused() {
    let app = spawn_app(Database::Sqlite);
    let user_key = app.user_with_key("ursula", "user");
    let cases = [("no credential", String::new(), 401), ("user key", bearer(&user_key), 403)];
    for (who, authorization, expected) in cases {
        match EventStream::open(&app.base_url, &authorization, "") {
            Err((status, body)) => assert_eq!(status, expected, "{who}: {body}"),
            Ok(_) => panic!("{who}: the stream opened; expected {expected}"),
        }
    }
    let stream = EventStream::open(&app.base_url, &bearer(&app.admin_key), "").expect("an admin opens the stream");
    assert_eq!(stream.content_type, "text/event-stream", "Server-Sent Events");
    assert_eq!(stream.cache_control, "no-store", "never cached");

    let (status, body) = EventStream::open(&app.base_url, &bearer(&app.admin_key), "?types=tool_call,nonsense")
        .err()
        .expect("an unknown type is refused");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("nonsense") && body.contains("tool_call, auth_decision"), "names the known types: {body}");
    let (status, _) = EventStream::open(&app.base_url, &bearer(&user_key), "?types=nonsense").err().expect("refused");
    assert_eq!(status, 403, "authorization is decided before the query is looked at");
}

#[test]
fn a_tool_call_appears_on_the_stream_with_its_tool_and_trace_id() {
    let app = spawn_app(Database::Sqlite);
    let admin = bearer(&app.admin_key);
    let mut everything = EventStream::open(&app.base_url, &admin, "").expect("the stream opens");
    let mut tool_calls_only = EventStream::open(&app.base_url, &admin, "?types=tool_call").expect("filtered");

    let url = format!("{}/mcp", app.base_url);
    let session = Session::open(&url, &admin);
    let traceparent = format!("00-{TRACE}-b7ad6b7169203331-01");
    let mut headers = session.headers();
    headers.push(("traceparent", &traceparent));
    let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "customers__list_customers", "arguments": {}}});
    let reply = post_raw(&url, &headers, &body.to_string());
    assert_eq!(reply.status, 200, "the call is answered: {}", reply.raw);

    let is_the_call = |message: &integration_tests::events::Message| {
        message.event == "tool_call" && message.data["trace_id"] == TRACE
    };
    let seen = everything.find(Duration::from_secs(5), is_the_call);
    let seen = seen.unwrap_or_else(|| panic!("no tool_call event; received:\n{}\n{}", everything.received, app.log()));
    assert_eq!(seen.data["type"], "tool_call", "the JSON carries its type too: {:?}", seen.data);
    assert_eq!(seen.data["server"], "customers", "{:?}", seen.data);
    assert_eq!(seen.data["tool"], "list_customers", "the call's tool: {:?}", seen.data);
    assert_eq!(seen.data["status"], "success", "{:?}", seen.data);
    assert!(seen.id.is_some_and(|id| id >= 1), "messages carry an id: {}", seen.raw);

    let filtered = tool_calls_only.find(Duration::from_secs(5), is_the_call);
    assert!(filtered.is_some(), "the filtered stream has it too: {}", tool_calls_only.received);
    let events: Vec<String> =
        tool_calls_only.received.lines().filter_map(|line| line.strip_prefix("event: ").map(str::to_string)).collect();
    assert!(events.iter().all(|event| event == "tool_call"), "only the named type passes: {events:?}");

    // A client that hangs up takes its subscription with it: the daemon notices at its next writes
    // (events here; keep-alives on a quiet bus) and drops the stream, which it logs.
    let before = app.log().matches("event stream closed").count();
    drop(everything);
    drop(tool_calls_only);
    let mut session = session;
    let closed = eventually(Duration::from_secs(10), || {
        session.call("customers__list_customers", json!({}));
        app.log().matches("event stream closed").count() >= before + 2
    });
    assert!(closed, "both closed streams were dropped by the daemon:\n{}", app.log());
}
