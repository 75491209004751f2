//! The `enrolment_links` table: a link with which a user registers a passkey without signing in
//! first (the first admin, a new user). Single use, short-lived.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};

use crate::entity::enrolment_links as entity;
use crate::error::{DbError, DbResult};
use crate::time::truncate_to_micros;

/// Stores an enrolment link for `user_id`. A taken hash is [`DbError::AlreadyExists`]; a user that
/// does not exist is [`DbError::NotFound`].
#[tracing::instrument(skip_all, fields(user.id = user_id))]
pub async fn create_enrolment_link(
    db: &DatabaseConnection,
    token_hash: &str,
    user_id: i64,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DbResult<()> {
    let model = entity::ActiveModel {
        token_hash: ActiveValue::Set(token_hash.to_owned()),
        user_id: ActiveValue::Set(user_id),
        created_at: ActiveValue::Set(truncate_to_micros(now)),
        expires_at: ActiveValue::Set(truncate_to_micros(expires_at)),
        used_at: ActiveValue::Set(None),
    };
    entity::Entity::insert(model).exec_without_returning(db).await.map_err(|error| {
        match DbError::from_db_err(error, "enrolment link") {
            DbError::NotFound(_) => DbError::NotFound(format!("user {user_id}")),
            other => other,
        }
    })?;
    Ok(())
}

/// The user of the link with this hash, if the link is unused and unexpired at `now`.
#[tracing::instrument(skip_all)]
pub async fn find_enrolment_link(
    db: &DatabaseConnection,
    token_hash: &str,
    now: DateTime<Utc>,
) -> DbResult<Option<i64>> {
    Ok(entity::Entity::find_by_id(token_hash.to_owned())
        .select_only()
        .column(entity::Column::UserId)
        .filter(entity::Column::UsedAt.is_null())
        .filter(entity::Column::ExpiresAt.gt(truncate_to_micros(now)))
        .into_tuple()
        .one(db)
        .await?)
}

/// Uses the link with this hash. One conditional `UPDATE` (`used_at IS NULL AND expires_at >
/// now`) decides, so of any number of concurrent callers only one gets the user id.
#[tracing::instrument(skip_all)]
pub async fn consume_enrolment_link(
    db: &DatabaseConnection,
    token_hash: &str,
    now: DateTime<Utc>,
) -> DbResult<Option<i64>> {
    let now = truncate_to_micros(now);
    let won = entity::Entity::update_many()
        .col_expr(entity::Column::UsedAt, Expr::value(now))
        .filter(entity::Column::TokenHash.eq(token_hash))
        .filter(entity::Column::UsedAt.is_null())
        .filter(entity::Column::ExpiresAt.gt(now))
        .exec(db)
        .await?
        .rows_affected
        == 1;
    if !won {
        return Ok(None);
    }
    Ok(entity::Entity::find_by_id(token_hash.to_owned())
        .select_only()
        .column(entity::Column::UserId)
        .into_tuple()
        .one(db)
        .await?)
}
