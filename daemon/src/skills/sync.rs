//! `castellan skills sync`: writes the skills the caller may use into a folder (by default
//! `~/.claude/skills`, where Claude Code looks), from a daemon's API.
//!
//! - Each skill is verified before anything is written: every file's sha256 against the version's
//!   listing, the whole digest against the catalog's, the paths by the same rules as publishing,
//!   and, with trusted keys given, its Ed25519 signature.
//! - Each skill is installed atomically: written beside its folder under a `.castellan-sync-`
//!   name, then exchanged with the old folder in one `renameat2(RENAME_EXCHANGE)` (or renamed into
//!   place when new), so a reader sees the old version or the new one, never half of either. A run
//!   interrupted at any point leaves only `.castellan-sync-` folders, removed by the next run.
//! - A folder holds [`MARKER_FILE`] when sync installed it; only such folders are updated or
//!   removed (when the skill is no longer offered: revoked by RBAC, yanked, or not signed by a
//!   trusted key). Folders it did not install are left alone, even under a skill's name.
//! - A second run with nothing changed writes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use castellan_skills::Signature;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The file sync leaves in each folder it installed.
pub const MARKER_FILE: &str = ".castellan-skill.json";

/// The prefix of the folders a run works in.
const WORK_PREFIX: &str = ".castellan-sync-";

/// What sync needs.
pub struct SyncOptions {
    /// The daemon's public URL.
    pub url: String,
    /// A Castellan API key or access token.
    pub token: String,
    pub dest: PathBuf,
    /// With any, only skills signed by one of them are installed.
    pub trusted: Vec<VerifyingKey>,
}

/// What a run did, skill by skill.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub installed: Vec<String>,
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
    pub removed: Vec<String>,
    /// Offered, but a folder of that name was not installed by sync.
    pub left_alone: Vec<String>,
    /// (skill, why): nothing of it was written.
    pub failed: Vec<(String, String)>,
}

/// What sync writes into a folder it installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub name: String,
    pub version: String,
    pub digest: String,
    pub source: String,
}

#[derive(Debug, Deserialize)]
struct Listed {
    name: String,
    version: String,
    digest: String,
}

#[derive(Debug, Deserialize)]
struct Listing {
    skills: Vec<Listed>,
}

#[derive(Debug, Deserialize)]
struct ListedFile {
    path: String,
    sha256: String,
    size: u64,
}

#[derive(Debug, Deserialize)]
struct VersionDetail {
    digest: String,
    files: Vec<ListedFile>,
    signature: Option<Value>,
}

/// Runs one sync.
pub async fn sync(options: &SyncOptions) -> Result<SyncReport, String> {
    std::fs::create_dir_all(&options.dest)
        .map_err(|error| format!("cannot create {}: {error}", options.dest.display()))?;
    remove_leftovers(&options.dest);
    let client = castellan_actors::http_client::builder(Duration::from_secs(10))
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|error| format!("cannot build the HTTP client: {error}"))?;
    let base = options.url.trim_end_matches('/');
    let listing: Listing = get_json(&client, &format!("{base}/api/v1/skills"), &options.token).await?;
    let installed = installed_markers(&options.dest);
    let mut report = SyncReport::default();
    let offered: BTreeMap<&str, &Listed> = listing.skills.iter().map(|skill| (skill.name.as_str(), skill)).collect();
    for (name, listed) in &offered {
        if castellan_skills::check_name(name).is_err() {
            report.failed.push((name.to_string(), "the daemon offered a name that is not a skill name".into()));
            continue;
        }
        let folder = options.dest.join(name);
        let marker = installed.get(*name);
        if folder.exists() && marker.is_none() {
            report.left_alone.push(name.to_string());
            continue;
        }
        if let Some(marker) = marker
            && marker.digest == listed.digest
            && folder_digest(&folder).as_deref() == Some(listed.digest.as_str())
        {
            report.unchanged.push(name.to_string());
            continue;
        }
        match install(&client, options, base, listed, &folder).await {
            Ok(()) if marker.is_some() => report.updated.push(name.to_string()),
            Ok(()) => report.installed.push(name.to_string()),
            Err(reason) => report.failed.push((name.to_string(), reason)),
        }
    }
    for name in installed.keys() {
        if !offered.contains_key(name.as_str()) {
            match std::fs::remove_dir_all(options.dest.join(name)) {
                Ok(()) => report.removed.push(name.clone()),
                Err(error) => report.failed.push((name.clone(), format!("cannot remove it: {error}"))),
            }
        }
    }
    Ok(report)
}

async fn get_json<T: for<'de> Deserialize<'de>>(client: &reqwest::Client, url: &str, token: &str) -> Result<T, String> {
    let bytes = get_bytes(client, url, token).await?;
    serde_json::from_slice(&bytes).map_err(|error| format!("{url}: not the expected JSON: {error}"))
}

async fn get_bytes(client: &reqwest::Client, url: &str, token: &str) -> Result<Vec<u8>, String> {
    let response = client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|error| format!("{url}: {}", crate::identity::outbound::error_chain(&error)))?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|error| format!("{url}: {error}"))?;
    if !status.is_success() {
        let message = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|body| body.get("error").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default();
        return Err(format!("{url}: {status} {message}").trim_end().to_string());
    }
    Ok(bytes.to_vec())
}

