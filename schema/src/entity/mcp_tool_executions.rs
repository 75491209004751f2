//! The `mcp_tool_executions` table: the hash-chained audit trail of MCP tool calls.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mcp_tool_executions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(column_type = "Text")]
    pub server: String,
    #[sea_orm(column_type = "Text")]
    pub tool: String,
    /// What the row records: one of [`crate::audit::EXECUTION_KINDS`] (`tool` for rows written
    /// before the column existed).
    #[sea_orm(column_type = "Text")]
    pub kind: String,
    /// The call's arguments, JSON.
    #[sea_orm(column_type = "Text")]
    pub input: String,
    /// The result, JSON, when there is one.
    #[sea_orm(column_type = "Text", nullable)]
    pub output: Option<String>,
    /// One of [`crate::audit::EXECUTION_STATUSES`].
    #[sea_orm(column_type = "Text")]
    pub status: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub error_message: Option<String>,
    /// The principal's subject (user name), not a foreign key: audit rows outlive users.
    #[sea_orm(column_type = "Text", nullable)]
    pub user_id: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub session_id: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub trace_id: String,
    pub started_at: DateTimeUtc,
    pub completed_at: DateTimeUtc,
    pub duration_ms: i64,
    /// The previous row's `row_hash` (or the genesis hash), hex.
    #[sea_orm(column_type = "Text", unique)]
    pub prev_hash: String,
    /// SHA-256 over `prev_hash` and this row's fields, hex.
    #[sea_orm(column_type = "Text", unique)]
    pub row_hash: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
