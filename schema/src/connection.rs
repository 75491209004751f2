//! Opening the database: URL parsing, pool sizing and the per-connection durability settings.
//!
//! Durability is a hard requirement: an audit row must be on disk before the caller gets its
//! response. SQLite connections therefore run with `journal_mode=WAL` and `synchronous=FULL`
//! (WAL with FULL syncs the log on every commit), PostgreSQL sessions with
//! `synchronous_commit=on` (whatever the server or database default says). The settings are
//! applied on every pooled connection, not once per pool.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr, RuntimeErr, sqlx};

use crate::error::{DbError, DbResult};

/// How long to wait for a connection (and, for SQLite, for a lock) before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// SQLite allows one writer at a time; a few connections serve concurrent readers (WAL).
const SQLITE_MAX_CONNECTIONS: u32 = 4;
/// Enough for a 2-core box; PostgreSQL itself is the bottleneck well before this.
const POSTGRES_MAX_CONNECTIONS: u32 = 10;
/// A pooled PostgreSQL connection idle this long is pinged before it is handed out.
const POSTGRES_PING_AFTER_IDLE: Duration = Duration::from_secs(30);

/// The backend a database URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DatabaseTarget {
    /// A private in-memory SQLite database (`sqlite::memory:`), for tests.
    SqliteMemory,
    /// A SQLite file; the path is as written in the URL (relative to the working directory).
    SqliteFile(PathBuf),
    Postgres,
}

impl DatabaseTarget {
    fn parse(url: &str) -> DbResult<DatabaseTarget> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseTarget::Postgres);
        }
        let Some(rest) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) else {
            return Err(DbError::Other(format!(
                "unsupported database URL {}: expected sqlite://PATH, sqlite::memory: or postgres://...",
                redact_url(url)
            )));
        };
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let in_memory_mode = query.split('&').any(|pair| pair == "mode=memory");
        if path == ":memory:" || in_memory_mode {
            return Ok(DatabaseTarget::SqliteMemory);
        }
        if path.is_empty() {
            return Err(DbError::Other("the SQLite database URL names no file: expected sqlite://PATH".to_owned()));
        }
        // Let sqlx decode the path exactly as it will when opening the file.
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|error| DbError::Other(format!("invalid SQLite database URL: {error}")))?;
        Ok(DatabaseTarget::SqliteFile(options.get_filename().to_path_buf()))
    }
}

/// Opens a connection pool to `url` (`sqlite://PATH`, `sqlite::memory:` or `postgres://...`).
///
/// For a SQLite file the missing parent directories are created with mode 0700 and a missing
/// file with mode 0600 (whatever the umask; SQLite gives its `-wal` and `-shm` files the mode of
/// the database file). Errors never contain the password from the URL; a server that cannot be
/// reached is [`DbError::Unavailable`].
#[tracing::instrument(skip_all, fields(database = %redact_url(url)))]
pub async fn connect(url: &str) -> DbResult<DatabaseConnection> {
    let options = match DatabaseTarget::parse(url)? {
        DatabaseTarget::SqliteMemory => sqlite_memory_options(url),
        DatabaseTarget::SqliteFile(path) => {
            if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
                create_private_directory(parent).map_err(|error| {
                    DbError::Unavailable(format!("cannot create the database directory {}: {error}", parent.display()))
                })?;
            }
            create_private_file(&path).map_err(|error| {
                DbError::Unavailable(format!("cannot create the database file {}: {error}", path.display()))
            })?;
            sqlite_file_options(url, true)
        }
        DatabaseTarget::Postgres => postgres_options(url),
    };
    open(url, options).await
}

/// Opens a database that must already exist: nothing is created. A SQLite file that is not there
/// is [`DbError::NotFound`] naming the path (as written in the URL); a PostgreSQL database that does
/// not exist is refused by the server. Whether it holds Castellan's tables is
/// [`has_castellan_schema`]'s question.
#[tracing::instrument(skip_all, fields(database = %redact_url(url)))]
pub async fn connect_existing(url: &str) -> DbResult<DatabaseConnection> {
    let options = match DatabaseTarget::parse(url)? {
        DatabaseTarget::SqliteMemory => sqlite_memory_options(url),
        DatabaseTarget::SqliteFile(path) => {
            if !path.is_file() {
                return Err(DbError::NotFound(format!("the database file {}", path.display())));
            }
            sqlite_file_options(url, false)
        }
        DatabaseTarget::Postgres => postgres_options(url),
    };
    open(url, options).await
}

