//! Connections to upstream MCP servers: one JSON-RPC multiplexer over stdio or Streamable HTTP.
//!
//! The gateway relays messages it does not need to understand, so a connection deals in
//! `serde_json::Value` messages: fields of revisions newer than this build pass through untouched.
//! Request ids towards a server are ours (a counter per connection), so concurrent callers never collide.

pub mod http;
pub mod sse;
pub mod stdio;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::oneshot;

/// Protocol revisions this build can speak to an upstream server, newest first.
pub const UPSTREAM_PROTOCOL_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    #[error("the server is not connected")]
    Disconnected,
    #[error("the server did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the server broke the protocol: {0}")]
    Protocol(String),
    #[error("transport error: {0}")]
    Transport(String),
    #[error("the request was cancelled")]
    Cancelled,
}

/// A JSON-RPC answer from upstream: the `result` member, or the `error` object.
pub type RpcOutcome = Result<Value, Value>;

/// What the server sends us unprompted: notifications, and requests meant for the client.
pub trait InboundRouter: Send + Sync {
    fn notification(&self, server: &str, message: Value);
    /// A server-to-client request (sampling, elicitation, roots): the router must eventually answer
    /// through `Connection::respond` on `connection`.
    fn request(&self, server: &str, connection: Arc<Connection>, message: Value);
}

/// A message a server sent in the course of one of our requests (progress, log lines, sampling or
/// elicitation), for the client whose call caused it.
pub enum Related {
    /// A notification; a progress token is already restored to the client's own.
    Notification(Value),
    /// A server-to-client request; it must be answered through `connection.respond`.
    Request { connection: Arc<Connection>, message: Value },
}

/// Where the related messages of one request go.
pub type RelatedSink = tokio::sync::mpsc::UnboundedSender<Related>;

/// The progress token we put on a request in place of the client's, so that a server's progress
/// notification finds its way back without trusting anything else the server says.
const PROGRESS_TOKEN_PREFIX: &str = "castellan-progress-";

struct SinkEntry {
    sink: RelatedSink,
    client_progress_token: Option<Value>,
}

/// An `InboundRouter` that refuses server-to-client requests: used where no client is attached.
pub struct RefuseInbound;

impl InboundRouter for RefuseInbound {
    fn notification(&self, _: &str, _: Value) {}
    fn request(&self, _: &str, connection: Arc<Connection>, message: Value) {
        if let Some(id) = message.get("id").cloned() {
            tokio::spawn(async move {
                connection
                    .respond(id, Err(json!({"code": -32601, "message": "no client can answer this request"})))
                    .await;
            });
        }
    }
}

pub(crate) enum Wire {
    Stdio(stdio::StdioWire),
    Http(http::HttpWire),
    InProcess(Arc<dyn InProcessServer>),
}

/// A server that lives in this process (an extension's tool provider): it answers requests by
/// method, inline on the caller's task (so task-local context, such as the caller, reaches it),
/// under the same timeout and cancellation as a wire. Notifications to it are dropped.
pub trait InProcessServer: Send + Sync {
    fn handle<'a>(&'a self, method: &'a str, params: Option<Value>) -> futures_util::future::BoxFuture<'a, RpcOutcome>;
}

/// One live connection to one upstream server.
pub struct Connection {
    pub server: String,
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<RpcOutcome>>>,
    sinks: Mutex<HashMap<u64, SinkEntry>>,
    /// Requests in flight that a client may cancel: firing one ends the wait at once.
    cancels: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    closed: AtomicBool,
    closed_signal: tokio::sync::watch::Sender<bool>,
    wire: Wire,
    router: Arc<dyn InboundRouter>,
}

impl Connection {
    pub(crate) fn new(server: String, wire: Wire, router: Arc<dyn InboundRouter>) -> Arc<Self> {
        Arc::new(Self {
            server,
            next_id: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            sinks: Mutex::new(HashMap::new()),
            cancels: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            closed_signal: tokio::sync::watch::Sender::new(false),
            wire,
            router,
        })
    }

    /// A connection to a server in this process.
    pub fn in_process(server: String, handler: Arc<dyn InProcessServer>) -> Arc<Self> {
        Connection::new(server, Wire::InProcess(handler), Arc::new(RefuseInbound))
    }

