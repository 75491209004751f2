//! The skills registry's storage: skills by name, their published versions, the versions' files
//! over content-addressed blobs, and the log of fetches. The daemon parses SKILL.md, computes the
//! digest and signs; this module stores and reads what it is given.
//!
//! Invariants:
//! - a version is immutable once stored: no function updates its files, digest or metadata; a
//!   yank only sets `yanked_at`, once;
//! - a blob is stored once per SHA-256, whatever number of versions contain it, and only after
//!   its bytes were checked against that SHA-256;
//! - every write to the catalog (a publish that stores, a yank) first increments the
//!   [`generation`] counter in its own transaction. On PostgreSQL that row lock orders catalog
//!   writes one after another, so version ids follow commit order (the highest id is the newest
//!   version) and concurrent publishes of one skill mostly queue instead of racing; the unique
//!   constraints still decide whatever race remains. A write that changes nothing rolls back,
//!   counter included.

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};

use crate::entity::skill_versions;
use crate::error::{DbError, DbResult};
use crate::meta;

mod decision;
mod fetches;
mod publish;
mod read;
mod yank;

pub use fetches::{FetchRow, NewFetch, recent_fetches, record_fetch};
pub use publish::{NewFile, NewVersion, PUBLISH_ATTEMPTS, PublishError, Published, publish};
pub use read::{
    files_of, files_of_latest_versions, find_version, latest_versions, read_all_files, read_file, versions_of,
};
pub use yank::{YankOutcome, yank};

/// The `castellan_meta` key of the catalog's generation counter.
pub const GENERATION_KEY: &str = "skills_generation";

/// Every value the `via` column of `skill_fetches` is meant to hold.
pub const FETCH_VIAS: [&str; 3] = ["mcp", "api", "sync"];

/// One version of a skill as stored, with its skill's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionSummary {
    /// The version's row id: what [`files_of`], [`read_file`] and [`read_all_files`] take.
    pub id: i64,
    pub name: String,
    pub version: String,
    /// `sha256:` and the lowercase hex digest of the content.
    pub digest: String,
    pub description: String,
    /// The SKILL.md frontmatter as JSON, as the publisher gave it.
    pub frontmatter: String,
    /// The signature as JSON, when signed.
    pub signature: Option<String>,
    /// `ed25519:` and the base64 key that signed it.
    pub signed_by: Option<String>,
    pub file_count: i64,
    pub total_bytes: i64,
    pub published_at: DateTime<Utc>,
    /// A user id, or `cli`.
    pub published_by: Option<String>,
    /// Whether it was yanked: `yanked_at.is_some()`.
    pub yanked: bool,
    pub yanked_at: Option<DateTime<Utc>>,
}

impl VersionSummary {
    pub(crate) fn from_model(model: skill_versions::Model, name: String) -> VersionSummary {
        VersionSummary {
            id: model.id,
            name,
            version: model.version,
            digest: model.digest,
            description: model.description,
            frontmatter: model.frontmatter,
            signature: model.signature,
            signed_by: model.signed_by,
            file_count: i64::from(model.file_count),
            total_bytes: model.total_bytes,
            published_at: model.published_at,
            published_by: model.published_by,
            yanked: model.yanked_at.is_some(),
            yanked_at: model.yanked_at,
        }
    }
}

/// One file of a version, without its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Relative to the skill's directory, `/`-separated.
    pub path: String,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
    pub size: i64,
}

/// A number that changes whenever a version is stored or yanked, and never otherwise: another
/// replica polls it (one primary-key read) to know when to reload its catalog. 0 before the first
/// write; it only grows.
#[tracing::instrument(skip_all)]
pub async fn generation(db: &DatabaseConnection) -> DbResult<i64> {
    let Some(value) = meta::get_with(db, GENERATION_KEY).await? else {
        return Ok(0);
    };
    value.parse().map_err(|_| DbError::Other(format!("{GENERATION_KEY} holds {value:?}, not an integer")))
}

/// A transaction for one write to the catalog, with the generation already incremented (and, on
/// PostgreSQL, its row locked until the end). `BEGIN IMMEDIATE` on SQLite: the write lock up
/// front, so waiting for it honours the busy timeout. Roll it back when nothing changed.
pub(crate) async fn begin_catalog_write(db: &DatabaseConnection) -> DbResult<DatabaseTransaction> {
    let transaction = db
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        })
        .await?;
    // The same text on both databases; the key is a constant, not input.
    transaction
        .execute_unprepared(&format!(
            "INSERT INTO castellan_meta (key, value) VALUES ('{GENERATION_KEY}', '1') ON CONFLICT (key) DO UPDATE \
             SET value = CAST(CAST(castellan_meta.value AS BIGINT) + 1 AS TEXT)"
        ))
        .await?;
    Ok(transaction)
}
