//! The `Extension` trait: integrators' code compiled into their own Castellan binary.
//!
//! An integrator's binary is `fn main() -> std::process::ExitCode { castellan::run() }` plus crates
//! that implement [`Extension`] and register it with [`register_extension!`]. Registration happens
//! at compile time (the `inventory` crate collects the entries at link time); there is no dynamic
//! loading. At start the daemon calls [`discover`], which orders the extensions and refuses a
//! duplicate id, a missing dependency or a dependency cycle before anything starts.

use std::sync::Arc;

mod contributions;
mod registry;

pub use contributions::{
    Access, Asset, CallContext, Caller, ConfigureRoutes, Job, JobContext, LlmProvider, PagePrerenderer, ProviderKind,
    Role, Routes, Schedule, SectionProblem, TableSchema, Tier, ToolProvider,
};
pub use registry::{Ordered, RegistryError, discover, order};

/// The crates an extension's code is written against, re-exported so its versions match the daemon's.
pub use {actix_web, futures_util, sea_orm, sea_orm_migration, serde_json};

/// Re-exported for [`register_extension!`]; not part of the API.
#[doc(hidden)]
pub use inventory as __inventory;

/// What every extension declares about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// The stable identifier: lowercase letters, digits and `-`, 1-64 characters. It names the
    /// extension's profile section, its routes (`/ext/{id}/`) and its jobs; two extensions with the
    /// same id refuse to start.
    pub id: &'static str,
    /// What operators read in logs and `castellan extensions`.
    pub name: &'static str,
    /// The extension's own version (semantic versioning by convention).
    pub version: &'static str,
}

/// The default priority: extensions without an opinion start in id order after those with one.
pub const DEFAULT_PRIORITY: i32 = 100;

/// Integrators' code. Only [`Extension::metadata`] is required; every other method has a default
/// that contributes nothing.
pub trait Extension: Send + Sync + 'static {
    /// The extension's id, name and version.
    fn metadata(&self) -> Metadata;

    /// Ids of extensions that must start before this one. A missing one stops start-up.
    fn dependencies(&self) -> &'static [&'static str] {
        &[]
    }

    /// Start order among extensions whose dependencies allow either order: lower first, then by id.
    fn priority(&self) -> i32 {
        DEFAULT_PRIORITY
    }

    /// HTTP routes under `/ext/{id}/`, behind the governed chain.
    fn router(&self) -> Option<Routes> {
        None
    }

    /// The tables this extension owns (created by [`Extension::migrations`]).
    fn schemas(&self) -> Vec<TableSchema> {
        Vec::new()
    }

    /// Migrations for the extension's tables, applied in order after the built-in ones on SQLite and
    /// PostgreSQL. Each migration's name must start with `{id}_`, so no two extensions collide.
    fn migrations(&self) -> Vec<Box<dyn sea_orm_migration::MigrationTrait>> {
        Vec::new()
    }

    /// Scheduled jobs, named `{id}.{job}` in `castellan jobs list`.
    fn jobs(&self) -> Vec<Arc<dyn Job>> {
        Vec::new()
    }

    /// Provider kinds for the AI gateway.
    fn llm_providers(&self) -> Vec<Arc<dyn LlmProvider>> {
        Vec::new()
    }

    /// Tools served in-process on `/mcp`.
    fn tool_providers(&self) -> Vec<Arc<dyn ToolProvider>> {
        Vec::new()
    }

    /// Pages rendered at start and served at `/ext/{id}/pages/`.
    fn page_prerenderers(&self) -> Vec<Arc<dyn PagePrerenderer>> {
        Vec::new()
    }

    /// The top-level profile key of the extension's own section (by convention its id).
    fn config_prefix(&self) -> Option<&'static str> {
        None
    }

    /// Checks the extension's section (as JSON); each problem names a path inside the section and is
    /// reported at that key's `FILE:LINE:COL` by `castellan profile check`, at start and on reload.
    fn validate_config(&self, _section: &serde_json::Value) -> Vec<SectionProblem> {
        Vec::new()
    }

    /// Roles the extension defines for its own checks.
    fn roles(&self) -> Vec<Role> {
        Vec::new()
    }

    /// Static files served at `/ext/{id}/assets/`.
    fn required_assets(&self) -> Vec<Asset> {
        Vec::new()
    }
}

/// One registered extension, as `register_extension!` records it.
#[doc(hidden)]
pub struct Registration {
    pub make: fn() -> Box<dyn Extension>,
}

inventory::collect!(Registration);

/// Registers an extension at compile time. The argument is an expression that builds it, evaluated
/// once per [`discover`] call:
///
/// ```
/// struct Tickets;
/// impl castellan_extension::Extension for Tickets {
///     fn metadata(&self) -> castellan_extension::Metadata {
///         castellan_extension::Metadata { id: "tickets", name: "Tickets", version: "1.0.0" }
///     }
/// }
/// castellan_extension::register_extension!(Tickets);
///
/// # fn main() {
/// let ids: Vec<_> = castellan_extension::registered().iter().map(|extension| extension.metadata().id).collect();
/// assert_eq!(ids, ["tickets"]);
/// # }
/// ```
#[macro_export]
macro_rules! register_extension {
    ($extension:expr) => {
        $crate::__inventory::submit! {
            $crate::Registration { make: || ::std::boxed::Box::new($extension) }
        }
    };
}

/// Every extension registered in this binary, in no particular order.
pub fn registered() -> Vec<Box<dyn Extension>> {
    inventory::iter::<Registration>.into_iter().map(|registration| (registration.make)()).collect()
}
