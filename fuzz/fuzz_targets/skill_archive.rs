//! `castellan::skills::archive::read` then `castellan_skills::from_files` on any bytes: what
//! `castellan skills sync` does with a downloaded tar.gz before it writes anything.
//!
//! Checked, besides never panicking: an accepted bundle holds only relative paths without `..`,
//! within the skill limits, and its digest is the one computed from its files.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(files) = castellan::skills::archive::read("pdf", bytes) else { return };
    let Ok(bundle) = castellan_skills::from_files("pdf", files) else { return };
    assert!(bundle.files.len() <= castellan_skills::MAX_FILES);
    for file in &bundle.files {
        assert!(!file.path.starts_with('/') && file.path.split('/').all(|segment| segment != ".." && !segment.is_empty()));
    }
    let digest = castellan_skills::digest_of(bundle.files.iter().map(|file| (file.path.as_str(), file.size(), file.sha256.as_str())));
    assert_eq!(digest, bundle.digest);
});
