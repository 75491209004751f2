//! Deleting old audit rows without breaking verification: a prune removes a prefix of the chain
//! (every row up to some id) and records where it ends in a signed checkpoint (see
//! [`super::checkpoint`]), from which [`super::verify`] continues.
//!
//! A prune never deletes the newest row (the one the head record names): appenders compare the
//! head record with the last row, and that comparison keeps working. It checks every row it deletes
//! the way `verify` would, so a tampered row is refused rather than deleted under a fresh
//! signature, and it refuses to extend a checkpoint whose signature does not verify.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use super::checkpoint::{self, CHECKPOINT_KEY, Checkpoint, CheckpointKey};
use super::verify::{ChainBreakReason, check_link};
use super::{CHAIN_HEAD_KEY, CHAIN_LOCK_KEY, ExecutionRow, GENESIS_HASH, last_link_with};
use crate::entity::mcp_tool_executions as entity;
use crate::error::{DbError, DbResult};
use crate::meta;
use crate::retention::PruneLimits;
use crate::time::truncate_to_micros;

/// What [`prune`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneOutcome {
    /// Rows deleted by this call.
    pub deleted: u64,
    /// The checkpoint now stored: the one this call wrote, or the one it found when it deleted
    /// nothing; `None` when no row was ever pruned.
    pub checkpoint: Option<Checkpoint>,
}

/// Deletes the oldest audit rows: the longest run from the start of the chain whose rows started
/// before `limits.older_than`, none above `limits.forwarded_up_to`, never the newest row. Each
/// batch of at most `limits.batch` rows is one transaction that deletes them and writes the
/// checkpoint (signed with `key`, stamped `now`), so the trail verifies after every batch.
///
/// The run stops at the first row that is too young even if older rows follow it: only a prefix
/// can be deleted, since verification continues from the checkpoint.
///
/// Refuses (`DbError::Other`, nothing of that batch deleted) when the chain head record does not
/// match the last row, when the stored checkpoint does not verify under `key`, or when a row it
/// would delete breaks the chain: deleting it would hide what `castellan audit verify` reports.
/// Refuses `limits.only_user` as well: one user's rows are not a prefix of the chain.
#[tracing::instrument(skip_all, fields(batch = limits.batch, forwarded_up_to = limits.forwarded_up_to))]
pub async fn prune(
    db: &DatabaseConnection,
    limits: PruneLimits,
    key: &CheckpointKey,
    now: DateTime<Utc>,
) -> DbResult<PruneOutcome> {
    if let Some(user) = limits.only_user {
        return Err(DbError::Other(format!(
            "the audit trail is pruned as a whole, by age: deleting only the rows of {user:?} would break its hash \
             chain"
        )));
    }
    let mut deleted = 0;
    loop {
        let batch = prune_batch(db, &limits, key, now).await?;
        deleted += batch.deleted;
        if !batch.may_have_more {
            return Ok(PruneOutcome { deleted, checkpoint: batch.checkpoint });
        }
    }
}

struct BatchOutcome {
    deleted: u64,
    checkpoint: Option<Checkpoint>,
    /// The batch was full: the next rows may be old enough too.
    may_have_more: bool,
}

