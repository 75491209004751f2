//! Retention: old rows deleted by age, in bounded batches so a large prune never holds the write
//! lock for long, and never past what a forwarding sink has not yet received.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select};

use crate::entity::{ai_requests, hook_events, skill_fetches};
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
    /// Only the rows of this user (`anonymous`, for the shorter retention of anonymous callers).
    pub only_user: Option<&'static str>,
}

/// Deletes `ai_requests` rows that are finished and older than the limit (a row still `started`
/// is never pruned: the next start marks it). Returns how many were deleted.
#[tracing::instrument(skip_all)]
pub async fn prune_ai_requests(db: &DatabaseConnection, limits: PruneLimits) -> DbResult<u64> {
    let candidates = ai_requests::Entity::find()
        .filter(ai_requests::Column::StartedAt.lt(truncate_to_micros(limits.older_than)))
        .filter(ai_requests::Column::Status.ne(crate::ai_requests::AiRequestStatus::Started.as_str()));
    let candidates = match limits.only_user {
        Some(user) => candidates.filter(ai_requests::Column::UserId.eq(user)),
        None => candidates,
    };
    delete_in_batches(db, candidates, ai_requests::Column::Id, limits).await
}

/// Deletes `hook_events` rows older than the limit. Returns how many were deleted.
#[tracing::instrument(skip_all)]
pub async fn prune_hook_events(db: &DatabaseConnection, limits: PruneLimits) -> DbResult<u64> {
    let candidates =
        hook_events::Entity::find().filter(hook_events::Column::CreatedAt.lt(truncate_to_micros(limits.older_than)));
    let candidates = match limits.only_user {
        Some(user) => candidates.filter(hook_events::Column::UserId.eq(user)),
        None => candidates,
    };
    delete_in_batches(db, candidates, hook_events::Column::Id, limits).await
}

/// Deletes `skill_fetches` rows older than the limit. Returns how many were deleted.
#[tracing::instrument(skip_all)]
pub async fn prune_skill_fetches(db: &DatabaseConnection, limits: PruneLimits) -> DbResult<u64> {
    let candidates =
        skill_fetches::Entity::find().filter(skill_fetches::Column::At.lt(truncate_to_micros(limits.older_than)));
    let candidates = match limits.only_user {
        Some(user) => candidates.filter(skill_fetches::Column::UserId.eq(user)),
        None => candidates,
    };
    delete_in_batches(db, candidates, skill_fetches::Column::Id, limits).await
}

/// Deletes the rows `candidates` selects, at most `limits.batch` per statement, oldest id first,
/// none above `limits.forwarded_up_to`.
async fn delete_in_batches<E: EntityTrait>(
    db: &DatabaseConnection,
    candidates: Select<E>,
    id: E::Column,
    limits: PruneLimits,
) -> DbResult<u64> {
    let candidates = match limits.forwarded_up_to {
        Some(up_to) => candidates.filter(id.lte(up_to)),
        None => candidates,
    };
    let mut deleted = 0;
    loop {
        let ids: Vec<i64> = candidates
            .clone()
            .select_only()
            .column(id)
            .order_by_asc(id)
            .limit(limits.batch.max(1))
            .into_tuple()
            .all(db)
            .await?;
        if ids.is_empty() {
            return Ok(deleted);
        }
        deleted += E::delete_many().filter(id.is_in(ids)).exec(db).await?.rows_affected;
    }
}
