//! `ai_requests`: the started row, its one completion, refusals, crash recovery, and the reads
//! behind `castellan costs`, `/api/v1/ai-requests` and the budgets.

use castellan_schema::ai_requests::{
    self, AiCompletion, AiRequestFilter, AiRequestStatus, AiRequestWrite, AiRequestWritten, CostGroup, CostsBy,
    ERROR_MESSAGE_MAX_BYTES, INTERRUPTED_MESSAGE, NewAiRequest, SpendGroup,
};
use castellan_schema::{DbError, truncate_to_micros};
use chrono::{DateTime, TimeZone, Utc};

use crate::support::{TestDatabase, instant};

pub(crate) fn request(user: &str, model: &str, started_at: DateTime<Utc>) -> NewAiRequest {
    NewAiRequest {
        user_id: Some(user.to_owned()),
        api_key_id: Some(format!("key-{user}")),
        session_id: Some("session-1".to_owned()),
        trace_id: format!("trace-{user}-{}", started_at.timestamp()),
        endpoint: "messages".to_owned(),
        provider: if model.starts_with("gpt") { "openai" } else { "anthropic" }.to_owned(),
        model: model.to_owned(),
        upstream_model: format!("{model}-upstream"),
        streamed: true,
        started_at,
    }
}

pub(crate) fn success(cost: Option<i64>, completed_at: DateTime<Utc>) -> AiCompletion {
    AiCompletion {
        provider: None,
        upstream_model: None,
        input_tokens: Some(100),
        output_tokens: Some(20),
        cache_read_tokens: Some(5),
        cache_write_tokens: Some(1),
        cost_microdollars: cost,
        latency_ms: Some(250),
        ttft_ms: Some(40),
        status: AiRequestStatus::Success,
        error_message: None,
        completed_at,
    }
}

fn refusal(status: AiRequestStatus, at: DateTime<Utc>) -> AiCompletion {
    AiCompletion {
        input_tokens: None,
        output_tokens: None,
        cache_read_tokens: None,
        cache_write_tokens: None,
        cost_microdollars: None,
        latency_ms: Some(0),
        ttft_ms: None,
        status,
        error_message: Some(format!("refused: {}", status.as_str())),
        ..success(None, at)
    }
}

async fn all_rows(database: &TestDatabase) -> Vec<ai_requests::AiRequestRow> {
    ai_requests::list(&database.db, &AiRequestFilter { limit: 10_000, ..AiRequestFilter::default() })
        .await
        .expect("list")
}

