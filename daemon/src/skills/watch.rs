//! `skills.dirs`: every child folder of each listed folder is published when the daemon starts and
//! again whenever its files change (looked at every [`WATCH_INTERVAL`] by size and modification
//! time, so nothing is read while nothing changes). A folder that fails to publish is logged with
//! every problem and tried again only after it changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use castellan_actors::{Event, EventBus};

use super::SkillCatalog;
use super::publish::{publish_dir, trusted_keys};

/// How often the folders are looked at.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// What a folder looked like when it was last published (or refused): (path, size, mtime) of each
/// file, in walk order.
type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// The folders to watch and the keys to require, swapped on a profile reload.
pub struct Watched {
    pub dirs: Vec<PathBuf>,
    pub signing_keys: Vec<String>,
}

/// Publishes what `settings` names now, then keeps watching. Returns the handle a reload updates.
pub fn spawn(catalog: Arc<SkillCatalog>, settings: Watched, bus: EventBus) -> Arc<ArcSwap<Watched>> {
    let watched = Arc::new(ArcSwap::from_pointee(settings));
    let handle = Arc::clone(&watched);
    tokio::spawn(async move {
        let mut seen: BTreeMap<PathBuf, Fingerprint> = BTreeMap::new();
        loop {
            let settings = watched.load_full();
            if !settings.dirs.is_empty() {
                let changed = publish_changed(&catalog, &settings, &mut seen, &bus).await;
                if changed && let Err(error) = catalog.reload().await {
                    tracing::warn!(%error, "reloading the skills catalog failed");
                }
            }
            tokio::time::sleep(WATCH_INTERVAL).await;
        }
    });
    handle
}

/// One pass over the folders; true when something was stored.
async fn publish_changed(
    catalog: &SkillCatalog,
    settings: &Watched,
    seen: &mut BTreeMap<PathBuf, Fingerprint>,
    bus: &EventBus,
) -> bool {
    let trusted = match trusted_keys(&settings.signing_keys) {
        Ok(keys) => keys,
        Err(error) => {
            tracing::error!(%error, "skills are not published");
            return false;
        }
    };
    let mut stored = false;
    for dir in &settings.dirs {
        let Ok(children) = std::fs::read_dir(dir) else {
            if !seen.contains_key(dir) {
                tracing::warn!(dir = %dir.display(), "skills.dirs: the folder cannot be read");
                seen.insert(dir.clone(), Vec::new());
            }
            continue;
        };
        let mut folders: Vec<PathBuf> = children
            .filter_map(Result::ok)
            .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
            .filter(|entry| !entry.file_name().to_string_lossy().starts_with('.'))
            .map(|entry| entry.path())
            .collect();
        folders.sort();
        for folder in folders {
            let fingerprint = fingerprint(&folder);
            if seen.get(&folder) == Some(&fingerprint) {
                continue;
            }
            seen.insert(folder.clone(), fingerprint);
            match publish_dir(catalog.db(), &folder, &trusted, "skills.dirs").await {
                Ok(report) => {
                    let version = report.published.version().to_string();
                    if matches!(report.published, castellan_schema::skills::Published::Stored { .. }) {
                        stored = true;
                        tracing::info!(skill = %report.name, %version, digest = %report.digest, "skill published");
                        bus.publish(Event::SkillPublished { skill: report.name, version });
                    }
                }
                Err(refusal) => {
                    tracing::warn!(folder = %folder.display(), problems = %refusal, "skill not published");
                }
            }
        }
    }
    stored
}

/// Size and modification time of every entry under `folder`, without following links.
fn fingerprint(folder: &Path) -> Fingerprint {
    let mut found = Vec::new();
    let mut pending = vec![(folder.to_path_buf(), 0)];
    while let Some((dir, depth)) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.filter_map(Result::ok) {
            let Ok(metadata) = entry.path().symlink_metadata() else { continue };
            found.push((entry.path(), metadata.len(), metadata.modified().ok()));
            if metadata.is_dir() && depth < 32 && found.len() < 10_000 {
                pending.push((entry.path(), depth + 1));
            }
        }
    }
    found.sort();
    found
}
