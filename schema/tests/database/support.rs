//! A fresh, migrated database per test, on either backend, cleaned up afterwards.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use castellan_schema::DatabaseConnection;
use chrono::{DateTime, TimeZone, Utc};
use sea_orm::ConnectionTrait;

pub const POSTGRES_URL_VARIABLE: &str = "CASTELLAN_TEST_POSTGRES_URL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// What a test case gets: a migrated database of its own.
pub struct TestDatabase {
    pub db: DatabaseConnection,
    pub url: String,
    pub backend: Backend,
    /// For PostgreSQL: the server URL the database was created through.
    pub admin_url: Option<String>,
}

impl TestDatabase {
    /// Runs one SQL statement as written.
    pub async fn execute(&self, sql: &str) -> u64 {
        self.db
            .execute_unprepared(sql)
            .await
            .unwrap_or_else(|error| panic!("executing {sql:?}: {error}"))
            .rows_affected()
    }
}

/// A random-enough suffix for database and directory names.
pub fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or_default(),
    );
    hasher.write_u32(std::process::id());
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("{:016x}", hasher.finish())
}

/// A fixed instant with sub-microsecond digits, so truncation is exercised.
pub fn instant(seconds_after_base: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 6, 7, 8, 9).single().expect("valid date")
        + chrono::TimeDelta::seconds(seconds_after_base)
        + chrono::TimeDelta::nanoseconds(123_456_789)
}

/// Creates a fresh database, runs `case` on it, and removes the database even when the case
/// panics (the panic is then re-raised).
pub async fn run<Case, Outcome>(backend: Backend, case: Case)
where
    Case: FnOnce(TestDatabase) -> Outcome + Send + 'static,
    Outcome: Future<Output = ()> + Send + 'static,
{
    match backend {
        Backend::Sqlite => run_on_sqlite(case).await,
        Backend::Postgres => match std::env::var(POSTGRES_URL_VARIABLE) {
            Ok(admin_url) if !admin_url.is_empty() => run_on_postgres(admin_url, case).await,
            _ => eprintln!(
                "skipping the PostgreSQL run: set {POSTGRES_URL_VARIABLE} \
                 (e.g. postgres://postgres@127.0.0.1:5432/postgres) to run it"
            ),
        },
    }
}

async fn run_on_sqlite<Case, Outcome>(case: Case)
where
    Case: FnOnce(TestDatabase) -> Outcome + Send + 'static,
    Outcome: Future<Output = ()> + Send + 'static,
{
    let directory: PathBuf = std::env::temp_dir().join(format!("castellan-schema-test-{}", unique_suffix()));
    let url = format!("sqlite://{}", directory.join("castellan.db").display());
    let db = castellan_schema::connect(&url).await.expect("connect to SQLite");
    castellan_schema::migrate(&db).await.expect("migrate SQLite");
    let outcome =
        tokio::spawn(case(TestDatabase { db: db.clone(), url, backend: Backend::Sqlite, admin_url: None })).await;
    let _ = db.close().await;
    let _ = std::fs::remove_dir_all(&directory);
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

async fn run_on_postgres<Case, Outcome>(admin_url: String, case: Case)
where
    Case: FnOnce(TestDatabase) -> Outcome + Send + 'static,
    Outcome: Future<Output = ()> + Send + 'static,
{
    let name = format!("castellan_test_{}", unique_suffix());
    let admin = sea_orm::Database::connect(admin_url.as_str()).await.expect("connect to the PostgreSQL server");
    admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create the test database");
    let url = database_url(&admin_url, &name);
    let test_admin_url = admin_url.clone();
    // Spawned so that a panic while connecting or migrating still reaches the DROP below.
    let outcome = tokio::spawn(async move {
        let db = castellan_schema::connect(&url).await.expect("connect to the test database");
        castellan_schema::migrate(&db).await.expect("migrate PostgreSQL");
        let outcome = tokio::spawn(case(TestDatabase {
            db: db.clone(),
            url,
            backend: Backend::Postgres,
            admin_url: Some(test_admin_url),
        }))
        .await;
        let _ = db.close().await;
        outcome
    })
    .await;
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .expect("drop the test database");
    let _ = admin.close().await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(error)) | Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

/// `admin_url` with its database name replaced by `name`.
pub fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let authority_start = base.find("://").map_or(0, |index| index + 3);
    let server = match base[authority_start..].find('/') {
        Some(index) => &base[..authority_start + index],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}
