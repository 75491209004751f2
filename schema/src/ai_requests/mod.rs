//! The AI gateway's request log (`ai_requests`): one row per request, written `started` before the
//! request goes upstream and completed once when it ends; and the reads behind `castellan costs`,
//! `GET /api/v1/costs`, `GET /api/v1/ai-requests` and the budgets' spend at the start of a period.
//!
//! Invariants:
//! - a row is completed at most once: [`complete`] only changes a row that is still `started`,
//!   in one conditional statement, so a completed row never changes again;
//! - a cost is stored only when the model has a price: `cost_microdollars` is NULL otherwise, and
//!   the reads count such requests as unpriced rather than adding $0;
//! - error messages are bounded ([`ERROR_MESSAGE_MAX_BYTES`]) before they are stored.

use chrono::{DateTime, Utc};

use crate::entity::ai_requests as entity;

mod read;
mod sqlite_writer;
mod write;

pub use read::{
    AiRequestFilter, CostGroup, CostsBy, LIST_MAX_LIMIT, SpendGroup, by_trace_id, costs, list, spend_since,
};
pub use sqlite_writer::SqliteAiWriter;
pub use write::{
    AiRequestWrite, AiRequestWritten, complete, insert_finished, insert_started, mark_interrupted, write_batch,
};

/// Every value the `status` column may hold.
pub const AI_REQUEST_STATUSES: [&str; 8] =
    ["started", "success", "upstream_error", "denied", "rate_limited", "budget_exceeded", "client_closed", "failed"];

/// The longest `error_message` stored; a longer one keeps its beginning and a marker with its size
/// and hash (see [`crate::audit::cap_field`]).
pub const ERROR_MESSAGE_MAX_BYTES: usize = 1024;

/// The `error_message` of a row [`mark_interrupted`] closes.
pub const INTERRUPTED_MESSAGE: &str = "interrupted: castellan stopped before the request ended";

/// Where an AI request is in its life, as the `status` column stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AiRequestStatus {
    /// Committed before the request went upstream; not ended yet.
    Started,
    Success,
    /// The provider answered with an error (after any fallbacks).
    UpstreamError,
    /// RBAC or a hook refused it before it went upstream.
    Denied,
    RateLimited,
    BudgetExceeded,
    /// The client hung up before the answer (or stream) ended.
    ClientClosed,
    /// Anything else: bad input, an internal error, or Castellan stopped mid-request.
    Failed,
}

impl AiRequestStatus {
    /// Every status, in the order of [`AI_REQUEST_STATUSES`].
    pub const ALL: [AiRequestStatus; 8] = [
        AiRequestStatus::Started,
        AiRequestStatus::Success,
        AiRequestStatus::UpstreamError,
        AiRequestStatus::Denied,
        AiRequestStatus::RateLimited,
        AiRequestStatus::BudgetExceeded,
        AiRequestStatus::ClientClosed,
        AiRequestStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AiRequestStatus::Started => "started",
            AiRequestStatus::Success => "success",
            AiRequestStatus::UpstreamError => "upstream_error",
            AiRequestStatus::Denied => "denied",
            AiRequestStatus::RateLimited => "rate_limited",
            AiRequestStatus::BudgetExceeded => "budget_exceeded",
            AiRequestStatus::ClientClosed => "client_closed",
            AiRequestStatus::Failed => "failed",
        }
    }

    /// The status a stored `status` value names, if it is one of [`AI_REQUEST_STATUSES`].
    pub fn parse(text: &str) -> Option<AiRequestStatus> {
        AiRequestStatus::ALL.into_iter().find(|status| status.as_str() == text)
    }

    /// Whether a request that ended this way may have been sent upstream (and so may have cost
    /// money): not for refusals, which are decided before anything leaves.
    pub fn may_have_gone_upstream(self) -> bool {
        !matches!(self, AiRequestStatus::Denied | AiRequestStatus::RateLimited | AiRequestStatus::BudgetExceeded)
    }
}

