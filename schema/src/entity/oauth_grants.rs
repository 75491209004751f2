//! The `oauth_grants` table: one row per grant (a refresh-token family and its access tokens).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_grants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub grant_id: String,
    #[sea_orm(column_type = "Text")]
    pub client_id: String,
    /// The user who consented; none for a client-credentials grant.
    pub user_id: Option<i64>,
    /// A JSON array of strings.
    #[sea_orm(column_type = "Text")]
    pub scopes: String,
    /// A JSON array of strings (RFC 8707 resource indicators).
    #[sea_orm(column_type = "Text")]
    pub resources: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
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
