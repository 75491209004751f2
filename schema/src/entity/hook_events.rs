//! The `hook_events` table: what each hook handler decided, and why.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "hook_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(column_type = "Text")]
    pub event: String,
    /// `allow` or `deny`.
    #[sea_orm(column_type = "Text")]
    pub decision: String,
    /// Which handler decided, e.g. `builtin:deny_arguments`.
    #[sea_orm(column_type = "Text")]
    pub handler: String,
    pub reason: Option<String>,
    pub server: Option<String>,
    pub tool: Option<String>,
    pub user_id: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub trace_id: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
