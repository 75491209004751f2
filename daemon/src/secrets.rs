//! The secret store: values set with `castellan secrets set`, sealed under the master key in the
//! `secrets` table, held in memory only by the daemon (zeroized when replaced or dropped), and
//! injected into exactly the server entries that name them with `${secret:NAME}`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use castellan_config::{Profile, SecretValidation};
use sea_orm::DatabaseConnection;
use zeroize::Zeroizing;

use crate::identity::master_key::{MASTER_KEY_ENV, MasterKey, MasterKeyError};

/// How often the daemon re-reads the table, so that `secrets set` takes effect at the next start of
/// a server without restarting Castellan.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(5);

/// Where the master key file lives when `CASTELLAN_MASTER_KEY` is not set: `secrets.master_key_file`,
/// else `CASTELLAN_DATA_DIR`, else next to a SQLite database, else `./castellan-data`.
pub fn master_key_file(profile: &Profile) -> PathBuf {
    if let Some(path) = &profile.secrets.master_key_file {
        return path.clone();
    }
    if let Ok(dir) = std::env::var("CASTELLAN_DATA_DIR")
        && !dir.is_empty()
    {
        return PathBuf::from(dir).join("master.key");
    }
    let url = &profile.database.url;
    let sqlite_file = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"));
    match sqlite_file
        .map(|rest| rest.split('?').next().unwrap_or(rest))
        .filter(|path| !path.is_empty() && !path.contains(":memory:"))
    {
        Some(path) => {
            PathBuf::from(path).parent().map_or_else(|| PathBuf::from("master.key"), |dir| dir.join("master.key"))
        }
        None => PathBuf::from("castellan-data").join("master.key"),
    }
}

/// The master key for this profile (the daemon and the admin commands find the same one).
pub fn load_master_key(profile: &Profile) -> Result<MasterKey, MasterKeyError> {
    let env_key = std::env::var(MASTER_KEY_ENV).ok();
    MasterKey::load(env_key.as_deref(), &master_key_file(profile))
}

/// The master key for an admin command: the daemon's, never a new one (see
/// [`MasterKey::load_existing`]).
pub fn load_existing_master_key(profile: &Profile) -> Result<MasterKey, MasterKeyError> {
    let env_key = std::env::var(MASTER_KEY_ENV).ok();
    let file = master_key_file(profile);
    // Named absolutely in the error: the relative default depends on the working directory.
    let file =
        if file.is_relative() { std::env::current_dir().map(|cwd| cwd.join(&file)).unwrap_or(file) } else { file };
    MasterKey::load_existing(env_key.as_deref(), &file)
}

/// What the audit checkpoint's signing key is derived for (see [`MasterKey::derive`]).
pub const AUDIT_CHECKPOINT_PURPOSE: &str = "castellan.audit.checkpoint.v1";

/// The key that signs and checks the audit trail's prune checkpoint: derived from the master key,
/// so only holders of the master key can prune the trail or verify a pruned one.
pub fn audit_checkpoint_key(master: &MasterKey) -> castellan_schema::audit::CheckpointKey {
    let bytes = Zeroizing::new(master.derive(AUDIT_CHECKPOINT_PURPOSE));
    castellan_schema::audit::CheckpointKey::from_bytes(&bytes)
}

/// The associated data a secret's value is sealed with: its name, so values cannot be swapped.
pub fn purpose(name: &str) -> String {
    format!("secret:{name}")
}

