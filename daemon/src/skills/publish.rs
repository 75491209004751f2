//! Publishing a skill folder: checked and read ([`castellan_skills::load_dir`]), its signature
//! verified against `skills.signing_keys`, its version taken from `metadata.version` (or the next
//! integer), then stored as an immutable version.

use std::fmt;
use std::path::Path;

use castellan_schema::skills::{NewFile, NewVersion, PublishError, Published};
use castellan_skills::{Bundle, Manifest, Problem, SignatureError};
use chrono::Utc;
use ed25519_dalek::VerifyingKey;
use sea_orm::DatabaseConnection;
use serde_json::{Map, Value, json};

/// Why a folder was not published. Nothing was stored.
#[derive(Debug)]
pub enum PublishRefusal {
    /// The folder is not a valid skill: every problem, `FILE:LINE: message`.
    Invalid(Vec<Problem>),
    /// Signatures are required and this one is missing or wrong.
    Signature { skill: String, reason: String },
    /// The version exists with other content, or was yanked; or the database failed.
    Store(PublishError),
}

impl fmt::Display for PublishRefusal {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishRefusal::Invalid(problems) => {
                let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
                write!(formatter, "{}", lines.join("\n"))
            }
            PublishRefusal::Signature { skill, reason } => write!(formatter, "skill {skill}: {reason}"),
            PublishRefusal::Store(error) => write!(formatter, "{error}"),
        }
    }
}

/// What a publish did, for the CLI and the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishReport {
    pub name: String,
    pub digest: String,
    pub published: Published,
}

/// The trusted keys of `skills.signing_keys`. A listed key that is not a valid Ed25519 point is an
/// error: the profile would otherwise trust fewer keys than it says.
pub fn trusted_keys(listed: &[String]) -> Result<Vec<VerifyingKey>, String> {
    listed
        .iter()
        .map(|key| castellan_skills::parse_public_key(key).map_err(|error| format!("skills.signing_keys: {error}")))
        .collect()
}

/// Publishes the skill folder `dir`. `trusted` empty: signatures are optional (kept when valid
/// for their own key). `publisher` is a user id or `cli`.
pub async fn publish_dir(
    db: &DatabaseConnection,
    dir: &Path,
    trusted: &[VerifyingKey],
    publisher: &str,
) -> Result<PublishReport, PublishRefusal> {
    let bundle = castellan_skills::load_dir(dir).map_err(PublishRefusal::Invalid)?;
    publish_bundle(db, &bundle, trusted, publisher).await
}

/// Publishes a bundle already read (from a folder, an import or an upload).
pub async fn publish_bundle(
    db: &DatabaseConnection,
    bundle: &Bundle,
    trusted: &[VerifyingKey],
    publisher: &str,
) -> Result<PublishReport, PublishRefusal> {
    let name = bundle.manifest.name.clone();
    let signature = check_signature(bundle, trusted)?;
    let version = match version_text(&bundle.manifest) {
        None => None,
        Some(Ok(version)) => Some(version),
        Some(Err(reason)) => {
            return Err(PublishRefusal::Invalid(vec![Problem {
                file: format!("{name}/SKILL.md"),
                line: 0,
                message: format!("metadata.version: {reason}"),
            }]));
        }
    };
    let frontmatter = frontmatter_json(&bundle.manifest).to_string();
    let files: Vec<NewFile> = bundle
        .files
        .iter()
        .map(|file| NewFile { path: &file.path, sha256: &file.sha256, bytes: &file.bytes })
        .collect();
    let signature_json = signature.as_ref().map(|(json, _)| json.as_str());
    let new = NewVersion {
        name: &name,
        version: version.as_deref(),
        digest: &bundle.digest,
        description: &bundle.manifest.description,
        frontmatter: &frontmatter,
        signature: signature_json,
        signed_by: signature.as_ref().map(|(_, key)| key.as_str()),
        files: &files,
        published_by: Some(publisher),
        now: Utc::now(),
    };
    let published = castellan_schema::skills::publish(db, new).await.map_err(PublishRefusal::Store)?;
    Ok(PublishReport { name, digest: bundle.digest.clone(), published })
}

