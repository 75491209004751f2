//! Retention: old rows deleted by age, in bounded batches so a large prune never holds the write
//! lock for long, and never past what a forwarding sink has not yet received.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::entity::{ai_requests, hook_events};
use crate::error::DbResult;
use crate::time::truncate_to_micros;

/// What one prune may touch.
#[derive(Debug, Clone, Copy)]
pub struct PruneLimits {
    /// Rows stamped before this are old enough.
    pub older_than: DateTime<Utc>,
    /// The highest id every configured sink has received: rows above it are kept whatever their
    /// age. `None` when no sink forwards this table.
    pub forwarded_up_to: Option<i64>,
    /// Rows deleted per statement.
    pub batch: u64,
}

/// Deletes `ai_requests` rows that are finished and older than the limit (a row still `started`
/// is never pruned: the next start marks it). Returns how many were deleted.
#[tracing::instrument(skip_all)]
pub async fn prune_ai_requests(db: &DatabaseConnection, limits: PruneLimits) -> DbResult<u64> {
    let mut deleted = 0;
    loop {
        let mut candidates = ai_requests::Entity::find()
            .select_only()
            .column(ai_requests::Column::Id)
            .filter(ai_requests::Column::StartedAt.lt(truncate_to_micros(limits.older_than)))
            .filter(ai_requests::Column::Status.ne(crate::ai_requests::AiRequestStatus::Started.as_str()));
        if let Some(up_to) = limits.forwarded_up_to {
            candidates = candidates.filter(ai_requests::Column::Id.lte(up_to));
        }
        let ids: Vec<i64> =
            candidates.order_by_asc(ai_requests::Column::Id).limit(limits.batch.max(1)).into_tuple().all(db).await?;
        if ids.is_empty() {
            return Ok(deleted);
        }
        let result = ai_requests::Entity::delete_many().filter(ai_requests::Column::Id.is_in(ids)).exec(db).await?;
        deleted += result.rows_affected;
    }
}

/// Deletes `hook_events` rows older than the limit. Returns how many were deleted.
#[tracing::instrument(skip_all)]
pub async fn prune_hook_events(db: &DatabaseConnection, limits: PruneLimits) -> DbResult<u64> {
    let mut deleted = 0;
    loop {
        let mut candidates = hook_events::Entity::find()
            .select_only()
            .column(hook_events::Column::Id)
            .filter(hook_events::Column::CreatedAt.lt(truncate_to_micros(limits.older_than)));
        if let Some(up_to) = limits.forwarded_up_to {
            candidates = candidates.filter(hook_events::Column::Id.lte(up_to));
        }
        let ids: Vec<i64> =
            candidates.order_by_asc(hook_events::Column::Id).limit(limits.batch.max(1)).into_tuple().all(db).await?;
        if ids.is_empty() {
            return Ok(deleted);
        }
        let result = hook_events::Entity::delete_many().filter(hook_events::Column::Id.is_in(ids)).exec(db).await?;
        deleted += result.rows_affected;
    }
}
