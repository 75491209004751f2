//! How far a run may read a table without passing a row that is not committed yet.
//!
//! On PostgreSQL an id comes from a sequence when the row is inserted, not when its transaction
//! commits: with two writers (the hook-decision writer beside the audit writer, or two replicas'
//! AI request writers) the row with id 6 can be visible while id 5 is still uncommitted. A cursor
//! moved to 6 would skip 5 for good. So a run first takes the table's lock in SHARE mode, which
//! waits for every transaction that is writing the table and lets no new one start, reads the
//! highest id, and lets go at once: every id up to that one is committed (or rolled back) and the
//! run reads no further. The lock waits at most [`LOCK_WAIT`] (writers queue behind it for as
//! long); a table that stays busy is left for the next run.
//!
//! SQLite needs none of this (one writer at a time, and the ids of its transaction are taken
//! while it holds the lock), and neither does `mcp_tool_executions`: its writers take an advisory
//! lock before the ids of a batch and hold it until the batch commits.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, RuntimeErr, Statement, TransactionTrait};

use super::ForwardTable;

/// The longest a run waits for the table lock (and so the longest a writer waits behind it).
pub const LOCK_WAIT: &str = "100ms";

/// PostgreSQL's SQLSTATE for `lock_timeout`.
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// The highest id a run may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watermark {
    /// Any: ids become visible in order.
    Unbounded,
    /// Up to this id, included.
    UpTo(i64),
    /// The table was being written for longer than [`LOCK_WAIT`]: nothing this run.
    Busy,
}

impl Watermark {
    /// The bound for a read: `None` when unbounded.
    pub fn bound(self) -> Option<i64> {
        match self {
            Watermark::Unbounded | Watermark::Busy => None,
            Watermark::UpTo(id) => Some(id),
        }
    }
}

/// The watermark of `table` now.
pub async fn committed_up_to(db: &DatabaseConnection, table: ForwardTable) -> Result<Watermark, DbErr> {
    if db.get_database_backend() != DbBackend::Postgres || table == ForwardTable::Audit {
        return Ok(Watermark::Unbounded);
    }
    let name = table.as_str();
    let transaction = db.begin().await?;
    transaction.execute_unprepared(&format!("SET LOCAL lock_timeout = '{LOCK_WAIT}'")).await?;
    if let Err(error) = transaction.execute_unprepared(&format!("LOCK TABLE {name} IN SHARE MODE")).await {
        transaction.rollback().await?;
        return if is_lock_timeout(&error) { Ok(Watermark::Busy) } else { Err(error) };
    }
    let highest = transaction
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT COALESCE(MAX(id), 0) AS id FROM {name}"),
        ))
        .await?
        .map(|row| row.try_get::<i64>("", "id"))
        .transpose()?
        .unwrap_or(0);
    transaction.commit().await?;
    Ok(Watermark::UpTo(highest))
}

fn is_lock_timeout(error: &DbErr) -> bool {
    match error {
        DbErr::Exec(RuntimeErr::SqlxError(error)) | DbErr::Query(RuntimeErr::SqlxError(error)) => {
            error.as_database_error().and_then(|error| error.code()).is_some_and(|code| code == LOCK_NOT_AVAILABLE)
        }
        _ => false,
    }
}
