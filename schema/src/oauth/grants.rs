//! The `oauth_grants` table: a grant is a token family (the refresh tokens rotated from one
//! authorization, and the access tokens minted from them), revoked as a whole.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter,
};

use super::revocations::{REVOCATION_KIND_GRANT, append_with, begin_revocation};
use crate::entity::{oauth_grants as entity, oauth_refresh_tokens as refresh_entity};
use crate::error::{DbError, DbResult};
use crate::{scopes, time::truncate_to_micros};

/// One row of `oauth_grants`, lists decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    pub grant_id: String,
    pub client_id: String,
    /// The user who consented; none for a client-credentials grant.
    pub user_id: Option<i64>,
    pub scopes: Vec<String>,
    /// RFC 8707 resource indicators the grant's tokens may be issued for.
    pub resources: Vec<String>,
    pub created_at: DateTime<Utc>,
    /// The absolute end of the family, however often its refresh tokens rotate.
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<entity::Model> for GrantRow {
    type Error = DbError;

    fn try_from(model: entity::Model) -> DbResult<GrantRow> {
        let owner = format!("grant {}", model.grant_id);
        Ok(GrantRow {
            scopes: scopes::decode(&model.scopes, &owner)?,
            resources: scopes::decode(&model.resources, &owner)?,
            grant_id: model.grant_id,
            client_id: model.client_id,
            user_id: model.user_id,
            created_at: model.created_at,
            expires_at: model.expires_at,
            revoked_at: model.revoked_at,
        })
    }
}

/// A grant to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGrant<'a> {
    pub grant_id: &'a str,
    pub client_id: &'a str,
    pub user_id: Option<i64>,
    pub scopes: &'a [String],
    pub resources: &'a [String],
    pub expires_at: DateTime<Utc>,
}

/// Stores a grant. A taken `grant_id` is [`DbError::AlreadyExists`]; a user that does not exist is
/// [`DbError::NotFound`].
#[tracing::instrument(skip_all, fields(grant.id = %grant.grant_id, client.id = %grant.client_id, user.id = grant.user_id))]
pub async fn create_grant(db: &DatabaseConnection, grant: &NewGrant<'_>, now: DateTime<Utc>) -> DbResult<GrantRow> {
    let model = entity::ActiveModel {
        grant_id: ActiveValue::Set(grant.grant_id.to_owned()),
        client_id: ActiveValue::Set(grant.client_id.to_owned()),
        user_id: ActiveValue::Set(grant.user_id),
        scopes: ActiveValue::Set(scopes::encode(grant.scopes)?),
        resources: ActiveValue::Set(scopes::encode(grant.resources)?),
        created_at: ActiveValue::Set(truncate_to_micros(now)),
        expires_at: ActiveValue::Set(truncate_to_micros(grant.expires_at)),
        revoked_at: ActiveValue::Set(None),
    }
    .insert(db)
    .await
    .map_err(|error| match (DbError::from_db_err(error, &format!("grant {}", grant.grant_id)), grant.user_id) {
        (DbError::NotFound(_), Some(user_id)) => DbError::NotFound(format!("user {user_id}")),
        (other, _) => other,
    })?;
    GrantRow::try_from(model)
}

/// The grant `grant_id`, revoked and expired ones included (the caller decides), or `None`.
#[tracing::instrument(skip_all, fields(grant.id = %grant_id))]
pub async fn find_grant(db: &DatabaseConnection, grant_id: &str) -> DbResult<Option<GrantRow>> {
    entity::Entity::find_by_id(grant_id.to_owned()).one(db).await?.map(GrantRow::try_from).transpose()
}

/// Revokes the grant (the token family): sets its `revoked_at`, revokes every refresh token of the
/// family, and appends a `grant` entry to the revocation log that replicas keep until
/// `forget_after` (when the last access token of the grant has expired). Idempotent: true when
/// this call changed anything (the first revocation time is kept, and the log gets an entry only
/// then). One transaction.
///
/// The grant's refresh tokens are revoked whether or not the grant row exists, so a family whose
/// grant row is gone (or not yet written) is still shut.
#[tracing::instrument(skip_all, fields(grant.id = %grant_id))]
pub async fn revoke_grant(
    db: &DatabaseConnection,
    grant_id: &str,
    forget_after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DbResult<bool> {
    let transaction = begin_revocation(db).await?;
    let changed = revoke_grant_with(&transaction, grant_id, forget_after, now).await?;
    transaction.commit().await?;
    Ok(changed)
}

/// [`revoke_grant`] inside a transaction from [`begin_revocation`].
pub(super) async fn revoke_grant_with(
    transaction: &DatabaseTransaction,
    grant_id: &str,
    forget_after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DbResult<bool> {
    let now = truncate_to_micros(now);
    let grants_revoked = entity::Entity::update_many()
        .col_expr(entity::Column::RevokedAt, Expr::value(now))
        .filter(entity::Column::GrantId.eq(grant_id))
        .filter(entity::Column::RevokedAt.is_null())
        .exec(transaction)
        .await?
        .rows_affected;
    let tokens_revoked = refresh_entity::Entity::update_many()
        .col_expr(refresh_entity::Column::RevokedAt, Expr::value(now))
        .filter(refresh_entity::Column::GrantId.eq(grant_id))
        .filter(refresh_entity::Column::RevokedAt.is_null())
        .exec(transaction)
        .await?
        .rows_affected;
    let changed = grants_revoked + tokens_revoked > 0;
    if changed {
        append_with(transaction, REVOCATION_KIND_GRANT, grant_id, forget_after, now).await?;
    }
    Ok(changed)
}

/// Deletes grants whose `expires_at` is at or before `expired_before`, revoked or not; returns how
/// many. Pass `now` minus the longest access-token lifetime: until then a revocation of the grant
/// may still be needed for access tokens minted just before it expired.
#[tracing::instrument(skip_all)]
pub async fn purge_grants_expired_before(db: &DatabaseConnection, expired_before: DateTime<Utc>) -> DbResult<u64> {
    let result = entity::Entity::delete_many()
        .filter(entity::Column::ExpiresAt.lte(truncate_to_micros(expired_before)))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