/// The version `metadata.version` gives: SemVer 2.0.0 in its canonical text, or `MAJOR.MINOR`
/// as written (the short form many published skills use, e.g. `"1.0"`).
fn version_text(manifest: &Manifest) -> Option<Result<String, String>> {
    let written = manifest.metadata.get("version")?;
    Some(match castellan_skills::Version::parse(written) {
        Ok(version) => Ok(version.to_string()),
        Err(_) if is_major_minor(written) => Ok(written.clone()),
        Err(reason) => Err(format!("{reason} (SemVer such as 1.2.0, or MAJOR.MINOR such as 1.0)")),
    })
}

fn is_major_minor(text: &str) -> bool {
    let number = |part: &str| {
        !part.is_empty()
            && part.bytes().all(|byte| byte.is_ascii_digit())
            && (part == "0" || !part.starts_with('0'))
            && part.len() <= 19
    };
    matches!(text.split_once('.'), Some((major, minor)) if number(major) && number(minor))
}

/// The signature to store (as JSON, and its key), after checking it. With trusted keys a valid
/// signature by one of them is required; without, a signature is kept only if it verifies with
/// its own key (so a stored signature is never a broken one).
fn check_signature(bundle: &Bundle, trusted: &[VerifyingKey]) -> Result<Option<(String, String)>, PublishRefusal> {
    let name = &bundle.manifest.name;
    let refuse = |reason: String| PublishRefusal::Signature { skill: name.clone(), reason };
    let Some(signature) = &bundle.signature else {
        if trusted.is_empty() {
            return Ok(None);
        }
        return Err(refuse(format!(
            "is not signed, and skills.signing_keys requires a signature: run `castellan skills sign DIR --key FILE` \
             (it writes {})",
            castellan_skills::SIGNATURE_FILE
        )));
    };
    let own_key;
    let keys: &[VerifyingKey] = if trusted.is_empty() {
        own_key = [castellan_skills::parse_public_key(&signature.key).map_err(|error| refuse(error.to_string()))?];
        &own_key
    } else {
        trusted
    };
    castellan_skills::verify(name, &bundle.digest, signature, keys).map_err(|error| {
        refuse(match error {
            SignatureError::BadSignature => {
                "its signature does not match its content (was a file changed after signing?)".to_string()
            }
            other => other.to_string(),
        })
    })?;
    let json = serde_json::to_string(signature).map_err(|error| refuse(error.to_string()))?;
    Ok(Some((json, signature.key.clone())))
}

/// The frontmatter as the Agent Skills keys and JSON types a YAML reader gives: every value a
/// string, `metadata` a string map. Optional keys appear only when the file has them.
pub fn frontmatter_json(manifest: &Manifest) -> Value {
    let mut object = Map::new();
    object.insert("name".into(), json!(manifest.name));
    object.insert("description".into(), json!(manifest.description));
    if let Some(license) = &manifest.license {
        object.insert("license".into(), json!(license));
    }
    if let Some(compatibility) = &manifest.compatibility {
        object.insert("compatibility".into(), json!(compatibility));
    }
    if !manifest.metadata.is_empty() {
        object.insert("metadata".into(), json!(manifest.metadata));
    }
    if let Some(tools) = &manifest.allowed_tools {
        object.insert("allowed-tools".into(), json!(tools));
    }
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(version: &str) -> Manifest {
        let text = format!("---\nname: pdf\ndescription: d\nmetadata:\n  version: \"{version}\"\n---\n");
        castellan_skills::parse_skill_md(&text, "SKILL.md", None).expect("valid")
    }

    #[test]
    fn versions_are_semver_or_major_minor_as_written() {
        let cases = [
            ("1.2.0", Ok("1.2.0")),
            ("1.0", Ok("1.0")),
            ("2.0.0-rc.1", Ok("2.0.0-rc.1")),
            ("10.04", Err(())),
            ("v1", Err(())),
            ("1", Ok("1")),
        ];
        for (written, expected) in cases {
            let got = version_text(&manifest(written)).expect("has a version");
            assert_eq!(got.as_deref().map_err(|_| ()), expected, "{written}");
        }
    }
}
