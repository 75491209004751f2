//! The MCP gateway: what each client method does. Transport concerns (HTTP status codes, headers,
//! sessions on the wire) live in `http.rs`; this module sees parsed messages and a `Principal`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use base64::Engine;
use castellan_actors::metrics::{ServerLabels, ToolCallLabels};
use castellan_actors::registry::LiveServer;
use castellan_actors::upstream::{Connection, Related, RpcOutcome, UpstreamError};
use castellan_actors::{AuditHandle, Event, EventBus, Metrics, PolicySnapshot, Registry};
use castellan_schema::audit::NewExecution;
use chrono::Utc;
use serde_json::{Value, json};

use super::input_required::{AbandonedRow, CallBinding, ClientSide, InputBridge, Step};
use super::jsonrpc::{self, FORBIDDEN, INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, REQUEST_TIMEOUT, RpcError};
use super::names;
use super::session::{Scope, Session, SessionStore};
use crate::identity::Principal;

/// Protocol revisions served with sessions, newest first.
pub const SESSION_PROTOCOL_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18"];
/// The most tools returned in one tools/list page.
const TOOLS_PAGE_SIZE: usize = 200;
/// Stored tool output is capped; the row says when it was cut.
const MAX_AUDITED_OUTPUT: usize = 256 * 1024;

/// (session id, client request id) of a call that is being forwarded.
type InFlightKey = (String, String);
/// The upstream connection a forwarded call went to and the id it has there.
type InFlightCall = (Arc<Connection>, u64);

/// Everything the gateway reads on the request path.
pub struct Gateway {
    pub registry: Registry,
    pub policy: Arc<ArcSwap<PolicySnapshot>>,
    pub audit: AuditHandle,
    pub bus: EventBus,
    pub metrics: Metrics,
    pub sessions: Arc<SessionStore>,
    pub call_timeout: Duration,
    pub server_call_timeouts: ArcSwap<BTreeMap<String, Duration>>,
    /// Every server the profile names, live or not: a call to one that is down is "unavailable",
    /// not "unknown tool".
    pub configured_servers: ArcSwap<BTreeSet<String>>,
    /// In-flight upstream requests by (session, client request id), so a client's cancellation reaches them.
    in_flight: Mutex<HashMap<InFlightKey, InFlightCall>>,
    /// Where each resource URI came from, learned from resources/list, for the aggregated endpoint.
    resource_origins: Mutex<HashMap<String, String>>,
    /// Calls of 2026-07-28 clients waiting for the client's input.
    input_bridge: InputBridge,
}

/// Who is calling and through which door.
pub struct CallContext<'a> {
    pub principal: &'a Principal,
    pub scope: &'a Scope,
    pub session_id: Option<&'a str>,
    pub trace_id: &'a str,
    /// Set when the client can take interim messages (an SSE answer): progress, log lines and
    /// server-to-client requests of this call are relayed to it. Without it they are not.
    pub relay: Option<&'a ClientRelay>,
}

/// The way back to the client during one call.
pub struct ClientRelay {
    pub interim: tokio::sync::mpsc::UnboundedSender<Value>,
    /// The session, for relaying server-to-client requests; a stateless client has none, and
    /// such requests are refused to the server.
    pub session: Option<Arc<Session>>,
    /// Whether log lines (`notifications/message`) go to the client.
    pub log_messages: bool,
    /// What the client declared (for a stateless client, in this request's `_meta`).
    pub client_capabilities: Value,
}

/// Which client capability a server-to-client request needs.
fn capability_for(method: &str) -> Option<&'static str> {
    match method {
        "sampling/createMessage" => Some("sampling"),
        "elicitation/create" => Some("elicitation"),
        "roots/list" => Some("roots"),
        _ => None,
    }
}

impl Gateway {
    pub fn new(
        registry: Registry,
        policy: Arc<ArcSwap<PolicySnapshot>>,
        audit: AuditHandle,
        bus: EventBus,
        metrics: Metrics,
        sessions: Arc<SessionStore>,
        call_timeout: Duration,
    ) -> Self {
        Self {
            registry,
            policy,
            audit,
            bus,
            metrics,
            sessions,
            call_timeout,
            server_call_timeouts: ArcSwap::from_pointee(BTreeMap::new()),
            configured_servers: ArcSwap::from_pointee(BTreeSet::new()),
            in_flight: Mutex::new(HashMap::new()),
            resource_origins: Mutex::new(HashMap::new()),
            input_bridge: InputBridge::default(),
        }
    }

