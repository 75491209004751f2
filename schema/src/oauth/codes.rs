//! The `oauth_codes` table: authorization codes, stored as hashes, redeemable once.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::entity::oauth_codes as entity;
use crate::error::{DbError, DbResult};
use crate::{scopes, time::truncate_to_micros};

/// One row of `oauth_codes`, lists decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRow {
    /// Lowercase hex SHA-256 of the code.
    pub code_hash: String,
    pub grant_id: String,
    pub client_id: String,
    pub user_id: i64,
    pub redirect_uri: String,
    /// The PKCE `code_challenge` (S256).
    pub code_challenge: String,
    pub resources: Vec<String>,
    pub scopes: Vec<String>,
    /// When the user authenticated.
    pub auth_time: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub consumed_at: Option<DateTime<Utc>>,
}

impl TryFrom<entity::Model> for CodeRow {
    type Error = DbError;

    fn try_from(model: entity::Model) -> DbResult<CodeRow> {
        let owner = format!("the authorization code of grant {}", model.grant_id);
        Ok(CodeRow {
            resources: scopes::decode(&model.resources, &owner)?,
            scopes: scopes::decode(&model.scopes, &owner)?,
            code_hash: model.code_hash,
            grant_id: model.grant_id,
            client_id: model.client_id,
            user_id: model.user_id,
            redirect_uri: model.redirect_uri,
            code_challenge: model.code_challenge,
            auth_time: model.auth_time,
            created_at: model.created_at,
            expires_at: model.expires_at,
            consumed_at: model.consumed_at,
        })
    }
}

/// An authorization code to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCode<'a> {
    /// Lowercase hex SHA-256 of the code.
    pub code_hash: &'a str,
    pub grant_id: &'a str,
    pub client_id: &'a str,
    pub user_id: i64,
    pub redirect_uri: &'a str,
    pub code_challenge: &'a str,
    pub resources: &'a [String],
    pub scopes: &'a [String],
    pub auth_time: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What [`redeem_code`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRedemption {
    /// This caller redeemed the code; `consumed_at` is `now`.
    Redeemed(CodeRow),
    /// The code was redeemed before: a replay (OAuth 2.1 says to revoke what it was exchanged for).
    AlreadyUsed(CodeRow),
    /// The code was never redeemed and has expired.
    Expired(CodeRow),
    /// No such code (never issued, or purged).
    Unknown,
}

/// Stores an authorization code. A taken hash is [`DbError::AlreadyExists`]; a user that does not
/// exist is [`DbError::NotFound`].
#[tracing::instrument(skip_all, fields(grant.id = %code.grant_id, client.id = %code.client_id, user.id = code.user_id))]
pub async fn insert_code(db: &DatabaseConnection, code: &NewCode<'_>, now: DateTime<Utc>) -> DbResult<()> {
    let model = entity::ActiveModel {
        code_hash: ActiveValue::Set(code.code_hash.to_owned()),
        grant_id: ActiveValue::Set(code.grant_id.to_owned()),
        client_id: ActiveValue::Set(code.client_id.to_owned()),
        user_id: ActiveValue::Set(code.user_id),
        redirect_uri: ActiveValue::Set(code.redirect_uri.to_owned()),
        code_challenge: ActiveValue::Set(code.code_challenge.to_owned()),
        resources: ActiveValue::Set(scopes::encode(code.resources)?),
        scopes: ActiveValue::Set(scopes::encode(code.scopes)?),
        auth_time: ActiveValue::Set(truncate_to_micros(code.auth_time)),
        created_at: ActiveValue::Set(truncate_to_micros(now)),
        expires_at: ActiveValue::Set(truncate_to_micros(code.expires_at)),
        consumed_at: ActiveValue::Set(None),
    };
    entity::Entity::insert(model).exec_without_returning(db).await.map_err(|error| {
        match DbError::from_db_err(error, "authorization code") {
            DbError::NotFound(_) => DbError::NotFound(format!("user {}", code.user_id)),
            other => other,
        }
    })?;
    Ok(())
}

/// Redeems the code with this hash. One conditional `UPDATE` (`consumed_at IS NULL AND
/// expires_at > now`) decides, so of any number of concurrent callers exactly one gets
/// [`CodeRedemption::Redeemed`]; the row is then read to say why the others lost. A code both
/// redeemed and expired is [`CodeRedemption::AlreadyUsed`].
#[tracing::instrument(skip_all)]
pub async fn redeem_code(db: &DatabaseConnection, code_hash: &str, now: DateTime<Utc>) -> DbResult<CodeRedemption> {
    let now = truncate_to_micros(now);
    let won = entity::Entity::update_many()
        .col_expr(entity::Column::ConsumedAt, Expr::value(now))
        .filter(entity::Column::CodeHash.eq(code_hash))
        .filter(entity::Column::ConsumedAt.is_null())
        .filter(entity::Column::ExpiresAt.gt(now))
        .exec(db)
        .await?
        .rows_affected
        == 1;
    let Some(model) = entity::Entity::find_by_id(code_hash.to_owned()).one(db).await? else {
        // Redeemed and then deleted at once (the user was removed): nothing to hand out.
        return Ok(CodeRedemption::Unknown);
    };
    let row = CodeRow::try_from(model)?;
    Ok(if won {
        CodeRedemption::Redeemed(row)
    } else if row.consumed_at.is_some() {
        CodeRedemption::AlreadyUsed(row)
    } else {
        CodeRedemption::Expired(row)
    })
}
