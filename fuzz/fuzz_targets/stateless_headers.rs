//! `castellan::mcp::stateless::check_request`: the 2026-07-28 envelope and routing-header checks.
//!
//! The params are JSON built from the fuzz input (biased towards the envelope's shape so the later
//! checks are reached), the headers are arbitrary values, sometimes derived from the body, sometimes
//! base64-encoded, sometimes sent twice. The outcome is compared with the rules stated in the module's
//! documentation, applied here independently, in the order the revision gives: `_meta` shape, headers,
//! version, removed methods.
#![no_main]

use arbitrary::{Arbitrary, Result, Unstructured};
use base64::Engine;
use castellan::mcp::jsonrpc::{INVALID_PARAMS, METHOD_NOT_FOUND};
use castellan::mcp::stateless::{
    HEADER_MISMATCH, STATELESS_PROTOCOL_VERSIONS, UNSUPPORTED_PROTOCOL_VERSION, check_request, status_for,
};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
const METHODS: &[&str] = &[
    "tools/call",
    "prompts/get",
    "resources/read",
    "tools/list",
    "server/discover",
    "initialize",
    "ping",
    "logging/setLevel",
    "resources/subscribe",
    "resources/unsubscribe",
];
const REMOVED: &[&str] = &["initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"];
const VERSIONS: &[&str] = &["2026-07-28", "2025-11-25", "2025-06-18", " 2026-07-28", ""];
const NAMES: &[&str] = &["get_customer", "customers__get_customer", "file:///etc/passwd", " x ", "=?base64?eA==?="];

fn text(u: &mut Unstructured, known: &[&str]) -> Result<String> {
    Ok(if u.ratio(1, 2)? { (*u.choose(known)?).to_string() } else { u.arbitrary()? })
}

/// Arbitrary JSON, at most `depth` levels deep.
fn json_value(u: &mut Unstructured, depth: u32) -> Result<Value> {
    let kinds = if depth == 0 { 5 } else { 7 };
    Ok(match u.int_in_range(0..=kinds - 1)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => json!(u.arbitrary::<i64>()?),
        3 => serde_json::Number::from_f64(u.arbitrary()?).map_or(Value::Null, Value::Number),
        4 => Value::String(text(u, NAMES)?),
        5 => Value::Array((0..u.int_in_range(0..=3)?).map(|_| json_value(u, depth - 1)).collect::<Result<_>>()?),
        _ => {
            let mut object = Map::new();
            for _ in 0..u.int_in_range(0..=3)? {
                object.insert(
                    text(u, &["name", "uri", "_meta", META_VERSION, META_CAPABILITIES])?,
                    json_value(u, depth - 1)?,
                );
            }
            Value::Object(object)
        }
    })
}

/// Sometimes the right thing, sometimes arbitrary JSON.
fn maybe(u: &mut Unstructured, right: Value) -> Result<Option<Value>> {
    Ok(match u.int_in_range(0..=3)? {
        0 => None,
        1 => Some(json_value(u, 2)?),
        _ => Some(right),
    })
}

fn params(u: &mut Unstructured) -> Result<Option<Value>> {
    if u.ratio(1, 16)? {
        return Ok(None);
    }
    if u.ratio(1, 8)? {
        return Ok(Some(json_value(u, 4)?));
    }
    let mut meta = Map::new();
    let version = Value::String(text(u, VERSIONS)?);
    if let Some(version) = maybe(u, version)? {
        meta.insert(META_VERSION.into(), version);
    }
    if let Some(capabilities) = maybe(u, json!({}))? {
        meta.insert(META_CAPABILITIES.into(), capabilities);
    }
    if u.arbitrary()? {
        meta.insert(META_LOG_LEVEL.into(), json_value(u, 1)?);
    }
    let mut params = Map::new();
    if let Some(meta) = maybe(u, Value::Object(meta))? {
        params.insert("_meta".into(), meta);
    }
    for key in ["name", "uri"] {
        let value = Value::String(text(u, NAMES)?);
        if let Some(value) = maybe(u, value)? {
            params.insert(key.into(), value);
        }
    }
    Ok(Some(Value::Object(params)))
}

/// One header value: often what the body says (plain, padded or base64), otherwise anything.
fn header_value(u: &mut Unstructured, body: Option<&str>) -> Result<String> {
    let body = body.unwrap_or_default();
    let base64 = |text: &str| format!("=?base64?{}?=", base64::engine::general_purpose::STANDARD.encode(text));
    Ok(match u.int_in_range(0..=6)? {
        0 | 1 => body.to_string(),
        2 => format!(" {body}\t"),
        3 => base64(body),
        4 => base64(&u.arbitrary::<String>()?),
        5 => format!("=?base64?{}?=", u.arbitrary::<String>()?),
        _ => u.arbitrary()?,
    })
}

#[derive(Debug)]
struct Case {
    id: Value,
    method: String,
    params: Option<Value>,
    headers: Vec<(String, String)>,
}