    /// Answers one request (everything but initialize, which the transport handles).
    pub async fn handle_request(
        &self,
        call: &CallContext<'_>,
        id: &Value,
        method: &str,
        params: Option<Value>,
    ) -> Value {
        let outcome = match method {
            "ping" => Ok(json!({})),
            "tools/list" => self.list_tools(call, params.as_ref()),
            "tools/call" => return self.call_tool(call, id, params).await,
            "prompts/list" => self.fan_out_list(call, "prompts/list", "prompts", params).await,
            "resources/list" => self.fan_out_list(call, "resources/list", "resources", params).await,
            "resources/templates/list" => {
                self.fan_out_list(call, "resources/templates/list", "resourceTemplates", params).await
            }
            "prompts/get" => self.forward_named(call, id, "prompts/get", params).await,
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                self.forward_resource(call, id, method, params).await
            }
            "completion/complete" => self.forward_completion(call, id, params).await,
            "logging/setLevel" => self.broadcast_set_level(call, params).await,
            _ => Err(RpcError::new(Some(id.clone()), METHOD_NOT_FOUND, format!("method not found: {method}"))),
        };
        match outcome {
            Ok(result) => jsonrpc::result_message(id, result),
            Err(mut error) => {
                error.id = Some(id.clone());
                error.to_message()
            }
        }
    }

    /// A notification from the client: cancellation is relayed, the rest need no answer.
    pub async fn handle_notification(&self, call: &CallContext<'_>, method: &str, params: Option<Value>) {
        if method != "notifications/cancelled" {
            return;
        }
        let Some(request_id) = params.as_ref().and_then(|params| params.get("requestId")) else { return };
        let key = (call.session_id.unwrap_or_default().to_string(), request_id.to_string());
        let target = lock(&self.in_flight).get(&key).cloned();
        if let Some((connection, upstream_id)) = target {
            connection.cancel_request(upstream_id, "cancelled by the client").await;
        }
    }

    /// The servers this endpoint shows: all of them, or the one in the path.
    fn servers_in_scope(&self, scope: &Scope) -> Vec<Arc<LiveServer>> {
        match scope {
            Scope::Aggregated => self.registry.snapshot().values().cloned().collect(),
            Scope::Server(name) => self.registry.get(name).into_iter().collect(),
        }
    }

    fn list_tools(&self, call: &CallContext<'_>, params: Option<&Value>) -> Result<Value, RpcError> {
        let policy = self.policy.load();
        let prefixed = *call.scope == Scope::Aggregated;
        let mut tools = Vec::new();
        for server in self.servers_in_scope(call.scope) {
            for tool in &server.tools {
                if !policy.decide(call.principal.tier, &server.name, &tool.name).is_allowed() {
                    continue;
                }
                let mut definition = tool.definition.clone();
                definition["name"] = Value::String(names::exposed_name(&server.name, &tool.name, prefixed));
                tools.push(definition);
            }
        }
        let offset = match params.and_then(|params| params.get("cursor")) {
            None | Some(Value::Null) => 0,
            Some(cursor) => {
                decode_cursor(cursor).ok_or_else(|| RpcError::new(None, INVALID_PARAMS, "invalid cursor"))?
            }
        };
        let page: Vec<Value> = tools.iter().skip(offset).take(TOOLS_PAGE_SIZE).cloned().collect();
        let mut result = json!({"tools": page});
        if offset + TOOLS_PAGE_SIZE < tools.len() {
            result["nextCursor"] = Value::String(encode_cursor(offset + TOOLS_PAGE_SIZE));
        }
        Ok(result)
    }

    /// Finds (server, tool name upstream) for a name as the client wrote it. Exact bytes only.
    fn resolve_tool(&self, scope: &Scope, exposed: &str) -> Option<(Arc<LiveServer>, String)> {
        let (server, tool_part, prefixed) = match scope {
            Scope::Aggregated => {
                let (server, tool) = names::split_prefixed(exposed)?;
                (self.registry.get(server)?, tool, true)
            }
            Scope::Server(name) => (self.registry.get(name)?, exposed, false),
        };
        if let Some(tool) = server.tool(tool_part)
            && names::exposed_name(&server.name, &tool.name, prefixed) == exposed
        {
            let name = tool.name.clone();
            return Some((server, name));
        }
        let found = server
            .tools
            .iter()
            .find(|tool| names::exposed_name(&server.name, &tool.name, prefixed) == exposed)?
            .name
            .clone();
        Some((server, found))
    }

    /// tools/call: policy, the upstream call, the durable audit row, then the answer.
    #[tracing::instrument(skip_all, fields(trace_id = %call.trace_id, user = %call.principal.subject))]
    async fn call_tool(&self, call: &CallContext<'_>, id: &Value, params: Option<Value>) -> Value {
        let started_at = Utc::now();
        let clock = Instant::now();
        let params = params.unwrap_or_else(|| json!({}));
        let requested = params.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        let arguments = params.get("arguments").cloned().unwrap_or_else(|| json!({}));
        let mut record = AuditDraft {
            server: match call.scope {
                Scope::Server(name) => name.clone(),
                Scope::Aggregated => {
                    names::split_prefixed(&requested).map(|(server, _)| server.to_string()).unwrap_or_default()
                }
            },
            tool: requested.clone(),
            input: arguments.to_string(),
        };
        if !arguments.is_object() {
            return self
                .finish(
                    call,
                    id,
                    record,
                    started_at,
                    clock,
                    Finish::refused("rpc_error", INVALID_PARAMS, "arguments must be an object"),
                )
                .await;
        }
        let Some((server, tool)) = self.resolve_tool(call.scope, &requested) else {
            if self.registry.get(&record.server).is_none() && self.configured_servers.load().contains(&record.server) {
                let message = format!("the server '{}' is not running; it is being restarted", record.server);
                return self
                    .finish(call, id, record, started_at, clock, Finish::refused("failed", INTERNAL_ERROR, &message))
                    .await;
            }
            let message = format!("unknown tool: {requested}");
            return self
                .finish(call, id, record, started_at, clock, Finish::refused("rpc_error", INVALID_PARAMS, &message))
                .await;
        };
        record.server = server.name.clone();
        record.tool = tool.clone();
        if let castellan_actors::Decision::Deny { rule } =
            self.policy.load().decide(call.principal.tier, &server.name, &tool)
        {
            let message = format!("forbidden: denied by rule '{rule}'");
            return self
                .finish(call, id, record, started_at, clock, Finish::refused("denied", FORBIDDEN, &message))
                .await;
        }
        if !self.audit.is_available() {
            let message = "audit unavailable: the call was refused and the tool did not run";
            return self
                .finish(call, id, record, started_at, clock, Finish::refused("failed", INTERNAL_ERROR, message))
                .await;
        }
        let mut upstream_params = params.clone();
        upstream_params["name"] = Value::String(tool.clone());
        let timeout = self.server_call_timeouts.load().get(&server.name).copied().unwrap_or(self.call_timeout);
        let connection = Arc::clone(&server.connection);
        let upstream_id = connection.allocate_id();
        let key = (call.session_id.unwrap_or_default().to_string(), id.to_string());
        lock(&self.in_flight).insert(key.clone(), (Arc::clone(&connection), upstream_id));
        let binding = CallBinding {
            subject: call.principal.subject.clone(),
            method: "tools/call".into(),
            name: requested.clone(),
            started_at,
            trace_id: call.trace_id.to_string(),
            audit: Some(AbandonedRow {
                server: record.server.clone(),
                tool: record.tool.clone(),
                input: record.input.clone(),
            }),
        };
        let run =
            self.run_upstream(call, &connection, upstream_id, "tools/call", upstream_params, timeout, binding).await;
        lock(&self.in_flight).remove(&key);
        let (outcome, started_at) = match run {
            Ok((Step::Done(outcome), started_at)) => (outcome, started_at),
            Ok((Step::InputRequired(result), _)) => return jsonrpc::result_message(id, result),
            Err(mut error) => {
                error.id = Some(id.clone());
                return error.to_message();
            }
        };
        let finish = match outcome {
            Ok(Ok(result)) => {
                let status =
                    if result.get("isError").and_then(Value::as_bool) == Some(true) { "tool_error" } else { "success" };
                Finish { status, answer: Ok(result), error_message: None }
            }
            Ok(Err(error)) => {
                let message = error.get("message").and_then(Value::as_str).unwrap_or("error").to_string();
                Finish { status: "rpc_error", answer: Err(error), error_message: Some(message) }
            }
            Err(UpstreamError::Timeout(after)) => {
                let message = format!("the tool did not answer within {} ms", after.as_millis());
                Finish::refused("timeout", REQUEST_TIMEOUT, &message)
            }
            Err(UpstreamError::Cancelled) => Finish::refused("failed", INTERNAL_ERROR, "cancelled by the client"),
            Err(error) => {
                tracing::warn!(server = %server.name, %error, "tool call failed upstream");
                let message = format!("the server '{}' failed during the call", server.name);
                Finish::refused("failed", INTERNAL_ERROR, &message)
            }
        };
        self.finish(call, id, record, started_at, clock, finish).await
    }

    /// Commits the audit row, then builds the answer. No answer leaves without its row.
    async fn finish(
        &self,
        call: &CallContext<'_>,
        id: &Value,
        record: AuditDraft,
        started_at: chrono::DateTime<Utc>,
        clock: Instant,
        finish: Finish,
    ) -> Value {
        let output = match &finish.answer {
            Ok(result) => Some(truncate(result.to_string())),
            Err(error) => Some(truncate(error.to_string())),
        };
        let completed_at = Utc::now();
        let row = NewExecution {
            server: record.server.clone(),
            tool: record.tool.clone(),
            input: record.input,
            output,
            status: finish.status.to_string(),
            error_message: finish.error_message.clone(),
            user_id: Some(call.principal.subject.clone()),
            session_id: call.session_id.map(str::to_string),
            trace_id: call.trace_id.to_string(),
            started_at,
            completed_at,
            duration_ms: (completed_at - started_at).num_milliseconds(),
        };
        let committed = self.audit.record(row).await;
        let elapsed = clock.elapsed();
        self.metrics
            .tool_calls
            .get_or_create(&ToolCallLabels {
                server: record.server.clone(),
                tool: record.tool.clone(),
                status: finish.status.to_string(),
            })
            .inc();
        self.metrics
            .tool_call_seconds
            .get_or_create(&ServerLabels { server: record.server.clone() })
            .observe(elapsed.as_secs_f64());
        // The access line of the call; arguments and results stay out of logs (they may hold secrets).
        tracing::info!(
            trace_id = %call.trace_id,
            user = %call.principal.subject,
            server = %record.server,
            tool = %record.tool,
            status = finish.status,
            duration_ms = elapsed.as_millis() as u64,
            audited = committed.is_ok(),
            "tool call"
        );
        self.bus.publish(Event::ToolCall {
            server: record.server,
            tool: record.tool,
            status: finish.status.to_string(),
            user: Some(call.principal.subject.clone()),
            trace_id: call.trace_id.to_string(),
            duration_ms: elapsed.as_millis() as i64,
        });
        if committed.is_err() {
            return jsonrpc::error_message(
                id,
                INTERNAL_ERROR,
                "audit unavailable: the result is withheld because it could not be recorded",
            );
        }
        match finish.answer {
            Ok(result) => jsonrpc::result_message(id, result),
            Err(error) => json!({"jsonrpc": "2.0", "id": id, "error": error}),
        }
    }

    fn visible(&self, principal: &Principal, server: &LiveServer) -> bool {
        let policy = self.policy.load();
        server.tools.iter().any(|tool| policy.decide(principal.tier, &server.name, &tool.name).is_allowed())
            || policy.decide(principal.tier, &server.name, "*").is_allowed()
    }

    /// prompts/list, resources/list, resources/templates/list over every visible server.
    async fn fan_out_list(
        &self,
        call: &CallContext<'_>,
        method: &str,
        field: &str,
        params: Option<Value>,
    ) -> Result<Value, RpcError> {
        let servers: Vec<_> = self
            .servers_in_scope(call.scope)
            .into_iter()
            .filter(|server| self.visible(call.principal, server))
            .collect();
        if let Scope::Server(_) = call.scope {
            let server = servers.first().ok_or_else(|| RpcError::new(None, INVALID_PARAMS, "server not available"))?;
            return self.forward(server, method, params).await;
        }
        let capability = field_capability(field);
        let mut items = Vec::new();
        for server in servers.iter().filter(|server| server.identity.capabilities.get(capability).is_some()) {
            let mut cursor: Option<Value> = None;
            for _ in 0..100 {
                let page_params = cursor.take().map(|cursor| json!({"cursor": cursor}));
                let Ok(result) = self.forward(server, method, page_params).await else { break };
                for mut item in result.get(field).and_then(Value::as_array).cloned().unwrap_or_default() {
                    if field == "prompts"
                        && let Some(name) = item.get("name").and_then(Value::as_str)
                    {
                        item["name"] = Value::String(format!("{}{}{name}", server.name, names::SEPARATOR));
                    }
                    if field == "resources"
                        && let Some(uri) = item.get("uri").and_then(Value::as_str)
                    {
                        lock(&self.resource_origins).insert(uri.to_string(), server.name.clone());
                    }
                    items.push(item);
                }
                match result.get("nextCursor") {
                    Some(next) if !next.is_null() => cursor = Some(next.clone()),
                    _ => break,
                }
            }
        }
        Ok(json!({ field: items }))
    }

    /// Sends a request upstream on behalf of `call`, relaying what the server sends in its course.
    async fn relayed_request(
        &self,
        call: &CallContext<'_>,
        connection: &Arc<Connection>,
        upstream_id: u64,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<RpcOutcome, UpstreamError> {
        let Some(relay) = call.relay else {
            return connection.request_with_id(upstream_id, method, Some(params), timeout).await;
        };
        let (sink, mut related) = tokio::sync::mpsc::unbounded_channel();
        let request = connection.request_with_sink(upstream_id, method, Some(params), timeout, sink);
        // The sink is dropped when the request ends, so the pump drains what came before the answer.
        let pump = async {
            while let Some(message) = related.recv().await {
                relay_one(relay, message).await;
            }
        };
        let (outcome, ()) = tokio::join!(request, pump);
        outcome
    }

    async fn forward_for(
        &self,
        call: &CallContext<'_>,
        server: &LiveServer,
        method: &str,
        params: Value,
        client_name: &str,
    ) -> Result<Value, RpcError> {
        let connection = Arc::clone(&server.connection);
        let upstream_id = connection.allocate_id();
        let binding = CallBinding {
            subject: call.principal.subject.clone(),
            method: method.to_string(),
            name: client_name.to_string(),
            started_at: Utc::now(),
            trace_id: call.trace_id.to_string(),
            audit: None,
        };
        match self.run_upstream(call, &connection, upstream_id, method, params, self.call_timeout, binding).await? {
            (Step::Done(outcome), _) => rpc_outcome(&server.name, outcome),
            (Step::InputRequired(result), _) => Ok(result),
        }
    }

    /// Runs a request upstream for `call`: for a stateless client through the input bridge (which
    /// may park it and answer `input_required`), otherwise with interim messages relayed directly.
    #[allow(clippy::too_many_arguments)] // one upstream request and what binds it to its caller
    async fn run_upstream(
        &self,
        call: &CallContext<'_>,
        connection: &Arc<Connection>,
        upstream_id: u64,
        method: &str,
        mut params: Value,
        timeout: Duration,
        binding: CallBinding,
    ) -> Result<(Step, chrono::DateTime<Utc>), RpcError> {
        let resuming = params.get("requestState").is_some();
        let Some(relay) = call.relay.filter(|relay| relay.session.is_none()) else {
            if resuming {
                return Err(RpcError::new(
                    None,
                    INVALID_PARAMS,
                    "requestState is only meaningful to revision 2026-07-28 clients",
                ));
            }
            let started_at = binding.started_at;
            let outcome = self.relayed_request(call, connection, upstream_id, method, params, timeout).await;
            return Ok((Step::Done(outcome), started_at));
        };
        let client = ClientSide {
            capabilities: &relay.client_capabilities,
            interim: &relay.interim,
            log_messages: relay.log_messages,
        };
        let (step, started_at, abandoned) = if resuming {
            match self.input_bridge.resume(&client, &binding, &params).await {
                Ok(resumed) => resumed,
                Err((error, abandoned)) => {
                    self.audit_abandoned(abandoned).await;
                    return Err(error);
                }
            }
        } else {
            if let Some(params) = params.as_object_mut() {
                params.remove("inputResponses");
            }
            let started_at = binding.started_at;
            let (step, abandoned) = self
                .input_bridge
                .start(&client, binding, Arc::clone(connection), upstream_id, method, params, timeout)
                .await;
            (step, started_at, abandoned)
        };
        self.audit_abandoned(abandoned).await;
        Ok((step, started_at))
    }

    /// Writes the row of each tools/call that a stateless client left waiting for input.
    async fn audit_abandoned(&self, abandoned: Vec<super::input_required::Abandoned>) {
        for call in abandoned {
            let Some(row) = call.binding.audit else { continue };
            let completed_at = Utc::now();
            let message = "abandoned: the client did not answer the server's request for input in time";
            let record = NewExecution {
                server: row.server,
                tool: row.tool,
                input: row.input,
                output: None,
                status: "failed".into(),
                error_message: Some(message.into()),
                user_id: Some(call.binding.subject),
                session_id: None,
                trace_id: call.binding.trace_id,
                started_at: call.binding.started_at,
                completed_at,
                duration_ms: (completed_at - call.binding.started_at).num_milliseconds(),
            };
            if let Err(error) = self.audit.record(record).await {
                tracing::error!(%error, "could not audit an abandoned call");
            }
        }
    }

    async fn forward(&self, server: &LiveServer, method: &str, params: Option<Value>) -> Result<Value, RpcError> {
        rpc_outcome(&server.name, server.connection.request(method, params, self.call_timeout).await)
    }
}

