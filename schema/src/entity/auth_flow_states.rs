//! The `auth_flow_states` table: short-lived, single-use server-side state of a sign-in or
//! authorization in progress (WebAuthn ceremonies, pending authorization requests, federated login).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "auth_flow_states")]
pub struct Model {
    /// Lowercase hex SHA-256 of the random id handed to the browser.
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id_hash: String,
    /// What the state is for; a state is only ever read back as the kind it was stored as.
    #[sea_orm(column_type = "Text")]
    pub kind: String,
    pub user_id: Option<i64>,
    /// Opaque JSON.
    #[sea_orm(column_type = "Text")]
    pub state: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::UserId",
        to = "super::users::Column::Id",
        on_delete = "Cascade"
    )]
    User,
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
