//! Schema migrations. One schema for SQLite and PostgreSQL; each migration runs in a
//! transaction on both (SQLite DDL is transactional), so a failed start leaves no half schema.

use sea_orm::DatabaseConnection;
use sea_orm_migration::{MigrationTrait, MigratorTrait};

use crate::error::{DbError, DbResult};

mod m20260101_000001_initial;

/// Every migration, oldest first.
pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20260101_000001_initial::Migration)]
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
