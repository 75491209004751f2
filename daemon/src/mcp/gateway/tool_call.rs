//! tools/call: policy, the upstream call (relayed, or bridged for stateless clients), the durable
//! audit row, then the answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use castellan_actors::Event;
use castellan_actors::metrics::{ServerLabels, ToolCallLabels};
use castellan_actors::upstream::{Connection, Related, RpcOutcome, UpstreamError};
use castellan_schema::audit::NewExecution;
use chrono::Utc;
use serde_json::{Value, json};

use super::{CallContext, ClientRelay, Gateway, capability_for, lock};
use crate::mcp::input_required::{AbandonedRow, CallBinding, ClientSide, Step};
use crate::mcp::jsonrpc::{
    self, FORBIDDEN, INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, REQUEST_TIMEOUT, RpcError,
};
use crate::mcp::names;
use crate::mcp::session::Scope;

/// Stored tool output is capped; the row says when it was cut.
const MAX_AUDITED_OUTPUT: usize = 256 * 1024;

impl Gateway {
    /// tools/call: policy, the upstream call, the durable audit row, then the answer.
    #[tracing::instrument(skip_all, fields(trace_id = %call.trace_id, user = %call.principal.subject))]
    pub(super) async fn call_tool(&self, call: &CallContext<'_>, id: &Value, params: Option<Value>) -> Value {
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
            input: crate::redaction::current().redact(&arguments.to_string()).into_owned(),
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
        if server
            .tool(&tool)
            .is_some_and(|entry| self.tool_pins.is_blocked(&server.name, &tool, &entry.definition_hash))
        {
            let message = "forbidden: this tool's definition changed since it was approved; an admin can approve it with `castellan tools approve`";
            return self
                .finish(call, id, record, started_at, clock, Finish::refused("denied", FORBIDDEN, message))
                .await;
        }
        if let castellan_actors::Decision::Deny { rule } =
            self.policy.load().decide(call.principal.tier, &server.name, &tool)
        {
            let message = format!("forbidden: denied by rule '{rule}'");
            return self
                .finish(call, id, record, started_at, clock, Finish::refused("denied", FORBIDDEN, &message))
                .await;
        }
        let arguments = match self.run_pre_tool_use(call, &server.name, &tool, &arguments).await {
            Ok(rewritten) if rewritten != arguments => {
                // The audit row shows what the tool was actually called with.
                record.input = crate::redaction::current().redact(&rewritten.to_string()).into_owned();
                rewritten
            }
            Ok(unchanged) => unchanged,
            Err(denial) => {
                return self
                    .finish(call, id, record, started_at, clock, Finish::refused("denied", FORBIDDEN, &denial))
                    .await;
            }
        };
        if !self.audit.is_available() {
            let message = "audit unavailable: the call was refused and the tool did not run";
            return self
                .finish(call, id, record, started_at, clock, Finish::refused("failed", INTERNAL_ERROR, message))
                .await;
        }
        let mut upstream_params = params.clone();
        upstream_params["name"] = Value::String(tool.clone());
        upstream_params["arguments"] = arguments;
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
            return Ok((redacted(Step::Done(outcome)), started_at));
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
        Ok((redacted(step), started_at))
    }

    /// Runs the PreToolUse hooks; records each decision with the call's trace id. Returns the
    /// arguments to call the tool with (perhaps rewritten by a hook), or the message of a denial. A
    /// decision that cannot be recorded denies: the record is part of the rule.
    async fn run_pre_tool_use(
        &self,
        call: &CallContext<'_>,
        server: &str,
        tool: &str,
        arguments: &Value,
    ) -> Result<Value, String> {
        if !self.hooks.has_pre_tool_use() {
            return Ok(arguments.clone());
        }
        let use_of_tool = crate::hooks::ToolUse { server, tool, tier: call.principal.tier, arguments };
        let context = crate::hooks::HookContext { subject: &call.principal.subject, trace_id: call.trace_id };
        let decisions = self.hooks.pre_tool_use(&use_of_tool, &context).await;
        let mut denial = None;
        let mut final_arguments = arguments.clone();
        let mut rows = Vec::with_capacity(decisions.len());
        for decision in decisions {
            if let Some(rewritten) = &decision.rewritten {
                final_arguments = rewritten.clone();
            }
            rows.push(decision.row(
                castellan_config::HookEvent::PreToolUse,
                Some((server, tool)),
                &call.principal.subject,
                call.trace_id,
            ));
            if !decision.allowed {
                tracing::info!(trace_id = call.trace_id, server, tool, handler = %decision.handler, "denied by a hook");
                denial = Some(format!(
                    "forbidden: denied by hook {}: {}",
                    decision.handler,
                    decision.reason.unwrap_or_default()
                ));
            }
        }
        if !self.hook_writer.record(rows).await {
            tracing::error!(trace_id = call.trace_id, "recording hook decisions failed; the call is refused");
            return Err("hook decisions cannot be recorded: the call was refused and the tool did not run".into());
        }
        match denial {
            Some(denial) => Err(denial),
            None => Ok(final_arguments),
        }
    }

    /// Audits a tools/call refused by its rate limit before anything else looked at it.
    pub async fn audit_rate_limited(&self, call: &CallContext<'_>, params: Option<&Value>, retry_after_ms: u128) {
        let requested = params.and_then(|params| params.get("name")).and_then(Value::as_str).unwrap_or_default();
        let arguments = params.and_then(|params| params.get("arguments")).cloned().unwrap_or_else(|| json!({}));
        let server = match call.scope {
            Scope::Server(name) => name.clone(),
            Scope::Aggregated => {
                names::split_prefixed(requested).map(|(server, _)| server.to_string()).unwrap_or_default()
            }
        };
        let now = Utc::now();
        let record = NewExecution {
            server,
            tool: requested.to_string(),
            input: crate::redaction::current().redact(&arguments.to_string()).into_owned(),
            output: None,
            status: "rate_limited".into(),
            error_message: Some(format!("rate limited: retry in {retry_after_ms} ms")),
            user_id: Some(call.principal.subject.clone()),
            session_id: call.session_id.map(str::to_string),
            trace_id: call.trace_id.to_string(),
            started_at: now,
            completed_at: now,
            duration_ms: 0,
        };
        if let Err(error) = self.audit.record(record).await {
            tracing::error!(%error, "could not audit a rate-limited call");
        }
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
}

/// Hands one related message to the client: notifications as they are, server-to-client requests
/// under an id of ours, or refused when the client never declared the capability they need.
/// What a server answered, with every secret value replaced before it reaches the client or the
/// audit row (`crate::redaction`).
fn redacted(mut step: Step) -> Step {
    if let Step::Done(Ok(answer)) = &mut step {
        let redactor = crate::redaction::current();
        match answer {
            Ok(result) | Err(result) => redactor.redact_value(result),
        }
    }
    step
}

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
    pub(super) fn refused(status: &'static str, code: i64, message: &str) -> Self {
        Self {
            status,
            answer: Err(json!({"code": code, "message": message})),
            error_message: Some(message.to_string()),
        }
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
