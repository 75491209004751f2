//! The one place a refusal of the HTTP surface becomes a status and a body. Messages are for
//! users (what was wrong, what to do); internal detail goes to the logs, never here.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// A refusal of a request on the HTTP surface. The body is `{"error": message}`. Surfaces with a
/// wire format of their own (OAuth errors, JSON-RPC, the AI formats) map their errors themselves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    /// The request needs a signed-in browser session (passkey pages); API callers get the
    /// bearer challenge of `http::authenticate` instead.
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    NotAcceptable(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    Internal(String),
    /// A dependency (the database, the identity store) is down; the client may try again.
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    /// The response, for handlers that return `HttpResponse`.
    pub fn into_response(self) -> HttpResponse {
        self.error_response()
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Unavailable(_) | ApiError::TooManyRequests(_)) {
            // The failure passes: say when to come back rather than leave clients to guess.
            response.insert_header(("Retry-After", "1"));
        }
        response.insert_header(("Cache-Control", "no-store")).json(json!({"error": self.to_string()}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn every_refusal_has_its_status_and_a_json_body_with_the_message() {
        let cases = [
            (ApiError::BadRequest("missing Mcp-Session-Id".into()), 400, false),
            (ApiError::Unauthorized("sign in first".into()), 401, false),
            (ApiError::Forbidden("forbidden: the Origin of this request is not allowed".into()), 403, false),
            (ApiError::NotFound("unknown server".into()), 404, false),
            (ApiError::NotAcceptable("Accept must include text/event-stream".into()), 406, false),
            (ApiError::UnsupportedMediaType("Content-Type must be application/json".into()), 415, false),
            (ApiError::TooManyRequests("too many passkey ceremonies".into()), 429, true),
            (ApiError::Internal("cannot store the passkey".into()), 500, false),
            (ApiError::Unavailable("the database is unavailable; try again".into()), 503, true),
        ];
        for (error, status, retry_after) in cases {
            let message = error.to_string();
            let response = error.into_response();
            assert_eq!(response.status().as_u16(), status, "{message}");
            assert_eq!(response.headers().contains_key("retry-after"), retry_after, "{message}: Retry-After");
            assert_eq!(response.headers().get("cache-control").map(|value| value.as_bytes()), Some(&b"no-store"[..]));
            let body = actix_web::body::to_bytes(response.into_body()).await.unwrap_or_default();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            assert_eq!(body, json!({"error": message}), "the body carries the message and nothing else");
        }
    }
}