async fn prune_batch(
    db: &DatabaseConnection,
    limits: &PruneLimits,
    key: &CheckpointKey,
    now: DateTime<Utc>,
) -> DbResult<BatchOutcome> {
    // The appenders' lock (SQLite's write lock taken at BEGIN, the PostgreSQL advisory lock), so a
    // prune and an append never interleave.
    let transaction = db
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        })
        .await?;
    if transaction.get_database_backend() == DbBackend::Postgres {
        transaction.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({CHAIN_LOCK_KEY})")).await?;
    }
    let previous = match checkpoint::load_checked(&transaction, Some(key)).await? {
        Ok(previous) => previous,
        Err(broken) => return Err(refusal(&format!("the stored checkpoint is not usable: {}", broken.reason))),
    };
    let nothing = |checkpoint| BatchOutcome { deleted: 0, checkpoint, may_have_more: false };
    let Some((newest_id, newest_hash)) = last_link_with(&transaction).await? else {
        return Ok(nothing(previous));
    };
    if meta::get_with(&transaction, CHAIN_HEAD_KEY).await? != Some(format!("{newest_id} {newest_hash}")) {
        return Err(refusal(
            "the chain's head record does not match its last row (rows removed from the end, or the record edited)",
        ));
    }
    let batch = limits.batch.max(1);
    let oldest = entity::Entity::find().order_by_asc(entity::Column::Id).limit(batch).all(&transaction).await?;
    let Some(last_pruned) = prunable_prefix(oldest, limits, newest_id, previous.as_ref())? else {
        return Ok(nothing(previous));
    };
    let removed = entity::Entity::delete_many()
        .filter(entity::Column::Id.lte(last_pruned.id))
        .exec(&transaction)
        .await?
        .rows_affected;
    if removed != last_pruned.count {
        // Dropped without commit: nothing is deleted.
        return Err(DbError::Other(format!(
            "the audit prune checked {} rows up to row {} but would delete {removed}",
            last_pruned.count, last_pruned.id
        )));
    }
    let pruned_rows = previous.as_ref().map_or(0, |checkpoint| checkpoint.pruned_rows) + removed;
    let checkpoint = Checkpoint::signed(key, last_pruned.id, last_pruned.hash, pruned_rows, now);
    meta::set_with(&transaction, CHECKPOINT_KEY, &checkpoint.to_record()).await?;
    transaction.commit().await?;
    tracing::info!(deleted = removed, last_pruned_id = checkpoint.last_pruned_id, "pruned audit rows");
    Ok(BatchOutcome { deleted: removed, checkpoint: Some(checkpoint), may_have_more: removed == batch })
}

/// The last row of a batch's prunable prefix and how many rows the prefix holds.
struct LastPruned {
    id: i64,
    hash: String,
    count: u64,
}

/// Of the oldest rows (in id order), the longest prefix that may go, each row checked against its
/// predecessor (the checkpoint's hash for the first). `None` when the first row must stay.
fn prunable_prefix(
    oldest: Vec<entity::Model>,
    limits: &PruneLimits,
    newest_id: i64,
    previous: Option<&Checkpoint>,
) -> DbResult<Option<LastPruned>> {
    let older_than = truncate_to_micros(limits.older_than);
    let may_go = |row: &ExecutionRow| {
        row.id < newest_id && row.started_at < older_than && limits.forwarded_up_to.is_none_or(|up_to| row.id <= up_to)
    };
    let mut expected_prev_hash =
        previous.map_or_else(|| GENESIS_HASH.to_owned(), |checkpoint| checkpoint.last_pruned_hash.clone());
    let mut last: Option<LastPruned> = None;
    for model in oldest {
        let row = ExecutionRow::from(model);
        if !may_go(&row) {
            break;
        }
        if let Some(checkpoint) = previous.filter(|checkpoint| row.id <= checkpoint.last_pruned_id) {
            let reason = ChainBreakReason::RowNotAfterCheckpoint { checkpoint_id: checkpoint.last_pruned_id };
            return Err(refusal(&format!("row {}: {reason}", row.id)));
        }
        if let Some(reason) = check_link(&row, &expected_prev_hash) {
            return Err(refusal(&format!("row {}: {reason}", row.id)));
        }
        expected_prev_hash = row.row_hash.clone();
        let count = last.as_ref().map_or(0, |last| last.count) + 1;
        last = Some(LastPruned { id: row.id, hash: row.row_hash, count });
    }
    Ok(last)
}

fn refusal(why: &str) -> DbError {
    DbError::Other(format!(
        "the audit trail is not pruned: {why}; nothing is pruned until `castellan audit verify` has been looked at"
    ))
}
