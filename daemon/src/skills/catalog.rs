//! The catalog every surface reads: the latest servable version of each skill with its files'
//! digests, held in memory and swapped whole. It is reloaded when the database's generation
//! counter moves (a publish or yank here or on another replica, checked every
//! [`REFRESH_INTERVAL`]), so a listing costs no database read.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use castellan_actors::PolicySnapshot;
use castellan_config::Tier;
use castellan_schema::skills::{FileEntry, VersionSummary};
use sea_orm::DatabaseConnection;
use serde_json::Value;

/// How often a running daemon looks for versions published or yanked elsewhere.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(2);

/// One skill as served: its latest servable version.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    pub version: VersionSummary,
    /// The SKILL.md frontmatter, as JSON.
    pub frontmatter: Value,
    /// Every file, SKILL.md included, sorted by path.
    pub files: Vec<FileEntry>,
    /// The entry as `skills/list` and `skills/get` show it, built once at load.
    pub listed: Value,
}

impl CatalogEntry {
    pub fn name(&self) -> &str {
        &self.version.name
    }

    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files.iter().find(|file| file.path == path)
    }
}

/// The catalog at one generation.
#[derive(Debug, Default)]
pub struct Catalog {
    pub generation: i64,
    /// Sorted by name.
    pub entries: Vec<Arc<CatalogEntry>>,
    by_name: HashMap<String, usize>,
}

impl Catalog {
    pub fn get(&self, name: &str) -> Option<&Arc<CatalogEntry>> {
        self.by_name.get(name).and_then(|index| self.entries.get(*index))
    }
}

/// The catalog and what decides which versions may be served.
pub struct SkillCatalog {
    db: DatabaseConnection,
    current: ArcSwap<Catalog>,
    /// `skills.signing_keys` as listed: with any, only versions signed by one of them are served.
    signing_keys: ArcSwap<Vec<String>>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
}

impl SkillCatalog {
    /// Loads the catalog now.
    pub async fn load(db: DatabaseConnection, signing_keys: Vec<String>) -> Result<Arc<SkillCatalog>, String> {
        let catalog = Arc::new(SkillCatalog {
            db,
            current: ArcSwap::from_pointee(Catalog::default()),
            signing_keys: ArcSwap::from_pointee(signing_keys),
            reloading: tokio::sync::Mutex::new(()),
        });
        catalog.reload().await?;
        Ok(catalog)
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn snapshot(&self) -> Arc<Catalog> {
        self.current.load_full()
    }

    /// The keys signatures must come from now; empty when signatures are optional.
    pub fn signing_keys(&self) -> Arc<Vec<String>> {
        self.signing_keys.load_full()
    }

    /// A profile reload changed `skills.signing_keys`: what is servable changes at once.
    pub async fn set_signing_keys(&self, keys: Vec<String>) -> Result<(), String> {
        if *self.signing_keys.load_full() == keys {
            return Ok(());
        }
        self.signing_keys.store(Arc::new(keys));
        self.reload().await
    }

    /// Reloads when the generation moved; true when it did.
    pub async fn refresh(&self) -> Result<bool, String> {
        let generation = castellan_schema::skills::generation(&self.db).await.map_err(|error| error.to_string())?;
        if generation == self.current.load().generation {
            return Ok(false);
        }
        self.reload().await?;
        Ok(true)
    }

    /// Reads the latest versions and their files, then swaps the catalog whole. A skill whose
    /// latest version is not signed by a listed key (when keys are listed) is left out.
    pub async fn reload(&self) -> Result<(), String> {
        let _one = self.reloading.lock().await;
        let error = |error: castellan_schema::DbError| error.to_string();
        let generation = castellan_schema::skills::generation(&self.db).await.map_err(error)?;
        let versions = castellan_schema::skills::latest_versions(&self.db).await.map_err(error)?;
        let keys = self.signing_keys.load_full();
        let mut entries = Vec::with_capacity(versions.len());
        for version in versions {
            if !keys.is_empty() && !version.signed_by.as_ref().is_some_and(|key| keys.contains(key)) {
                continue;
            }
            let files = castellan_schema::skills::files_of(&self.db, version.id).await.map_err(error)?;
            let frontmatter = serde_json::from_str(&version.frontmatter).unwrap_or(Value::Null);
            let mut entry = CatalogEntry { version, frontmatter, files, listed: Value::Null };
            entry.listed = crate::mcp::gateway::skill_json(&entry);
            entries.push(Arc::new(entry));
        }
        entries.sort_by(|a, b| a.name().cmp(b.name()));
        let by_name = entries.iter().enumerate().map(|(index, entry)| (entry.name().to_string(), index)).collect();
        self.current.store(Arc::new(Catalog { generation, entries, by_name }));
        Ok(())
    }

    /// The skills `tier` may see, in name order.
    pub fn visible<'a>(
        catalog: &'a Catalog,
        policy: &'a PolicySnapshot,
        tier: Tier,
    ) -> impl Iterator<Item = &'a Arc<CatalogEntry>> + 'a {
        catalog.entries.iter().filter(move |entry| policy.decide_skill(tier, entry.name()).is_allowed())
    }
}

/// Keeps `catalog` current with what other processes publish and yank.
pub fn spawn_refresh(catalog: Arc<SkillCatalog>) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(REFRESH_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if let Err(error) = catalog.refresh().await {
                tracing::warn!(%error, "reloading the skills catalog failed; serving the previous one");
            }
        }
    });
}
