//! The MCP gateway: what each client method does. Transport concerns (HTTP status codes, headers,
//! sessions on the wire) live in `http.rs`; this module sees parsed messages and a `Principal`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use base64::Engine;
use castellan_actors::registry::LiveServer;
use castellan_actors::upstream::Connection;
use castellan_actors::{AuditHandle, EventBus, Metrics, Registry};
use serde_json::{Value, json};

use super::answer::Answer;
use super::input_required::InputBridge;
use super::jsonrpc::{self, INVALID_PARAMS, METHOD_NOT_FOUND, RpcError};
use super::names;
use super::session::{Scope, Session, SessionStore};
use crate::identity::Principal;

mod forward;
mod skills;
mod tool_call;

pub use skills::{SKILLS_EXTENSION, extension_capability, skill_json};

/// Protocol revisions served with sessions, newest first.
pub const SESSION_PROTOCOL_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18"];
/// The most tools returned in one tools/list page.
const TOOLS_PAGE_SIZE: usize = 200;

/// (session id, client request id) of a call that is being forwarded.
type InFlightKey = (String, String);
/// The upstream connection a forwarded call went to and the id it has there.
type InFlightCall = (Arc<Connection>, u64);

/// Everything the gateway reads on the request path.
pub struct Gateway {
    pub registry: Registry,
    /// RBAC, rate limits, hook chains and the pinning mode in force, swapped whole on reload.
    pub policies: Arc<crate::governance::Policies>,
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
    /// Approved tool definitions: a changed tool is hidden under `server.tool_changes: block`.
    pub tool_pins: Arc<crate::governance::tool_pins::ToolPins>,
    /// Runs hook handlers (the snapshot says which).
    pub hooks: Arc<crate::hooks::Hooks>,
    pub hook_writer: crate::hooks::writer::HookWriter,
    /// The skills registry served on `/mcp`; none in tests that build a gateway without one.
    pub skills: Option<Arc<crate::skills::SkillCatalog>>,
}

/// Who is calling and through which door.
pub struct CallContext<'a> {
    pub principal: &'a Principal,
    /// The client's address (the rate-limit bucket of an anonymous caller).
    pub client: std::net::IpAddr,
    pub scope: &'a Scope,
    pub session_id: Option<&'a str>,
    pub trace_id: &'a str,
    /// Set when the client can take interim messages (an SSE answer): progress, log lines and
    /// server-to-client requests of this call are relayed to it. Without it they are not.
    pub relay: Option<&'a ClientRelay>,
}

impl<'a> CallContext<'a> {
    /// A request of a session, answered as plain JSON (nothing relayed).
    pub fn in_session(
        principal: &'a Principal,
        client: std::net::IpAddr,
        scope: &'a Scope,
        session_id: &'a str,
        trace_id: &'a str,
    ) -> Self {
        CallContext { principal, client, scope, session_id: Some(session_id), trace_id, relay: None }
    }
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

/// What the gateway is built from.
pub struct GatewayParts {
    pub registry: Registry,
    pub policies: Arc<crate::governance::Policies>,
    pub audit: AuditHandle,
    pub bus: EventBus,
    pub metrics: Metrics,
    pub sessions: Arc<SessionStore>,
    pub call_timeout: Duration,
    pub tool_pins: Arc<crate::governance::tool_pins::ToolPins>,
    pub hooks: Arc<crate::hooks::Hooks>,
    /// Where hook decisions are recorded.
    pub hook_writer: crate::hooks::writer::HookWriter,
    pub skills: Option<Arc<crate::skills::SkillCatalog>>,
}

impl Gateway {
    /// Runs the handlers of a session event (SessionStart on initialize, SessionEnd when the client
    /// ends its session) and records their decisions. These events cannot stop anything: a denial
    /// is recorded and logged.
    pub async fn session_event(
        &self,
        event: castellan_config::HookEvent,
        (subject, tier): (&str, castellan_config::Tier),
        scope: &Scope,
        session_id: &str,
        trace_id: &str,
        mut input: Value,
    ) {
        let snapshot = self.policies.load();
        if !snapshot.hooks.has(event) {
            return;
        }
        input["hook_event_name"] = Value::String(event.as_str().to_string());
        input["session_id"] = Value::String(session_id.to_string());
        let server = match scope {
            Scope::Server(name) => Some(name.as_str()),
            Scope::Aggregated => None,
        };
        let call = crate::hooks::HookCall { event, server, tool: None, tier, subject, trace_id, input };
        let outcome = self.hooks.run(&snapshot.hooks, &call).await;
        if let Some(denial) = outcome.denial() {
            tracing::info!(trace_id, event = event.as_str(), %denial, "a hook denied an event that cannot be stopped");
        }
        if !self.hook_writer.record(outcome.rows(&call)).await {
            tracing::error!(trace_id, event = event.as_str(), "recording hook decisions failed");
        }
    }

