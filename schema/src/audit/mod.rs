//! The audit trail of MCP tool calls (`mcp_tool_executions`), kept as a hash chain.
//!
//! Each row stores the previous row's hash (`prev_hash`, [`GENESIS_HASH`] for the first) and
//! its own (`row_hash`, see [`chain_hash`]). Rows are appended only by [`insert_batch`], one
//! transaction per batch, which also records the chain head (last id and hash) in
//! `castellan_meta`. [`verify`] walks the chain and finds an edited row, a deleted row, and
//! rows deleted from the end. Unique indexes on `prev_hash` and `row_hash` keep the chain from
//! forking even if two writers ever raced.
//!
//! Rows are deleted only by [`prune`]: a prefix of the chain at a time, never the newest row, each
//! batch recording a [`Checkpoint`] signed with a key derived from the master key, from which
//! [`verify`] continues.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use crate::entity::mcp_tool_executions as entity;
use crate::error::{DbError, DbResult};
use crate::meta;
use crate::time::truncate_to_micros;

mod append;
mod cap;
mod chain;
mod checkpoint;
mod prune;
mod sqlite_appender;
mod verify;

pub use append::append_from_known_head;
pub use cap::{MARKER_MAX_BYTES, cap_field, cap_row, truncation_marker};
pub use chain::{GENESIS_HASH, chain_hash};
pub use checkpoint::{CHECKPOINT_KEY, Checkpoint, CheckpointKey, has_checkpoint};
pub use prune::{PruneOutcome, prune};
pub use sqlite_appender::SqliteAppender;
pub use verify::{ChainBreak, ChainBreakReason, VerifyReport, verify};

/// Every value the `status` column may hold.
pub const EXECUTION_STATUSES: [&str; 7] =
    ["success", "tool_error", "rpc_error", "denied", "rate_limited", "timeout", "failed"];

/// Every value the `kind` column may hold.
pub const EXECUTION_KINDS: [&str; 3] = ["tool", "resource", "prompt"];

/// How a governed MCP request ended, as the `status` column stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExecutionStatus {
    Success,
    /// The tool ran and reported an error (`isError`).
    ToolError,
    /// A JSON-RPC error: bad parameters, an unknown name, or the server's own error answer.
    RpcError,
    Denied,
    RateLimited,
    Timeout,
    Failed,
}

impl ExecutionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Success => "success",
            ExecutionStatus::ToolError => "tool_error",
            ExecutionStatus::RpcError => "rpc_error",
            ExecutionStatus::Denied => "denied",
            ExecutionStatus::RateLimited => "rate_limited",
            ExecutionStatus::Timeout => "timeout",
            ExecutionStatus::Failed => "failed",
        }
    }

    /// The status a stored `status` value names, if it is one of [`EXECUTION_STATUSES`].
    pub fn parse(text: &str) -> Option<ExecutionStatus> {
        [
            ExecutionStatus::Success,
            ExecutionStatus::ToolError,
            ExecutionStatus::RpcError,
            ExecutionStatus::Denied,
            ExecutionStatus::RateLimited,
            ExecutionStatus::Timeout,
            ExecutionStatus::Failed,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// What an audit row records: a tool call, a resource request (read, list, subscribe,
/// completion of a resource template) or a prompt request (get, list, completion of a prompt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ExecutionKind {
    #[default]
    Tool,
    Resource,
    Prompt,
    /// A request to an extension's HTTP route (`/ext/{id}/...`).
    Route,
    /// A skills request: a listing, or a fetch of a skill's content (also in `skill_fetches`).
    Skill,
}

impl ExecutionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionKind::Tool => "tool",
            ExecutionKind::Resource => "resource",
            ExecutionKind::Prompt => "prompt",
            ExecutionKind::Route => "route",
            ExecutionKind::Skill => "skill",
        }
    }
}

/// The `castellan_meta` key holding `"{id} {row_hash}"` of the last appended row.
pub(crate) const CHAIN_HEAD_KEY: &str = "audit.mcp_tool_executions.head";

/// The largest page [`tail`] returns.
pub const TAIL_MAX_LIMIT: u64 = 10_000;

/// One tool call to append to the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewExecution {
    pub server: String,
    /// The tool's name (upstream), the resource's URI, the prompt's name, or for a listing the
    /// method (`resources/list`).
    pub tool: String,
    pub kind: ExecutionKind,
    /// The call's arguments, JSON.
    pub input: String,
    /// The result, JSON, when there is one.
    pub output: Option<String>,
    /// How it ended; stored as its [`ExecutionStatus::as_str`].
    pub status: ExecutionStatus,
    pub error_message: Option<String>,
    /// The principal's subject (user name).
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub trace_id: String,
    pub started_at: DateTime<Utc>,
    pub completed_at: DateTime<Utc>,
    pub duration_ms: i64,
    /// The hook decisions of this call, stored in the same transaction (so one durable commit
    /// covers the call and its decisions); they are `hook_events` rows, outside the hash chain.
    pub hook_events: Vec<crate::hook_events::HookEventRow>,
}