/// A started row has no ending; the first completion fills it in, a second changes nothing.
pub async fn ai_requests_complete_once(database: TestDatabase) {
    let db = &database.db;
    let started_at = instant(0);
    let id = ai_requests::insert_started(db, &request("alice", "claude-sonnet-4-5", started_at)).await.expect("start");
    let rows = all_rows(&database).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!((row.id, row.status.as_str()), (id, "started"), "the started row");
    assert_eq!(row.started_at, truncate_to_micros(started_at), "started_at round trips to the microsecond");
    assert_eq!(
        (row.input_tokens, row.cost_microdollars, row.latency_ms, row.completed_at),
        (None, None, None, None),
        "nothing of the ending yet"
    );
    assert_eq!(row.api_key_id.as_deref(), Some("key-alice"), "the key is recorded");
    assert!(row.streamed, "streamed round trips");

    let completed_at = instant(3);
    let first = AiCompletion {
        upstream_model: Some("fallback-model".to_owned()),
        error_message: Some("x".repeat(ERROR_MESSAGE_MAX_BYTES * 4)),
        ..success(Some(1_234), completed_at)
    };
    assert!(ai_requests::complete(db, id, &first).await.expect("complete"), "the first completion wins");
    let second = AiCompletion { status: AiRequestStatus::ClientClosed, ..success(Some(99), instant(9)) };
    assert!(!ai_requests::complete(db, id, &second).await.expect("complete again"), "a second one changes nothing");
    assert!(!ai_requests::complete(db, id + 1000, &second).await.expect("unknown id"), "an unknown id: nothing");

    let row = all_rows(&database).await.remove(0);
    assert_eq!(row.status, "success", "the first completion's status stays");
    assert_eq!(row.cost_microdollars, Some(1_234), "and its cost");
    assert_eq!(
        (row.input_tokens, row.output_tokens, row.cache_read_tokens, row.cache_write_tokens),
        (Some(100), Some(20), Some(5), Some(1))
    );
    assert_eq!((row.latency_ms, row.ttft_ms), (Some(250), Some(40)), "timings");
    assert_eq!(row.completed_at, Some(truncate_to_micros(completed_at)), "completed_at");
    assert_eq!(row.upstream_model, "fallback-model", "a fallback's model replaces the routed one");
    assert_eq!(row.provider, "anthropic", "an unchanged provider stays");
    let message = row.error_message.expect("an error message");
    assert!(message.len() <= ERROR_MESSAGE_MAX_BYTES, "the message is bounded: {} bytes", message.len());
    assert!(message.contains("truncated"), "and says it was cut: {message}");

    let not_an_ending = AiCompletion { status: AiRequestStatus::Started, ..success(None, completed_at) };
    let other = ai_requests::insert_started(db, &request("bob", "gpt-5", started_at)).await.expect("start");
    let error = ai_requests::complete(db, other, &not_an_ending).await.expect_err("`started` is not an ending");
    assert!(matches!(error, DbError::Other(_)), "{error:?}");
}

/// Refusals are one finished row; a batch applies starts, completions and finishes in one
/// transaction, in order, with an id for each insert.
pub async fn ai_requests_finished_rows_and_batches(database: TestDatabase) {
    let db = &database.db;
    let denied = ai_requests::insert_finished(
        db,
        &request("alice", "claude-opus-4-1", instant(0)),
        &refusal(AiRequestStatus::Denied, instant(0)),
    )
    .await
    .expect("finish");
    let started = ai_requests::insert_started(db, &request("bob", "gpt-5", instant(1))).await.expect("start");
    let writes = vec![
        AiRequestWrite::Start(request("carol", "gpt-5", instant(2))),
        AiRequestWrite::Complete { id: started, completion: success(None, instant(3)) },
        AiRequestWrite::Finish(
            request("dave", "gpt-5", instant(4)),
            refusal(AiRequestStatus::BudgetExceeded, instant(4)),
        ),
        AiRequestWrite::Complete { id: started, completion: success(Some(5), instant(5)) },
        AiRequestWrite::Start(request("erin", "gpt-5", instant(6))),
    ];
    let written = ai_requests::write_batch(db, &writes).await.expect("batch");
    let [
        AiRequestWritten::Inserted(carol),
        AiRequestWritten::Completed(true),
        AiRequestWritten::Inserted(dave),
        AiRequestWritten::Completed(false),
        AiRequestWritten::Inserted(erin),
    ] = written[..]
    else {
        panic!("unexpected batch outcome {written:?}");
    };
    let mut ids = vec![denied, started, carol, dave, erin];
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 5, "every insert has its own id");

    let rows = all_rows(&database).await;
    let status_of = |id: i64| rows.iter().find(|row| row.id == id).map(|row| row.status.clone());
    assert_eq!(status_of(denied).as_deref(), Some("denied"));
    assert_eq!(status_of(started).as_deref(), Some("success"), "the first completion in the batch won");
    assert_eq!(
        rows.iter().find(|row| row.id == started).and_then(|row| row.cost_microdollars),
        None,
        "unpriced stays NULL"
    );
    assert_eq!(status_of(carol).as_deref(), Some("started"));
    assert_eq!(status_of(dave).as_deref(), Some("budget_exceeded"));
    assert_eq!(status_of(erin).as_deref(), Some("started"));
    let dave_row = rows.iter().find(|row| row.id == dave).expect("dave's row");
    assert_eq!(dave_row.completed_at, Some(truncate_to_micros(instant(4))), "a finished row is completed");

    let refused = [
        AiRequestWrite::Start(request("frank", "gpt-5", instant(7))),
        AiRequestWrite::Complete {
            id: carol,
            completion: AiCompletion { status: AiRequestStatus::Started, ..success(None, instant(8)) },
        },
    ];
    ai_requests::write_batch(db, &refused).await.expect_err("a batch with a non-ending completion is refused");
    assert_eq!(all_rows(&database).await.len(), rows.len(), "and writes nothing");
    assert!(ai_requests::write_batch(db, &[]).await.expect("empty").is_empty());
}