    /// Whether the server lives in this process.
    pub fn is_in_process(&self) -> bool {
        matches!(self.wire, Wire::InProcess(_))
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Sends a request and waits for its answer. On timeout the server is told to cancel.
    pub async fn request(
        self: &Arc<Self>,
        method: &str,
        params: Option<Value>,
        timeout: Duration,
    ) -> Result<RpcOutcome, UpstreamError> {
        let id = self.allocate_id();
        self.request_with_id(id, method, params, timeout).await
    }

    /// A fresh request id, for callers that must know it before sending (to relay cancellation).
    pub fn allocate_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Like `request`, with an id from `allocate_id`; `cancel_request` with that id ends it early.
    pub async fn request_with_id(
        self: &Arc<Self>,
        id: u64,
        method: &str,
        params: Option<Value>,
        timeout: Duration,
    ) -> Result<RpcOutcome, UpstreamError> {
        let (cancel, cancelled) = oneshot::channel();
        lock(&self.cancels).insert(id, cancel);
        let outcome = tokio::select! {
            outcome = self.exchange(id, method, params, timeout) => outcome,
            Ok(()) = cancelled => Err(UpstreamError::Cancelled),
        };
        lock(&self.cancels).remove(&id);
        // A cancelled stdio request leaves its waiter behind; a late answer then finds nobody.
        self.lock_pending().remove(&id);
        outcome
    }

    /// A client cancelled request `id`: its waiter gets `Cancelled` now, and the server is told.
    pub async fn cancel_request(self: &Arc<Self>, id: u64, reason: &str) {
        let waiting = lock(&self.cancels).remove(&id);
        if let Some(cancel) = waiting {
            let _ = cancel.send(());
            self.cancel(id, reason).await;
        }
    }

    async fn exchange(
        self: &Arc<Self>,
        id: u64,
        method: &str,
        params: Option<Value>,
        timeout: Duration,
    ) -> Result<RpcOutcome, UpstreamError> {
        if self.is_closed() {
            return Err(UpstreamError::Disconnected);
        }
        let message = crate::jsonrpc::request(id, method, params);
        match &self.wire {
            Wire::Stdio(wire) => {
                let (sender, receiver) = oneshot::channel();
                self.lock_pending().insert(id, sender);
                if let Err(error) = wire.send(&message).await {
                    self.lock_pending().remove(&id);
                    return Err(error);
                }
                match tokio::time::timeout(timeout, receiver).await {
                    Ok(Ok(outcome)) => Ok(outcome),
                    Ok(Err(_)) => Err(UpstreamError::Disconnected),
                    Err(_) => {
                        self.lock_pending().remove(&id);
                        self.cancel(id, "timeout").await;
                        Err(UpstreamError::Timeout(timeout))
                    }
                }
            }
            Wire::Http(wire) => match tokio::time::timeout(timeout, wire.exchange(self, id, &message)).await {
                Ok(result) => result,
                Err(_) => {
                    self.cancel(id, "timeout").await;
                    Err(UpstreamError::Timeout(timeout))
                }
            },
            Wire::InProcess(server) => {
                let params = message.get("params").cloned();
                tokio::time::timeout(timeout, server.handle(method, params))
                    .await
                    .map_err(|_| UpstreamError::Timeout(timeout))
            }
        }
    }

    /// Like `request_with_id`, and while it runs every message the server sends in its course
    /// (progress for its token, log lines and server-to-client requests on its stream) goes to `sink`.
    pub async fn request_with_sink(
        self: &Arc<Self>,
        id: u64,
        method: &str,
        mut params: Option<Value>,
        timeout: Duration,
        sink: RelatedSink,
    ) -> Result<RpcOutcome, UpstreamError> {
        let client_progress_token =
            params.as_mut().and_then(|params| params.get_mut("_meta")).and_then(Value::as_object_mut).and_then(
                |meta| {
                    let token = meta.remove("progressToken")?;
                    meta.insert("progressToken".into(), Value::String(format!("{PROGRESS_TOKEN_PREFIX}{id}")));
                    Some(token)
                },
            );
        lock(&self.sinks).insert(id, SinkEntry { sink, client_progress_token });
        let outcome = self.request_with_id(id, method, params, timeout).await;
        lock(&self.sinks).remove(&id);
        outcome
    }

    /// Tells the server a request of ours is cancelled.
    pub async fn cancel(self: &Arc<Self>, id: u64, reason: &str) {
        self.notify("notifications/cancelled", Some(json!({"requestId": id, "reason": reason}))).await;
    }

    /// Sends a notification; failures are logged, there is nobody to tell.
    pub async fn notify(self: &Arc<Self>, method: &str, params: Option<Value>) {
        self.send_unanswered(&crate::jsonrpc::notification(method, params)).await;
    }

    /// Answers a request the server sent us.
    pub async fn respond(self: &Arc<Self>, id: Value, outcome: RpcOutcome) {
        self.send_unanswered(&crate::jsonrpc::response(&id, outcome)).await;
    }

    async fn send_unanswered(self: &Arc<Self>, message: &Value) {
        let result = match &self.wire {
            Wire::Stdio(wire) => wire.send(message).await,
            Wire::Http(wire) => wire.post_unanswered(self, message).await,
            Wire::InProcess(_) => Ok(()),
        };
        if let Err(error) = result {
            tracing::debug!(server = %self.server, %error, "could not deliver a message upstream");
        }
    }

    /// Routes one message the server sent: an answer to one of ours, a notification, or a request.
    pub(crate) fn dispatch(self: &Arc<Self>, message: Value) {
        let has_method = message.get("method").is_some_and(Value::is_string);
        let id = message.get("id");
        match (has_method, id) {
            (false, Some(id)) => {
                let Some(id) = id.as_u64() else {
                    tracing::warn!(server = %self.server, "answer with an id we never sent");
                    return;
                };
                let outcome = match (message.get("result"), message.get("error")) {
                    (Some(result), None) => Ok(result.clone()),
                    (None, Some(error)) => Err(error.clone()),
                    _ => Err(json!({"code": -32603, "message": "upstream answer had neither result nor error"})),
                };
                if let Some(waiter) = self.lock_pending().remove(&id) {
                    let _ = waiter.send(outcome);
                }
            }
            (true, Some(_)) => self.dispatch_related(None, message),
            (true, None) => self.dispatch_related(None, message),
            (false, None) => tracing::warn!(server = %self.server, "upstream sent a message that is not JSON-RPC"),
        }
    }

    /// Routes a notification or request from the server. `context` is the request whose stream it
    /// came on (HTTP); over stdio there is no such link, so a message goes to the one request in
    /// flight with a sink when there is exactly one, and otherwise to the router.
    pub(crate) fn dispatch_related(self: &Arc<Self>, context: Option<u64>, mut message: Value) {
        let method = message.get("method").and_then(Value::as_str).unwrap_or_default().to_string();
        let is_request = message.get("id").is_some();
        if method == "notifications/progress" {
            let owner = message
                .pointer("/params/progressToken")
                .and_then(Value::as_str)
                .and_then(|token| token.strip_prefix(PROGRESS_TOKEN_PREFIX))
                .and_then(|id| id.parse::<u64>().ok());
            let sinks = lock(&self.sinks);
            if let Some(entry) = owner.and_then(|id| sinks.get(&id))
                && let Some(token) = &entry.client_progress_token
            {
                message["params"]["progressToken"] = token.clone();
                let _ = entry.sink.send(Related::Notification(message));
            }
            return;
        }
        let call_scoped = is_request || method == "notifications/message";
        if call_scoped {
            let sinks = lock(&self.sinks);
            let target = match context {
                Some(id) => sinks.get(&id),
                None if sinks.len() == 1 => sinks.values().next(),
                None => None,
            };
            if let Some(entry) = target {
                let related = if is_request {
                    Related::Request { connection: Arc::clone(self), message }
                } else {
                    Related::Notification(message)
                };
                match entry.sink.send(related) {
                    Ok(()) => return,
                    Err(unsent) => message = unsent_message(unsent.0),
                }
            }
        }
        if is_request {
            self.router.request(&self.server, Arc::clone(self), message);
        } else {
            self.router.notification(&self.server, message);
        }
    }

    /// Marks the connection dead and fails every waiting request.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.lock_pending().clear();
        self.closed_signal.send_replace(true);
    }

    /// Resolves once the connection is closed (the server went away or broke the protocol).
    pub async fn closed(&self) {
        let mut receiver = self.closed_signal.subscribe();
        let _ = receiver.wait_for(|closed| *closed).await;
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<RpcOutcome>>> {
        // A panic while holding this lock cannot leave the map inconsistent: every operation is one call.
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Connection {
    /// Records the revision agreed in the handshake; HTTP sends it on every later request.
    pub(crate) fn set_protocol_version(&self, version: &str) {
        if let Wire::Http(wire) = &self.wire {
            wire.set_protocol_version(version);
        }
    }
}

fn unsent_message(related: Related) -> Value {
    match related {
        Related::Notification(message) | Related::Request { message, .. } => message,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