/// One stored row of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionRow {
    pub id: i64,
    pub server: String,
    pub tool: String,
    /// One of [`EXECUTION_KINDS`].
    pub kind: String,
    pub input: String,
    pub output: Option<String>,
    pub status: String,
    pub error_message: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub trace_id: String,
    pub started_at: DateTime<Utc>,
    pub completed_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub prev_hash: String,
    pub row_hash: String,
}

impl From<entity::Model> for ExecutionRow {
    fn from(model: entity::Model) -> ExecutionRow {
        ExecutionRow {
            id: model.id,
            server: model.server,
            tool: model.tool,
            kind: model.kind,
            input: model.input,
            output: model.output,
            status: model.status,
            error_message: model.error_message,
            user_id: model.user_id,
            session_id: model.session_id,
            trace_id: model.trace_id,
            started_at: model.started_at,
            completed_at: model.completed_at,
            duration_ms: model.duration_ms,
            prev_hash: model.prev_hash,
            row_hash: model.row_hash,
        }
    }
}

/// Which rows [`tail`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailFilter {
    /// Only rows whose `user_id` is this.
    pub user: Option<String>,
    pub server: Option<String>,
    pub tool: Option<String>,
    /// Only rows with a larger id (for `--follow`: pass the last id seen).
    pub after_id: Option<i64>,
    /// At most this many rows, capped at [`TAIL_MAX_LIMIT`].
    pub limit: u64,
}

impl Default for TailFilter {
    fn default() -> TailFilter {
        TailFilter { user: None, server: None, tool: None, after_id: None, limit: 100 }
    }
}

/// The chain head as last recorded by a writer (the hash of the last row appended), or
/// [`GENESIS_HASH`] when nothing was ever appended: the `prev_hash` a writer starts from. It comes
/// from the head record rather than the last row, so that rows removed from the end while no
/// writer ran are still noticed by the next [`insert_batch`].
#[tracing::instrument(skip_all)]
pub async fn last_hash(db: &DatabaseConnection) -> DbResult<String> {
    let recorded = meta::get_with(db, CHAIN_HEAD_KEY).await?;
    Ok(recorded
        .as_deref()
        .and_then(|record| record.split_once(' '))
        .map_or_else(|| GENESIS_HASH.to_owned(), |(_, hash)| hash.to_owned()))
}

/// Appends `rows` in order, in one transaction, chaining from the stored head. Returns the new ids
/// and the new last hash.
///
/// Several writers may share one database (replicas on one PostgreSQL): the transaction takes the
/// writer lock first (SQLite `BEGIN IMMEDIATE`, a PostgreSQL transaction-scoped advisory lock), so
/// batches are serialized and each chains from whatever the last writer left. `prev_hash` is the
/// caller's idea of the head; when another writer moved it, the batch simply chains from the new
/// head. What is refused is a head record that disagrees with the last row: rows were removed from
/// the end (or the record edited), and appending would hide it.
///
/// Fails without writing anything on such a mismatch or on any database error. Timestamps are truncated to microseconds
/// before hashing.
#[tracing::instrument(skip_all, fields(rows = rows.len()))]
pub async fn insert_batch(
    db: &DatabaseConnection,
    prev_hash: &str,
    rows: &[NewExecution],
) -> DbResult<(Vec<i64>, String)> {
    if rows.is_empty() {
        return Ok((Vec::new(), prev_hash.to_owned()));
    }
    if let Some(appended) = append::append_from_known_head(db, prev_hash, rows).await? {
        return Ok(appended);
    }
    let transaction = db
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        })
        .await?;
    if transaction.get_database_backend() == DbBackend::Postgres {
        transaction.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({CHAIN_LOCK_KEY})")).await?;
    }
    let stored_head = last_link_with(&transaction).await?;
    // The common case, one writer: the last row is the one this caller wrote last. Otherwise
    // another writer moved the head, or rows were removed; the head record tells which.
    let moved = stored_head.as_ref().map_or(GENESIS_HASH, |(_, hash)| hash.as_str()) != prev_hash;
    let expected = stored_head.as_ref().map(|(id, hash)| format!("{id} {hash}"));
    if moved && meta::get_with(&transaction, CHAIN_HEAD_KEY).await? != expected {
        return Err(DbError::Other(
            "the audit chain's head record does not match its last row (rows removed from the end, or the \
             record edited); nothing is appended until `castellan audit verify` has been looked at"
                .to_owned(),
        ));
    }
    let mut ids = Vec::with_capacity(rows.len());
    let mut previous = stored_head.map_or_else(|| GENESIS_HASH.to_owned(), |(_, hash)| hash);
    for row in rows {
        let row_hash = chain_hash(&previous, row);
        let model = active_model(row, previous, row_hash.clone());
        let inserted = entity::Entity::insert(model)
            .exec(&transaction)
            .await
            .map_err(|error| DbError::from_db_err(error, "audit chain link"))?;
        ids.push(inserted.last_insert_id);
        previous = row_hash;
    }
    if let Some(last_id) = ids.last() {
        meta::set_with(&transaction, CHAIN_HEAD_KEY, &format!("{last_id} {previous}")).await?;
    }
    let decisions: Vec<crate::hook_events::HookEventRow> =
        rows.iter().flat_map(|row| row.hook_events.iter().cloned()).collect();
    crate::hook_events::record_many(&transaction, &decisions).await?;
    transaction.commit().await?;
    Ok((ids, previous))
}

