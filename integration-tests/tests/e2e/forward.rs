//! Forwarding to SIEM sinks: `castellan::forward::forward_once` over a real database (made by the
//! schema crate, SQLite and PostgreSQL) to the `fake-sink` binary, which speaks the Splunk HEC,
//! Datadog and OTLP intake formats and dedupes by idempotency key. Every row arrives once by key,
//! whatever the sink does in between (503, a crash before it answers, a rejected batch, a refused
//! token), and neither a token nor a registered secret leaves in the wrong place.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use castellan::forward::{
    ForwardError, ForwardReport, ForwardTable, Sink, SinkKind, forward_once, idempotency_key, installation_id,
};
use castellan::redaction::{self, Redactor};
use castellan_schema::DatabaseConnection;
use castellan_schema::ai_requests::{AiCompletion, AiRequestStatus, AiRequestWrite, NewAiRequest};
use castellan_schema::audit::{ExecutionKind, ExecutionStatus, NewExecution};
use castellan_schema::hook_events::HookEventRow;
use chrono::{DateTime, TimeDelta, Utc};
use integration_tests::sink::FakeSink;
use integration_tests::{Database, TempDir, TestDatabase};
use sea_orm::TransactionTrait;
use serde_json::{Value, json};

const TOKEN: &str = "sink-token-8d1f3a9c2b";
const BUDGET: Duration = Duration::from_secs(60);

fn run<F: std::future::Future>(future: F) -> F::Output {
    actix_web::rt::System::new().block_on(future)
}

/// A fresh database with Castellan's tables.
struct Rows {
    _dir: TempDir,
    _database: TestDatabase,
    db: DatabaseConnection,
    client: reqwest::Client,
}

impl Rows {
    async fn fresh(kind: Database) -> Rows {
        let dir = TempDir::new();
        let database = TestDatabase::new(kind, &dir.0);
        let db = castellan_schema::connect(&database.url).await.expect("the database opens");
        castellan_schema::migrate(&db).await.expect("migrations run");
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("a client");
        Rows { _dir: dir, _database: database, db, client }
    }

    /// Appends `count` audit rows through the hash chain; `output` is the text of each result.
    async fn audit(&self, count: usize, output: &str) {
        let mut prev_hash = castellan_schema::audit::last_hash(&self.db).await.expect("the chain head");
        let rows: Vec<NewExecution> = (0..count).map(|n| execution(n, output)).collect();
        for chunk in rows.chunks(1000) {
            let (_, head) =
                castellan_schema::audit::insert_batch(&self.db, &prev_hash, chunk).await.expect("audit rows");
            prev_hash = head;
        }
    }

    /// Stores `count` finished AI requests.
    async fn ai_requests(&self, count: usize) {
        let writes: Vec<AiRequestWrite> =
            (0..count).map(|n| AiRequestWrite::Finish(ai_request(n), completion(n))).collect();
        for chunk in writes.chunks(500) {
            castellan_schema::ai_requests::write_batch(&self.db, chunk).await.expect("AI rows");
        }
    }

    /// Stores `count` hook decisions, `reason` on each.
    async fn hook_events(&self, count: usize, reason: &str) {
        let rows: Vec<HookEventRow> = (0..count).map(|n| hook_event(n, reason)).collect();
        for chunk in rows.chunks(500) {
            castellan_schema::hook_events::record_many(&self.db, chunk).await.expect("hook rows");
        }
    }

    async fn forward(&self, sink: &Sink) -> Result<ForwardReport, ForwardError> {
        forward_once(&self.db, &self.client, sink, BUDGET).await
    }

    async fn cursor(&self, sink: &Sink, table: ForwardTable) -> i64 {
        castellan_schema::jobs::forward_cursor(&self.db, &sink.name, table.as_str()).await.expect("the cursor")
    }

    /// The key of every row of `table` with an id in `ids`.
    async fn keys(&self, table: ForwardTable, ids: impl IntoIterator<Item = i64>) -> BTreeSet<String> {
        let installation = installation_id(&self.db).await.expect("the installation id");
        ids.into_iter().map(|id| idempotency_key(&installation, table, id)).collect()
    }
}

