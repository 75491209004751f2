//! What the chain is given rather than reaches for: the clock, the upstream, the hook runner, the
//! tool pins and the audit sink. The daemon's real collaborators implement these; the chain's
//! tests implement them in memory.

use std::time::Duration;

use castellan_actors::AuditHandle;
use castellan_config::HookEvent;
use castellan_schema::audit::NewExecution;
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde_json::Value;

use super::Target;
use crate::hooks::{HookCall, HookOutcome};

/// The time of day, for `started_at`/`completed_at` and durations.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// How the surface's upstream ended one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Executed {
    /// The upstream answered: a result, or its own error object (JSON-RPC `error`).
    Answered(Result<Value, Value>),
    /// No answer within the target's timeout.
    Timeout(Duration),
    /// The client cancelled the request while it ran.
    Cancelled,
    /// The upstream failed (the connection broke, the process died); the message is for the client.
    Failed(String),
    /// The request is parked waiting for the client's input (a stateless MCP client asked for
    /// sampling or elicitation); this result goes to the client and the row is written when the
    /// request ends.
    Suspended(Value),
}

/// Runs the request on its target: an MCP server, a model provider, an agent.
pub trait Upstream: Sync {
    fn execute<'a>(&'a self, target: &'a Target, arguments: Value) -> BoxFuture<'a, Executed>;

    /// What the audit row stores as the output of an answered request, when not the whole answer:
    /// a listing whose every entry is published content (the skills catalog) is recorded by what
    /// it listed, not copied into each row. `None` (the default): the whole answer, capped.
    fn audited_output(&self, _answer: &Value) -> Option<String> {
        None
    }
}

/// Runs the profile's hook handlers for one event.
pub trait HookRunner: Sync {
    /// Whether any handler runs on `event`, so the chain can skip building its input.
    fn has(&self, event: HookEvent) -> bool;
    fn run<'a>(&'a self, call: &'a HookCall<'a>) -> BoxFuture<'a, HookOutcome>;
}

/// Tool pinning: whether a tool's current definition is refused (changed since approval, under
/// `server.tool_changes: block`).
pub trait PinCheck: Sync {
    fn is_blocked(&self, server: &str, tool: &str, definition_hash: &str) -> bool;
}

/// The approved definitions, judged under one snapshot's `tool_changes`.
pub struct SnapshotPins<'a> {
    pub pins: &'a crate::governance::tool_pins::ToolPins,
    pub mode: castellan_config::ToolChanges,
}

impl PinCheck for SnapshotPins<'_> {
    fn is_blocked(&self, server: &str, tool: &str, definition_hash: &str) -> bool {
        self.pins.is_blocked(self.mode, server, tool, definition_hash)
    }
}

/// Where rows go: committed durably before `record` returns.
pub trait AuditSink: Sync {
    /// False while the database is known to be down: nothing may run then.
    fn is_available(&self) -> bool;
    /// Commits the row; an error means it was not recorded.
    fn record(&self, row: NewExecution) -> BoxFuture<'_, Result<(), String>>;
}

impl AuditSink for AuditHandle {
    fn is_available(&self) -> bool {
        AuditHandle::is_available(self)
    }

    fn record(&self, row: NewExecution) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { AuditHandle::record(self, row).await.map(|_| ()).map_err(|error| error.to_string()) })
    }
}
