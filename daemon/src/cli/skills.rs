//! `castellan skills`: check, sign and publish skill folders; list, show and yank published
//! versions; sync the skills a caller may use into a folder.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;

use super::terminal::{escape, json_line, table};
use super::{GlobalArgs, load_profile};
use crate::skills::publish::{publish_dir, trusted_keys};

#[derive(Subcommand, Debug)]
pub enum SkillsCommand {
    /// Check skill folders (each with a SKILL.md): exit 0 if every one is valid, else 1 and one
    /// `FILE:LINE: problem` line per problem.
    Check {
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
    /// Sign a skill folder's content with an Ed25519 key (PKCS#8 PEM, as `openssl genpkey
    /// -algorithm ed25519` writes it); the signature goes into the folder's
    /// `.castellan-signature.json`. Sign after the last change: any change breaks it.
    Sign {
        dir: PathBuf,
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Publish skill folders as immutable versions (version from `metadata.version`, else the next
    /// integer). The same content again is a no-op; other content under an existing version is
    /// refused.
    Publish {
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
    /// Every published skill: its latest version (yanked versions are not the latest).
    List {
        #[arg(long)]
        json: bool,
    },
    /// One skill's versions, or one version's files and digests (`NAME@VERSION`).
    Show {
        #[arg(value_name = "NAME[@VERSION]")]
        skill: String,
        #[arg(long)]
        json: bool,
    },
    /// Hide a version: no longer listed, served or the latest; its record stays.
    Yank {
        #[arg(value_name = "NAME@VERSION")]
        skill: String,
    },
    /// Write the skills you may use into DEST (default ~/.claude/skills), verified, from the
    /// daemon at URL (default the profile's server.public_url).
    Sync {
        #[arg(long)]
        url: Option<String>,
        /// A Castellan API key or access token.
        #[arg(long, env = "CASTELLAN_TOKEN", hide_env_values = true)]
        token: String,
        #[arg(long)]
        dest: Option<PathBuf>,
        /// Require signatures by this key (`ed25519:BASE64`); repeatable. The profile's
        /// `skills.signing_keys` are required as well.
        #[arg(long = "signing-key", value_name = "KEY")]
        signing_keys: Vec<String>,
    },
}

pub fn check(dirs: &[PathBuf]) -> ExitCode {
    let mut all_valid = true;
    for dir in dirs {
        match castellan_skills::check_dir(dir) {
            Ok(skill) => println!(
                "{}: ok ({}, {} files, {} bytes)",
                dir.display(),
                skill.manifest.name,
                skill.files.len(),
                skill.total_bytes()
            ),
            Err(problems) => {
                all_valid = false;
                for problem in problems {
                    println!("{problem}");
                }
            }
        }
    }
    if all_valid { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// `skills sign DIR --key FILE`: needs no profile or database.
pub fn sign(dir: &std::path::Path, key: &std::path::Path) -> ExitCode {
    let bundle = match castellan_skills::load_dir(dir) {
        Ok(bundle) => bundle,
        Err(problems) => {
            for problem in problems {
                println!("{problem}");
            }
            return ExitCode::FAILURE;
        }
    };
    let signing_key =
        match std::fs::read_to_string(key).map_err(|error| format!("cannot read {}: {error}", key.display())).and_then(
            |text| castellan_skills::signing_key_from_pem(&text).map_err(|error| format!("{}: {error}", key.display())),
        ) {
            Ok(signing_key) => signing_key,
            Err(message) => {
                eprintln!("castellan: {message}");
                return ExitCode::FAILURE;
            }
        };
    let signature = castellan_skills::sign(&bundle.manifest.name, &bundle.digest, &signing_key);
    if let Err(error) = castellan_skills::write_signature(dir, &signature) {
        eprintln!("castellan: cannot write the signature into {}: {error}", dir.display());
        return ExitCode::FAILURE;
    }
    println!("signed {} ({}) with {}", bundle.manifest.name, bundle.digest, signature.key);
    ExitCode::SUCCESS
}

pub async fn run(global: &GlobalArgs, command: SkillsCommand) -> Result<ExitCode, String> {
    let (profile, _) = load_profile(global)?;
    if let SkillsCommand::Sync { url, token, dest, signing_keys } = command {
        return sync(&profile, url, token, dest, signing_keys).await;
    }
    let db = super::database::open_existing(global, &profile).await?;
    match command {
        SkillsCommand::Publish { dirs } => {
            let trusted = trusted_keys(&profile.skills.signing_keys)?;
            let mut all_published = true;
            for dir in dirs {
                match publish_dir(&db, &dir, &trusted, "cli").await {
                    Ok(report) => {
                        let done = match report.published {
                            castellan_schema::skills::Published::Stored { .. } => "published",
                            castellan_schema::skills::Published::Unchanged { .. } => "unchanged",
                        };
                        println!("{done} {} {} ({})", report.name, report.published.version(), report.digest);
                    }
                    Err(refusal) => {
                        all_published = false;
                        println!("{}: not published:\n{refusal}", dir.display());
                    }
                }
            }
            Ok(if all_published { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        SkillsCommand::List { json } => {
            let latest = castellan_schema::skills::latest_versions(&db).await.map_err(|error| error.to_string())?;
            if json {
                for version in &latest {
                    println!("{}", json_line(&crate::skills::api::version_json(version)));
                }
            } else {
                let rows: Vec<Vec<String>> = latest
                    .iter()
                    .map(|version| {
                        vec![
                            escape(&version.name),
                            escape(&version.version),
                            version.file_count.to_string(),
                            version.signed_by.as_deref().map_or("-".to_string(), escape),
                            version.published_at.to_rfc3339(),
                        ]
                    })
                    .collect();
                print!("{}", table(&["SKILL", "VERSION", "FILES", "SIGNED BY", "PUBLISHED"], &rows));
            }
            Ok(ExitCode::SUCCESS)
        }
        SkillsCommand::Show { skill, json } => show(&db, &skill, json).await,
        SkillsCommand::Yank { skill } => {
            let Some((name, version)) = skill.split_once('@') else {
                return Err("name the version to yank: NAME@VERSION".into());
            };
            use castellan_schema::skills::YankOutcome;
            match castellan_schema::skills::yank(&db, name, version, chrono::Utc::now())
                .await
                .map_err(|error| error.to_string())?
            {
                YankOutcome::Yanked => println!("yanked {name}@{version}"),
                YankOutcome::AlreadyYanked => println!("{name}@{version} was already yanked"),
                YankOutcome::NotFound => return Err(format!("no version {version} of skill {name}")),
            }
            Ok(ExitCode::SUCCESS)
        }
        SkillsCommand::Check { .. } | SkillsCommand::Sign { .. } | SkillsCommand::Sync { .. } => Ok(ExitCode::SUCCESS),
    }
}

async fn show(db: &sea_orm::DatabaseConnection, skill: &str, json: bool) -> Result<ExitCode, String> {
    let (name, version) = match skill.split_once('@') {
        Some((name, version)) => (name, Some(version)),
        None => (skill, None),
    };
    let Some(version) = version else {
        let versions = castellan_schema::skills::versions_of(db, name).await.map_err(|error| error.to_string())?;
        if versions.is_empty() {
            return Err(format!("no skill {name}"));
        }
        for version in &versions {
            let shown = crate::skills::api::version_json(version);
            if json {
                println!("{}", json_line(&shown));
            } else {
                let yanked = if version.yanked { " (yanked)" } else { "" };
                println!(
                    "{}@{}{yanked} {} {}",
                    escape(name),
                    escape(&version.version),
                    version.digest,
                    version.published_at.to_rfc3339()
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    };
    let found = castellan_schema::skills::find_version(db, name, Some(version))
        .await
        .map_err(|error| error.to_string())?
        .ok_or_else(|| format!("no version {version} of skill {name}"))?;
    let files = castellan_schema::skills::files_of(db, found.id).await.map_err(|error| error.to_string())?;
    if json {
        let mut shown = crate::skills::api::version_json(&found);
        shown["files"] =
            files.iter().map(|file| json!({"path": file.path, "sha256": file.sha256, "size": file.size})).collect();
        println!("{}", json_line(&shown));
    } else {
        println!(
            "{}@{} {}{}",
            escape(name),
            escape(&found.version),
            found.digest,
            if found.yanked { " (yanked)" } else { "" }
        );
        let rows: Vec<Vec<String>> =
            files.iter().map(|file| vec![escape(&file.path), file.size.to_string(), file.sha256.clone()]).collect();
        print!("{}", table(&["PATH", "BYTES", "SHA256"], &rows));
    }
    Ok(ExitCode::SUCCESS)
}

async fn sync(
    profile: &castellan_config::Profile,
    url: Option<String>,
    token: String,
    dest: Option<PathBuf>,
    signing_keys: Vec<String>,
) -> Result<ExitCode, String> {
    let dest = match dest {
        Some(dest) => dest,
        None => {
            let home = std::env::var_os("HOME").ok_or("HOME is not set; give --dest")?;
            PathBuf::from(home).join(".claude").join("skills")
        }
    };
    let mut keys = profile.skills.signing_keys.clone();
    keys.extend(signing_keys);
    let options = crate::skills::sync::SyncOptions {
        url: url.unwrap_or_else(|| profile.server.public_url.clone()),
        token,
        dest,
        trusted: trusted_keys(&keys)?,
    };
    let report = crate::skills::sync::sync(&options).await?;
    let show = |what: &str, names: &[String]| {
        for name in names {
            println!("{what} {}", escape(name));
        }
    };
    show("installed", &report.installed);
    show("updated", &report.updated);
    show("unchanged", &report.unchanged);
    show("removed", &report.removed);
    for name in &report.left_alone {
        println!("left alone {} (a folder sync did not install)", escape(name));
    }
    for (name, reason) in &report.failed {
        println!("failed {}: {}", escape(name), escape(reason));
    }
    Ok(if report.failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
