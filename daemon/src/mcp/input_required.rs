//! Server-to-client input for clients of revision 2026-07-28.
//!
//! That revision has no server-to-client requests: a server that needs input (elicitation,
//! sampling, roots) answers `resultType: "input_required"` and the client retries the same request
//! with `inputResponses` and the opaque `requestState`. Upstream servers of the session revisions
//! still send real requests in the middle of a call. This module bridges the two: the upstream call
//! keeps running in a task of its own, the requests it makes are parked under a random
//! `requestState` (a handle into server-side state, so it cannot be forged or edited), and the
//! client's retry answers them and waits for what the call does next.
//!
//! A parked call is bound to the principal, the method and the name it was made with, and expires;
//! an expired one is answered upstream with an error and audited as `failed`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use castellan_actors::upstream::{Connection, Related, RpcOutcome, UpstreamError};
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::jsonrpc::{INVALID_PARAMS, METHOD_NOT_FOUND, RpcError};

/// How long a client has to answer before the parked call is abandoned.
pub const INPUT_WAIT: Duration = Duration::from_secs(600);
/// Most calls parked at once; past it the oldest are abandoned.
const MAX_PARKED: usize = 1024;

/// What the running upstream call reports.
enum CallEvent {
    Input { connection: Arc<Connection>, message: Value },
    Done(Result<RpcOutcome, UpstreamError>),
}

/// The current client stream of a detached call, if a request of the client is waiting: where
/// progress and (when asked for) log lines go. Empty between rounds.
type InterimSlot = Arc<Mutex<Option<(mpsc::UnboundedSender<Value>, bool)>>>;

/// Where a call stands when the current HTTP request must answer.
pub enum Step {
    Done(Result<RpcOutcome, UpstreamError>),
    /// An `input_required` result for the client.
    InputRequired(Value),
}

/// What a parked call is bound to and what is needed to audit it if it is abandoned.
#[derive(Clone)]
pub struct CallBinding {
    pub subject: String,
    pub method: String,
    pub name: String,
    pub started_at: DateTime<Utc>,
    pub trace_id: String,
    /// For a tools/call: the row to write if the call is abandoned.
    pub audit: Option<AbandonedRow>,
}

#[derive(Clone)]
pub struct AbandonedRow {
    pub server: String,
    pub tool: String,
    pub input: String,
}

struct WaitingInput {
    connection: Arc<Connection>,
    upstream_id: Value,
    request: Value,
}

struct Parked {
    binding: CallBinding,
    expires: Instant,
    events: mpsc::UnboundedReceiver<CallEvent>,
    interim: InterimSlot,
    waiting: BTreeMap<String, WaitingInput>,
}

/// An abandoned call, for the gateway to audit.
pub struct Abandoned {
    pub binding: CallBinding,
}

#[derive(Default)]
pub struct InputBridge {
    parked: Mutex<HashMap<String, Parked>>,
    next_key: std::sync::atomic::AtomicU64,
}

/// What the client declared it can do, for this request.
pub struct ClientSide<'a> {
    pub capabilities: &'a Value,
    pub interim: &'a mpsc::UnboundedSender<Value>,
    pub log_messages: bool,
}

