//! Requests the gateway forwards to one server or fans out over several: prompts, resources,
//! completion, logging.

use std::sync::Arc;

use castellan_actors::registry::LiveServer;
use castellan_actors::upstream::{RpcOutcome, UpstreamError};
use chrono::Utc;
use serde_json::{Value, json};

use castellan_schema::audit::ExecutionKind;

use super::tool_call::{McpUpstream, executed, executed_outcome};
use super::{CallContext, Gateway, field_capability, lock};
use crate::governance::{Executed, RbacTarget, Resolution, Target};
use crate::mcp::answer::{self, Answer};
use crate::mcp::input_required::CallBinding;
use crate::mcp::jsonrpc::{INTERNAL_ERROR, INVALID_PARAMS, REQUEST_TIMEOUT, RpcError};
use crate::mcp::names;
use crate::mcp::session::Scope;

impl Gateway {
    /// prompts/list, resources/list, resources/templates/list over every visible server.
    pub(super) async fn fan_out_list(
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
        let mut items = if field == "resources" && params.as_ref().and_then(|params| params.get("cursor")).is_none() {
            self.skill_resources(call)
        } else {
            Vec::new()
        };
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

    /// prompts, resources and completion: resolved here, then the governed chain (RBAC by server,
    /// the rate limit, an audit row of kind `prompt` or `resource`).
    pub(super) async fn governed_forward(
        &self,
        call: &CallContext<'_>,
        id: &Value,
        method: &str,
        params: Option<Value>,
    ) -> Answer {
        let params = params.unwrap_or_else(|| json!({}));
        let (kind, requested, resolution) = self.resolve_forwarded(call.scope, method, &params);
        let request = self.request(call, id, kind, &requested, params.clone());
        let upstream = McpUpstream { gateway: self, call, id, method, params: &params };
        let governed = self.govern(request, resolution, &upstream).await;
        answer::render(id, kind, governed.outcome)
    }

    /// What a prompts, resources or completion request names: its kind, the name as the client
    /// wrote it, and the server and name it resolves to.
    fn resolve_forwarded(&self, scope: &Scope, method: &str, params: &Value) -> (ExecutionKind, String, Resolution) {
        let kind = if method.starts_with("prompts/") { ExecutionKind::Prompt } else { ExecutionKind::Resource };
        let text = |value: Option<&Value>| value.and_then(Value::as_str).unwrap_or_default().to_string();
        let (kind, requested, found) = match method {
            "prompts/list" | "resources/list" | "resources/templates/list" => {
                let server = match scope {
                    Scope::Server(server) => server.clone(),
                    Scope::Aggregated => return (kind, method.to_string(), Resolution::Found(listing(method))),
                };
                (kind, method.to_string(), Some((server, method.to_string())))
            }
            "prompts/get" => {
                let name = text(params.get("name"));
                let found = self.prompt_origin(scope, &name);
                (kind, name, found)
            }
            "completion/complete" => {
                let reference = params.get("ref").cloned().unwrap_or_default();
                if reference.get("type").and_then(Value::as_str) == Some("ref/prompt") {
                    let name = text(reference.get("name"));
                    let found = self.prompt_origin(scope, &name);
                    (ExecutionKind::Prompt, name, found)
                } else {
                    let uri = text(reference.get("uri"));
                    let found = self.resource_origin(scope, &uri).map(|server| (server, uri.clone()));
                    (ExecutionKind::Resource, uri, found)
                }
            }
            _ => {
                let uri = text(params.get("uri"));
                let found = self.resource_origin(scope, &uri).map(|server| (server, uri.clone()));
                (kind, uri, found)
            }
        };
        let resolution = match found {
            None => Resolution::Unknown { server: String::new(), message: unknown_message(kind, &requested) },
            Some((server, name)) => match self.registry.get(&server) {
                Some(live) => {
                    let tools = live.tools.iter().map(|tool| tool.name.clone()).collect();
                    let rbac = RbacTarget::Server { tools };
                    Resolution::Found(Target { server, name, rbac, definition_hash: None })
                }
                None if self.configured_servers.load().contains(&server) => Resolution::ServerDown { server },
                None => Resolution::Unknown { server: String::new(), message: unknown_message(kind, &requested) },
            },
        };
        (kind, requested, resolution)
    }

    /// The server and bare name of a prompt as the client named it.
    fn prompt_origin(&self, scope: &Scope, name: &str) -> Option<(String, String)> {
        match scope {
            Scope::Aggregated => {
                names::split_prefixed(name).map(|(server, bare)| (server.to_string(), bare.to_string()))
            }
            Scope::Server(server) => Some((server.clone(), name.to_string())),
        }
    }

    /// The server a resource URI came from: the path's, or the one that listed it.
    fn resource_origin(&self, scope: &Scope, uri: &str) -> Option<String> {
        match scope {
            Scope::Server(server) => Some(server.clone()),
            Scope::Aggregated => lock(&self.resource_origins).get(uri).cloned(),
        }
    }

    /// Runs an admitted prompts, resources or completion request upstream.
    pub(super) async fn execute_forwarded(
        &self,
        call: &CallContext<'_>,
        method: &str,
        target: &Target,
        mut params: Value,
    ) -> Executed {
        let answered = |result: Result<Value, RpcError>| {
            Executed::Answered(result.map_err(|error| json!({"code": error.code, "message": error.message})))
        };
        if method.ends_with("/list") {
            let field = match method {
                "prompts/list" => "prompts",
                "resources/list" => "resources",
                _ => "resourceTemplates",
            };
            return answered(self.fan_out_list(call, method, field, Some(params)).await);
        }
        let Some(server) = self.registry.get(&target.server) else {
            return Executed::Failed(format!("the server '{}' is not running; it is being restarted", target.server));
        };
        match method {
            "prompts/get" => {
                params["name"] = Value::String(target.name.clone());
                self.forward_for(call, &server, method, params, &target.name).await
            }
            "resources/read" => self.forward_for(call, &server, method, params, &target.name).await,
            _ => {
                if method == "completion/complete"
                    && params["ref"].get("type").and_then(Value::as_str) == Some("ref/prompt")
                {
                    params["ref"]["name"] = Value::String(target.name.clone());
                }
                executed_outcome(&server.name, server.connection.request(method, Some(params), self.call_timeout).await)
            }
        }
    }

    /// A request to one server, relaying what it sends in its course (or bridging it for a
    /// stateless client).
    async fn forward_for(
        &self,
        call: &CallContext<'_>,
        server: &LiveServer,
        method: &str,
        params: Value,
        client_name: &str,
    ) -> Executed {
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
        match self.run_upstream(call, &connection, upstream_id, method, params, self.call_timeout, binding).await {
            Ok((step, _)) => executed(&server.name, step),
            Err(error) => Executed::Answered(Err(json!({"code": error.code, "message": error.message}))),
        }
    }

    async fn forward(&self, server: &LiveServer, method: &str, params: Option<Value>) -> Result<Value, RpcError> {
        rpc_outcome(&server.name, server.connection.request(method, params, self.call_timeout).await)
    }

    pub(super) async fn broadcast_set_level(
        &self,
        call: &CallContext<'_>,
        params: Option<Value>,
    ) -> Result<Value, RpcError> {
        for server in self.servers_in_scope(call.scope) {
            if server.identity.capabilities.get("logging").is_some() && self.visible(call.principal, &server) {
                let _ = self.forward(&server, "logging/setLevel", params.clone()).await;
            }
        }
        Ok(json!({}))
    }
}

/// A listing across every server in scope: RBAC filters its entries server by server.
fn listing(method: &str) -> Target {
    Target { server: "*".into(), name: method.to_string(), rbac: RbacTarget::Listing, definition_hash: None }
}

fn unknown_message(kind: ExecutionKind, requested: &str) -> String {
    match kind {
        ExecutionKind::Prompt => format!("unknown prompt: {requested}"),
        _ => format!("resource not found: {requested}"),
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