/// The file a `sqlite:` URL names (as written, relative to the working directory), or `None` for
/// an in-memory or PostgreSQL database.
pub fn sqlite_file(url: &str) -> DbResult<Option<PathBuf>> {
    Ok(match DatabaseTarget::parse(url)? {
        DatabaseTarget::SqliteFile(path) => Some(path),
        DatabaseTarget::SqliteMemory | DatabaseTarget::Postgres => None,
    })
}

/// Whether migrations ever ran on this database (sea-orm's `seaql_migrations` table exists).
#[tracing::instrument(skip_all)]
pub async fn has_castellan_schema(db: &DatabaseConnection) -> DbResult<bool> {
    sea_orm_migration::SchemaManager::new(db)
        .has_table("seaql_migrations")
        .await
        .map_err(|error| DbError::Unavailable(error.to_string()))
}

async fn open(url: &str, options: ConnectOptions) -> DbResult<DatabaseConnection> {
    Database::connect(options).await.map_err(|error| {
        if is_pool_timeout(&error) {
            // sqlx retries refused connections until the timeout and then reports only the timeout.
            return DbError::Unavailable(format!(
                "no connection within {}s: is the server running, and reachable at this host and port?",
                CONNECT_TIMEOUT.as_secs()
            ));
        }
        let message = redact_secret(&error.to_string(), url);
        if is_configuration_error(&error) {
            DbError::Other(format!("invalid database URL: {message}"))
        } else {
            DbError::Unavailable(message)
        }
    })
}

/// A URL the driver refused to interpret is the operator's mistake, not an outage.
fn is_configuration_error(error: &DbErr) -> bool {
    match error {
        DbErr::Conn(RuntimeErr::SqlxError(sqlx_error)) => {
            matches!(sqlx_error.as_ref(), sqlx::Error::Configuration(_))
        }
        _ => false,
    }
}

fn is_pool_timeout(error: &DbErr) -> bool {
    match error {
        DbErr::Conn(RuntimeErr::SqlxError(sqlx_error)) => matches!(sqlx_error.as_ref(), sqlx::Error::PoolTimedOut),
        _ => false,
    }
}

/// Checks that the database answers.
#[tracing::instrument(skip_all)]
pub async fn ping(db: &DatabaseConnection) -> DbResult<()> {
    db.ping().await.map_err(|error| DbError::Unavailable(error.to_string()))
}

/// Creates `path` and its missing ancestors with mode 0700 (owner only), whatever the umask. A
/// directory that already exists keeps its mode.
pub fn create_private_directory(path: &Path) -> std::io::Result<()> {
    let missing: Vec<&Path> =
        path.ancestors().take_while(|ancestor| !ancestor.as_os_str().is_empty() && !ancestor.exists()).collect();
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)?;
    for created in missing {
        set_mode(created, 0o700)?;
    }
    Ok(())
}

/// Creates an empty file with mode 0600 (owner only), whatever the umask; an existing file is left
/// as it is.
pub fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => set_mode(path, 0o600),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

/// The pragmas every SQLite connection gets when it is opened.
fn durable_sqlite_options(options: SqliteConnectOptions) -> SqliteConnectOptions {
    options
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(CONNECT_TIMEOUT)
        .foreign_keys(true)
}

fn base_options(url: &str) -> ConnectOptions {
    let mut options = ConnectOptions::new(url);
    options
        .connect_timeout(CONNECT_TIMEOUT)
        .acquire_timeout(CONNECT_TIMEOUT)
        // Statements are traced by sea-orm's spans; sqlx's own log lines would be noise.
        .sqlx_logging(false);
    options
}

fn sqlite_file_options(url: &str, create_if_missing: bool) -> ConnectOptions {
    let mut options = base_options(url);
    options
        .max_connections(SQLITE_MAX_CONNECTIONS)
        .min_connections(1)
        // A local file needs no liveness ping before every statement.
        .test_before_acquire(false)
        .map_sqlx_sqlite_opts(move |options| durable_sqlite_options(options).create_if_missing(create_if_missing));
    options
}

/// An in-memory database lives only as long as a connection to it: one connection, kept
/// forever, so every statement sees the same database.
fn sqlite_memory_options(url: &str) -> ConnectOptions {
    let mut options = base_options(url);
    options
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None::<Duration>)
        .max_lifetime(None::<Duration>)
        .test_before_acquire(false)
        .map_sqlx_sqlite_opts(|options| durable_sqlite_options(options).create_if_missing(true));
    options
}

