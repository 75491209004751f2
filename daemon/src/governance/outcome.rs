//! How a governed request ended: one enum for every surface, each surface mapping it to its wire
//! format in one place (the MCP mapping is `mcp::answer`).

use std::time::Duration;

use castellan_schema::audit::ExecutionStatus;
use serde_json::Value;

use crate::governance::rate_limit::Policy;

/// The end of one governed request, as the caller is to hear it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The upstream's result (a tool result with `isError` included): passed to the caller.
    Answered(Value),
    /// The upstream's own error object, redacted: passed to the caller.
    UpstreamError(Value),
    /// The request's parameters are wrong (e.g. tool arguments that are not an object).
    InvalidRequest(String),
    /// No such tool, resource or prompt for this caller.
    Unknown(String),
    /// The target exists but is not running (it is being restarted).
    Unavailable(String),
    /// Over a rate limit: `policy` names it; retry after `retry_after`.
    RateLimited { policy: Policy, retry_after: Duration },
    /// Refused by RBAC, a pin or a hook; the message starts with `forbidden:` and names the rule.
    Forbidden(String),
    /// The upstream did not answer in time.
    Timeout(String),
    /// The upstream failed, or the client cancelled.
    Failed(String),
    /// Parked for the client's input: this result goes to the caller; the row comes later.
    Suspended(Value),
    /// The row could not be committed, or the audit database is known to be down: the tool did
    /// not run, or its result is withheld.
    AuditUnavailable(String),
}

/// What [`super::Chain::govern`] returns: the outcome and the status its audit row carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Governed {
    pub outcome: Outcome,
    /// The row's status; `None` when no row was written (a suspended request).
    pub status: Option<ExecutionStatus>,
}

impl Outcome {
    /// The audit status of a request that ended this way.
    pub fn status(&self) -> ExecutionStatus {
        match self {
            Outcome::Answered(result) => {
                if result.get("isError").and_then(Value::as_bool) == Some(true) {
                    ExecutionStatus::ToolError
                } else {
                    ExecutionStatus::Success
                }
            }
            Outcome::UpstreamError(_) | Outcome::InvalidRequest(_) | Outcome::Unknown(_) => ExecutionStatus::RpcError,
            Outcome::RateLimited { .. } => ExecutionStatus::RateLimited,
            Outcome::Forbidden(_) => ExecutionStatus::Denied,
            Outcome::Timeout(_) => ExecutionStatus::Timeout,
            Outcome::Unavailable(_) | Outcome::Failed(_) | Outcome::AuditUnavailable(_) | Outcome::Suspended(_) => {
                ExecutionStatus::Failed
            }
        }
    }

    /// The message for the row's `error_message` (and the caller), when the request did not succeed.
    pub fn error_message(&self) -> Option<String> {
        match self {
            Outcome::Answered(_) | Outcome::Suspended(_) => None,
            Outcome::UpstreamError(error) => {
                Some(error.get("message").and_then(Value::as_str).unwrap_or("error").to_string())
            }
            Outcome::RateLimited { policy, retry_after } => {
                Some(format!("rate limited by {}: retry in {} ms", policy.limit, retry_after.as_millis()))
            }
            Outcome::InvalidRequest(message)
            | Outcome::Unknown(message)
            | Outcome::Unavailable(message)
            | Outcome::Forbidden(message)
            | Outcome::Timeout(message)
            | Outcome::Failed(message)
            | Outcome::AuditUnavailable(message) => Some(message.clone()),
        }
    }
}
