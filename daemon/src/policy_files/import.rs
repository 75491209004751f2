//! `castellan import DIR`, in three steps the command runs in order: [`prepare`] (every file read
//! and checked, the profile merged and validated: no database yet), [`plan`] (the changes, against
//! the database) and [`apply`]. A step that finds problems returns them all, and nothing is written.

use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use sea_orm::DatabaseConnection;

use super::FileProblem;
use super::apply::{apply_users, publish_skills, write_atomically};
use super::layout::POLICY_SECTIONS;
use super::merge::{Merged, merge};
use super::plan::{Change, check_signature, skill_change, user_changes};
use super::read::{ImportSet, read_folder};

/// An import folder read and checked, with the profile it leads to.
#[derive(Debug)]
pub struct Prepared {
    pub set: ImportSet,
    pub merged: Merged,
    /// The profile file to write; None for the embedded default profile (then no section may change).
    pub profile_path: Option<PathBuf>,
    /// The merged profile's `skills.signing_keys`.
    pub trusted: Vec<VerifyingKey>,
}

/// Reads `dir` and merges its policy into the profile at `profile_path` (None: the embedded
/// default, which an import cannot change).
pub fn prepare(dir: &Path, profile_path: Option<&Path>) -> Result<Prepared, Vec<FileProblem>> {
    let set = read_folder(dir)?;
    let (text, label) = match profile_path {
        Some(path) => {
            let label = path.display().to_string();
            let text = read_profile(path).map_err(|message| vec![FileProblem::whole(&label, message)])?;
            (text, label)
        }
        None => (castellan_config::DEFAULT_PROFILE_YAML.to_string(), "(embedded default profile)".to_string()),
    };
    let env = |name: &str| std::env::var(name).ok();
    let merged = merge(&text, &label, &set.policy, &env)?;
    if profile_path.is_none() && !merged.changes.is_empty() {
        return Err(set
            .policy
            .iter()
            .map(|file| {
                FileProblem::whole(
                    &file.label,
                    "importing policy writes it into the profile file: name that file with --profile or \
                     CASTELLAN_PROFILE"
                        .into(),
                )
            })
            .collect());
    }
    let trusted = crate::skills::publish::trusted_keys(&merged.profile.skills.signing_keys).map_err(|message| {
        let file =
            set.policy.iter().find(|file| file.section.key == "skills").map_or(label.as_str(), |file| &file.label);
        vec![FileProblem::whole(file, message)]
    })?;
    Ok(Prepared { set, merged, profile_path: profile_path.map(Path::to_path_buf), trusted })
}

fn read_profile(path: &Path) -> Result<String, String> {
    let metadata = std::fs::metadata(path).map_err(|error| format!("cannot read the profile: {error}"))?;
    if metadata.len() > castellan_config::MAX_PROFILE_BYTES as u64 {
        return Err("the profile is too large; is this the right file?".into());
    }
    let bytes = std::fs::read(path).map_err(|error| format!("cannot read the profile: {error}"))?;
    String::from_utf8(bytes).map_err(|_| "the profile is not valid UTF-8".into())
}

/// Every change the import makes, in the order it makes them: users, skills, then policy. A skill
/// the store would refuse (a version taken by other content, a bad or missing signature) is a
/// problem here, before anything is written.
pub async fn plan(
    db: &DatabaseConnection,
    prepared: &Prepared,
) -> Result<Result<Vec<Change>, Vec<FileProblem>>, String> {
    let existing = castellan_schema::users::list(db).await.map_err(|error| error.to_string())?;
    let mut changes = user_changes(&existing, &prepared.set.users);
    let mut problems = Vec::new();
    for folder in &prepared.set.skills {
        if let Err(problem) = check_signature(folder, &prepared.trusted) {
            problems.push(problem);
            continue;
        }
        let versions = castellan_schema::skills::versions_of(db, &folder.bundle.manifest.name)
            .await
            .map_err(|error| error.to_string())?;
        match skill_change(&versions, folder) {
            Ok(change) => changes.extend(change),
            Err(problem) => problems.push(problem),
        }
    }
    let mut policy: Vec<Change> = prepared.merged.changes.iter().copied().map(Change::Policy).collect();
    policy.sort_by_key(|change| match change {
        Change::Policy(super::merge::SectionChange::Added(section) | super::merge::SectionChange::Changed(section)) => {
            POLICY_SECTIONS.iter().position(|known| known == *section)
        }
        _ => None,
    });
    changes.extend(policy);
    Ok(if problems.is_empty() { Ok(changes) } else { Err(problems) })
}

/// Applies a prepared import: the users (one transaction), the skills, and last the profile file,
/// which is written only when the database part succeeded and the text changed.
pub async fn apply(db: &DatabaseConnection, prepared: &Prepared) -> Result<(), String> {
    apply_users(db, &prepared.set.users, chrono::Utc::now()).await?;
    publish_skills(db, &prepared.set.skills, &prepared.trusted).await?;
    if let Some(path) = &prepared.profile_path
        && !prepared.merged.changes.is_empty()
    {
        write_atomically(path, &prepared.merged.text)?;
    }
    Ok(())
}
