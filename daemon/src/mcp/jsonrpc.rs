//! Parsing of one JSON-RPC 2.0 message from a client, into a closed set of shapes.
//!
//! Anything else (batches, wrong version, a null or fractional id, a method that is not a string)
//! is refused with the JSON-RPC error the specification assigns, before any other work.

use castellan_actors::jsonrpc as envelope;
use serde_json::{Map, Value};

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
/// Castellan's code for a call that policy forbids (interface.md).
pub const FORBIDDEN: i64 = -32003;
pub const REQUEST_TIMEOUT: i64 = -32001;

/// A message as a client sent it.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Request { id: Value, method: String, params: Option<Value> },
    Notification { method: String, params: Option<Value> },
    Response { id: Value, outcome: Result<Value, Value> },
}

/// A refusal, with the id when we could read one.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub id: Option<Value>,
    pub code: i64,
    pub message: String,
}

impl RpcError {
    pub fn new(id: Option<Value>, code: i64, message: impl Into<String>) -> Self {
        Self { id, code, message: message.into() }
    }

    pub fn to_message(&self) -> Value {
        envelope::error(&self.id.clone().unwrap_or(Value::Null), self.code, &self.message)
    }
}

fn valid_id(id: &Value) -> bool {
    id.is_string() || id.as_i64().is_some() || id.as_u64().is_some()
}

pub fn parse_message(body: &[u8]) -> Result<Incoming, RpcError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| RpcError::new(None, PARSE_ERROR, "parse error: the body is not valid JSON"))?;
    let Value::Object(object) = value else {
        let message = if value.is_array() {
            "batches are not supported; send one message per request"
        } else {
            "the message must be a JSON object"
        };
        return Err(RpcError::new(None, INVALID_REQUEST, message));
    };
    parse_object(object)
}

fn parse_object(mut object: Map<String, Value>) -> Result<Incoming, RpcError> {
    let id = object.remove("id");
    if let Some(id) = &id
        && !valid_id(id)
    {
        return Err(RpcError::new(None, INVALID_REQUEST, "id must be a string or an integer"));
    }
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(RpcError::new(id, INVALID_REQUEST, "jsonrpc must be \"2.0\""));
    }
    let params = object.remove("params");
    if let Some(params) = &params
        && !params.is_object()
        && !params.is_array()
    {
        return Err(RpcError::new(id, INVALID_REQUEST, "params must be an object"));
    }
    match object.remove("method") {
        Some(Value::String(method)) => match id {
            Some(id) => Ok(Incoming::Request { id, method, params }),
            None => Ok(Incoming::Notification { method, params }),
        },
        Some(_) => Err(RpcError::new(id, INVALID_REQUEST, "method must be a string")),
        None => {
            let id = id.ok_or_else(|| RpcError::new(None, INVALID_REQUEST, "a message needs a method or an id"))?;
            match (object.remove("result"), object.remove("error")) {
                (Some(result), None) => Ok(Incoming::Response { id, outcome: Ok(result) }),
                (None, Some(error)) if error.is_object() => Ok(Incoming::Response { id, outcome: Err(error) }),
                _ => Err(RpcError::new(Some(id), INVALID_REQUEST, "a response needs exactly one of result or error")),
            }
        }
    }
}

pub fn result_message(id: &Value, result: Value) -> Value {
    envelope::response(id, Ok(result))
}

pub fn error_message(id: &Value, code: i64, message: &str) -> Value {
    envelope::error(id, code, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn each_malformed_shape_gets_its_error_code() {
        let cases: &[(&str, i64)] = &[
            ("{", PARSE_ERROR),
            ("", PARSE_ERROR),
            ("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]", INVALID_REQUEST),
            ("42", INVALID_REQUEST),
            ("{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}", INVALID_REQUEST),
            ("{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}", INVALID_REQUEST),
            ("{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}", INVALID_REQUEST),
            ("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":7}", INVALID_REQUEST),
            ("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":\"s\"}", INVALID_REQUEST),
            ("{\"jsonrpc\":\"2.0\"}", INVALID_REQUEST),
            ("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"error\":{}}", INVALID_REQUEST),
        ];
        for (body, code) in cases {
            let error = parse_message(body.as_bytes()).expect_err(body);
            assert_eq!(error.code, *code, "body {body}");
        }
    }

    #[test]
    fn well_formed_messages_parse_to_their_shape() {
        assert_eq!(
            parse_message(br#"{"jsonrpc":"2.0","id":"a","method":"tools/list","params":{}}"#).expect("request"),
            Incoming::Request { id: json!("a"), method: "tools/list".into(), params: Some(json!({})) }
        );
        assert_eq!(
            parse_message(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).expect("notification"),
            Incoming::Notification { method: "notifications/initialized".into(), params: None }
        );
        assert_eq!(
            parse_message(br#"{"jsonrpc":"2.0","id":3,"error":{"code":1,"message":"m"}}"#).expect("response"),
            Incoming::Response { id: json!(3), outcome: Err(json!({"code":1,"message":"m"})) }
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_message(&body);
        }

        #[test]
        fn any_string_method_with_integer_id_is_a_request(method in ".{0,40}", id in any::<i64>()) {
            let body = json!({"jsonrpc": "2.0", "id": id, "method": method}).to_string();
            let parsed = parse_message(body.as_bytes());
            prop_assert_eq!(parsed, Ok(Incoming::Request { id: json!(id), method, params: None }));
        }
    }
}
