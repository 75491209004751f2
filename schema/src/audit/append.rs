//! The common case of an append, in as few round trips as the database allows: the writer's own
//! chain head is still the stored one, so the batch can be written without reading the head
//! first. Each row's insert is guarded by "the stored head is this row's `prev_hash`", so a head
//! that moved (another writer) or went back (rows removed from the end) writes nothing, and the
//! caller falls back to the careful path, which reads the head and decides.
//!
//! SQLite: one round trip carrying the whole transaction (`BEGIN IMMEDIATE` ... `COMMIT`).
//! PostgreSQL: one statement (data-modifying CTEs), atomic on its own, holding the writers' advisory
//! lock from before its first row until it commits. Its head comes from the statement's snapshot,
//! which may predate the lock: a writer that appended from the same head in between trips the
//! unique index on `prev_hash`, and the loser takes the careful path.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, RuntimeErr, SqlErr, Statement, Value};

use super::{CHAIN_HEAD_KEY, CHAIN_LOCK_KEY, NewExecution, chain_hash};
use crate::audit::chain::GENESIS_HASH;
use crate::error::DbResult;
use crate::hook_events::HookEventRow;
use crate::time::truncate_to_micros;

const COLUMNS: &str = "server, tool, kind, input, output, status, error_message, user_id, session_id, trace_id, \
                       started_at, completed_at, duration_ms, prev_hash, row_hash";
const COLUMN_COUNT: usize = 15;
const HOOK_COLUMNS: &str = "event, decision, handler, reason, server, tool, user_id, trace_id, created_at";
const HOOK_COLUMN_COUNT: usize = 9;
/// Past this many bound values the careful path (one statement per row) is used instead.
const MAX_VALUES: usize = 30_000;

/// Appends `rows` after `prev_hash` if that is still the stored head: the new ids and the new
/// head hash, or `None` when the head is not `prev_hash` (nothing was written).
pub async fn append_from_known_head(
    db: &DatabaseConnection,
    prev_hash: &str,
    rows: &[NewExecution],
) -> DbResult<Option<(Vec<i64>, String)>> {
    let hooks: Vec<&HookEventRow> = rows.iter().flat_map(|row| row.hook_events.iter()).collect();
    if rows.len() * (COLUMN_COUNT + 2) + hooks.len() * HOOK_COLUMN_COUNT > MAX_VALUES {
        return Ok(None);
    }
    let mut chained = Vec::with_capacity(rows.len());
    let mut previous = prev_hash.to_owned();
    for row in rows {
        let hash = chain_hash(&previous, row);
        chained.push((row, previous, hash.clone()));
        previous = hash;
    }
    match db.get_database_backend() {
        DbBackend::Postgres => postgres(db, &chained, &hooks, previous).await,
        _ => sqlite(db, &chained, &hooks, previous).await,
    }
}

type Chained<'a> = (&'a NewExecution, String, String);

fn row_values(row: &NewExecution, prev_hash: &str, row_hash: &str) -> [Value; COLUMN_COUNT] {
    [
        row.server.clone().into(),
        row.tool.clone().into(),
        row.kind.as_str().to_owned().into(),
        row.input.clone().into(),
        row.output.clone().into(),
        row.status.as_str().to_owned().into(),
        row.error_message.clone().into(),
        row.user_id.clone().into(),
        row.session_id.clone().into(),
        row.trace_id.clone().into(),
        truncate_to_micros(row.started_at).into(),
        truncate_to_micros(row.completed_at).into(),
        row.duration_ms.into(),
        prev_hash.to_owned().into(),
        row_hash.to_owned().into(),
    ]
}

fn hook_values(hook: &HookEventRow) -> [Value; HOOK_COLUMN_COUNT] {
    [
        hook.event.clone().into(),
        hook.decision.clone().into(),
        hook.handler.clone().into(),
        hook.reason.clone().into(),
        hook.server.clone().into(),
        hook.tool.clone().into(),
        hook.user_id.clone().into(),
        hook.trace_id.clone().into(),
        truncate_to_micros(hook.created_at).into(),
    ]
}

