//! The audit trail: hash-chained inserts, verification and tailing.

use castellan_schema::audit::{
    self, ChainBreakReason, ExecutionKind, ExecutionRow, ExecutionStatus, GENESIS_HASH, NewExecution, TailFilter,
};
use castellan_schema::entity::mcp_tool_executions;
use castellan_schema::{DbError, truncate_to_micros};
use sea_orm::{ActiveValue, EntityTrait};

use crate::support::{TestDatabase, instant};

pub fn execution(index: i64, user: &str, server: &str, tool: &str) -> NewExecution {
    let started_at = instant(index);
    NewExecution {
        server: server.to_owned(),
        tool: tool.to_owned(),
        kind: ExecutionKind::Tool,
        input: format!(r#"{{"id":{index}}}"#),
        output: (index % 2 == 0).then(|| format!(r#"{{"result":{index}}}"#)),
        status: if index % 3 == 0 { ExecutionStatus::ToolError } else { ExecutionStatus::Success },
        error_message: (index % 3 == 0).then(|| format!("failure {index}")),
        user_id: Some(user.to_owned()),
        session_id: (index % 2 == 1).then(|| format!("session-{index}")),
        trace_id: format!("trace-{index}"),
        started_at,
        completed_at: started_at + chrono::TimeDelta::milliseconds(7),
        duration_ms: 7,
        hook_events: Vec::new(),
    }
}

/// Rows of every kind in turn, so that storing, reading back and verifying cover the `kind` column.
fn executions(count: i64) -> Vec<NewExecution> {
    let kinds = [ExecutionKind::Tool, ExecutionKind::Resource, ExecutionKind::Prompt];
    (0..count)
        .map(|index| NewExecution {
            kind: kinds[index as usize % kinds.len()],
            ..execution(index, "alice", "customers", "get_customer")
        })
        .collect()
}

/// Inserts `count` rows in two batches and returns their ids.
async fn seed(database: &TestDatabase, count: i64) -> Vec<i64> {
    let rows = executions(count);
    let (first, second) = rows.split_at(rows.len() / 2);
    let (mut ids, hash) = audit::insert_batch(&database.db, GENESIS_HASH, first).await.expect("first batch");
    let (more_ids, _) = audit::insert_batch(&database.db, &hash, second).await.expect("second batch");
    ids.extend(more_ids);
    let report = audit::verify(&database.db, None).await.expect("verify");
    assert!(report.is_intact(), "freshly written chain verifies: {report:?}");
    ids
}

async fn first_break(database: &TestDatabase) -> (i64, ChainBreakReason) {
    let report = audit::verify(&database.db, None).await.expect("verify");
    let Some(broken) = report.first_broken.clone() else { panic!("the chain must be reported broken: {report:?}") };
    (broken.id, broken.reason)
}

fn assert_row_matches(stored: &ExecutionRow, written: &NewExecution) {
    let expected = NewExecution {
        started_at: truncate_to_micros(written.started_at),
        completed_at: truncate_to_micros(written.completed_at),
        ..written.clone()
    };
    let read_back = NewExecution {
        server: stored.server.clone(),
        tool: stored.tool.clone(),
        kind: match stored.kind.as_str() {
            "resource" => ExecutionKind::Resource,
            "prompt" => ExecutionKind::Prompt,
            _ => ExecutionKind::Tool,
        },
        input: stored.input.clone(),
        output: stored.output.clone(),
        status: ExecutionStatus::parse(&stored.status).expect("a known status"),
        error_message: stored.error_message.clone(),
        user_id: stored.user_id.clone(),
        session_id: stored.session_id.clone(),
        trace_id: stored.trace_id.clone(),
        started_at: stored.started_at,
        completed_at: stored.completed_at,
        duration_ms: stored.duration_ms,
        hook_events: Vec::new(),
    };
    assert_eq!(read_back, expected, "row {} reads back as written", stored.id);
}

pub async fn audit_empty_trail_verifies(database: TestDatabase) {
    assert_eq!(audit::last_hash(&database.db).await.expect("last hash"), GENESIS_HASH);
    let report = audit::verify(&database.db, None).await.expect("verify");
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.rows_checked, 0);
    let (ids, hash) = audit::insert_batch(&database.db, GENESIS_HASH, &[]).await.expect("empty batch");
    assert!(ids.is_empty());
    assert_eq!(hash, GENESIS_HASH, "an empty batch leaves the head alone");
}

pub async fn audit_insert_batch_round_trips_and_verifies(database: TestDatabase) {
    let db = &database.db;
    let rows = executions(5);
    let (first_ids, first_hash) = audit::insert_batch(db, GENESIS_HASH, &rows[..3]).await.expect("first batch");
    assert_eq!(first_ids.len(), 3);
    assert_eq!(audit::last_hash(db).await.expect("last hash"), first_hash);
    let (second_ids, second_hash) = audit::insert_batch(db, &first_hash, &rows[3..]).await.expect("second batch");
    assert_eq!(second_ids.len(), 2);
    assert_eq!(audit::last_hash(db).await.expect("last hash"), second_hash);
    let ids: Vec<i64> = first_ids.into_iter().chain(second_ids).collect();
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "ids increase: {ids:?}");

    let stored = audit::tail(db, &TailFilter::default()).await.expect("tail");
    assert_eq!(stored.iter().map(|row| row.id).collect::<Vec<_>>(), ids, "newest last");
    let mut expected_prev = GENESIS_HASH.to_owned();
    for (row, written) in stored.iter().zip(&rows) {
        assert_row_matches(row, written);
        assert_eq!(row.prev_hash, expected_prev, "row {} links to its predecessor", row.id);
        assert_eq!(row.row_hash, audit::chain_hash(&row.prev_hash, written), "row {} hash", row.id);
        expected_prev = row.row_hash.clone();
    }
    assert_eq!(expected_prev, second_hash);

    let report = audit::verify(db, None).await.expect("verify");
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.rows_checked, 5);
    assert_eq!(report.last_good_id, ids.last().copied());
}

