//! The governed chain: the one path every governed request takes, whatever surface it came in on.
//!
//! A surface (MCP; the AI gateway through [`ModelChain`], whose steps are the same with budgets
//! and a row written before the request goes upstream; A2A and extension routes next) is a thin adapter: it
//! authenticates the caller into a `Principal` before it reads the body, parses its wire format
//! into a [`Request`] and a [`Resolution`], hands both to [`Chain::govern`] with its [`Upstream`],
//! and renders the [`Outcome`] back in its own wire format, in one mapping per surface. The
//! chain knows no HTTP and no JSON-RPC; the clock, the hook runner, the pins, the upstream and
//! the audit sink are parameters, so it is tested table-driven without sockets or processes
//! (`tests.rs`).
//!
//! [`STEPS`] is the order of the steps; ARCHITECTURE.md lists the same order and a test holds
//! the two together.

pub mod budget_ledger;
mod chain;
mod model_call;
mod outcome;
mod ports;
pub mod rate_limit;
mod snapshot;
#[cfg(test)]
mod tests;
pub mod token_limit;
pub mod tool_pins;

pub use chain::{Chain, HookIdentity, RbacTarget, Request, Resolution, Target};
pub use model_call::{
    AdmittedCall, AiRequestSink, Ending, MODEL_STEPS, ModelCallServices, ModelChain, ModelRefusal, ModelRequest,
    ModelResolution, ModelTarget, SpendSource, usd,
};
pub use outcome::{Governed, Outcome};
pub use ports::{AuditSink, Clock, Executed, HookRunner, PinCheck, SnapshotPins, SystemClock, Upstream};
pub use snapshot::{Policies, Snapshot, SnapshotHooks};

/// The steps of the chain, in the order they run. Step 1 runs in the surface (before the body is
/// read); the others in [`Chain::govern`]. A step that refuses ends the request with an audit row.
pub const STEPS: [&str; 11] = [
    "authenticate",
    "resolve",
    "rate_limit",
    "rbac",
    "pin",
    "pre_hooks",
    "audit_health",
    "execute",
    "redact",
    "post_hooks",
    "audit",
];
