//! Walking the audit chain and reporting the first place it is broken. After a prune the walk
//! starts from the signed checkpoint (see [`super::checkpoint`]) instead of the genesis hash.

use std::fmt;

use sea_orm::{
    AccessMode, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, IsolationLevel, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};

use super::chain::{ChainFields, GENESIS_HASH};
use super::checkpoint::{self, Checkpoint, CheckpointKey};
use super::{CHAIN_HEAD_KEY, ExecutionRow};
use crate::entity::mcp_tool_executions as entity;
use crate::error::DbResult;
use crate::meta;

/// Rows read per query: the walk never holds the whole trail in memory.
const PAGE_SIZE: u64 = 500;

/// The outcome of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Rows whose links checked out before the walk stopped.
    pub rows_checked: u64,
    /// The id of the last row that checked out.
    pub last_good_id: Option<i64>,
    /// The first break, if any; the walk stops there.
    pub first_broken: Option<ChainBreak>,
    /// The prune checkpoint the walk started from (its signature checked out), when rows were
    /// pruned.
    pub checkpoint: Option<Checkpoint>,
}

impl VerifyReport {
    /// True when every row links to its predecessor and hashes to its stored hash, and the
    /// chain ends at the head recorded by the last insert.
    pub fn is_intact(&self) -> bool {
        self.first_broken.is_none()
    }
}

/// Where the chain breaks and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// The first row that fails; for rows missing at the end, the id of the recorded last row.
    pub id: i64,
    pub reason: ChainBreakReason,
}

/// Why a row breaks the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainBreakReason {
    /// The row's `prev_hash` is not the previous row's `row_hash`: a row before it was deleted,
    /// or its `prev_hash` was rewritten.
    PrevHashMismatch { expected: String, found: String },
    /// The row's fields no longer hash to its `row_hash`: the row was edited.
    RowHashMismatch { stored: String, computed: String },
    /// The row the last insert recorded as the head has a different hash: the chain was
    /// rewritten from some row on.
    HeadHashMismatch { recorded: String, found: String },
    /// The chain ends before the row the last insert recorded as the head: rows were deleted
    /// from the end.
    RowsMissingAtEnd { last_present_id: Option<i64> },
    /// The row comes after the recorded head: it was not appended by `insert_batch`.
    RowAfterRecordedHead,
    /// Rows exist but no head was ever recorded, or the record was removed.
    HeadRecordMissing,
    /// The recorded head is not `"{id} {hash}"`.
    HeadRecordUnreadable { value: String },
    /// The prune checkpoint is not a line this version writes.
    CheckpointUnreadable { value: String },
    /// The trail was pruned and its checkpoint is signed with a key derived from the master key,
    /// which the caller did not give.
    CheckpointKeyMissing,
    /// The prune checkpoint's signature does not verify: it was forged or altered (or the key
    /// given is not the one it was signed with).
    CheckpointSignatureInvalid,
    /// The first row kept after a prune does not link to the checkpoint's hash: rows after the
    /// checkpoint were deleted, or the chain was altered.
    CheckpointLinkMismatch { expected: String, found: String },
    /// A row at or before the checkpoint, which every row up to it was deleted by: it was not
    /// appended by Castellan, or the checkpoint was moved.
    RowNotAfterCheckpoint { checkpoint_id: i64 },
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "row {}: {}", self.id, self.reason)
    }
}