pub async fn audit_detects_edited_row(database: TestDatabase) {
    let ids = seed(&database, 5).await;
    let edited = database
        .execute(&format!("UPDATE mcp_tool_executions SET output = '{{\"result\":\"forged\"}}' WHERE id = {}", ids[2]))
        .await;
    assert_eq!(edited, 1);
    let (id, reason) = first_break(&database).await;
    assert_eq!(id, ids[2], "the edited row is reported");
    assert!(matches!(reason, ChainBreakReason::RowHashMismatch { .. }), "{reason:?}");
}

/// An attacker who also recomputes the edited row's hash breaks the next row's link.
pub async fn audit_detects_edited_row_with_recomputed_hash(database: TestDatabase) {
    let ids = seed(&database, 5).await;
    let rows = audit::tail(&database.db, &TailFilter::default()).await.expect("tail");
    let mut forged = executions(5).remove(2);
    forged.output = Some("{}".to_owned());
    let forged_hash = audit::chain_hash(&rows[2].prev_hash, &forged);
    database
        .execute(&format!(
            "UPDATE mcp_tool_executions SET output = '{{}}', row_hash = '{forged_hash}' WHERE id = {}",
            ids[2]
        ))
        .await;
    let (id, reason) = first_break(&database).await;
    assert_eq!(id, ids[3], "the row after the rewritten one is reported");
    assert!(matches!(reason, ChainBreakReason::PrevHashMismatch { .. }), "{reason:?}");
}

pub async fn audit_detects_deleted_middle_row(database: TestDatabase) {
    let ids = seed(&database, 5).await;
    database.execute(&format!("DELETE FROM mcp_tool_executions WHERE id = {}", ids[2])).await;
    let (id, reason) = first_break(&database).await;
    assert_eq!(id, ids[3], "the row after the deleted one is reported");
    assert!(matches!(reason, ChainBreakReason::PrevHashMismatch { .. }), "{reason:?}");
}

pub async fn audit_detects_deleted_first_row(database: TestDatabase) {
    let ids = seed(&database, 3).await;
    database.execute(&format!("DELETE FROM mcp_tool_executions WHERE id = {}", ids[0])).await;
    let (id, reason) = first_break(&database).await;
    assert_eq!(id, ids[1], "the new first row does not start at genesis");
    assert!(matches!(reason, ChainBreakReason::PrevHashMismatch { .. }), "{reason:?}");
}

