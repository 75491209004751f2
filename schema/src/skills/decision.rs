//! What a publish does, decided from the skill's existing versions alone: a pure function, so
//! every rule has a unit test without a database.

/// One existing version, as far as the decision needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ExistingVersion {
    pub version: String,
    pub digest: String,
    pub yanked: bool,
}

/// What to do with a publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Decision {
    /// Store a new version with this version string.
    Store(String),
    /// Nothing to write: this version has the same content and is not yanked.
    Unchanged(String),
    /// The given version exists with different content.
    Conflict(String),
    /// The given version exists with the same content but was yanked.
    Yanked(String),
    /// Every integer up to `u64::MAX` is taken (never in practice).
    SequenceExhausted,
}

/// Decides a publish of content `digest` at `given` (None: the next integer version) over
/// `existing`, the skill's versions oldest first.
pub(super) fn decide(existing: &[ExistingVersion], given: Option<&str>, digest: &str) -> Decision {
    match given {
        Some(given) => match existing.iter().find(|version| version.version == given) {
            None => Decision::Store(given.to_owned()),
            Some(version) if version.digest != digest => Decision::Conflict(given.to_owned()),
            Some(version) if version.yanked => Decision::Yanked(given.to_owned()),
            Some(_) => Decision::Unchanged(given.to_owned()),
        },
        None => {
            let same_content = existing.iter().rev().find(|version| version.digest == digest && !version.yanked);
            if let Some(version) = same_content {
                return Decision::Unchanged(version.version.clone());
            }
            // Yanked content does not come back under a new number: a folder of `skills.dirs`
            // republished at every start would otherwise undo the yank.
            if let Some(version) = existing.iter().rev().find(|version| version.digest == digest) {
                return Decision::Yanked(version.version.clone());
            }
            match next_integer_version(existing.iter().map(|version| version.version.as_str())) {
                Some(next) => Decision::Store(next.to_string()),
                None => Decision::SequenceExhausted,
            }
        }
    }
}

/// One more than the highest version made only of ASCII digits (yanked ones included: their
/// numbers stay taken); 1 when there is none.
pub(super) fn next_integer_version<'a>(versions: impl Iterator<Item = &'a str>) -> Option<u64> {
    let highest = versions
        .filter(|version| !version.is_empty() && version.bytes().all(|byte| byte.is_ascii_digit()))
        .filter_map(|version| version.parse::<u64>().ok())
        .max();
    match highest {
        Some(highest) => highest.checked_add(1),
        None => Some(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(version: &str, digest: &str, yanked: bool) -> ExistingVersion {
        ExistingVersion { version: version.to_owned(), digest: digest.to_owned(), yanked }
    }

    /// One publish over some existing versions, and what it must decide.
    struct Case {
        existing: &'static [(&'static str, &'static str, bool)],
        given: Option<&'static str>,
        digest: &'static str,
        expected: Decision,
        why: &'static str,
    }

    #[test]
    fn decisions() {
        const EXISTING: &[(&str, &str, bool)] =
            &[("1", "sha256:a", false), ("2", "sha256:b", true), ("1.5.0", "sha256:c", false)];
        let case = |existing, given, digest, expected, why| Case { existing, given, digest, expected, why };
        let cases = [
            case(&[], None, "sha256:a", Decision::Store("1".into()), "a first publish without a version is 1"),
            case(&[], Some("0.1.0"), "sha256:a", Decision::Store("0.1.0".into()), "a first publish with one"),
            case(EXISTING, None, "sha256:a", Decision::Unchanged("1".into()), "same content: unchanged"),
            case(EXISTING, None, "sha256:c", Decision::Unchanged("1.5.0".into()), "also for a given one"),
            case(EXISTING, None, "sha256:b", Decision::Yanked("2".into()), "yanked content stays yanked"),
            case(EXISTING, None, "sha256:d", Decision::Store("3".into()), "the yanked 2 stays taken"),
            case(EXISTING, Some("1"), "sha256:a", Decision::Unchanged("1".into()), "same version, same content"),
            case(EXISTING, Some("1"), "sha256:z", Decision::Conflict("1".into()), "same version, other content"),
            case(EXISTING, Some("2"), "sha256:b", Decision::Yanked("2".into()), "a yanked version stays yanked"),
            case(EXISTING, Some("2.0.0"), "sha256:a", Decision::Store("2.0.0".into()), "same content, new version"),
            case(EXISTING, Some("1.5.0"), "sha256:a", Decision::Conflict("1.5.0".into()), "given: its own digest"),
        ];
        for Case { existing, given, digest, expected, why } in cases {
            let existing: Vec<ExistingVersion> =
                existing.iter().map(|(number, digest, yanked)| version(number, digest, *yanked)).collect();
            assert_eq!(decide(&existing, given, digest), expected, "{why}");
        }
    }

    #[test]
    fn the_latest_same_content_version_is_the_unchanged_one() {
        let existing = [version("1.0.0", "sha256:a", false), version("1.0.1", "sha256:a", false)];
        assert_eq!(decide(&existing, None, "sha256:a"), Decision::Unchanged("1.0.1".into()));
    }

    #[test]
    fn next_integer_versions() {
        let cases: [(&[&str], Option<u64>); 6] = [
            (&[], Some(1)),
            (&["1", "2"], Some(3)),
            (&["1", "10", "9"], Some(11)),
            (&["1.0.0", "v2", "-3", "+4", ""], Some(1)),
            (&["007"], Some(8)),
            (&["18446744073709551615"], None),
        ];
        for (versions, expected) in cases {
            assert_eq!(next_integer_version(versions.iter().copied()), expected, "after {versions:?}");
        }
    }
}
