//! Extensions' tool providers as MCP servers in this process: each is registered like a supervised
//! server (its tools are listed as `{server}__{tool}`), so every call reaches it through the same
//! governed chain, and only the last step (execute) differs: the provider runs inline instead of a
//! message going down a pipe.

use std::collections::BTreeSet;
use std::sync::Arc;

use castellan_actors::Registry;
use castellan_actors::registry::{LiveServer, ServerIdentity, ToolEntry};
use castellan_actors::upstream::{Connection, InProcessServer, RpcOutcome};
use castellan_extension::{CallContext, Caller, Ordered, ToolProvider};
use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use crate::identity::Principal;

tokio::task_local! {
    /// The caller of the tool call being executed; set by the gateway around the request.
    static CALLER: Caller;
}

/// The caller as extensions see it.
pub fn caller(principal: &Principal, trace_id: &str) -> Caller {
    Caller {
        user: principal.subject.clone(),
        tier: principal.tier,
        scopes: principal.scopes.clone(),
        trace_id: trace_id.to_string(),
    }
}

/// Runs `work` with `caller` as the caller of in-process tools.
pub async fn with_caller<F: std::future::Future>(caller: Caller, work: F) -> F::Output {
    CALLER.scope(caller, work).await
}

/// One provider as an in-process MCP server.
struct ProviderServer {
    provider: Arc<dyn ToolProvider>,
    db: sea_orm::DatabaseConnection,
    config: Option<Value>,
}

impl InProcessServer for ProviderServer {
    fn handle<'a>(&'a self, method: &'a str, params: Option<Value>) -> BoxFuture<'a, RpcOutcome> {
        Box::pin(async move {
            match method {
                "ping" => Ok(json!({})),
                "tools/list" => Ok(json!({"tools": self.provider.tools()})),
                "tools/call" => {
                    let params = params.unwrap_or_else(|| json!({}));
                    let Some(tool) = params.get("name").and_then(Value::as_str) else {
                        return Err(json!({"code": -32602, "message": "tools/call needs a name"}));
                    };
                    let arguments = params.get("arguments").cloned().unwrap_or_else(|| json!({}));
                    // Only the gateway calls this, inside `with_caller`; anything else is refused.
                    let Ok(caller) = CALLER.try_with(Caller::clone) else {
                        return Err(json!({"code": -32603, "message": "no authenticated caller"}));
                    };
                    let context = CallContext { caller, db: self.db.clone(), config: self.config.clone() };
                    match self.provider.call(&context, tool, arguments).await {
                        Ok(result) => Ok(result),
                        Err(message) => Ok(json!({"content": [{"type": "text", "text": message}], "isError": true})),
                    }
                }
                _ => Err(json!({"code": -32601, "message": format!("method not found: {method}")})),
            }
        })
    }
}

/// Registers every extension's tool providers in the registry; returns their server names. Fails
/// when a provider's server name is invalid, taken by the profile, or used twice.
pub fn register(
    extensions: &Ordered,
    registry: &Registry,
    db: &sea_orm::DatabaseConnection,
    profile: &castellan_config::Profile,
) -> Result<Vec<String>, String> {
    let mut names = BTreeSet::new();
    for extension in extensions.iter() {
        let metadata = extension.metadata();
        let config = extension.config_prefix().and_then(|prefix| profile.extensions.get(prefix).cloned());
        for provider in extension.tool_providers() {
            let name = provider.server().to_string();
            castellan_config::ServerName::parse(&name)
                .map_err(|reason| format!("extension {}: tool provider `{name}`: {reason}", metadata.id))?;
            if profile.mcp_servers.keys().any(|server| server.as_str() == name) || !names.insert(name.clone()) {
                return Err(format!(
                    "extension {}: the tool provider `{name}` has the name of another server",
                    metadata.id
                ));
            }
            let tools: Vec<ToolEntry> = provider.tools().into_iter().filter_map(ToolEntry::new).collect();
            let identity = ServerIdentity {
                protocol_version: "2025-06-18".to_string(),
                capabilities: json!({"tools": {}}),
                server_info: json!({"name": name, "version": metadata.version}),
                instructions: None,
            };
            let server = ProviderServer { provider, db: db.clone(), config: config.clone() };
            let connection = Connection::in_process(name.clone(), Arc::new(server));
            registry.insert(LiveServer::new(name.clone(), connection, identity, tools, None));
        }
    }
    Ok(names.into_iter().collect())
}
