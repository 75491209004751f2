//! Publishing a version: the files' blobs (each stored once), the version row and its file list,
//! in one transaction, or nothing when the content is already there or the version is taken.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue, ColumnTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder,
    SqlErr,
};
use sha2::{Digest, Sha256};

use super::begin_catalog_write;
use super::decision::{Decision, ExistingVersion, decide};
use crate::entity::{skill_blobs, skill_files, skill_versions, skills};
use crate::error::{DbError, DbResult};
use crate::time::truncate_to_micros;

/// How many times a publish that lost a race on the unique constraints starts over.
pub const PUBLISH_ATTEMPTS: usize = 5;

/// Rows per multi-row insert, and a soft bound on the bytes of one blob insert.
const INSERT_CHUNK_ROWS: usize = 100;
const INSERT_CHUNK_BYTES: usize = 8 * 1024 * 1024;

/// One file of a version to publish.
#[derive(Debug, Clone, Copy)]
pub struct NewFile<'a> {
    /// Relative to the skill's directory, `/`-separated; unique within the version.
    pub path: &'a str,
    /// Lowercase hex SHA-256 of `bytes` (checked).
    pub sha256: &'a str,
    pub bytes: &'a [u8],
}

/// A version to publish.
#[derive(Debug, Clone, Copy)]
pub struct NewVersion<'a> {
    pub name: &'a str,
    /// The version from the skill's metadata; None: the next integer (1, 2, ...) after the highest
    /// integer version of this skill.
    pub version: Option<&'a str>,
    /// `sha256:` and the lowercase hex digest of the content, as the daemon computes it.
    pub digest: &'a str,
    pub description: &'a str,
    /// The SKILL.md frontmatter as JSON.
    pub frontmatter: &'a str,
    /// The signature as JSON, when signed.
    pub signature: Option<&'a str>,
    /// `ed25519:` and the base64 key that signed it.
    pub signed_by: Option<&'a str>,
    pub files: &'a [NewFile<'a>],
    /// A user id, or `cli`.
    pub published_by: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// A new version was stored.
    Stored { version: String },
    /// This version, not yanked, has the same content already: nothing was written.
    Unchanged { version: String },
}

impl Published {
    /// The version stored or found.
    pub fn version(&self) -> &str {
        match self {
            Published::Stored { version } | Published::Unchanged { version } => version,
        }
    }
}

/// Why a publish stored nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The given version exists with different content: versions are immutable.
    #[error(
        "version {version} of skill {name} is already published with different content; versions never change: \
         bump metadata.version and publish again"
    )]
    Conflict { name: String, version: String },
    /// The given version exists with the same content but was yanked; it cannot come back.
    #[error(
        "version {version} of skill {name} was yanked and its content cannot be published again: change it, or \
         set a new metadata.version"
    )]
    Yanked { name: String, version: String },
    /// A file's path or SHA-256 is not acceptable (a bug in the caller).
    #[error("file {path:?} of skill {name} cannot be stored: {reason}")]
    InvalidFile { name: String, path: String, reason: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Publishes `new` in one transaction. Same content as a version of the skill that is not yanked
/// (and, when a version is given, that version): [`Published::Unchanged`], nothing written. A given
/// version that exists with different content: [`PublishError::Conflict`], nothing written.
/// Otherwise the blobs not yet stored, the version and its files are written. A publish that loses
/// a race with another replica starts over (at most [`PUBLISH_ATTEMPTS`] times) and then sees the
/// winner's version.
#[tracing::instrument(skip_all, fields(skill = %new.name, version = new.version, digest = %new.digest))]
pub async fn publish(db: &DatabaseConnection, new: NewVersion<'_>) -> Result<Published, PublishError> {
    let blobs = checked_blobs(&new)?;
    let mut attempt = 1;
    loop {
        match publish_once(db, &new, &blobs).await {
            Ok(published) => return Ok(published),
            Err(Attempt::Failed(error)) => return Err(error),
            Err(Attempt::LostRace(error)) if attempt < PUBLISH_ATTEMPTS => {
                tracing::debug!(attempt, %error, "lost a publish race; starting over");
                attempt += 1;
            }
            Err(Attempt::LostRace(error)) => {
                return Err(PublishError::Db(DbError::from_db_err(error, "the skill version")));
            }
        }
    }
}

/// How one attempt failed.
enum Attempt {
    /// Another transaction stored the same version first: worth starting over.
    LostRace(DbErr),
    Failed(PublishError),
}

impl From<DbError> for Attempt {
    fn from(error: DbError) -> Attempt {
        Attempt::Failed(PublishError::Db(error))
    }
}

impl From<DbErr> for Attempt {
    fn from(error: DbErr) -> Attempt {
        Attempt::from(DbError::from(error))
    }
}

impl From<PublishError> for Attempt {
    fn from(error: PublishError) -> Attempt {
        Attempt::Failed(error)
    }
}

/// The distinct contents of `new`'s files by SHA-256, after checking every path is unique and
/// every SHA-256 is the lowercase hex hash of its bytes.
fn checked_blobs<'a>(new: &NewVersion<'a>) -> Result<BTreeMap<&'a str, &'a [u8]>, PublishError> {
    let invalid = |path: &str, reason: String| PublishError::InvalidFile {
        name: new.name.to_owned(),
        path: path.to_owned(),
        reason,
    };
    let mut paths = std::collections::BTreeSet::new();
    let mut blobs = BTreeMap::new();
    for file in new.files {
        if file.path.is_empty() {
            return Err(invalid(file.path, "the path is empty".to_owned()));
        }
        if !paths.insert(file.path) {
            return Err(invalid(file.path, "the path appears twice".to_owned()));
        }
        let actual = hex::encode(Sha256::digest(file.bytes));
        if file.sha256 != actual {
            return Err(invalid(file.path, format!("its SHA-256 is {actual}, not {:?}", file.sha256)));
        }
        blobs.insert(file.sha256, file.bytes);
    }
    Ok(blobs)
}

