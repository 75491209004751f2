//! The `castellan_meta` table: small key/value facts ("bootstrap done", the audit chain head).

use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue, ConnectionTrait, DatabaseConnection, EntityTrait, TryInsertResult};

use crate::entity::castellan_meta as entity;
use crate::error::DbResult;

/// The value stored under `key`, if any.
#[tracing::instrument(skip_all, fields(meta.key = %key))]
pub async fn get(db: &DatabaseConnection, key: &str) -> DbResult<Option<String>> {
    get_with(db, key).await
}

pub(crate) async fn get_with<C: ConnectionTrait>(db: &C, key: &str) -> DbResult<Option<String>> {
    Ok(entity::Entity::find_by_id(key.to_owned()).one(db).await?.map(|row| row.value))
}

/// Stores `value` under `key`, replacing any previous value.
#[tracing::instrument(skip_all, fields(meta.key = %key))]
pub async fn set(db: &DatabaseConnection, key: &str, value: &str) -> DbResult<()> {
    set_with(db, key, value).await
}

pub(crate) async fn set_with<C: ConnectionTrait>(db: &C, key: &str, value: &str) -> DbResult<()> {
    entity::Entity::insert(active_model(key, value))
        .on_conflict(OnConflict::column(entity::Column::Key).update_column(entity::Column::Value).to_owned())
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Stores `value` under `key` unless the key exists. Atomic: of several concurrent callers
/// (even in different processes) exactly one gets `true`.
#[tracing::instrument(skip_all, fields(meta.key = %key))]
pub async fn set_if_absent(db: &DatabaseConnection, key: &str, value: &str) -> DbResult<bool> {
    let result =
        entity::Entity::insert(active_model(key, value)).on_conflict_do_nothing().exec_without_returning(db).await?;
    Ok(match result {
        TryInsertResult::Inserted(rows) => rows > 0,
        TryInsertResult::Conflicted | TryInsertResult::Empty => false,
    })
}

fn active_model(key: &str, value: &str) -> entity::ActiveModel {
    entity::ActiveModel { key: ActiveValue::Set(key.to_owned()), value: ActiveValue::Set(value.to_owned()) }
}
