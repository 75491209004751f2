//! The scheduler's tables: every run of a job (`job_runs`), the lease that lets one replica run a job
//! at a time (`job_leases`), and the forwarding jobs' durable cursors (`forward_cursors`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_pk_auto, text, text_null, timestamp_with_time_zone, timestamp_with_time_zone_null,
};

use super::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum JobRuns {
    Table,
    Id,
    Job,
    StartedAt,
    CompletedAt,
    Status,
    Detail,
}

#[derive(DeriveIden)]
enum JobLeases {
    Table,
    Job,
    Holder,
    ExpiresAtMs,
}

#[derive(DeriveIden)]
enum ForwardCursors {
    Table,
    Sink,
    #[sea_orm(iden = "table")]
    SourceTable,
    LastId,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(JobRuns::Table)
                    .if_not_exists()
                    .col(big_pk_auto(JobRuns::Id))
                    .col(text(JobRuns::Job))
                    .col(timestamp_with_time_zone(JobRuns::StartedAt))
                    .col(timestamp_with_time_zone_null(JobRuns::CompletedAt))
                    .col(text(JobRuns::Status))
                    .col(text_null(JobRuns::Detail))
                    .to_owned(),
            )
            .await?;
        manager.create_index(index("idx_job_runs_job_id", JobRuns::Table, [JobRuns::Job, JobRuns::Id])).await?;
        manager
            .create_table(
                Table::create()
                    .table(JobLeases::Table)
                    .if_not_exists()
                    .col(text(JobLeases::Job).primary_key())
                    .col(text(JobLeases::Holder))
                    // Milliseconds since the epoch: compared in SQL on both databases without a
                    // timestamp format to agree on.
                    .col(big_integer(JobLeases::ExpiresAtMs))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ForwardCursors::Table)
                    .if_not_exists()
                    .col(text(ForwardCursors::Sink))
                    .col(text(ForwardCursors::SourceTable))
                    .col(big_integer(ForwardCursors::LastId))
                    .primary_key(Index::create().col(ForwardCursors::Sink).col(ForwardCursors::SourceTable))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [JobRuns::Table.into_iden(), JobLeases::Table.into_iden(), ForwardCursors::Table.into_iden()] {
            manager.drop_table(Table::drop().table(table).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