pub async fn audit_detects_deleted_last_row(database: TestDatabase) {
    let ids = seed(&database, 5).await;
    database.execute(&format!("DELETE FROM mcp_tool_executions WHERE id = {}", ids[4])).await;
    let (id, reason) = first_break(&database).await;
    assert_eq!(id, ids[4], "the recorded last row is reported missing");
    assert_eq!(reason, ChainBreakReason::RowsMissingAtEnd { last_present_id: Some(ids[3]) });
    database.execute("DELETE FROM mcp_tool_executions").await;
    let (id, reason) = first_break(&database).await;
    assert_eq!(id, ids[4]);
    assert_eq!(reason, ChainBreakReason::RowsMissingAtEnd { last_present_id: None });
}

pub async fn audit_chains_from_a_moved_head_and_a_failed_batch_writes_nothing(database: TestDatabase) {
    let db = &database.db;
    let ids = seed(&database, 2).await;
    // Another writer (a replica on the same database) moved the head: the batch chains from it.
    let (chained, _) =
        audit::insert_batch(db, GENESIS_HASH, &executions(1)).await.expect("chains from the stored head");
    assert!(chained[0] > ids[1], "appended after the other writer's rows");
    assert!(audit::verify(db, None).await.expect("verify").is_intact(), "the chain stays one line");
    let head = audit::last_hash(db).await.expect("last hash");
    // The second row's decision cannot be stored (its table is gone): the whole batch fails.
    let mut bad = executions(2);
    bad[1].hook_events = vec![decision("builtin:deny_tools", "trace-bad")];
    database.execute("ALTER TABLE hook_events RENAME TO hook_events_away").await;
    let refused = audit::insert_batch(db, &head, &bad).await;
    database.execute("ALTER TABLE hook_events_away RENAME TO hook_events").await;
    assert!(refused.is_err(), "the batch fails: {refused:?}");
    let stored = audit::tail(db, &TailFilter::default()).await.expect("tail");
    assert_eq!(stored.len(), ids.len() + 1, "nothing from a refused batch is written");
    assert!(audit::verify(db, None).await.expect("verify").is_intact(), "and the chain is whole");

    // Rows removed from the end: appending would hide it, so nothing is appended.
    let last = *chained.last().expect("id");
    database.execute(&format!("DELETE FROM mcp_tool_executions WHERE id = {last}")).await;
    let hidden = audit::insert_batch(db, &head, &executions(1)).await;
    assert!(matches!(hidden, Err(DbError::Other(_))), "a truncated chain is not extended: {hidden:?}");
    let (id, _) = first_break(&database).await;
    assert_eq!(id, last, "and verify still names the missing row");
    // A writer that starts after the truncation begins from the head record, so it refuses too.
    let restarted_from = audit::last_hash(db).await.expect("recorded head");
    let after_restart = audit::insert_batch(db, &restarted_from, &executions(1)).await;
    assert!(matches!(after_restart, Err(DbError::Other(_))), "refused after a restart too: {after_restart:?}");
}

/// Even a writer that bypasses `insert_batch` cannot fork the chain.
pub async fn audit_unique_indexes_prevent_a_fork(database: TestDatabase) {
    seed(&database, 2).await;
    let stored = audit::tail(&database.db, &TailFilter::default()).await.expect("tail");
    let row = &stored[1];
    let fork = |prev_hash: &str, row_hash: &str| mcp_tool_executions::ActiveModel {
        id: ActiveValue::NotSet,
        server: ActiveValue::Set(row.server.clone()),
        tool: ActiveValue::Set(row.tool.clone()),
        kind: ActiveValue::Set("tool".to_owned()),
        input: ActiveValue::Set("{}".to_owned()),
        output: ActiveValue::Set(None),
        status: ActiveValue::Set("success".to_owned()),
        error_message: ActiveValue::Set(None),
        user_id: ActiveValue::Set(None),
        session_id: ActiveValue::Set(None),
        trace_id: ActiveValue::Set("fork".to_owned()),
        started_at: ActiveValue::Set(row.started_at),
        completed_at: ActiveValue::Set(row.completed_at),
        duration_ms: ActiveValue::Set(0),
        prev_hash: ActiveValue::Set(prev_hash.to_owned()),
        row_hash: ActiveValue::Set(row_hash.to_owned()),
    };
    let cases = [
        ("same predecessor", fork(&row.prev_hash, &"e".repeat(64))),
        ("same hash", fork(&"f".repeat(64), &row.row_hash)),
    ];
    for (what, model) in cases {
        let result = mcp_tool_executions::Entity::insert(model).exec(&database.db).await;
        assert!(result.is_err(), "{what}: the unique index must refuse the row");
    }
}

