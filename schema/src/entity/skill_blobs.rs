//! The `skill_blobs` table: file contents by their SHA-256, stored once however many versions
//! contain them.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "skill_blobs")]
pub struct Model {
    /// Lowercase hex SHA-256 of `content`.
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub sha256: String,
    pub size: i64,
    #[sea_orm(column_type = "Blob")]
    pub content: Vec<u8>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::skill_files::Entity")]
    Files,
}

impl Related<super::skill_files::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Files.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
