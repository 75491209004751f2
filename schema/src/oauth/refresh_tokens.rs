//! The `oauth_refresh_tokens` table: refresh tokens, stored as hashes, each usable once. A used
//! token's row stays until it expires, so presenting it again is recognised as a replay.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::entity::oauth_refresh_tokens as entity;
use crate::error::{DbError, DbResult};
use crate::time::truncate_to_micros;

/// One row of `oauth_refresh_tokens`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRow {
    /// Lowercase hex SHA-256 of the token.
    pub token_hash: String,
    /// The grant (token family) the token belongs to.
    pub grant_id: String,
    pub client_id: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<entity::Model> for RefreshTokenRow {
    fn from(model: entity::Model) -> RefreshTokenRow {
        RefreshTokenRow {
            token_hash: model.token_hash,
            grant_id: model.grant_id,
            client_id: model.client_id,
            created_at: model.created_at,
            expires_at: model.expires_at,
            used_at: model.used_at,
            revoked_at: model.revoked_at,
        }
    }
}

/// What [`use_refresh_token`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshUse {
    /// This caller used the token; `used_at` is `now`. The caller issues its successor (after
    /// checking that the grant is neither revoked nor expired: this table does not know).
    Rotated(RefreshTokenRow),
    /// The token was used before and is not revoked: a replay, so revoke the family.
    Replayed(RefreshTokenRow),
    /// The token (its family) is revoked, whether or not it was used or has expired; also for
    /// the winner of the `UPDATE` when the family was revoked before the row was read back.
    Revoked(RefreshTokenRow),
    /// The token was never used and has expired.
    Expired(RefreshTokenRow),
    /// No such token (never issued, or purged after expiring).
    Unknown,
}

/// Stores a refresh token of the grant `grant_id`. A taken hash is [`DbError::AlreadyExists`].
#[tracing::instrument(skip_all, fields(grant.id = %grant_id, client.id = %client_id))]
pub async fn insert_refresh_token(
    db: &DatabaseConnection,
    token_hash: &str,
    grant_id: &str,
    client_id: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DbResult<()> {
    let model = entity::ActiveModel {
        token_hash: ActiveValue::Set(token_hash.to_owned()),
        grant_id: ActiveValue::Set(grant_id.to_owned()),
        client_id: ActiveValue::Set(client_id.to_owned()),
        created_at: ActiveValue::Set(truncate_to_micros(now)),
        expires_at: ActiveValue::Set(truncate_to_micros(expires_at)),
        used_at: ActiveValue::Set(None),
        revoked_at: ActiveValue::Set(None),
    };
    entity::Entity::insert(model)
        .exec_without_returning(db)
        .await
        .map_err(|error| DbError::from_db_err(error, "refresh token"))?;
    Ok(())
}

/// Uses the token with this hash once. One conditional `UPDATE` (`used_at IS NULL AND revoked_at
/// IS NULL AND expires_at > now`) decides, so of any number of concurrent callers exactly one gets
/// [`RefreshUse::Rotated`]; the row is then read to say why the others lost.
#[tracing::instrument(skip_all)]
pub async fn use_refresh_token(db: &DatabaseConnection, token_hash: &str, now: DateTime<Utc>) -> DbResult<RefreshUse> {
    let now = truncate_to_micros(now);
    let won = entity::Entity::update_many()
        .col_expr(entity::Column::UsedAt, Expr::value(now))
        .filter(entity::Column::TokenHash.eq(token_hash))
        .filter(entity::Column::UsedAt.is_null())
        .filter(entity::Column::RevokedAt.is_null())
        .filter(entity::Column::ExpiresAt.gt(now))
        .exec(db)
        .await?
        .rows_affected
        == 1;
    let Some(row) = find_refresh_token(db, token_hash).await? else {
        return Ok(RefreshUse::Unknown);
    };
    // A family revoked between the UPDATE and this read is revoked for the winner too: no
    // successor should be issued.
    Ok(if row.revoked_at.is_some() {
        RefreshUse::Revoked(row)
    } else if won {
        RefreshUse::Rotated(row)
    } else if row.used_at.is_some() {
        RefreshUse::Replayed(row)
    } else {
        RefreshUse::Expired(row)
    })
}

/// The token with this hash, used, revoked and expired ones included, or `None`.
#[tracing::instrument(skip_all)]
pub async fn find_refresh_token(db: &DatabaseConnection, token_hash: &str) -> DbResult<Option<RefreshTokenRow>> {
    Ok(entity::Entity::find_by_id(token_hash.to_owned()).one(db).await?.map(RefreshTokenRow::from))
}
