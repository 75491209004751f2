//! The `signing_keys` table: the authorization server's token signing keys, private halves sealed.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub kid: String,
    #[sea_orm(column_type = "Text")]
    pub alg: String,
    /// Opaque base64, sealed by the daemon under its master key.
    #[sea_orm(column_type = "Text")]
    pub sealed_private_key: String,
    /// The public key as a JWK, JSON.
    #[sea_orm(column_type = "Text")]
    pub public_jwk: String,
    pub created_at: DateTimeUtc,
    /// When the key stopped signing; it still verifies until `delete_after`.
    pub retired_at: Option<DateTimeUtc>,
    pub delete_after: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
