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

use crate::redaction::Redactor;

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
    /// `listed`, serialized.
    pub listed_text: String,
}

impl CatalogEntry {
    pub fn name(&self) -> &str {
        &self.version.name
    }

    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files.iter().find(|file| file.path == path)
    }
}

/// The cached pages of one catalog: by (visible set, offset), with the redactor each was redacted by.
type PageCache = std::sync::Mutex<HashMap<(u64, usize), (Arc<Redactor>, ListedPage)>>;

/// The catalog at one generation.
#[derive(Default)]
pub struct Catalog {
    pub generation: i64,
    /// Sorted by name.
    pub entries: Vec<Arc<CatalogEntry>>,
    by_name: HashMap<String, usize>,
    /// Listing pages already serialized, by (which entries are visible, offset), with the redactor
    /// they were redacted by; a new catalog starts empty.
    pages: PageCache,
}

/// One page of a `skills/list` answer.
#[derive(Debug, Clone)]
pub struct ListedPage {
    /// The result object's members, serialized and redacted: `"skills":[...]` and, when more
    /// follow, `,"nextCursor":"..."`.
    pub members: Arc<str>,
    /// What the audit row records: the count and `name@version` of each entry.
    pub audited: String,
}

/// The most pages kept per catalog (distinct visibility sets times pages); past it the cache
/// starts over.
const MAX_CACHED_PAGES: usize = 256;

impl Catalog {
    pub fn get(&self, name: &str) -> Option<&Arc<CatalogEntry>> {
        self.by_name.get(name).and_then(|index| self.entries.get(*index))
    }

    /// The page at `offset` of what `tier` may see, or `None` past the end. Built once per
    /// (visible set, offset, redactor) and then served from the cache.
    pub fn page(
        &self,
        policy: &PolicySnapshot,
        tier: Tier,
        offset: usize,
        size: usize,
        redactor: &Arc<Redactor>,
    ) -> Option<ListedPage> {
        let visible: Vec<&Arc<CatalogEntry>> = SkillCatalog::visible(self, policy, tier).collect();
        if offset > visible.len() {
            return None;
        }
        // Entries are this catalog's own: their addresses name them for the key.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for entry in &visible {
            std::hash::Hash::hash(&Arc::as_ptr(entry), &mut hasher);
        }
        let key = (std::hash::Hasher::finish(&hasher), offset);
        if let Ok(pages) = self.pages.lock()
            && let Some((built_with, page)) = pages.get(&key)
            && Arc::ptr_eq(built_with, redactor)
        {
            return Some(page.clone());
        }
        let shown: Vec<&Arc<CatalogEntry>> = visible.iter().skip(offset).take(size).copied().collect();
        let mut members =
            String::with_capacity(shown.iter().map(|entry| entry.listed_text.len() + 1).sum::<usize>() + 64);
        members.push_str("\"skills\":[");
        for (position, entry) in shown.iter().enumerate() {
            if position > 0 {
                members.push(',');
            }
            members.push_str(&entry.listed_text);
        }
        members.push(']');
        if offset + size < visible.len() {
            members.push_str(&format!(
                ",\"nextCursor\":{}",
                Value::String(crate::mcp::gateway::encode_cursor(offset + size))
            ));
        }
        let names: Vec<String> =
            shown.iter().map(|entry| format!("{}@{}", entry.name(), entry.version.version)).collect();
        let page = ListedPage {
            members: Arc::from(redactor.redact(&members).as_ref()),
            audited: redactor
                .redact(&serde_json::json!({"listed": names.len(), "skills": names, "offset": offset}).to_string())
                .into_owned(),
        };
        if let Ok(mut pages) = self.pages.lock() {
            if pages.len() >= MAX_CACHED_PAGES {
                pages.clear();
            }
            pages.insert(key, (Arc::clone(redactor), page.clone()));
        }
        Some(page)
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
        let mut files_by_version = castellan_schema::skills::files_of_latest_versions(&self.db).await.map_err(error)?;
        let keys = self.signing_keys.load_full();
        let mut entries = Vec::with_capacity(versions.len());
        for version in versions {
            if !keys.is_empty() && !version.signed_by.as_ref().is_some_and(|key| keys.contains(key)) {
                continue;
            }
            let files = files_by_version.remove(&version.id).unwrap_or_default();
            let frontmatter = serde_json::from_str(&version.frontmatter).unwrap_or(Value::Null);
            let mut entry =
                CatalogEntry { version, frontmatter, files, listed: Value::Null, listed_text: String::new() };
            entry.listed = crate::mcp::gateway::skill_json(&entry);
            entry.listed_text = entry.listed.to_string();
            entries.push(Arc::new(entry));
        }
        entries.sort_by(|a, b| a.name().cmp(b.name()));
        let by_name = entries.iter().enumerate().map(|(index, entry)| (entry.name().to_string(), index)).collect();
        self.current.store(Arc::new(Catalog { generation, entries, by_name, pages: Default::default() }));
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn entry(name: &str, description: &str) -> Arc<CatalogEntry> {
        let version = VersionSummary {
            id: 1,
            name: name.into(),
            version: "1".into(),
            digest: "sha256:00".into(),
            description: description.into(),
            frontmatter: "{}".into(),
            signature: None,
            signed_by: None,
            file_count: 1,
            total_bytes: 1,
            published_at: chrono::DateTime::UNIX_EPOCH,
            published_by: None,
            yanked: false,
            yanked_at: None,
        };
        let frontmatter = serde_json::json!({"name": name, "description": description});
        let files = vec![FileEntry { path: "SKILL.md".into(), sha256: "00".into(), size: 1 }];
        let mut entry = CatalogEntry { version, frontmatter, files, listed: Value::Null, listed_text: String::new() };
        entry.listed = crate::mcp::gateway::skill_json(&entry);
        entry.listed_text = entry.listed.to_string();
        Arc::new(entry)
    }

