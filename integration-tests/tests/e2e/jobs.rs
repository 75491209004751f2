//! The scheduler and the built-in jobs in a running daemon: the Vault pull restarting exactly the
//! servers whose secret changed, retention on demand, and one run at a time across replicas.

use std::time::Duration;

use integration_tests::events::EventStream;
use integration_tests::mcp::{Session, bearer};
use integration_tests::vault::{FakeVault, ROOT_TOKEN};
use integration_tests::{AppOptions, Database, TestApp, eventually, spawn_app_with};
use serde_json::json;

fn vault_profile(vault: &FakeVault) -> String {
    format!(
        r#"
server:
  listen: 127.0.0.1:0
database:
  url: "${{CASTELLAN_DATABASE_URL}}"
secrets:
  validation: warn
mcp_servers:
  customers:
    command: castellan
    args: [demo-server]
    env: {{ API_TOKEN: "${{secret:api-token}}" }}
  other:
    command: castellan
    args: [demo-server]
rbac:
  default: deny
  rules:
    - {{ name: users-may-use-tools, effect: allow, min_tier: user, servers: ["*"], tools: ["*"] }}
rate_limits:
  per_second: {{ mcp_tool_call: 100000, oauth: 100000 }}
jobs:
  secrets_pull: {{ every: 1s, timeout: 5s, vault: {{ url: "{}", mount: kv, path: castellan, token: "${{VAULT_TOKEN}}" }} }}
"#,
        vault.url
    )
}

fn job_runs(app: &TestApp, job: &str) -> String {
    app.database.query_scalar(&format!(
        "SELECT COALESCE(group_concat(status || ':' || COALESCE(detail, ''), char(10)), '') FROM job_runs WHERE job = '{job}'"
    ))
}

#[test]
fn a_secret_changed_in_vault_restarts_only_the_server_that_uses_it_and_vault_down_keeps_the_values() {
    let mut vault = FakeVault::start();
    vault.put("kv", "castellan", json!({"api-token": "first-token-value-1234"}));
    let app = spawn_app_with(
        AppOptions::new(Database::Sqlite).profile(&vault_profile(&vault)).env("VAULT_TOKEN", ROOT_TOKEN),
    );
    assert!(
        eventually(Duration::from_secs(20), || job_runs(&app, "secrets-pull")
            .contains("success:1 secret changed: api-token")),
        "the first pull stores the secret: {}\n{}",
        job_runs(&app, "secrets-pull"),
        app.log()
    );
    let mut events = EventStream::open(&app.base_url, &bearer(&app.admin_key), "").expect("the event stream opens");
    // Whatever the first pull restarted has settled before the value changes.
    events.drain(Duration::from_secs(3));

    vault.set("kv", "castellan", "api-token", json!("second-token-value-5678"));
    let restarted = events.find(Duration::from_secs(15), |message| {
        message.event == "reconcile_action"
            && message.data["server"] == "customers"
            && message.data["action"] == "restart"
    });
    assert!(restarted.is_some(), "customers restarts with the new value: {}\n{}", events.received, app.log());
    let later = events.drain(Duration::from_secs(3));
    assert!(
        !events.received.contains("\"server\":\"other\"")
            && later.iter().all(|message| message.data["server"] != "other"),
        "the server that uses no secret is left alone: {}",
        events.received
    );
    assert!(!app.log().contains("second-token-value-5678"), "the value is in no log line");

    vault.stop();
    let failed = events.find(Duration::from_secs(15), |message| message.event == "secrets_pull_failed");
    assert!(failed.is_some(), "a Vault that is down is reported: {}", events.received);
    assert!(
        eventually(Duration::from_secs(10), || job_runs(&app, "secrets-pull")
            .contains("the secrets pulled before stay in force")),
        "{}",
        job_runs(&app, "secrets-pull")
    );
    // (The CLI would need VAULT_TOKEN too; the bootstrap admin's key is at hand.)
    let mut session = Session::open(&format!("{}/mcp", app.base_url), &bearer(&app.admin_key));
    let answer = session.call("customers__get_customer", json!({"id": 1}));
    assert!(answer.get("result").is_some(), "the servers keep serving with the last values: {answer}");
    assert_eq!(
        app.database.query_scalar("SELECT COUNT(*) FROM secrets WHERE name = 'api-token'"),
        "1",
        "the stored secret is kept"
    );
}

