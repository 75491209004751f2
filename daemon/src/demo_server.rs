//! `castellan demo-server`: a small MCP server with a customers data set, over stdio (the default)
//! or Streamable HTTP (`--http ADDR`, for benchmarks). Read tools, one destructive tool that the
//! default policy denies to the `user` tier, one resource and one prompt.

use std::collections::BTreeMap;
use std::sync::Mutex;

use castellan_actors::jsonrpc;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const PROTOCOL_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// The in-memory customers; each server process has its own copy.
pub struct DemoServer {
    customers: Mutex<BTreeMap<u64, Value>>,
}

impl Default for DemoServer {
    fn default() -> Self {
        let customers = [
            (1, "Ada Lovelace", "ada@example.com", "enterprise"),
            (2, "Grace Hopper", "grace@example.com", "enterprise"),
            (3, "Alan Turing", "alan@example.com", "startup"),
            (4, "Katherine Johnson", "katherine@example.com", "public-sector"),
            (5, "Edsger Dijkstra", "edsger@example.com", "startup"),
        ]
        .into_iter()
        .map(|(id, name, email, segment)| (id, json!({"id": id, "name": name, "email": email, "segment": segment})))
        .collect();
        Self { customers: Mutex::new(customers) }
    }
}

fn tool_definitions() -> Value {
    let id_schema = json!({"type": "object", "properties": {"id": {"type": "integer", "description": "Customer id"}}, "required": ["id"]});
    json!([
        {"name": "list_customers", "description": "List every customer.", "inputSchema": {"type": "object", "properties": {}},
         "annotations": {"readOnlyHint": true}},
        {"name": "get_customer", "description": "Fetch one customer by id.", "inputSchema": id_schema,
         "annotations": {"readOnlyHint": true}},
        {"name": "delete_customer", "description": "Delete a customer. Irreversible.", "inputSchema": id_schema,
         "annotations": {"destructiveHint": true}},
    ])
}

fn text_result(value: &Value, is_error: bool) -> Value {
    json!({"content": [{"type": "text", "text": value.to_string()}], "structuredContent": value, "isError": is_error})
}

