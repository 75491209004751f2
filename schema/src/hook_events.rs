//! The `hook_events` table: every hook decision with its reason and trace id.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use crate::entity::hook_events as entity;
use crate::error::DbResult;
use crate::time::truncate_to_micros;

/// A decision to record, or as read back (`id` 0 before it is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookEventRow {
    pub id: i64,
    pub event: String,
    pub decision: String,
    pub handler: String,
    pub reason: Option<String>,
    pub server: Option<String>,
    pub tool: Option<String>,
    pub user_id: Option<String>,
    pub trace_id: String,
    pub created_at: DateTime<Utc>,
}

impl From<entity::Model> for HookEventRow {
    fn from(model: entity::Model) -> HookEventRow {
        HookEventRow {
            id: model.id,
            event: model.event,
            decision: model.decision,
            handler: model.handler,
            reason: model.reason,
            server: model.server,
            tool: model.tool,
            user_id: model.user_id,
            trace_id: model.trace_id,
            created_at: model.created_at,
        }
    }
}

/// Stores one decision; returns its id.
#[tracing::instrument(skip_all, fields(event = %row.event, trace_id = %row.trace_id))]
pub async fn record(db: &DatabaseConnection, row: &HookEventRow) -> DbResult<i64> {
    let model = active_model(row).insert(db).await?;
    Ok(model.id)
}

fn active_model(row: &HookEventRow) -> entity::ActiveModel {
    entity::ActiveModel {
        id: ActiveValue::NotSet,
        event: ActiveValue::Set(row.event.clone()),
        decision: ActiveValue::Set(row.decision.clone()),
        handler: ActiveValue::Set(row.handler.clone()),
        reason: ActiveValue::Set(row.reason.clone()),
        server: ActiveValue::Set(row.server.clone()),
        tool: ActiveValue::Set(row.tool.clone()),
        user_id: ActiveValue::Set(row.user_id.clone()),
        trace_id: ActiveValue::Set(row.trace_id.clone()),
        created_at: ActiveValue::Set(truncate_to_micros(row.created_at)),
    }
}

/// Stores many decisions in one statement (the hook writer's group commit, or inside the audit
/// writer's transaction).
#[tracing::instrument(skip_all, fields(rows = rows.len()))]
pub async fn record_many<C: ConnectionTrait>(db: &C, rows: &[HookEventRow]) -> DbResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let models = rows.iter().map(active_model);
    entity::Entity::insert_many(models).exec_without_returning(db).await?;
    Ok(())
}

/// Every decision of one trace, oldest first (at most 10,000).
#[tracing::instrument(skip_all, fields(trace_id = %trace_id))]
pub async fn by_trace_id(db: &DatabaseConnection, trace_id: &str) -> DbResult<Vec<HookEventRow>> {
    let rows = entity::Entity::find()
        .filter(entity::Column::TraceId.eq(trace_id))
        .order_by_asc(entity::Column::Id)
        .limit(10_000)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(HookEventRow::from).collect())
}

/// The most rows one [`tail`] call returns.
pub const TAIL_MAX_LIMIT: u64 = 10_000;

/// Which decisions [`tail`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookTailFilter {
    /// Only decisions of this event (`PreToolUse`, ...).
    pub event: Option<String>,
    /// Only rows with a larger id (for `--follow`: pass the last id seen).
    pub after_id: Option<i64>,
    /// At most this many rows, capped at [`TAIL_MAX_LIMIT`].
    pub limit: u64,
}

/// The newest decisions matching `filter` (or, with `after_id`, the oldest ones after it), oldest
/// first: `castellan hooks tail`.
#[tracing::instrument(skip_all)]
pub async fn tail(db: &DatabaseConnection, filter: &HookTailFilter) -> DbResult<Vec<HookEventRow>> {
    let mut query = entity::Entity::find();
    if let Some(event) = &filter.event {
        query = query.filter(entity::Column::Event.eq(event.as_str()));
    }
    let limit = filter.limit.min(TAIL_MAX_LIMIT);
    let rows = crate::tail::newest_or_after(db, query, entity::Column::Id, filter.after_id, limit).await?;
    Ok(rows.into_iter().map(HookEventRow::from).collect())
}
