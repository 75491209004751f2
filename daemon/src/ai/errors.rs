//! The one mapping from how an AI request was refused or failed to the HTTP status and error body
//! of the endpoint that was called: Anthropic `{"type":"error","error":{type,message}}`, OpenAI
//! `{"error":{message,type,param,code}}`, Gemini `{"error":{code,message,status}}`. Each SDK turns
//! these into its own exception types (docs/ai-gateway-notes/wire-formats.md §4).

use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use castellan_ai::format::WireFormat;
use serde_json::{Value, json};

/// Why an AI request did not get a model's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AiError {
    /// No or bad credential (401).
    Unauthenticated(String),
    /// The credential lacks the `ai:messages` scope, or RBAC or a hook refused (403).
    Forbidden(String),
    /// No route for the model (404).
    UnknownModel(String),
    /// The body is not what the endpoint takes (400), or cannot be translated (400 naming the field).
    InvalidRequest(String),
    /// The body is larger than `server.max_body_bytes` (413).
    TooLarge(String),
    /// The body did not arrive in time (408).
    BodyTimeout(String),
    /// Content-Type is not JSON (415).
    UnsupportedMediaType(String),
    /// Over a rate limit or a token limit (429).
    RateLimited {
        message: String,
        retry_after: Duration,
    },
    /// Over a budget (429, naming the budget).
    BudgetExceeded {
        message: String,
        retry_after: Duration,
    },
    /// The row could not be written, or the identity store is down: nothing went upstream (503).
    Unavailable(String),
    /// Every upstream failed (502), or one stalled (504).
    UpstreamFailed(String),
    UpstreamTimeout(String),
}

impl AiError {
    pub fn status(&self) -> StatusCode {
        match self {
            AiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            AiError::Forbidden(_) => StatusCode::FORBIDDEN,
            AiError::UnknownModel(_) => StatusCode::NOT_FOUND,
            AiError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            AiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            AiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AiError::RateLimited { .. } | AiError::BudgetExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            AiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AiError::UpstreamFailed(_) => StatusCode::BAD_GATEWAY,
            AiError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            AiError::Unauthenticated(message)
            | AiError::Forbidden(message)
            | AiError::UnknownModel(message)
            | AiError::InvalidRequest(message)
            | AiError::TooLarge(message)
            | AiError::BodyTimeout(message)
            | AiError::UnsupportedMediaType(message)
            | AiError::RateLimited { message, .. }
            | AiError::BudgetExceeded { message, .. }
            | AiError::Unavailable(message)
            | AiError::UpstreamFailed(message)
            | AiError::UpstreamTimeout(message) => message,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            AiError::RateLimited { retry_after, .. } | AiError::BudgetExceeded { retry_after, .. } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }

    /// Whether an SDK should retry on its own: a policy refusal will not change by retrying at
    /// once (`x-should-retry: false`, which the Anthropic and OpenAI SDKs honour); a rate limit
    /// will, after `Retry-After`.
    fn retryable(&self) -> bool {
        matches!(
            self,
            AiError::RateLimited { .. }
                | AiError::Unavailable(_)
                | AiError::UpstreamFailed(_)
                | AiError::UpstreamTimeout(_)
        )
    }

    /// The error body in `format`'s shape.
    pub fn body(&self, format: WireFormat) -> Value {
        let status = self.status();
        let message = self.message();
        match format {
            WireFormat::Messages => {
                json!({"type": "error", "error": {"type": anthropic_type(status), "message": message}})
            }
            WireFormat::ChatCompletions | WireFormat::Responses => json!({"error": {
                "message": message,
                "type": openai_type(status),
                "param": null,
                "code": openai_code(self),
            }}),
            WireFormat::Gemini => {
                json!({"error": {"code": status.as_u16(), "message": message, "status": gemini_status(status)}})
            }
        }
    }

    /// The response: status, `Retry-After` (whole seconds, at least 1) on a 429, the body.
    pub fn response(&self, format: WireFormat) -> HttpResponse {
        let mut response = HttpResponse::build(self.status());
        response.insert_header(("Cache-Control", "no-store"));
        response.insert_header(("x-should-retry", if self.retryable() { "true" } else { "false" }));
        if let Some(after) = self.retry_after() {
            let seconds = after.as_secs_f64().ceil().max(1.0) as u64;
            response.insert_header(("Retry-After", seconds.to_string()));
        }
        if let AiError::Unauthenticated(_) = self {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        response.json(self.body(format))
    }
}

fn anthropic_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

fn openai_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        500..=599 => "server_error",
        _ => "invalid_request_error",
    }
}

