//! The `oauth_revocations` log: what replicas must refuse until it expires.
//!
//! Replicas remember the last id they saw and ask for newer entries, so an entry must never
//! become visible after one with a larger id. On PostgreSQL ids come from a sequence when the
//! insert runs, not at commit, so concurrent appenders could commit out of order; every append
//! therefore runs in a transaction that first takes a transaction-scoped advisory lock (on SQLite,
//! `BEGIN IMMEDIATE` already serializes writers). Ids are never reused (see the migration).

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use crate::entity::oauth_revocations as entity;
use crate::error::DbResult;
use crate::time::truncate_to_micros;

/// `kind` of an entry whose `value` is a grant id: every access token of the grant is revoked.
pub const REVOCATION_KIND_GRANT: &str = "grant";
/// `kind` of an entry whose `value` is one access token's `jti`.
pub const REVOCATION_KIND_JTI: &str = "jti";
/// The most entries [`revocations_after`] returns at once.
pub const REVOCATIONS_PAGE_MAX: u64 = 10_000;

/// The PostgreSQL advisory lock key that serializes appends to the log ("CASTREV" in ASCII).
const REVOCATION_LOCK_KEY: i64 = 0x43_41_53_54_52_45_56;

/// One entry of the revocation log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationRow {
    pub id: i64,
    /// [`REVOCATION_KIND_GRANT`] or [`REVOCATION_KIND_JTI`].
    pub kind: String,
    pub value: String,
    pub revoked_at: DateTime<Utc>,
    /// When the entry can be forgotten: every access token it could affect has expired.
    pub expires_at: DateTime<Utc>,
}

impl From<entity::Model> for RevocationRow {
    fn from(model: entity::Model) -> RevocationRow {
        RevocationRow {
            id: model.id,
            kind: model.kind,
            value: model.value,
            revoked_at: model.revoked_at,
            expires_at: model.expires_at,
        }
    }
}

/// Revokes one access token by its `jti` until `forget_after` (its expiry).
#[tracing::instrument(skip_all)]
pub async fn revoke_jti(
    db: &DatabaseConnection,
    jti: &str,
    forget_after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DbResult<()> {
    let transaction = begin_revocation(db).await?;
    append_with(&transaction, REVOCATION_KIND_JTI, jti, forget_after, now).await?;
    transaction.commit().await?;
    Ok(())
}

/// Entries with an id above `after_id` that have not expired at `now`, oldest first, at most
/// [`REVOCATIONS_PAGE_MAX`]. Pass the largest id seen so far; 0 to start.
#[tracing::instrument(skip_all, fields(after_id = after_id))]
pub async fn revocations_after(
    db: &DatabaseConnection,
    after_id: i64,
    now: DateTime<Utc>,
) -> DbResult<Vec<RevocationRow>> {
    let rows = entity::Entity::find()
        .filter(entity::Column::Id.gt(after_id))
        .filter(entity::Column::ExpiresAt.gt(truncate_to_micros(now)))
        .order_by_asc(entity::Column::Id)
        .limit(REVOCATIONS_PAGE_MAX)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(RevocationRow::from).collect())
}

/// A write transaction in which appending to the log keeps ids in commit order.
pub(super) async fn begin_revocation(db: &DatabaseConnection) -> DbResult<DatabaseTransaction> {
    let transaction = db
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        })
        .await?;
    if transaction.get_database_backend() == DbBackend::Postgres {
        transaction.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({REVOCATION_LOCK_KEY})")).await?;
    }
    Ok(transaction)
}

/// Appends one entry; only inside a transaction from [`begin_revocation`].
pub(super) async fn append_with(
    transaction: &DatabaseTransaction,
    kind: &str,
    value: &str,
    forget_after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DbResult<()> {
    let entry = entity::ActiveModel {
        id: ActiveValue::NotSet,
        kind: ActiveValue::Set(kind.to_owned()),
        value: ActiveValue::Set(value.to_owned()),
        revoked_at: ActiveValue::Set(truncate_to_micros(now)),
        expires_at: ActiveValue::Set(truncate_to_micros(forget_after)),
    };
    entity::Entity::insert(entry).exec(transaction).await?;
    Ok(())
}
