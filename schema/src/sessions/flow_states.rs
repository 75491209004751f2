//! The `auth_flow_states` table: server-side state of a flow in progress (a WebAuthn ceremony, a
//! pending authorization request, a federated login), named by a random id the browser holds.
//! Short-lived and, when taken, single use.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::entity::auth_flow_states as entity;
use crate::error::{DbError, DbResult};
use crate::time::truncate_to_micros;

/// One row of `auth_flow_states`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowStateRow {
    /// Lowercase hex SHA-256 of the random id handed to the browser.
    pub id_hash: String,
    /// What the state is for; it is only ever read back as this kind.
    pub kind: String,
    pub user_id: Option<i64>,
    /// Opaque JSON.
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl From<entity::Model> for FlowStateRow {
    fn from(model: entity::Model) -> FlowStateRow {
        FlowStateRow {
            id_hash: model.id_hash,
            kind: model.kind,
            user_id: model.user_id,
            state: model.state,
            created_at: model.created_at,
            expires_at: model.expires_at,
        }
    }
}

/// Stores `state` under `id_hash`, replacing whatever was stored under it (kind included). A user
/// that does not exist is [`DbError::NotFound`].
#[tracing::instrument(skip_all, fields(flow.kind = %kind, user.id = user_id))]
pub async fn put_flow_state(
    db: &DatabaseConnection,
    id_hash: &str,
    kind: &str,
    user_id: Option<i64>,
    state: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DbResult<()> {
    let model = entity::ActiveModel {
        id_hash: ActiveValue::Set(id_hash.to_owned()),
        kind: ActiveValue::Set(kind.to_owned()),
        user_id: ActiveValue::Set(user_id),
        state: ActiveValue::Set(state.to_owned()),
        created_at: ActiveValue::Set(truncate_to_micros(now)),
        expires_at: ActiveValue::Set(truncate_to_micros(expires_at)),
    };
    let replace = OnConflict::column(entity::Column::IdHash)
        .update_columns([
            entity::Column::Kind,
            entity::Column::UserId,
            entity::Column::State,
            entity::Column::CreatedAt,
            entity::Column::ExpiresAt,
        ])
        .to_owned();
    entity::Entity::insert(model).on_conflict(replace).exec_without_returning(db).await.map_err(|error| {
        match (DbError::from_db_err(error, "flow state"), user_id) {
            (DbError::NotFound(_), Some(user_id)) => DbError::NotFound(format!("user {user_id}")),
            (other, _) => other,
        }
    })?;
    Ok(())
}

/// Takes the state stored under `id_hash` as `kind`: of any number of concurrent callers, only the
/// one whose `DELETE` removed the row gets it, and only if it has not expired at `now` (an expired
/// row is deleted all the same). A row of another kind is left alone and `None` returned.
#[tracing::instrument(skip_all, fields(flow.kind = %kind))]
pub async fn take_flow_state(
    db: &DatabaseConnection,
    id_hash: &str,
    kind: &str,
    now: DateTime<Utc>,
) -> DbResult<Option<FlowStateRow>> {
    let Some(model) = find(db, id_hash, kind).await? else {
        return Ok(None);
    };
    // The DELETE matches the row as read, so a row replaced in between is not taken in its place.
    let deleted = entity::Entity::delete_many()
        .filter(entity::Column::IdHash.eq(id_hash))
        .filter(entity::Column::Kind.eq(kind))
        .filter(entity::Column::State.eq(model.state.as_str()))
        .filter(entity::Column::CreatedAt.eq(model.created_at))
        .filter(entity::Column::ExpiresAt.eq(model.expires_at))
        .exec(db)
        .await?;
    let row = FlowStateRow::from(model);
    Ok((deleted.rows_affected == 1 && row.expires_at > truncate_to_micros(now)).then_some(row))
}

/// The state stored under `id_hash` as `kind`, if it has not expired at `now`, without taking it.
#[tracing::instrument(skip_all, fields(flow.kind = %kind))]
pub async fn peek_flow_state(
    db: &DatabaseConnection,
    id_hash: &str,
    kind: &str,
    now: DateTime<Utc>,
) -> DbResult<Option<FlowStateRow>> {
    let row = find(db, id_hash, kind).await?.map(FlowStateRow::from);
    Ok(row.filter(|row| row.expires_at > truncate_to_micros(now)))
}

async fn find(db: &DatabaseConnection, id_hash: &str, kind: &str) -> DbResult<Option<entity::Model>> {
    Ok(entity::Entity::find_by_id(id_hash.to_owned()).filter(entity::Column::Kind.eq(kind)).one(db).await?)
}
