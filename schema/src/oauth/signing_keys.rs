//! The `signing_keys` table: the keys that sign access tokens. The newest unretired key signs;
//! retired keys stay published (to verify tokens they signed) until `delete_after`.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{ActiveValue, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};

use crate::entity::signing_keys as entity;
use crate::error::{DbError, DbResult};
use crate::time::truncate_to_micros;

/// One row of `signing_keys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRow {
    pub kid: String,
    pub alg: String,
    /// Opaque base64, sealed by the daemon under its master key.
    pub sealed_private_key: String,
    /// The public key as a JWK, JSON.
    pub public_jwk: String,
    pub created_at: DateTime<Utc>,
    /// When the key stopped signing.
    pub retired_at: Option<DateTime<Utc>>,
    /// When the key may be deleted (no token it signed is still valid).
    pub delete_after: Option<DateTime<Utc>>,
}

impl From<entity::Model> for SigningKeyRow {
    fn from(model: entity::Model) -> SigningKeyRow {
        SigningKeyRow {
            kid: model.kid,
            alg: model.alg,
            sealed_private_key: model.sealed_private_key,
            public_jwk: model.public_jwk,
            created_at: model.created_at,
            retired_at: model.retired_at,
            delete_after: model.delete_after,
        }
    }
}

/// Stores a key, its timestamps truncated to microseconds. A taken `kid` is
/// [`DbError::AlreadyExists`].
#[tracing::instrument(skip_all, fields(signing_key.kid = %row.kid, signing_key.alg = %row.alg))]
pub async fn insert_signing_key(db: &DatabaseConnection, row: &SigningKeyRow) -> DbResult<()> {
    let model = entity::ActiveModel {
        kid: ActiveValue::Set(row.kid.clone()),
        alg: ActiveValue::Set(row.alg.clone()),
        sealed_private_key: ActiveValue::Set(row.sealed_private_key.clone()),
        public_jwk: ActiveValue::Set(row.public_jwk.clone()),
        created_at: ActiveValue::Set(truncate_to_micros(row.created_at)),
        retired_at: ActiveValue::Set(row.retired_at.map(truncate_to_micros)),
        delete_after: ActiveValue::Set(row.delete_after.map(truncate_to_micros)),
    };
    entity::Entity::insert(model)
        .exec_without_returning(db)
        .await
        .map_err(|error| DbError::from_db_err(error, &format!("signing key {:?}", row.kid)))?;
    Ok(())
}

/// Every key not yet due for deletion at `now` (`delete_after` unset or later), newest first
/// (ties by `kid`, so every replica sees the same order).
#[tracing::instrument(skip_all)]
pub async fn list_signing_keys(db: &DatabaseConnection, now: DateTime<Utc>) -> DbResult<Vec<SigningKeyRow>> {
    let rows = entity::Entity::find()
        .filter(
            Condition::any()
                .add(entity::Column::DeleteAfter.is_null())
                .add(entity::Column::DeleteAfter.gt(truncate_to_micros(now))),
        )
        .order_by_desc(entity::Column::CreatedAt)
        .order_by_asc(entity::Column::Kid)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(SigningKeyRow::from).collect())
}

/// Retires every key other than `kid` that is not retired yet: `retired_at = now` and
/// `delete_after`. Returns how many keys were retired.
#[tracing::instrument(skip_all, fields(signing_key.kid = %kid))]
pub async fn retire_signing_keys_except(
    db: &DatabaseConnection,
    kid: &str,
    delete_after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DbResult<u64> {
    let result = entity::Entity::update_many()
        .col_expr(entity::Column::RetiredAt, Expr::value(truncate_to_micros(now)))
        .col_expr(entity::Column::DeleteAfter, Expr::value(truncate_to_micros(delete_after)))
        .filter(entity::Column::Kid.ne(kid))
        .filter(entity::Column::RetiredAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Deletes keys whose `delete_after` is at or before `now`; returns how many.
#[tracing::instrument(skip_all)]
pub async fn purge_signing_keys(db: &DatabaseConnection, now: DateTime<Utc>) -> DbResult<u64> {
    let result =
        entity::Entity::delete_many().filter(entity::Column::DeleteAfter.lte(truncate_to_micros(now))).exec(db).await?;
    Ok(result.rows_affected)
}
