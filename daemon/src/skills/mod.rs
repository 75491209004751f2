//! The skills registry in the daemon: publishing checked folders into the database
//! ([`publish`]), the in-memory catalog every surface reads ([`catalog`]), the folders of
//! `skills.dirs` kept published ([`watch`]), archives ([`archive`]) and the sync client ([`sync`]).
//!
//! The surfaces are thin adapters over the governed chain: MCP (`mcp/gateway/skills.rs`), the API
//! and the marketplace (`api.rs`). Each states its request as kind `skill` with the RBAC target
//! [`crate::governance::RbacTarget::Skill`]; every fetch of a skill's content is a row in
//! `skill_fetches` and in the audit trail before the answer leaves.
//!
//! Invariants:
//! - what is served is what was published: a version's files are immutable and content-addressed,
//!   and a client can check each file's sha256 and the whole digest;
//! - with `skills.signing_keys` set, a version is published only with a valid signature by one of
//!   them, and only versions signed by a key listed now are served (removing a key withdraws what
//!   it signed);
//! - a caller sees and fetches only the skills RBAC allows to its tier; a yanked version is never
//!   listed and never the latest.

pub mod api;
pub mod archive;
pub mod catalog;
pub mod publish;
pub mod sync;
pub mod uri;
pub mod watch;
pub mod zip;

pub use catalog::{CatalogEntry, SkillCatalog};

/// The server name skill requests carry in the chain and in audit rows.
pub const SKILLS_SERVER: &str = "skills";