#[derive(Debug, thiserror::Error)]
pub enum SecretStoreError {
    #[error("database: {0}")]
    Database(#[from] castellan_schema::DbError),
    #[error("secret {0} cannot be opened with this master key")]
    Sealed(String),
}

/// The daemon's view of the store.
pub struct SecretStore {
    db: DatabaseConnection,
    master: Arc<MasterKey>,
    values: ArcSwap<HashMap<String, Zeroizing<String>>>,
    /// `secrets.validation`, replaced on profile reload.
    validation: ArcSwap<SecretValidation>,
    /// Told the names whose value changed at a reload (the reconciler restarts their users).
    on_change: std::sync::Mutex<Option<ChangeListener>>,
}

/// What is told which secrets changed.
pub type ChangeListener = Arc<dyn Fn(Vec<String>) + Send + Sync>;

impl SecretStore {
    pub fn new(db: DatabaseConnection, master: Arc<MasterKey>, validation: SecretValidation) -> Self {
        SecretStore {
            db,
            master,
            values: ArcSwap::from_pointee(HashMap::new()),
            validation: ArcSwap::from_pointee(validation),
            on_change: std::sync::Mutex::new(None),
        }
    }

    /// From now on, every reload that finds values changed (set, replaced or removed, by
    /// `castellan secrets set` on any replica or by the Vault pull) tells `listener` their names.
    pub fn set_change_listener(&self, listener: ChangeListener) {
        if let Ok(mut slot) = self.on_change.lock() {
            *slot = Some(listener);
        }
    }

    pub fn set_validation(&self, validation: SecretValidation) {
        self.validation.store(Arc::new(validation));
    }

    /// Reads and opens every secret. A value that does not open is an error: it means another master
    /// key sealed it, and guessing would inject the wrong thing.
    pub async fn reload(&self) -> Result<usize, SecretStoreError> {
        let mut values = HashMap::new();
        for (name, sealed) in castellan_schema::secrets::all_sealed(&self.db).await? {
            let opened =
                self.master.open(&purpose(&name), &sealed).map_err(|_| SecretStoreError::Sealed(name.clone()))?;
            let text = String::from_utf8(opened).map_err(|_| SecretStoreError::Sealed(name.clone()))?;
            values.insert(name, Zeroizing::new(text));
        }
        let count = values.len();
        crate::redaction::install(crate::redaction::Redactor::new(
            values.iter().map(|(name, value)| (name.as_str(), value.as_str())),
        ));
        let previous = self.values.swap(Arc::new(values));
        let current = self.values.load();
        let mut changed: Vec<String> = current
            .iter()
            .filter(|(name, value)| previous.get(*name).is_none_or(|old| old.as_str() != value.as_str()))
            .map(|(name, _)| name.clone())
            .chain(previous.keys().filter(|name| !current.contains_key(*name)).cloned())
            .collect();
        changed.sort_unstable();
        let listener = self.on_change.lock().ok().and_then(|slot| slot.clone());
        if let Some(listener) = listener
            && !changed.is_empty()
        {
            listener(changed);
        }
        Ok(count)
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<String> {
        self.values.load().get(name).map(|value| value.as_str().to_owned())
    }

    /// The lookup handed to the server actors, applying `secrets.validation` to missing secrets:
    /// strict leaves them missing (the server is not started and says which secret it lacks),
    /// warn and skip substitute an empty string (warn logs it).
    pub fn lookup(self: &Arc<Self>) -> castellan_actors::mcp_server::SecretLookup {
        let store = Arc::clone(self);
        Arc::new(move |name: &str| match (store.get(name), **store.validation.load()) {
            (Some(value), _) => Some(value),
            (None, SecretValidation::Strict) => None,
            (None, SecretValidation::Warn) => {
                tracing::warn!(secret = name, "a referenced secret is not set; an empty value is injected");
                Some(String::new())
            }
            (None, SecretValidation::Skip) => Some(String::new()),
        })
    }
}

/// Re-reads the store every [`REFRESH_INTERVAL`]; a failed read keeps the values in memory.
pub fn spawn_refresh(store: Arc<SecretStore>) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(REFRESH_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await;
        loop {
            interval.tick().await;
            if let Err(error) = store.reload().await {
                tracing::warn!(%error, "re-reading the secret store failed; keeping the values in memory");
            }
        }
    });
}