pub async fn audit_tail_filters_and_follows(database: TestDatabase) {
    let db = &database.db;
    let rows = vec![
        execution(1, "alice", "customers", "get_customer"),
        execution(2, "bob", "customers", "delete_customer"),
        execution(3, "alice", "billing", "get_invoice"),
        execution(4, "alice", "customers", "get_customer"),
        execution(5, "bob", "billing", "get_invoice"),
    ];
    let (ids, _) = audit::insert_batch(db, GENESIS_HASH, &rows).await.expect("insert");
    let ids_of = |rows: Vec<ExecutionRow>| rows.into_iter().map(|row| row.id).collect::<Vec<_>>();
    let cases: Vec<(&str, TailFilter, Vec<i64>)> = vec![
        ("everything", TailFilter::default(), ids.clone()),
        ("newest two", TailFilter { limit: 2, ..TailFilter::default() }, vec![ids[3], ids[4]]),
        ("by user", TailFilter { user: Some("alice".into()), ..TailFilter::default() }, vec![ids[0], ids[2], ids[3]]),
        ("by server", TailFilter { server: Some("billing".into()), ..TailFilter::default() }, vec![ids[2], ids[4]]),
        (
            "by server and tool",
            TailFilter { server: Some("customers".into()), tool: Some("get_customer".into()), ..TailFilter::default() },
            vec![ids[0], ids[3]],
        ),
        (
            "after an id, oldest first",
            TailFilter { after_id: Some(ids[1]), limit: 2, ..TailFilter::default() },
            vec![ids[2], ids[3]],
        ),
        ("after the last id", TailFilter { after_id: Some(ids[4]), ..TailFilter::default() }, vec![]),
        ("no match", TailFilter { user: Some("carol".into()), ..TailFilter::default() }, vec![]),
    ];
    for (what, filter, expected) in cases {
        let found = ids_of(audit::tail(db, &filter).await.expect("tail"));
        assert_eq!(found, expected, "{what}");
    }
}

/// More rows than one verification page, so the walk crosses page boundaries.
pub async fn audit_verify_pages_through_many_rows(database: TestDatabase) {
    let db = &database.db;
    let rows: Vec<NewExecution> =
        (0..1_203).map(|index| execution(index, "alice", "customers", "list_customers")).collect();
    let mut hash = GENESIS_HASH.to_owned();
    let mut ids = Vec::new();
    for batch in rows.chunks(400) {
        let (batch_ids, batch_hash) = audit::insert_batch(db, &hash, batch).await.expect("batch");
        ids.extend(batch_ids);
        hash = batch_hash;
    }
    let report = audit::verify(db, None).await.expect("verify");
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.rows_checked, 1_203);
    database.execute(&format!("UPDATE mcp_tool_executions SET duration_ms = 8 WHERE id = {}", ids[1_100])).await;
    let (id, reason) = first_break(&database).await;
    assert_eq!(id, ids[1_100]);
    assert!(matches!(reason, ChainBreakReason::RowHashMismatch { .. }), "{reason:?}");
}

fn decision(handler: &str, trace: &str) -> castellan_schema::hook_events::HookEventRow {
    castellan_schema::hook_events::HookEventRow {
        id: 0,
        event: "PreToolUse".into(),
        decision: "allow".into(),
        handler: handler.into(),
        reason: None,
        server: Some("customers".into()),
        tool: Some("get_customer".into()),
        user_id: Some("alice".into()),
        trace_id: trace.into(),
        created_at: instant(0),
    }
}

