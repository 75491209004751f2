//! The scheduler's records: runs (`job_runs`), the lease that keeps a job to one replica at a time
//! (`job_leases`), and the forwarding jobs' cursors (`forward_cursors`).
//!
//! A lease is taken by one statement whose row count decides (an insert that does nothing on a
//! conflict, or an update conditional on the lease having expired or being the caller's own), never
//! by a read then a write, so two replicas on one PostgreSQL cannot both hold it.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use crate::entity::{forward_cursors, job_leases, job_runs};
use crate::error::DbResult;
use crate::time::truncate_to_micros;

/// How a run ended; `Running` until it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Success,
    Failed,
    TimedOut,
    /// The daemon stopped (or died) while it ran; marked at the next start.
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Success => "success",
            RunStatus::Failed => "failed",
            RunStatus::TimedOut => "timed_out",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

/// One run as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    pub id: i64,
    pub job: String,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub status: String,
    pub detail: Option<String>,
}

impl From<job_runs::Model> for RunRow {
    fn from(model: job_runs::Model) -> RunRow {
        RunRow {
            id: model.id,
            job: model.job,
            started_at: model.started_at,
            completed_at: model.completed_at,
            status: model.status,
            detail: model.detail,
        }
    }
}

/// Takes or renews `job`'s lease for `holder` until `now + ttl`. True when `holder` holds it now:
/// there was none, the last one expired, or it was already `holder`'s.
#[tracing::instrument(skip_all, fields(job = %job, holder = %holder))]
pub async fn acquire_lease(
    db: &DatabaseConnection,
    job: &str,
    holder: &str,
    now: DateTime<Utc>,
    ttl: std::time::Duration,
) -> DbResult<bool> {
    let now_ms = now.timestamp_millis();
    let expires_at_ms = now_ms.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
    let inserted = job_leases::Entity::insert(job_leases::ActiveModel {
        job: ActiveValue::Set(job.to_owned()),
        holder: ActiveValue::Set(holder.to_owned()),
        expires_at_ms: ActiveValue::Set(expires_at_ms),
    })
    .on_conflict(OnConflict::column(job_leases::Column::Job).do_nothing().to_owned())
    .exec_without_returning(db)
    .await?;
    if inserted > 0 {
        return Ok(true);
    }
    let updated = job_leases::Entity::update_many()
        .col_expr(job_leases::Column::Holder, Expr::value(holder.to_owned()))
        .col_expr(job_leases::Column::ExpiresAtMs, Expr::value(expires_at_ms))
        .filter(job_leases::Column::Job.eq(job))
        .filter(
            Condition::any()
                .add(job_leases::Column::ExpiresAtMs.lte(now_ms))
                .add(job_leases::Column::Holder.eq(holder)),
        )
        .exec(db)
        .await?;
    Ok(updated.rows_affected > 0)
}

/// Gives `job`'s lease up if `holder` holds it, so another replica need not wait for it to expire.
#[tracing::instrument(skip_all, fields(job = %job, holder = %holder))]
pub async fn release_lease(db: &DatabaseConnection, job: &str, holder: &str) -> DbResult<bool> {
    let deleted = job_leases::Entity::delete_many()
        .filter(job_leases::Column::Job.eq(job))
        .filter(job_leases::Column::Holder.eq(holder))
        .exec(db)
        .await?;
    Ok(deleted.rows_affected > 0)
}

/// Records that `job` started; returns the run's id.
#[tracing::instrument(skip_all, fields(job = %job))]
pub async fn start_run(db: &DatabaseConnection, job: &str, now: DateTime<Utc>) -> DbResult<i64> {
    let model = job_runs::ActiveModel {
        id: ActiveValue::NotSet,
        job: ActiveValue::Set(job.to_owned()),
        started_at: ActiveValue::Set(truncate_to_micros(now)),
        completed_at: ActiveValue::Set(None),
        status: ActiveValue::Set(RunStatus::Running.as_str().to_owned()),
        detail: ActiveValue::Set(None),
    }
    .insert(db)
    .await?;
    Ok(model.id)
}

/// Records how run `id` ended. False when there is no such run still running (finished twice).
#[tracing::instrument(skip_all, fields(run = id, status = status.as_str()))]
pub async fn finish_run(
    db: &DatabaseConnection,
    id: i64,
    status: RunStatus,
    detail: Option<&str>,
    now: DateTime<Utc>,
) -> DbResult<bool> {
    let updated = job_runs::Entity::update_many()
        .col_expr(job_runs::Column::Status, Expr::value(status.as_str()))
        .col_expr(job_runs::Column::Detail, Expr::value(detail.map(str::to_owned)))
        .col_expr(job_runs::Column::CompletedAt, Expr::value(Some(truncate_to_micros(now))))
        .filter(job_runs::Column::Id.eq(id))
        .filter(job_runs::Column::Status.eq(RunStatus::Running.as_str()))
        .exec(db)
        .await?;
    Ok(updated.rows_affected > 0)
}

/// The newest `limit` runs of `job`, newest first.
pub async fn recent_runs(db: &DatabaseConnection, job: &str, limit: u64) -> DbResult<Vec<RunRow>> {
    let rows = job_runs::Entity::find()
        .filter(job_runs::Column::Job.eq(job))
        .order_by_desc(job_runs::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(RunRow::from).collect())
}

/// The last row id of `table` delivered to `sink`; 0 before the first delivery.
pub async fn forward_cursor(db: &DatabaseConnection, sink: &str, table: &str) -> DbResult<i64> {
    let row = forward_cursors::Entity::find_by_id((sink.to_owned(), table.to_owned())).one(db).await?;
    Ok(row.map_or(0, |row| row.last_id))
}

/// Moves `sink`'s cursor on `table` to `last_id`; never backwards (a slower replica's late write of
/// an older position is ignored). True when it moved.
#[tracing::instrument(skip_all, fields(sink = %sink, table = %table, last_id))]
pub async fn advance_forward_cursor(db: &DatabaseConnection, sink: &str, table: &str, last_id: i64) -> DbResult<bool> {
    let inserted = forward_cursors::Entity::insert(forward_cursors::ActiveModel {
        sink: ActiveValue::Set(sink.to_owned()),
        source_table: ActiveValue::Set(table.to_owned()),
        last_id: ActiveValue::Set(last_id),
    })
    .on_conflict(
        OnConflict::columns([forward_cursors::Column::Sink, forward_cursors::Column::SourceTable])
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    if inserted > 0 {
        return Ok(true);
    }
    let updated = forward_cursors::Entity::update_many()
        .col_expr(forward_cursors::Column::LastId, Expr::value(last_id))
        .filter(forward_cursors::Column::Sink.eq(sink))
        .filter(forward_cursors::Column::SourceTable.eq(table))
        .filter(forward_cursors::Column::LastId.lt(last_id))
        .exec(db)
        .await?;
    Ok(updated.rows_affected > 0)
}
