//! The `tool_pins` table: per (server, tool), the approved and the last observed definition hash.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tool_pins")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub server: String,
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub tool: String,
    #[sea_orm(column_type = "Text")]
    pub approved_hash: String,
    #[sea_orm(column_type = "Text")]
    pub observed_hash: String,
    pub approved_at: DateTimeUtc,
    pub observed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