/// The hook decisions of a call are stored with its row, in the same transaction: a refused batch
/// stores neither.
pub async fn audit_hook_events_commit_with_their_call(database: TestDatabase) {
    let db = &database.db;
    let mut rows = executions(2);
    rows[0].hook_events = vec![decision("builtin:deny_tools", "trace-0"), decision("http:x", "trace-0")];
    let (_, head) = audit::insert_batch(db, GENESIS_HASH, &rows).await.expect("batch");
    let stored = castellan_schema::hook_events::by_trace_id(db, "trace-0").await.expect("read");
    let handlers: Vec<&str> = stored.iter().map(|row| row.handler.as_str()).collect();
    assert_eq!(handlers, ["builtin:deny_tools", "http:x"], "both decisions stored with the call");
    assert!(audit::verify(db, None).await.expect("verify").is_intact(), "decisions are outside the chain");

    // A batch whose rows cannot be stored (their table is gone) stores no decision either.
    let mut refused = executions(1);
    refused[0].hook_events = vec![decision("builtin:deny_tools", "trace-refused")];
    database.execute("ALTER TABLE mcp_tool_executions RENAME TO executions_away").await;
    let failed = audit::insert_batch(db, &head, &refused).await;
    database.execute("ALTER TABLE executions_away RENAME TO mcp_tool_executions").await;
    assert!(failed.is_err(), "the batch fails");
    let orphaned = castellan_schema::hook_events::by_trace_id(db, "trace-refused").await.expect("read");
    assert!(orphaned.is_empty(), "a refused batch stores no decision either: {orphaned:?}");
}

/// The one-round-trip append writes when the head is the one the writer knows, and writes nothing
/// when it is not (another writer, or rows removed from the end), leaving that to `insert_batch`.
pub async fn audit_append_from_known_head_writes_only_on_the_known_head(database: TestDatabase) {
    let db = &database.db;
    let mut rows = executions(3);
    rows[1].hook_events = vec![castellan_schema::hook_events::HookEventRow {
        id: 0,
        event: "PreToolUse".into(),
        decision: "allow".into(),
        handler: "builtin:block_credentials".into(),
        reason: None,
        server: Some("customers".into()),
        tool: Some("get_customer".into()),
        user_id: Some("alice".into()),
        trace_id: "trace-1".into(),
        created_at: instant(1),
    }];
    let (first, head) = audit::append_from_known_head(db, GENESIS_HASH, &rows[..2])
        .await
        .expect("append")
        .expect("the empty chain's head is the genesis hash");
    assert_eq!(first.len(), 2, "two ids");
    assert!(first[0] < first[1], "in chain order");
    assert_eq!(audit::last_hash(db).await.expect("head"), head, "the head record follows");
    let decisions = castellan_schema::hook_events::by_trace_id(db, "trace-1").await.expect("read");
    assert_eq!(decisions.len(), 1, "the hook decision went in with its call");

    let stale = audit::append_from_known_head(db, GENESIS_HASH, &rows[2..]).await.expect("no error");
    assert_eq!(stale, None, "a stale head writes nothing");
    let stored = audit::tail(db, &TailFilter::default()).await.expect("tail");
    assert_eq!(stored.len(), 2, "nothing from the refused append");

    let (third, third_head) =
        audit::append_from_known_head(db, &head, &rows[2..]).await.expect("append").expect("known head");
    assert!(third[0] > first[1], "appended after");
    assert!(audit::verify(db, None).await.expect("verify").is_intact(), "one intact chain");

    // Rows removed from the end: the head went back, so nothing is appended here either.
    database.execute(&format!("DELETE FROM mcp_tool_executions WHERE id = {}", third[0])).await;
    let after_truncation = audit::append_from_known_head(db, &third_head, &executions(4)[3..]).await.expect("no error");
    assert_eq!(after_truncation, None, "a truncated chain is left to insert_batch, which refuses it");
}

/// A statement that fails halfway through the one-round-trip append leaves nothing behind: the
/// row that went in before it is rolled back, and the connection is fit for the next batch.
pub async fn audit_append_that_fails_halfway_writes_nothing(database: TestDatabase) {
    let db = &database.db;
    database.execute("DROP TABLE hook_events").await;
    let mut rows = executions(1);
    rows[0].hook_events = vec![castellan_schema::hook_events::HookEventRow {
        id: 0,
        event: "PreToolUse".into(),
        decision: "allow".into(),
        handler: "builtin:deny_tools".into(),
        reason: None,
        server: None,
        tool: None,
        user_id: None,
        trace_id: "trace-0".into(),
        created_at: instant(0),
    }];
    let failed = audit::insert_batch(db, GENESIS_HASH, &rows).await;
    assert!(failed.is_err(), "the hook rows have no table: {failed:?}");
    let stored = audit::tail(db, &TailFilter::default()).await.expect("tail");
    assert!(stored.is_empty(), "the row written before the failure was rolled back: {stored:?}");
    for _ in 0..6 {
        // More attempts than the pool has connections (4): none of them was handed back mid-transaction.
        let (ids, _) = audit::insert_batch(db, GENESIS_HASH, &executions(1)).await.expect("a batch without hooks");
        assert_eq!(ids.len(), 1);
        database.execute("DELETE FROM mcp_tool_executions").await;
        database.execute("DELETE FROM castellan_meta").await;
    }
}