/// The PostgreSQL advisory lock key that serializes audit writers ("CASTAUD" in ASCII).
pub(crate) const CHAIN_LOCK_KEY: i64 = 0x43_41_53_54_41_55_44;

/// (id, row_hash) of the last row, if any.
async fn last_link_with<C: ConnectionTrait>(db: &C) -> DbResult<Option<(i64, String)>> {
    Ok(entity::Entity::find()
        .select_only()
        .column(entity::Column::Id)
        .column(entity::Column::RowHash)
        .order_by_desc(entity::Column::Id)
        .limit(1)
        .into_tuple()
        .one(db)
        .await?)
}

fn active_model(row: &NewExecution, prev_hash: String, row_hash: String) -> entity::ActiveModel {
    entity::ActiveModel {
        id: ActiveValue::NotSet,
        server: ActiveValue::Set(row.server.clone()),
        kind: ActiveValue::Set(row.kind.as_str().to_owned()),
        tool: ActiveValue::Set(row.tool.clone()),
        input: ActiveValue::Set(row.input.clone()),
        output: ActiveValue::Set(row.output.clone()),
        status: ActiveValue::Set(row.status.as_str().to_owned()),
        error_message: ActiveValue::Set(row.error_message.clone()),
        user_id: ActiveValue::Set(row.user_id.clone()),
        session_id: ActiveValue::Set(row.session_id.clone()),
        trace_id: ActiveValue::Set(row.trace_id.clone()),
        started_at: ActiveValue::Set(truncate_to_micros(row.started_at)),
        completed_at: ActiveValue::Set(truncate_to_micros(row.completed_at)),
        duration_ms: ActiveValue::Set(row.duration_ms),
        prev_hash: ActiveValue::Set(prev_hash),
        row_hash: ActiveValue::Set(row_hash),
    }
}

/// The newest rows matching `filter`, oldest first (newest last). With `after_id`, the
/// oldest rows after it instead, so a follower pages forward without gaps.
#[tracing::instrument(skip_all, fields(after_id = filter.after_id, limit = filter.limit))]
pub async fn tail(db: &DatabaseConnection, filter: &TailFilter) -> DbResult<Vec<ExecutionRow>> {
    let mut query = entity::Entity::find();
    if let Some(user) = &filter.user {
        query = query.filter(entity::Column::UserId.eq(user.as_str()));
    }
    if let Some(server) = &filter.server {
        query = query.filter(entity::Column::Server.eq(server.as_str()));
    }
    if let Some(tool) = &filter.tool {
        query = query.filter(entity::Column::Tool.eq(tool.as_str()));
    }
    let limit = filter.limit.min(TAIL_MAX_LIMIT);
    let rows = crate::tail::newest_or_after(db, query, entity::Column::Id, filter.after_id, limit).await?;
    Ok(rows.into_iter().map(ExecutionRow::from).collect())
}

/// Every tool execution of one trace, oldest first (at most [`TAIL_MAX_LIMIT`]).
#[tracing::instrument(skip_all, fields(trace_id = %trace_id))]
pub async fn by_trace_id(db: &DatabaseConnection, trace_id: &str) -> DbResult<Vec<ExecutionRow>> {
    let rows = entity::Entity::find()
        .filter(entity::Column::TraceId.eq(trace_id))
        .order_by_asc(entity::Column::Id)
        .limit(TAIL_MAX_LIMIT)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(ExecutionRow::from).collect())
}
