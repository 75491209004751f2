//! The steps of [`Chain::govern`], in the order of [`super::STEPS`].

use std::net::IpAddr;
use std::sync::Arc;

use castellan_actors::{Decision, Event, EventBus, Metrics, PolicySnapshot};
use castellan_config::HookEvent;
use castellan_schema::audit::{ExecutionKind, ExecutionStatus, NewExecution};
use castellan_schema::hook_events::HookEventRow;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::outcome::{Governed, Outcome};
use super::ports::{AuditSink, Clock, Executed, HookRunner, PinCheck, Upstream};
use crate::governance::rate_limit::{Admission, Limits, ToolCallTarget};
use crate::hooks::HookCall;
use crate::identity::Principal;
use crate::redaction::Redactor;

/// One governed request, parsed by its surface.
pub struct Request<'a> {
    pub principal: &'a Principal,
    /// The client's address (the bucket of an anonymous caller).
    pub client: IpAddr,
    pub kind: ExecutionKind,
    /// The name as the client wrote it: what hooks see as `tool_name`.
    pub requested: &'a str,
    /// The tool's arguments, or the request's parameters for resources and prompts.
    pub arguments: Value,
    /// The caller's session, already looked up and found to be the caller's.
    pub session_id: Option<&'a str>,
    pub trace_id: &'a str,
    pub hook: HookIdentity,
}

/// How hooks name the request, in the surface's terms.
pub struct HookIdentity {
    /// `tool_use_id` in hook payloads.
    pub tool_use_id: String,
}

/// What the surface found the request's name to be.
pub enum Resolution {
    Found(Target),
    /// A server the profile names, not running now.
    ServerDown {
        server: String,
    },
    /// Nothing of that name for this caller; `server` is the best guess for the row (may be empty).
    Unknown {
        server: String,
        message: String,
    },
    /// The request is malformed; refused once the limits have been charged.
    Invalid {
        server: String,
        message: String,
    },
}

/// The resolved target of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub server: String,
    /// The tool's name upstream, the resource's URI, the prompt's name upstream, or for a
    /// listing the method.
    pub name: String,
    pub rbac: RbacTarget,
    /// The tool's definition hash, for pinning (tools only).
    pub definition_hash: Option<String>,
}

/// How RBAC judges a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RbacTarget {
    /// A tool: the rule for (server, tool).
    Tool,
    /// A server's resources or prompts: allowed when the server's `*`, or any of its tools, is.
    Server { tools: Vec<String> },
    /// A listing across servers: each server's entries are filtered by RBAC as they are listed.
    Listing,
    /// An extension's route: the tier and scopes the extension declared.
    Access { min_tier: castellan_config::Tier, scopes: Vec<String> },
    /// A skill, by name: the rules that name `skills`.
    Skill,
}

/// The collaborators of the chain for one request: the policy snapshot in force and what runs,
/// hooks, pins and records.
pub struct Chain<'a> {
    pub policy: &'a PolicySnapshot,
    pub limits: &'a Limits,
    pub pins: &'a dyn PinCheck,
    pub hooks: &'a dyn HookRunner,
    pub audit: &'a dyn AuditSink,
    pub redactor: Arc<Redactor>,
    pub clock: &'a dyn Clock,
    pub metrics: &'a Metrics,
    pub bus: &'a EventBus,
}

/// The audit row as it builds up.
struct Draft {
    server: String,
    name: String,
    input: String,
    hook_events: Vec<HookEventRow>,
    started_at: DateTime<Utc>,
}