/// What is known when a request starts: the `started` row (or the first half of a refused one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAiRequest {
    /// The principal's subject.
    pub user_id: Option<String>,
    /// The public id of the API key the caller used.
    pub api_key_id: Option<String>,
    /// `X-Claude-Code-Session-Id`, when sent.
    pub session_id: Option<String>,
    pub trace_id: String,
    /// `messages`, `chat_completions`, `responses` or `gemini`.
    pub endpoint: String,
    /// The provider routed to (empty when the request was refused before routing).
    pub provider: String,
    /// The model as asked.
    pub model: String,
    /// The model name sent upstream (empty when refused before routing).
    pub upstream_model: String,
    pub streamed: bool,
    pub started_at: DateTime<Utc>,
}

/// How a request ended: what completes its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiCompletion {
    /// The provider that answered, when a fallback changed it (`None` keeps the started row's).
    pub provider: Option<String>,
    /// The upstream model that answered, when a fallback changed it (`None` keeps the row's).
    pub upstream_model: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cache_read_tokens: Option<i64>,
    pub cache_write_tokens: Option<i64>,
    /// `None` when the model has no price: never a made-up cost.
    pub cost_microdollars: Option<i64>,
    pub latency_ms: Option<i64>,
    pub ttft_ms: Option<i64>,
    /// How it ended; [`AiRequestStatus::Started`] is refused (a completion ends the request).
    pub status: AiRequestStatus,
    pub error_message: Option<String>,
    pub completed_at: DateTime<Utc>,
}

/// One stored row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiRequestRow {
    pub id: i64,
    pub user_id: Option<String>,
    pub api_key_id: Option<String>,
    pub session_id: Option<String>,
    pub trace_id: String,
    pub endpoint: String,
    pub provider: String,
    pub model: String,
    pub upstream_model: String,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cache_read_tokens: Option<i64>,
    pub cache_write_tokens: Option<i64>,
    pub cost_microdollars: Option<i64>,
    pub latency_ms: Option<i64>,
    pub ttft_ms: Option<i64>,
    /// As stored: one of [`AI_REQUEST_STATUSES`] (a newer version may add one, so not parsed here).
    pub status: String,
    pub error_message: Option<String>,
    pub streamed: bool,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl From<entity::Model> for AiRequestRow {
    fn from(model: entity::Model) -> AiRequestRow {
        AiRequestRow {
            id: model.id,
            user_id: model.user_id,
            api_key_id: model.api_key_id,
            session_id: model.session_id,
            trace_id: model.trace_id,
            endpoint: model.endpoint,
            provider: model.provider,
            model: model.model,
            upstream_model: model.upstream_model,
            input_tokens: model.input_tokens,
            output_tokens: model.output_tokens,
            cache_read_tokens: model.cache_read_tokens,
            cache_write_tokens: model.cache_write_tokens,
            cost_microdollars: model.cost_microdollars,
            latency_ms: model.latency_ms,
            ttft_ms: model.ttft_ms,
            status: model.status,
            error_message: model.error_message,
            streamed: model.streamed,
            started_at: model.started_at,
            completed_at: model.completed_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_match_the_column_list() {
        let names: Vec<&str> = AiRequestStatus::ALL.iter().map(|status| status.as_str()).collect();
        assert_eq!(names, AI_REQUEST_STATUSES, "ALL and AI_REQUEST_STATUSES agree, in order");
        for status in AiRequestStatus::ALL {
            assert_eq!(AiRequestStatus::parse(status.as_str()), Some(status), "{status:?} parses back");
        }
        for unknown in ["", "Success", "ok", "started "] {
            assert_eq!(AiRequestStatus::parse(unknown), None, "{unknown:?} is not a status");
        }
    }

    #[test]
    fn refusals_never_went_upstream() {
        let refused: Vec<AiRequestStatus> =
            AiRequestStatus::ALL.into_iter().filter(|status| !status.may_have_gone_upstream()).collect();
        assert_eq!(
            refused,
            [AiRequestStatus::Denied, AiRequestStatus::RateLimited, AiRequestStatus::BudgetExceeded],
            "only the refusals are known not to have cost anything"
        );
    }
}
