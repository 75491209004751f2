//! The `api_keys` table: only a key's SHA-256 is stored; the secret is shown once at creation.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ActiveValue, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};

use crate::entity::{api_keys as entity, users as user_entity};
use crate::error::{DbError, DbResult};
use crate::users::UserRow;
use crate::{scopes, time::truncate_to_micros};

/// One row of `api_keys`, scopes decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRow {
    pub id: i64,
    /// Short identifier shown by `keys list` and accepted by `keys revoke`.
    pub public_id: String,
    pub user_id: i64,
    /// Lowercase hex SHA-256 of the full secret key.
    pub key_hash: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl TryFrom<entity::Model> for ApiKeyRow {
    type Error = DbError;

    fn try_from(model: entity::Model) -> DbResult<ApiKeyRow> {
        let scopes = scopes::decode(&model.scopes, &format!("API key {}", model.public_id))?;
        Ok(ApiKeyRow {
            id: model.id,
            public_id: model.public_id,
            user_id: model.user_id,
            key_hash: model.key_hash,
            scopes,
            created_at: model.created_at,
            expires_at: model.expires_at,
            revoked_at: model.revoked_at,
            last_used_at: model.last_used_at,
        })
    }
}

/// Stores a new key for `user_id`. A taken `public_id` or `key_hash` is
/// [`DbError::AlreadyExists`]; a user that does not exist is [`DbError::NotFound`].
#[tracing::instrument(skip_all, fields(api_key.public_id = %public_id, user.id = user_id))]
pub async fn insert(
    db: &DatabaseConnection,
    user_id: i64,
    public_id: &str,
    key_hash: &str,
    scopes: &[String],
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> DbResult<ApiKeyRow> {
    let model = entity::ActiveModel {
        id: ActiveValue::NotSet,
        public_id: ActiveValue::Set(public_id.to_owned()),
        user_id: ActiveValue::Set(user_id),
        key_hash: ActiveValue::Set(key_hash.to_owned()),
        scopes: ActiveValue::Set(scopes::encode(scopes)?),
        created_at: ActiveValue::Set(truncate_to_micros(now)),
        expires_at: ActiveValue::Set(expires_at.map(truncate_to_micros)),
        revoked_at: ActiveValue::Set(None),
        last_used_at: ActiveValue::Set(None),
    }
    .insert(db)
    .await
    .map_err(|error| match DbError::from_db_err(error, "API key") {
        DbError::NotFound(_) => DbError::NotFound(format!("user {user_id}")),
        other => other,
    })?;
    ApiKeyRow::try_from(model)
}

/// The key with this hash and its user, whether or not the key is revoked or expired (the
/// caller decides), or `None`.
#[tracing::instrument(skip_all)]
pub async fn find_by_hash(db: &DatabaseConnection, key_hash: &str) -> DbResult<Option<(ApiKeyRow, UserRow)>> {
    let found = entity::Entity::find()
        .filter(entity::Column::KeyHash.eq(key_hash))
        .find_also_related(user_entity::Entity)
        .one(db)
        .await?;
    match found {
        None => Ok(None),
        Some((key, Some(user))) => Ok(Some((ApiKeyRow::try_from(key)?, UserRow::try_from(user)?))),
        Some((key, None)) => {
            Err(DbError::Other(format!("API key {} belongs to missing user {}", key.public_id, key.user_id)))
        }
    }
}

/// Every key with its user, by key id.
#[tracing::instrument(skip_all)]
pub async fn list(db: &DatabaseConnection) -> DbResult<Vec<(ApiKeyRow, UserRow)>> {
    entity::Entity::find()
        .find_also_related(user_entity::Entity)
        .order_by_asc(entity::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(|(key, user)| match user {
            Some(user) => Ok((ApiKeyRow::try_from(key)?, UserRow::try_from(user)?)),
            None => Err(DbError::Other(format!("API key {} belongs to missing user {}", key.public_id, key.user_id))),
        })
        .collect()
}

/// Revokes the key `public_id`. True when this call revoked it; false when no such key
/// exists or it was already revoked (the first revocation time is kept).
#[tracing::instrument(skip_all, fields(api_key.public_id = %public_id))]
pub async fn revoke(db: &DatabaseConnection, public_id: &str, now: DateTime<Utc>) -> DbResult<bool> {
    let result = entity::Entity::update_many()
        .col_expr(entity::Column::RevokedAt, Expr::value(truncate_to_micros(now)))
        .filter(entity::Column::PublicId.eq(public_id))
        .filter(entity::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// Records that key `id` was just used.
#[tracing::instrument(skip_all, fields(api_key.id = id))]
pub async fn touch_last_used(db: &DatabaseConnection, id: i64, now: DateTime<Utc>) -> DbResult<()> {
    entity::Entity::update_many()
        .col_expr(entity::Column::LastUsedAt, Expr::value(truncate_to_micros(now)))
        .filter(entity::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}