/// Hands one related message to the client: notifications as they are, server-to-client requests
/// under an id of ours, or refused when the client never declared the capability they need.
async fn relay_one(relay: &ClientRelay, related: Related) {
    match related {
        Related::Notification(message) => {
            let is_log = message.get("method").and_then(Value::as_str) == Some("notifications/message");
            if relay.log_messages || !is_log {
                let _ = relay.interim.send(message);
            }
        }
        Related::Request { connection, mut message } => {
            let upstream_id = message.get("id").cloned().unwrap_or(Value::Null);
            let method = message.get("method").and_then(Value::as_str).unwrap_or_default();
            if method == "ping" {
                connection.respond(upstream_id, Ok(json!({}))).await;
                return;
            }
            let Some(session) = &relay.session else {
                let error = json!({"code": METHOD_NOT_FOUND, "message": format!("{method} cannot be relayed to a client of revision 2026-07-28")});
                connection.respond(upstream_id, Err(error)).await;
                return;
            };
            let supported =
                capability_for(method).is_some_and(|capability| relay.client_capabilities.get(capability).is_some());
            if !supported {
                let error =
                    json!({"code": METHOD_NOT_FOUND, "message": format!("the client does not support {method}")});
                connection.respond(upstream_id, Err(error)).await;
                return;
            }
            let client_id = session.register_client_request(Arc::clone(&connection), upstream_id.clone());
            message["id"] = Value::String(client_id);
            if relay.interim.send(message).is_err() {
                let error = json!({"code": INTERNAL_ERROR, "message": "the client has gone away"});
                connection.respond(upstream_id, Err(error)).await;
            }
        }
    }
}

