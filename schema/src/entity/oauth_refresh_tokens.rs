//! The `oauth_refresh_tokens` table: refresh tokens, stored as hashes, each usable once.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_refresh_tokens")]
pub struct Model {
    /// Lowercase hex SHA-256 of the token.
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub token_hash: String,
    /// The grant (token family) the token belongs to.
    #[sea_orm(column_type = "Text")]
    pub grant_id: String,
    #[sea_orm(column_type = "Text")]
    pub client_id: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    /// When the token was exchanged for a new one; a second use is a replay.
    pub used_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
