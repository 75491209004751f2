//! Reading request bodies: every handler that takes a body reads it here, and only after it has
//! decided the request may have one (authenticated it, where the endpoint authenticates). The read
//! stops at a size bound and at a deadline, so no client makes the daemon hold more than the bound,
//! nor holds a connection by sending a body slowly or not at all. Until a handler reads, actix keeps
//! at most its own small read buffer (32 KiB) of an unread body; a response to a request whose body
//! was not read to the end closes the connection.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, web};
use futures_util::StreamExt as _;
use serde_json::json;

/// The bound of the OAuth endpoints' bodies (forms and registration documents): they are read
/// before anyone is authenticated, and nothing legitimate sent there comes near it.
pub const UNAUTHENTICATED_BODY_LIMIT: usize = 16 * 1024;

/// The bounds of the authenticated endpoints' bodies (`server.max_body_bytes`,
/// `server.body_read_timeout`), read at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyBounds {
    pub max_bytes: usize,
    pub read_timeout: Duration,
}

impl BodyBounds {
    pub fn from_profile(server: &castellan_config::ServerSettings) -> Self {
        BodyBounds { max_bytes: server.max_body_bytes, read_timeout: server.body_read_timeout }
    }

    /// The same deadline with the small bound of an endpoint that reads before authenticating.
    pub fn unauthenticated(self) -> Self {
        BodyBounds { max_bytes: self.max_bytes.min(UNAUTHENTICATED_BODY_LIMIT), ..self }
    }

    pub async fn read(self, payload: &mut web::Payload) -> Result<web::Bytes, BodyError> {
        read_bounded(payload, self.max_bytes, self.read_timeout).await
    }
}

/// Why a body was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the request body did not arrive within {} s; send it at once", .timeout.as_secs().max(1))]
    TimedOut { timeout: Duration },
    #[error("the request body could not be read")]
    Unreadable,
}

/// Reads the whole body, refusing it as soon as it passes `limit` bytes or when it has not
/// arrived within `timeout` (for the whole body, not for each chunk: trickling does not help).
/// On a refusal the caller still holds the payload, for [`answer_unread`].
pub async fn read_bounded(
    payload: &mut web::Payload,
    limit: usize,
    timeout: Duration,
) -> Result<web::Bytes, BodyError> {
    match tokio::time::timeout(timeout, read_all(payload, limit)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(BodyError::TimedOut { timeout }),
    }
}

/// An answer given before the body was read to its end. It keeps the unread payload until the
/// answer is written, because actix decides then: with the payload still held it closes the
/// connection, while a payload already dropped makes it read and discard a chunked body for as
/// long as the client sends one, or waits, with no deadline.
pub fn answer_unread(response: HttpResponse, payload: web::Payload) -> HttpResponse {
    let (head, body) = response.into_parts();
    head.set_body(HoldingPayload { body, _payload: payload }).map_into_boxed_body()
}

/// A response body that owns the request's payload until it is dropped.
struct HoldingPayload {
    body: BoxBody,
    _payload: web::Payload,
}

impl MessageBody for HoldingPayload {
    type Error = <BoxBody as MessageBody>::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Result<web::Bytes, Self::Error>>> {
        Pin::new(&mut self.body).poll_next(context)
    }
}

async fn read_all(payload: &mut web::Payload, limit: usize) -> Result<web::Bytes, BodyError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| BodyError::Unreadable)?;
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Refuses a request whose `Content-Type` is not JSON (415), before its body is read.
pub fn require_json(request: &actix_web::HttpRequest) -> Result<(), crate::http::ApiError> {
    let content_type = request.headers().get("content-type").and_then(|value| value.to_str().ok());
    if content_type.is_some_and(|content_type| content_type.to_ascii_lowercase().starts_with("application/json")) {
        Ok(())
    } else {
        Err(crate::http::ApiError::UnsupportedMediaType("Content-Type must be application/json".into()))
    }
}

/// The bound of the passkey ceremonies' JSON bodies, read before sign-in: room for any
/// attestation, and far below `server.max_body_bytes`.
pub const CEREMONY_BODY_LIMIT: usize = 64 * 1024;

/// A JSON body of a page read before sign-in (the passkey ceremonies), read like every other body:
/// at most [`CEREMONY_BODY_LIMIT`] bytes within `server.body_read_timeout`, then parsed. Stands in for
/// `web::Json`, whose read has no deadline.
pub struct BoundedJson<T>(pub T);

