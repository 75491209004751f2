//! Connection settings and migrations.

use castellan_schema::MigratorTrait;
use sea_orm::{ConnectionTrait, DatabaseTransaction, Statement, TransactionTrait};

use crate::support::{Backend, TestDatabase};

async fn query_text(transaction: &DatabaseTransaction, sql: &str) -> String {
    let backend = transaction.get_database_backend();
    let row = transaction
        .query_one_raw(Statement::from_string(backend, sql.to_owned()))
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
        .unwrap_or_else(|| panic!("{sql} returned no row"));
    match row.try_get_by_index::<String>(0) {
        Ok(text) => text,
        Err(_) => row.try_get_by_index::<i64>(0).unwrap_or_else(|error| panic!("{sql}: {error}")).to_string(),
    }
}

/// Every pooled connection carries the durability settings, not only the first one: hold
/// several transactions open at once so each runs on its own connection.
pub async fn connections_are_durable(database: TestDatabase) {
    let db = match database.backend {
        Backend::Sqlite => database.db.clone(),
        Backend::Postgres => {
            // Make the database default the unsafe one; our sessions must override it.
            let name = database.url.rsplit('/').next().expect("database name").to_owned();
            let admin = sea_orm::Database::connect(database.admin_url.clone().expect("admin url"))
                .await
                .expect("connect admin");
            admin
                .execute_unprepared(&format!("ALTER DATABASE {name} SET synchronous_commit = off"))
                .await
                .expect("alter database");
            let _ = admin.close().await;
            castellan_schema::connect(&database.url).await.expect("reconnect")
        }
    };
    let mut transactions = Vec::new();
    for _ in 0..3 {
        transactions.push(db.begin().await.expect("begin"));
    }
    for (index, transaction) in transactions.iter().enumerate() {
        let expectations: &[(&str, &str)] = match database.backend {
            Backend::Sqlite => &[
                ("PRAGMA journal_mode", "wal"),
                ("PRAGMA synchronous", "2"),
                ("PRAGMA foreign_keys", "1"),
                ("PRAGMA busy_timeout", "5000"),
            ],
            Backend::Postgres => &[("SHOW synchronous_commit", "on")],
        };
        for (sql, expected) in expectations {
            assert_eq!(query_text(transaction, sql).await, *expected, "{sql} on pooled connection {index}");
        }
    }
    for transaction in transactions {
        transaction.rollback().await.expect("rollback");
    }
    castellan_schema::ping(&db).await.expect("ping");
}

pub async fn migrations_apply_twice_idempotently(database: TestDatabase) {
    castellan_schema::migrate(&database.db).await.expect("second run");
    castellan_schema::migrate(&database.db).await.expect("third run");
    let pending = castellan_schema::Migrator::get_pending_migrations(&database.db).await.expect("pending migrations");
    assert!(pending.is_empty(), "no migration left pending");
    for table in [
        "users",
        "api_keys",
        "mcp_tool_executions",
        "castellan_meta",
        "skills",
        "skill_versions",
        "skill_blobs",
        "skill_files",
        "skill_fetches",
    ] {
        database.execute(&format!("SELECT COUNT(*) FROM {table}")).await;
    }
}

/// `connect_existing` never creates: a missing SQLite file is NotFound (and its directory is not
/// made), an empty PostgreSQL database has no Castellan schema; the migrated test database has.
/// `connect` creates the SQLite directory 0700 and the file 0600.
pub async fn connect_existing_creates_nothing(database: TestDatabase) {
    assert!(castellan_schema::has_castellan_schema(&database.db).await.expect("ask"), "the test database is migrated");
    let reopened = castellan_schema::connect_existing(&database.url).await.expect("an existing database opens");
    assert!(castellan_schema::has_castellan_schema(&reopened).await.expect("ask"), "and is seen as Castellan's");
    let _ = reopened.close().await;
    match database.backend {
        Backend::Sqlite => {
            let directory =
                std::env::temp_dir().join(format!("castellan-existing-{}", crate::support::unique_suffix()));
            let url = format!("sqlite://{}", directory.join("data/castellan.db").display());
            let error = castellan_schema::connect_existing(&url).await.expect_err("no file, no database");
            assert!(matches!(error, castellan_schema::DbError::NotFound(_)), "{error}");
            assert!(error.to_string().contains("data/castellan.db"), "the path is named: {error}");
            assert!(!directory.exists(), "nothing was created");

            let created = castellan_schema::connect(&url).await.expect("connect creates");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode =
                    |path: std::path::PathBuf| std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
                assert_eq!(mode(directory.join("data")), 0o700, "the database directory");
                assert_eq!(mode(directory.clone()), 0o700, "a created ancestor");
                assert_eq!(mode(directory.join("data/castellan.db")), 0o600, "the database file");
            }
            assert!(
                !castellan_schema::has_castellan_schema(&created).await.expect("ask"),
                "a new file is not migrated"
            );
            let _ = created.close().await;
            let _ = std::fs::remove_dir_all(&directory);
        }
        Backend::Postgres => {
            let admin_url = database.admin_url.clone().expect("admin url");
            let name = format!("castellan_empty_{}", crate::support::unique_suffix());
            let admin = sea_orm::Database::connect(admin_url.as_str()).await.expect("connect admin");
            admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create");
            let url = crate::support::database_url(&admin_url, &name);
            let empty = castellan_schema::connect_existing(&url).await.expect("an empty database opens");
            let found = castellan_schema::has_castellan_schema(&empty).await.expect("ask");
            let _ = empty.close().await;
            admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.expect("drop");
            let _ = admin.close().await;
            assert!(!found, "an empty PostgreSQL database is not a Castellan database");
        }
    }
}
