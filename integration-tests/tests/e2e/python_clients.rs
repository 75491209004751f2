//! The official Python MCP SDK as the client, both generations, against the real binary
//! supervising `server-everything` (npm) and the demo server: lists, calls, progress, sampling and
//! elicitation relayed, on the aggregated and the single-server endpoint, SQLite and PostgreSQL.

use integration_tests::{AppOptions, Database, TestApp, profile_with_everything, run_python_client, spawn_app_with};
use serde_json::Value;

fn app_with_everything(database: Database) -> TestApp {
    spawn_app_with(AppOptions::new(database).profile(&profile_with_everything()))
}

fn rows_for<'a>(rows: &'a [Value], tool: &str) -> Vec<&'a Value> {
    rows.iter().filter(|row| row["tool"] == tool).collect()
}

/// Sampling and elicitation answered by the client reached the server and came back in the result:
/// as server-to-client requests within a session, as `input_required` rounds when stateless.
fn assert_input_round_trips(report: &Value, what: &str) {
    let sampled = report["sampling"]["text"].as_str().unwrap_or_default();
    assert!(sampled.contains("Paris"), "{what}: the client's sampling answer reached the server: {report}");
    let elicited = report["elicitation"]["text"].as_str().unwrap_or_default();
    assert!(elicited.contains("Ada Lovelace"), "{what}: the client's elicitation answer came back: {report}");
}

fn assert_common(report: &Value, prefix: &str, what: &str) {
    let tools: Vec<&str> = report["tools"].as_array().expect("tools").iter().filter_map(Value::as_str).collect();
    assert!(tools.contains(&format!("{prefix}get-sum").as_str()), "{what}: server-everything tools listed: {tools:?}");
    assert!(report["sum"]["text"].as_str().unwrap_or_default().contains('5'), "{what}: 2 + 3: {report}");
    assert_eq!(report["sum"]["is_error"], false, "{what}");
    let progress = report["long_running"]["progress"].as_array().expect("progress list");
    assert_eq!(progress.len(), 3, "{what}: three progress notifications relayed with the client's token: {report}");
    assert!(report["long_running"]["text"].as_str().unwrap_or_default().contains("completed"), "{what}: {report}");
}

#[test]
fn python_sdk_1x_sessions_relay_progress_sampling_and_elicitation() {
    for database in Database::ALL {
        let app = app_with_everything(database);
        let endpoints =
            [(format!("{}/mcp", app.base_url), "everything__"), (format!("{}/mcp/everything", app.base_url), "")];
        for (url, prefix) in &endpoints {
            let what = format!("{database:?} {url}");
            let report = run_python_client("py1", "legacy_client.py", &[url, &app.admin_key, prefix]);
            assert_eq!(report["protocol_version"], "2025-11-25", "{what}: {report}");
            assert_eq!(report["server_name"], "castellan", "{what}");
            assert_common(&report, prefix, &what);
            assert_input_round_trips(&report, &what);
            let tools: Vec<&str> =
                report["tools"].as_array().expect("tools").iter().filter_map(Value::as_str).collect();
            let foreign = tools.iter().any(|tool| tool.starts_with("customers__") || *tool == "get_customer");
            assert_eq!(foreign, !prefix.is_empty(), "{what}: scope of the tool list: {tools:?}");
            assert!(report["resource_count"].as_u64().unwrap_or(0) > 0, "{what}: resources listed");
        }
        let rows = app.audit_rows();
        for tool in
            ["get-sum", "trigger-long-running-operation", "trigger-sampling-request", "trigger-elicitation-request"]
        {
            let audited = rows_for(&rows, tool);
            assert_eq!(audited.len(), 2, "{database:?}: one row per endpoint for {tool}: {audited:?}");
            assert!(
                audited.iter().all(|row| row["status"] == "success" && row["server"] == "everything"),
                "{audited:?}"
            );
        }
    }
}

#[test]
fn python_sdk_2x_in_every_mode() {
    let app = app_with_everything(Database::Sqlite);
    let url = format!("{}/mcp", app.base_url);
    for (mode, expected_version) in [("legacy", "2025-11-25"), ("2026-07-28", "2026-07-28"), ("auto", "2026-07-28")] {
        let report = run_python_client("py2", "modern_client.py", &[&url, &app.admin_key, "everything__", mode]);
        assert_eq!(report["protocol_version"], expected_version, "mode {mode}: {report}");
        assert_common(&report, "everything__", mode);
        assert_input_round_trips(&report, mode);
        assert_eq!(report["customer"]["structured"]["name"], "Ada Lovelace", "mode {mode}: {report}");
    }
    let single = format!("{}/mcp/everything", app.base_url);
    let report = run_python_client("py2", "modern_client.py", &[&single, &app.admin_key, "", "2026-07-28"]);
    assert_common(&report, "", "single-server stateless");
    assert_input_round_trips(&report, "single-server stateless");
    let rows = app.audit_rows();
    let sums = rows_for(&rows, "get-sum");
    assert_eq!(sums.len(), 4, "every call audited: {sums:?}");
    let stateless = sums.iter().filter(|row| row["session_id"].is_null()).count();
    assert_eq!(stateless, 3, "stateless calls carry no session: {sums:?}");
    // One row per call, not per input round: the row is written when the call's answer is.
    let elicitations = rows_for(&rows, "trigger-elicitation-request");
    assert_eq!(elicitations.len(), 4, "{elicitations:?}");
    assert!(elicitations.iter().all(|row| row["status"] == "success"), "{elicitations:?}");
}
