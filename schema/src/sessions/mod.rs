//! Browser sign-in: sessions (keyed by the hash of the session cookie), the short-lived
//! single-use state of flows in progress, and enrolment links. Everything here is looked up by
//! the SHA-256 of a random value the browser holds; the value itself is never stored.

mod enrolment_links;
mod flow_states;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

pub use enrolment_links::{consume_enrolment_link, create_enrolment_link, find_enrolment_link};
pub use flow_states::{FlowStateRow, peek_flow_state, put_flow_state, take_flow_state};

use crate::entity::browser_sessions as entity;
use crate::error::{DbError, DbResult};
use crate::time::truncate_to_micros;

/// One row of `browser_sessions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// Lowercase hex SHA-256 of the session cookie's value.
    pub session_hash: String,
    pub user_id: i64,
    /// When the user authenticated.
    pub auth_time: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl From<entity::Model> for SessionRow {
    fn from(model: entity::Model) -> SessionRow {
        SessionRow {
            session_hash: model.session_hash,
            user_id: model.user_id,
            auth_time: model.auth_time,
            created_at: model.created_at,
            expires_at: model.expires_at,
        }
    }
}

/// Stores a session of `user_id`. A taken hash is [`DbError::AlreadyExists`]; a user that does not
/// exist is [`DbError::NotFound`].
#[tracing::instrument(skip_all, fields(user.id = user_id))]
pub async fn create_session(
    db: &DatabaseConnection,
    session_hash: &str,
    user_id: i64,
    auth_time: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DbResult<()> {
    let model = entity::ActiveModel {
        session_hash: ActiveValue::Set(session_hash.to_owned()),
        user_id: ActiveValue::Set(user_id),
        auth_time: ActiveValue::Set(truncate_to_micros(auth_time)),
        created_at: ActiveValue::Set(truncate_to_micros(now)),
        expires_at: ActiveValue::Set(truncate_to_micros(expires_at)),
    };
    entity::Entity::insert(model).exec_without_returning(db).await.map_err(|error| {
        match DbError::from_db_err(error, "browser session") {
            DbError::NotFound(_) => DbError::NotFound(format!("user {user_id}")),
            other => other,
        }
    })?;
    Ok(())
}

/// The session with this hash if it has not expired at `now`.
#[tracing::instrument(skip_all)]
pub async fn find_session(
    db: &DatabaseConnection,
    session_hash: &str,
    now: DateTime<Utc>,
) -> DbResult<Option<SessionRow>> {
    Ok(entity::Entity::find_by_id(session_hash.to_owned())
        .filter(entity::Column::ExpiresAt.gt(truncate_to_micros(now)))
        .one(db)
        .await?
        .map(SessionRow::from))
}

/// Ends the session with this hash (sign-out); nothing happens when there is none.
#[tracing::instrument(skip_all)]
pub async fn delete_session(db: &DatabaseConnection, session_hash: &str) -> DbResult<()> {
    entity::Entity::delete_by_id(session_hash.to_owned()).exec(db).await?;
    Ok(())
}