impl InputBridge {
    /// Starts `method` upstream in a task of its own and waits for its first step.
    #[allow(clippy::too_many_arguments)] // the request and the client's side of it, passed through once
    pub async fn start(
        &self,
        client: &ClientSide<'_>,
        binding: CallBinding,
        connection: Arc<Connection>,
        upstream_id: u64,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> (Step, Vec<Abandoned>) {
        let interim: InterimSlot = Arc::new(Mutex::new(Some((client.interim.clone(), client.log_messages))));
        let (events_sender, events) = mpsc::unbounded_channel();
        let (sink, mut related) = mpsc::unbounded_channel();
        let slot = Arc::clone(&interim);
        let method = method.to_string();
        tokio::spawn(async move {
            let request = connection.request_with_sink(upstream_id, &method, Some(params), timeout, sink);
            let inputs = events_sender.clone();
            let pump = async move {
                while let Some(message) = related.recv().await {
                    match message {
                        Related::Notification(message) => forward_interim(&slot, message),
                        Related::Request { connection, message } => {
                            let _ = inputs.send(CallEvent::Input { connection, message });
                        }
                    }
                }
            };
            let (outcome, ()) = tokio::join!(request, pump);
            let _ = events_sender.send(CallEvent::Done(outcome));
        });
        let parked =
            Parked { binding, expires: Instant::now() + INPUT_WAIT, events, interim, waiting: BTreeMap::new() };
        self.advance(client, parked).await
    }

    /// Resumes the call that `requestState` names with the client's answers.
    pub async fn resume(
        &self,
        client: &ClientSide<'_>,
        binding: &CallBinding,
        params: &Value,
    ) -> Result<(Step, DateTime<Utc>, Vec<Abandoned>), (RpcError, Vec<Abandoned>)> {
        let refused =
            || RpcError::new(None, INVALID_PARAMS, "requestState is unknown, expired or not for this request");
        let state = params.get("requestState").and_then(Value::as_str).ok_or_else(|| (refused(), Vec::new()))?;
        let mut parked = lock(&self.parked).remove(state).ok_or_else(|| (refused(), Vec::new()))?;
        if parked.expires <= Instant::now() {
            return Err((refused(), vec![abandon(parked).await]));
        }
        let same = parked.binding.subject == binding.subject
            && parked.binding.method == binding.method
            && parked.binding.name == binding.name;
        if !same {
            // Not this request's state: refused, and the call stays parked for the one it belongs to.
            lock(&self.parked).insert(state.to_string(), parked);
            return Err((refused(), Vec::new()));
        }
        let answers = params.get("inputResponses").and_then(Value::as_object).cloned().unwrap_or_default();
        let keys: Vec<String> = parked.waiting.keys().cloned().collect();
        for key in keys {
            if let Some(answer) = answers.get(&key)
                && let Some(waiting) = parked.waiting.remove(&key)
            {
                let outcome = match answer.get("error") {
                    Some(error) if answer.get("result").is_none() => Err(error.clone()),
                    _ => Ok(answer.clone()),
                };
                waiting.connection.respond(waiting.upstream_id, outcome).await;
            }
        }
        *lock(&parked.interim) = Some((client.interim.clone(), client.log_messages));
        let started_at = parked.binding.started_at;
        let (step, abandoned) = self.advance(client, parked).await;
        Ok((step, started_at, abandoned))
    }

    /// Waits for the call's next step: its answer, or requests that the client must answer.
    async fn advance(&self, client: &ClientSide<'_>, mut parked: Parked) -> (Step, Vec<Abandoned>) {
        loop {
            if !parked.waiting.is_empty() {
                // Re-ask what is still unanswered, together with anything new that is already queued.
                while let Ok(event) = parked.events.try_recv() {
                    match event {
                        CallEvent::Input { connection, message } => {
                            self.accept_input(client, &mut parked, connection, message).await
                        }
                        CallEvent::Done(outcome) => {
                            *lock(&parked.interim) = None;
                            return (Step::Done(outcome), Vec::new());
                        }
                    }
                }
                if !parked.waiting.is_empty() {
                    return self.park(parked);
                }
            }
            match parked.events.recv().await {
                Some(CallEvent::Input { connection, message }) => {
                    self.accept_input(client, &mut parked, connection, message).await;
                }
                Some(CallEvent::Done(outcome)) => {
                    *lock(&parked.interim) = None;
                    return (Step::Done(outcome), Vec::new());
                }
                None => return (Step::Done(Err(UpstreamError::Disconnected)), Vec::new()),
            }
        }
    }

    /// Takes one server-to-client request: answered at once when it is a ping or needs a capability
    /// the client did not declare, otherwise kept for the client under a key of ours.
    async fn accept_input(
        &self,
        client: &ClientSide<'_>,
        parked: &mut Parked,
        connection: Arc<Connection>,
        message: Value,
    ) {
        let upstream_id = message.get("id").cloned().unwrap_or(Value::Null);
        let method = message.get("method").and_then(Value::as_str).unwrap_or_default().to_string();
        if method == "ping" {
            connection.respond(upstream_id, Ok(json!({}))).await;
            return;
        }
        let capability = match method.as_str() {
            "sampling/createMessage" => "sampling",
            "elicitation/create" => "elicitation",
            "roots/list" => "roots",
            _ => "",
        };
        if capability.is_empty() || client.capabilities.get(capability).is_none() {
            let error = json!({"code": METHOD_NOT_FOUND, "message": format!("the client did not declare support for {method}")});
            connection.respond(upstream_id, Err(error)).await;
            return;
        }
        let number = self.next_key.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut request = Map::new();
        request.insert("method".into(), Value::String(method));
        if let Some(params) = message.get("params") {
            request.insert("params".into(), params.clone());
        }
        parked.waiting.insert(
            format!("castellan-input-{number}"),
            WaitingInput { connection, upstream_id, request: Value::Object(request) },
        );
    }

    /// Stores the call under a fresh state handle and builds the `input_required` result.
    fn park(&self, parked: Parked) -> (Step, Vec<Abandoned>) {
        *lock(&parked.interim) = None;
        let requests: Map<String, Value> =
            parked.waiting.iter().map(|(key, waiting)| (key.clone(), waiting.request.clone())).collect();
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let state = hex::encode(bytes);
        let mut map = lock(&self.parked);
        let now = Instant::now();
        let mut stale: Vec<String> =
            map.iter().filter(|(_, parked)| parked.expires <= now).map(|(key, _)| key.clone()).collect();
        if map.len() - stale.len() >= MAX_PARKED
            && let Some(oldest) = map.iter().min_by_key(|(_, parked)| parked.expires).map(|(key, _)| key.clone())
        {
            stale.push(oldest);
        }
        let expired: Vec<Parked> = stale.iter().filter_map(|key| map.remove(key)).collect();
        map.insert(state.clone(), parked);
        drop(map);
        let abandoned = expired
            .into_iter()
            .map(|parked| {
                let binding = parked.binding.clone();
                tokio::spawn(async move {
                    let _ = abandon(parked).await;
                });
                Abandoned { binding }
            })
            .collect();
        let result = json!({"resultType": "input_required", "inputRequests": requests, "requestState": state});
        (Step::InputRequired(result), abandoned)
    }
}

/// Tells the server its questions will not be answered.
async fn abandon(parked: Parked) -> Abandoned {
    for (_, waiting) in parked.waiting {
        let error = json!({"code": METHOD_NOT_FOUND, "message": "the client did not answer in time"});
        waiting.connection.respond(waiting.upstream_id, Err(error)).await;
    }
    Abandoned { binding: parked.binding }
}

fn forward_interim(slot: &InterimSlot, message: Value) {
    let is_log = message.get("method").and_then(Value::as_str) == Some("notifications/message");
    if let Some((sender, log_messages)) = lock(slot).as_ref()
        && (*log_messages || !is_log)
    {
        let _ = sender.send(message);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