impl DemoServer {
    fn customers(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Value>> {
        self.customers.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Answers one message; `None` for notifications and responses.
    pub fn handle(&self, message: &Value) -> Option<Value> {
        let id = message.get("id")?.clone();
        let method = message.get("method").and_then(Value::as_str)?;
        let params = message.get("params").cloned().unwrap_or_else(|| json!({}));
        let outcome = match method {
            "initialize" => {
                let requested = params.get("protocolVersion").and_then(Value::as_str).unwrap_or_default();
                let version = if PROTOCOL_VERSIONS.contains(&requested) { requested } else { PROTOCOL_VERSIONS[0] };
                Ok(json!({
                    "protocolVersion": version,
                    "capabilities": {"tools": {}, "resources": {}, "prompts": {}},
                    "serverInfo": {"name": "castellan-demo", "version": env!("CARGO_PKG_VERSION")},
                }))
            }
            "ping" => Ok(json!({})),
            "tools/list" => Ok(json!({"tools": tool_definitions()})),
            "tools/call" => self.call(&params),
            "resources/list" => Ok(
                json!({"resources": [{"uri": "customers://schema", "name": "schema", "mimeType": "application/json"}]}),
            ),
            "resources/read" => match params.get("uri").and_then(Value::as_str) {
                Some("customers://schema") => {
                    Ok(json!({"contents": [{"uri": "customers://schema", "mimeType": "application/json",
                    "text": json!({"fields": ["id", "name", "email", "segment"]}).to_string()}]}))
                }
                _ => Err((-32002, "resource not found".to_string())),
            },
            "prompts/list" => Ok(
                json!({"prompts": [{"name": "summarize_customer", "arguments": [{"name": "id", "required": true}]}]}),
            ),
            "prompts/get" => {
                let customer = params.pointer("/arguments/id").and_then(Value::as_str).unwrap_or("?");
                Ok(
                    json!({"messages": [{"role": "user", "content": {"type": "text", "text": format!("Summarize customer {customer}.")}}]}),
                )
            }
            _ => Err((-32601, format!("method not found: {method}"))),
        };
        Some(match outcome {
            Ok(result) => jsonrpc::response(&id, Ok(result)),
            Err((code, message)) => jsonrpc::error(&id, code, &message),
        })
    }

    fn call(&self, params: &Value) -> Result<Value, (i64, String)> {
        let name = params.get("name").and_then(Value::as_str).unwrap_or_default();
        let id = params.pointer("/arguments/id").and_then(|id| id.as_u64().or_else(|| id.as_str()?.parse().ok()));
        match name {
            "list_customers" => {
                Ok(text_result(&json!({"customers": self.customers().values().cloned().collect::<Vec<_>>()}), false))
            }
            "get_customer" | "delete_customer" => {
                let Some(id) = id else { return Ok(text_result(&json!({"error": "id must be an integer"}), true)) };
                let found = if name == "get_customer" {
                    self.customers().get(&id).cloned()
                } else {
                    self.customers().remove(&id)
                };
                Ok(match found {
                    Some(customer) if name == "get_customer" => text_result(&customer, false),
                    Some(_) => text_result(&json!({"deleted": id}), false),
                    None => text_result(&json!({"error": format!("no customer with id {id}")}), true),
                })
            }
            _ => Err((-32602, format!("unknown tool: {name}"))),
        }
    }
}

/// Serves stdio until stdin closes.
pub async fn run_stdio() -> std::io::Result<()> {
    let server = DemoServer::default();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdout = tokio::io::stdout();
    while let Some(line) = lines.next_line().await? {
        let answer = match serde_json::from_str::<Value>(&line) {
            Ok(message) => server.handle(&message),
            Err(_) => Some(jsonrpc::error(&Value::Null, -32700, "parse error")),
        };
        if let Some(answer) = answer {
            let mut bytes = answer.to_string().into_bytes();
            bytes.push(b'\n');
            stdout.write_all(&bytes).await?;
            stdout.flush().await?;
        }
    }
    Ok(())
}

/// Serves Streamable HTTP on `address` (POST /mcp, JSON answers), for benchmarks and HTTP tests.
pub async fn run_http(address: &str) -> std::io::Result<()> {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let server = web::Data::new(DemoServer::default());
    HttpServer::new(move || {
        App::new().app_data(server.clone()).route(
            "/mcp",
            web::post().to(|body: web::Bytes, server: web::Data<DemoServer>| async move {
                let Ok(message) = serde_json::from_slice::<Value>(&body) else {
                    return HttpResponse::BadRequest().json(jsonrpc::error(&Value::Null, -32700, "parse error"));
                };
                match server.handle(&message) {
                    Some(answer) if message.get("method").and_then(Value::as_str) == Some("initialize") => {
                        HttpResponse::Ok().insert_header(("mcp-session-id", "demo")).json(answer)
                    }
                    Some(answer) => HttpResponse::Ok().json(answer),
                    None => HttpResponse::Accepted().finish(),
                }
            }),
        )
    })
    .workers(1)
    .bind(address)?
    .run()
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_behave_as_documented() {
        let server = DemoServer::default();
        let call = |name: &str, args: Value| {
            server.handle(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": args}})).expect("answer")
        };
        assert_eq!(call("get_customer", json!({"id": 2}))["result"]["structuredContent"]["name"], "Grace Hopper");
        assert_eq!(
            call("get_customer", json!({"id": 99}))["result"]["isError"],
            true,
            "missing customer is a tool error"
        );
        assert_eq!(call("delete_customer", json!({"id": 2}))["result"]["isError"], false);
        assert_eq!(call("get_customer", json!({"id": 2}))["result"]["isError"], true, "deleted customer is gone");
        assert_eq!(call("nope", json!({}))["error"]["code"], -32602);
        assert!(
            server.handle(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).is_none(),
            "notifications get no answer"
        );
    }
}