/// A JSON-RPC error for the client from what the upstream exchange produced.
fn rpc_outcome(server: &str, outcome: Result<RpcOutcome, UpstreamError>) -> Result<Value, RpcError> {
    {
        match outcome {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(error)) => {
                let code = error.get("code").and_then(Value::as_i64).unwrap_or(INTERNAL_ERROR);
                let message = error.get("message").and_then(Value::as_str).unwrap_or("upstream error").to_string();
                Err(RpcError::new(None, code, message))
            }
            Err(UpstreamError::Timeout(_)) => {
                Err(RpcError::new(None, REQUEST_TIMEOUT, "the server did not answer in time"))
            }
            Err(_) => Err(RpcError::new(None, INTERNAL_ERROR, format!("the server '{server}' is not available"))),
        }
    }
}

impl Gateway {
    fn visible_server(&self, call: &CallContext<'_>, name: &str) -> Result<Arc<LiveServer>, RpcError> {
        let in_scope = match call.scope {
            Scope::Aggregated => true,
            Scope::Server(scoped) => scoped == name,
        };
        self.registry
            .get(name)
            .filter(|server| in_scope && self.visible(call.principal, server))
            .ok_or_else(|| RpcError::new(None, INVALID_PARAMS, format!("unknown server: {name}")))
    }

