//! A skill's version (`metadata.version` in `SKILL.md`): a SemVer 2.0.0 version, or a plain
//! sequence number for skills that just count up.

use std::cmp::Ordering;
use std::fmt;

use crate::manifest::Manifest;

/// A parsed version. Ordered by SemVer precedence; build metadata does not change precedence but
/// is compared last so that the order is total. `Sequence(n)` orders as `n.0.0`, just before a
/// `Semantic` version equal to it in precedence.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Version {
    Semantic {
        major: u64,
        minor: u64,
        patch: u64,
        /// The pre-release identifiers after `-` (empty for a release).
        pre: Vec<String>,
        /// The build metadata after `+`, as written.
        build: Option<String>,
    },
    /// A positive integer without leading zeros.
    Sequence(u64),
}

impl Version {
    /// Parses `text` strictly: SemVer 2.0.0 (`MAJOR.MINOR.PATCH[-PRE][+BUILD]`, no leading zeros in
    /// numbers, identifiers of ASCII letters, digits and `-`), or a positive integer. No `v`
    /// prefix, no spaces.
    pub fn parse(text: &str) -> Result<Version, String> {
        if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
            return match number(text, "a sequence number")? {
                0 => Err("a sequence number is positive".into()),
                sequence => Ok(Version::Sequence(sequence)),
            };
        }
        let (rest, build) = match text.split_once('+') {
            Some((rest, build)) => {
                identifiers(build, "build metadata", false)?;
                (rest, Some(build.to_string()))
            }
            None => (text, None),
        };
        let (core, pre) = match rest.split_once('-') {
            Some((core, pre)) => (core, identifiers(pre, "a pre-release", true)?),
            None => (rest, Vec::new()),
        };
        let parts: Vec<&str> = core.split('.').collect();
        let [major, minor, patch] = parts.as_slice() else {
            return Err("a version is MAJOR.MINOR.PATCH (SemVer, like 1.2.0) or a positive sequence number".into());
        };
        Ok(Version::Semantic {
            major: number(major, "the major version")?,
            minor: number(minor, "the minor version")?,
            patch: number(patch, "the patch version")?,
            pre,
            build,
        })
    }

    /// Major, minor and patch, a sequence number counting as its major version.
    fn numbers(&self) -> (u64, u64, u64) {
        match self {
            Version::Semantic { major, minor, patch, .. } => (*major, *minor, *patch),
            Version::Sequence(sequence) => (*sequence, 0, 0),
        }
    }

    fn pre(&self) -> &[String] {
        match self {
            Version::Semantic { pre, .. } => pre,
            Version::Sequence(_) => &[],
        }
    }
}

/// The skill's `metadata.version`, parsed, if it has one.
pub fn version_of(manifest: &Manifest) -> Option<Result<Version, String>> {
    manifest.metadata.get("version").map(|text| Version::parse(text))
}

/// A numeric part: digits, no leading zero unless it is `0`, within `u64`.
fn number(text: &str, what: &str) -> Result<u64, String> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!("{what} must be a number"));
    }
    if text.len() > 1 && text.starts_with('0') {
        return Err(format!("{what} has a leading zero"));
    }
    text.parse().map_err(|_| format!("{what} is too large"))
}

/// Dot-separated identifiers: non-empty, ASCII letters, digits and `-`; with `numeric_strict`,
/// numeric ones without leading zeros (pre-release, not build metadata).
fn identifiers(text: &str, what: &str, numeric_strict: bool) -> Result<Vec<String>, String> {
    let mut found = Vec::new();
    for identifier in text.split('.') {
        if identifier.is_empty() {
            return Err(format!("{what} has an empty identifier"));
        }
        if !identifier.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-') {
            return Err(format!("{what} holds only ASCII letters, digits, `-` and `.`"));
        }
        if numeric_strict
            && identifier.len() > 1
            && identifier.starts_with('0')
            && identifier.bytes().all(|byte| byte.is_ascii_digit())
        {
            return Err(format!("{what} has a numeric identifier with a leading zero"));
        }
        found.push(identifier.to_string());
    }
    Ok(found)
}