/// Rows a crash left `started` become `failed`, and a late completion no longer changes them.
pub async fn ai_requests_mark_interrupted(database: TestDatabase) {
    let db = &database.db;
    let left = ai_requests::insert_started(db, &request("alice", "gpt-5", instant(0))).await.expect("start");
    let also_left = ai_requests::insert_started(db, &request("bob", "gpt-5", instant(1))).await.expect("start");
    let done = ai_requests::insert_started(db, &request("carol", "gpt-5", instant(2))).await.expect("start");
    assert!(ai_requests::complete(db, done, &success(Some(7), instant(3))).await.expect("complete"));

    let now = instant(10);
    assert_eq!(ai_requests::mark_interrupted(db, now, now).await.expect("mark"), 2, "the two started rows");
    assert_eq!(ai_requests::mark_interrupted(db, now, now).await.expect("mark again"), 0, "nothing left");
    let rows = all_rows(&database).await;
    for id in [left, also_left] {
        let row = rows.iter().find(|row| row.id == id).expect("row");
        assert_eq!(row.status, "failed", "{row:?}");
        assert_eq!(row.error_message.as_deref(), Some(INTERRUPTED_MESSAGE));
        assert_eq!(row.completed_at, Some(truncate_to_micros(now)));
    }
    let row = rows.iter().find(|row| row.id == done).expect("row");
    assert_eq!((row.status.as_str(), row.cost_microdollars), ("success", Some(7)), "a completed row is untouched");
    assert!(!ai_requests::complete(db, left, &success(Some(1), now)).await.expect("late"), "too late to complete");
}

/// Newest first; since, user, status and limit narrow it.
pub async fn ai_requests_list_filters(database: TestDatabase) {
    let db = &database.db;
    for (index, user) in ["alice", "bob", "alice", "carol", "alice"].into_iter().enumerate() {
        let row = request(user, "gpt-5", instant(index as i64 * 60));
        if index % 2 == 0 {
            ai_requests::insert_finished(db, &row, &success(Some(10), instant(index as i64 * 60 + 1)))
                .await
                .expect("finish");
        } else {
            ai_requests::insert_started(db, &row).await.expect("start");
        }
    }
    let all = all_rows(&database).await;
    let times: Vec<DateTime<Utc>> = all.iter().map(|row| row.started_at).collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");
    assert_eq!(all.len(), 5);

    let cases: [(AiRequestFilter, usize, &str); 5] = [
        (AiRequestFilter { user: Some("alice".into()), ..AiRequestFilter::default() }, 3, "alice's"),
        (AiRequestFilter { status: Some(AiRequestStatus::Started), ..AiRequestFilter::default() }, 2, "started"),
        (AiRequestFilter { since: Some(instant(120)), ..AiRequestFilter::default() }, 3, "since the third (inclusive)"),
        (AiRequestFilter { limit: 2, ..AiRequestFilter::default() }, 2, "the limit"),
        (
            AiRequestFilter {
                user: Some("alice".into()),
                status: Some(AiRequestStatus::Success),
                since: Some(instant(60)),
                limit: 100,
            },
            2,
            "all three filters",
        ),
    ];
    for (filter, expected, what) in cases {
        let rows = ai_requests::list(db, &filter).await.expect("list");
        assert_eq!(rows.len(), expected, "{what}: {rows:?}");
    }
    let newest =
        ai_requests::list(db, &AiRequestFilter { limit: 1, ..AiRequestFilter::default() }).await.expect("list");
    assert_eq!(newest[0].started_at, truncate_to_micros(instant(240)), "the limit keeps the newest");
}

fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day, hour, minute, 0).single().expect("a valid instant")
        + chrono::TimeDelta::microseconds(654_321)
}

/// Spend grouped by user, model, provider and UTC day; unpriced requests counted, never as $0.
pub async fn ai_requests_costs_group_and_count_unpriced(database: TestDatabase) {
    let db = &database.db;
    let finished = [
        // (user, model, started, completion)
        ("alice", "claude-sonnet-4-5", at(1, 23, 59), success(Some(1_500_000), at(2, 0, 0))),
        ("alice", "gpt-5", at(2, 0, 1), success(Some(250), at(2, 0, 2))),
        ("bob", "claude-sonnet-4-5", at(2, 12, 0), success(None, at(2, 12, 1))),
        ("bob", "claude-sonnet-4-5", at(2, 13, 0), refusal(AiRequestStatus::BudgetExceeded, at(2, 13, 0))),
        (
            "alice",
            "claude-sonnet-4-5",
            at(3, 0, 0),
            AiCompletion {
                status: AiRequestStatus::ClientClosed,
                ..refusal(AiRequestStatus::ClientClosed, at(3, 0, 1))
            },
        ),
        // Before the window.
        ("carol", "gpt-5", at(1, 0, 0), success(Some(9_999_999), at(1, 0, 1))),
    ];
    for (user, model, started_at, completion) in &finished {
        ai_requests::insert_finished(db, &request(user, model, *started_at), completion).await.expect("finish");
    }
    // In flight: counted as a request, not as unpriced.
    ai_requests::insert_started(db, &request("bob", "gpt-5", at(3, 1, 0))).await.expect("start");
    let since = at(1, 12, 0);

    let group = |key: &str, requests, tokens: [i64; 4], cost, unpriced| CostGroup {
        key: key.to_owned(),
        requests,
        input_tokens: tokens[0],
        output_tokens: tokens[1],
        cache_read_tokens: tokens[2],
        cache_write_tokens: tokens[3],
        cost_microdollars: cost,
        unpriced_requests: unpriced,
    };
    let cases = [
        (
            CostsBy::User,
            None,
            vec![group("alice", 3, [200, 40, 10, 2], 1_500_250, 1), group("bob", 3, [100, 20, 5, 1], 0, 1)],
        ),
        (
            CostsBy::Model,
            None,
            vec![
                group("claude-sonnet-4-5", 4, [200, 40, 10, 2], 1_500_000, 2),
                group("gpt-5", 2, [100, 20, 5, 1], 250, 0),
            ],
        ),
        (
            CostsBy::Provider,
            None,
            vec![group("anthropic", 4, [200, 40, 10, 2], 1_500_000, 2), group("openai", 2, [100, 20, 5, 1], 250, 0)],
        ),
        (
            CostsBy::Day,
            None,
            vec![
                group("2026-03-01", 1, [100, 20, 5, 1], 1_500_000, 0),
                group("2026-03-02", 3, [200, 40, 10, 2], 250, 1),
                group("2026-03-03", 2, [0, 0, 0, 0], 0, 1),
            ],
        ),
        (
            CostsBy::Day,
            Some("bob"),
            vec![group("2026-03-02", 2, [100, 20, 5, 1], 0, 1), group("2026-03-03", 1, [0; 4], 0, 0)],
        ),
    ];
    for (by, user, expected) in cases {
        let groups = ai_requests::costs(db, by, since, user).await.expect("costs");
        assert_eq!(groups, expected, "costs by {} for {user:?}", by.as_str());
    }
    let everything = ai_requests::costs(db, CostsBy::User, at(1, 0, 0), None).await.expect("costs");
    assert_eq!(everything.first().map(|group| group.key.as_str()), Some("carol"), "the most expensive first");
    let nothing = ai_requests::costs(db, CostsBy::User, at(4, 0, 0), None).await.expect("costs");
    assert!(nothing.is_empty(), "an empty window: {nothing:?}");
}

