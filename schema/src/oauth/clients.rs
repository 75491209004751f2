//! The `oauth_clients` table: registered OAuth clients.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};

use super::grants::revoke_grant_with;
use super::revocations::begin_revocation;
use crate::entity::{oauth_clients as entity, oauth_consents as consent_entity, oauth_grants as grant_entity};
use crate::error::{DbError, DbResult};
use crate::{TIERS, scopes, time::truncate_to_micros};

/// How long [`remove_client`] keeps the revocations of the removed client's grants: an upper
/// bound on the lifetime of an access token. Use [`remove_client_revoking_until`] when access
/// tokens may live longer.
pub const REMOVED_CLIENT_REVOCATION_LIFETIME: TimeDelta = TimeDelta::days(1);

/// One row of `oauth_clients`, lists decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClientRow {
    pub id: i64,
    pub client_id: String,
    pub name: String,
    /// One of [`crate::TIERS`].
    pub tier: String,
    /// Lowercase hex SHA-256 of the client secret; none for public clients.
    pub secret_hash: Option<String>,
    pub grant_types: Vec<String>,
    pub redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    /// Registered through the dynamic registration endpoint (RFC 7591).
    pub dynamic: bool,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl TryFrom<entity::Model> for OAuthClientRow {
    type Error = DbError;

    fn try_from(model: entity::Model) -> DbResult<OAuthClientRow> {
        let owner = format!("OAuth client {}", model.client_id);
        Ok(OAuthClientRow {
            grant_types: scopes::decode(&model.grant_types, &owner)?,
            redirect_uris: scopes::decode(&model.redirect_uris, &owner)?,
            scopes: scopes::decode(&model.scopes, &owner)?,
            id: model.id,
            client_id: model.client_id,
            name: model.name,
            tier: model.tier,
            secret_hash: model.secret_hash,
            dynamic: model.dynamic,
            created_at: model.created_at,
            last_used_at: model.last_used_at,
        })
    }
}

/// A client to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOAuthClient<'a> {
    pub client_id: &'a str,
    pub name: &'a str,
    /// One of [`crate::TIERS`].
    pub tier: &'a str,
    /// Lowercase hex SHA-256 of the client secret; none for public clients.
    pub secret_hash: Option<&'a str>,
    pub grant_types: &'a [String],
    pub redirect_uris: &'a [String],
    pub scopes: &'a [String],
    /// Registered through the dynamic registration endpoint (RFC 7591).
    pub dynamic: bool,
}

/// Registers a client. A taken `client_id` is [`DbError::AlreadyExists`]; a tier outside
/// [`crate::TIERS`] is [`DbError::Other`].
#[tracing::instrument(skip_all, fields(client.id = %client.client_id, client.tier = %client.tier, client.dynamic = client.dynamic))]
pub async fn create_client(
    db: &DatabaseConnection,
    client: &NewOAuthClient<'_>,
    now: DateTime<Utc>,
) -> DbResult<OAuthClientRow> {
    if !TIERS.contains(&client.tier) {
        return Err(DbError::Other(format!("unknown tier {:?}: expected one of {}", client.tier, TIERS.join(", "))));
    }
    let model = entity::ActiveModel {
        id: ActiveValue::NotSet,
        client_id: ActiveValue::Set(client.client_id.to_owned()),
        name: ActiveValue::Set(client.name.to_owned()),
        tier: ActiveValue::Set(client.tier.to_owned()),
        secret_hash: ActiveValue::Set(client.secret_hash.map(str::to_owned)),
        grant_types: ActiveValue::Set(scopes::encode(client.grant_types)?),
        redirect_uris: ActiveValue::Set(scopes::encode(client.redirect_uris)?),
        scopes: ActiveValue::Set(scopes::encode(client.scopes)?),
        dynamic: ActiveValue::Set(client.dynamic),
        created_at: ActiveValue::Set(truncate_to_micros(now)),
        last_used_at: ActiveValue::Set(None),
    }
    .insert(db)
    .await
    .map_err(|error| DbError::from_db_err(error, &format!("OAuth client {:?}", client.client_id)))?;
    OAuthClientRow::try_from(model)
}

/// The client `client_id`, if registered.
#[tracing::instrument(skip_all, fields(client.id = %client_id))]
pub async fn find_client(db: &DatabaseConnection, client_id: &str) -> DbResult<Option<OAuthClientRow>> {
    entity::Entity::find()
        .filter(entity::Column::ClientId.eq(client_id))
        .one(db)
        .await?
        .map(OAuthClientRow::try_from)
        .transpose()
}