/// The SQLite writer's own connection: what it appends reads back exactly as written (the same
/// stored text as the pool's path), its hook decisions go in with their call, a stale head writes
/// nothing, and the pool's careful path continues its chain (and it the pool's).
pub async fn audit_sqlite_appender_round_trips_and_continues_the_pools_chain(database: TestDatabase) {
    let db = &database.db;
    let path = castellan_schema::sqlite_file(&database.url).expect("a SQLite URL").expect("a file");
    let mut appender = audit::SqliteAppender::open(&path).expect("open the appender");
    let mut rows = executions(6);
    rows[1].hook_events = vec![decision("builtin:block_credentials", "trace-1")];
    let borrowed: Vec<&NewExecution> = rows[..3].iter().collect();
    let (first, head) = appender.append(GENESIS_HASH, &borrowed).expect("append").expect("the genesis head");
    assert_eq!(first.len(), 3, "three ids");
    assert_eq!(audit::last_hash(db).await.expect("head"), head, "the head record follows");
    let decisions = castellan_schema::hook_events::by_trace_id(db, "trace-1").await.expect("read");
    assert_eq!(decisions.len(), 1, "the hook decision went in with its call");
    assert_eq!(decisions[0].created_at, truncate_to_micros(rows[1].hook_events[0].created_at));

    let stale = appender.append(GENESIS_HASH, &[&rows[3]]).expect("no error");
    assert_eq!(stale, None, "a stale head writes nothing");
    let (_, pool_head) = audit::insert_batch(db, &head, &rows[3..5]).await.expect("the pool continues");
    let (last, _) = appender.append(&pool_head, &[&rows[5]]).expect("append").expect("the pool's head");
    let stored = audit::tail(db, &TailFilter::default()).await.expect("tail");
    assert_eq!(stored.len(), 6, "six rows");
    for (row, written) in stored.iter().zip(&rows) {
        // The decisions are rows of their own (checked above), not part of the execution row.
        assert_row_matches(row, &NewExecution { hook_events: Vec::new(), ..written.clone() });
    }
    assert_eq!(stored.last().map(|row| row.id), last.first().copied());
    let report = audit::verify(db, None).await.expect("verify");
    assert!(report.is_intact(), "one intact chain across both paths: {report:?}");
    assert_eq!(report.rows_checked, 6);
}

/// A batch the appender cannot store (its hook table is gone) stores nothing of it, and the
/// connection takes the next batch.
pub async fn audit_sqlite_appender_failing_halfway_writes_nothing(database: TestDatabase) {
    let db = &database.db;
    let path = castellan_schema::sqlite_file(&database.url).expect("a SQLite URL").expect("a file");
    let mut appender = audit::SqliteAppender::open(&path).expect("open the appender");
    let mut rows = executions(2);
    rows[0].hook_events = vec![decision("builtin:deny_tools", "trace-0")];
    database.execute("ALTER TABLE hook_events RENAME TO hook_events_away").await;
    let failed = appender.append(GENESIS_HASH, &[&rows[0]]);
    database.execute("ALTER TABLE hook_events_away RENAME TO hook_events").await;
    assert!(failed.is_err(), "the batch fails: {failed:?}");
    assert!(audit::tail(db, &TailFilter::default()).await.expect("tail").is_empty(), "its row was rolled back");
    appender.checkpoint().expect("a checkpoint");
    let (ids, _) = appender.append(GENESIS_HASH, &[&rows[1]]).expect("append").expect("still the genesis head");
    assert_eq!(ids.len(), 1, "the next batch goes in");
    assert!(audit::verify(db, None).await.expect("verify").is_intact());
}
