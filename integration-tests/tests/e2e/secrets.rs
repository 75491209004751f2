//! Secret values never leave Castellan: a server that echoes its environment and its arguments gets
//! its secret, and the value shows up in no tool result, no audit row, no table, no log line and not on
//! the admin event stream (even when an event's text carries it).

use std::time::Duration;

use integration_tests::events::EventStream;
use integration_tests::mcp::{Session, bearer};
use integration_tests::{AppOptions, Database, eventually, profile_with_everything, spawn_app_with};
use serde_json::{Value, json};

const VALUE: &str = "sv-5b1e9d0c-leak-canary";

fn text_of(answer: &Value) -> String {
    answer.to_string()
}

#[test]
fn a_secret_value_appears_in_no_result_row_table_or_log() {
    let base = profile_with_everything();
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&base));
    let mut events = EventStream::open(&app.base_url, &bearer(&app.admin_key), "").expect("the event stream opens");
    let stored = app.cli_with_stdin(&["secrets", "set", "canary"], VALUE);
    assert!(stored.status.success(), "secrets set: {}", String::from_utf8_lossy(&stored.stderr));
    let with_secret = base.replace(", stdio]\n", ", stdio]\n    env: { CANARY: \"${secret:canary}\" }\n");
    std::fs::write(&app.profile_path, &with_secret).expect("rewrite the profile");

    let url = format!("{}/mcp", app.base_url);
    let mut env_answer = Value::Null;
    let injected = eventually(Duration::from_secs(30), || {
        let mut session = Session::open(&url, &bearer(&app.admin_key));
        env_answer = session.call("everything__get-env", json!({}));
        text_of(&env_answer).contains("CANARY")
    });
    assert!(injected, "the server restarted with the secret: {env_answer}\n{}", app.log());
    let env_text = text_of(&env_answer);
    assert!(!env_text.contains(VALUE), "the child's environment is echoed without the value: {env_text}");
    assert!(env_text.contains("[REDACTED:canary]"), "the value is replaced by the secret's name: {env_text}");

    let mut session = Session::open(&url, &bearer(&app.admin_key));
    let echoed = session.call("everything__echo", json!({"message": format!("the key is {VALUE}!")}));
    let echoed_text = text_of(&echoed);
    assert!(!echoed_text.contains(VALUE), "arguments echoed back are redacted: {echoed_text}");
    assert!(echoed_text.contains("the key is [REDACTED:canary]!"), "{echoed_text}");

    let rows = app.audit_rows();
    let rows_text = serde_json::to_string(&rows).unwrap_or_default();
    assert!(rows_text.contains("everything"), "the calls were audited: {rows_text}");
    assert!(!rows_text.contains(VALUE), "no audit row holds the value: {rows_text}");
    let dump = app.database.query_scalar(
        "SELECT group_concat(t, char(10)) FROM (SELECT input || ' ' || coalesce(output, '') || ' ' || coalesce(error_message, '') AS t FROM mcp_tool_executions)",
    );
    assert!(!dump.contains(VALUE), "the audit table does not hold it");
    let every_table = dump_database(&app.database.url);
    assert!(every_table.len() > 1000, "the dump covers the database ({} bytes)", every_table.len());
    assert!(!every_table.contains(VALUE), "no table holds the value in clear");

    // The event stream saw the calls, and an event whose text holds the value (a profile problem that
    // quotes a mistyped key) leaves redacted.
    let echo_event =
        events.find(Duration::from_secs(5), |message| message.event == "tool_call" && message.data["tool"] == "echo");
    assert!(echo_event.is_some(), "the stream carried the calls: {}", events.received);
    let mistyped = with_secret.replace(", stdio]\n", &format!(", stdio]\n    {VALUE}: 1\n"));
    std::fs::write(&app.profile_path, mistyped).expect("write a profile with the value as a key");
    let rejected = events.find(Duration::from_secs(10), |message| message.event == "profile_rejected");
    let rejected = rejected.unwrap_or_else(|| panic!("no profile_rejected event: {}", events.received));
    assert!(rejected.raw.contains("unknown key `[REDACTED:canary]`"), "the problem names the secret: {}", rejected.raw);
    events.drain(Duration::from_millis(500));
    assert!(!events.received.contains(VALUE), "no event holds the value: {}", events.received);

    assert!(!app.log().contains(VALUE), "no log line holds the value");
}

/// Every row of every table, as SQL text (SQLite's own dump).
fn dump_database(url: &str) -> String {
    let path = url.trim_start_matches("sqlite://");
    let output = std::process::Command::new("python3")
        .args(["-c", "import sqlite3, sys\nprint('\\n'.join(sqlite3.connect(sys.argv[1]).iterdump()))", path])
        .output()
        .expect("python3 runs");
    assert!(output.status.success(), "dump: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).to_string()
}
