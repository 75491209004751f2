//! The audit append on a SQLite file through a connection of its own, owned by the audit writer's
//! thread: the statements are prepared once, and a batch is one synchronous transaction on the
//! thread that asked for it. Through the pool, the same transaction cost two hand-offs to sqlx's
//! worker thread and a fresh parse of a multi-statement text on every batch; on this path the
//! commit's own `fsync` is most of what is left.
//!
//! The connection has the pool's durability settings (`journal_mode=WAL`, `synchronous=FULL`: the
//! log is synced on every commit). Like [`super::append`], it writes only when the writer's head
//! is still the stored head, read under the write lock (`BEGIN IMMEDIATE`); otherwise it writes
//! nothing and the caller takes the careful path.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use super::{CHAIN_HEAD_KEY, NewExecution, chain_hash};
use crate::audit::chain::GENESIS_HASH;
use crate::error::{DbError, DbResult};
use crate::time::truncate_to_micros;

/// How long a commit waits for another connection's write lock before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const HEAD: &str = "SELECT row_hash FROM mcp_tool_executions ORDER BY id DESC LIMIT 1";
const INSERT_ROW: &str = "INSERT INTO mcp_tool_executions (server, tool, kind, input, output, status, \
                          error_message, user_id, session_id, trace_id, started_at, completed_at, duration_ms, \
                          prev_hash, row_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, \
                          ?15) RETURNING id";
const SET_HEAD: &str = "INSERT INTO castellan_meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET \
                        value = excluded.value";
const INSERT_HOOK: &str = "INSERT INTO hook_events (event, decision, handler, reason, server, tool, user_id, \
                           trace_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

/// A dedicated connection that appends audit batches.
pub struct SqliteAppender {
    connection: Connection,
}

impl SqliteAppender {
    /// Opens `path` (which must exist and hold the schema) with the durable settings.
    pub fn open(path: &Path) -> DbResult<SqliteAppender> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(path, flags).map_err(unavailable)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(unavailable)?;
        let mode: String =
            connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)).map_err(unavailable)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(DbError::Other(format!("the audit database refused WAL mode (it is in {mode} mode)")));
        }
        connection.pragma_update(None, "synchronous", "FULL").map_err(unavailable)?;
        connection.pragma_update(None, "foreign_keys", "ON").map_err(unavailable)?;
        // No checkpoint inside a commit, where every caller of the batch would wait for it: the
        // writer calls [`SqliteAppender::checkpoint`] once the batch's callers have their answers.
        connection.pragma_update(None, "wal_autocheckpoint", 0).map_err(unavailable)?;
        // A log that a burst made large is cut back to this size when it is next reused.
        connection.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024).map_err(unavailable)?;
        Ok(SqliteAppender { connection })
    }

    /// A second connection to `path`, for [`SqliteAppender::checkpoint`] on another thread.
    pub fn open_checkpointer(path: &Path) -> DbResult<SqliteAppender> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(path, flags).map_err(unavailable)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(unavailable)?;
        connection.pragma_update(None, "synchronous", "FULL").map_err(unavailable)?;
        connection.pragma_update(None, "wal_autocheckpoint", 0).map_err(unavailable)?;
        Ok(SqliteAppender { connection })
    }

    /// Appends `rows` after `prev_hash` if that is still the stored head, in one durable
    /// transaction with their hook decisions and the head record: the new ids and the new head
    /// hash, or `None` when the head is not `prev_hash` (nothing was written).
    pub fn append(&mut self, prev_hash: &str, rows: &[&NewExecution]) -> DbResult<Option<(Vec<i64>, String)>> {
        if rows.is_empty() {
            return Ok(Some((Vec::new(), prev_hash.to_owned())));
        }
        // Dropped without `commit` (an early return or an error), the transaction rolls back.
        let transaction =
            self.connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(classify)?;
        let head: Option<String> = transaction
            .prepare_cached(HEAD)
            .and_then(|mut statement| statement.query_row([], |row| row.get(0)).optional())
            .map_err(classify)?;
        if head.as_deref().unwrap_or(GENESIS_HASH) != prev_hash {
            return Ok(None);
        }
        let mut ids = Vec::with_capacity(rows.len());
        let mut previous = prev_hash.to_owned();
        {
            let mut insert = transaction.prepare_cached(INSERT_ROW).map_err(classify)?;
            for row in rows {
                let row_hash = chain_hash(&previous, row);
                let id: i64 = insert
                    .query_row(
                        params![
                            row.server,
                            row.tool,
                            row.kind.as_str(),
                            row.input,
                            row.output,
                            row.status.as_str(),
                            row.error_message,
                            row.user_id,
                            row.session_id,
                            row.trace_id,
                            stored_time(row.started_at),
                            stored_time(row.completed_at),
                            row.duration_ms,
                            previous,
                            row_hash,
                        ],
                        |stored| stored.get(0),
                    )
                    .map_err(classify)?;
                ids.push(id);
                previous = row_hash;
            }
        }
        if let Some(last_id) = ids.last() {
            transaction
                .prepare_cached(SET_HEAD)
                .and_then(|mut statement| statement.execute(params![CHAIN_HEAD_KEY, format!("{last_id} {previous}")]))
                .map_err(classify)?;
        }
        {
            let mut insert_hook = transaction.prepare_cached(INSERT_HOOK).map_err(classify)?;
            for hook in rows.iter().flat_map(|row| row.hook_events.iter()) {
                insert_hook
                    .execute(params![
                        hook.event,
                        hook.decision,
                        hook.handler,
                        hook.reason,
                        hook.server,
                        hook.tool,
                        hook.user_id,
                        hook.trace_id,
                        stored_time(hook.created_at),
                    ])
                    .map_err(classify)?;
            }
        }
        transaction.commit().map_err(classify)?;
        Ok(Some((ids, previous)))
    }

    /// Moves committed log pages into the database file without waiting for readers or writers
    /// (`PRAGMA wal_checkpoint(PASSIVE)`).
    pub fn checkpoint(&mut self) -> DbResult<()> {
        self.connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())).map_err(classify)
    }

    /// Whether the database answers.
    pub fn ping(&mut self) -> DbResult<()> {
        self.connection.query_row("SELECT 1", [], |_| Ok(())).map_err(unavailable)
    }
}

/// A timestamp as the pool's driver stores it (RFC 3339 with `+00:00`, fractional digits as
/// needed), so rows read back the same whichever path wrote them.
fn stored_time(timestamp: chrono::DateTime<chrono::Utc>) -> String {
    truncate_to_micros(timestamp).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
}

fn unavailable(error: rusqlite::Error) -> DbError {
    DbError::Unavailable(error.to_string())
}

/// Locked past the busy timeout, out of disk, an I/O error or a file that cannot be opened: the
/// database cannot take writes now (the writer fails closed and retries). Anything else is a bug
/// or corrupt data.
fn classify(error: rusqlite::Error) -> DbError {
    use rusqlite::ErrorCode;
    match error.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::CannotOpen
            | ErrorCode::ReadOnly,
        ) => DbError::Unavailable(error.to_string()),
        _ => DbError::Other(error.to_string()),
    }
}
