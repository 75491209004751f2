//! The MCP gateway: Streamable HTTP transport, sessions, and relaying to upstream servers.

pub mod answer;
pub mod gateway;
pub mod http;
pub mod input_required;
pub mod jsonrpc;
pub mod names;
pub mod session;
pub mod stateless;

use std::sync::Arc;

use castellan_actors::upstream::{Connection, InboundRouter};
use serde_json::{Value, json};

use session::{Scope, SessionStore};

/// Routes what upstream servers send unprompted to the client sessions that should see it.
pub struct GatewayRouter {
    pub sessions: Arc<SessionStore>,
}

impl InboundRouter for GatewayRouter {
    fn notification(&self, server: &str, message: Value) {
        let method = message.get("method").and_then(Value::as_str).unwrap_or_default();
        let relayed = matches!(
            method,
            "notifications/tools/list_changed"
                | "notifications/prompts/list_changed"
                | "notifications/resources/list_changed"
                | "notifications/resources/updated"
                | "notifications/message"
        );
        if !relayed {
            return;
        }
        for session in self.sessions.all() {
            let in_scope = match &session.scope {
                Scope::Aggregated => true,
                Scope::Server(name) => name == server,
            };
            if in_scope {
                session.notify(message.clone());
            }
        }
    }

    fn request(&self, server: &str, connection: Arc<Connection>, message: Value) {
        // Server-to-client requests need a client stream bound to the call that caused them; until
        // that relay exists they are refused explicitly rather than left hanging.
        let Some(id) = message.get("id").cloned() else { return };
        tracing::info!(server, method = ?message.get("method"), "server-to-client request refused");
        tokio::spawn(async move {
            connection
                .respond(
                    id,
                    Err(
                        json!({"code": -32601, "message": "this gateway does not relay server-to-client requests yet"}),
                    ),
                )
                .await;
        });
    }
}