async fn publish_once(
    db: &DatabaseConnection,
    new: &NewVersion<'_>,
    blobs: &BTreeMap<&str, &[u8]>,
) -> Result<Published, Attempt> {
    let transaction = begin_catalog_write(db).await?;
    let now = truncate_to_micros(new.now);
    let skill_id = find_or_create_skill(&transaction, new.name, now).await?;
    let existing: Vec<ExistingVersion> = skill_versions::Entity::find()
        .filter(skill_versions::Column::SkillId.eq(skill_id))
        .order_by_asc(skill_versions::Column::Id)
        .all(&transaction)
        .await?
        .into_iter()
        .map(|row| ExistingVersion { version: row.version, digest: row.digest, yanked: row.yanked_at.is_some() })
        .collect();
    let name = new.name.to_owned();
    let version = match decide(&existing, new.version, new.digest) {
        Decision::Store(version) => version,
        Decision::Unchanged(version) => {
            transaction.rollback().await?;
            return Ok(Published::Unchanged { version });
        }
        Decision::Conflict(version) => {
            transaction.rollback().await?;
            return Err(PublishError::Conflict { name, version }.into());
        }
        Decision::Yanked(version) => {
            transaction.rollback().await?;
            return Err(PublishError::Yanked { name, version }.into());
        }
        Decision::SequenceExhausted => {
            return Err(DbError::Other(format!("skill {name} has no integer version left")).into());
        }
    };
    insert_blobs(&transaction, blobs).await?;
    let version_id = match insert_version(&transaction, new, skill_id, &version, now).await {
        Ok(version_id) => version_id,
        Err(error) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            // The transaction is void on PostgreSQL after an error; the next attempt re-reads.
            transaction.rollback().await?;
            return Err(Attempt::LostRace(error));
        }
        Err(error) => return Err(error.into()),
    };
    insert_files(&transaction, version_id, new.files).await?;
    transaction.commit().await?;
    Ok(Published::Stored { version })
}

