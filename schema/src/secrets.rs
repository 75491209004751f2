//! The `secrets` table: write-only secret values, sealed by the daemon before they get here. This
//! module never sees a value in clear; listing returns names and times only.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue, DatabaseConnection, EntityTrait, QueryOrder};

use crate::entity::secrets as entity;
use crate::error::DbResult;
use crate::time::truncate_to_micros;

/// What `secrets list` shows: never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretInfo {
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Stores `sealed` under `name`, replacing an earlier value (and keeping its creation time).
#[tracing::instrument(skip_all, fields(secret.name = %name))]
pub async fn set(db: &DatabaseConnection, name: &str, sealed: &str, now: DateTime<Utc>) -> DbResult<()> {
    let now = truncate_to_micros(now);
    let model = entity::ActiveModel {
        name: ActiveValue::Set(name.to_owned()),
        sealed_value: ActiveValue::Set(sealed.to_owned()),
        created_at: ActiveValue::Set(now),
        updated_at: ActiveValue::Set(now),
    };
    entity::Entity::insert(model)
        .on_conflict(
            OnConflict::column(entity::Column::Name)
                .update_columns([entity::Column::SealedValue, entity::Column::UpdatedAt])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Every secret's name and times, by name.
#[tracing::instrument(skip_all)]
pub async fn list(db: &DatabaseConnection) -> DbResult<Vec<SecretInfo>> {
    let rows = entity::Entity::find().order_by_asc(entity::Column::Name).all(db).await?;
    Ok(rows
        .into_iter()
        .map(|row| SecretInfo { name: row.name, created_at: row.created_at, updated_at: row.updated_at })
        .collect())
}

/// Every secret, sealed, by name: what the daemon loads to resolve `${secret:NAME}`.
#[tracing::instrument(skip_all)]
pub async fn all_sealed(db: &DatabaseConnection) -> DbResult<Vec<(String, String)>> {
    let rows = entity::Entity::find().order_by_asc(entity::Column::Name).all(db).await?;
    Ok(rows.into_iter().map(|row| (row.name, row.sealed_value)).collect())
}

/// Deletes `name`; false when there was no such secret.
#[tracing::instrument(skip_all, fields(secret.name = %name))]
pub async fn remove(db: &DatabaseConnection, name: &str) -> DbResult<bool> {
    Ok(entity::Entity::delete_by_id(name.to_owned()).exec(db).await?.rows_affected > 0)
}
