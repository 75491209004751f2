//! Reading the catalog: the latest version of every skill, one skill's versions, one version's
//! files and their contents.
//!
//! Lists are sorted in Rust, by bytes, so SQLite and PostgreSQL (whose collation may order text
//! differently) return the same order.

use sea_orm::sea_query::{Expr, Func, Query};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select};

use super::{FileEntry, VersionSummary};
use crate::entity::{skill_blobs, skill_files, skill_versions, skills};
use crate::error::{DbError, DbResult};

/// One row per skill: its most recently published version that is not yanked (the highest id).
/// A skill whose every version is yanked is absent. Sorted by name. One query.
#[tracing::instrument(skip_all)]
pub async fn latest_versions(db: &DatabaseConnection) -> DbResult<Vec<VersionSummary>> {
    let mut summaries =
        summaries(db, skill_versions::Entity::find().filter(skill_versions::Column::Id.in_subquery(latest_ids())))
            .await?;
    summaries.sort_by(|left, right| left.name.cmp(&right.name));
    Ok(summaries)
}

/// The ids of [`latest_versions`]: the highest id per skill among versions not yanked.
fn latest_ids() -> sea_orm::sea_query::SelectStatement {
    Query::select()
        .expr(Func::max(Expr::col(skill_versions::Column::Id)))
        .from(skill_versions::Entity)
        .and_where(skill_versions::Column::YankedAt.is_null())
        .group_by_col(skill_versions::Column::SkillId)
        .to_owned()
}

/// The files of every version [`latest_versions`] returns, by version id, each list sorted by
/// path. One query, however many skills (what a catalog load reads).
#[tracing::instrument(skip_all)]
pub async fn files_of_latest_versions(
    db: &DatabaseConnection,
) -> DbResult<std::collections::HashMap<i64, Vec<FileEntry>>> {
    let rows =
        skill_files::Entity::find().filter(skill_files::Column::VersionId.in_subquery(latest_ids())).all(db).await?;
    let mut by_version: std::collections::HashMap<i64, Vec<FileEntry>> = std::collections::HashMap::new();
    for row in rows {
        let version = row.version_id;
        by_version.entry(version).or_default().push(file_entry(row));
    }
    for files in by_version.values_mut() {
        files.sort_by(|left, right| left.path.cmp(&right.path));
    }
    Ok(by_version)
}

/// Every version of skill `name`, yanked ones included, oldest first; empty for an unknown skill.
#[tracing::instrument(skip_all, fields(skill = %name))]
pub async fn versions_of(db: &DatabaseConnection, name: &str) -> DbResult<Vec<VersionSummary>> {
    summaries(db, of_skill(name).order_by_asc(skill_versions::Column::Id)).await
}

/// Version `version` of skill `name`, even if yanked (the caller decides what a yanked version
/// means to it); with None, the skill's latest version that is not yanked.
#[tracing::instrument(skip_all, fields(skill = %name, version))]
pub async fn find_version(
    db: &DatabaseConnection,
    name: &str,
    version: Option<&str>,
) -> DbResult<Option<VersionSummary>> {
    let select = match version {
        Some(version) => of_skill(name).filter(skill_versions::Column::Version.eq(version)),
        None => of_skill(name).filter(skill_versions::Column::YankedAt.is_null()),
    };
    let found = summaries(db, select.order_by_desc(skill_versions::Column::Id).limit(1)).await?;
    Ok(found.into_iter().next())
}

/// The files of version `version_id` (a [`VersionSummary::id`]), sorted by path.
#[tracing::instrument(skip_all, fields(version_id))]
pub async fn files_of(db: &DatabaseConnection, version_id: i64) -> DbResult<Vec<FileEntry>> {
    let rows = skill_files::Entity::find().filter(skill_files::Column::VersionId.eq(version_id)).all(db).await?;
    let mut entries: Vec<FileEntry> = rows.into_iter().map(file_entry).collect();
    entries.sort_by(|left, right| left.path.cmp(&right.path));
    Ok(entries)
}

/// The content of file `path` of version `version_id`; None when the version has no such file.
#[tracing::instrument(skip_all, fields(version_id))]
pub async fn read_file(db: &DatabaseConnection, version_id: i64, path: &str) -> DbResult<Option<Vec<u8>>> {
    let content = skill_files::Entity::find()
        .select_only()
        .column(skill_blobs::Column::Content)
        .inner_join(skill_blobs::Entity)
        .filter(skill_files::Column::VersionId.eq(version_id))
        .filter(skill_files::Column::Path.eq(path))
        .into_tuple::<Vec<u8>>()
        .one(db)
        .await?;
    Ok(content)
}

/// Every file of version `version_id` with its content, sorted by path. One query.
#[tracing::instrument(skip_all, fields(version_id))]
pub async fn read_all_files(db: &DatabaseConnection, version_id: i64) -> DbResult<Vec<(FileEntry, Vec<u8>)>> {
    let rows = skill_files::Entity::find()
        .filter(skill_files::Column::VersionId.eq(version_id))
        .find_also_related(skill_blobs::Entity)
        .all(db)
        .await?;
    let mut files = Vec::with_capacity(rows.len());
    for (file, blob) in rows {
        let Some(blob) = blob else {
            return Err(DbError::Other(format!("the content of {} ({}) is missing", file.path, file.sha256)));
        };
        files.push((file_entry(file), blob.content));
    }
    files.sort_by(|(left, _), (right, _)| left.path.cmp(&right.path));
    Ok(files)
}

/// The versions of skill `name`.
fn of_skill(name: &str) -> Select<skill_versions::Entity> {
    let skill_id = Query::select()
        .column(skills::Column::Id)
        .from(skills::Entity)
        .and_where(skills::Column::Name.eq(name))
        .to_owned();
    skill_versions::Entity::find().filter(skill_versions::Column::SkillId.in_subquery(skill_id))
}

/// The versions `select` picks, each with its skill's name, in `select`'s order.
async fn summaries(db: &DatabaseConnection, select: Select<skill_versions::Entity>) -> DbResult<Vec<VersionSummary>> {
    let rows = select.find_also_related(skills::Entity).all(db).await?;
    let mut summaries = Vec::with_capacity(rows.len());
    for (version, skill) in rows {
        let Some(skill) = skill else {
            return Err(DbError::Other(format!("skill version {} has no skill", version.id)));
        };
        summaries.push(VersionSummary::from_model(version, skill.name));
    }
    Ok(summaries)
}

fn file_entry(file: skill_files::Model) -> FileEntry {
    FileEntry { path: file.path, sha256: file.sha256, size: file.size }
}
