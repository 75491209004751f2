//! The first schema: users, API keys, the audit trail of tool calls, and installation facts.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_pk_auto, boolean, text, text_null, text_uniq, timestamp_with_time_zone,
    timestamp_with_time_zone_null,
};

use super::{index, unique_index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Name,
    Tier,
    Scopes,
    Disabled,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    PublicId,
    UserId,
    KeyHash,
    Scopes,
    CreatedAt,
    ExpiresAt,
    RevokedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum McpToolExecutions {
    Table,
    Id,
    Server,
    Tool,
    Input,
    Output,
    Status,
    ErrorMessage,
    UserId,
    SessionId,
    TraceId,
    StartedAt,
    CompletedAt,
    DurationMs,
    PrevHash,
    RowHash,
}

#[derive(DeriveIden)]
enum CastellanMeta {
    Table,
    Key,
    Value,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_table(users_table()).await?;
        manager.create_table(api_keys_table()).await?;
        manager.create_index(index("idx_api_keys_user_id", ApiKeys::Table, [ApiKeys::UserId])).await?;
        manager.create_table(mcp_tool_executions_table()).await?;
        for statement in mcp_tool_executions_indexes() {
            manager.create_index(statement).await?;
        }
        manager.create_table(castellan_meta_table()).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            CastellanMeta::Table.into_iden(),
            McpToolExecutions::Table.into_iden(),
            ApiKeys::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).if_exists().to_owned()).await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

fn users_table() -> TableCreateStatement {
    Table::create()
        .table(Users::Table)
        .if_not_exists()
        .col(big_pk_auto(Users::Id))
        .col(text_uniq(Users::Name))
        .col(text(Users::Tier))
        .col(text(Users::Scopes))
        .col(boolean(Users::Disabled).default(false))
        .col(timestamp_with_time_zone(Users::CreatedAt))
        .to_owned()
}

fn api_keys_table() -> TableCreateStatement {
    Table::create()
        .table(ApiKeys::Table)
        .if_not_exists()
        .col(big_pk_auto(ApiKeys::Id))
        .col(text_uniq(ApiKeys::PublicId))
        .col(big_integer(ApiKeys::UserId))
        .col(text_uniq(ApiKeys::KeyHash))
        .col(text(ApiKeys::Scopes))
        .col(timestamp_with_time_zone(ApiKeys::CreatedAt))
        .col(timestamp_with_time_zone_null(ApiKeys::ExpiresAt))
        .col(timestamp_with_time_zone_null(ApiKeys::RevokedAt))
        .col(timestamp_with_time_zone_null(ApiKeys::LastUsedAt))
        .foreign_key(
            ForeignKey::create()
                .name("fk_api_keys_user_id")
                .from(ApiKeys::Table, ApiKeys::UserId)
                .to(Users::Table, Users::Id)
                .on_delete(ForeignKeyAction::Cascade),
        )
        .to_owned()
}

fn mcp_tool_executions_table() -> TableCreateStatement {
    Table::create()
        .table(McpToolExecutions::Table)
        .if_not_exists()
        .col(big_pk_auto(McpToolExecutions::Id))
        .col(text(McpToolExecutions::Server))
        .col(text(McpToolExecutions::Tool))
        .col(text(McpToolExecutions::Input))
        .col(text_null(McpToolExecutions::Output))
        .col(text(McpToolExecutions::Status))
        .col(text_null(McpToolExecutions::ErrorMessage))
        .col(text_null(McpToolExecutions::UserId))
        .col(text_null(McpToolExecutions::SessionId))
        .col(text(McpToolExecutions::TraceId))
        .col(timestamp_with_time_zone(McpToolExecutions::StartedAt))
        .col(timestamp_with_time_zone(McpToolExecutions::CompletedAt))
        .col(big_integer(McpToolExecutions::DurationMs))
        .col(text(McpToolExecutions::PrevHash))
        .col(text(McpToolExecutions::RowHash))
        .to_owned()
}

fn mcp_tool_executions_indexes() -> Vec<IndexCreateStatement> {
    use McpToolExecutions as T;
    vec![
        index("idx_mcp_tool_executions_started_at", T::Table, [T::StartedAt]),
        index("idx_mcp_tool_executions_server_tool", T::Table, [T::Server, T::Tool]),
        index("idx_mcp_tool_executions_user_id", T::Table, [T::UserId]),
        index("idx_mcp_tool_executions_trace_id", T::Table, [T::TraceId]),
        // The chain cannot fork: no two rows may claim the same predecessor or hash.
        unique_index("idx_mcp_tool_executions_prev_hash", T::Table, [T::PrevHash]),
        unique_index("idx_mcp_tool_executions_row_hash", T::Table, [T::RowHash]),
    ]
}

fn castellan_meta_table() -> TableCreateStatement {
    Table::create()
        .table(CastellanMeta::Table)
        .if_not_exists()
        .col(text(CastellanMeta::Key).primary_key())
        .col(text(CastellanMeta::Value))
        .to_owned()
}
