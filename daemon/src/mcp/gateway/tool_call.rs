//! tools/call: the MCP adapter of the governed chain. It resolves the name the client wrote, hands
//! the request to [`crate::governance::Chain`], and runs the upstream call (relayed, or bridged for
//! stateless clients) when the chain gets that far.

use std::sync::Arc;
use std::time::Duration;

use castellan_actors::upstream::{Connection, Related, RpcOutcome, UpstreamError};
use castellan_schema::audit::{ExecutionKind, NewExecution};
use chrono::Utc;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::{CallContext, ClientRelay, Gateway, capability_for, lock};
use crate::governance::{
    Executed, HookIdentity, RbacTarget, Request, Resolution, SnapshotHooks, SnapshotPins, Target, Upstream,
};
use crate::mcp::answer::{self, Answer};
use crate::mcp::input_required::{AbandonedRow, CallBinding, ClientSide, Step};
use crate::mcp::jsonrpc::{INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, RpcError};
use crate::mcp::names;
use crate::mcp::session::Scope;

impl Gateway {
    /// tools/call: resolve the name, then the governed chain; its outcome in MCP terms.
    pub(super) async fn call_tool(&self, call: &CallContext<'_>, id: &Value, params: Option<Value>) -> Answer {
        let params = params.unwrap_or_else(|| json!({}));
        let requested = params.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        let arguments = params.get("arguments").cloned().unwrap_or_else(|| json!({}));
        let resolution = self.resolve_tool_call(call.scope, &requested, &arguments);
        let request = self.request(call, id, ExecutionKind::Tool, &requested, arguments);
        let upstream = McpUpstream { gateway: self, call, id, method: "tools/call", params: &params };
        let governed = self.govern(request, resolution, &upstream).await;
        answer::render(id, ExecutionKind::Tool, governed.outcome)
    }

