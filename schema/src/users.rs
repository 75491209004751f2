//! The `users` table: create and look up principals.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder,
};

use crate::entity::users as entity;
use crate::error::{DbError, DbResult};
use crate::{TIERS, scopes, time::truncate_to_micros};

/// One row of `users`, scopes decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: i64,
    pub name: String,
    /// One of [`crate::TIERS`].
    pub tier: String,
    pub scopes: Vec<String>,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<entity::Model> for UserRow {
    type Error = DbError;

    fn try_from(model: entity::Model) -> DbResult<UserRow> {
        let scopes = scopes::decode(&model.scopes, &format!("user {}", model.id))?;
        Ok(UserRow {
            id: model.id,
            name: model.name,
            tier: model.tier,
            scopes,
            disabled: model.disabled,
            created_at: model.created_at,
        })
    }
}

/// Creates a user. A taken name is [`DbError::AlreadyExists`]; a tier outside
/// [`crate::TIERS`] is [`DbError::Other`].
#[tracing::instrument(skip_all, fields(user.name = %name, user.tier = %tier))]
pub async fn create(
    db: &DatabaseConnection,
    name: &str,
    tier: &str,
    scopes: &[String],
    now: DateTime<Utc>,
) -> DbResult<UserRow> {
    if !TIERS.contains(&tier) {
        return Err(DbError::Other(format!("unknown tier {tier:?}: expected one of {}", TIERS.join(", "))));
    }
    let model = entity::ActiveModel {
        id: ActiveValue::NotSet,
        name: ActiveValue::Set(name.to_owned()),
        tier: ActiveValue::Set(tier.to_owned()),
        scopes: ActiveValue::Set(scopes::encode(scopes)?),
        disabled: ActiveValue::Set(false),
        created_at: ActiveValue::Set(truncate_to_micros(now)),
    }
    .insert(db)
    .await
    .map_err(|error| DbError::from_db_err(error, &format!("user {name:?}")))?;
    UserRow::try_from(model)
}

/// Sets the tier of user `id` (a federated sign-in brings the tier its identity provider maps to
/// each time). An unknown tier is [`DbError::Other`]; no such user is [`DbError::NotFound`].
#[tracing::instrument(skip_all, fields(user.id = id, user.tier = %tier))]
pub async fn update_tier(db: &DatabaseConnection, id: i64, tier: &str) -> DbResult<()> {
    if !TIERS.contains(&tier) {
        return Err(DbError::Other(format!("unknown tier {tier:?}: expected one of {}", TIERS.join(", "))));
    }
    let result = entity::Entity::update_many()
        .col_expr(entity::Column::Tier, Expr::value(tier))
        .filter(entity::Column::Id.eq(id))
        .exec(db)
        .await?;
    if result.rows_affected == 0 {
        return Err(DbError::NotFound(format!("user {id}")));
    }
    Ok(())
}

/// The user called `name`, if any.
#[tracing::instrument(skip_all, fields(user.name = %name))]
pub async fn find_by_name(db: &DatabaseConnection, name: &str) -> DbResult<Option<UserRow>> {
    entity::Entity::find().filter(entity::Column::Name.eq(name)).one(db).await?.map(UserRow::try_from).transpose()
}

/// The user with this id, if any.
#[tracing::instrument(skip_all, fields(user.id = id))]
pub async fn find_by_id(db: &DatabaseConnection, id: i64) -> DbResult<Option<UserRow>> {
    entity::Entity::find_by_id(id).one(db).await?.map(UserRow::try_from).transpose()
}

/// Every user, by id.
#[tracing::instrument(skip_all)]
pub async fn list(db: &DatabaseConnection) -> DbResult<Vec<UserRow>> {
    entity::Entity::find().order_by_asc(entity::Column::Id).all(db).await?.into_iter().map(UserRow::try_from).collect()
}

/// How many users exist (bootstrap creates the first admin when this is zero).
#[tracing::instrument(skip_all)]
pub async fn count(db: &DatabaseConnection) -> DbResult<u64> {
    Ok(entity::Entity::find().count(db).await?)
}