fn time(n: usize) -> DateTime<Utc> {
    Utc::now() - TimeDelta::seconds(3600) + TimeDelta::milliseconds(i64::try_from(n).expect("small"))
}

fn execution(n: usize, output: &str) -> NewExecution {
    NewExecution {
        server: "customers".into(),
        tool: "get_customer".into(),
        kind: ExecutionKind::Tool,
        input: json!({"id": n}).to_string(),
        output: Some(json!({"content": [{"type": "text", "text": output}]}).to_string()),
        status: if n.is_multiple_of(10) { ExecutionStatus::Denied } else { ExecutionStatus::Success },
        error_message: None,
        user_id: Some("alice".into()),
        session_id: Some("session-1".into()),
        trace_id: format!("{n:032x}"),
        started_at: time(n),
        completed_at: time(n) + TimeDelta::milliseconds(3),
        duration_ms: 3,
        hook_events: Vec::new(),
    }
}

fn ai_request(n: usize) -> NewAiRequest {
    NewAiRequest {
        user_id: Some("alice".into()),
        api_key_id: None,
        session_id: None,
        trace_id: format!("{:032x}", n + 1_000_000),
        endpoint: "messages".into(),
        provider: "anthropic".into(),
        model: "claude-sonnet".into(),
        upstream_model: "claude-sonnet-4".into(),
        streamed: n.is_multiple_of(2),
        started_at: time(n),
    }
}

fn completion(n: usize) -> AiCompletion {
    AiCompletion {
        provider: None,
        upstream_model: None,
        input_tokens: Some(11),
        output_tokens: Some(i64::try_from(n).expect("small")),
        cache_read_tokens: None,
        cache_write_tokens: None,
        cost_microdollars: Some(42),
        latency_ms: Some(120),
        ttft_ms: Some(30),
        status: AiRequestStatus::Success,
        error_message: None,
        completed_at: time(n) + TimeDelta::milliseconds(120),
    }
}

fn hook_event(n: usize, reason: &str) -> HookEventRow {
    HookEventRow {
        id: 0,
        event: "PreToolUse".into(),
        decision: if n.is_multiple_of(3) { "deny".into() } else { "allow".into() },
        handler: "builtin:deny_tools".into(),
        reason: Some(reason.to_string()),
        server: Some("customers".into()),
        tool: Some("delete_customer".into()),
        user_id: Some("bob".into()),
        trace_id: format!("{:032x}", n + 2_000_000),
        created_at: time(n),
    }
}

fn sink(name: &str, kind: SinkKind, fake: &FakeSink, tables: &[ForwardTable], batch: usize) -> Sink {
    Sink { name: name.to_string(), kind, url: fake.url(), token: TOKEN.to_string(), tables: tables.to_vec(), batch }
}

fn received(fake: &FakeSink) -> BTreeSet<String> {
    fake.keys().into_iter().collect()
}

fn every_row_arrives_exactly_once_at_each_kind_of_sink(database: Database) {
    run(async {
        let rows = Rows::fresh(database).await;
        rows.audit(1500, "customer 1").await;
        rows.ai_requests(700).await;
        rows.hook_events(800, "not on a weekday").await;
        let mut expected = rows.keys(ForwardTable::Audit, 1..=1500).await;
        expected.extend(rows.keys(ForwardTable::AiRequests, 1..=700).await);
        expected.extend(rows.keys(ForwardTable::HookEvents, 1..=800).await);
        for kind in SinkKind::ALL {
            let fake = FakeSink::start(TOKEN);
            let sink = sink(&format!("siem-{kind}"), kind, &fake, &ForwardTable::ALL, 250);
            let report = rows.forward(&sink).await.unwrap_or_else(|error| panic!("{kind}: {error}"));
            assert!(report.caught_up(), "{kind}: {report}");
            assert_eq!(report.sent(), 3000, "{kind}: {report}");
            assert_eq!(received(&fake), expected, "{kind}: every row's key, and nothing else");
            let stats = fake.stats();
            assert_eq!(stats["duplicates"], json!(0), "{kind}: {stats}");
            assert_eq!(stats["without_key"], json!(0), "{kind}: {stats}");
            // 1500/250 + 700/250 (3) + 800/250 (4): one request per batch.
            assert_eq!(stats["requests"], json!(13), "{kind}: {stats}");
            for (table, last) in
                [(ForwardTable::Audit, 1500), (ForwardTable::AiRequests, 700), (ForwardTable::HookEvents, 800)]
            {
                assert_eq!(rows.cursor(&sink, table).await, last, "{kind}: the cursor of {table}");
                assert_eq!(report.table(table).map(|table| table.cursor), Some(last), "{kind}: {report}");
            }
            let again = rows.forward(&sink).await.expect("a second run");
            assert_eq!(again.sent(), 0, "{kind}: nothing new: {again}");
            assert_eq!(fake.stats()["requests"], json!(13), "{kind}: a caught-up run sends nothing");
        }
    });
}