impl fmt::Display for ChainBreakReason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainBreakReason::PrevHashMismatch { expected, found } => write!(
                formatter,
                "prev_hash {found} does not match the previous row's hash {expected} \
                 (a row before it was deleted or altered)"
            ),
            ChainBreakReason::RowHashMismatch { stored, computed } => write!(
                formatter,
                "contents hash to {computed}, but the stored row_hash is {stored} (the row was edited)"
            ),
            ChainBreakReason::HeadHashMismatch { recorded, found } => write!(
                formatter,
                "the recorded chain head hash is {recorded}, but this row's hash is {found} \
                 (the chain was rewritten)"
            ),
            ChainBreakReason::RowsMissingAtEnd { last_present_id } => match last_present_id {
                Some(last) => write!(
                    formatter,
                    "recorded as the last row but missing; the chain ends at row {last} \
                     (rows were deleted from the end)"
                ),
                None => write!(formatter, "recorded as the last row but the trail is empty (rows were deleted)"),
            },
            ChainBreakReason::RowAfterRecordedHead => {
                write!(formatter, "comes after the recorded chain head (it was not appended by Castellan)")
            }
            ChainBreakReason::HeadRecordMissing => {
                write!(formatter, "no chain head is recorded for a non-empty trail (the record was removed)")
            }
            ChainBreakReason::HeadRecordUnreadable { value } => {
                write!(formatter, "the recorded chain head {value:?} is unreadable")
            }
            ChainBreakReason::CheckpointUnreadable { value } => {
                write!(formatter, "the prune checkpoint {value:?} is unreadable (the record was altered)")
            }
            ChainBreakReason::CheckpointKeyMissing => write!(
                formatter,
                "the trail was pruned up to this row; its signed checkpoint cannot be checked without the \
                 master key"
            ),
            ChainBreakReason::CheckpointSignatureInvalid => write!(
                formatter,
                "the signature of the prune checkpoint at this row does not verify (the checkpoint was forged \
                 or altered, or this is not the master key it was signed with)"
            ),
            ChainBreakReason::CheckpointLinkMismatch { expected, found } => write!(
                formatter,
                "prev_hash {found} does not match the hash {expected} the prune checkpoint recorded \
                 (rows after the checkpoint were deleted, or the chain was altered)"
            ),
            ChainBreakReason::RowNotAfterCheckpoint { checkpoint_id } => write!(
                formatter,
                "the prune checkpoint says every row up to {checkpoint_id} was deleted, yet this one is there \
                 (it was not appended by Castellan, or the checkpoint was moved)"
            ),
        }
    }
}

/// The recorded `(id, row_hash)` of the last appended row.
enum RecordedHead {
    Absent,
    Present { id: i64, hash: String },
    Unreadable(String),
}

impl RecordedHead {
    fn parse(value: Option<String>) -> RecordedHead {
        let Some(value) = value else {
            return RecordedHead::Absent;
        };
        match value.split_once(' ') {
            Some((id, hash)) => match id.parse() {
                Ok(id) => RecordedHead::Present { id, hash: hash.to_owned() },
                Err(_) => RecordedHead::Unreadable(value),
            },
            None => RecordedHead::Unreadable(value),
        }
    }
}

/// Walks the whole trail in id order, a page at a time, inside one read transaction (a
/// consistent snapshot, so rows appended meanwhile are not mistaken for tampering), and
/// reports the first broken row.
///
/// When rows were pruned, the walk starts from the prune checkpoint, whose signature is checked
/// with `key` first: without a key, or with a signature that does not verify, the report is a
/// break at the checkpoint. Without a checkpoint `key` is not used.
#[tracing::instrument(skip_all)]
pub async fn verify(db: &DatabaseConnection, key: Option<&CheckpointKey>) -> DbResult<VerifyReport> {
    let transaction = match db.get_database_backend() {
        DbBackend::Postgres => {
            db.begin_with_config(Some(IsolationLevel::RepeatableRead), Some(AccessMode::ReadOnly)).await?
        }
        // A SQLite read transaction sees one snapshot from its first read on.
        _ => db.begin().await?,
    };
    let report = walk(&transaction, key).await;
    transaction.rollback().await?;
    report
}

async fn walk<C: ConnectionTrait>(db: &C, key: Option<&CheckpointKey>) -> DbResult<VerifyReport> {
    let broken_before_any_row =
        |broken| VerifyReport { rows_checked: 0, last_good_id: None, first_broken: Some(broken), checkpoint: None };
    let recorded_head = RecordedHead::parse(meta::get_with(db, CHAIN_HEAD_KEY).await?);
    if let RecordedHead::Unreadable(value) = recorded_head {
        return Ok(broken_before_any_row(ChainBreak {
            id: 0,
            reason: ChainBreakReason::HeadRecordUnreadable { value },
        }));
    }
    let checkpoint = match checkpoint::load_checked(db, key).await? {
        Ok(checkpoint) => checkpoint,
        Err(broken) => return Ok(broken_before_any_row(broken)),
    };
    let mut expected_prev_hash =
        checkpoint.as_ref().map_or_else(|| GENESIS_HASH.to_owned(), |checkpoint| checkpoint.last_pruned_hash.clone());
    let mut report = VerifyReport { rows_checked: 0, last_good_id: None, first_broken: None, checkpoint };
    loop {
        let mut page = entity::Entity::find().order_by_asc(entity::Column::Id);
        if let Some(last_id) = report.last_good_id {
            page = page.filter(entity::Column::Id.gt(last_id));
        }
        let rows = page.limit(PAGE_SIZE).all(db).await?;
        let page_len = rows.len();
        for model in rows {
            let row = ExecutionRow::from(model);
            let first_after_checkpoint = report.checkpoint.as_ref().filter(|_| report.last_good_id.is_none());
            let broken = first_after_checkpoint
                .and_then(|checkpoint| check_first_after_checkpoint(&row, checkpoint))
                .or_else(|| check_row(&row, &expected_prev_hash, &recorded_head));
            if let Some(reason) = broken {
                report.first_broken = Some(ChainBreak { id: row.id, reason });
                return Ok(report);
            }
            report.rows_checked += 1;
            report.last_good_id = Some(row.id);
            expected_prev_hash = row.row_hash;
        }
        if (page_len as u64) < PAGE_SIZE {
            break;
        }
    }
    report.first_broken = match (&report.checkpoint, report.last_good_id) {
        (Some(checkpoint), None) => check_end_at_checkpoint(&recorded_head, checkpoint),
        _ => check_end(&recorded_head, report.last_good_id),
    };
    Ok(report)
}

