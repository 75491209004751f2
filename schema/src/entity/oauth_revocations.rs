//! The `oauth_revocations` table: the append-only log of revoked grants and access-token ids that
//! every replica polls by id.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_revocations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// `grant` or `jti`.
    #[sea_orm(column_type = "Text")]
    pub kind: String,
    /// The grant id or the access token's `jti`.
    #[sea_orm(column_type = "Text")]
    pub value: String,
    pub revoked_at: DateTimeUtc,
    /// When the entry can be forgotten: every access token it could affect has expired.
    pub expires_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
