//! A raw Streamable HTTP client for protocol-level tests: it sends exactly the bytes and headers a
//! test asks for and returns status, headers and body, so malformed input can be tested too.

use serde_json::{Value, json};

pub struct Reply {
    pub status: u16,
    pub session_id: Option<String>,
    pub www_authenticate: Option<String>,
    pub body: Value,
    pub raw: String,
}

fn reply_from(response: ureq::Response) -> Reply {
    let status = response.status();
    let session_id = response.header("mcp-session-id").map(str::to_string);
    let www_authenticate = response.header("www-authenticate").map(str::to_string);
    let raw = response.into_string().unwrap_or_default();
    let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
    Reply { status, session_id, www_authenticate, body, raw }
}

/// Sends a POST with the given headers and raw body; HTTP errors come back as replies, not errors.
pub fn post_raw(url: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut request = ureq::post(url);
    for (name, value) in headers {
        request = request.set(name, value);
    }
    match request.send_string(body) {
        Ok(response) => reply_from(response),
        Err(ureq::Error::Status(_, response)) => reply_from(response),
        Err(error) => panic!("transport error posting to {url}: {error}"),
    }
}

/// A session on one endpoint with one key.
pub struct Session {
    pub url: String,
    pub key: String,
    pub session_id: String,
    next_id: u64,
}

impl Session {
    pub fn open(url: &str, key: &str) -> Session {
        let reply = post_raw(url, &standard_headers(key, None), &initialize_body("2025-06-18"));
        assert_eq!(reply.status, 200, "initialize: {}", reply.raw);
        let session_id = reply.session_id.expect("initialize returns Mcp-Session-Id");
        let mut session = Session { url: url.to_string(), key: key.to_string(), session_id, next_id: 1 };
        let ack = session.notify("notifications/initialized", None);
        assert_eq!(ack, 202, "initialized notification is accepted");
        session
    }

    pub fn headers(&self) -> Vec<(&str, &str)> {
        standard_headers(&self.key, Some(&self.session_id))
    }

    pub fn request(&mut self, method: &str, params: Value) -> Reply {
        self.next_id += 1;
        let body = json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}).to_string();
        post_raw(&self.url, &self.headers(), &body)
    }

    pub fn notify(&mut self, method: &str, params: Option<Value>) -> u16 {
        let mut body = json!({"jsonrpc": "2.0", "method": method});
        if let Some(params) = params {
            body["params"] = params;
        }
        post_raw(&self.url, &self.headers(), &body.to_string()).status
    }

    /// tools/call; returns the JSON-RPC message.
    pub fn call(&mut self, tool: &str, arguments: Value) -> Value {
        let reply = self.request("tools/call", json!({"name": tool, "arguments": arguments}));
        assert_eq!(reply.status, 200, "tools/call {tool}: {}", reply.raw);
        reply.body
    }

    pub fn tool_names(&mut self) -> Vec<String> {
        let reply = self.request("tools/list", json!({}));
        assert_eq!(reply.status, 200, "tools/list: {}", reply.raw);
        reply.body["result"]["tools"]
            .as_array()
            .expect("tools array")
            .iter()
            .map(|tool| tool["name"].as_str().expect("name").to_string())
            .collect()
    }
}

pub fn standard_headers<'a>(key: &'a str, session: Option<&'a str>) -> Vec<(&'static str, &'a str)> {
    let mut headers = vec![("content-type", "application/json"), ("accept", "application/json, text/event-stream")];
    if !key.is_empty() {
        headers.push(("authorization", key));
    }
    if let Some(session) = session {
        headers.push(("mcp-session-id", session));
    }
    headers
}

pub fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

pub fn initialize_body(version: &str) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "castellan-tests", "version": "0"}
    }})
    .to_string()
}

/// A client of revision 2026-07-28: no session; every request carries `_meta` and the routing
/// headers that must agree with it.
pub struct Stateless {
    pub url: String,
    pub key: String,
    next_id: u64,
}

pub const STATELESS_VERSION: &str = "2026-07-28";

impl Stateless {
    pub fn new(url: &str, key: &str) -> Stateless {
        Stateless { url: url.to_string(), key: key.to_string(), next_id: 0 }
    }

    /// The body and headers of a well-formed request, for tests that then spoil one part.
    pub fn parts(&mut self, method: &str, mut params: Value) -> (String, Vec<(String, String)>) {
        self.next_id += 1;
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": STATELESS_VERSION,
            "io.modelcontextprotocol/clientCapabilities": {},
        });
        let mut headers: Vec<(String, String)> = standard_headers(&self.key, None)
            .into_iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        headers.push(("mcp-protocol-version".into(), STATELESS_VERSION.into()));
        headers.push(("mcp-method".into(), method.into()));
        let name = match method {
            "tools/call" | "prompts/get" => params.get("name").and_then(Value::as_str),
            "resources/read" => params.get("uri").and_then(Value::as_str),
            _ => None,
        };
        if let Some(name) = name {
            headers.push(("mcp-name".into(), name.to_string()));
        }
        let body = json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}).to_string();
        (body, headers)
    }

    pub fn request(&mut self, method: &str, params: Value) -> Reply {
        let (body, headers) = self.parts(method, params);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
        post_raw(&self.url, &headers, &body)
    }
}
