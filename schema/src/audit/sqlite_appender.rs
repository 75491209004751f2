//! The audit append on a SQLite file through a connection of its own, owned by the audit writer's
//! thread ([`crate::sqlite_direct`]): on this path the commit's own `fsync` is most of what is left.
//!
//! Like [`super::append`], it writes only when the writer's head is still the stored head, read
//! under the write lock (`BEGIN IMMEDIATE`); otherwise it writes nothing and the caller takes the
//! careful path.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{CHAIN_HEAD_KEY, NewExecution, chain_hash};
use crate::audit::chain::GENESIS_HASH;
use crate::error::DbResult;
use crate::sqlite_direct::{self, classify, stored_time};

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
    /// Opens `path` (which must exist and hold the schema) with the writer's settings.
    pub fn open(path: &Path) -> DbResult<SqliteAppender> {
        Ok(SqliteAppender { connection: sqlite_direct::open_writer(path, "audit")? })
    }

    /// A second connection to `path`, for [`SqliteAppender::checkpoint`] on another thread.
    pub fn open_checkpointer(path: &Path) -> DbResult<SqliteAppender> {
        Ok(SqliteAppender { connection: sqlite_direct::open(path)? })
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

    /// Moves committed log pages into the database file without waiting (`PASSIVE`).
    pub fn checkpoint(&mut self) -> DbResult<()> {
        sqlite_direct::checkpoint(&self.connection)
    }

    /// Whether the database answers.
    pub fn ping(&mut self) -> DbResult<()> {
        sqlite_direct::ping(&self.connection)
    }
}
