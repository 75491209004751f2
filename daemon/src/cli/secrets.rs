//! `castellan secrets`: a write-only store. Values come in on stdin, are sealed under the master key
//! before they reach the database, and are never printed back.

use std::io::Read;
use std::process::ExitCode;

use chrono::Utc;
use clap::Subcommand;
use zeroize::Zeroizing;

use super::terminal::{escape, table};
use super::{GlobalArgs, load_profile};
use crate::secrets::{load_existing_master_key, purpose};

/// The largest secret value accepted.
const MAX_VALUE_BYTES: usize = 64 * 1024;

#[derive(Subcommand, Debug)]
pub enum SecretsCommand {
    /// Store a secret; the value is read from stdin (one trailing newline is dropped).
    Set { name: String },
    /// List secret names (never values).
    List,
    /// Delete a secret.
    Rm { name: String },
}

pub async fn run(global: &GlobalArgs, command: SecretsCommand) -> Result<ExitCode, String> {
    let (profile, _) = load_profile(global)?;
    let db = super::database::open_existing(global, &profile).await?;
    match command {
        SecretsCommand::Set { name } => {
            check_name(&name)?;
            let mut raw = Zeroizing::new(Vec::new());
            std::io::stdin()
                .take(MAX_VALUE_BYTES as u64 + 1)
                .read_to_end(&mut raw)
                .map_err(|error| format!("reading the value from stdin: {error}"))?;
            if raw.len() > MAX_VALUE_BYTES {
                return Err(format!("a secret value is at most {MAX_VALUE_BYTES} bytes"));
            }
            let mut value: &[u8] = &raw;
            if let Some(stripped) = value.strip_suffix(b"\n") {
                value = stripped.strip_suffix(b"\r").unwrap_or(stripped);
            }
            if value.is_empty() {
                return Err(
                    "the value is empty: pipe it in, e.g. `printf %s \"$TOKEN\" | castellan secrets set NAME`".into()
                );
            }
            std::str::from_utf8(value).map_err(|_| "a secret value must be UTF-8 text".to_string())?;
            if value.len() < crate::redaction::MIN_SECRET_LEN {
                eprintln!(
                    "warning: values shorter than {} bytes are not redacted from tool results and logs",
                    crate::redaction::MIN_SECRET_LEN
                );
            }
            let master = load_existing_master_key(&profile).map_err(|error| error.to_string())?;
            let sealed = master.seal(&purpose(&name), value);
            castellan_schema::secrets::set(&db, &name, &sealed, Utc::now()).await.map_err(|error| error.to_string())?;
            println!(
                "stored secret {name}; a running daemon uses it for servers it starts from now on (within {}s)",
                crate::secrets::REFRESH_INTERVAL.as_secs()
            );
        }
        SecretsCommand::List => {
            let secrets = castellan_schema::secrets::list(&db).await.map_err(|error| error.to_string())?;
            let rows: Vec<Vec<String>> = secrets
                .iter()
                .map(|secret| {
                    vec![escape(&secret.name), secret.created_at.to_rfc3339(), secret.updated_at.to_rfc3339()]
                })
                .collect();
            print!("{}", table(&["NAME", "CREATED", "UPDATED"], &rows));
        }
        SecretsCommand::Rm { name } => {
            check_name(&name)?;
            if !castellan_schema::secrets::remove(&db, &name).await.map_err(|error| error.to_string())? {
                return Err(format!("no secret named '{name}'"));
            }
            println!("removed secret {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn check_name(name: &str) -> Result<(), String> {
    if name.len() <= 128 && castellan_config::is_secret_name(name) {
        Ok(())
    } else {
        Err("a secret name is 1 to 128 of letters, digits, `_`, `.` and `-`".into())
    }
}
