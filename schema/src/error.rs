//! The one error type of the database layer, and how driver errors are sorted into it.
//!
//! Callers care about four outcomes: the database cannot be reached (fail closed), the record
//! already exists, the record (or the one it refers to) does not exist, and everything else.
//! Messages never carry a connection URL's password: connection errors are redacted in
//! [`crate::connection`], and query errors never contain the URL.

use std::ops::Deref;

use sea_orm::{DbErr, RuntimeErr, SqlErr, sqlx};

/// The result type of every database function in this crate.
pub type DbResult<T> = Result<T, DbError>;

/// What went wrong talking to the database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DbError {
    /// The database cannot be reached or cannot take writes right now (connection refused,
    /// pool exhausted, I/O error, disk full, locked for longer than the busy timeout). Callers
    /// fail closed on this.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A unique constraint refused the write: the named thing already exists.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The named thing does not exist (or a foreign key points at nothing).
    #[error("{0} not found")]
    NotFound(String),
    /// Anything else: a bug, corrupt stored data, an unexpected driver error.
    #[error("database error: {0}")]
    Other(String),
}

impl DbError {
    /// Whether the database could not be reached, the case where callers must fail closed.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, DbError::Unavailable(_))
    }

    /// Classifies a driver error; `what` names the record for `AlreadyExists` and `NotFound`.
    pub(crate) fn from_db_err(error: DbErr, what: &str) -> DbError {
        if is_unavailable(&error) {
            return DbError::Unavailable(error.to_string());
        }
        match error.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => {
                return DbError::AlreadyExists(what.to_owned());
            }
            Some(SqlErr::ForeignKeyConstraintViolation(_)) => {
                return DbError::NotFound(what.to_owned());
            }
            _ => {}
        }
        match error {
            DbErr::RecordNotFound(_) => DbError::NotFound(what.to_owned()),
            other => DbError::Other(other.to_string()),
        }
    }
}

impl From<DbErr> for DbError {
    fn from(error: DbErr) -> DbError {
        DbError::from_db_err(error, "record")
    }
}

/// Whether a driver error means "the database is not there (or not writable) right now",
/// as opposed to "this statement was wrong".
fn is_unavailable(error: &DbErr) -> bool {
    match error {
        DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(sqlx_error)) | DbErr::Query(RuntimeErr::SqlxError(sqlx_error)) => {
            is_unavailable_sqlx_error(sqlx_error.deref())
        }
        _ => false,
    }
}

fn is_unavailable_sqlx_error(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(database_error) => {
            let code = database_error.code().unwrap_or_default();
            if database_error.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some() {
                is_unavailable_postgres_code(&code)
            } else if database_error.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                code.parse::<i32>().is_ok_and(is_unavailable_sqlite_code)
            } else {
                false
            }
        }
        _ => false,
    }
}

/// SQLSTATE classes that mean the server or the connection is going away or out of
/// resources: 08 (connection exception), 53 (insufficient resources: disk full, out of
/// memory, too many connections), 57P01..57P05 (admin shutdown, crash shutdown, cannot
/// connect now, ...), 58 (system error: I/O).
fn is_unavailable_postgres_code(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("53") || code.starts_with("57P") || code.starts_with("58")
}

/// SQLite primary result codes (the low byte of the extended code) that mean the file cannot
/// be used right now: BUSY (5, after the busy timeout), LOCKED (6), NOMEM (7), READONLY (8),
/// IOERR (10), CORRUPT (11), FULL (13), CANTOPEN (14), NOTADB (26).
fn is_unavailable_sqlite_code(extended_code: i32) -> bool {
    matches!(extended_code & 0xff, 5 | 6 | 7 | 8 | 10 | 11 | 13 | 14 | 26)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_errors_are_unavailable() {
        let cases = [
            (DbErr::Conn(RuntimeErr::Internal("refused".into())), true),
            (DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout), true),
            (DbErr::Query(RuntimeErr::SqlxError(std::sync::Arc::new(sqlx::Error::PoolTimedOut))), true),
            (
                DbErr::Exec(RuntimeErr::SqlxError(std::sync::Arc::new(sqlx::Error::Io(std::io::Error::other(
                    "broken pipe",
                ))))),
                true,
            ),
            (DbErr::Custom("bug".into()), false),
            (DbErr::RecordNotFound("x".into()), false),
        ];
        for (error, expected) in cases {
            let message = error.to_string();
            let classified = DbError::from_db_err(error, "thing");
            assert_eq!(classified.is_unavailable(), expected, "classifying {message:?} gave {classified:?}");
        }
    }

    #[test]
    fn record_not_found_maps_to_not_found() {
        let classified = DbError::from_db_err(DbErr::RecordNotFound("x".into()), "user \"bob\"");
        assert_eq!(classified, DbError::NotFound("user \"bob\"".into()));
    }

    #[test]
    fn postgres_and_sqlite_codes() {
        for (code, expected) in [("08006", true), ("57P01", true), ("53100", true), ("23505", false)] {
            assert_eq!(is_unavailable_postgres_code(code), expected, "postgres code {code}");
        }
        for (code, expected) in [(5, true), (517, true), (10, true), (2067, false), (19, false)] {
            assert_eq!(is_unavailable_sqlite_code(code), expected, "sqlite code {code}");
        }
    }
}