const RETENTION_PROFILE: &str = r#"
server:
  listen: 127.0.0.1:0
database:
  url: "${CASTELLAN_DATABASE_URL}"
mcp_servers: {}
rbac:
  default: deny
  rules: []
jobs:
  retention: { cron: "0 3 * * *", ai_requests_days: 30, hook_events_days: 30, anonymous_days: 1 }
"#;

fn insert_ai_request(app: &TestApp, user: &str, days_ago: i64) {
    let started = (chrono::Utc::now() - chrono::Duration::days(days_ago)).format("%Y-%m-%dT%H:%M:%S%.6f+00:00");
    app.database.execute(&format!(
        "INSERT INTO ai_requests (user_id, trace_id, endpoint, provider, model, upstream_model, status, streamed, started_at, completed_at) \
         VALUES ('{user}', 'trace-{user}-{days_ago}', 'messages', 'anthropic', 'claude', 'claude', 'success', false, '{started}', '{started}')"
    ));
}

#[test]
fn retention_run_now_prunes_by_age_and_keeps_the_rest() {
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(RETENTION_PROFILE));
    for (user, days_ago) in [("alice", 40), ("alice", 10), ("anonymous", 3), ("anonymous", 0)] {
        insert_ai_request(&app, user, days_ago);
    }
    let list = app.cli(&["jobs", "list"]);
    let listed = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(
        listed.contains("retention") && listed.contains("cron 0 3 * * *") && listed.contains("never run"),
        "{listed}"
    );
    let run = app.cli(&["jobs", "run", "retention"]);
    let printed = String::from_utf8_lossy(&run.stdout).to_string();
    assert!(run.status.success(), "{printed}{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(
        printed.trim(),
        "retention: success: pruned ai_requests 1, hook_events 0, anonymous callers' rows 1",
        "alice's 40-day-old row and the anonymous 3-day-old one"
    );
    let left = app
        .database
        .query_scalar("SELECT group_concat(trace_id, ',') FROM (SELECT trace_id FROM ai_requests ORDER BY id)");
    assert_eq!(left, "trace-alice-10,trace-anonymous-0");
    let unknown = app.cli(&["jobs", "run", "nothing"]);
    assert!(
        !unknown.status.success() && String::from_utf8_lossy(&unknown.stderr).contains("no job is named `nothing`")
    );
}

#[test]
fn two_replicas_on_one_postgres_never_run_a_job_at_once() {
    let profile = RETENTION_PROFILE.replace("cron: \"0 3 * * *\"", "every: 1s");
    let first = spawn_app_with(AppOptions::new(Database::Postgres).profile(&profile));
    let second = spawn_app_with(AppOptions::new(Database::Postgres).profile(&profile).sharing_database_of(&first));
    std::thread::sleep(Duration::from_secs(8));
    drop(second);
    let runs = first.database.query_scalar(
        "SELECT string_agg((extract(epoch from started_at) * 1000)::bigint || '-' || (extract(epoch from completed_at) * 1000)::bigint, ',' ORDER BY started_at) FROM job_runs WHERE job = 'retention'",
    );
    let intervals: Vec<(i64, i64)> = runs
        .split(',')
        .filter_map(|run| run.split_once('-'))
        .filter_map(|(start, end)| Some((start.parse().ok()?, end.parse().ok()?)))
        .collect();
    assert!((4..=10).contains(&intervals.len()), "about one run a second across both replicas, not two: {runs}");
    for pair in intervals.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "runs never overlap: {runs}");
    }
}

