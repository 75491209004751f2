//! `castellan_schema::audit::prune`: old rows deleted a prefix at a time under a signed checkpoint,
//! and `verify` continuing from it.

use castellan_schema::DbError;
use castellan_schema::audit::{
    self, CHECKPOINT_KEY, ChainBreakReason, CheckpointKey, ExecutionRow, NewExecution, PruneOutcome, TailFilter,
    VerifyReport,
};
use castellan_schema::meta;
use castellan_schema::retention::PruneLimits;
use chrono::{DateTime, Utc};

use crate::audit_cases::execution;
use crate::support::{TestDatabase, instant};

fn key() -> CheckpointKey {
    CheckpointKey::from_bytes(&[0x5a; 32])
}

fn now() -> DateTime<Utc> {
    instant(100_000)
}

/// Rows that started at the given seconds after the base instant, in this order.
fn started_at(seconds: &[i64]) -> Vec<NewExecution> {
    seconds.iter().map(|second| execution(*second, "alice", "customers", "get_customer")).collect()
}

/// Appends `rows` after whatever the chain holds; returns their ids.
async fn append(database: &TestDatabase, rows: &[NewExecution]) -> Vec<i64> {
    let head = audit::last_hash(&database.db).await.expect("head");
    audit::insert_batch(&database.db, &head, rows).await.expect("append").0
}

/// `count` rows started 0, 1, 2, ... seconds after the base instant, in two batches.
async fn seed(database: &TestDatabase, count: i64) -> Vec<i64> {
    let rows = started_at(&(0..count).collect::<Vec<_>>());
    let (first, second) = rows.split_at(rows.len() / 2);
    let mut ids = append(database, first).await;
    ids.extend(append(database, second).await);
    ids
}

fn older_than(seconds: i64, batch: u64) -> PruneLimits {
    PruneLimits { older_than: instant(seconds), forwarded_up_to: None, batch, only_user: None }
}

async fn prune(database: &TestDatabase, limits: PruneLimits) -> PruneOutcome {
    audit::prune(&database.db, limits, &key(), now()).await.expect("prune")
}

async fn stored_rows(database: &TestDatabase) -> Vec<ExecutionRow> {
    audit::tail(&database.db, &TailFilter { limit: audit::TAIL_MAX_LIMIT, ..TailFilter::default() })
        .await
        .expect("tail")
}

async fn stored_ids(database: &TestDatabase) -> Vec<i64> {
    stored_rows(database).await.iter().map(|row| row.id).collect()
}

async fn verify_with(database: &TestDatabase, key: Option<&CheckpointKey>) -> VerifyReport {
    audit::verify(&database.db, key).await.expect("verify")
}

async fn first_break_with(database: &TestDatabase, key: Option<&CheckpointKey>) -> (i64, ChainBreakReason) {
    let report = verify_with(database, key).await;
    let Some(broken) = report.first_broken.clone() else { panic!("the chain must be reported broken: {report:?}") };
    (broken.id, broken.reason)
}

async fn checkpoint_record(database: &TestDatabase) -> String {
    meta::get(&database.db, CHECKPOINT_KEY).await.expect("read").expect("a checkpoint is stored")
}

/// The checkpoint record with field `index` (0 is the version) replaced by `value`.
fn with_field(record: &str, index: usize, value: &str) -> String {
    let mut fields: Vec<&str> = record.split(' ').collect();
    fields[index] = value;
    fields.join(" ")
}

pub async fn audit_prune_deletes_old_rows_and_verify_continues_from_the_checkpoint(database: TestDatabase) {
    let ids = seed(&database, 10).await;
    assert!(!audit::has_checkpoint(&database.db).await.expect("read"), "nothing pruned yet");
    // Rows 0..=5 started before 6 s; four per transaction, so two transactions.
    let outcome = prune(&database, older_than(6, 4)).await;
    assert_eq!(outcome.deleted, 6, "{outcome:?}");
    let checkpoint = outcome.checkpoint.clone().expect("a checkpoint");
    assert_eq!(checkpoint.last_pruned_id, ids[5], "the last pruned row");
    assert_eq!(checkpoint.pruned_rows, 6, "the count of pruned rows");
    assert_eq!(checkpoint.pruned_at, castellan_schema::truncate_to_micros(now()), "stamped with the time given");
    let kept = stored_rows(&database).await;
    assert_eq!(kept.iter().map(|row| row.id).collect::<Vec<_>>(), ids[6..].to_vec(), "a prefix is gone");
    assert_eq!(kept[0].prev_hash, checkpoint.last_pruned_hash, "the first kept row links to the checkpoint");
    assert!(audit::has_checkpoint(&database.db).await.expect("read"));

    let report = verify_with(&database, Some(&key())).await;
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.rows_checked, 4, "only the kept rows are walked");
    assert_eq!(report.last_good_id, Some(ids[9]));
    assert_eq!(report.checkpoint, Some(checkpoint), "the report names the checkpoint it started from");

    let (id, reason) = first_break_with(&database, None).await;
    assert_eq!((id, reason), (ids[5], ChainBreakReason::CheckpointKeyMissing), "a pruned trail needs the key");
}

