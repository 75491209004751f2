//! `mcp_tool_executions.kind`: what a row records (`tool`, `resource`, `prompt`), now that
//! resources, prompts and completion pass the governed chain and are audited like tool calls.
//! Rows written before it are tool calls, so the column defaults to `tool`.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum McpToolExecutions {
    Table,
    Kind,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(McpToolExecutions::Table)
                    .add_column(ColumnDef::new(McpToolExecutions::Kind).text().not_null().default("tool"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(McpToolExecutions::Table).drop_column(McpToolExecutions::Kind).to_owned())
            .await
    }
}