impl Chain<'_> {
    /// Runs `request` through every step; the answer leaves only after its row is committed.
    #[tracing::instrument(skip_all, fields(trace_id = %request.trace_id, user = %request.principal.subject, kind = request.kind.as_str()))]
    pub async fn govern(&self, request: Request<'_>, resolution: Resolution, upstream: &dyn Upstream) -> Governed {
        let chain_started = std::time::Instant::now();
        let mut draft = Draft {
            server: String::new(),
            name: request.requested.to_string(),
            input: self.redactor.redact(&request.arguments.to_string()).into_owned(),
            hook_events: Vec::new(),
            started_at: self.clock.now(),
        };
        // resolve
        let (target, refusal) = resolve(resolution, &mut draft);
        // rate_limit: after resolution, so a per-tool limit holds whatever name the client used;
        // before any refusal, so guessing names spends the caller's budget too.
        if let Admission::Limited { policy, retry_after } = self.rate_limit(&request, target.as_ref(), &draft.server) {
            tracing::info!(trace_id = request.trace_id, limit = %policy.limit, retry_after_ms = retry_after.as_millis() as u64, "rate limited");
            return self.finish(&request, draft, Outcome::RateLimited { policy, retry_after }, None).await;
        }
        let target = match (target, refusal) {
            (Some(target), _) => target,
            (None, Some(refusal)) => return self.finish(&request, draft, refusal, None).await,
            (None, None) => return self.finish(&request, draft, Outcome::Unknown("unknown target".into()), None).await,
        };
        // rbac
        if let Decision::Deny { rule } = self.rbac(&request, &target) {
            let message = format!("forbidden: denied by rule '{rule}'");
            return self.finish(&request, draft, Outcome::Forbidden(message), None).await;
        }
        // pin
        if let Some(hash) = &target.definition_hash
            && self.pins.is_blocked(&target.server, &target.name, hash)
        {
            let message = "forbidden: this tool's definition changed since it was approved; an admin can approve it with `castellan tools approve`";
            return self.finish(&request, draft, Outcome::Forbidden(message.into()), None).await;
        }
        // pre_hooks
        let arguments = match self.pre_tool_use(&request, &target, &mut draft).await {
            Ok(arguments) => arguments,
            Err(refusal) => return self.finish(&request, draft, refusal, None).await,
        };
        // audit_health: nothing runs unaudited.
        if !self.audit.is_available() {
            let message = "audit unavailable: the call was refused and the tool did not run";
            return self.finish(&request, draft, Outcome::AuditUnavailable(message.into()), None).await;
        }
        // execute
        let execute_started = std::time::Instant::now();
        self.metrics.chain_steps.admission.observe((execute_started - chain_started).as_secs_f64());
        let executed = upstream.execute(&target, arguments.clone()).await;
        // redact
        let outcome = match self.redacted(executed) {
            Ok(outcome) => outcome,
            // Parked for the client's input: its row is written when the request ends.
            Err(suspended) => return Governed { outcome: Outcome::Suspended(suspended), status: None },
        };
        self.metrics.chain_steps.execute.observe(execute_started.elapsed().as_secs_f64());
        // post_hooks
        let (outcome, audited_output) = self.post_tool_use(&request, &target, &mut draft, arguments, outcome).await;
        let audited_output = match (&outcome, audited_output) {
            (_, Some(withheld)) => Some(withheld),
            (Outcome::Answered(answer), None) => upstream.audited_output(answer),
            (_, None) => None,
        };
        // audit
        self.finish(&request, draft, outcome, audited_output).await
    }

    /// PreToolUse (tools only): the arguments to run with (rewritten or not), or the hook's denial.
    async fn pre_tool_use(&self, request: &Request<'_>, target: &Target, draft: &mut Draft) -> Result<Value, Outcome> {
        let arguments = request.arguments.clone();
        if request.kind != ExecutionKind::Tool || !self.hooks.has(HookEvent::PreToolUse) {
            return Ok(arguments);
        }
        let mut input = hook_input(request, HookEvent::PreToolUse);
        input["tool_input"] = arguments.clone();
        let call = hook_call(request, HookEvent::PreToolUse, target, input);
        let outcome = self.hooks.run(&call).await;
        draft.hook_events.extend(outcome.rows(&call));
        if let Some(denial) = outcome.denial() {
            tracing::info!(trace_id = request.trace_id, server = %target.server, tool = %target.name, "denied by a hook");
            return Err(Outcome::Forbidden(format!("forbidden: denied by hook {denial}")));
        }
        match outcome.tool_input {
            Some(rewritten) => {
                // The row shows what the tool was actually called with.
                draft.input = self.redactor.redact(&rewritten.to_string()).into_owned();
                Ok(rewritten)
            }
            None => Ok(arguments),
        }
    }

    /// What the upstream answered, redacted, as an outcome; a suspended call's interim result apart.
    fn redacted(&self, executed: Executed) -> Result<Outcome, Value> {
        Ok(match executed {
            Executed::Answered(Ok(mut result)) => {
                self.redactor.redact_value(&mut result);
                Outcome::Answered(result)
            }
            Executed::Answered(Err(mut error)) => {
                self.redactor.redact_value(&mut error);
                Outcome::UpstreamError(error)
            }
            Executed::Timeout(after) => {
                Outcome::Timeout(format!("the tool did not answer within {} ms", after.as_millis()))
            }
            Executed::Cancelled => Outcome::Failed("cancelled by the client".into()),
            Executed::Failed(message) => Outcome::Failed(message),
            Executed::Suspended(mut result) => {
                self.redactor.redact_value(&mut result);
                return Err(result);
            }
        })
    }

    /// PostToolUse or PostToolUseFailure (tools only). A denial withholds the result from the
    /// caller: the outcome becomes a refusal and the row keeps what the tool answered.
    async fn post_tool_use(
        &self,
        request: &Request<'_>,
        target: &Target,
        draft: &mut Draft,
        arguments: Value,
        outcome: Outcome,
    ) -> (Outcome, Option<String>) {
        if request.kind != ExecutionKind::Tool {
            return (outcome, None);
        }
        let succeeded = outcome.status() == ExecutionStatus::Success;
        let event = if succeeded { HookEvent::PostToolUse } else { HookEvent::PostToolUseFailure };
        if !self.hooks.has(event) {
            return (outcome, None);
        }
        let mut input = hook_input(request, event);
        input["tool_input"] = arguments;
        match &outcome {
            Outcome::Answered(result) => {
                input["tool_response"] = result.clone();
                if !succeeded {
                    // A tool error (isError) is a result, not an RPC error: its text is the error.
                    input["error"] = Value::String(tool_error_text(result));
                }
            }
            other => input["error"] = Value::String(other.error_message().unwrap_or_default()),
        }
        input["duration_ms"] = json!((self.clock.now() - draft.started_at).num_milliseconds().max(0));
        let call = hook_call(request, event, target, input);
        let hooks = self.hooks.run(&call).await;
        draft.hook_events.extend(hooks.rows(&call));
        let Some(denial) = hooks.denial() else { return (outcome, None) };
        tracing::info!(trace_id = request.trace_id, server = %target.server, tool = %target.name, "result withheld by a hook");
        let withheld =
            Outcome::Forbidden(format!("forbidden: the tool ran, but its result was withheld by hook {denial}"));
        (withheld, output_of(&outcome))
    }

    /// The buckets this request draws from: a tool's own, its server's, then the class's.
    fn rate_limit(&self, request: &Request<'_>, target: Option<&Target>, server_guess: &str) -> Admission {
        let server = target.map_or(server_guess, |target| target.server.as_str());
        match (request.kind, target) {
            (ExecutionKind::Tool, Some(target)) => self.limits.check_tool_call(
                request.principal,
                request.client,
                Some(ToolCallTarget { server: &target.server, tool: &target.name }),
            ),
            _ => self.limits.check_server_request(
                request.principal,
                request.client,
                (!server.is_empty() && server != "*").then_some(server),
            ),
        }
    }

    fn rbac(&self, request: &Request<'_>, target: &Target) -> Decision {
        let tier = request.principal.tier;
        match &target.rbac {
            RbacTarget::Tool => self.policy.decide(tier, &target.server, &target.name),
            RbacTarget::Server { tools } => {
                self.policy.decide_server(tier, &target.server, tools.iter().map(String::as_str))
            }
            RbacTarget::Listing => Decision::Allow { rule: "listing (filtered per server)".into() },
            RbacTarget::Skill => self.policy.decide_skill(tier, &target.name),
            RbacTarget::Access { min_tier, scopes } => {
                if tier.level() < min_tier.level() {
                    return Decision::Deny {
                        rule: format!("{} requires tier {} or above", target.server, min_tier.as_str()),
                    };
                }
                match scopes.iter().find(|scope| !crate::identity::has_scope(request.principal, scope)) {
                    Some(missing) => Decision::Deny { rule: format!("{} requires scope {missing}", target.server) },
                    None => Decision::Allow { rule: format!("{} access", target.server) },
                }
            }
        }
    }

    /// Commits the row, then hands back the outcome. No answer leaves without its row.
    async fn finish(
        &self,
        request: &Request<'_>,
        draft: Draft,
        outcome: Outcome,
        audited_output: Option<String>,
    ) -> Governed {
        let status = outcome.status();
        let completed_at = self.clock.now();
        let row = NewExecution {
            server: draft.server.clone(),
            tool: draft.name.clone(),
            kind: request.kind,
            input: draft.input,
            // AuditHandle::record caps every text field (`audit.max_field_bytes`, with size and hash).
            output: audited_output.or_else(|| output_of(&outcome)),
            status,
            error_message: outcome.error_message(),
            user_id: Some(request.principal.subject.clone()),
            session_id: request.session_id.map(str::to_string),
            trace_id: request.trace_id.to_string(),
            started_at: draft.started_at,
            completed_at,
            duration_ms: (completed_at - draft.started_at).num_milliseconds(),
            hook_events: draft.hook_events,
        };
        let audit_started = std::time::Instant::now();
        let committed = self.audit.record(row).await;
        self.metrics.chain_steps.audit.observe(audit_started.elapsed().as_secs_f64());
        let duration_ms = (completed_at - draft.started_at).num_milliseconds().max(0);
        self.metrics.tool_call(&draft.server, &draft.name, status.as_str(), duration_ms as f64 / 1000.0);
        // The access line; arguments and results stay out of logs (they may hold secrets).
        tracing::info!(
            trace_id = %request.trace_id,
            user = %request.principal.subject,
            server = %draft.server,
            tool = %draft.name,
            kind = request.kind.as_str(),
            status = status.as_str(),
            duration_ms,
            audited = committed.is_ok(),
            "governed request"
        );
        self.bus.publish(Event::ToolCall {
            server: draft.server,
            tool: draft.name,
            status: status.as_str().to_string(),
            user: Some(request.principal.subject.clone()),
            trace_id: request.trace_id.to_string(),
            duration_ms,
        });
        if let Err(error) = committed {
            tracing::error!(trace_id = %request.trace_id, %error, "the audit row could not be committed; the answer is withheld");
            let message = "audit unavailable: the result is withheld because it could not be recorded";
            return Governed { outcome: Outcome::AuditUnavailable(message.into()), status: Some(status) };
        }
        Governed { outcome, status: Some(status) }
    }
}