pub async fn audit_prune_again_extends_the_checkpoint(database: TestDatabase) {
    let ids = seed(&database, 10).await;
    let first = prune(&database, older_than(3, 100)).await;
    assert_eq!(first.deleted, 3);
    assert_eq!(first.checkpoint.as_ref().map(|checkpoint| checkpoint.pruned_rows), Some(3));
    let second = prune(&database, older_than(7, 100)).await;
    assert_eq!(second.deleted, 4, "rows 3..=6");
    let checkpoint = second.checkpoint.clone().expect("a checkpoint");
    assert_eq!(checkpoint.last_pruned_id, ids[6]);
    assert_eq!(checkpoint.pruned_rows, 7, "the count is cumulative");
    let report = verify_with(&database, Some(&key())).await;
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.rows_checked, 3);
    assert_eq!(report.checkpoint.map(|checkpoint| checkpoint.pruned_rows), Some(7));

    let again = audit::prune(&database.db, older_than(7, 100), &key(), now() + chrono::TimeDelta::hours(1))
        .await
        .expect("prune");
    assert_eq!(
        again,
        PruneOutcome { deleted: 0, checkpoint: Some(checkpoint) },
        "nothing more to do, nothing rewritten"
    );
}

pub async fn audit_prune_then_a_tampered_kept_row_is_found(database: TestDatabase) {
    let ids = seed(&database, 10).await;
    prune(&database, older_than(6, 100)).await;
    database.execute(&format!("UPDATE mcp_tool_executions SET output = '{{}}' WHERE id = {}", ids[8])).await;
    let (id, reason) = first_break_with(&database, Some(&key())).await;
    assert_eq!(id, ids[8], "the edited row is reported");
    assert!(matches!(reason, ChainBreakReason::RowHashMismatch { .. }), "{reason:?}");
}

pub async fn audit_prune_then_deleting_the_first_kept_row_is_found(database: TestDatabase) {
    let ids = seed(&database, 10).await;
    prune(&database, older_than(6, 100)).await;
    database.execute(&format!("DELETE FROM mcp_tool_executions WHERE id = {}", ids[6])).await;
    let (id, reason) = first_break_with(&database, Some(&key())).await;
    assert_eq!(id, ids[7], "the row that no longer links to the checkpoint");
    assert!(matches!(reason, ChainBreakReason::CheckpointLinkMismatch { .. }), "{reason:?}");
}

/// Whoever can edit the database but lacks the master key cannot move, recount or re-stamp the
/// checkpoint, nor drop it.
pub async fn audit_prune_checkpoint_edits_without_the_key_are_found(database: TestDatabase) {
    let ids = seed(&database, 10).await;
    prune(&database, older_than(6, 100)).await;
    let original = checkpoint_record(&database).await;
    let rows = stored_rows(&database).await;
    let other_id = ids[4].to_string();
    let cases: Vec<(&str, String, ChainBreakReason)> = vec![
        ("hash", with_field(&original, 2, &"f".repeat(64)), ChainBreakReason::CheckpointSignatureInvalid),
        ("count", with_field(&original, 3, "1"), ChainBreakReason::CheckpointSignatureInvalid),
        ("id", with_field(&original, 1, &other_id), ChainBreakReason::CheckpointSignatureInvalid),
        ("time", with_field(&original, 4, "2030-01-01T00:00:00.000000Z"), ChainBreakReason::CheckpointSignatureInvalid),
        ("signature", with_field(&original, 5, &"0".repeat(64)), ChainBreakReason::CheckpointSignatureInvalid),
        (
            "unreadable",
            "v1 garbage".to_owned(),
            ChainBreakReason::CheckpointUnreadable { value: "v1 garbage".to_owned() },
        ),
    ];
    for (what, record, expected) in cases {
        meta::set(&database.db, CHECKPOINT_KEY, &record).await.expect("edit");
        let (_, reason) = first_break_with(&database, Some(&key())).await;
        assert_eq!(reason, expected, "an edited {what}");
        let refused = audit::prune(&database.db, older_than(1000, 100), &key(), now()).await;
        assert!(
            matches!(refused, Err(DbError::Other(_))),
            "an edited {what}: prune refuses to re-sign it: {refused:?}"
        );
    }
    assert_eq!(stored_ids(&database).await, ids[6..].to_vec(), "no refused prune deleted anything");
    meta::set(&database.db, CHECKPOINT_KEY, &original).await.expect("restore");
    assert!(verify_with(&database, Some(&key())).await.is_intact(), "the original verifies again");

    // The checkpoint moved over a deleted row: the link would hold, the signature does not.
    database.execute(&format!("DELETE FROM mcp_tool_executions WHERE id = {}", ids[6])).await;
    let moved = with_field(&with_field(&with_field(&original, 1, &ids[6].to_string()), 2, &rows[0].row_hash), 3, "7");
    meta::set(&database.db, CHECKPOINT_KEY, &moved).await.expect("edit");
    let (id, reason) = first_break_with(&database, Some(&key())).await;
    assert_eq!((id, reason), (ids[6], ChainBreakReason::CheckpointSignatureInvalid), "a moved checkpoint");

    // Without the checkpoint, the walk starts at genesis and the pruned rows look deleted.
    database.execute(&format!("DELETE FROM castellan_meta WHERE key = '{CHECKPOINT_KEY}'")).await;
    let (id, reason) = first_break_with(&database, Some(&key())).await;
    assert_eq!(id, ids[7], "the first row left");
    assert!(matches!(reason, ChainBreakReason::PrevHashMismatch { .. }), "{reason:?}");
}