/// Downloads, verifies and installs one skill.
async fn install(
    client: &reqwest::Client,
    options: &SyncOptions,
    base: &str,
    listed: &Listed,
    folder: &Path,
) -> Result<(), String> {
    let name = &listed.name;
    let version_url = format!("{base}/api/v1/skills/{name}/{}", listed.version);
    let detail: VersionDetail = get_json(client, &version_url, &options.token).await?;
    let archive = get_bytes(client, &format!("{version_url}/archive.tar.gz?via=sync"), &options.token).await?;
    let files = super::archive::read(name, &archive)?;
    let bundle = castellan_skills::from_files(name, files).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        lines.join("; ")
    })?;
    verify(&bundle, listed, &detail, &options.trusted)?;
    write_atomically(&options.dest, folder, &bundle, &detail, listed, &options.url)
}

/// Every check a downloaded bundle passes before it is written.
fn verify(
    bundle: &castellan_skills::Bundle,
    listed: &Listed,
    detail: &VersionDetail,
    trusted: &[VerifyingKey],
) -> Result<(), String> {
    let name = &listed.name;
    let expected: BTreeMap<&str, (&str, u64)> =
        detail.files.iter().map(|file| (file.path.as_str(), (file.sha256.as_str(), file.size))).collect();
    if expected.len() != bundle.files.len() {
        return Err(format!("the archive holds {} files; the version lists {}", bundle.files.len(), expected.len()));
    }
    for file in &bundle.files {
        match expected.get(file.path.as_str()) {
            Some((sha256, size)) if *sha256 == file.sha256 && *size == file.size() => {}
            Some(_) => return Err(format!("{name}/{}: its content does not match its sha256 (tampered?)", file.path)),
            None => return Err(format!("{name}/{}: not in the version's file list", file.path)),
        }
    }
    if bundle.digest != detail.digest || bundle.digest != listed.digest {
        return Err(format!("the content's digest {} is not the published {}", bundle.digest, listed.digest));
    }
    if trusted.is_empty() {
        return Ok(());
    }
    let signature: Signature = detail
        .signature
        .clone()
        .and_then(|value| serde_json::from_value(value).ok())
        .ok_or_else(|| "not signed, and signatures are required (--signing-key)".to_string())?;
    castellan_skills::verify(name, &bundle.digest, &signature, trusted).map_err(|error| error.to_string())
}

/// Writes the bundle beside `folder`, then puts it in place in one step.
fn write_atomically(
    dest: &Path,
    folder: &Path,
    bundle: &castellan_skills::Bundle,
    detail: &VersionDetail,
    listed: &Listed,
    source: &str,
) -> Result<(), String> {
    let work = dest.join(format!("{WORK_PREFIX}{}-{}", listed.name, crate::trace::random_hex(6)));
    let written = write_folder(&work, bundle, detail, listed, source);
    if let Err(error) = written {
        let _ = std::fs::remove_dir_all(&work);
        return Err(format!("writing {}: {error}", work.display()));
    }
    let swapped = if folder.exists() {
        nix::fcntl::renameat2(
            nix::fcntl::AT_FDCWD,
            &work,
            nix::fcntl::AT_FDCWD,
            folder,
            nix::fcntl::RenameFlags::RENAME_EXCHANGE,
        )
        .map_err(|error| error.to_string())
    } else {
        std::fs::rename(&work, folder).map_err(|error| error.to_string())
    };
    match swapped {
        Ok(()) => {
            // After an exchange `work` holds the old version.
            let _ = std::fs::remove_dir_all(&work);
            Ok(())
        }
        Err(error) => {
            let _ = std::fs::remove_dir_all(&work);
            Err(format!("putting {} in place: {error}", folder.display()))
        }
    }
}

fn write_folder(
    work: &Path,
    bundle: &castellan_skills::Bundle,
    detail: &VersionDetail,
    listed: &Listed,
    source: &str,
) -> std::io::Result<()> {
    std::fs::create_dir(work)?;
    for file in &bundle.files {
        let path = work.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &file.bytes)?;
    }
    if let Some(signature) = &detail.signature {
        std::fs::write(work.join(castellan_skills::SIGNATURE_FILE), format!("{signature:#}\n"))?;
    }
    let marker = Marker {
        name: listed.name.clone(),
        version: listed.version.clone(),
        digest: listed.digest.clone(),
        source: source.to_string(),
    };
    let text = serde_json::to_string_pretty(&marker).map_err(std::io::Error::other)?;
    std::fs::write(work.join(MARKER_FILE), format!("{text}\n"))
}

/// The folders sync installed, by skill name.
fn installed_markers(dest: &Path) -> BTreeMap<String, Marker> {
    let mut found = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dest) else { return found };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(entry.path().join(MARKER_FILE)) else { continue };
        if let Ok(marker) = serde_json::from_str::<Marker>(&text)
            && marker.name == name
        {
            found.insert(name, marker);
        }
    }
    found
}

/// The digest of what a folder holds now (the marker aside), or `None` when it is not a valid
/// skill any more (edited, broken): then it is installed again.
fn folder_digest(folder: &Path) -> Option<String> {
    let skill = castellan_skills::check_dir(folder).ok()?;
    let mut hashed = Vec::with_capacity(skill.files.len());
    for file in skill.files.iter().filter(|file| file.path != MARKER_FILE) {
        let bytes = std::fs::read(folder.join(&file.path)).ok()?;
        hashed.push((file.path.clone(), bytes.len() as u64, castellan_skills::sha256_hex(&bytes)));
    }
    Some(castellan_skills::digest_of(hashed.iter().map(|(path, size, sha)| (path.as_str(), *size, sha.as_str()))))
}

/// Removes what an interrupted run left.
fn remove_leftovers(dest: &Path) {
    let Ok(entries) = std::fs::read_dir(dest) else { return };
    for entry in entries.filter_map(Result::ok) {
        if entry.file_name().to_string_lossy().starts_with(WORK_PREFIX) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
