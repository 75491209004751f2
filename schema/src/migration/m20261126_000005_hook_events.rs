//! Hook decisions: one row per handler decision, joined to the call by its trace id.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_pk_auto, text, text_null, timestamp_with_time_zone};

use super::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum HookEvents {
    Table,
    Id,
    Event,
    Decision,
    Handler,
    Reason,
    Server,
    Tool,
    UserId,
    TraceId,
    CreatedAt,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(HookEvents::Table)
                    .if_not_exists()
                    .col(big_pk_auto(HookEvents::Id))
                    .col(text(HookEvents::Event))
                    .col(text(HookEvents::Decision))
                    .col(text(HookEvents::Handler))
                    .col(text_null(HookEvents::Reason))
                    .col(text_null(HookEvents::Server))
                    .col(text_null(HookEvents::Tool))
                    .col(text_null(HookEvents::UserId))
                    .col(text(HookEvents::TraceId))
                    .col(timestamp_with_time_zone(HookEvents::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager.create_index(index("idx_hook_events_trace_id", HookEvents::Table, [HookEvents::TraceId])).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(HookEvents::Table).if_exists().to_owned()).await
    }
}
