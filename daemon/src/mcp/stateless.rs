//! MCP revision 2026-07-28: no initialize and no session. Every request carries its protocol
//! version and client capabilities in `params._meta`, repeats its method (and tool, prompt or
//! resource name) in headers that must agree with the body, and every result says `resultType`.
//!
//! This module holds the checks and the result decorations as plain functions; `http.rs` calls
//! them. A gateway is exactly the intermediary the revision asks to validate routing headers
//! against the body, so a mismatch is refused here rather than passed on.

use base64::Engine;
use serde_json::{Map, Value, json};

use super::jsonrpc::{INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND};
use super::session::Scope;

/// The stateless revisions served.
pub const STATELESS_PROTOCOL_VERSIONS: &[&str] = &["2026-07-28"];
/// Headers and `_meta` disagree with the body.
pub const HEADER_MISMATCH: i64 = -32020;
/// The request names a revision this build does not serve.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

/// Methods of the session revisions that the stateless one removed: answered "method not found".
const REMOVED_METHODS: &[&str] =
    &["initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"];

/// What a valid stateless request told us besides its method and params.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub client_capabilities: Value,
    /// The client opted in to log lines for this request.
    pub wants_log_messages: bool,
}

/// A refusal: the HTTP status and the JSON-RPC error message.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub status: u16,
    pub body: Value,
}

impl Refusal {
    fn new(status: u16, id: &Value, code: i64, message: &str, data: Option<Value>) -> Self {
        let mut error = json!({"code": code, "message": message});
        if let Some(data) = data {
            error["data"] = data;
        }
        Self { status, body: castellan_actors::jsonrpc::response(id, Err(error)) }
    }
}

/// Whether a request with this `MCP-Protocol-Version` header takes the stateless path: any value
/// that is not a session revision does, so an unknown one is refused with the stateless error.
pub fn is_stateless_version(header: Option<&str>, session_versions: &[&str]) -> bool {
    header.is_some_and(|version| !session_versions.contains(&version.trim()))
}

/// Checks one request in the order the revision gives: `_meta` shape, then headers, then version.
/// `header` looks up a request header by lower-case name; `Err` says a header appeared twice.
pub fn check_request(
    id: &Value,
    method: &str,
    params: Option<&Value>,
    header: &dyn Fn(&str) -> Result<Option<String>, ()>,
) -> Result<Envelope, Refusal> {
    let meta = params.and_then(|params| params.get("_meta")).and_then(Value::as_object);
    let version = meta.and_then(|meta| meta.get(META_VERSION)).and_then(Value::as_str);
    let capabilities = meta.and_then(|meta| meta.get(META_CAPABILITIES)).filter(|value| value.is_object());
    let (Some(version), Some(capabilities)) = (version, capabilities) else {
        let message =
            format!("params._meta must carry '{META_VERSION}' (a string) and '{META_CAPABILITIES}' (an object)");
        return Err(Refusal::new(400, id, INVALID_PARAMS, &message, None));
    };
    let mismatch =
        |what: &str| Refusal::new(400, id, HEADER_MISMATCH, &format!("{what} does not match the request body"), None);
    let read = |name: &str| header(name).map_err(|()| mismatch(&format!("{name} (sent more than once)")));
    if read("mcp-protocol-version")?.as_deref().map(str::trim) != Some(version) {
        return Err(mismatch("the MCP-Protocol-Version header"));
    }
    if read("mcp-method")?.as_deref().map(str::trim) != Some(method) {
        return Err(mismatch("the Mcp-Method header"));
    }
    let named = match method {
        "tools/call" | "prompts/get" => params.and_then(|params| params.get("name")).and_then(Value::as_str),
        "resources/read" => params.and_then(|params| params.get("uri")).and_then(Value::as_str),
        _ => None,
    };
    let name_header = read("mcp-name")?;
    let name_header = match name_header.as_deref().map(str::trim) {
        Some(raw) => Some(decode_header_value(raw).ok_or_else(|| mismatch("the Mcp-Name header (bad encoding)"))?),
        None => None,
    };
    if name_header.as_deref() != named {
        return Err(mismatch("the Mcp-Name header"));
    }
    if !STATELESS_PROTOCOL_VERSIONS.contains(&version) {
        let data = json!({"supported": STATELESS_PROTOCOL_VERSIONS, "requested": version});
        return Err(Refusal::new(400, id, UNSUPPORTED_PROTOCOL_VERSION, "unsupported protocol version", Some(data)));
    }
    if REMOVED_METHODS.contains(&method) {
        let message = format!("method not found: {method} does not exist in revision {version}");
        return Err(Refusal::new(404, id, METHOD_NOT_FOUND, &message, None));
    }
    Ok(Envelope {
        client_capabilities: capabilities.clone(),
        wants_log_messages: meta.is_some_and(|meta| meta.contains_key(META_LOG_LEVEL)),
    })
}

/// A header value as the client meant it: plain printable ASCII, or `=?base64?...?=` for the rest.
fn decode_header_value(raw: &str) -> Option<String> {
    match raw.strip_prefix("=?base64?").and_then(|rest| rest.strip_suffix("?=")) {
        Some(encoded) => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
            String::from_utf8(bytes).ok()
        }
        None => Some(raw.to_string()),
    }
}

