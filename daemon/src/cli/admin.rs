//! Admin commands that work on the profile's database whether or not the daemon runs.

use std::process::ExitCode;
use std::time::Duration;

use castellan_config::Tier;
use chrono::Utc;
use clap::Subcommand;
use sea_orm::DatabaseConnection;

use super::terminal::{escape, table};
use super::{GlobalArgs, load_profile};
use crate::identity::api_keys::generate_key;

#[derive(Subcommand, Debug)]
pub enum UsersCommand {
    /// Create a user.
    Add {
        name: String,
        #[arg(long)]
        tier: String,
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
    /// List users.
    List,
    /// Print a one-time link that lets the user enrol a passkey.
    Enrol {
        name: String,
        /// How long the link stays valid, such as 24h or 30m.
        #[arg(long, default_value = "24h")]
        expires: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create an API key for a user; the key is printed once.
    Create {
        #[arg(long)]
        user: String,
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Lifetime such as 90d, 12h, 30m.
        #[arg(long)]
        expires: Option<String>,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by its id.
    Revoke { id: String },
}

pub async fn migrate(global: &GlobalArgs) -> Result<ExitCode, String> {
    let (profile, _) = load_profile(global)?;
    super::database::open_or_create(&profile).await?;
    println!("migrations applied");
    Ok(ExitCode::SUCCESS)
}

/// Lifetime of the bootstrap admin's passkey enrolment link.
const BOOTSTRAP_ENROLMENT_TTL: Duration = Duration::from_secs(24 * 3600);

/// Stores a new one-time enrolment link for `user_id` and returns its URL.
pub async fn enrolment_link(
    db: &DatabaseConnection,
    public_url: &str,
    user_id: i64,
    lifetime: Duration,
) -> Result<String, String> {
    let token = crate::identity::credentials::generate(crate::identity::credentials::ENROLMENT_PREFIX);
    let now = Utc::now();
    let expires_at = now + chrono::Duration::from_std(lifetime).map_err(|_| "the lifetime is too long".to_string())?;
    castellan_schema::sessions::create_enrolment_link(
        db,
        &crate::identity::credentials::hash(&token),
        user_id,
        expires_at,
        now,
    )
    .await
    .map_err(|error| error.to_string())?;
    Ok(format!("{}/enrol?token={token}", public_url.trim_end_matches('/')))
}

/// On the first start against an empty database: the `admin` user, an API key and a passkey
/// enrolment link, each printed once.
pub async fn bootstrap_admin(db: &DatabaseConnection, public_url: &str) -> Result<(), String> {
    let users = castellan_schema::users::count(db).await.map_err(|error| error.to_string())?;
    if users > 0 {
        return Ok(());
    }
    let first = castellan_schema::meta::set_if_absent(db, "bootstrap_admin", &Utc::now().to_rfc3339())
        .await
        .map_err(|error| error.to_string())?;
    if !first {
        return Ok(());
    }
    let now = Utc::now();
    let user = castellan_schema::users::create(db, "admin", Tier::Admin.as_str(), &[], now)
        .await
        .map_err(|error| error.to_string())?;
    let key = generate_key();
    castellan_schema::api_keys::insert(db, user.id, &key.public_id, &key.hash, &[], None, now)
        .await
        .map_err(|error| error.to_string())?;
    eprintln!("castellan: created user 'admin'. Bootstrap admin API key (shown once, store it now):");
    eprintln!("{}", key.secret);
    let link = enrolment_link(db, public_url, user.id, BOOTSTRAP_ENROLMENT_TTL).await?;
    eprintln!("castellan: passkey enrolment link for 'admin' (one use, valid 24h):");
    eprintln!("{link}");
    Ok(())
}

pub async fn users(global: &GlobalArgs, command: UsersCommand) -> Result<ExitCode, String> {
    let (profile, _) = load_profile(global)?;
    let db = super::database::open_existing(global, &profile).await?;
    match command {
        UsersCommand::Add { name, tier, scopes } => {
            let tier = Tier::parse(&tier)
                .ok_or_else(|| format!("unknown tier '{tier}': use admin, user, service, a2a, mcp or anonymous"))?;
            if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
                return Err("a user name is 1 to 128 printable characters".into());
            }
            let user = castellan_schema::users::create(&db, &name, tier.as_str(), &scopes, Utc::now()).await.map_err(
                |error| match error {
                    castellan_schema::DbError::AlreadyExists(_) => format!("user '{name}' already exists"),
                    other => other.to_string(),
                },
            )?;
            println!("created user {} (id {}, tier {})", user.name, user.id, user.tier);
        }
        UsersCommand::Enrol { name, expires } => {
            let user = castellan_schema::users::find_by_name(&db, &name)
                .await
                .map_err(|error| error.to_string())?
                .ok_or_else(|| format!("no user named '{name}'"))?;
            let lifetime = parse_lifetime(&expires)
                .ok_or_else(|| format!("cannot read --expires '{expires}': use e.g. 24h, 30m"))?;
            let link = enrolment_link(&db, &profile.server.public_url, user.id, lifetime).await?;
            eprintln!("passkey enrolment link for {} (one use):", user.name);
            println!("{link}");
        }
        UsersCommand::List => {
            let users = castellan_schema::users::list(&db).await.map_err(|error| error.to_string())?;
            let rows: Vec<Vec<String>> = users
                .iter()
                .map(|user| {
                    vec![
                        user.id.to_string(),
                        escape(&user.name),
                        user.tier.clone(),
                        user.disabled.to_string(),
                        escape(&user.scopes.join(",")),
                    ]
                })
                .collect();
            print!("{}", table(&["ID", "NAME", "TIER", "DISABLED", "SCOPES"], &rows));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn keys(global: &GlobalArgs, command: KeysCommand) -> Result<ExitCode, String> {
    let (profile, _) = load_profile(global)?;
    let db = super::database::open_existing(global, &profile).await?;
    match command {
        KeysCommand::Create { user, scopes, expires } => {
            let owner = castellan_schema::users::find_by_name(&db, &user)
                .await
                .map_err(|error| error.to_string())?
                .ok_or_else(|| format!("no user named '{user}'"))?;
            let now = Utc::now();
            let expires_at = match expires {
                Some(text) => {
                    let lifetime = parse_lifetime(&text)
                        .ok_or_else(|| format!("cannot read --expires '{text}': use e.g. 90d, 12h, 30m"))?;
                    Some(now + chrono::Duration::from_std(lifetime).map_err(|_| "--expires is too long".to_string())?)
                }
                None => None,
            };
            let key = generate_key();
            castellan_schema::api_keys::insert(&db, owner.id, &key.public_id, &key.hash, &scopes, expires_at, now)
                .await
                .map_err(|error| error.to_string())?;
            eprintln!("created key {} for {}; it is shown once:", key.public_id, owner.name);
            println!("{}", key.secret);
        }
        KeysCommand::List => {
            let keys = castellan_schema::api_keys::list(&db).await.map_err(|error| error.to_string())?;
            let rows: Vec<Vec<String>> = keys
                .iter()
                .map(|(key, owner)| {
                    vec![
                        key.public_id.clone(),
                        escape(&owner.name),
                        key.created_at.to_rfc3339(),
                        key.expires_at.map(|at| at.to_rfc3339()).unwrap_or_else(|| "never".into()),
                        key.revoked_at.map(|at| at.to_rfc3339()).unwrap_or_else(|| "-".into()),
                        escape(&key.scopes.join(",")),
                    ]
                })
                .collect();
            print!("{}", table(&["ID", "USER", "CREATED", "EXPIRES", "REVOKED", "SCOPES"], &rows));
        }
        KeysCommand::Revoke { id } => {
            if !castellan_schema::api_keys::revoke(&db, &id, Utc::now()).await.map_err(|error| error.to_string())? {
                return Err(format!("no active key with id '{id}'"));
            }
            println!(
                "revoked {id} (a running daemon stops accepting it within {}s)",
                crate::identity::KEY_CACHE_TTL.as_secs()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `90d`, `12h`, `30m`, `45s`.
pub(super) fn parse_lifetime(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => number,
        "m" => number.checked_mul(60)?,
        "h" => number.checked_mul(3600)?,
        "d" => number.checked_mul(86_400)?,
        _ => return None,
    };
    (seconds > 0).then(|| Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_parse_and_garbage_does_not() {
        assert_eq!(parse_lifetime("90d"), Some(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_lifetime("30m"), Some(Duration::from_secs(1800)));
        for bad in ["", "d", "10", "0h", "5y", "-1d", "99999999999999999999d"] {
            assert_eq!(parse_lifetime(bad), None, "{bad:?}");
        }
    }
}
