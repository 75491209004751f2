//! Requests the gateway forwards to one server or fans out over several: prompts, resources,
//! completion, logging.

use std::sync::Arc;

use castellan_actors::registry::LiveServer;
use castellan_actors::upstream::{RpcOutcome, UpstreamError};
use chrono::Utc;
use serde_json::{Value, json};

use super::{CallContext, Gateway, field_capability, lock};
use crate::mcp::input_required::{CallBinding, Step};
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

    async fn forward(&self, server: &LiveServer, method: &str, params: Option<Value>) -> Result<Value, RpcError> {
        rpc_outcome(&server.name, server.connection.request(method, params, self.call_timeout).await)
    }

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
    pub(super) async fn forward_named(
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

    pub(super) async fn forward_resource(
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

    pub(super) async fn forward_completion(
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