/// Removes the stateless envelope keys before a request goes upstream: upstream servers get
/// the method's own params (and a progress token), whatever revision they speak.
pub fn strip_envelope(params: &mut Option<Value>) {
    if let Some(meta) = params.as_mut().and_then(|params| params.get_mut("_meta")).and_then(Value::as_object_mut) {
        meta.retain(|key, _| !key.starts_with("io.modelcontextprotocol/"));
    }
}

/// What `server/discover` answers on this endpoint.
pub fn discover_result(scope: &Scope) -> Value {
    let instructions = match scope {
        Scope::Aggregated => {
            "Tools of every server you may use, named {server}__{tool}. Every call is checked and audited.".to_string()
        }
        Scope::Server(name) => format!("Tools of the '{name}' server. Every call is checked and audited."),
    };
    let mut capabilities = json!({
        "tools": {"listChanged": false},
        "prompts": {"listChanged": false},
        "resources": {"listChanged": false},
        "completions": {},
    });
    if *scope == Scope::Aggregated {
        capabilities["extensions"] = crate::mcp::gateway::extension_capability();
    }
    json!({
        "supportedVersions": STATELESS_PROTOCOL_VERSIONS,
        "capabilities": capabilities,
        "instructions": instructions,
        "ttlMs": 0,
        "cacheScope": "private",
    })
}

/// Adds what every stateless result carries; lists also get cache hints. Lists are filtered per
/// caller, so they may only be cached within the caller's own authorization context.
pub fn decorate_answer(method: &str, answer: &mut Value) {
    let Some(result) = answer.get_mut("result").and_then(Value::as_object_mut) else { return };
    result.entry("resultType").or_insert_with(|| Value::String("complete".into()));
    let cacheable = matches!(
        method,
        "server/discover"
            | "tools/list"
            | "prompts/list"
            | "resources/list"
            | "resources/templates/list"
            | "resources/read"
            | "resources/directory/read"
            | "skills/list"
            | "skills/get"
    );
    if cacheable {
        result.entry("ttlMs").or_insert(json!(0));
        result.insert("cacheScope".into(), Value::String("private".into()));
    }
    let meta = result.entry("_meta").or_insert_with(|| Value::Object(Map::new()));
    if let Some(meta) = meta.as_object_mut() {
        meta.insert(META_SERVER_INFO.into(), json!({"name": "castellan", "version": env!("CARGO_PKG_VERSION")}));
    }
}