/// Every client, in registration order.
#[tracing::instrument(skip_all)]
pub async fn list_clients(db: &DatabaseConnection) -> DbResult<Vec<OAuthClientRow>> {
    entity::Entity::find()
        .order_by_asc(entity::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(OAuthClientRow::try_from)
        .collect()
}

/// Removes a client: revokes every unrevoked grant of it ([`crate::oauth::revoke_grant`], kept in
/// the revocation log for [`REMOVED_CLIENT_REVOCATION_LIFETIME`]), forgets the users' consents to
/// it, and deletes it. False when no such client is registered (its grants are still revoked).
#[tracing::instrument(skip_all, fields(client.id = %client_id))]
pub async fn remove_client(db: &DatabaseConnection, client_id: &str, now: DateTime<Utc>) -> DbResult<bool> {
    remove_client_revoking_until(db, client_id, now + REMOVED_CLIENT_REVOCATION_LIFETIME, now).await
}

/// [`remove_client`], with the revocations of the client's grants kept until `forget_after` (when
/// the last access token issued to the client has expired). One transaction.
#[tracing::instrument(skip_all, fields(client.id = %client_id))]
pub async fn remove_client_revoking_until(
    db: &DatabaseConnection,
    client_id: &str,
    forget_after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DbResult<bool> {
    let transaction = begin_revocation(db).await?;
    let grant_ids: Vec<String> = grant_entity::Entity::find()
        .select_only()
        .column(grant_entity::Column::GrantId)
        .filter(grant_entity::Column::ClientId.eq(client_id))
        .filter(grant_entity::Column::RevokedAt.is_null())
        .into_tuple()
        .all(&transaction)
        .await?;
    for grant_id in &grant_ids {
        revoke_grant_with(&transaction, grant_id, forget_after, now).await?;
    }
    consent_entity::Entity::delete_many()
        .filter(consent_entity::Column::ClientId.eq(client_id))
        .exec(&transaction)
        .await?;
    let removed =
        entity::Entity::delete_many().filter(entity::Column::ClientId.eq(client_id)).exec(&transaction).await?;
    transaction.commit().await?;
    Ok(removed.rows_affected > 0)
}

/// How many clients were registered dynamically (to cap open registration).
#[tracing::instrument(skip_all)]
pub async fn count_dynamic_clients(db: &DatabaseConnection) -> DbResult<u64> {
    Ok(entity::Entity::find().filter(entity::Column::Dynamic.eq(true)).count(db).await?)
}

/// How many dynamic clients hold a place under the registration cap: every one that was used, and
/// the never-used ones registered at or after `unused_registered_since`. An older never-used one is
/// an abandoned registration: it no longer counts, and [`delete_unused_dynamic_clients`] removes it.
#[tracing::instrument(skip_all)]
pub async fn count_dynamic_clients_holding_places(
    db: &DatabaseConnection,
    unused_registered_since: DateTime<Utc>,
) -> DbResult<u64> {
    let holding = sea_orm::Condition::any()
        .add(entity::Column::LastUsedAt.is_not_null())
        .add(entity::Column::CreatedAt.gte(truncate_to_micros(unused_registered_since)));
    Ok(entity::Entity::find().filter(entity::Column::Dynamic.eq(true)).filter(holding).count(db).await?)
}

/// Deletes the oldest dynamic client that was never used, with any consents to it, to make room for
/// a new registration when the cap is reached: a flood of registrations that are never used then
/// displaces itself instead of locking real clients out. The delete is conditional on the client
/// still being unused, so one that redeems a code meanwhile stays. Returns whether one was deleted.
#[tracing::instrument(skip_all)]
pub async fn evict_oldest_unused_dynamic_client(db: &DatabaseConnection) -> DbResult<bool> {
    let unused =
        || entity::Entity::find().filter(entity::Column::Dynamic.eq(true)).filter(entity::Column::LastUsedAt.is_null());
    let transaction = db.begin().await?;
    let Some(oldest) = unused().order_by_asc(entity::Column::Id).one(&transaction).await? else {
        return Ok(false);
    };
    let deleted = entity::Entity::delete_many()
        .filter(entity::Column::Id.eq(oldest.id))
        .filter(entity::Column::LastUsedAt.is_null())
        .exec(&transaction)
        .await?;
    if deleted.rows_affected > 0 {
        consent_entity::Entity::delete_many()
            .filter(consent_entity::Column::ClientId.eq(oldest.client_id))
            .exec(&transaction)
            .await?;
    }
    transaction.commit().await?;
    Ok(deleted.rows_affected > 0)
}

/// Records that the client was just used.
#[tracing::instrument(skip_all, fields(client.id = %client_id))]
pub async fn touch_client(db: &DatabaseConnection, client_id: &str, now: DateTime<Utc>) -> DbResult<()> {
    entity::Entity::update_many()
        .col_expr(entity::Column::LastUsedAt, Expr::value(truncate_to_micros(now)))
        .filter(entity::Column::ClientId.eq(client_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Deletes dynamically registered clients that were never used and were created before
/// `created_before` (abandoned registrations), with any consents to them; returns how many
/// clients. One transaction.
#[tracing::instrument(skip_all)]
pub async fn delete_unused_dynamic_clients(db: &DatabaseConnection, created_before: DateTime<Utc>) -> DbResult<u64> {
    let unused = || {
        Query::select()
            .column(entity::Column::ClientId)
            .from(entity::Entity)
            .and_where(entity::Column::Dynamic.eq(true))
            .and_where(entity::Column::LastUsedAt.is_null())
            .and_where(entity::Column::CreatedAt.lt(truncate_to_micros(created_before)))
            .to_owned()
    };
    let transaction = db.begin().await?;
    consent_entity::Entity::delete_many()
        .filter(consent_entity::Column::ClientId.in_subquery(unused()))
        .exec(&transaction)
        .await?;
    let deleted =
        entity::Entity::delete_many().filter(entity::Column::ClientId.in_subquery(unused())).exec(&transaction).await?;
    transaction.commit().await?;
    Ok(deleted.rows_affected)
}