    /// The chain's view of one MCP request.
    pub(super) fn request<'a>(
        &self,
        call: &'a CallContext<'_>,
        id: &Value,
        kind: ExecutionKind,
        requested: &'a str,
        arguments: Value,
    ) -> Request<'a> {
        Request {
            principal: call.principal,
            client: call.client,
            kind,
            requested,
            arguments,
            session_id: call.session_id,
            trace_id: call.trace_id,
            hook: HookIdentity { tool_use_id: format!("jsonrpc:{id}") },
        }
    }

    /// What a `tools/call` names: one (server, tool) of the registry snapshot, by exact bytes.
    fn resolve_tool_call(&self, scope: &Scope, requested: &str, arguments: &Value) -> Resolution {
        let server_guess = match scope {
            Scope::Server(name) => name.clone(),
            Scope::Aggregated => {
                names::split_prefixed(requested).map(|(server, _)| server.to_string()).unwrap_or_default()
            }
        };
        if !arguments.is_object() {
            return Resolution::Invalid { server: server_guess, message: "arguments must be an object".into() };
        }
        match self.resolve_tool(scope, requested) {
            Some((server, tool)) => {
                let definition_hash = server.tool(&tool).map(|entry| entry.definition_hash.clone());
                Resolution::Found(Target {
                    server: server.name.clone(),
                    name: tool,
                    rbac: RbacTarget::Tool,
                    definition_hash,
                })
            }
            None if self.registry.get(&server_guess).is_none()
                && self.configured_servers.load().contains(&server_guess) =>
            {
                Resolution::ServerDown { server: server_guess }
            }
            None => Resolution::Unknown { server: server_guess, message: format!("unknown tool: {requested}") },
        }
    }

    /// Runs `request` through the governed chain, under the snapshot in force now.
    pub(super) async fn govern(
        &self,
        request: Request<'_>,
        resolution: Resolution,
        upstream: &McpUpstream<'_>,
    ) -> crate::governance::Governed {
        self.govern_with(request, resolution, upstream).await
    }

    /// [`Gateway::govern`] for any surface's upstream (an extension's route).
    pub async fn govern_with(
        &self,
        request: Request<'_>,
        resolution: Resolution,
        upstream: &dyn Upstream,
    ) -> crate::governance::Governed {
        let snapshot = self.policies.load();
        let hooks = SnapshotHooks { runner: &self.hooks, chains: &snapshot.hooks };
        let pins = SnapshotPins { pins: &self.tool_pins, mode: snapshot.tool_changes };
        let chain = crate::governance::Chain {
            policy: &snapshot.policy,
            limits: &snapshot.limits,
            pins: &pins,
            hooks: &hooks,
            audit: &self.audit,
            redactor: crate::redaction::current(),
            clock: &crate::governance::SystemClock,
            metrics: &self.metrics,
            bus: &self.bus,
        };
        chain.govern(request, resolution, upstream).await
    }

    /// Runs a tools/call upstream once the chain has admitted it.
    async fn execute_tool_call(
        &self,
        call: &CallContext<'_>,
        id: &Value,
        params: &Value,
        target: &Target,
        arguments: Value,
    ) -> Executed {
        let Some(server) = self.registry.get(&target.server) else {
            return Executed::Failed(format!("the server '{}' is not running; it is being restarted", target.server));
        };
        let requested = params.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        let input = crate::redaction::current().redact(&arguments.to_string()).into_owned();
        let mut upstream_params = params.clone();
        upstream_params["name"] = Value::String(target.name.clone());
        upstream_params["arguments"] = arguments;
        let timeout = self.server_call_timeouts.load().get(&server.name).copied().unwrap_or(self.call_timeout);
        let connection = Arc::clone(&server.connection);
        if connection.is_in_process() {
            // An extension's tool: run inline with the caller the chain established.
            let caller = crate::extension_tools::caller(call.principal, call.trace_id);
            let request = connection.request("tools/call", Some(upstream_params), timeout);
            return executed_outcome(&server.name, crate::extension_tools::with_caller(caller, request).await);
        }
        let upstream_id = connection.allocate_id();
        let key = (call.session_id.unwrap_or_default().to_string(), id.to_string());
        lock(&self.in_flight).insert(key.clone(), (Arc::clone(&connection), upstream_id));
        let binding = CallBinding {
            subject: call.principal.subject.clone(),
            method: "tools/call".into(),
            name: requested,
            started_at: Utc::now(),
            trace_id: call.trace_id.to_string(),
            audit: Some(AbandonedRow { server: target.server.clone(), tool: target.name.clone(), input }),
        };
        let run =
            self.run_upstream(call, &connection, upstream_id, "tools/call", upstream_params, timeout, binding).await;
        lock(&self.in_flight).remove(&key);
        match run {
            Ok((step, _)) => executed(&server.name, step),
            Err(error) => Executed::Answered(Err(json!({"code": error.code, "message": error.message}))),
        }
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

    /// Runs a request upstream for `call`: for a stateless client through the input bridge (which
    /// may park it and answer `input_required`), otherwise with interim messages relayed directly.
    #[allow(clippy::too_many_arguments)] // one upstream request and what binds it to its caller
    pub(super) async fn run_upstream(
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
    async fn audit_abandoned(&self, abandoned: Vec<crate::mcp::input_required::Abandoned>) {
        for call in abandoned {
            let Some(row) = call.binding.audit else { continue };
            let completed_at = Utc::now();
            let message = "abandoned: the client did not answer the server's request for input in time";
            let record = NewExecution {
                server: row.server,
                tool: row.tool,
                kind: castellan_schema::audit::ExecutionKind::Tool,
                input: row.input,
                output: None,
                status: castellan_schema::audit::ExecutionStatus::Failed,
                error_message: Some(message.into()),
                user_id: Some(call.binding.subject),
                session_id: None,
                trace_id: call.binding.trace_id,
                started_at: call.binding.started_at,
                completed_at,
                duration_ms: (completed_at - call.binding.started_at).num_milliseconds(),
                hook_events: Vec::new(),
            };
            if let Err(error) = self.audit.record(record).await {
                tracing::error!(%error, "could not audit an abandoned call");
            }
        }
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

/// The upstream of one MCP request, for the chain: what runs once the request is admitted.
pub(super) struct McpUpstream<'a> {
    pub gateway: &'a Gateway,
    pub call: &'a CallContext<'a>,
    pub id: &'a Value,
    pub method: &'a str,
    pub params: &'a Value,
}

impl Upstream for McpUpstream<'_> {
    fn execute<'a>(&'a self, target: &'a Target, arguments: Value) -> BoxFuture<'a, Executed> {
        Box::pin(async move {
            let gateway = self.gateway;
            match self.method {
                "tools/call" => gateway.execute_tool_call(self.call, self.id, self.params, target, arguments).await,
                _ => gateway.execute_forwarded(self.call, self.method, target, arguments).await,
            }
        })
    }
}

/// How an upstream exchange ended, for the chain.
pub(super) fn executed(server: &str, step: Step) -> Executed {
    match step {
        Step::InputRequired(result) => Executed::Suspended(result),
        Step::Done(outcome) => executed_outcome(server, outcome),
    }
}

pub(super) fn executed_outcome(server: &str, outcome: Result<RpcOutcome, UpstreamError>) -> Executed {
    match outcome {
        Ok(answer) => Executed::Answered(answer),
        Err(UpstreamError::Timeout(after)) => Executed::Timeout(after),
        Err(UpstreamError::Cancelled) => Executed::Cancelled,
        Err(error) => {
            tracing::warn!(server, %error, "request failed upstream");
            Executed::Failed(format!("the server '{server}' failed during the call"))
        }
    }
}