/// The HTTP status of a stateless answer: the revision maps some errors to statuses.
pub fn status_for(answer: &Value) -> u16 {
    match answer.pointer("/error/code").and_then(Value::as_i64) {
        Some(METHOD_NOT_FOUND) => 404,
        Some(INVALID_REQUEST | INVALID_PARAMS | HEADER_MISMATCH | UNSUPPORTED_PROTOCOL_VERSION) => 400,
        _ => 200,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Result<Option<String>, ()> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name: &str| Ok(pairs.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone()))
    }

    fn meta(version: &str) -> Value {
        json!({"io.modelcontextprotocol/protocolVersion": version, "io.modelcontextprotocol/clientCapabilities": {}})
    }

    #[test]
    fn a_well_formed_tools_call_passes_and_every_defect_has_its_code() {
        let id = json!(7);
        let params = json!({"name": "get_customer", "arguments": {}, "_meta": meta("2026-07-28")});
        let good = [("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"), ("mcp-name", "get_customer")];
        assert!(check_request(&id, "tools/call", Some(&params), &headers(&good)).is_ok());
        let encoded = [
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?Z2V0X2N1c3RvbWVy?="),
        ];
        assert!(check_request(&id, "tools/call", Some(&params), &headers(&encoded)).is_ok(), "base64 form decodes");

        type Case<'a> = (&'a str, Value, Vec<(&'a str, &'a str)>, u16, i64);
        let cases: [Case; 6] = [
            ("no _meta", json!({"name": "get_customer"}), good.to_vec(), 400, INVALID_PARAMS),
            (
                "name header differs",
                params.clone(),
                vec![
                    ("mcp-protocol-version", "2026-07-28"),
                    ("mcp-method", "tools/call"),
                    ("mcp-name", "delete_customer"),
                ],
                400,
                HEADER_MISMATCH,
            ),
            (
                "method header missing",
                params.clone(),
                vec![("mcp-protocol-version", "2026-07-28"), ("mcp-name", "get_customer")],
                400,
                HEADER_MISMATCH,
            ),
            (
                "version header differs from _meta",
                params.clone(),
                vec![
                    ("mcp-protocol-version", "2025-11-25"),
                    ("mcp-method", "tools/call"),
                    ("mcp-name", "get_customer"),
                ],
                400,
                HEADER_MISMATCH,
            ),
            (
                "unknown version",
                json!({"name": "get_customer", "_meta": meta("2030-01-01")}),
                vec![
                    ("mcp-protocol-version", "2030-01-01"),
                    ("mcp-method", "tools/call"),
                    ("mcp-name", "get_customer"),
                ],
                400,
                UNSUPPORTED_PROTOCOL_VERSION,
            ),
            (
                "bad base64",
                params.clone(),
                vec![
                    ("mcp-protocol-version", "2026-07-28"),
                    ("mcp-method", "tools/call"),
                    ("mcp-name", "=?base64?***?="),
                ],
                400,
                HEADER_MISMATCH,
            ),
        ];
        for (what, params, pairs, status, code) in cases {
            let refusal = check_request(&id, "tools/call", Some(&params), &headers(&pairs)).expect_err(what);
            assert_eq!(refusal.status, status, "{what}");
            assert_eq!(refusal.body["error"]["code"], code, "{what}: {}", refusal.body);
            assert_eq!(refusal.body["id"], 7, "{what}: the id is kept");
        }
    }

    #[test]
    fn removed_methods_are_not_found_and_duplicated_headers_are_refused() {
        let params = json!({"_meta": meta("2026-07-28")});
        let pairs = [("mcp-protocol-version", "2026-07-28"), ("mcp-method", "initialize")];
        let refusal = check_request(&json!(1), "initialize", Some(&params), &headers(&pairs)).expect_err("initialize");
        assert_eq!((refusal.status, refusal.body["error"]["code"].clone()), (404, json!(METHOD_NOT_FOUND)));
        let twice = |_: &str| Err(());
        let refusal = check_request(&json!(1), "tools/list", Some(&params), &twice).expect_err("duplicate header");
        assert_eq!(refusal.body["error"]["code"], HEADER_MISMATCH);
    }

    #[test]
    fn unsupported_version_lists_only_what_discover_lists() {
        let params = json!({"_meta": meta("2030-01-01")});
        let pairs = [("mcp-protocol-version", "2030-01-01"), ("mcp-method", "tools/list")];
        let refusal = check_request(&json!(2), "tools/list", Some(&params), &headers(&pairs)).expect_err("version");
        let discover = discover_result(&Scope::Aggregated);
        assert_eq!(refusal.body["error"]["data"]["supported"], discover["supportedVersions"]);
        assert_eq!(refusal.body["error"]["data"]["requested"], "2030-01-01");
    }

    #[test]
    fn results_are_decorated_and_lists_are_private() {
        let mut answer = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": []}});
        decorate_answer("tools/list", &mut answer);
        assert_eq!(answer["result"]["resultType"], "complete");
        assert_eq!(answer["result"]["cacheScope"], "private");
        assert_eq!(answer["result"]["ttlMs"], 0);
        assert_eq!(answer["result"]["_meta"][META_SERVER_INFO]["name"], "castellan");
        let mut call = json!({"jsonrpc": "2.0", "id": 1, "result": {"content": [], "resultType": "input_required"}});
        decorate_answer("tools/call", &mut call);
        assert_eq!(call["result"]["resultType"], "input_required", "a result's own type is kept");
        assert!(call["result"].get("cacheScope").is_none(), "calls are not cacheable");
        let mut error = json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "x"}});
        decorate_answer("tools/call", &mut error);
        assert!(error.get("result").is_none());
        assert_eq!(status_for(&error), 404);
    }

    #[test]
    fn envelope_keys_are_not_sent_upstream_but_progress_tokens_are() {
        let mut params = Some(json!({"name": "x", "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "progressToken": 5
        }}));
        strip_envelope(&mut params);
        assert_eq!(params, Some(json!({"name": "x", "_meta": {"progressToken": 5}})));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            /// Whatever names the body and the header carry, the request passes only when the header,
            /// decoded, names exactly what the body does.
            #[test]
            fn a_request_passes_only_when_the_name_header_matches_the_body(
                body_name in "[ -~]{0,24}",
                header_name in "[ -~]{0,24}",
                encode in any::<bool>(),
            ) {
                let params = json!({"name": body_name, "_meta": meta("2026-07-28")});
                let shown = if encode {
                    format!("=?base64?{}?=", base64::engine::general_purpose::STANDARD.encode(&header_name))
                } else {
                    header_name.clone()
                };
                let pairs = [("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"), ("mcp-name", shown.as_str())];
                let outcome = check_request(&json!(1), "tools/call", Some(&params), &headers(&pairs));
                let same = if encode { header_name == body_name } else { header_name.trim() == body_name };
                prop_assert_eq!(outcome.is_ok(), same, "body {:?} header {:?}", body_name, shown);
            }

            /// Arbitrary JSON-ish params never panic the checks.
            #[test]
            fn arbitrary_params_never_panic(text in "[ -~]{0,64}", version in "[ -~]{0,12}") {
                let params = json!({"name": text, "_meta": {"io.modelcontextprotocol/protocolVersion": version, "io.modelcontextprotocol/clientCapabilities": {}}});
                let pairs = [("mcp-protocol-version", version.as_str()), ("mcp-method", "tools/call"), ("mcp-name", text.as_str())];
                let _ = check_request(&json!(1), "tools/call", Some(&params), &headers(&pairs));
                let _ = decode_header_value(&text);
            }
        }
    }
}
