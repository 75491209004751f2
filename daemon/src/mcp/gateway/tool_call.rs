//! tools/call: policy, the upstream call (relayed, or bridged for stateless clients), the durable
//! audit row, then the answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use castellan_actors::Event;
use castellan_actors::upstream::{Connection, Related, RpcOutcome, UpstreamError};
use castellan_config::HookEvent;
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
            hook_events: Vec::new(),
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
        let hook_input = |event: HookEvent| {
            let mut input = json!({
                "hook_event_name": event.as_str(),
                "tool_name": requested,
                "tool_use_id": format!("jsonrpc:{id}"),
            });
            if let Some(session) = call.session_id {
                input["session_id"] = Value::String(session.to_string());
            }
            input
        };
        let arguments = if self.hooks.has(HookEvent::PreToolUse) {
            let mut input = hook_input(HookEvent::PreToolUse);
            input["tool_input"] = arguments.clone();
            let hook_call = self.hook_call(call, HookEvent::PreToolUse, (&server.name, &tool), input);
            let outcome = self.hooks.run(&hook_call).await;
            record.hook_events.extend(outcome.rows(&hook_call));
            if let Some(denial) = outcome.denial() {
                tracing::info!(trace_id = call.trace_id, server = %server.name, tool, "denied by a hook");
                let message = format!("forbidden: denied by hook {denial}");
                return self
                    .finish(call, id, record, started_at, clock, Finish::refused("denied", FORBIDDEN, &message))
                    .await;
            }
            match outcome.tool_input {
                Some(rewritten) => {
                    // The audit row shows what the tool was actually called with.
                    record.input = crate::redaction::current().redact(&rewritten.to_string()).into_owned();
                    rewritten
                }
                None => arguments,
            }
        } else {
            arguments
        };
        if !self.audit.is_available() {
            let message = "audit unavailable: the call was refused and the tool did not run";
            return self
                .finish(call, id, record, started_at, clock, Finish::refused("failed", INTERNAL_ERROR, message))
                .await;
        }
        let mut upstream_params = params.clone();
        upstream_params["name"] = Value::String(tool.clone());
        let upstream_arguments = arguments.clone();
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
        let mut finish = match outcome {
            Ok(Ok(result)) => {
                let status =
                    if result.get("isError").and_then(Value::as_bool) == Some(true) { "tool_error" } else { "success" };
                Finish { status, answer: Ok(result), error_message: None, audited_output: None }
            }
            Ok(Err(error)) => {
                let message = error.get("message").and_then(Value::as_str).unwrap_or("error").to_string();
                Finish { status: "rpc_error", answer: Err(error), error_message: Some(message), audited_output: None }
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
        let event = if finish.status == "success" { HookEvent::PostToolUse } else { HookEvent::PostToolUseFailure };
        if self.hooks.has(event) {
            let mut input = hook_input(event);
            input["tool_input"] = upstream_arguments;
            match &finish.answer {
                Ok(result) => input["tool_response"] = result.clone(),
                Err(error) => {
                    let message = error.get("message").and_then(Value::as_str).unwrap_or("error");
                    input["error"] = Value::String(message.to_string());
                }
            }
            if event == HookEvent::PostToolUseFailure && finish.answer.is_ok() {
                // A tool error (isError) is a result, not an RPC error: its text is the error.
                input["error"] = Value::String(tool_error_text(input.get("tool_response")));
            }
            input["duration_ms"] = json!(clock.elapsed().as_millis() as u64);
            let hook_call = self.hook_call(call, event, (&server.name, &tool), input);
            let outcome = self.hooks.run(&hook_call).await;
            record.hook_events.extend(outcome.rows(&hook_call));
            if let Some(denial) = outcome.denial() {
                // The tool ran; what it answered does not reach the caller (the audit row keeps it).
                tracing::info!(trace_id = call.trace_id, server = %server.name, tool, "result withheld by a hook");
                let message = format!("forbidden: the tool ran, but its result was withheld by hook {denial}");
                let output = finish.answer.clone();
                finish = Finish::refused("denied", FORBIDDEN, &message);
                finish.audited_output = Some(output);
            }
        }
        self.finish(call, id, record, started_at, clock, finish).await
    }

    /// The hooks' view of one call.
    fn hook_call<'a>(
        &self,
        call: &'a CallContext<'_>,
        event: HookEvent,
        target: (&'a str, &'a str),
        input: Value,
    ) -> crate::hooks::HookCall<'a> {
        crate::hooks::HookCall {
            event,
            server: Some(target.0),
            tool: Some(target.1),
            tier: call.principal.tier,
            subject: &call.principal.subject,
            trace_id: call.trace_id,
            input,
        }
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
        let output = match finish.audited_output.as_ref().unwrap_or(&finish.answer) {
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
            hook_events: record.hook_events,
        };
        let committed = self.audit.record(row).await;
        let elapsed = clock.elapsed();
        self.metrics.tool_call(&record.server, &record.tool, finish.status, elapsed.as_secs_f64());
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

    /// Audits a tools/call refused by its rate limit (`limit` names it) before anything else looked at it.
    pub async fn audit_rate_limited(
        &self,
        call: &CallContext<'_>,
        params: Option<&Value>,
        limit: &str,
        retry_after_ms: u128,
    ) {
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
            error_message: Some(format!("rate limited by {limit}: retry in {retry_after_ms} ms")),
            user_id: Some(call.principal.subject.clone()),
            session_id: call.session_id.map(str::to_string),
            trace_id: call.trace_id.to_string(),
            started_at: now,
            completed_at: now,
            duration_ms: 0,
            hook_events: Vec::new(),
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
    /// The hook decisions so far; committed with the audit row, in one transaction.
    hook_events: Vec<castellan_schema::hook_events::HookEventRow>,
}

struct Finish {
    status: &'static str,
    answer: Result<Value, Value>,
    error_message: Option<String>,
    /// What the tool answered, when the caller gets something else (a PostToolUse denial).
    audited_output: Option<Result<Value, Value>>,
}

impl Finish {
    pub(super) fn refused(status: &'static str, code: i64, message: &str) -> Self {
        Self {
            status,
            answer: Err(json!({"code": code, "message": message})),
            error_message: Some(message.to_string()),
            audited_output: None,
        }
    }
}

/// The text of a tool result with `isError`: its text content, joined.
fn tool_error_text(result: Option<&Value>) -> String {
    let texts: Vec<&str> = result
        .and_then(|result| result.get("content"))
        .and_then(Value::as_array)
        .map(|content| content.iter().filter_map(|item| item.get("text").and_then(Value::as_str)).collect())
        .unwrap_or_default();
    if texts.is_empty() { "the tool reported an error".to_string() } else { texts.join("\n") }
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
