//! Castellan's database: connecting, migrating, and the plain async functions over its tables.
//!
//! One schema serves SQLite (the default, a file next to the daemon) and PostgreSQL. The crate
//! knows nothing of HTTP; callers get row structs and a [`DbError`] that tells "database
//! down" (fail closed) apart from "already exists" and "not found".
//!
//! Invariants:
//! - every timestamp written is truncated to microseconds, so SQLite and PostgreSQL return
//!   exactly what was written and audit hashes recompute identically on both;
//! - the audit trail in `mcp_tool_executions` is a hash chain (see [`audit`]); rows are only
//!   appended through [`audit::insert_batch`], one transaction per batch, and only deleted by
//!   [`audit::prune`], a prefix at a time under a signed checkpoint;
//! - single-use secrets (authorization codes, refresh tokens, flow states, enrolment links) are
//!   spent by one conditional statement whose affected-row count picks the one winner, never by
//!   a read followed by a write;
//! - time is a parameter: no function here reads the clock.

pub mod ai_requests;
pub mod api_keys;
pub mod audit;
mod connection;
pub mod entity;
mod error;
pub mod hook_events;
pub mod jobs;
pub mod meta;
mod migration;
pub mod oauth;
pub mod retention;
mod scopes;
pub mod secrets;
pub mod sessions;
pub mod skills;
mod sqlite_direct;
mod tail;
mod time;
pub mod tool_pins;
pub mod users;
pub mod webauthn;

pub use connection::{
    connect, connect_existing, create_private_directory, create_private_file, has_castellan_schema, ping, redact_url,
    sqlite_file,
};
pub use error::{DbError, DbResult};
pub use migration::{Migrator, install_extension_migrations, migrate};
pub use sea_orm::DatabaseConnection;
pub use sea_orm_migration::MigratorTrait;
pub use time::truncate_to_micros;

/// Every tier name the `users.tier` column may hold, highest first.
pub const TIERS: [&str; 6] = ["admin", "user", "service", "a2a", "mcp", "anonymous"];
