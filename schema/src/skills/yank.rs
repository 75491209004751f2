//! Yanking a version: hidden from "latest" from then on, still readable by its exact version.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use super::begin_catalog_write;
use crate::entity::{skill_versions, skills};
use crate::error::DbResult;
use crate::time::truncate_to_micros;

/// What a yank found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YankOutcome {
    /// Yanked now.
    Yanked,
    /// It was yanked before; nothing changed (the first yank's time stays).
    AlreadyYanked,
    /// The skill has no such version.
    NotFound,
}

/// Yanks version `version` of skill `name` at `now`. Only a yank that changes something changes
/// the [`super::generation`].
#[tracing::instrument(skip_all, fields(skill = %name, version = %version))]
pub async fn yank(db: &DatabaseConnection, name: &str, version: &str, now: DateTime<Utc>) -> DbResult<YankOutcome> {
    let transaction = begin_catalog_write(db).await?;
    let found = skill_versions::Entity::find()
        .inner_join(skills::Entity)
        .filter(skills::Column::Name.eq(name))
        .filter(skill_versions::Column::Version.eq(version))
        .one(&transaction)
        .await?;
    let Some(found) = found else {
        transaction.rollback().await?;
        return Ok(YankOutcome::NotFound);
    };
    let updated = skill_versions::Entity::update_many()
        .col_expr(skill_versions::Column::YankedAt, Expr::value(Some(truncate_to_micros(now))))
        .filter(skill_versions::Column::Id.eq(found.id))
        .filter(skill_versions::Column::YankedAt.is_null())
        .exec(&transaction)
        .await?;
    if updated.rows_affected == 0 {
        transaction.rollback().await?;
        return Ok(YankOutcome::AlreadyYanked);
    }
    transaction.commit().await?;
    Ok(YankOutcome::Yanked)
}
