//! The skills registry: skills by name (`skills`), their immutable published versions
//! (`skill_versions`), the versions' files (`skill_files`) over content-addressed blobs
//! (`skill_blobs`), and the log of fetches (`skill_fetches`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_pk_auto, blob, integer, text, text_null, text_uniq, timestamp_with_time_zone,
    timestamp_with_time_zone_null,
};

use super::{index, unique_index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Skills {
    Table,
    Id,
    Name,
    CreatedAt,
}

#[derive(DeriveIden)]
enum SkillVersions {
    Table,
    Id,
    SkillId,
    Version,
    Digest,
    Description,
    Frontmatter,
    Signature,
    SignedBy,
    FileCount,
    TotalBytes,
    PublishedBy,
    PublishedAt,
    YankedAt,
}

#[derive(DeriveIden)]
enum SkillBlobs {
    Table,
    Sha256,
    Size,
    Content,
}

#[derive(DeriveIden)]
enum SkillFiles {
    Table,
    VersionId,
    Path,
    Sha256,
    Size,
}

#[derive(DeriveIden)]
enum SkillFetches {
    Table,
    Id,
    Skill,
    Version,
    UserId,
    Via,
    TraceId,
    At,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_table(skills_table()).await?;
        manager.create_table(skill_versions_table()).await?;
        // The constraint that decides a race between two replicas publishing the same version.
        manager
            .create_index(unique_index(
                "idx_skill_versions_skill_id_version",
                SkillVersions::Table,
                [SkillVersions::SkillId, SkillVersions::Version],
            ))
            .await?;
        // A publish looks for an existing version with the same content.
        manager
            .create_index(index(
                "idx_skill_versions_skill_id_digest",
                SkillVersions::Table,
                [SkillVersions::SkillId, SkillVersions::Digest],
            ))
            .await?;
        manager.create_table(skill_blobs_table()).await?;
        manager.create_table(skill_files_table()).await?;
        manager.create_table(skill_fetches_table()).await?;
        // `recent_fetches` and retention read by time.
        manager.create_index(index("idx_skill_fetches_at", SkillFetches::Table, [SkillFetches::At])).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            SkillFetches::Table.into_iden(),
            SkillFiles::Table.into_iden(),
            SkillBlobs::Table.into_iden(),
            SkillVersions::Table.into_iden(),
            Skills::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).if_exists().to_owned()).await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

fn skills_table() -> TableCreateStatement {
    Table::create()
        .table(Skills::Table)
        .if_not_exists()
        .col(big_pk_auto(Skills::Id))
        .col(text_uniq(Skills::Name))
        .col(timestamp_with_time_zone(Skills::CreatedAt))
        .to_owned()
}

fn skill_versions_table() -> TableCreateStatement {
    use SkillVersions as T;
    Table::create()
        .table(T::Table)
        .if_not_exists()
        .col(big_pk_auto(T::Id))
        .col(big_integer(T::SkillId))
        .col(text(T::Version))
        .col(text(T::Digest))
        .col(text(T::Description))
        .col(text(T::Frontmatter))
        .col(text_null(T::Signature))
        .col(text_null(T::SignedBy))
        .col(integer(T::FileCount))
        .col(big_integer(T::TotalBytes))
        .col(text_null(T::PublishedBy))
        .col(timestamp_with_time_zone(T::PublishedAt))
        .col(timestamp_with_time_zone_null(T::YankedAt))
        .foreign_key(
            ForeignKey::create()
                .name("fk_skill_versions_skill_id")
                .from(T::Table, T::SkillId)
                .to(Skills::Table, Skills::Id)
                .on_delete(ForeignKeyAction::Cascade),
        )
        .to_owned()
}

fn skill_blobs_table() -> TableCreateStatement {
    Table::create()
        .table(SkillBlobs::Table)
        .if_not_exists()
        .col(text(SkillBlobs::Sha256).primary_key())
        .col(big_integer(SkillBlobs::Size))
        .col(blob(SkillBlobs::Content))
        .to_owned()
}

fn skill_files_table() -> TableCreateStatement {
    use SkillFiles as T;
    Table::create()
        .table(T::Table)
        .if_not_exists()
        .col(big_integer(T::VersionId))
        .col(text(T::Path))
        .col(text(T::Sha256))
        .col(big_integer(T::Size))
        .primary_key(Index::create().col(T::VersionId).col(T::Path))
        .foreign_key(
            ForeignKey::create()
                .name("fk_skill_files_version_id")
                .from(T::Table, T::VersionId)
                .to(SkillVersions::Table, SkillVersions::Id)
                .on_delete(ForeignKeyAction::Cascade),
        )
        // No cascade: a blob is only ever removed once no file names it.
        .foreign_key(
            ForeignKey::create()
                .name("fk_skill_files_sha256")
                .from(T::Table, T::Sha256)
                .to(SkillBlobs::Table, SkillBlobs::Sha256),
        )
        .to_owned()
}

fn skill_fetches_table() -> TableCreateStatement {
    use SkillFetches as T;
    Table::create()
        .table(T::Table)
        .if_not_exists()
        .col(big_pk_auto(T::Id))
        .col(text(T::Skill))
        .col(text(T::Version))
        .col(text_null(T::UserId))
        .col(text(T::Via))
        .col(text_null(T::TraceId))
        .col(timestamp_with_time_zone(T::At))
        .to_owned()
}