/// What budgets load: known cost of ended requests since a time, per user, key and model.
pub async fn ai_requests_spend_since(database: TestDatabase) {
    let db = &database.db;
    let rows = [
        ("alice", "gpt-5", at(2, 0, 0), success(Some(100), at(2, 0, 1))),
        ("alice", "gpt-5", at(2, 1, 0), success(Some(23), at(2, 1, 1))),
        ("alice", "claude-sonnet-4-5", at(2, 2, 0), success(None, at(2, 2, 1))),
        ("bob", "gpt-5", at(2, 3, 0), success(Some(7), at(2, 3, 1))),
        ("bob", "gpt-5", at(1, 0, 0), success(Some(1_000), at(1, 0, 1))),
    ];
    for (user, model, started_at, completion) in &rows {
        ai_requests::insert_finished(db, &request(user, model, *started_at), completion).await.expect("finish");
    }
    let in_flight = ai_requests::insert_started(db, &request("bob", "gpt-5", at(2, 4, 0))).await.expect("start");
    let spend = |user: &str, model: &str, cost| SpendGroup {
        user_id: Some(user.to_owned()),
        api_key_id: Some(format!("key-{user}")),
        model: model.to_owned(),
        cost_microdollars: cost,
    };
    let since = at(1, 12, 0);
    assert_eq!(
        ai_requests::spend_since(db, since).await.expect("spend"),
        [spend("alice", "claude-sonnet-4-5", 0), spend("alice", "gpt-5", 123), spend("bob", "gpt-5", 7)],
        "grouped, the old row and the row in flight left out"
    );
    assert!(ai_requests::complete(db, in_flight, &success(Some(50), at(2, 5, 0))).await.expect("complete"));
    let after = ai_requests::spend_since(db, since).await.expect("spend");
    assert_eq!(after.last(), Some(&spend("bob", "gpt-5", 57)), "a completed request counts");
}