/// The target, or the refusal that waits until the limits are charged; the row names the server
/// (and the upstream name) as far as they are known.
fn resolve(resolution: Resolution, draft: &mut Draft) -> (Option<Target>, Option<Outcome>) {
    match resolution {
        Resolution::Found(target) => {
            draft.server = target.server.clone();
            draft.name = target.name.clone();
            (Some(target), None)
        }
        Resolution::ServerDown { server } => {
            let message = format!("the server '{server}' is not running; it is being restarted");
            draft.server = server;
            (None, Some(Outcome::Unavailable(message)))
        }
        Resolution::Unknown { server, message } => {
            draft.server = server;
            (None, Some(Outcome::Unknown(message)))
        }
        Resolution::Invalid { server, message } => {
            draft.server = server;
            (None, Some(Outcome::InvalidRequest(message)))
        }
    }
}

/// The hook payload's common fields, in Claude Code's shape.
fn hook_input(request: &Request<'_>, event: HookEvent) -> Value {
    let mut input = json!({
        "hook_event_name": event.as_str(),
        "tool_name": request.requested,
        "tool_use_id": request.hook.tool_use_id,
    });
    if let Some(session) = request.session_id {
        input["session_id"] = Value::String(session.to_string());
    }
    input
}

fn hook_call<'a>(request: &'a Request<'_>, event: HookEvent, target: &'a Target, input: Value) -> HookCall<'a> {
    HookCall {
        event,
        server: Some(&target.server),
        tool: Some(&target.name),
        tier: request.principal.tier,
        subject: &request.principal.subject,
        trace_id: request.trace_id,
        input,
    }
}

/// What the row stores as output: the upstream's result or error object, as JSON.
fn output_of(outcome: &Outcome) -> Option<String> {
    match outcome {
        Outcome::Answered(value) | Outcome::UpstreamError(value) => Some(value.to_string()),
        _ => None,
    }
}

/// The text of a tool result with `isError`: its text content, joined.
fn tool_error_text(result: &Value) -> String {
    let texts: Vec<&str> = result
        .get("content")
        .and_then(Value::as_array)
        .map(|content| content.iter().filter_map(|item| item.get("text").and_then(Value::as_str)).collect())
        .unwrap_or_default();
    if texts.is_empty() { "the tool reported an error".to_string() } else { texts.join("\n") }
}
