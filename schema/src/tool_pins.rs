//! Tool pins: the fingerprint of each tool's definition as first seen (trust on first use) or as
//! an admin last approved it, and the fingerprint last observed. A server that changes a tool's
//! description or schema shows up as a difference between the two.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ActiveValue, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};

use crate::entity::tool_pins as entity;
use crate::error::DbResult;
use crate::time::truncate_to_micros;

/// One pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinRow {
    pub server: String,
    pub tool: String,
    pub approved_hash: String,
    pub observed_hash: String,
    pub approved_at: DateTime<Utc>,
    pub observed_at: DateTime<Utc>,
}

impl From<entity::Model> for PinRow {
    fn from(model: entity::Model) -> PinRow {
        PinRow {
            server: model.server,
            tool: model.tool,
            approved_hash: model.approved_hash,
            observed_hash: model.observed_hash,
            approved_at: model.approved_at,
            observed_at: model.observed_at,
        }
    }
}

/// What an observation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// First sight: pinned as it is.
    New,
    /// As approved.
    Unchanged,
    /// Differs from the approved definition.
    Changed { approved_hash: String },
}

/// Records that `server`'s tool `tool` currently has definition hash `hash`.
#[tracing::instrument(skip_all, fields(server = %server, tool = %tool))]
pub async fn observe(
    db: &DatabaseConnection,
    server: &str,
    tool: &str,
    hash: &str,
    now: DateTime<Utc>,
) -> DbResult<Observation> {
    let now = truncate_to_micros(now);
    let existing = entity::Entity::find_by_id((server.to_owned(), tool.to_owned())).one(db).await?;
    let Some(existing) = existing else {
        let model = entity::ActiveModel {
            server: ActiveValue::Set(server.to_owned()),
            tool: ActiveValue::Set(tool.to_owned()),
            approved_hash: ActiveValue::Set(hash.to_owned()),
            observed_hash: ActiveValue::Set(hash.to_owned()),
            approved_at: ActiveValue::Set(now),
            observed_at: ActiveValue::Set(now),
        };
        // Another replica may have pinned it at the same moment: then this is an observation.
        if model.insert(db).await.is_ok() {
            return Ok(Observation::New);
        }
        return Box::pin(observe(db, server, tool, hash, now)).await;
    };
    if existing.observed_hash != hash {
        entity::Entity::update_many()
            .col_expr(entity::Column::ObservedHash, Expr::value(hash.to_owned()))
            .col_expr(entity::Column::ObservedAt, Expr::value(now))
            .filter(entity::Column::Server.eq(server))
            .filter(entity::Column::Tool.eq(tool))
            .exec(db)
            .await?;
    }
    Ok(if existing.approved_hash == hash {
        Observation::Unchanged
    } else {
        Observation::Changed { approved_hash: existing.approved_hash }
    })
}

/// Approves the last observed definition; false when there is no such pin.
#[tracing::instrument(skip_all, fields(server = %server, tool = %tool))]
pub async fn approve(db: &DatabaseConnection, server: &str, tool: &str, now: DateTime<Utc>) -> DbResult<bool> {
    let updated = entity::Entity::update_many()
        .col_expr(entity::Column::ApprovedHash, Expr::col(entity::Column::ObservedHash))
        .col_expr(entity::Column::ApprovedAt, Expr::value(truncate_to_micros(now)))
        .filter(entity::Column::Server.eq(server))
        .filter(entity::Column::Tool.eq(tool))
        .exec(db)
        .await?;
    Ok(updated.rows_affected > 0)
}

/// Every pin, by server and tool.
#[tracing::instrument(skip_all)]
pub async fn list(db: &DatabaseConnection) -> DbResult<Vec<PinRow>> {
    let rows =
        entity::Entity::find().order_by_asc(entity::Column::Server).order_by_asc(entity::Column::Tool).all(db).await?;
    Ok(rows.into_iter().map(PinRow::from).collect())
}
