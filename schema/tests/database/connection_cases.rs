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
    for table in ["users", "api_keys", "mcp_tool_executions", "castellan_meta"] {
        database.execute(&format!("SELECT COUNT(*) FROM {table}")).await;
    }
}