fn forward_profile(sink: &integration_tests::sink::FakeSink) -> String {
    format!(
        r#"
server:
  listen: 127.0.0.1:0
database:
  url: "${{CASTELLAN_DATABASE_URL}}"
mcp_servers:
  customers:
    command: castellan
    args: [demo-server]
rbac:
  default: deny
  rules:
    - {{ name: users-may-use-tools, effect: allow, min_tier: user, servers: ["*"], tools: ["*"] }}
rate_limits:
  per_second: {{ mcp_tool_call: 100000, oauth: 100000 }}
jobs:
  forward: {{ every: 1s, timeout: 20s, to: [{{ kind: splunk_hec, url: "{}", token: "hec-token-0123456789", tables: [mcp_tool_executions], batch: 50 }}] }}
"#,
        sink.url()
    )
}

/// The audit row ids of `app`'s database, as the sink's keys end.
fn audit_ids(app: &TestApp) -> Vec<String> {
    let ids = app.database.query_scalar("SELECT COALESCE(group_concat(id, ','), '') FROM mcp_tool_executions");
    let mut ids: Vec<String> = ids.split(',').map(str::trim).filter(|id| !id.is_empty()).map(str::to_string).collect();
    ids.sort_by_key(|id| id.parse::<i64>().unwrap_or_default());
    ids
}

fn forwarded_ids(sink: &integration_tests::sink::FakeSink) -> Vec<String> {
    let mut ids: Vec<String> = sink
        .keys()
        .iter()
        .filter_map(|key| key.rsplit_once(':').filter(|(prefix, _)| prefix.ends_with(":mcp_tool_executions")))
        .map(|(_, id)| id.to_string())
        .collect();
    ids.sort_by_key(|id| id.parse::<i64>().unwrap_or_default());
    ids
}

fn calls(app: &TestApp, count: u64) {
    let mut session = Session::open(&format!("{}/mcp", app.base_url), &bearer(&app.admin_key));
    for id in 0..count {
        let answer = session.call("customers__get_customer", json!({"id": id % 5 + 1}));
        assert!(answer.get("result").is_some(), "{answer}");
    }
}

#[test]
fn the_forward_job_delivers_every_audit_row_once_through_a_sink_outage_and_a_sigkill() {
    let mut sink = integration_tests::sink::FakeSink::start("hec-token-0123456789");
    let mut app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&forward_profile(&sink)));
    calls(&app, 120);
    let caught_up = |app: &TestApp, sink: &integration_tests::sink::FakeSink| {
        eventually(Duration::from_secs(30), || forwarded_ids(sink) == audit_ids(app))
    };
    assert!(
        caught_up(&app, &sink),
        "every row arrives: {:?}\naudit {:?}\nforwarded {:?}",
        sink.stats(),
        audit_ids(&app),
        forwarded_ids(&sink)
    );

    // The sink goes away while calls go on; nothing is lost, the job reports failures meanwhile.
    sink.kill();
    calls(&app, 80);
    assert!(
        eventually(Duration::from_secs(20), || job_runs(&app, "forward").contains("failed:")),
        "a run fails while the sink is down: {}",
        job_runs(&app, "forward")
    );
    sink.restart();
    assert!(caught_up(&app, &sink), "the backlog arrives after the outage: {:?}", sink.stats());

    // SIGKILL while a backlog is being forwarded: the cursor is durable, so a restarted daemon sends
    // what was not acknowledged (again, perhaps: the keys dedupe) and nothing is lost.
    calls(&app, 300);
    app.signal(nix::sys::signal::Signal::SIGKILL);
    app.wait_exit(Duration::from_secs(5));
    let restarted =
        spawn_app_with(AppOptions::new(Database::Sqlite).profile(&forward_profile(&sink)).sharing_database_of(&app));
    // (`app.database` is the database both daemons use.)
    assert!(caught_up(&app, &sink), "everything arrives after the kill: {:?}\n{}", sink.stats(), restarted.log());
    let stats = sink.stats();
    assert_eq!(stats["unique"].as_u64(), Some(audit_ids(&app).len() as u64), "each row once by key: {stats}");
}
