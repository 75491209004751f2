//! Writing `ai_requests`: the `started` row, its one completion, the row of a refused request, and
//! all three in one transaction for the writer's group commit.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};

use super::{AiCompletion, AiRequestStatus, ERROR_MESSAGE_MAX_BYTES, INTERRUPTED_MESSAGE, NewAiRequest};
use crate::audit::cap_field;
use crate::entity::ai_requests as entity;
use crate::error::{DbError, DbResult};
use crate::time::truncate_to_micros;

/// One write of a batch ([`write_batch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AiRequestWrite {
    /// A `started` row ([`insert_started`]).
    Start(NewAiRequest),
    /// The completion of a `started` row ([`complete`]).
    Complete { id: i64, completion: AiCompletion },
    /// A row that starts and ends at once ([`insert_finished`]).
    Finish(NewAiRequest, AiCompletion),
}

/// What one write of a batch did, in the batch's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AiRequestWritten {
    /// A row was inserted (a start or a finish) with this id.
    Inserted(i64),
    /// A completion: whether it completed the row (false: it was no longer `started`, or unknown).
    Completed(bool),
}

/// Stores the `started` row of a request about to go upstream; returns its id.
#[tracing::instrument(skip_all, fields(trace_id = %row.trace_id))]
pub async fn insert_started(db: &DatabaseConnection, row: &NewAiRequest) -> DbResult<i64> {
    insert_started_with(db, row).await
}

/// Completes the row `id` if it is still `started`; returns whether it did. A completed row never
/// changes again: a second completion (or one after [`mark_interrupted`]) changes nothing.
#[tracing::instrument(skip_all, fields(id = id, status = completion.status.as_str()))]
pub async fn complete(db: &DatabaseConnection, id: i64, completion: &AiCompletion) -> DbResult<bool> {
    check_ends(completion)?;
    complete_with(db, id, completion).await
}

/// Stores a request that ended before it went upstream (denied, rate limited, over budget, bad
/// input) as one finished row; returns its id.
#[tracing::instrument(skip_all, fields(trace_id = %row.trace_id, status = completion.status.as_str()))]
pub async fn insert_finished(db: &DatabaseConnection, row: &NewAiRequest, completion: &AiCompletion) -> DbResult<i64> {
    check_ends(completion)?;
    insert_finished_with(db, row, completion).await
}

/// Applies `writes` in order in one transaction (one durable commit for all of them): all or
/// nothing. A completion that finds its row no longer `started` is not an error; it reports
/// `Completed(false)`.
#[tracing::instrument(skip_all, fields(writes = writes.len()))]
pub async fn write_batch(db: &DatabaseConnection, writes: &[AiRequestWrite]) -> DbResult<Vec<AiRequestWritten>> {
    if writes.is_empty() {
        return Ok(Vec::new());
    }
    for write in writes {
        match write {
            AiRequestWrite::Start(_) => {}
            AiRequestWrite::Complete { completion, .. } | AiRequestWrite::Finish(_, completion) => {
                check_ends(completion)?
            }
        }
    }
    // `BEGIN IMMEDIATE` on SQLite: the write lock up front, so waiting for it honours the busy
    // timeout instead of failing on an upgrade from a read lock.
    let transaction = db
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        })
        .await?;
    let mut written = Vec::with_capacity(writes.len());
    for write in writes {
        written.push(match write {
            AiRequestWrite::Start(row) => AiRequestWritten::Inserted(insert_started_with(&transaction, row).await?),
            AiRequestWrite::Complete { id, completion } => {
                AiRequestWritten::Completed(complete_with(&transaction, *id, completion).await?)
            }
            AiRequestWrite::Finish(row, completion) => {
                AiRequestWritten::Inserted(insert_finished_with(&transaction, row, completion).await?)
            }
        });
    }
    transaction.commit().await?;
    Ok(written)
}