impl<'a> Arbitrary<'a> for Case {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let id = match u.int_in_range(0..=2)? {
            0 => json!(u.arbitrary::<i64>()?),
            1 => json!(u.arbitrary::<String>()?),
            _ => Value::Null,
        };
        let method = text(u, METHODS)?;
        let params = params(u)?;
        let meta_version = params
            .as_ref()
            .and_then(|params| params.pointer("/_meta/io.modelcontextprotocol~1protocolVersion"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let name = params.as_ref().and_then(|params| {
            params.get("name").or_else(|| params.get("uri")).and_then(Value::as_str).map(str::to_string)
        });
        let mut headers = Vec::new();
        for (header, body) in [
            ("mcp-protocol-version", meta_version.as_deref()),
            ("mcp-method", Some(method.as_str())),
            ("mcp-name", name.as_deref()),
        ] {
            // Absent, once or twice.
            for _ in 0..u.choose(&[0, 1, 1, 1, 1, 2])?.to_owned() {
                headers.push((header.to_string(), header_value(u, body)?));
            }
        }
        if u.ratio(1, 8)? {
            headers.push((u.arbitrary()?, u.arbitrary()?));
        }
        Ok(Case { id, method, params, headers })
    }
}

/// What the module documents, in order. `Ok` holds (capabilities, wants log messages).
fn expected(case: &Case) -> std::result::Result<(Value, bool), (u16, i64)> {
    let mismatch = Err((400, HEADER_MISMATCH));
    let meta = case.params.as_ref().and_then(|params| params.get("_meta")).and_then(Value::as_object);
    let version = meta.and_then(|meta| meta.get(META_VERSION)).and_then(Value::as_str);
    let capabilities = meta.and_then(|meta| meta.get(META_CAPABILITIES)).filter(|value| value.is_object());
    let (Some(version), Some(capabilities), Some(meta)) = (version, capabilities, meta) else {
        return Err((400, INVALID_PARAMS));
    };
    let header = |name: &str| -> std::result::Result<Option<&str>, ()> {
        let mut values = case.headers.iter().filter(|(key, _)| key == name).map(|(_, value)| value.trim());
        let first = values.next();
        if values.next().is_some() { Err(()) } else { Ok(first) }
    };
    match header("mcp-protocol-version") {
        Ok(Some(sent)) if sent == version => {}
        _ => return mismatch,
    }
    match header("mcp-method") {
        Ok(Some(sent)) if sent == case.method => {}
        _ => return mismatch,
    }
    let body_key = match case.method.as_str() {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    };
    let named = body_key.and_then(|key| case.params.as_ref()?.get(key)?.as_str());
    let Ok(sent) = header("mcp-name") else { return mismatch };
    let decoded = match sent {
        None => None,
        Some(raw) => match raw.strip_prefix("=?base64?").and_then(|rest| rest.strip_suffix("?=")) {
            None => Some(raw.to_string()),
            Some(encoded) => {
                let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(encoded) else { return mismatch };
                let Ok(text) = String::from_utf8(bytes) else { return mismatch };
                Some(text)
            }
        },
    };
    if decoded.as_deref() != named {
        return mismatch;
    }
    if !STATELESS_PROTOCOL_VERSIONS.contains(&version) {
        return Err((400, UNSUPPORTED_PROTOCOL_VERSION));
    }
    if REMOVED.contains(&case.method.as_str()) {
        return Err((404, METHOD_NOT_FOUND));
    }
    Ok((capabilities.clone(), meta.contains_key(META_LOG_LEVEL)))
}

fuzz_target!(|case: Case| {
    let lookup = |name: &str| -> std::result::Result<Option<String>, ()> {
        let mut values = case.headers.iter().filter(|(key, _)| key == name).map(|(_, value)| value.clone());
        let first = values.next();
        if values.next().is_some() { Err(()) } else { Ok(first) }
    };
    let outcome = check_request(&case.id, &case.method, case.params.as_ref(), &lookup);
    match (outcome, expected(&case)) {
        (Ok(envelope), Ok((capabilities, wants_log_messages))) => {
            assert_eq!(envelope.client_capabilities, capabilities);
            assert_eq!(envelope.wants_log_messages, wants_log_messages);
        }
        (Err(refusal), Err((status, code))) => {
            assert_eq!((refusal.status, &refusal.body["error"]["code"]), (status, &json!(code)), "{}", refusal.body);
            assert_eq!(refusal.body["jsonrpc"], "2.0");
            assert_eq!(refusal.body["id"], case.id, "the refusal keeps the request id");
            assert!(refusal.body["error"]["message"].is_string());
            assert_eq!(status_for(&refusal.body), refusal.status, "the status the answer path would give");
        }
        (outcome, expected) => panic!("check_request gave {outcome:?}, the documented rules give {expected:?}"),
    }
});
