//! The fetch log (`skill_fetches`): who fetched which skill version, how, and when.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue, DatabaseConnection, EntityTrait, QueryOrder, QuerySelect};

use crate::entity::skill_fetches as entity;
use crate::error::DbResult;
use crate::time::truncate_to_micros;

/// One fetch to record.
#[derive(Debug, Clone, Copy)]
pub struct NewFetch<'a> {
    pub skill: &'a str,
    pub version: &'a str,
    pub user_id: Option<&'a str>,
    /// One of [`super::FETCH_VIAS`]: `mcp`, `api` or `sync`.
    pub via: &'a str,
    pub trace_id: Option<&'a str>,
    pub at: DateTime<Utc>,
}

/// One recorded fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRow {
    pub id: i64,
    pub skill: String,
    pub version: String,
    pub user_id: Option<String>,
    pub via: String,
    pub trace_id: Option<String>,
    pub at: DateTime<Utc>,
}

impl From<entity::Model> for FetchRow {
    fn from(model: entity::Model) -> FetchRow {
        FetchRow {
            id: model.id,
            skill: model.skill,
            version: model.version,
            user_id: model.user_id,
            via: model.via,
            trace_id: model.trace_id,
            at: model.at,
        }
    }
}

/// Records one fetch.
#[tracing::instrument(skip_all, fields(skill = %fetch.skill, version = %fetch.version, via = %fetch.via, trace_id = fetch.trace_id))]
pub async fn record_fetch(db: &DatabaseConnection, fetch: NewFetch<'_>) -> DbResult<()> {
    entity::Entity::insert(entity::ActiveModel {
        id: ActiveValue::NotSet,
        skill: ActiveValue::Set(fetch.skill.to_owned()),
        version: ActiveValue::Set(fetch.version.to_owned()),
        user_id: ActiveValue::Set(fetch.user_id.map(str::to_owned)),
        via: ActiveValue::Set(fetch.via.to_owned()),
        trace_id: ActiveValue::Set(fetch.trace_id.map(str::to_owned)),
        at: ActiveValue::Set(truncate_to_micros(fetch.at)),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// The newest `limit` fetches, newest first (by time, then by id).
#[tracing::instrument(skip_all, fields(limit))]
pub async fn recent_fetches(db: &DatabaseConnection, limit: u64) -> DbResult<Vec<FetchRow>> {
    let rows = entity::Entity::find()
        .order_by_desc(entity::Column::At)
        .order_by_desc(entity::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(FetchRow::from).collect())
}