    /// Ends the sessions idle for [`SESSION_IDLE_TIMEOUT`], raising SessionEnd for each.
    pub async fn end_idle_sessions(&self) {
        self.raise_session_ends(self.sessions.take_idle(crate::mcp::session::SESSION_IDLE_TIMEOUT)).await;
    }

    /// Raises SessionEnd for sessions the store has already removed (idle, or evicted by its limits).
    pub async fn raise_session_ends(&self, ended: Vec<Arc<Session>>) {
        for session in ended {
            let trace_id = crate::trace::random_hex(16);
            let input = serde_json::json!({"reason": "other"});
            let who = (session.subject.as_str(), session.tier);
            self.session_event(
                castellan_config::HookEvent::SessionEnd,
                who,
                &session.scope,
                &session.id,
                &trace_id,
                input,
            )
            .await;
        }
    }

    pub fn new(parts: GatewayParts) -> Self {
        let GatewayParts {
            registry,
            policies,
            audit,
            bus,
            metrics,
            sessions,
            call_timeout,
            tool_pins,
            hooks,
            hook_writer,
            skills,
        } = parts;
        Self {
            skills,
            hooks,
            hook_writer,
            tool_pins,
            registry,
            policies,
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
    ) -> Answer {
        // HTTP backends join the caller's trace: their requests carry a traceparent of ours.
        let traceparent = crate::trace::outgoing_traceparent(call.trace_id);
        castellan_actors::upstream::http::with_traceparent(traceparent, self.dispatch(call, id, method, params)).await
    }

    async fn dispatch(&self, call: &CallContext<'_>, id: &Value, method: &str, params: Option<Value>) -> Answer {
        if skills::is_skills_request(method, params.as_ref()) {
            return self.skills_request(call, id, method, params).await;
        }
        let outcome = match method {
            "ping" => Ok(json!({})),
            "tools/list" => self.list_tools(call, params.as_ref()),
            "tools/call" => return self.call_tool(call, id, params).await,
            "prompts/list"
            | "resources/list"
            | "resources/templates/list"
            | "prompts/get"
            | "resources/read"
            | "resources/subscribe"
            | "resources/unsubscribe"
            | "completion/complete" => {
                return self.governed_forward(call, id, method, params).await;
            }
            "logging/setLevel" => self.broadcast_set_level(call, params).await,
            _ => Err(RpcError::new(Some(id.clone()), METHOD_NOT_FOUND, format!("method not found: {method}"))),
        };
        Answer::message(match outcome {
            Ok(result) => jsonrpc::result_message(id, result),
            Err(mut error) => {
                error.id = Some(id.clone());
                error.to_message()
            }
        })
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
        let snapshot = self.policies.load();
        let policy = &snapshot.policy;
        let prefixed = *call.scope == Scope::Aggregated;
        let mut tools = Vec::new();
        for server in self.servers_in_scope(call.scope) {
            for tool in &server.tools {
                if !policy.decide(call.principal.tier, &server.name, &tool.name).is_allowed()
                    || self.tool_pins.is_blocked(snapshot.tool_changes, &server.name, &tool.name, &tool.definition_hash)
                {
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

    fn visible(&self, principal: &Principal, server: &LiveServer) -> bool {
        let tools = server.tools.iter().map(|tool| tool.name.as_str());
        self.policies.load().policy.decide_server(principal.tier, &server.name, tools).is_allowed()
    }
}

fn field_capability(field: &str) -> &'static str {
    match field {
        "prompts" => "prompts",
        _ => "resources",
    }
}

pub(crate) fn encode_cursor(offset: usize) -> String {
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
