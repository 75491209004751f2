//! The `oauth_codes` table: authorization codes, stored as hashes, each redeemable once.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_codes")]
pub struct Model {
    /// Lowercase hex SHA-256 of the code.
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub code_hash: String,
    #[sea_orm(column_type = "Text")]
    pub grant_id: String,
    #[sea_orm(column_type = "Text")]
    pub client_id: String,
    pub user_id: i64,
    #[sea_orm(column_type = "Text")]
    pub redirect_uri: String,
    /// The PKCE `code_challenge` (S256).
    #[sea_orm(column_type = "Text")]
    pub code_challenge: String,
    /// A JSON array of strings.
    #[sea_orm(column_type = "Text")]
    pub resources: String,
    /// A JSON array of strings.
    #[sea_orm(column_type = "Text")]
    pub scopes: String,
    /// When the user authenticated.
    pub auth_time: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub consumed_at: Option<DateTimeUtc>,
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
