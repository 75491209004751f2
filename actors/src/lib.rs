//! The actors that own Castellan's long-lived state, and the plain types the request path reads.
//!
//! Actors own state that changes (child processes, the policy snapshot, the audit chain); request
//! handlers read published snapshots and only wait on an actor when they must (the audit commit).

pub mod ai_request_writer;
pub mod audit_writer;
pub mod child_output;
mod database_health;
pub mod event_bus;
pub mod health_monitor;
pub mod http_client;
pub mod job_schedule;
pub mod jsonrpc;
pub mod mcp_server;
pub mod metrics;
pub mod policy;
pub mod port_allocator;
pub mod reconciler;
pub mod registry;
pub mod spawn;
pub mod upstream;
mod writer_thread;

pub use ai_request_writer::{AiRequestWriter, AiRequestsHandle};
pub use audit_writer::{AuditHandle, AuditWriter};
pub use event_bus::{Event, EventBus};
pub use metrics::Metrics;
pub use policy::{Decision, PolicySnapshot};
pub use registry::{LiveServer, Registry};