/// SemVer's order of two pre-release identifiers: numbers numerically and before words, words in
/// ASCII order.
fn compare_identifiers(left: &str, right: &str) -> Ordering {
    let numeric = |text: &str| text.bytes().all(|byte| byte.is_ascii_digit());
    match (numeric(left), numeric(right)) {
        // No leading zeros: the longer number is the larger, and any length is compared exactly.
        (true, true) => left.len().cmp(&right.len()).then_with(|| left.cmp(right)),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => left.cmp(right),
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Version) -> Ordering {
        let pre_release = match (self.pre(), other.pre()) {
            ([], []) => Ordering::Equal,
            ([], _) => Ordering::Greater,
            (_, []) => Ordering::Less,
            (left, right) => {
                let mut pairwise = left.iter().zip(right).map(|(left, right)| compare_identifiers(left, right));
                pairwise.find(|order| order.is_ne()).unwrap_or_else(|| left.len().cmp(&right.len()))
            }
        };
        self.numbers().cmp(&other.numbers()).then(pre_release).then_with(|| match (self, other) {
            (Version::Sequence(_), Version::Sequence(_)) => Ordering::Equal,
            (Version::Sequence(_), Version::Semantic { .. }) => Ordering::Less,
            (Version::Semantic { .. }, Version::Sequence(_)) => Ordering::Greater,
            (Version::Semantic { build: left, .. }, Version::Semantic { build: right, .. }) => left.cmp(right),
        })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::Sequence(sequence) => write!(formatter, "{sequence}"),
            Version::Semantic { major, minor, patch, pre, build } => {
                write!(formatter, "{major}.{minor}.{patch}")?;
                if !pre.is_empty() {
                    write!(formatter, "-{}", pre.join("."))?;
                }
                if let Some(build) = build {
                    write!(formatter, "+{build}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Version {
        Version::parse(text).unwrap_or_else(|reason| panic!("{text}: {reason}"))
    }

    #[test]
    fn valid_versions_parse_and_print_back_as_written() {
        let semantic = |major, minor, patch, pre: &[&str], build: Option<&str>| Version::Semantic {
            major,
            minor,
            patch,
            pre: pre.iter().map(ToString::to_string).collect(),
            build: build.map(str::to_string),
        };
        let cases = [
            ("0.0.0", semantic(0, 0, 0, &[], None)),
            ("1.2.3", semantic(1, 2, 3, &[], None)),
            ("10.20.30", semantic(10, 20, 30, &[], None)),
            ("1.0.0-alpha", semantic(1, 0, 0, &["alpha"], None)),
            ("1.0.0-alpha.1", semantic(1, 0, 0, &["alpha", "1"], None)),
            ("1.0.0-0.3.7", semantic(1, 0, 0, &["0", "3", "7"], None)),
            ("1.0.0-x-y-z.--", semantic(1, 0, 0, &["x-y-z", "--"], None)),
            ("1.0.0-alpha+001", semantic(1, 0, 0, &["alpha"], Some("001"))),
            ("1.0.0+20130313144700", semantic(1, 0, 0, &[], Some("20130313144700"))),
            ("1.0.0-beta+exp.sha.5114f85", semantic(1, 0, 0, &["beta"], Some("exp.sha.5114f85"))),
            ("1.0.0+21AF26D3----117B344092BD", semantic(1, 0, 0, &[], Some("21AF26D3----117B344092BD"))),
            ("18446744073709551615.0.0", semantic(u64::MAX, 0, 0, &[], None)),
            ("1", Version::Sequence(1)),
            ("42", Version::Sequence(42)),
        ];
        for (text, expected) in cases {
            assert_eq!(parsed(text), expected, "{text}");
            assert_eq!(expected.to_string(), text, "{text} prints back");
        }
    }

    #[test]
    fn malformed_versions_are_refused_with_a_reason() {
        let cases = [
            ("", "a version is MAJOR.MINOR.PATCH (SemVer, like 1.2.0) or a positive sequence number"),
            ("0", "a sequence number is positive"),
            ("01", "a sequence number has a leading zero"),
            ("01.0.0", "the major version has a leading zero"),
            ("1.02.0", "the minor version has a leading zero"),
            ("1.0", "a version is MAJOR.MINOR.PATCH (SemVer, like 1.2.0) or a positive sequence number"),
            ("1.0.0.0", "a version is MAJOR.MINOR.PATCH (SemVer, like 1.2.0) or a positive sequence number"),
            ("1.0.0-", "a pre-release has an empty identifier"),
            ("1.0.0-alpha..1", "a pre-release has an empty identifier"),
            ("1.0.0-01", "a pre-release has a numeric identifier with a leading zero"),
            ("1.0.0-alpha_1", "a pre-release holds only ASCII letters, digits, `-` and `.`"),
            ("1.0.0+", "build metadata has an empty identifier"),
            ("1.0.0+a+b", "build metadata holds only ASCII letters, digits, `-` and `.`"),
            ("v1.0.0", "the major version must be a number"),
            (" 1.0.0", "the major version must be a number"),
            ("1.0.0 ", "the patch version must be a number"),
            ("1.x.0", "the minor version must be a number"),
            ("18446744073709551616.0.0", "the major version is too large"),
            ("99999999999999999999", "a sequence number is too large"),
        ];
        for (text, reason) in cases {
            assert_eq!(Version::parse(text), Err(reason.to_string()), "{text:?}");
        }
    }

    #[test]
    fn versions_order_by_semver_precedence() {
        // The SemVer spec's example first, then build metadata, sequence numbers and numeric
        // pre-release identifiers. A sequence number `n` is `n.0.0`, just before `n.0.0` itself.
        let ascending = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1",
            "1.0.0",
            "1.0.0+build.1",
            "1.0.0+build.2",
            "1.0.1",
            "1.1.0",
            "2",
            "2.0.0",
            "10.0.0-1",
            "10.0.0-2",
            "10.0.0-10",
            "10.0.0-a",
            "10.0.0-a.b.c",
            "10.0.0",
        ];
        let versions: Vec<Version> = ascending.iter().map(|text| parsed(text)).collect();
        for (index, left) in versions.iter().enumerate() {
            for (other, right) in versions.iter().enumerate() {
                assert_eq!(left.cmp(right), index.cmp(&other), "{left} against {right}");
            }
        }
        let mut shuffled: Vec<Version> = versions.iter().rev().cloned().collect();
        shuffled.rotate_left(7);
        shuffled.sort();
        assert_eq!(shuffled, versions);
        assert_eq!(parsed("1.0.0+a").cmp(&parsed("1.0.0+a")), Ordering::Equal);
    }

    #[test]
    fn the_version_comes_from_the_manifest_metadata() {
        let manifest = |version: Option<&str>| Manifest {
            name: "notes".into(),
            description: "d".into(),
            license: None,
            compatibility: None,
            metadata: version.map(|text| ("version".to_string(), text.to_string())).into_iter().collect(),
            allowed_tools: None,
            body: String::new(),
        };
        assert_eq!(version_of(&manifest(None)), None);
        assert_eq!(version_of(&manifest(Some("1.2.0"))), Some(Ok(parsed("1.2.0"))));
        assert_eq!(version_of(&manifest(Some("7"))), Some(Ok(Version::Sequence(7))));
        assert!(matches!(version_of(&manifest(Some("1.2"))), Some(Err(_))));
    }
}
