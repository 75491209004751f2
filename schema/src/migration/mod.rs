//! Schema migrations. One schema for SQLite and PostgreSQL; each migration runs in a
//! transaction on both (SQLite DDL is transactional), so a failed start leaves no half schema.

use sea_orm::DatabaseConnection;
use sea_orm_migration::prelude::{Index, IndexCreateStatement, IntoIden, IntoIndexColumn};
use sea_orm_migration::{MigrationTrait, MigratorTrait};

use crate::error::{DbError, DbResult};

mod m20260101_000001_initial;
mod m20261125_000002_identity;
mod m20261126_000003_secrets;
mod m20261126_000004_tool_pins;
mod m20261126_000005_hook_events;
mod m20261202_000006_execution_kind;
mod m20261203_000007_ai_requests;
mod m20261207_000008_jobs;
mod m20261208_000009_skills;

/// The extensions' migrations, installed once by the daemon (extensions register at compile time,
/// so the set is a property of the binary).
static EXTENSION_MIGRATIONS: std::sync::OnceLock<ExtensionMigrations> = std::sync::OnceLock::new();

/// What produces the extensions' migrations (fresh boxes each time the migrator asks).
pub type ExtensionMigrations = fn() -> Vec<Box<dyn MigrationTrait>>;

/// Makes [`migrate`] apply `migrations()` after the built-in ones. Only the first call counts.
pub fn install_extension_migrations(migrations: ExtensionMigrations) {
    let _ = EXTENSION_MIGRATIONS.set(migrations);
}

/// Every migration, oldest first, then the extensions' in their start order.
pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut migrations: Vec<Box<dyn MigrationTrait>> = vec![
            Box::new(m20260101_000001_initial::Migration),
            Box::new(m20261125_000002_identity::Migration),
            Box::new(m20261126_000003_secrets::Migration),
            Box::new(m20261126_000004_tool_pins::Migration),
            Box::new(m20261126_000005_hook_events::Migration),
            Box::new(m20261202_000006_execution_kind::Migration),
            Box::new(m20261203_000007_ai_requests::Migration),
            Box::new(m20261207_000008_jobs::Migration),
            Box::new(m20261208_000009_skills::Migration),
        ];
        if let Some(extensions) = EXTENSION_MIGRATIONS.get() {
            migrations.extend(extensions());
        }
        migrations
    }
}

/// Applies every pending migration; a no-op when the schema is current.
#[tracing::instrument(skip_all)]
pub async fn migrate(db: &DatabaseConnection) -> DbResult<()> {
    Migrator::up(db, None).await.map_err(|error| match DbError::from(error) {
        DbError::Unavailable(message) => DbError::Unavailable(message),
        other => DbError::Other(format!("applying migrations failed: {other}")),
    })
}

/// A named index on `columns`, created only when missing.
pub(crate) fn index<T, C, const N: usize>(name: &str, table: T, columns: [C; N]) -> IndexCreateStatement
where
    T: IntoIden + 'static,
    C: IntoIndexColumn,
{
    let mut statement = Index::create();
    statement.name(name).table(table).if_not_exists();
    for column in columns {
        statement.col(column);
    }
    statement
}

/// [`index`], unique.
pub(crate) fn unique_index<T, C, const N: usize>(name: &str, table: T, columns: [C; N]) -> IndexCreateStatement
where
    T: IntoIden + 'static,
    C: IntoIndexColumn,
{
    let mut statement = index(name, table, columns);
    statement.unique();
    statement
}
