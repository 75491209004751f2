//! `castellan::mcp::jsonrpc::parse_message` on arbitrary bytes: the first thing a client's body meets.
//!
//! Besides not panicking: the outcome is one of the closed shapes the module documents, every id it
//! accepts or echoes is a string or an integer, only the two refusal codes of a parse appear, and a
//! message rebuilt from what was parsed parses to the same shape.
#![no_main]

use castellan::mcp::jsonrpc::{INVALID_REQUEST, Incoming, PARSE_ERROR, parse_message};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fn valid_id(id: &Value) -> bool {
    id.is_string() || id.is_i64() || id.is_u64()
}

fn rebuilt(incoming: &Incoming) -> Value {
    let mut message = match incoming {
        Incoming::Request { id, method, .. } => json!({"jsonrpc": "2.0", "id": id, "method": method}),
        Incoming::Notification { method, .. } => json!({"jsonrpc": "2.0", "method": method}),
        Incoming::Response { id, outcome: Ok(result) } => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Incoming::Response { id, outcome: Err(error) } => json!({"jsonrpc": "2.0", "id": id, "error": error}),
    };
    if let Incoming::Request { params: Some(params), .. } | Incoming::Notification { params: Some(params), .. } =
        incoming
    {
        message["params"] = params.clone();
    }
    message
}

fuzz_target!(|data: &[u8]| {
    let is_json = serde_json::from_slice::<Value>(data).is_ok();
    match parse_message(data) {
        Ok(incoming) => {
            assert!(is_json, "only JSON parses");
            match &incoming {
                Incoming::Request { id, params, .. } => {
                    assert!(valid_id(id), "request id {id}");
                    assert!(params.as_ref().is_none_or(|p| p.is_object() || p.is_array()), "params {params:?}");
                }
                Incoming::Notification { params, .. } => {
                    assert!(params.as_ref().is_none_or(|p| p.is_object() || p.is_array()), "params {params:?}");
                }
                Incoming::Response { id, outcome } => {
                    assert!(valid_id(id), "response id {id}");
                    if let Err(error) = outcome {
                        assert!(error.is_object(), "error member {error}");
                    }
                }
            }
            // What a relay would send on parses back to the same message.
            let again = parse_message(rebuilt(&incoming).to_string().as_bytes());
            match (&incoming, again) {
                (Incoming::Request { id, method, .. }, Ok(Incoming::Request { id: id2, method: method2, .. })) => {
                    assert_eq!((id, method), (&id2, &method2));
                }
                (Incoming::Notification { method, .. }, Ok(Incoming::Notification { method: method2, .. })) => {
                    assert_eq!(method, &method2);
                }
                (Incoming::Response { id, outcome }, Ok(Incoming::Response { id: id2, outcome: outcome2 })) => {
                    assert_eq!(id, &id2);
                    assert_eq!(outcome.is_ok(), outcome2.is_ok());
                }
                (first, second) => panic!("{first:?} re-parsed as {second:?}"),
            }
        }
        Err(error) => {
            if is_json {
                assert_eq!(error.code, INVALID_REQUEST, "{error:?}");
            } else {
                assert_eq!(error.code, PARSE_ERROR, "{error:?}");
                assert!(error.id.is_none());
            }
            if let Some(id) = &error.id {
                assert!(valid_id(id), "echoed id {id}");
            }
            let message = error.to_message();
            assert_eq!(message["jsonrpc"], "2.0");
            assert_eq!(message["error"]["code"], error.code);
        }
    }
});
