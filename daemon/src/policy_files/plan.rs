//! What an import changes, decided from what is stored and what the folder holds: pure functions,
//! so `--dry-run` and the real run agree and every rule has a unit test without a database.

use std::fmt;

use castellan_schema::skills::VersionSummary;
use castellan_schema::users::UserRow;
use ed25519_dalek::VerifyingKey;

use super::FileProblem;
use super::merge::SectionChange;
use super::read::{SkillFolder, UserFile};

/// One change an import makes; printed as `--dry-run` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Policy(SectionChange),
    UserAdded {
        name: String,
        tier: String,
    },
    /// Each difference as `FIELD OLD -> NEW`.
    UserChanged {
        name: String,
        differences: Vec<String>,
    },
    SkillAdded {
        name: String,
        version: String,
    },
    SkillVersion {
        name: String,
        from: String,
        to: String,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Policy(SectionChange::Added(section)) => write!(formatter, "+ policy {}", section.stem),
            Change::Policy(SectionChange::Changed(section)) => write!(formatter, "~ policy {}", section.stem),
            Change::UserAdded { name, tier } => write!(formatter, "+ user {name} ({tier})"),
            Change::UserChanged { name, differences } => {
                write!(formatter, "~ user {name}: {}", differences.join(", "))
            }
            Change::SkillAdded { name, version } => write!(formatter, "+ skill {name} {version}"),
            Change::SkillVersion { name, from, to } => write!(formatter, "~ skill {name} {from} -> {to}"),
        }
    }
}

/// The user changes: users missing from `existing` are added, the others updated where their tier,
/// scopes or disabled flag differ. Users only in `existing` are left alone.
pub fn user_changes(existing: &[UserRow], imported: &[UserFile]) -> Vec<Change> {
    let mut changes = Vec::new();
    for file in imported {
        let user = &file.user;
        let Some(row) = existing.iter().find(|row| row.name == user.name) else {
            changes.push(Change::UserAdded { name: user.name.clone(), tier: user.tier.as_str().to_string() });
            continue;
        };
        let mut differences = Vec::new();
        if row.tier != user.tier.as_str() {
            differences.push(format!("tier {} -> {}", row.tier, user.tier.as_str()));
        }
        if row.scopes != user.scopes {
            differences.push(format!("scopes [{}] -> [{}]", row.scopes.join(", "), user.scopes.join(", ")));
        }
        if row.disabled != user.disabled {
            differences.push(format!("disabled {} -> {}", row.disabled, user.disabled));
        }
        if !differences.is_empty() {
            changes.push(Change::UserChanged { name: user.name.clone(), differences });
        }
    }
    changes
}

/// What publishing `folder` over the skill's `existing` versions (oldest first) does, as the
/// store decides it: None when the same content is already published (not yanked); a problem when
/// the store would refuse (a version taken by other content, yanked content).
pub fn skill_change(existing: &[VersionSummary], folder: &SkillFolder) -> Result<Option<Change>, FileProblem> {
    let bundle = &folder.bundle;
    let name = &bundle.manifest.name;
    let skill_md = format!("{}/SKILL.md", folder.label);
    let refuse = |message: String| FileProblem::whole(&skill_md, message);
    let given = match castellan_skills::version_of(&bundle.manifest) {
        None => None,
        Some(Ok(version)) => Some(version.to_string()),
        Some(Err(reason)) => return Err(refuse(format!("metadata.version: {reason}"))),
    };
    let version = match &given {
        Some(given) => match existing.iter().find(|version| &version.version == given) {
            Some(stored) if stored.digest != bundle.digest => {
                return Err(refuse(format!(
                    "version {given} of skill {name} is already published with different content; versions never \
                     change: bump metadata.version"
                )));
            }
            Some(stored) if stored.yanked => {
                return Err(refuse(format!("version {given} of skill {name} was yanked; set a new metadata.version")));
            }
            Some(_) => return Ok(None),
            None => given.clone(),
        },
        None => {
            let same = existing.iter().rev().find(|version| version.digest == bundle.digest);
            match same {
                Some(stored) if !stored.yanked => return Ok(None),
                Some(stored) => {
                    return Err(refuse(format!(
                        "this content of skill {name} was published as version {} and yanked; change it, or set a \
                         new metadata.version",
                        stored.version
                    )));
                }
                None => next_integer_version(existing),
            }
        }
    };
    let latest = existing.iter().rev().find(|stored| !stored.yanked);
    Ok(Some(match (existing.is_empty(), latest) {
        (true, _) => Change::SkillAdded { name: name.clone(), version },
        (false, Some(latest)) => Change::SkillVersion { name: name.clone(), from: latest.version.clone(), to: version },
        (false, None) => Change::SkillVersion { name: name.clone(), from: "(yanked)".into(), to: version },
    }))
}