/// Closes the rows a crash left `started` (started at or before `started_before`): they become
/// `failed` with [`INTERRUPTED_MESSAGE`], completed at `now`. Returns how many. A single daemon
/// (SQLite) passes its start time; replicas sharing a database pass a time before which no request
/// can still be running anywhere (the longest provider timeout ago), so no replica closes
/// another's request in flight.
#[tracing::instrument(skip_all)]
pub async fn mark_interrupted(
    db: &DatabaseConnection,
    started_before: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DbResult<u64> {
    let now = truncate_to_micros(now);
    let started_before = truncate_to_micros(started_before);
    let result = entity::Entity::update_many()
        .col_expr(entity::Column::Status, Expr::value(AiRequestStatus::Failed.as_str()))
        .col_expr(entity::Column::ErrorMessage, Expr::value(INTERRUPTED_MESSAGE))
        .col_expr(entity::Column::CompletedAt, Expr::value(now))
        .filter(entity::Column::Status.eq(AiRequestStatus::Started.as_str()))
        .filter(entity::Column::StartedAt.lte(started_before))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// A completion must end the request: `started` is not an ending.
pub(super) fn check_ends(completion: &AiCompletion) -> DbResult<()> {
    if completion.status == AiRequestStatus::Started {
        return Err(DbError::Other("an AI request completion cannot have the status `started`".to_owned()));
    }
    Ok(())
}

pub(super) fn bounded(message: &Option<String>) -> Option<String> {
    message.clone().map(|message| cap_field(message, ERROR_MESSAGE_MAX_BYTES))
}

async fn insert_started_with<C: ConnectionTrait>(db: &C, row: &NewAiRequest) -> DbResult<i64> {
    let inserted = entity::Entity::insert(base(row)).exec(db).await?;
    Ok(inserted.last_insert_id)
}

async fn insert_finished_with<C: ConnectionTrait>(
    db: &C,
    row: &NewAiRequest,
    completion: &AiCompletion,
) -> DbResult<i64> {
    let mut model = base(row);
    if let Some(provider) = &completion.provider {
        model.provider = ActiveValue::Set(provider.clone());
    }
    if let Some(upstream_model) = &completion.upstream_model {
        model.upstream_model = ActiveValue::Set(upstream_model.clone());
    }
    model.input_tokens = ActiveValue::Set(completion.input_tokens);
    model.output_tokens = ActiveValue::Set(completion.output_tokens);
    model.cache_read_tokens = ActiveValue::Set(completion.cache_read_tokens);
    model.cache_write_tokens = ActiveValue::Set(completion.cache_write_tokens);
    model.cost_microdollars = ActiveValue::Set(completion.cost_microdollars);
    model.latency_ms = ActiveValue::Set(completion.latency_ms);
    model.ttft_ms = ActiveValue::Set(completion.ttft_ms);
    model.status = ActiveValue::Set(completion.status.as_str().to_owned());
    model.error_message = ActiveValue::Set(bounded(&completion.error_message));
    model.completed_at = ActiveValue::Set(Some(truncate_to_micros(completion.completed_at)));
    let inserted = entity::Entity::insert(model).exec(db).await?;
    Ok(inserted.last_insert_id)
}

async fn complete_with<C: ConnectionTrait>(db: &C, id: i64, completion: &AiCompletion) -> DbResult<bool> {
    let mut update = entity::Entity::update_many()
        .col_expr(entity::Column::InputTokens, Expr::value(completion.input_tokens))
        .col_expr(entity::Column::OutputTokens, Expr::value(completion.output_tokens))
        .col_expr(entity::Column::CacheReadTokens, Expr::value(completion.cache_read_tokens))
        .col_expr(entity::Column::CacheWriteTokens, Expr::value(completion.cache_write_tokens))
        .col_expr(entity::Column::CostMicrodollars, Expr::value(completion.cost_microdollars))
        .col_expr(entity::Column::LatencyMs, Expr::value(completion.latency_ms))
        .col_expr(entity::Column::TtftMs, Expr::value(completion.ttft_ms))
        .col_expr(entity::Column::Status, Expr::value(completion.status.as_str()))
        .col_expr(entity::Column::ErrorMessage, Expr::value(bounded(&completion.error_message)))
        .col_expr(entity::Column::CompletedAt, Expr::value(Some(truncate_to_micros(completion.completed_at))));
    if let Some(provider) = &completion.provider {
        update = update.col_expr(entity::Column::Provider, Expr::value(provider.clone()));
    }
    if let Some(upstream_model) = &completion.upstream_model {
        update = update.col_expr(entity::Column::UpstreamModel, Expr::value(upstream_model.clone()));
    }
    // One conditional statement: of two completions, the one that finds the row `started` wins.
    let result = update
        .filter(entity::Column::Id.eq(id))
        .filter(entity::Column::Status.eq(AiRequestStatus::Started.as_str()))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// The fields every row takes from its [`NewAiRequest`]; nothing of the ending yet.
fn base(row: &NewAiRequest) -> entity::ActiveModel {
    entity::ActiveModel {
        id: ActiveValue::NotSet,
        user_id: ActiveValue::Set(row.user_id.clone()),
        api_key_id: ActiveValue::Set(row.api_key_id.clone()),
        session_id: ActiveValue::Set(row.session_id.clone()),
        trace_id: ActiveValue::Set(row.trace_id.clone()),
        endpoint: ActiveValue::Set(row.endpoint.clone()),
        provider: ActiveValue::Set(row.provider.clone()),
        model: ActiveValue::Set(row.model.clone()),
        upstream_model: ActiveValue::Set(row.upstream_model.clone()),
        input_tokens: ActiveValue::Set(None),
        output_tokens: ActiveValue::Set(None),
        cache_read_tokens: ActiveValue::Set(None),
        cache_write_tokens: ActiveValue::Set(None),
        cost_microdollars: ActiveValue::Set(None),
        latency_ms: ActiveValue::Set(None),
        ttft_ms: ActiveValue::Set(None),
        status: ActiveValue::Set(AiRequestStatus::Started.as_str().to_owned()),
        error_message: ActiveValue::Set(None),
        streamed: ActiveValue::Set(row.streamed),
        started_at: ActiveValue::Set(truncate_to_micros(row.started_at)),
        completed_at: ActiveValue::Set(None),
    }
}
