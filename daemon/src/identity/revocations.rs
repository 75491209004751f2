//! Revoked grants and token ids, in memory, for the per-request check of access tokens.
//!
//! The truth is the append-only `oauth_revocations` table: a revocation made on any replica is
//! recorded there first, applied locally at once, and picked up by the others on their next poll
//! (every [`POLL_INTERVAL`]), which bounds how long a revoked token keeps working elsewhere. Entries
//! are forgotten once no token they could affect is still valid.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;

pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Sets {
    grants: HashMap<String, DateTime<Utc>>,
    token_ids: HashMap<String, DateTime<Utc>>,
}

/// The revoked set of this replica.
pub struct Revocations {
    db: DatabaseConnection,
    sets: RwLock<Sets>,
    last_seen_id: AtomicI64,
}

impl Revocations {
    pub fn new(db: DatabaseConnection) -> Self {
        Revocations { db, sets: RwLock::new(Sets::default()), last_seen_id: AtomicI64::new(0) }
    }

    /// Whether a token of this grant or with this id has been revoked.
    pub fn is_revoked(&self, grant_id: Option<&str>, token_id: &str) -> bool {
        let sets = self.sets.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        grant_id.is_some_and(|grant| sets.grants.contains_key(grant)) || sets.token_ids.contains_key(token_id)
    }

    /// Applies a revocation this replica just recorded, without waiting for the poll.
    pub fn note_grant(&self, grant_id: &str, forget_after: DateTime<Utc>) {
        let mut sets = self.sets.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        sets.grants.insert(grant_id.to_string(), forget_after);
    }

    pub fn note_token_id(&self, token_id: &str, forget_after: DateTime<Utc>) {
        let mut sets = self.sets.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        sets.token_ids.insert(token_id.to_string(), forget_after);
    }

    /// Reads revocations recorded since the last poll (by any replica) and forgets expired ones.
    pub async fn poll(&self, now: DateTime<Utc>) -> Result<(), castellan_schema::DbError> {
        let after = self.last_seen_id.load(Ordering::Acquire);
        let rows = castellan_schema::oauth::revocations_after(&self.db, after, now).await?;
        let mut sets = self.sets.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut last = after;
        for row in rows {
            last = last.max(row.id);
            let target = if row.kind == "grant" { &mut sets.grants } else { &mut sets.token_ids };
            target.insert(row.value, row.expires_at);
        }
        sets.grants.retain(|_, forget_after| *forget_after > now);
        sets.token_ids.retain(|_, forget_after| *forget_after > now);
        self.last_seen_id.store(last, Ordering::Release);
        Ok(())
    }
}

/// Polls until the process ends. A failed poll keeps the current set and is retried.
pub fn spawn_polling(revocations: Arc<Revocations>) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(POLL_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if let Err(error) = revocations.poll(Utc::now()).await {
                tracing::warn!(%error, "polling token revocations failed; retrying");
            }
        }
    });
}
