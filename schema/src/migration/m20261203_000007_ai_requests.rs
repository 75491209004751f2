//! `ai_requests`: one row per request through the AI gateway, committed as `started` before the
//! request goes upstream and completed (tokens, cost, latency, status) when it ends.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer_null, big_pk_auto, boolean, text, text_null, timestamp_with_time_zone, timestamp_with_time_zone_null,
};

use super::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AiRequests {
    Table,
    Id,
    UserId,
    ApiKeyId,
    SessionId,
    TraceId,
    Endpoint,
    Provider,
    Model,
    UpstreamModel,
    InputTokens,
    OutputTokens,
    CacheReadTokens,
    CacheWriteTokens,
    CostMicrodollars,
    LatencyMs,
    TtftMs,
    Status,
    ErrorMessage,
    Streamed,
    StartedAt,
    CompletedAt,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AiRequests::Table)
                    .if_not_exists()
                    .col(big_pk_auto(AiRequests::Id))
                    .col(text_null(AiRequests::UserId))
                    .col(text_null(AiRequests::ApiKeyId))
                    .col(text_null(AiRequests::SessionId))
                    .col(text(AiRequests::TraceId))
                    .col(text(AiRequests::Endpoint))
                    .col(text(AiRequests::Provider))
                    .col(text(AiRequests::Model))
                    .col(text(AiRequests::UpstreamModel))
                    .col(big_integer_null(AiRequests::InputTokens))
                    .col(big_integer_null(AiRequests::OutputTokens))
                    .col(big_integer_null(AiRequests::CacheReadTokens))
                    .col(big_integer_null(AiRequests::CacheWriteTokens))
                    .col(big_integer_null(AiRequests::CostMicrodollars))
                    .col(big_integer_null(AiRequests::LatencyMs))
                    .col(big_integer_null(AiRequests::TtftMs))
                    .col(text(AiRequests::Status))
                    .col(text_null(AiRequests::ErrorMessage))
                    .col(boolean(AiRequests::Streamed))
                    .col(timestamp_with_time_zone(AiRequests::StartedAt))
                    .col(timestamp_with_time_zone_null(AiRequests::CompletedAt))
                    .to_owned(),
            )
            .await?;
        // `costs`, `list` and `spend_since` select a time window; per user for `costs --user` and
        // `list?user=`. `mark_interrupted` runs once at start and may scan.
        manager.create_index(index("idx_ai_requests_started_at", AiRequests::Table, [AiRequests::StartedAt])).await?;
        manager
            .create_index(index(
                "idx_ai_requests_user_id_started_at",
                AiRequests::Table,
                [AiRequests::UserId, AiRequests::StartedAt],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(AiRequests::Table).if_exists().to_owned()).await
    }
}
