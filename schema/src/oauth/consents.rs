//! The `oauth_consents` table: which scopes a user agreed to give a client, so the consent page
//! is shown again only when a client asks for more.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue, DatabaseConnection, EntityTrait};

use crate::entity::oauth_consents as entity;
use crate::error::{DbError, DbResult};
use crate::{scopes, time::truncate_to_micros};

/// Records that `user_id` agreed to give `client_id` exactly `scopes`, replacing an earlier
/// consent (its scopes and time). A user that does not exist is [`DbError::NotFound`].
#[tracing::instrument(skip_all, fields(user.id = user_id, client.id = %client_id))]
pub async fn record_consent(
    db: &DatabaseConnection,
    user_id: i64,
    client_id: &str,
    scopes: &[String],
    now: DateTime<Utc>,
) -> DbResult<()> {
    let model = entity::ActiveModel {
        user_id: ActiveValue::Set(user_id),
        client_id: ActiveValue::Set(client_id.to_owned()),
        scopes: ActiveValue::Set(scopes::encode(scopes)?),
        created_at: ActiveValue::Set(truncate_to_micros(now)),
    };
    entity::Entity::insert(model)
        .on_conflict(
            OnConflict::columns([entity::Column::UserId, entity::Column::ClientId])
                .update_columns([entity::Column::Scopes, entity::Column::CreatedAt])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await
        .map_err(|error| match DbError::from_db_err(error, "consent") {
            DbError::NotFound(_) => DbError::NotFound(format!("user {user_id}")),
            other => other,
        })?;
    Ok(())
}

/// The scopes `user_id` last agreed to give `client_id`, or `None` if never asked.
#[tracing::instrument(skip_all, fields(user.id = user_id, client.id = %client_id))]
pub async fn find_consent(db: &DatabaseConnection, user_id: i64, client_id: &str) -> DbResult<Option<Vec<String>>> {
    entity::Entity::find_by_id((user_id, client_id.to_owned()))
        .one(db)
        .await?
        .map(|model| scopes::decode(&model.scopes, &format!("the consent of user {user_id} to {client_id}")))
        .transpose()
}
