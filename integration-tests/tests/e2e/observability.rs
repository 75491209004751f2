//! What operators see: the tamper-evident audit chain, Prometheus metrics, JSON logs carrying the
//! trace id, and readiness.

use integration_tests::mcp::{Session, bearer, post_raw};
use integration_tests::{Database, spawn_app};
use serde_json::json;

#[test]
fn audit_verify_detects_an_edited_and_a_deleted_row_on_both_databases() {
    for database in Database::ALL {
        let app = spawn_app(database);
        let mut session = Session::open(&format!("{}/mcp", app.base_url), &bearer(&app.admin_key));
        for id in 1..=4 {
            assert_eq!(session.call("customers__get_customer", json!({"id": id}))["result"]["isError"], false);
        }
        let clean = app.cli(&["audit", "verify"]);
        assert!(clean.status.success(), "{database:?}: an untouched chain verifies");

        app.database.execute("UPDATE mcp_tool_executions SET output = 'nothing to see' WHERE id = 2");
        let edited = app.cli(&["audit", "verify"]);
        let report = String::from_utf8_lossy(&edited.stdout).to_string() + &String::from_utf8_lossy(&edited.stderr);
        assert_eq!(edited.status.code(), Some(1), "{database:?}: an edited row fails verification: {report}");
        assert!(report.contains('2'), "{database:?}: the first broken row is named: {report}");

        let fresh = spawn_app(database);
        let mut session = Session::open(&format!("{}/mcp", fresh.base_url), &bearer(&fresh.admin_key));
        for id in 1..=4 {
            session.call("customers__get_customer", json!({"id": id}));
        }
        fresh.database.execute("DELETE FROM mcp_tool_executions WHERE id = 3");
        let deleted = fresh.cli(&["audit", "verify"]);
        assert_eq!(deleted.status.code(), Some(1), "{database:?}: a deleted row fails verification");
    }
}

