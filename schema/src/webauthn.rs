//! The `webauthn_credentials` table: users' passkeys, as the daemon serialized them.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder,
};

use crate::entity::webauthn_credentials as entity;
use crate::error::{DbError, DbResult};
use crate::time::truncate_to_micros;

/// One row of `webauthn_credentials`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRow {
    pub id: i64,
    pub user_id: i64,
    /// The authenticator's credential id, base64url.
    pub credential_id: String,
    /// The passkey, JSON (opaque here).
    pub passkey: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<entity::Model> for CredentialRow {
    fn from(model: entity::Model) -> CredentialRow {
        CredentialRow {
            id: model.id,
            user_id: model.user_id,
            credential_id: model.credential_id,
            passkey: model.passkey,
            created_at: model.created_at,
            last_used_at: model.last_used_at,
        }
    }
}

/// Stores a passkey of `user_id`. A taken `credential_id` is [`DbError::AlreadyExists`]; a user
/// that does not exist is [`DbError::NotFound`].
#[tracing::instrument(skip_all, fields(user.id = user_id, credential.id = %credential_id))]
pub async fn insert_credential(
    db: &DatabaseConnection,
    user_id: i64,
    credential_id: &str,
    passkey: &str,
    now: DateTime<Utc>,
) -> DbResult<CredentialRow> {
    let model = entity::ActiveModel {
        id: ActiveValue::NotSet,
        user_id: ActiveValue::Set(user_id),
        credential_id: ActiveValue::Set(credential_id.to_owned()),
        passkey: ActiveValue::Set(passkey.to_owned()),
        created_at: ActiveValue::Set(truncate_to_micros(now)),
        last_used_at: ActiveValue::Set(None),
    }
    .insert(db)
    .await
    .map_err(|error| match DbError::from_db_err(error, &format!("passkey {credential_id:?}")) {
        DbError::NotFound(_) => DbError::NotFound(format!("user {user_id}")),
        other => other,
    })?;
    Ok(CredentialRow::from(model))
}

/// Every passkey of `user_id`, in registration order.
#[tracing::instrument(skip_all, fields(user.id = user_id))]
pub async fn credentials_for_user(db: &DatabaseConnection, user_id: i64) -> DbResult<Vec<CredentialRow>> {
    let rows = entity::Entity::find()
        .filter(entity::Column::UserId.eq(user_id))
        .order_by_asc(entity::Column::Id)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(CredentialRow::from).collect())
}

/// The passkey with this credential id, if any.
#[tracing::instrument(skip_all, fields(credential.id = %credential_id))]
pub async fn find_credential(db: &DatabaseConnection, credential_id: &str) -> DbResult<Option<CredentialRow>> {
    Ok(entity::Entity::find()
        .filter(entity::Column::CredentialId.eq(credential_id))
        .one(db)
        .await?
        .map(CredentialRow::from))
}

/// Stores the passkey as updated by a sign-in (its signature counter, backup state) and records
/// the use. A credential that no longer exists is [`DbError::NotFound`]: it was removed while the
/// sign-in ran, and the caller should not let that sign-in through.
#[tracing::instrument(skip_all, fields(credential.id = %credential_id))]
pub async fn update_credential(
    db: &DatabaseConnection,
    credential_id: &str,
    passkey: &str,
    now: DateTime<Utc>,
) -> DbResult<()> {
    let result = entity::Entity::update_many()
        .col_expr(entity::Column::Passkey, Expr::value(passkey))
        .col_expr(entity::Column::LastUsedAt, Expr::value(truncate_to_micros(now)))
        .filter(entity::Column::CredentialId.eq(credential_id))
        .exec(db)
        .await?;
    if result.rows_affected == 0 {
        return Err(DbError::NotFound(format!("passkey {credential_id:?}")));
    }
    Ok(())
}

/// How many passkeys exist, across all users.
#[tracing::instrument(skip_all)]
pub async fn count_credentials(db: &DatabaseConnection) -> DbResult<u64> {
    Ok(entity::Entity::find().count(db).await?)
}