/// The id of skill `name`, created (at `now`) if it is new.
async fn find_or_create_skill(transaction: &DatabaseTransaction, name: &str, now: DateTime<Utc>) -> DbResult<i64> {
    let find = || skills::Entity::find().filter(skills::Column::Name.eq(name));
    if let Some(skill) = find().one(transaction).await? {
        return Ok(skill.id);
    }
    skills::Entity::insert(skills::ActiveModel {
        id: ActiveValue::NotSet,
        name: ActiveValue::Set(name.to_owned()),
        created_at: ActiveValue::Set(now),
    })
    .on_conflict(OnConflict::column(skills::Column::Name).do_nothing().to_owned())
    .exec_without_returning(transaction)
    .await?;
    match find().one(transaction).await? {
        Some(skill) => Ok(skill.id),
        None => Err(DbError::Other(format!("skill {name} was neither found nor created"))),
    }
}

/// Stores the blobs not stored yet, in SHA-256 order (the same order in every transaction).
async fn insert_blobs(transaction: &DatabaseTransaction, blobs: &BTreeMap<&str, &[u8]>) -> DbResult<()> {
    let mut chunk = Vec::new();
    let mut chunk_bytes = 0;
    for (index, (sha256, bytes)) in blobs.iter().enumerate() {
        chunk.push(skill_blobs::ActiveModel {
            sha256: ActiveValue::Set((*sha256).to_owned()),
            size: ActiveValue::Set(length(bytes.len())?),
            content: ActiveValue::Set(bytes.to_vec()),
        });
        chunk_bytes += bytes.len();
        let last = index + 1 == blobs.len();
        if last || chunk.len() >= INSERT_CHUNK_ROWS || chunk_bytes >= INSERT_CHUNK_BYTES {
            skill_blobs::Entity::insert_many(std::mem::take(&mut chunk))
                .on_conflict(OnConflict::column(skill_blobs::Column::Sha256).do_nothing().to_owned())
                .exec_without_returning(transaction)
                .await?;
            chunk_bytes = 0;
        }
    }
    Ok(())
}

/// Inserts the version row; returns its id. The raw driver error, so a lost race can be told apart.
async fn insert_version(
    transaction: &DatabaseTransaction,
    new: &NewVersion<'_>,
    skill_id: i64,
    version: &str,
    now: DateTime<Utc>,
) -> Result<i64, DbErr> {
    let file_count = i32::try_from(new.files.len()).map_err(|_| DbErr::Custom("too many files".to_owned()))?;
    let total_bytes = new.files.iter().map(|file| file.bytes.len()).sum::<usize>();
    let total_bytes = i64::try_from(total_bytes).map_err(|_| DbErr::Custom("too many bytes".to_owned()))?;
    let inserted = skill_versions::Entity::insert(skill_versions::ActiveModel {
        id: ActiveValue::NotSet,
        skill_id: ActiveValue::Set(skill_id),
        version: ActiveValue::Set(version.to_owned()),
        digest: ActiveValue::Set(new.digest.to_owned()),
        description: ActiveValue::Set(new.description.to_owned()),
        frontmatter: ActiveValue::Set(new.frontmatter.to_owned()),
        signature: ActiveValue::Set(new.signature.map(str::to_owned)),
        signed_by: ActiveValue::Set(new.signed_by.map(str::to_owned)),
        file_count: ActiveValue::Set(file_count),
        total_bytes: ActiveValue::Set(total_bytes),
        published_by: ActiveValue::Set(new.published_by.map(str::to_owned)),
        published_at: ActiveValue::Set(now),
        yanked_at: ActiveValue::Set(None),
    })
    .exec(transaction)
    .await?;
    Ok(inserted.last_insert_id)
}

async fn insert_files(transaction: &DatabaseTransaction, version_id: i64, files: &[NewFile<'_>]) -> DbResult<()> {
    for chunk in files.chunks(INSERT_CHUNK_ROWS) {
        let mut rows = Vec::with_capacity(chunk.len());
        for file in chunk {
            rows.push(skill_files::ActiveModel {
                version_id: ActiveValue::Set(version_id),
                path: ActiveValue::Set(file.path.to_owned()),
                sha256: ActiveValue::Set(file.sha256.to_owned()),
                size: ActiveValue::Set(length(file.bytes.len())?),
            });
        }
        skill_files::Entity::insert_many(rows).exec_without_returning(transaction).await?;
    }
    Ok(())
}

fn length(bytes: usize) -> DbResult<i64> {
    i64::try_from(bytes).map_err(|_| DbError::Other(format!("a file of {bytes} bytes is too large")))
}