#[test]
fn metrics_count_calls_by_outcome_and_logs_carry_the_trace_id() {
    let app = spawn_app(Database::Sqlite);
    let user_key = app.user_with_key("erin", "user");
    let url = format!("{}/mcp", app.base_url);
    let mut session = Session::open(&url, &bearer(&user_key));
    session.call("customers__get_customer", json!({"id": 1}));
    session.call("customers__delete_customer", json!({"id": 1}));
    let mut headers = session.headers();
    headers.push(("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
    let body = json!({"jsonrpc": "2.0", "id": 99, "method": "tools/call", "params": {"name": "customers__get_customer", "arguments": {"id": 2}}});
    assert_eq!(post_raw(&url, &headers, &body.to_string()).status, 200);

    let metrics = ureq::get(&format!("{}/metrics", app.base_url)).call().expect("metrics").into_string().expect("text");
    for expected in [
        r#"castellan_tool_calls_total{server="customers",tool="get_customer",status="success"} 2"#,
        r#"castellan_tool_calls_total{server="customers",tool="delete_customer",status="denied"} 1"#,
        "castellan_audit_commit_duration_seconds_count",
        "castellan_audit_batch_size_sum",
        "castellan_tool_call_duration_seconds_bucket",
        "castellan_servers_ready 1",
    ] {
        assert!(metrics.contains(expected), "/metrics has {expected}:\n{metrics}");
    }
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let logged = app.log_shows(trace);
    let log = app.log();
    assert!(logged, "the trace id appears in the logs:\n{log}");
    let traced: Vec<&str> = log.lines().filter(|line| line.contains(trace)).collect();
    for line in &traced {
        let parsed: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("a JSON log line: {line}"));
        assert!(parsed.get("timestamp").is_some() && parsed.get("level").is_some(), "{line}");
    }
    assert!(!log.contains(&user_key), "the API key never appears in the logs");
}

#[test]
fn readiness_follows_the_database() {
    let app = spawn_app(Database::Postgres);
    let ready = |app: &integration_tests::TestApp| match ureq::get(&format!("{}/readyz", app.base_url)).call() {
        Ok(response) => response.status(),
        Err(ureq::Error::Status(status, _)) => status,
        Err(error) => panic!("{error}"),
    };
    assert_eq!(ready(&app), 200);
    app.database.take_down();
    assert!(integration_tests::eventually(std::time::Duration::from_secs(10), || ready(&app) == 503), "503 while down");
    app.database.bring_up();
    assert!(integration_tests::eventually(std::time::Duration::from_secs(15), || ready(&app) == 200), "200 when back");
}

#[test]
fn two_replicas_on_one_postgresql_database_keep_one_unbroken_chain() {
    let first = spawn_app(Database::Postgres);
    let second = integration_tests::spawn_app_with(
        integration_tests::AppOptions::new(Database::Postgres).sharing_database_of(&first),
    );
    let key = first.user_with_key("replicated", "user");
    let calls_per_thread = 40;
    let threads: Vec<_> = [&first, &second, &first, &second]
        .iter()
        .map(|app| {
            let url = format!("{}/mcp", app.base_url);
            let key = bearer(&key);
            std::thread::spawn(move || {
                let mut session = Session::open(&url, &key);
                for round in 0..calls_per_thread {
                    let answer = session.call("customers__get_customer", json!({"id": 1 + round % 5}));
                    assert_eq!(answer["result"]["isError"], false, "{answer}");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("calls");
    }
    let rows = first.audit_rows();
    assert_eq!(rows.len(), 4 * calls_per_thread, "every call of both replicas has its row");
    let verify = first.cli(&["audit", "verify"]);
    assert!(verify.status.success(), "one chain, no fork: {}", String::from_utf8_lossy(&verify.stdout));
}

/// `GET /metrics`: the text and its size.
fn scrape(app: &integration_tests::TestApp) -> String {
    ureq::get(&format!("{}/metrics", app.base_url)).call().expect("metrics").into_string().expect("text")
}

#[test]
fn a_forged_tool_name_neither_forges_a_metrics_line_nor_grows_the_scrape() {
    let app = spawn_app(Database::Sqlite);
    let mut aggregated = Session::open(&format!("{}/mcp", app.base_url), &bearer(&app.admin_key));
    let mut one_server = Session::open(&format!("{}/mcp/customers", app.base_url), &bearer(&app.admin_key));
    let forged = "x\"} 1\n castellan_servers_ready 999\n# ";
    for (on_one_server, name) in [
        (false, format!("customers__{forged}")),
        (false, format!("{forged}__get_customer")),
        (false, forged.to_string()),
        (true, forged.to_string()),
    ] {
        let session = if on_one_server { &mut one_server } else { &mut aggregated };
        let answer = session.call(&name, json!({}));
        assert!(answer.get("error").is_some(), "a forged name is an unknown tool: {answer}");
    }
    assert_eq!(aggregated.call("customers__get_customer", json!({"id": 1}))["result"]["isError"], false);
    let baseline = scrape(&app);
    let ready_lines: Vec<&str> = baseline.lines().filter(|line| line.starts_with("castellan_servers_ready")).collect();
    assert_eq!(ready_lines, ["castellan_servers_ready 1"], "only the real gauge line:\n{baseline}");
    assert!(!baseline.contains("servers_ready 999"), "nothing of the forged name reaches /metrics:\n{baseline}");
    for expected in [
        r#"castellan_tool_calls_total{server="customers",tool="unknown",status="rpc_error"} 2"#,
        r#"castellan_tool_calls_total{server="unknown",tool="unknown",status="rpc_error"} 2"#,
        r#"castellan_tool_calls_total{server="customers",tool="get_customer",status="success"} 1"#,
    ] {
        assert!(baseline.contains(expected), "/metrics has {expected}:\n{baseline}");
    }

    for index in 0..30 {
        let unique = format!("{index}-{}", "n".repeat(100 * 1024));
        aggregated.call(&format!("customers__{unique}"), json!({}));
        aggregated.call(&unique, json!({}));
    }
    let after = scrape(&app);
    eprintln!(
        "/metrics: {} bytes before, {} bytes after 60 calls with unique 100 KB names",
        baseline.len(),
        after.len()
    );
    assert_eq!(after.lines().count(), baseline.lines().count(), "unique names add no series:\n{after}");
    assert!(after.len() < baseline.len() + 512, "/metrics stays small: {} then {} bytes", baseline.len(), after.len());
    assert!(after.len() < 16 * 1024, "/metrics is a few KB: {} bytes", after.len());
    assert!(
        after.contains(r#"castellan_tool_calls_total{server="customers",tool="unknown",status="rpc_error"} 32"#),
        "they are counted under unknown:\n{after}"
    );
}

#[test]
fn metrics_token_guards_the_scrape() {
    let token = "metrics-token-0123456789abcdef";
    let profile = format!("{}metrics:\n  token: \"${{METRICS_TOKEN}}\"\n", integration_tests::DEFAULT_TEST_PROFILE);
    let app = integration_tests::spawn_app_with(
        integration_tests::AppOptions::new(Database::Sqlite).profile(&profile).env("METRICS_TOKEN", token),
    );
    let url = format!("{}/metrics", app.base_url);
    for authorization in [None, Some("Bearer wrong-token-0123456789abcdef".to_string()), Some(format!("Basic {token}"))]
    {
        let mut request = ureq::get(&url);
        if let Some(value) = &authorization {
            request = request.set("Authorization", value);
        }
        match request.call() {
            Err(ureq::Error::Status(status, response)) => {
                assert_eq!(status, 401, "{authorization:?}");
                assert!(response.header("www-authenticate").is_some_and(|value| value.starts_with("Bearer")));
            }
            other => panic!("{authorization:?}: expected 401, got {:?}", other.map(|response| response.status())),
        }
    }
    let scraped = ureq::get(&url)
        .set("Authorization", &format!("Bearer {token}"))
        .call()
        .expect("the token reads /metrics")
        .into_string()
        .expect("text");
    assert!(scraped.contains("castellan_servers_ready"), "{scraped}");
    assert!(!app.log().contains(token), "the token never reaches the log");
}