/// The same writes through the pool and through the SQLite writer's own connection read back the
/// same (ids and the session that tells them apart aside), with the same stored text in every
/// column; a batch the writer cannot store writes nothing, and the connection takes the next one.
pub async fn ai_requests_sqlite_writer_stores_what_the_pool_stores(database: TestDatabase) {
    use sea_orm::{ConnectionTrait, Statement};

    let db = &database.db;
    let path = castellan_schema::sqlite_file(&database.url).expect("a SQLite URL").expect("a file");
    let mut writer = ai_requests::SqliteAiWriter::open(&path).expect("open the writer");
    let via = |session: &str, user: &str, model: &str, at: i64| NewAiRequest {
        session_id: Some(session.to_owned()),
        ..request(user, model, instant(at))
    };
    let fallback = AiCompletion {
        provider: Some("openai".to_owned()),
        upstream_model: Some("fallback-model".to_owned()),
        error_message: Some("ü".repeat(ERROR_MESSAGE_MAX_BYTES)),
        ..success(Some(1_234), instant(3))
    };
    let mut ids = Vec::new();
    for session in ["pool", "direct"] {
        let first = vec![
            AiRequestWrite::Start(via(session, "alice", "claude-sonnet-4-5", 0)),
            AiRequestWrite::Finish(via(session, "bob", "gpt-5", 1), refusal(AiRequestStatus::RateLimited, instant(1))),
            AiRequestWrite::Start(NewAiRequest { user_id: None, streamed: false, ..via(session, "carol", "gpt-5", 2) }),
        ];
        let written = if session == "pool" {
            ai_requests::write_batch(db, &first).await.expect("the pool's batch")
        } else {
            writer.write_batch(&first.iter().collect::<Vec<_>>()).expect("the writer's batch")
        };
        let [AiRequestWritten::Inserted(alice), AiRequestWritten::Inserted(_), AiRequestWritten::Inserted(carol)] =
            written[..]
        else {
            panic!("unexpected batch outcome {written:?}");
        };
        ids.push((alice, carol));
        let second = vec![
            AiRequestWrite::Complete { id: alice, completion: fallback.clone() },
            AiRequestWrite::Complete { id: alice, completion: success(Some(9), instant(4)) },
            AiRequestWrite::Complete { id: carol, completion: refusal(AiRequestStatus::ClientClosed, instant(5)) },
            AiRequestWrite::Complete { id: carol + 1_000, completion: success(None, instant(5)) },
        ];
        let written = if session == "pool" {
            ai_requests::write_batch(db, &second).await.expect("the pool's completions")
        } else {
            writer.write_batch(&second.iter().collect::<Vec<_>>()).expect("the writer's completions")
        };
        assert_eq!(
            written,
            [true, false, true, false].map(AiRequestWritten::Completed),
            "{session}: the first completion of a started row wins, an unknown id changes nothing"
        );
    }

    let rows = all_rows(&database).await;
    assert_eq!(rows.len(), 6, "{rows:?}");
    let normalized = |session: &str| {
        let mut of_session: Vec<_> = rows
            .iter()
            .filter(|row| row.session_id.as_deref() == Some(session))
            .map(|row| ai_requests::AiRequestRow { id: 0, session_id: None, ..row.clone() })
            .collect();
        of_session.sort_by(|a, b| a.trace_id.cmp(&b.trace_id));
        of_session
    };
    assert_eq!(normalized("direct"), normalized("pool"), "both paths store the same rows");
    let alice = rows.iter().find(|row| row.id == ids[1].0).expect("alice's direct row");
    assert_eq!((alice.provider.as_str(), alice.upstream_model.as_str()), ("openai", "fallback-model"));
    assert!(alice.error_message.as_ref().is_some_and(|message| message.len() <= ERROR_MESSAGE_MAX_BYTES));

    // The stored text itself, which the reads compare as text (`since`, interruption).
    let stored = |session: &'static str| {
        let statement = Statement::from_sql_and_values(
            sea_orm::DbBackend::Sqlite,
            "SELECT trace_id, started_at, completed_at, typeof(streamed), streamed FROM ai_requests \
             WHERE session_id = ? ORDER BY trace_id",
            [session.into()],
        );
        async move {
            db.query_all_raw(statement)
                .await
                .expect("raw rows")
                .iter()
                .map(|row| {
                    let text = |column: &str| row.try_get::<Option<String>>("", column).expect(column);
                    (
                        text("started_at"),
                        text("completed_at"),
                        text("typeof(streamed)"),
                        row.try_get::<i64>("", "streamed").expect("streamed"),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(stored("direct").await, stored("pool").await, "the same stored text");

    let refused = [
        AiRequestWrite::Start(via("direct", "dave", "gpt-5", 6)),
        AiRequestWrite::Complete {
            id: ids[1].1,
            completion: AiCompletion { status: AiRequestStatus::Started, ..success(None, instant(8)) },
        },
    ];
    writer.write_batch(&refused.iter().collect::<Vec<_>>()).expect_err("a batch with a non-ending completion");
    database.execute("ALTER TABLE ai_requests RENAME TO ai_requests_away").await;
    let failed = writer.write_batch(&[&refused[0]]);
    database.execute("ALTER TABLE ai_requests_away RENAME TO ai_requests").await;
    assert!(failed.is_err(), "a missing table fails the batch: {failed:?}");
    assert_eq!(all_rows(&database).await.len(), 6, "neither wrote anything");
    writer.checkpoint().expect("a checkpoint");
    writer.ping().expect("a ping");
    assert_eq!(writer.write_batch(&[&refused[0]]).expect("the next batch").len(), 1, "the next batch goes in");
    assert_eq!(all_rows(&database).await.len(), 7);
}
