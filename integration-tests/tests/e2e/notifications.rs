//! A server's own change notifications reach every session that can see it, on the session's GET
//! stream, and the gateway refreshes the server's catalogue so the new tool is listed and governed.

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::Duration;

use integration_tests::mcp::{Session, bearer};
use integration_tests::{AppOptions, Database, eventually, repo_root, spawn_app_with, tools_dir};
use serde_json::json;

fn profile() -> String {
    let python = tools_dir().join("py2/bin/python");
    let fixture = repo_root().join("integration-tests/fixtures/conformance_fixture.py");
    integration_tests::DEFAULT_TEST_PROFILE.replace(
        "rbac:\n",
        &format!("  fixture:\n    command: {}\n    args: [{}]\nrbac:\n", python.display(), fixture.display()),
    )
}

/// Opens the session's GET stream and forwards each SSE data line to the returned channel.
fn open_stream(session: &Session) -> mpsc::Receiver<String> {
    let mut request = ureq::get(&session.url);
    for (name, value) in session.headers() {
        request = request.set(name, value);
    }
    let response = request.set("accept", "text/event-stream").call().expect("GET stream opens");
    assert_eq!(response.content_type(), "text/event-stream");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(response.into_reader()).lines().map_while(Result::ok) {
            if let Some(data) = line.strip_prefix("data: ")
                && sender.send(data.to_string()).is_err()
            {
                break;
            }
        }
    });
    receiver
}

#[test]
fn tools_list_changed_is_relayed_and_the_new_tool_is_governed() {
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&profile()));
    let user_key = app.user_with_key("frank", "user");
    let mut watcher = Session::open(&format!("{}/mcp", app.base_url), &bearer(&user_key));
    let other_server = Session::open(&format!("{}/mcp/customers", app.base_url), &bearer(&user_key));
    let stream = open_stream(&watcher);
    let other_stream = open_stream(&other_server);
    assert!(!watcher.tool_names().contains(&"fixture__test_added_tool".to_string()));

    let mut caller = Session::open(&format!("{}/mcp/fixture", app.base_url), &bearer(&app.admin_key));
    let changed = caller.call("test_trigger_tool_change", json!({}));
    assert_eq!(changed["result"]["content"][0]["text"], "tool list changed", "{changed}");

    let notice = stream.recv_timeout(Duration::from_secs(10)).expect("a notification on the GET stream");
    assert!(notice.contains("notifications/tools/list_changed"), "{notice}");
    assert!(
        other_stream.recv_timeout(Duration::from_millis(500)).is_err(),
        "a session on /mcp/customers does not hear about the fixture server"
    );
    let listed =
        eventually(Duration::from_secs(10), || watcher.tool_names().contains(&"fixture__test_added_tool".to_string()));
    assert!(listed, "the refreshed catalogue lists the new tool");
    let used = watcher.call("fixture__test_added_tool", json!({}));
    assert_eq!(used["result"]["content"][0]["text"], "the added tool works", "{used}");
    let rows = app.audit_rows();
    assert!(rows.iter().any(|row| row["tool"] == "test_added_tool" && row["user_id"] == "frank"), "audited: {rows:?}");
}