    /// prompts/get: the aggregated endpoint's names carry the server prefix.
    async fn forward_named(
        &self,
        call: &CallContext<'_>,
        _: &Value,
        method: &str,
        params: Option<Value>,
    ) -> Result<Value, RpcError> {
        let mut params = params.unwrap_or_else(|| json!({}));
        let name = params.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        let (server_name, bare) = match call.scope {
            Scope::Aggregated => names::split_prefixed(&name)
                .map(|(s, n)| (s.to_string(), n.to_string()))
                .ok_or_else(|| RpcError::new(None, INVALID_PARAMS, format!("unknown prompt: {name}")))?,
            Scope::Server(server) => (server.clone(), name.clone()),
        };
        let server = self.visible_server(call, &server_name)?;
        params["name"] = Value::String(bare);
        self.forward_for(call, &server, method, params, &name).await
    }

    async fn forward_resource(
        &self,
        call: &CallContext<'_>,
        _: &Value,
        method: &str,
        params: Option<Value>,
    ) -> Result<Value, RpcError> {
        let uri = params
            .as_ref()
            .and_then(|params| params.get("uri"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let server_name = match call.scope {
            Scope::Server(server) => server.clone(),
            Scope::Aggregated => lock(&self.resource_origins)
                .get(&uri)
                .cloned()
                .ok_or_else(|| RpcError::new(None, -32002, format!("resource not found: {uri}")))?,
        };
        let server = self.visible_server(call, &server_name)?;
        if method == "resources/read" {
            return self.forward_for(call, &server, method, params.unwrap_or_else(|| json!({})), &uri).await;
        }
        self.forward(&server, method, params).await
    }

    async fn forward_completion(
        &self,
        call: &CallContext<'_>,
        _: &Value,
        params: Option<Value>,
    ) -> Result<Value, RpcError> {
        let mut params = params.unwrap_or_else(|| json!({}));
        let reference = params.get("ref").cloned().unwrap_or_default();
        let server_name = match (call.scope, reference.get("type").and_then(Value::as_str)) {
            (Scope::Server(server), _) => server.clone(),
            (Scope::Aggregated, Some("ref/prompt")) => {
                let name = reference.get("name").and_then(Value::as_str).unwrap_or_default();
                let (server, bare) =
                    names::split_prefixed(name).ok_or_else(|| RpcError::new(None, INVALID_PARAMS, "unknown prompt"))?;
                params["ref"]["name"] = Value::String(bare.to_string());
                server.to_string()
            }
            (Scope::Aggregated, _) => {
                let uri = reference.get("uri").and_then(Value::as_str).unwrap_or_default();
                lock(&self.resource_origins)
                    .get(uri)
                    .cloned()
                    .ok_or_else(|| RpcError::new(None, INVALID_PARAMS, "unknown resource"))?
            }
        };
        let server = self.visible_server(call, &server_name)?;
        self.forward(&server, "completion/complete", Some(params)).await
    }

    async fn broadcast_set_level(&self, call: &CallContext<'_>, params: Option<Value>) -> Result<Value, RpcError> {
        for server in self.servers_in_scope(call.scope) {
            if server.identity.capabilities.get("logging").is_some() && self.visible(call.principal, &server) {
                let _ = self.forward(&server, "logging/setLevel", params.clone()).await;
            }
        }
        Ok(json!({}))
    }
}

struct AuditDraft {
    server: String,
    tool: String,
    input: String,
}

struct Finish {
    status: &'static str,
    answer: Result<Value, Value>,
    error_message: Option<String>,
}

impl Finish {
    fn refused(status: &'static str, code: i64, message: &str) -> Self {
        Self {
            status,
            answer: Err(json!({"code": code, "message": message})),
            error_message: Some(message.to_string()),
        }
    }
}

fn field_capability(field: &str) -> &'static str {
    match field {
        "prompts" => "prompts",
        _ => "resources",
    }
}

fn truncate(mut text: String) -> String {
    if text.len() > MAX_AUDITED_OUTPUT {
        let mut cut = MAX_AUDITED_OUTPUT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("…[truncated]");
    }
    text
}

fn encode_cursor(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("o:{offset}"))
}

fn decode_cursor(cursor: &Value) -> Option<usize> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor.as_str()?).ok()?;
    std::str::from_utf8(&bytes).ok()?.strip_prefix("o:")?.parse().ok()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        assert_eq!(decode_cursor(&Value::String(encode_cursor(400))), Some(400));
        // "bzp4" is base64 for "o:x": the right prefix with no number after it.
        for bad in [json!("x"), json!(5), json!("bzp4"), json!("")] {
            assert_eq!(decode_cursor(&bad), None, "{bad}");
        }
    }
}