pub async fn audit_prune_verify_with_the_wrong_key_reports_a_bad_signature(database: TestDatabase) {
    let ids = seed(&database, 10).await;
    prune(&database, older_than(6, 100)).await;
    let wrong = CheckpointKey::from_bytes(&[0xa5; 32]);
    let (id, reason) = first_break_with(&database, Some(&wrong)).await;
    assert_eq!((id, reason), (ids[5], ChainBreakReason::CheckpointSignatureInvalid));
    let refused = audit::prune(&database.db, older_than(1000, 100), &wrong, now()).await;
    assert!(matches!(refused, Err(DbError::Other(_))), "a prune with another key refuses: {refused:?}");
    assert_eq!(stored_ids(&database).await, ids[6..].to_vec(), "and deletes nothing");
}

pub async fn audit_prune_keeps_rows_above_forwarded_up_to(database: TestDatabase) {
    let ids = seed(&database, 6).await;
    let limits = PruneLimits { older_than: instant(1000), forwarded_up_to: Some(ids[2]), batch: 2, only_user: None };
    let outcome = prune(&database, limits).await;
    assert_eq!(outcome.deleted, 3, "every row is old, but only three were forwarded");
    assert_eq!(stored_ids(&database).await, ids[3..].to_vec());
    let behind = PruneLimits { forwarded_up_to: Some(ids[1]), ..limits };
    assert_eq!(prune(&database, behind).await.deleted, 0, "a forwarded position behind the checkpoint prunes nothing");
    assert!(verify_with(&database, Some(&key())).await.is_intact());
    let one_user = PruneLimits { only_user: Some("anonymous"), forwarded_up_to: None, ..limits };
    let refused = audit::prune(&database.db, one_user, &key(), now()).await;
    assert!(matches!(refused, Err(DbError::Other(_))), "one user's rows are not a prefix: {refused:?}");
    assert_eq!(stored_ids(&database).await, ids[3..].to_vec(), "nothing deleted");
}

pub async fn audit_prune_never_deletes_the_newest_row(database: TestDatabase) {
    let everything = older_than(1000, 100);
    assert_eq!(prune(&database, everything).await, PruneOutcome { deleted: 0, checkpoint: None }, "an empty trail");
    let first = append(&database, &started_at(&[0])).await;
    assert_eq!(prune(&database, everything).await, PruneOutcome { deleted: 0, checkpoint: None }, "a single row stays");
    assert!(!audit::has_checkpoint(&database.db).await.expect("read"), "no checkpoint when nothing was pruned");
    let rest = append(&database, &started_at(&[1, 2, 3, 4])).await;
    let outcome = prune(&database, everything).await;
    assert_eq!(outcome.deleted, 4, "all but the newest");
    assert_eq!(outcome.checkpoint.map(|checkpoint| checkpoint.last_pruned_id), Some(rest[2]));
    assert_eq!(stored_ids(&database).await, vec![rest[3]], "the newest row is kept, old as it is");
    assert!(first[0] < rest[0]);
    let report = verify_with(&database, Some(&key())).await;
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.rows_checked, 1);
}

