//! Which database a command opens, and whether it may create one. `serve` and `migrate` create
//! the database when it is missing (a SQLite file in a 0700 directory, mode 0600); every admin
//! command opens only a database that exists and that migrations have run on, and otherwise
//! says where it looked and how to point it elsewhere. An admin command run from the wrong
//! directory therefore fails loudly instead of reading (or writing) a new, empty database.

use std::path::{Path, PathBuf};

use castellan_config::Profile;
use castellan_schema::{DbError, MigratorTrait};
use sea_orm::DatabaseConnection;

use super::GlobalArgs;

/// For `serve` and `migrate`: connects (creating a missing SQLite file and its directory) and
/// applies the migrations.
pub async fn open_or_create(profile: &Profile) -> Result<DatabaseConnection, String> {
    let url = &profile.database.url;
    let db = castellan_schema::connect(url).await.map_err(|error| connect_failed(url, &error))?;
    castellan_schema::Migrator::up(&db, None)
        .await
        .map_err(|error| format!("database {}: migrations failed: {error}", castellan_schema::redact_url(url)))?;
    Ok(db)
}

/// For admin commands: opens the database the profile names, which must exist and hold
/// Castellan's tables; applies migrations a newer binary brings. Never creates a database.
pub async fn open_existing(global: &GlobalArgs, profile: &Profile) -> Result<DatabaseConnection, String> {
    let url = &profile.database.url;
    let db = match castellan_schema::connect_existing(url).await {
        Ok(db) => db,
        Err(DbError::NotFound(_)) => return Err(no_database(global, url, "there is no such file")),
        Err(error) => return Err(connect_failed(url, &error)),
    };
    let initialised = castellan_schema::has_castellan_schema(&db).await.map_err(|error| connect_failed(url, &error))?;
    if !initialised {
        let _ = db.close().await;
        return Err(no_database(global, url, "it holds no Castellan tables"));
    }
    castellan_schema::Migrator::up(&db, None)
        .await
        .map_err(|error| format!("database {}: migrations failed: {error}", castellan_schema::redact_url(url)))?;
    Ok(db)
}

fn connect_failed(url: &str, error: &DbError) -> String {
    let message = error.to_string();
    let shown = castellan_schema::redact_url(url);
    match castellan_schema::sqlite_file(url) {
        // SQLite errors name the file already.
        Ok(Some(path)) if message.contains(&path.display().to_string()) => message,
        _ => format!("database {shown}: {message}"),
    }
}

/// The one-line refusal: where we looked (an absolute path for a SQLite file), why that is not a
/// database, where the location came from, and the three ways to point elsewhere.
fn no_database(global: &GlobalArgs, url: &str, why: &str) -> String {
    let location = match castellan_schema::sqlite_file(url) {
        Ok(Some(path)) => absolute(&path).display().to_string(),
        _ => castellan_schema::redact_url(url),
    };
    format!(
        "no Castellan database at {location} ({why}; the location comes from {}); admin commands never create one: \
         run this where the daemon runs, or point at the daemon's database with --profile FILE, \
         CASTELLAN_DATABASE_URL=URL or CASTELLAN_DATA_DIR=DIR (`castellan serve` or `castellan migrate` creates a new one)",
        origin(global)
    )
}

/// Where `database.url` came from, for the refusal message.
fn origin(global: &GlobalArgs) -> String {
    if std::env::var("CASTELLAN_DATABASE_URL").is_ok_and(|url| !url.is_empty()) {
        return "CASTELLAN_DATABASE_URL".to_string();
    }
    match &global.profile {
        Some(path) => format!("database.url in {}", path.display()),
        None => match std::env::var("CASTELLAN_DATA_DIR") {
            Ok(dir) if !dir.is_empty() => "the embedded default profile and CASTELLAN_DATA_DIR".to_string(),
            _ => "the embedded default profile: ./castellan-data in the working directory".to_string(),
        },
    }
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    std::env::current_dir().map(|cwd| cwd.join(path)).unwrap_or_else(|_| path.to_path_buf())
}
