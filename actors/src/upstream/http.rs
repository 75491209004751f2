//! The Streamable HTTP wire towards an upstream server: one POST per message, answered with JSON or
//! with an SSE stream that may carry the server's notifications and requests before the answer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

use super::sse::SseParser;
use super::{Connection, InboundRouter, RpcOutcome, UpstreamError, Wire};

const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

tokio::task_local! {
    /// The W3C `traceparent` of the request being served: HTTP upstream requests made within
    /// [`with_traceparent`] carry it, so a backend joins the caller's trace.
    static TRACEPARENT: String;
}

/// Runs `work` with `traceparent` set for the HTTP upstream requests it makes.
pub async fn with_traceparent<F: std::future::Future>(traceparent: String, work: F) -> F::Output {
    TRACEPARENT.scope(traceparent, work).await
}

/// The client every upstream HTTP connection uses: bounded connect time, kept-alive connections.
pub fn upstream_http_client() -> Result<reqwest::Client, UpstreamError> {
    crate::http_client::builder(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .map_err(|error| UpstreamError::Transport(error.to_string()))
}

thread_local! {
    /// This thread's client. A kept-alive connection is driven by a task on the runtime that opened
    /// it; with one client (one pool) per thread, a request made on an HTTP worker thread goes out on
    /// a connection that thread drives, with no cross-thread wake-up to send it or take its answer.
    static THREAD_CLIENT: std::cell::OnceCell<Option<reqwest::Client>> = const { std::cell::OnceCell::new() };
}

pub(crate) struct HttpWire {
    client: reqwest::Client,
    url: String,
    /// `url`, parsed once rather than on every request (when it does not parse, each request
    /// fails with reqwest's error, as before).
    parsed_url: Option<reqwest::Url>,
    headers: Vec<(String, String)>,
    session_id: Mutex<Option<String>>,
    protocol_version: Mutex<Option<String>>,
}

/// Opens a connection to `url`; nothing is sent until the first request.
pub fn connect_http(
    server: &str,
    client: reqwest::Client,
    url: String,
    headers: Vec<(String, String)>,
    router: Arc<dyn InboundRouter>,
) -> Arc<Connection> {
    let parsed_url = reqwest::Url::parse(&url).ok();
    let wire =
        HttpWire { client, url, parsed_url, headers, session_id: Mutex::new(None), protocol_version: Mutex::new(None) };
    Connection::new(server.to_string(), Wire::Http(wire), router)
}

impl HttpWire {
    pub(crate) fn set_protocol_version(&self, version: &str) {
        *lock(&self.protocol_version) = Some(version.to_string());
    }

    fn post(&self, message: &Value) -> reqwest::RequestBuilder {
        let traceparent = TRACEPARENT.try_with(Clone::clone).ok();
        let client = THREAD_CLIENT
            .with(|client| client.get_or_init(|| upstream_http_client().ok()).clone())
            .unwrap_or_else(|| self.client.clone());
        let request = match &self.parsed_url {
            Some(url) => client.post(url.clone()),
            None => client.post(&self.url),
        };
        let mut request = request
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(message.to_string());
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        if let Some(session) = lock(&self.session_id).clone() {
            request = request.header("mcp-session-id", session);
        }
        if let Some(version) = lock(&self.protocol_version).clone() {
            request = request.header("mcp-protocol-version", version);
        }
        if let Some(traceparent) = traceparent {
            request = request.header("traceparent", traceparent);
        }
        request
    }

    pub(crate) async fn post_unanswered(&self, _: &Arc<Connection>, message: &Value) -> Result<(), UpstreamError> {
        let response = self.post(message).send().await.map_err(transport)?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(UpstreamError::Transport(format!("upstream answered HTTP {}", response.status().as_u16())))
        }
    }

    pub(crate) async fn exchange(
        &self,
        connection: &Arc<Connection>,
        id: u64,
        message: &Value,
    ) -> Result<RpcOutcome, UpstreamError> {
        let response = self.post(message).send().await.map_err(transport)?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND && lock(&self.session_id).is_some() {
            connection.close();
            return Err(UpstreamError::Disconnected);
        }
        if !status.is_success() {
            return Err(UpstreamError::Transport(format!("upstream answered HTTP {}", status.as_u16())));
        }
        if let Some(session) = response.headers().get("mcp-session-id").and_then(|value| value.to_str().ok()) {
            *lock(&self.session_id) = Some(session.to_string());
        }
        let is_stream = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/event-stream"));
        if !is_stream {
            let body = response.bytes().await.map_err(transport)?;
            if body.len() > MAX_RESPONSE_BYTES {
                return Err(UpstreamError::Protocol("answer too large".into()));
            }
            let answer: Value =
                serde_json::from_slice(&body).map_err(|_| UpstreamError::Protocol("answer is not JSON".into()))?;
            return answer_for(id, answer)
                .ok_or_else(|| UpstreamError::Protocol("answer does not match the request".into()));
        }
        let mut parser = SseParser::new(MAX_RESPONSE_BYTES);
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(transport)?;
            for event in parser.feed(&chunk).map_err(|reason| UpstreamError::Protocol(reason.into()))? {
                let Ok(message) = serde_json::from_str::<Value>(&event.data) else { continue };
                if let Some(outcome) = answer_for(id, message.clone()) {
                    return Ok(outcome);
                }
                if message.get("method").is_some() {
                    connection.dispatch_related(Some(id), message);
                } else {
                    connection.dispatch(message);
                }
            }
        }
        Err(UpstreamError::Disconnected)
    }
}

/// The outcome if `message` is the answer to request `id`.
fn answer_for(id: u64, message: Value) -> Option<RpcOutcome> {
    if message.get("method").is_some() || message.get("id").and_then(Value::as_u64) != Some(id) {
        return None;
    }
    match (message.get("result"), message.get("error")) {
        (Some(result), None) => Some(Ok(result.clone())),
        (None, Some(error)) => Some(Err(error.clone())),
        _ => None,
    }
}

fn transport(error: reqwest::Error) -> UpstreamError {
    // reqwest's message can carry the URL; upstream URLs may hold credentials in a query, so keep only the kind.
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_body() || error.is_decode() {
        "broken body"
    } else {
        "request failed"
    };
    UpstreamError::Transport(kind.to_string())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
