//! The `skill_fetches` table: one row each time a client fetched a skill version.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "skill_fetches")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The skill's name as fetched (not a reference: the log outlives what it names).
    #[sea_orm(column_type = "Text")]
    pub skill: String,
    #[sea_orm(column_type = "Text")]
    pub version: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub user_id: Option<String>,
    /// How it was fetched: `mcp`, `api` or `sync`.
    #[sea_orm(column_type = "Text")]
    pub via: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub trace_id: Option<String>,
    pub at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
