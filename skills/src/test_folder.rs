//! A skill folder under the system's temporary folder for unit tests, removed when dropped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_FOLDER: AtomicU64 = AtomicU64::new(0);

/// A folder named `name` inside a fresh parent folder (so the skill's folder name is `name`).
pub(crate) struct TestFolder {
    parent: PathBuf,
    folder: PathBuf,
}

impl TestFolder {
    pub(crate) fn new(name: &str) -> TestFolder {
        let unique = NEXT_FOLDER.fetch_add(1, Ordering::Relaxed);
        let parent = std::env::temp_dir().join(format!("castellan-skills-unit-{}-{unique}", std::process::id()));
        let folder = parent.join(name);
        std::fs::create_dir_all(&folder).unwrap();
        TestFolder { parent, folder }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.folder
    }

    pub(crate) fn write(&self, path: &str, bytes: impl AsRef<[u8]>) {
        let path = self.folder.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

impl Drop for TestFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.parent);
    }
}
