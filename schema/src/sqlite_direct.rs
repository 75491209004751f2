//! Connections of their own to a SQLite file, for the writers' threads (the audit appender, the AI
//! request log): opened with the pool's durability settings, statements prepared once, a batch one
//! synchronous transaction on the thread that asked for it. Through the pool, the same transaction
//! costs two hand-offs to sqlx's worker thread and a fresh parse of its statements.
//!
//! What these connections store must read back exactly as the pool's path stores it: the same
//! timestamp text ([`stored_time`]), booleans as integers.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::{DbError, DbResult};
use crate::time::truncate_to_micros;

/// How long a commit waits for another connection's write lock before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens `path` (which must exist and hold the schema) for a writer: WAL with `synchronous=FULL`
/// (the log is synced on every commit) and no checkpoint inside a commit, where every caller of
/// the batch would wait for it: the writer checkpoints ([`checkpoint`]) once its callers have their
/// answers.
pub(crate) fn open_writer(path: &Path, what: &str) -> DbResult<Connection> {
    let connection = open(path)?;
    let mode: String = connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)).map_err(unavailable)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(DbError::Other(format!("the {what} database refused WAL mode (it is in {mode} mode)")));
    }
    connection.pragma_update(None, "foreign_keys", "ON").map_err(unavailable)?;
    // A log that a burst made large is cut back to this size when it is next reused.
    connection.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024).map_err(unavailable)?;
    Ok(connection)
}

/// Opens `path` with the durable settings and no automatic checkpoint (a checkpointer's connection).
pub(crate) fn open(path: &Path) -> DbResult<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags).map_err(unavailable)?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(unavailable)?;
    connection.pragma_update(None, "synchronous", "FULL").map_err(unavailable)?;
    connection.pragma_update(None, "wal_autocheckpoint", 0).map_err(unavailable)?;
    Ok(connection)
}

/// Moves committed log pages into the database file without waiting for readers or writers
/// (`PRAGMA wal_checkpoint(PASSIVE)`).
pub(crate) fn checkpoint(connection: &Connection) -> DbResult<()> {
    connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())).map_err(classify)
}

/// Whether the database answers.
pub(crate) fn ping(connection: &Connection) -> DbResult<()> {
    connection.query_row("SELECT 1", [], |_| Ok(())).map_err(unavailable)
}

/// A timestamp as the pool's driver stores it (RFC 3339 with `+00:00`, fractional digits as
/// needed), so rows read back the same whichever path wrote them.
pub(crate) fn stored_time(timestamp: chrono::DateTime<chrono::Utc>) -> String {
    truncate_to_micros(timestamp).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
}

pub(crate) fn unavailable(error: rusqlite::Error) -> DbError {
    DbError::Unavailable(error.to_string())
}

/// Locked past the busy timeout, out of disk, an I/O error or a file that cannot be opened: the
/// database cannot take writes now (the writer fails closed and retries). Anything else is a bug
/// or corrupt data.
pub(crate) fn classify(error: rusqlite::Error) -> DbError {
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
