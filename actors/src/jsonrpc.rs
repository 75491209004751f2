//! JSON-RPC 2.0 envelopes: the one place a message is built, for the gateway's answers, the
//! upstream connections' requests and the demo server. Messages stay `serde_json::Value` so that
//! fields of newer protocol revisions pass through untouched.

use serde_json::{Value, json};

/// A request: `{"jsonrpc": "2.0", "id", "method", "params"?}`.
pub fn request(id: impl Into<Value>, method: &str, params: Option<Value>) -> Value {
    let mut message = json!({"jsonrpc": "2.0", "id": id.into(), "method": method});
    if let Some(params) = params {
        message["params"] = params;
    }
    message
}

/// A notification: a request without an id.
pub fn notification(method: &str, params: Option<Value>) -> Value {
    let mut message = json!({"jsonrpc": "2.0", "method": method});
    if let Some(params) = params {
        message["params"] = params;
    }
    message
}

/// A response: the result, or an error object (`{"code", "message", "data"?}`) as it is.
pub fn response(id: &Value, outcome: Result<Value, Value>) -> Value {
    // Built by moving the result in: `json!` would copy it through `to_value` (a whole second
    // tree for a large answer).
    let (key, value) = match outcome {
        Ok(result) => ("result", result),
        Err(error) => ("error", error),
    };
    let mut envelope = serde_json::Map::with_capacity(3);
    envelope.insert("jsonrpc".into(), Value::String("2.0".into()));
    envelope.insert("id".into(), id.clone());
    envelope.insert(key.into(), value);
    Value::Object(envelope)
}

/// An error response with a code and a message.
pub fn error(id: &Value, code: i64, message: &str) -> Value {
    response(id, Err(json!({"code": code, "message": message})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_have_the_fields_of_their_kind_and_no_others() {
        assert_eq!(request(7, "ping", None), json!({"jsonrpc": "2.0", "id": 7, "method": "ping"}));
        assert_eq!(
            request("a", "tools/call", Some(json!({"name": "x"}))),
            json!({"jsonrpc": "2.0", "id": "a", "method": "tools/call", "params": {"name": "x"}})
        );
        assert_eq!(
            notification("notifications/initialized", None),
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
        );
        assert_eq!(response(&json!(1), Ok(json!({}))), json!({"jsonrpc": "2.0", "id": 1, "result": {}}));
        assert_eq!(
            error(&Value::Null, -32700, "parse error"),
            json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "parse error"}})
        );
    }
}