/// The number the store gives a version without `metadata.version`: one more than the highest
/// all-digit version (yanked ones included).
fn next_integer_version(existing: &[VersionSummary]) -> String {
    let highest = existing
        .iter()
        .filter(|stored| !stored.version.is_empty() && stored.version.bytes().all(|byte| byte.is_ascii_digit()))
        .filter_map(|stored| stored.version.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    highest.saturating_add(1).to_string()
}

/// The signature check a publish makes, made before anything is written: with trusted keys a valid
/// signature by one of them is required; without, a signature must at least verify with its own key.
pub fn check_signature(folder: &SkillFolder, trusted: &[VerifyingKey]) -> Result<(), FileProblem> {
    let bundle = &folder.bundle;
    let file = format!("{}/{}", folder.label, castellan_skills::SIGNATURE_FILE);
    let Some(signature) = &bundle.signature else {
        if trusted.is_empty() {
            return Ok(());
        }
        return Err(FileProblem::whole(
            &folder.label,
            "is not signed, and skills.signing_keys requires a signature: sign it with `castellan skills sign`".into(),
        ));
    };
    let own;
    let keys = if trusted.is_empty() {
        own = [castellan_skills::parse_public_key(&signature.key)
            .map_err(|error| FileProblem::whole(&file, error.to_string()))?];
        &own[..]
    } else {
        trusted
    };
    castellan_skills::verify(&bundle.manifest.name, &bundle.digest, signature, keys)
        .map_err(|error| FileProblem::whole(&file, error.to_string()))
}

#[cfg(test)]
mod tests {
    use castellan_config::Tier;

    use super::*;
    use crate::policy_files::layout::UserFrontmatter;

    fn row(name: &str, tier: &str, disabled: bool) -> UserRow {
        UserRow {
            id: 1,
            name: name.into(),
            tier: tier.into(),
            scopes: Vec::new(),
            disabled,
            created_at: chrono::DateTime::UNIX_EPOCH,
        }
    }

    fn file(name: &str, tier: Tier, scopes: &[&str], disabled: bool) -> UserFile {
        let scopes = scopes.iter().map(ToString::to_string).collect();
        UserFile {
            label: format!("users/{name}.md"),
            user: UserFrontmatter { name: name.into(), tier, scopes, disabled },
        }
    }

    #[test]
    fn users_are_added_or_updated_and_the_others_left_alone() {
        let existing = [row("alice", "user", false), row("carol", "admin", false), row("dave", "user", false)];
        let imported = [
            file("alice", Tier::Admin, &["mcp:tools"], true),
            file("bob", Tier::User, &[], false),
            file("dave", Tier::User, &[], false),
        ];
        let printed: Vec<String> = user_changes(&existing, &imported).iter().map(ToString::to_string).collect();
        assert_eq!(
            printed,
            ["~ user alice: tier user -> admin, scopes [] -> [mcp:tools], disabled false -> true", "+ user bob (user)"]
        );
    }

    fn stored(version: &str, digest: &str, yanked: bool) -> VersionSummary {
        VersionSummary {
            id: 1,
            name: "notes".into(),
            version: version.into(),
            digest: digest.into(),
            description: String::new(),
            frontmatter: String::new(),
            signature: None,
            signed_by: None,
            file_count: 1,
            total_bytes: 1,
            published_at: chrono::DateTime::UNIX_EPOCH,
            published_by: None,
            yanked,
            yanked_at: None,
        }
    }

    fn folder(version: Option<&str>) -> SkillFolder {
        let metadata = version.map(|version| format!("metadata:\n  version: \"{version}\"\n")).unwrap_or_default();
        let skill_md = format!("---\nname: notes\ndescription: Notes.\n{metadata}---\n");
        let bundle = castellan_skills::from_files("notes", vec![("SKILL.md".into(), skill_md.into_bytes())]).unwrap();
        SkillFolder { label: "skills/notes".into(), bundle }
    }

    #[test]
    fn skills_are_decided_as_the_store_decides() {
        let unversioned = folder(None);
        let digest = unversioned.bundle.digest.clone();
        let versioned = folder(Some("1.1.0"));
        let versioned_digest = versioned.bundle.digest.clone();
        let show = |result: Result<Option<Change>, FileProblem>| match result {
            Ok(Some(change)) => change.to_string(),
            Ok(None) => "unchanged".to_string(),
            Err(problem) => format!("refused: {problem}"),
        };
        let cases: Vec<(&str, Vec<VersionSummary>, &SkillFolder, &str)> = vec![
            ("new skill", vec![], &unversioned, "+ skill notes 1"),
            ("new versioned skill", vec![], &versioned, "+ skill notes 1.1.0"),
            ("same content", vec![stored("3", &digest, false)], &unversioned, "unchanged"),
            (
                "new content",
                vec![stored("3", "sha256:x", false), stored("4", "sha256:y", true)],
                &unversioned,
                "~ skill notes 3 -> 5",
            ),
            (
                "yanked content",
                vec![stored("3", &digest, true)],
                &unversioned,
                "refused: skills/notes/SKILL.md: this content",
            ),
            (
                "version taken",
                vec![stored("1.1.0", "sha256:x", false)],
                &versioned,
                "refused: skills/notes/SKILL.md: version 1.1.0",
            ),
            ("version there", vec![stored("1.1.0", &versioned_digest, false)], &versioned, "unchanged"),
            ("new version", vec![stored("1.0.0", "sha256:x", false)], &versioned, "~ skill notes 1.0.0 -> 1.1.0"),
        ];
        for (case, existing, folder, expected) in cases {
            let decided = show(skill_change(&existing, folder));
            assert!(decided.starts_with(expected), "{case}: {decided}");
        }
    }

    #[test]
    fn signatures_are_checked_before_anything_is_written() {
        let mut signed = folder(None);
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        signed.bundle.signature = Some(castellan_skills::sign("notes", &signed.bundle.digest, &key));
        assert_eq!(check_signature(&signed, &[]), Ok(()));
        assert_eq!(check_signature(&signed, &[key.verifying_key()]), Ok(()));
        let other = ed25519_dalek::SigningKey::from_bytes(&[8; 32]).verifying_key();
        assert!(check_signature(&signed, &[other]).is_err(), "not a trusted key");
        assert!(check_signature(&folder(None), &[other]).is_err(), "unsigned where signatures are required");
        assert_eq!(check_signature(&folder(None), &[]), Ok(()));
    }
}