    fn catalog(entries: Vec<Arc<CatalogEntry>>) -> Catalog {
        let by_name = entries.iter().enumerate().map(|(index, entry)| (entry.name().to_string(), index)).collect();
        Catalog { generation: 1, entries, by_name, pages: Default::default() }
    }

    fn policy() -> PolicySnapshot {
        let text = "database: { url: \"sqlite::memory:\" }\nrbac:\n  rules:\n    - { effect: allow, min_tier: user, skills: [\"*\"] }\n    - { effect: deny, max_tier: user, skills: [\"release-*\"] }\n";
        let profile = castellan_config::parse_profile(text, "t.yaml", &|_| None).expect("valid");
        PolicySnapshot { rbac: profile.rbac, generation: 1 }
    }

    fn listed(page: &ListedPage) -> Value {
        serde_json::from_str(&format!("{{{}}}", page.members)).expect("the members make an object")
    }

    #[test]
    fn a_page_holds_what_the_tier_may_see_in_pages_with_a_cursor() {
        let names = ["a-one", "b-two", "release-x", "c-three"];
        let catalog = catalog(names.iter().map(|name| entry(name, "d")).collect());
        let redactor = Arc::new(Redactor::default());
        let first = catalog.page(&policy(), Tier::User, 0, 2, &redactor).expect("a page");
        let body = listed(&first);
        let uris: Vec<&str> =
            body["skills"].as_array().unwrap().iter().map(|skill| skill["uri"].as_str().unwrap()).collect();
        assert_eq!(uris, ["skill://a-one/SKILL.md", "skill://b-two/SKILL.md"]);
        assert!(body["nextCursor"].is_string(), "{body}");
        assert!(first.audited.contains("a-one@1") && first.audited.contains("\"listed\":2"), "{}", first.audited);
        let last = listed(&catalog.page(&policy(), Tier::User, 2, 2, &redactor).expect("a page"));
        assert_eq!(last["skills"].as_array().unwrap().len(), 1, "release-x is not the user's: {last}");
        assert!(last.get("nextCursor").is_none());
        let admin = listed(&catalog.page(&policy(), Tier::Admin, 0, 10, &redactor).expect("a page"));
        assert_eq!(admin["skills"].as_array().unwrap().len(), 4);
        assert!(catalog.page(&policy(), Tier::User, 9, 2, &redactor).is_none(), "past the end");
        assert!(
            listed(&catalog.page(&policy(), Tier::Mcp, 0, 2, &redactor).unwrap())["skills"]
                .as_array()
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_secret_set_after_a_page_was_cached_is_redacted_from_the_next_answer() {
        let catalog = catalog(vec![entry("notes", "uses the token tok-0123456789abcdef")]);
        let before = Arc::new(Redactor::default());
        let cached = catalog.page(&policy(), Tier::User, 0, 10, &before).unwrap();
        assert!(cached.members.contains("tok-0123456789abcdef"), "no secret is known yet");
        let after = Arc::new(Redactor::new([("api_token", "tok-0123456789abcdef")]));
        let page = catalog.page(&policy(), Tier::User, 0, 10, &after).unwrap();
        assert!(!page.members.contains("tok-0123456789abcdef"), "{}", page.members);
        assert!(page.members.contains("[REDACTED:api_token]"), "{}", page.members);
        listed(&page);
    }
}
