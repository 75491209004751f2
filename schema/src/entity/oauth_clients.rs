//! The `oauth_clients` table: OAuth clients, registered by an operator or dynamically (RFC 7591).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_clients")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(column_type = "Text", unique)]
    pub client_id: String,
    #[sea_orm(column_type = "Text")]
    pub name: String,
    /// One of [`crate::TIERS`].
    #[sea_orm(column_type = "Text")]
    pub tier: String,
    /// Lowercase hex SHA-256 of the client secret; none for public clients.
    #[sea_orm(column_type = "Text", nullable)]
    pub secret_hash: Option<String>,
    /// A JSON array of strings.
    #[sea_orm(column_type = "Text")]
    pub grant_types: String,
    /// A JSON array of strings.
    #[sea_orm(column_type = "Text")]
    pub redirect_uris: String,
    /// A JSON array of strings.
    #[sea_orm(column_type = "Text")]
    pub scopes: String,
    /// Registered through the dynamic registration endpoint (RFC 7591).
    pub dynamic: bool,
    pub created_at: DateTimeUtc,
    pub last_used_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
