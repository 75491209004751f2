//! The `skill_files` table: the files of one skill version, each naming its content in
//! `skill_blobs`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "skill_files")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub version_id: i64,
    /// Relative to the skill's directory, `/`-separated.
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub path: String,
    /// The `skill_blobs` row holding the content.
    #[sea_orm(column_type = "Text")]
    pub sha256: String,
    pub size: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::skill_versions::Entity",
        from = "Column::VersionId",
        to = "super::skill_versions::Column::Id",
        on_delete = "Cascade"
    )]
    Version,
    #[sea_orm(
        belongs_to = "super::skill_blobs::Entity",
        from = "Column::Sha256",
        to = "super::skill_blobs::Column::Sha256"
    )]
    Blob,
}

impl Related<super::skill_versions::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Version.def()
    }
}

impl Related<super::skill_blobs::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Blob.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
