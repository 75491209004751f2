//! Tool pins: the approved fingerprint of each tool's definition, and the one last seen.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{text, timestamp_with_time_zone};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ToolPins {
    Table,
    Server,
    Tool,
    ApprovedHash,
    ObservedHash,
    ApprovedAt,
    ObservedAt,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ToolPins::Table)
                    .if_not_exists()
                    .col(text(ToolPins::Server))
                    .col(text(ToolPins::Tool))
                    .col(text(ToolPins::ApprovedHash))
                    .col(text(ToolPins::ObservedHash))
                    .col(timestamp_with_time_zone(ToolPins::ApprovedAt))
                    .col(timestamp_with_time_zone(ToolPins::ObservedAt))
                    .primary_key(Index::create().col(ToolPins::Server).col(ToolPins::Tool))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(ToolPins::Table).if_exists().to_owned()).await
    }
}