fn placeholders(count: usize, next: &mut impl FnMut() -> String) -> String {
    (0..count).map(|_| next()).collect::<Vec<_>>().join(", ")
}

/// The whole transaction in one round trip to SQLite's worker thread (each round trip costs
/// about as much as the commit itself): `BEGIN IMMEDIATE`, a guarded insert per row (each returns
/// its id when it went in), the head record and the hook decisions (both only when the last row
/// went in), `COMMIT`. When the head was not `prev_hash`, nothing went in and an empty
/// transaction was committed.
async fn sqlite(
    db: &DatabaseConnection,
    chained: &[Chained<'_>],
    hooks: &[&HookEventRow],
    head_hash: String,
) -> DbResult<Option<(Vec<i64>, String)>> {
    let mut sql = String::from("BEGIN IMMEDIATE;\n");
    let mut values: Vec<Value> = Vec::new();
    let mut question = || "?".to_string();
    // `changes()` is the row count of the statement before: each statement after the first insert
    // runs only if the one before it wrote, so the batch goes in whole or not at all.
    for (index, (row, prev_hash, row_hash)) in chained.iter().enumerate() {
        let after_previous = if index == 0 { "" } else { "changes() = 1 AND " };
        sql.push_str(&format!(
            "INSERT INTO mcp_tool_executions ({COLUMNS}) SELECT {} WHERE {after_previous}COALESCE((SELECT row_hash \
             FROM mcp_tool_executions ORDER BY id DESC LIMIT 1), ?) = ? RETURNING id;\n",
            placeholders(COLUMN_COUNT, &mut question)
        ));
        values.extend(row_values(row, prev_hash, row_hash));
        values.push(GENESIS_HASH.into());
        values.push(prev_hash.clone().into());
    }
    sql.push_str(
        "INSERT INTO castellan_meta (key, value) SELECT ?, id || ' ' || row_hash FROM mcp_tool_executions \
         WHERE changes() = 1 AND row_hash = ? ON CONFLICT (key) DO UPDATE SET value = excluded.value;\n",
    );
    values.push(CHAIN_HEAD_KEY.into());
    values.push(head_hash.clone().into());
    if !hooks.is_empty() {
        let tuples: Vec<String> =
            hooks.iter().map(|_| format!("({})", placeholders(HOOK_COLUMN_COUNT, &mut question))).collect();
        sql.push_str(&format!(
            "INSERT INTO hook_events ({HOOK_COLUMNS}) SELECT * FROM (VALUES {}) WHERE changes() = 1;\n",
            tuples.join(", ")
        ));
        values.extend(hooks.iter().flat_map(|hook| hook_values(hook)));
    }
    sql.push_str("COMMIT;");

    use sea_orm::sqlx::{self, Row as _};
    let exec_error = |error: sqlx::Error| DbErr::Exec(RuntimeErr::SqlxError(std::sync::Arc::new(error)));
    let mut connection = db
        .get_sqlite_connection_pool()
        .acquire()
        .await
        .map_err(|error| DbErr::Conn(RuntimeErr::SqlxError(std::sync::Arc::new(error))))?;
    // Built from the fixed fragments above and `?` placeholders only; every value is bound.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    // The same values, bound as sea-orm binds them on the careful path (so the stored text of a
    // timestamp is the same either way).
    for value in values {
        query = match value {
            Value::String(text) => query.bind(text),
            Value::BigInt(number) => query.bind(number),
            Value::ChronoDateTimeUtc(time) => query.bind(time),
            other => {
                return Err(crate::error::DbError::Other(format!("the audit append has no binding for {other:?}")));
            }
        };
    }
    let found = match query.fetch_all(&mut *connection).await {
        Ok(found) => found,
        Err(error) => {
            // A statement failed, perhaps inside the transaction: end it before the connection
            // goes back to the pool. "No transaction is active" means there is nothing to end (the
            // failure came first, at BEGIN); any other failure closes the connection rather than
            // hand out an open transaction.
            if let Err(rollback) = sqlx::query("ROLLBACK").execute(&mut *connection).await
                && !rollback.to_string().contains("no transaction is active")
            {
                let _ = connection.close().await;
            }
            return Err(exec_error(error).into());
        }
    };
    let ids = found.iter().map(|row| row.try_get::<i64, _>(0)).collect::<Result<Vec<_>, _>>().map_err(exec_error)?;
    match ids.len() {
        0 => Ok(None),
        n if n == chained.len() => Ok(Some((ids, head_hash))),
        n => Err(crate::error::DbError::Other(format!(
            "the audit append wrote {n} of {} rows while holding the write lock",
            chained.len()
        ))),
    }
}

/// One statement: the guarded insert of every row (in chain order), the head record and the hook
/// decisions as data-modifying CTEs; it returns the new ids, or nothing when the head moved.
async fn postgres(
    db: &DatabaseConnection,
    chained: &[Chained<'_>],
    hooks: &[&HookEventRow],
    head_hash: String,
) -> DbResult<Option<(Vec<i64>, String)>> {
    let mut values: Vec<Value> = Vec::new();
    let mut counter = 0usize;
    let mut dollar = || {
        counter += 1;
        format!("${counter}")
    };
    // The lock is the careful path's: while it holds it (between reading the head and the head
    // record), nothing of ours can commit. Taken only when the guard is evaluated, so before any
    // row goes in, and held until this statement commits.
    let guard = format!(
        "EXISTS (SELECT 1 FROM writer_lock) AND COALESCE((SELECT row_hash FROM head), {}) = {}",
        dollar(),
        dollar()
    );
    values.push(GENESIS_HASH.into());
    values.push(chained.first().map(|(_, prev_hash, _)| prev_hash.clone()).unwrap_or_default().into());
    let mut tuples = Vec::with_capacity(chained.len());
    for (ordinal, (row, prev_hash, row_hash)) in chained.iter().enumerate() {
        tuples.push(format!("({}, {ordinal})", placeholders(COLUMN_COUNT, &mut dollar)));
        values.extend(row_values(row, prev_hash, row_hash));
    }
    let key = dollar();
    values.push(CHAIN_HEAD_KEY.into());
    let mut sql = format!(
        "WITH writer_lock AS (SELECT pg_advisory_xact_lock({CHAIN_LOCK_KEY})), \
         head AS (SELECT row_hash FROM mcp_tool_executions ORDER BY id DESC LIMIT 1), \
         ins AS (INSERT INTO mcp_tool_executions ({COLUMNS}) SELECT {COLUMNS} FROM (VALUES {}) AS v({COLUMNS}, ord) \
         WHERE {guard} ORDER BY ord RETURNING id, row_hash), \
         head_record AS (INSERT INTO castellan_meta (key, value) SELECT {key}, id::text || ' ' || row_hash FROM ins \
         ORDER BY id DESC LIMIT 1 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value RETURNING 1)",
        tuples.join(", ")
    );
    if !hooks.is_empty() {
        let tuples: Vec<String> =
            hooks.iter().map(|_| format!("({})", placeholders(HOOK_COLUMN_COUNT, &mut dollar))).collect();
        values.extend(hooks.iter().flat_map(|hook| hook_values(hook)));
        sql.push_str(&format!(
            ", decisions AS (INSERT INTO hook_events ({HOOK_COLUMNS}) SELECT {HOOK_COLUMNS} FROM (VALUES {}) AS \
             h({HOOK_COLUMNS}) WHERE EXISTS (SELECT 1 FROM ins) RETURNING 1)",
            tuples.join(", ")
        ));
    }
    sql.push_str(" SELECT id FROM ins ORDER BY id");
    let found = match db.query_all_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values)).await {
        Ok(found) => found,
        // Another writer appended from the same head between our snapshot and our insert.
        Err(error) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let ids = found.iter().map(|row| row.try_get::<i64>("", "id")).collect::<Result<Vec<_>, _>>()?;
    if ids.len() != chained.len() {
        return Ok(None);
    }
    Ok(Some((ids, head_hash)))
}