fn openai_code(error: &AiError) -> Value {
    match error {
        AiError::RateLimited { .. } => json!("rate_limit_exceeded"),
        AiError::BudgetExceeded { .. } => json!("budget_exceeded"),
        AiError::UnknownModel(_) => json!("model_not_found"),
        AiError::Unauthenticated(_) => json!("invalid_api_key"),
        _ => Value::Null,
    }
}

fn gemini_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 413 | 415 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        408 | 504 => "DEADLINE_EXCEEDED",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_endpoint_gets_its_own_error_shape_with_the_status_its_sdk_maps() {
        let budget =
            AiError::BudgetExceeded { message: "over budget 'team': ...".into(), retry_after: Duration::from_secs(90) };
        let anthropic = budget.body(WireFormat::Messages);
        assert_eq!(anthropic["type"], "error");
        assert_eq!(anthropic["error"]["type"], "rate_limit_error", "anthropic.RateLimitError");
        let openai = budget.body(WireFormat::ChatCompletions);
        assert_eq!(openai["error"]["code"], "budget_exceeded");
        assert_eq!(openai["error"]["type"], "rate_limit_error");
        let gemini = budget.body(WireFormat::Gemini);
        assert_eq!(
            (gemini["error"]["code"].as_u64(), gemini["error"]["status"].as_str()),
            (Some(429), Some("RESOURCE_EXHAUSTED"))
        );
        let cases = [
            (AiError::Unauthenticated("no".into()), 401, "authentication_error", "UNAUTHENTICATED"),
            (AiError::Forbidden("no".into()), 403, "permission_error", "PERMISSION_DENIED"),
            (AiError::UnknownModel("no".into()), 404, "not_found_error", "NOT_FOUND"),
            (AiError::InvalidRequest("no".into()), 400, "invalid_request_error", "INVALID_ARGUMENT"),
            (AiError::UpstreamFailed("no".into()), 502, "api_error", "INTERNAL"),
            (AiError::Unavailable("no".into()), 503, "overloaded_error", "UNAVAILABLE"),
        ];
        for (error, status, anthropic_kind, gemini_kind) in cases {
            assert_eq!(error.status().as_u16(), status, "{error:?}");
            assert_eq!(error.body(WireFormat::Messages)["error"]["type"], anthropic_kind, "{error:?}");
            assert_eq!(error.body(WireFormat::Gemini)["error"]["status"], gemini_kind, "{error:?}");
            assert_eq!(error.body(WireFormat::Responses)["error"]["message"], "no", "{error:?}");
        }
    }

    #[test]
    fn a_429_says_when_to_retry_and_a_policy_refusal_says_not_to() {
        let limited = AiError::RateLimited { message: "slow down".into(), retry_after: Duration::from_millis(1_200) };
        let response = limited.response(WireFormat::Messages);
        assert_eq!(response.headers().get("retry-after").and_then(|value| value.to_str().ok()), Some("2"));
        let denied = AiError::Forbidden("forbidden: denied by rule 'x'".into()).response(WireFormat::ChatCompletions);
        assert_eq!(denied.headers().get("x-should-retry").and_then(|value| value.to_str().ok()), Some("false"));
    }
}