pub async fn audit_prune_then_appending_continues_the_chain(database: TestDatabase) {
    seed(&database, 10).await;
    prune(&database, older_than(6, 100)).await;
    let appended = append(&database, &started_at(&[10, 11, 12])).await;
    assert_eq!(appended.len(), 3, "the writer's head is still the last row");
    // A writer whose idea of the head is stale chains from the stored head.
    let stale = audit::insert_batch(&database.db, audit::GENESIS_HASH, &started_at(&[13])).await.expect("append");
    assert_eq!(stale.0.len(), 1);
    let report = verify_with(&database, Some(&key())).await;
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.rows_checked, 8, "four kept and four appended");

    let outcome = prune(&database, older_than(1000, 3)).await;
    assert_eq!(outcome.deleted, 7, "all but the newest");
    assert_eq!(outcome.checkpoint.map(|checkpoint| checkpoint.pruned_rows), Some(13), "6 before, 7 now");
    append(&database, &started_at(&[14])).await;
    let report = verify_with(&database, Some(&key())).await;
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.rows_checked, 2);
}

/// Only a prefix goes: a young row stops the prune even when older rows follow it.
pub async fn audit_prune_stops_at_the_first_young_row(database: TestDatabase) {
    let ids = append(&database, &started_at(&[0, 1, 50, 2, 3, 4])).await;
    let outcome = prune(&database, older_than(10, 100)).await;
    assert_eq!(outcome.deleted, 2, "{outcome:?}");
    assert_eq!(stored_ids(&database).await, ids[2..].to_vec(), "the rows after the young one stay");
    assert!(verify_with(&database, Some(&key())).await.is_intact());
}

/// A prune does not delete what `verify` would report, nor extend a chain cut at its end.
pub async fn audit_prune_refuses_a_broken_chain(database: TestDatabase) {
    let ids = seed(&database, 6).await;
    database.execute(&format!("UPDATE mcp_tool_executions SET output = '{{}}' WHERE id = {}", ids[1])).await;
    let refused = audit::prune(&database.db, older_than(1000, 100), &key(), now()).await;
    assert!(matches!(refused, Err(DbError::Other(_))), "an edited row is not pruned away: {refused:?}");
    assert_eq!(stored_ids(&database).await, ids, "nothing deleted, not even the intact row before it");
    assert!(!audit::has_checkpoint(&database.db).await.expect("read"));
    database.execute(&format!("UPDATE mcp_tool_executions SET output = NULL WHERE id = {}", ids[1])).await;
    assert!(verify_with(&database, None).await.is_intact(), "restored");

    database.execute(&format!("DELETE FROM mcp_tool_executions WHERE id = {}", ids[5])).await;
    let refused = audit::prune(&database.db, older_than(1000, 100), &key(), now()).await;
    assert!(matches!(refused, Err(DbError::Other(_))), "a chain cut at its end is not pruned: {refused:?}");
    assert_eq!(stored_ids(&database).await, ids[..5].to_vec());
}

/// A prune running while a writer appends: the two take turns, and the chain stays whole.
pub async fn audit_prune_while_appending_keeps_the_chain_whole(database: TestDatabase) {
    seed(&database, 10).await;
    let writer_db = database.db.clone();
    let writer = tokio::spawn(async move {
        let mut head = audit::last_hash(&writer_db).await.expect("head");
        for batch in 0..20 {
            let rows = started_at(&(0..5).map(|index| 20 + batch * 5 + index).collect::<Vec<_>>());
            head = audit::insert_batch(&writer_db, &head, &rows).await.expect("append during a prune").1;
        }
    });
    let mut pruned = 0;
    while !writer.is_finished() {
        pruned += prune(&database, older_than(1_000, 3)).await.deleted;
    }
    writer.await.expect("the writer");
    pruned += prune(&database, older_than(1_000, 3)).await.deleted;
    assert_eq!(pruned, 109, "all but the newest of 110 rows");
    let report = verify_with(&database, Some(&key())).await;
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.rows_checked, 1);
    assert_eq!(report.checkpoint.map(|checkpoint| checkpoint.pruned_rows), Some(109));
}

/// The SQLite writer's own connection appends after a prune as before: it compares its head with
/// the last row, which a prune keeps.
pub async fn audit_sqlite_appender_continues_after_a_prune(database: TestDatabase) {
    seed(&database, 10).await;
    prune(&database, older_than(6, 100)).await;
    let path = castellan_schema::sqlite_file(&database.url).expect("a SQLite URL").expect("a file");
    let mut appender = audit::SqliteAppender::open(&path).expect("open the appender");
    let head = audit::last_hash(&database.db).await.expect("head");
    let rows = started_at(&[10]);
    let appended = appender.append(&head, &[&rows[0]]).expect("append").expect("the head is still the last row");
    assert_eq!(appended.0.len(), 1);
    let report = verify_with(&database, Some(&key())).await;
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.rows_checked, 5);
}