fn postgres_options(url: &str) -> ConnectOptions {
    let mut options = base_options(url);
    options
        .max_connections(POSTGRES_MAX_CONNECTIONS)
        .min_connections(1)
        .test_before_acquire_if_idle_for(POSTGRES_PING_AFTER_IDLE)
        .set_application_name("castellan")
        .map_sqlx_postgres_pool_opts(|pool_options| {
            // A SET on each new session rather than a startup option: connection poolers
            // such as PgBouncer refuse unknown startup parameters.
            pool_options.after_connect(|connection, _metadata| {
                Box::pin(async move {
                    sqlx::Executor::execute(&mut *connection, "SET synchronous_commit = on").await.map(|_| ())
                })
            })
        });
    options
}

/// The URL with its password replaced by `***`, for logs and messages.
pub fn redact_url(url: &str) -> String {
    match password_span(url) {
        Some((start, end)) => format!("{}***{}", &url[..start], &url[end..]),
        None => url.to_owned(),
    }
}

/// `message` with every occurrence of the URL's password (as written, and percent-decoded)
/// replaced by `***`.
fn redact_secret(message: &str, url: &str) -> String {
    let Some((start, end)) = password_span(url) else {
        return message.to_owned();
    };
    let raw_password = &url[start..end];
    let mut redacted = message.replace(raw_password, "***");
    let decoded_password = percent_decode(raw_password);
    if !decoded_password.is_empty() && decoded_password != raw_password {
        redacted = redacted.replace(&decoded_password, "***");
    }
    redacted
}

/// Byte range of the password in `scheme://user:password@host/...`, if there is one.
fn password_span(url: &str) -> Option<(usize, usize)> {
    let authority_start = url.find("://")? + 3;
    let after_scheme = &url[authority_start..];
    let authority_len = after_scheme.find(['/', '?', '#']).unwrap_or(after_scheme.len());
    let authority = &after_scheme[..authority_len];
    let userinfo_end = authority.rfind('@')?;
    let userinfo = &authority[..userinfo_end];
    let colon = userinfo.find(':')?;
    let start = authority_start + colon + 1;
    let end = authority_start + userinfo_end;
    (start < end).then_some((start, end))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && let Some(hex_digits) = text.get(index + 1..index + 3)
            && let Ok(byte) = u8::from_str_radix(hex_digits, 16)
        {
            decoded.push(byte);
            index += 3;
            continue;
        }
        decoded.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_database_targets() {
        let cases = [
            ("sqlite::memory:", Some(DatabaseTarget::SqliteMemory)),
            ("sqlite://:memory:", Some(DatabaseTarget::SqliteMemory)),
            ("sqlite://?mode=memory", Some(DatabaseTarget::SqliteMemory)),
            (
                "sqlite://castellan-data/castellan.db",
                Some(DatabaseTarget::SqliteFile("castellan-data/castellan.db".into())),
            ),
            (
                "sqlite:///var/lib/castellan/db.sqlite",
                Some(DatabaseTarget::SqliteFile("/var/lib/castellan/db.sqlite".into())),
            ),
            ("sqlite:relative.db?mode=rwc", Some(DatabaseTarget::SqliteFile("relative.db".into()))),
            ("postgres://postgres@127.0.0.1/db", Some(DatabaseTarget::Postgres)),
            ("postgresql://u:p@h:5432/db", Some(DatabaseTarget::Postgres)),
            ("mysql://root:pw@localhost/db", None),
            ("sqlite://", None),
        ];
        for (url, expected) in cases {
            assert_eq!(DatabaseTarget::parse(url).ok(), expected, "parsing {url}");
        }
    }

    #[test]
    fn unsupported_url_error_hides_password() {
        let error = DatabaseTarget::parse("mysql://root:hunter2@localhost/db").expect_err("mysql is not supported");
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }

    #[test]
    fn redacts_passwords() {
        let cases = [
            ("postgres://u:secret@h:5432/db", "postgres://u:***@h:5432/db"),
            ("postgres://u:p%40ss@h/db?x=1", "postgres://u:***@h/db?x=1"),
            ("postgres://u@h/db", "postgres://u@h/db"),
            ("postgres://h/db", "postgres://h/db"),
            ("sqlite://data/a@b.db", "sqlite://data/a@b.db"),
            ("postgres://u:a:b@c@h/db", "postgres://u:***@h/db"),
        ];
        for (url, expected) in cases {
            assert_eq!(redact_url(url), expected, "redacting {url}");
        }
        assert_eq!(
            redact_secret("cannot connect with p@ss or p%40ss", "postgres://u:p%40ss@h/db"),
            "cannot connect with *** or ***"
        );
    }
}
