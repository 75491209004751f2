//! `castellan::skills::uri::parse` on any text: the `skill://` URIs clients send in
//! `skills/get`, `resources/read` and `resources/directory/read`.
//!
//! Checked, besides never panicking: an accepted URI names a valid skill and a path with no empty,
//! `.` or `..` segment, and writing it back and parsing again gives the same name and path.
#![no_main]

use castellan::skills::uri;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Some(parsed) = uri::parse(text) else { return };
    assert!(castellan_skills::check_name(&parsed.name).is_ok(), "{parsed:?}");
    if !parsed.path.is_empty() {
        assert!(parsed.path.split('/').all(|segment| !segment.is_empty() && segment != "." && segment != ".."), "{parsed:?}");
    }
    let again = uri::parse(&uri::directory_uri(&parsed.name, &parsed.path));
    assert_eq!(again.as_ref(), Some(&parsed));
});
