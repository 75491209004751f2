//! Applying an import: the users in one database transaction, the skills each published in the
//! store's own transaction (idempotent: the same content again is a no-op), and the profile file
//! replaced atomically.

use std::io::Write;
use std::path::Path;

use castellan_schema::entity::users as entity;
use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};

use super::read::{SkillFolder, UserFile};

/// Creates the users that are missing and updates the tier, scopes and disabled flag of the others,
/// all in one transaction: either every user file is applied or none is. Returns how many rows
/// changed.
#[tracing::instrument(skip_all, fields(users = users.len()))]
pub async fn apply_users(db: &DatabaseConnection, users: &[UserFile], now: DateTime<Utc>) -> Result<usize, String> {
    let failed = |error: sea_orm::DbErr| format!("users: {error}; no user was changed");
    // BEGIN IMMEDIATE on SQLite: the write lock up front, so a running daemon's writes queue behind
    // it within the busy timeout instead of failing the upgrade from a read lock.
    let transaction = db
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        })
        .await
        .map_err(failed)?;
    let mut changed = 0;
    for file in users {
        let user = &file.user;
        let scopes = serde_json::to_string(&user.scopes).map_err(|error| format!("user {:?}: {error}", user.name))?;
        let tier = user.tier.as_str();
        let existing = entity::Entity::find()
            .filter(entity::Column::Name.eq(&user.name))
            .one(&transaction)
            .await
            .map_err(failed)?;
        match existing {
            None => {
                entity::ActiveModel {
                    id: ActiveValue::NotSet,
                    name: ActiveValue::Set(user.name.clone()),
                    tier: ActiveValue::Set(tier.to_string()),
                    scopes: ActiveValue::Set(scopes),
                    disabled: ActiveValue::Set(user.disabled),
                    created_at: ActiveValue::Set(castellan_schema::truncate_to_micros(now)),
                }
                .insert(&transaction)
                .await
                .map_err(failed)?;
                changed += 1;
            }
            Some(row) => {
                let same_scopes =
                    serde_json::from_str::<Vec<String>>(&row.scopes).is_ok_and(|stored| stored == user.scopes);
                if row.tier == tier && same_scopes && row.disabled == user.disabled {
                    continue;
                }
                entity::Entity::update_many()
                    .col_expr(entity::Column::Tier, Expr::value(tier))
                    .col_expr(entity::Column::Scopes, Expr::value(scopes))
                    .col_expr(entity::Column::Disabled, Expr::value(user.disabled))
                    .filter(entity::Column::Id.eq(row.id))
                    .exec(&transaction)
                    .await
                    .map_err(failed)?;
                changed += 1;
            }
        }
    }
    transaction.commit().await.map_err(failed)?;
    Ok(changed)
}

/// Publishes every skill folder. The store runs each publish in its own transaction (it cannot
/// join an outer one), so a failure part-way leaves the skills before it published; running the
/// import again publishes the rest and finds those unchanged.
pub async fn publish_skills(
    db: &DatabaseConnection,
    skills: &[SkillFolder],
    trusted: &[VerifyingKey],
) -> Result<(), String> {
    for folder in skills {
        crate::skills::publish::publish_bundle(db, &folder.bundle, trusted, "cli")
            .await
            .map_err(|refusal| format!("{}: not published: {refusal}", folder.label))?;
    }
    Ok(())
}

/// Replaces the file at `path` (through a link, the file it points to) with `text`: written to a
/// temporary file in the same folder, flushed, given the old file's permissions, then renamed over
/// it, so a reader (the daemon's reload) sees the old text or the new, never a mix.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    let shown = path.display();
    let real = std::fs::canonicalize(path).map_err(|error| format!("cannot resolve {shown}: {error}"))?;
    let (Some(folder), Some(name)) = (real.parent(), real.file_name()) else {
        return Err(format!("{shown} is not a file"));
    };
    let temporary = folder.join(format!(".{}.import-{}.tmp", name.to_string_lossy(), std::process::id()));
    let permissions = std::fs::metadata(&real).map_err(|error| format!("cannot read {shown}: {error}"))?.permissions();
    let write = || -> std::io::Result<()> {
        let _ = std::fs::remove_file(&temporary);
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&temporary)?;
        file.set_permissions(permissions.clone())?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, &real)?;
        // The rename itself is durable once the folder is flushed.
        std::fs::File::open(folder)?.sync_all()
    };
    write().map_err(|error| {
        let _ = std::fs::remove_file(&temporary);
        format!("cannot write {shown}: {error}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_is_replaced_whole_with_its_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let folder = std::env::temp_dir().join(format!("castellan-apply-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&folder).unwrap();
        let path = folder.join("profile.yaml");
        std::fs::write(&path, "old\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::symlink(&path, folder.join("link.yaml")).unwrap();
        write_atomically(&folder.join("link.yaml"), "new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
        assert!(std::fs::symlink_metadata(folder.join("link.yaml")).unwrap().file_type().is_symlink());
        let left: Vec<_> = std::fs::read_dir(&folder).unwrap().map(|entry| entry.unwrap().file_name()).collect();
        assert_eq!(left.len(), 2, "no temporary file left: {left:?}");
        std::fs::remove_dir_all(&folder).unwrap();
    }
}