impl<T> std::ops::Deref for BoundedJson<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: serde::de::DeserializeOwned + 'static> actix_web::FromRequest for BoundedJson<T> {
    type Error = actix_web::Error;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &actix_web::HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let read_timeout = request
            .app_data::<web::Data<crate::http::AppState>>()
            .map_or(castellan_config::DEFAULT_BODY_READ_TIMEOUT, |state| state.bodies.read_timeout);
        let json = require_json(request);
        let payload = <web::Payload as actix_web::FromRequest>::from_request(request, payload);
        Box::pin(async move {
            let mut payload = payload.await?;
            json?;
            let body = read_bounded(&mut payload, CEREMONY_BODY_LIMIT, read_timeout).await?;
            serde_json::from_slice(&body).map(BoundedJson).map_err(|error| {
                crate::http::ApiError::BadRequest(format!("the request body is not what this endpoint takes: {error}"))
                    .into()
            })
        })
    }
}

impl ResponseError for BodyError {
    fn status_code(&self) -> StatusCode {
        match self {
            BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::TimedOut { .. } => StatusCode::REQUEST_TIMEOUT,
            BodyError::Unreadable => StatusCode::BAD_REQUEST,
        }
    }

    /// The rest of the body is never read, so the connection closes after this answer.
    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).force_close().json(json!({"error": self.to_string()}))
    }
}

impl BodyError {
    /// The same refusal in the shape OAuth clients read (RFC 6749 §5.2: `error` is a code).
    pub fn oauth_error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code())
            .force_close()
            .insert_header(("Cache-Control", "no-store"))
            .json(json!({"error": "invalid_request", "error_description": self.to_string()}))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use actix_web::FromRequest as _;
    use actix_web::dev::Payload;
    use actix_web::http::ConnectionType;
    use actix_web::test::TestRequest;
    use futures_util::stream;

    use super::*;

    /// A `web::Payload` whose chunks come from `chunks`, then (when `stall`) never end.
    async fn payload(chunks: Vec<&'static [u8]>, stall: bool) -> web::Payload {
        let sent = stream::iter(chunks.into_iter().map(|chunk| Ok(web::Bytes::from_static(chunk))));
        let rest = stream::unfold(stall, |stall| async move {
            if stall {
                std::future::pending::<()>().await;
            }
            None::<(Result<web::Bytes, actix_web::error::PayloadError>, bool)>
        });
        type Boxed =
            std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<web::Bytes, actix_web::error::PayloadError>>>>;
        let boxed: Boxed = Box::pin(sent.chain(rest));
        let mut payload = Payload::from(boxed);
        web::Payload::from_request(&TestRequest::default().to_http_request(), &mut payload).await.unwrap()
    }

    #[actix_web::test]
    async fn a_body_is_read_up_to_its_bound_and_no_further() {
        let read = read_bounded(&mut payload(vec![b"{\"a\":", b"1}"], false).await, 7, Duration::from_secs(5)).await;
        assert_eq!(read, Ok(web::Bytes::from_static(b"{\"a\":1}")), "exactly the bound is accepted");
        let read = read_bounded(&mut payload(vec![b"{\"a\":", b"12}"], false).await, 7, Duration::from_secs(5)).await;
        assert_eq!(read, Err(BodyError::TooLarge { limit: 7 }), "one byte past it is refused");
        // The refusal comes as soon as the bound is passed, not when the body ends.
        let read = read_bounded(&mut payload(vec![b"0123456789"], true).await, 4, Duration::from_secs(5)).await;
        assert_eq!(read, Err(BodyError::TooLarge { limit: 4 }), "without waiting for the rest");
    }

    #[actix_web::test]
    async fn a_body_that_stops_arriving_times_out() {
        let timeout = Duration::from_millis(300);
        let started = std::time::Instant::now();
        let read = read_bounded(&mut payload(vec![b"{\"jsonrpc\""], true).await, 1024, timeout).await;
        assert_eq!(read, Err(BodyError::TimedOut { timeout }));
        let elapsed = started.elapsed();
        assert!(elapsed >= timeout && elapsed < Duration::from_secs(3), "cut off at the deadline: {elapsed:?}");
    }

    #[test]
    fn each_refusal_has_its_status_says_what_to_do_and_closes() {
        let cases = [
            (BodyError::TooLarge { limit: 16 }, 413, "larger than 16 bytes"),
            (BodyError::TimedOut { timeout: Duration::from_secs(30) }, 408, "within 30 s"),
            (BodyError::TimedOut { timeout: Duration::from_millis(10) }, 408, "within 1 s"),
            (BodyError::Unreadable, 400, "could not be read"),
        ];
        for (error, status, message) in cases {
            let response = error.error_response();
            assert_eq!(response.status().as_u16(), status, "{error}");
            assert!(error.to_string().contains(message), "{error}");
            assert_eq!(response.head().connection_type(), ConnectionType::Close, "{error}");
        }
    }
}