#[test]
fn every_row_arrives_exactly_once_at_each_kind_of_sink_sqlite() {
    every_row_arrives_exactly_once_at_each_kind_of_sink(Database::Sqlite);
}

#[test]
fn every_row_arrives_exactly_once_at_each_kind_of_sink_postgres() {
    every_row_arrives_exactly_once_at_each_kind_of_sink(Database::Postgres);
}

/// What the fake sink received of each kind's first audit event, parsed back from its body.
fn first_audit_event(fake: &FakeSink, kind: SinkKind) -> Value {
    let body = fake.bodies().first().and_then(|request| request["body"].as_str().map(str::to_string)).expect("a body");
    match kind {
        SinkKind::SplunkHec => {
            let first = serde_json::Deserializer::from_str(&body).into_iter::<Value>().next().expect("an event");
            first.expect("JSON")["event"].clone()
        }
        SinkKind::DatadogLogs => {
            let logs: Value = serde_json::from_str(&body).expect("JSON");
            serde_json::from_str(logs[0]["message"].as_str().expect("a message")).expect("a JSON message")
        }
        SinkKind::OtlpLogs => {
            let request: Value = serde_json::from_str(&body).expect("JSON");
            let record = &request["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
            serde_json::from_str(record["body"]["stringValue"].as_str().expect("a body")).expect("a JSON body")
        }
    }
}

#[test]
fn an_audit_event_carries_the_row_as_stored() {
    run(async {
        let rows = Rows::fresh(Database::Sqlite).await;
        rows.audit(3, "customer 1").await;
        let stored = castellan_schema::audit::tail(&rows.db, &Default::default()).await.expect("the rows");
        let first = stored.first().expect("a row");
        for kind in SinkKind::ALL {
            let fake = FakeSink::start(TOKEN);
            rows.forward(&sink(&format!("shape-{kind}"), kind, &fake, &[ForwardTable::Audit], 10)).await.expect("sent");
            let event = first_audit_event(&fake, kind);
            assert_eq!(event["id"], json!(first.id), "{kind}: {event}");
            assert_eq!(event["row_hash"], json!(first.row_hash), "{kind}");
            assert_eq!(event["prev_hash"], json!(first.prev_hash), "{kind}");
            assert_eq!(event["input"], json!(first.input), "{kind}: the input as stored");
            assert_eq!(event["output"], json!(first.output), "{kind}: the output as stored");
            assert_eq!(event["status"], json!("denied"), "{kind}");
            assert_eq!(event["user_id"], json!("alice"), "{kind}");
            assert_eq!(event["trace_id"], json!(first.trace_id), "{kind}");
            assert_eq!(event["duration_ms"], json!(3), "{kind}");
            assert!(event["started_at"].as_str().is_some_and(|at| at.ends_with('Z')), "{kind}: {event}");
        }
    });
}

#[test]
fn a_sink_answering_503_mid_stream_holds_the_cursor_and_loses_nothing() {
    run(async {
        let rows = Rows::fresh(Database::Sqlite).await;
        rows.audit(1000, "customer 1").await;
        let fake = FakeSink::start(TOKEN);
        let sink = sink("down", SinkKind::SplunkHec, &fake, &[ForwardTable::Audit], 100);
        fake.fail(json!({"status": 503, "after": 3}));
        let started = Instant::now();
        let error = rows.forward(&sink).await.expect_err("the sink stays down");
        assert!(
            matches!(error, ForwardError::Unavailable { attempts: 4, delivered: 300, cursor: 300, .. }),
            "{error:?}"
        );
        assert!(started.elapsed() >= Duration::from_millis(1000), "it backed off between attempts");
        assert!(!error.to_string().contains(TOKEN), "{error}");
        assert_eq!(rows.cursor(&sink, ForwardTable::Audit).await, 300, "the cursor holds at the last 2xx");
        assert_eq!(fake.stats()["statuses"]["503"], json!(4), "one request, tried four times");
        fake.recover();
        let report = rows.forward(&sink).await.expect("the sink is back");
        assert_eq!(report.sent(), 700, "{report}");
        assert_eq!(received(&fake), rows.keys(ForwardTable::Audit, 1..=1000).await);
        assert_eq!(fake.stats()["duplicates"], json!(0), "a 503 accepted nothing, so nothing is sent twice");
    });
}

#[test]
fn a_sink_that_crashes_before_answering_and_restarts_gets_every_row() {
    run(async {
        let rows = Rows::fresh(Database::Sqlite).await;
        rows.hook_events(1000, "reason").await;
        let mut fake = FakeSink::start(TOKEN);
        let sink = sink("crashing", SinkKind::DatadogLogs, &fake, &[ForwardTable::HookEvents], 100);
        // The fifth request is committed by the sink, which dies before it answers.
        fake.fail(json!({"crash": true, "after": 4}));
        let error = rows.forward(&sink).await.expect_err("the sink died");
        assert!(matches!(error, ForwardError::Unavailable { cursor: 400, .. }), "{error:?}");
        fake.wait_exit(Duration::from_secs(5));
        assert_eq!(rows.cursor(&sink, ForwardTable::HookEvents).await, 400);
        fake.restart();
        assert_eq!(fake.url(), sink.url, "the same port");
        let report = rows.forward(&sink).await.expect("the sink is back");
        assert_eq!(report.sent(), 600, "{report}");
        assert_eq!(received(&fake), rows.keys(ForwardTable::HookEvents, 1..=1000).await, "every key, once");
        let stats = fake.stats();
        assert_eq!(stats["duplicates"], json!(100), "the batch it committed before dying came again: {stats}");
    });
}

#[test]
fn a_batch_the_sink_rejects_is_reported_and_passed_over() {
    run(async {
        let rows = Rows::fresh(Database::Sqlite).await;
        rows.hook_events(500, "reason").await;
        for kind in SinkKind::ALL {
            let fake = FakeSink::start(TOKEN);
            let sink = sink(&format!("picky-{kind}"), kind, &fake, &[ForwardTable::HookEvents], 100);
            fake.fail(json!({"status": 400, "after": 2, "count": 1}));
            let report = rows.forward(&sink).await.unwrap_or_else(|error| panic!("{kind}: {error}"));
            let rejected: Vec<_> = report.rejected().collect();
            assert_eq!(rejected.len(), 1, "{kind}: {report}");
            let batch = rejected[0];
            assert_eq!((batch.first_id, batch.last_id, batch.status), (201, 300, 400), "{kind}: {report}");
            assert!(!batch.excerpt.is_empty(), "{kind}: the sink's answer is quoted: {report}");
            assert!(report.to_string().contains("rejected 201-300 (HTTP 400"), "{kind}: {report}");
            assert_eq!(report.sent(), 400, "{kind}: {report}");
            assert_eq!(rows.cursor(&sink, ForwardTable::HookEvents).await, 500, "{kind}: passed over");
            let mut expected = rows.keys(ForwardTable::HookEvents, 1..=200).await;
            expected.extend(rows.keys(ForwardTable::HookEvents, 301..=500).await);
            assert_eq!(received(&fake), expected, "{kind}: everything but the rejected batch");
        }
    });
}

#[test]
fn a_refused_credential_stops_the_run_at_once_and_moves_no_cursor() {
    run(async {
        let rows = Rows::fresh(Database::Sqlite).await;
        rows.audit(50, "customer 1").await;
        let wrong = "wrong-token-5e884898da";
        for (kind, status) in [(SinkKind::SplunkHec, 403), (SinkKind::DatadogLogs, 403), (SinkKind::OtlpLogs, 401)] {
            // A careless sink quotes the credential it was given: the error must not repeat it.
            let fake = FakeSink::start_with(TOKEN, &["--echo-credential"]);
            let mut sink = sink(&format!("misconfigured-{kind}"), kind, &fake, &[ForwardTable::Audit], 10);
            sink.token = wrong.to_string();
            let started = Instant::now();
            let error = rows.forward(&sink).await.expect_err("the token is wrong");
            assert!(started.elapsed() < Duration::from_secs(1), "{kind}: no retries");
            let ForwardError::Misconfigured { status: got, cursor: 0, delivered: 0, .. } = &error else {
                panic!("{kind}: {error:?}");
            };
            assert_eq!(*got, status, "{kind}");
            let text = error.to_string();
            assert!(!text.contains(wrong) && !text.contains(TOKEN), "{kind}: {text}");
            assert!(!format!("{error:?}").contains(wrong), "{kind}: {error:?}");
            assert!(text.contains("check the sink's token"), "{kind}: {text}");
            assert_eq!(rows.cursor(&sink, ForwardTable::Audit).await, 0, "{kind}");
            assert_eq!(fake.stats()["requests"], json!(1), "{kind}: one request, no retries");
            assert_eq!(fake.stats()["received"], json!(0), "{kind}");
        }
    });
}

#[test]
fn a_secret_registered_after_the_row_was_written_never_reaches_the_sink() {
    const SECRET: &str = "sv-forward-canary-5b1e9d0c";
    run(async {
        let rows = Rows::fresh(Database::Sqlite).await;
        rows.audit(20, &format!("the key is {SECRET}!")).await;
        rows.hook_events(20, &format!("blocked {SECRET}")).await;
        redaction::install(Redactor::new([("canary", SECRET)]));
        for kind in SinkKind::ALL {
            let fake = FakeSink::start(TOKEN);
            let sink =
                sink(&format!("redacted-{kind}"), kind, &fake, &[ForwardTable::Audit, ForwardTable::HookEvents], 7);
            let report = rows.forward(&sink).await.unwrap_or_else(|error| panic!("{kind}: {error}"));
            assert_eq!(report.sent(), 40, "{kind}: {report}");
            let bodies = fake.bodies();
            assert!(!bodies.is_empty(), "{kind}");
            for request in &bodies {
                let body = request["body"].as_str().expect("a body");
                assert!(!body.contains(SECRET), "{kind}: the secret left: {body}");
                assert!(!body.contains("5b1e9d0c"), "{kind}: part of the secret left: {body}");
                assert!(body.contains("[REDACTED:canary]"), "{kind}: {body}");
            }
        }
        redaction::install(Redactor::default());
    });
}

#[test]
fn ai_requests_still_in_flight_hold_their_table_back_until_they_end() {
    run(async {
        let rows = Rows::fresh(Database::Sqlite).await;
        rows.ai_requests(3).await;
        let in_flight =
            castellan_schema::ai_requests::insert_started(&rows.db, &ai_request(3)).await.expect("a started row");
        rows.ai_requests(2).await;
        let fake = FakeSink::start(TOKEN);
        let sink = sink("ai", SinkKind::OtlpLogs, &fake, &[ForwardTable::AiRequests], 100);
        let report = rows.forward(&sink).await.expect("sent");
        let table = report.table(ForwardTable::AiRequests).expect("the table");
        assert_eq!((table.sent, table.cursor, table.held_at), (3, 3, Some(in_flight)), "{report}");
        assert!(report.to_string().contains(&format!("waiting for request {in_flight} to end")), "{report}");
        castellan_schema::ai_requests::complete(&rows.db, in_flight, &completion(3)).await.expect("completed");
        let report = rows.forward(&sink).await.expect("sent");
        assert_eq!(report.sent(), 3, "{report}");
        assert_eq!(received(&fake), rows.keys(ForwardTable::AiRequests, 1..=6).await);
    });
}

#[test]
fn a_row_committed_after_a_higher_id_is_not_skipped_on_postgres() {
    run(async {
        let rows = Rows::fresh(Database::Postgres).await;
        let fake = FakeSink::start(TOKEN);
        let sink = sink("late", SinkKind::SplunkHec, &fake, &[ForwardTable::HookEvents], 100);
        // A writer takes id 1 and has not committed; another commits id 2.
        let slow_writer = rows.db.begin().await.expect("a transaction");
        castellan_schema::hook_events::record_many(&slow_writer, &[hook_event(0, "slow")]).await.expect("id 1");
        rows.hook_events(1, "fast").await;
        let report = rows.forward(&sink).await.expect("a run");
        let table = report.table(ForwardTable::HookEvents).expect("the table");
        assert_eq!((table.sent, table.cursor, table.busy), (0, 0, true), "id 2 waits for id 1: {report}");
        slow_writer.commit().await.expect("id 1 commits");
        let report = rows.forward(&sink).await.expect("a run");
        assert_eq!(report.sent(), 2, "{report}");
        assert_eq!(received(&fake), rows.keys(ForwardTable::HookEvents, 1..=2).await);
    });
}

#[test]
fn a_run_stops_at_its_budget_and_the_next_one_goes_on() {
    run(async {
        let rows = Rows::fresh(Database::Sqlite).await;
        rows.audit(3000, "customer 1").await;
        let fake = FakeSink::start(TOKEN);
        let sink = sink("budget", SinkKind::SplunkHec, &fake, &[ForwardTable::Audit], 10);
        let first = forward_once(&rows.db, &rows.client, &sink, Duration::from_millis(50)).await.expect("a run");
        assert!(!first.caught_up(), "50 ms is not enough for 300 requests: {first}");
        assert!(first.to_string().contains("backlog left for the next run"), "{first}");
        let mut runs = 1;
        while !forward_once(&rows.db, &rows.client, &sink, Duration::from_millis(50)).await.expect("a run").caught_up()
        {
            runs += 1;
            assert!(runs < 1000, "the backlog drains");
        }
        assert_eq!(received(&fake), rows.keys(ForwardTable::Audit, 1..=3000).await);
        assert_eq!(fake.stats()["duplicates"], json!(0));
    });
}

/// The rows a second the throughput test requires: the target, 5,000, for an optimized build; a
/// test build is unoptimized (several times slower in serde and sea-orm) and shares two cores with
/// whatever else runs, so it only guards against a fall by an order of magnitude.
const MIN_ROWS_PER_SECOND: f64 = if cfg!(debug_assertions) { 2_500.0 } else { 5_000.0 };

/// 20,000 audit rows to the HEC fake in one run; prints the rate.
#[test]
fn forwarding_20000_audit_rows_to_splunk_hec_keeps_up() {
    run(async {
        let rows = Rows::fresh(Database::Sqlite).await;
        rows.audit(20_000, "customer 1: Ada Lovelace, ada@example.com, plan enterprise").await;
        let fake = FakeSink::start_with(TOKEN, &["--no-record"]);
        let sink = sink("throughput", SinkKind::SplunkHec, &fake, &[ForwardTable::Audit], 500);
        let started = Instant::now();
        let report = rows.forward(&sink).await.expect("sent");
        let elapsed = started.elapsed();
        assert!(report.caught_up(), "{report}");
        assert_eq!(fake.stats()["unique"], json!(20_000));
        let rate = 20_000.0 / elapsed.as_secs_f64();
        println!("forwarded 20000 audit rows to the HEC fake in {:.2} s: {rate:.0} rows/s", elapsed.as_secs_f64());
        assert!(rate >= MIN_ROWS_PER_SECOND, "{rate:.0} rows/s, below {MIN_ROWS_PER_SECOND}");
    });
}