/// The first row kept after a prune comes after the checkpoint and links to its hash.
fn check_first_after_checkpoint(row: &ExecutionRow, checkpoint: &Checkpoint) -> Option<ChainBreakReason> {
    if row.id <= checkpoint.last_pruned_id {
        return Some(ChainBreakReason::RowNotAfterCheckpoint { checkpoint_id: checkpoint.last_pruned_id });
    }
    if row.prev_hash != checkpoint.last_pruned_hash {
        return Some(ChainBreakReason::CheckpointLinkMismatch {
            expected: checkpoint.last_pruned_hash.clone(),
            found: row.prev_hash.clone(),
        });
    }
    None
}

/// Whether `row` follows a row whose hash is `expected_prev_hash` and still hashes to its stored
/// hash: the part of a row's check that a prune repeats before it deletes the row.
pub(crate) fn check_link(row: &ExecutionRow, expected_prev_hash: &str) -> Option<ChainBreakReason> {
    if row.prev_hash != expected_prev_hash {
        return Some(ChainBreakReason::PrevHashMismatch {
            expected: expected_prev_hash.to_owned(),
            found: row.prev_hash.clone(),
        });
    }
    let computed = ChainFields::from(row).hash(&row.prev_hash);
    if computed != row.row_hash {
        return Some(ChainBreakReason::RowHashMismatch { stored: row.row_hash.clone(), computed });
    }
    None
}

fn check_row(row: &ExecutionRow, expected_prev_hash: &str, recorded_head: &RecordedHead) -> Option<ChainBreakReason> {
    if let Some(reason) = check_link(row, expected_prev_hash) {
        return Some(reason);
    }
    match recorded_head {
        RecordedHead::Absent => Some(ChainBreakReason::HeadRecordMissing),
        RecordedHead::Present { id, .. } if row.id > *id => Some(ChainBreakReason::RowAfterRecordedHead),
        RecordedHead::Present { id, hash } if row.id == *id && row.row_hash != *hash => {
            Some(ChainBreakReason::HeadHashMismatch { recorded: hash.clone(), found: row.row_hash.clone() })
        }
        _ => None,
    }
}

fn check_end(recorded_head: &RecordedHead, last_good_id: Option<i64>) -> Option<ChainBreak> {
    match recorded_head {
        RecordedHead::Present { id, .. } if last_good_id != Some(*id) => {
            Some(ChainBreak { id: *id, reason: ChainBreakReason::RowsMissingAtEnd { last_present_id: last_good_id } })
        }
        _ => None,
    }
}

/// The end of a trail with no row after its checkpoint: a prune always keeps the newest row, so
/// this is intact only when the recorded head is the checkpoint's row itself.
fn check_end_at_checkpoint(recorded_head: &RecordedHead, checkpoint: &Checkpoint) -> Option<ChainBreak> {
    let id = checkpoint.last_pruned_id;
    match recorded_head {
        RecordedHead::Present { id: head_id, hash } if *head_id == id && *hash != checkpoint.last_pruned_hash => {
            Some(ChainBreak {
                id,
                reason: ChainBreakReason::HeadHashMismatch {
                    recorded: hash.clone(),
                    found: checkpoint.last_pruned_hash.clone(),
                },
            })
        }
        RecordedHead::Present { id: head_id, .. } if *head_id == id => None,
        RecordedHead::Present { id: head_id, .. } => {
            Some(ChainBreak { id: *head_id, reason: ChainBreakReason::RowsMissingAtEnd { last_present_id: None } })
        }
        RecordedHead::Absent => Some(ChainBreak { id, reason: ChainBreakReason::HeadRecordMissing }),
        RecordedHead::Unreadable(value) => {
            Some(ChainBreak { id: 0, reason: ChainBreakReason::HeadRecordUnreadable { value: value.clone() } })
        }
    }
}
