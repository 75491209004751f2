//! The `skill_versions` table: one immutable row per published version of a skill (only
//! `yanked_at` is ever set after the insert).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "skill_versions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub skill_id: i64,
    /// The skill's `metadata.version`, or the next integer when it has none. Unique per skill.
    #[sea_orm(column_type = "Text")]
    pub version: String,
    /// `sha256:` and the lowercase hex digest of the version's content, as the daemon computes it.
    #[sea_orm(column_type = "Text")]
    pub digest: String,
    #[sea_orm(column_type = "Text")]
    pub description: String,
    /// The SKILL.md frontmatter as a JSON object.
    #[sea_orm(column_type = "Text")]
    pub frontmatter: String,
    /// The signature as JSON, when the version was signed.
    #[sea_orm(column_type = "Text", nullable)]
    pub signature: Option<String>,
    /// `ed25519:` and the base64 public key that signed it.
    #[sea_orm(column_type = "Text", nullable)]
    pub signed_by: Option<String>,
    pub file_count: i32,
    pub total_bytes: i64,
    /// The publishing user's id, or `cli`.
    #[sea_orm(column_type = "Text", nullable)]
    pub published_by: Option<String>,
    pub published_at: DateTimeUtc,
    pub yanked_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::skills::Entity",
        from = "Column::SkillId",
        to = "super::skills::Column::Id",
        on_delete = "Cascade"
    )]
    Skill,
    #[sea_orm(has_many = "super::skill_files::Entity")]
    Files,
}

impl Related<super::skills::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Skill.def()
    }
}

impl Related<super::skill_files::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Files.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
