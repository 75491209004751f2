//! Trace ids that two sides derive on their own for one Claude Code tool use, so that the
//! `castellan hook` shim's record (hook_events) and the gateway's record of the same MCP call
//! (mcp_tool_executions) share one trace id without talking to each other.
//!
//! Claude Code gives both sides the id of the model's `tool_use` block (`toolu_...`): the hook
//! payload as `tool_use_id`, and its MCP `tools/call` request as `params._meta["claudecode/toolUseId"]`.
//! It is unique per tool use on its own, and the session id is not on the MCP request (a stdio
//! server gets it only in its environment), so the session is deliberately not an input.
//!
//! The id is the first 16 bytes of SHA-256 over a fixed domain label and the tool use id: a client
//! can choose its trace id this way, as it already can with `traceparent`, but cannot reach the id
//! of another derivation or a plain hash of the same text.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Where Claude Code puts the tool use id in a `tools/call` request's `params._meta`.
pub const CLAUDE_CODE_TOOL_USE_META_KEY: &str = "claudecode/toolUseId";

/// Fixed for good: changing it would split every trace between an old shim and a new daemon.
const DOMAIN: &[u8] = b"castellan trace id of a Claude Code tool use, v1\0";

/// Longer ids, empty ones and ones with control characters are not Claude Code's and derive nothing.
const MAX_TOOL_USE_ID_BYTES: usize = 256;

fn digest_of(tool_use_id: &str) -> Option<[u8; 32]> {
    let plausible = !tool_use_id.is_empty()
        && tool_use_id.len() <= MAX_TOOL_USE_ID_BYTES
        && !tool_use_id.chars().any(char::is_control);
    plausible.then(|| Sha256::new().chain_update(DOMAIN).chain_update(tool_use_id.as_bytes()).finalize().into())
}

/// The trace id (32 lowercase hex digits) of the tool use `tool_use_id`, or none when the id is not
/// plausible. Never all zeros (an invalid W3C trace id): that digest is astronomically unlikely,
/// and is then refused rather than sent.
pub fn trace_id_for_tool_use(tool_use_id: &str) -> Option<String> {
    let digest = digest_of(tool_use_id)?;
    let trace = &digest[..16];
    trace.iter().any(|byte| *byte != 0).then(|| hex::encode(trace))
}

/// A W3C `traceparent` carrying [`trace_id_for_tool_use`], with a parent id from the same digest (so
/// a retry of the same hook sends the same header).
pub fn traceparent_for_tool_use(tool_use_id: &str) -> Option<String> {
    let digest = digest_of(tool_use_id)?;
    let (trace, parent) = (&digest[..16], &digest[16..24]);
    let valid = trace.iter().any(|byte| *byte != 0) && parent.iter().any(|byte| *byte != 0);
    valid.then(|| format!("00-{}-{}-01", hex::encode(trace), hex::encode(parent)))
}

/// The tool use id Claude Code put in a `tools/call` request's params, if any.
pub fn tool_use_id_in_params(params: &Value) -> Option<&str> {
    params.get("_meta")?.get(CLAUDE_CODE_TOOL_USE_META_KEY)?.as_str()
}

/// The trace id of a `tools/call` request that Claude Code sent (its params name the tool use),
/// or none for any other client. The gateway's hook: use this when it is some, else the
/// `traceparent` or a random id as before.
pub fn trace_id_for_tool_call(params: &Value) -> Option<String> {
    trace_id_for_tool_use(tool_use_id_in_params(params)?)
}

/// The `traceparent` the shim sends with a hook payload that names a tool use (PreToolUse,
/// PostToolUse, PostToolUseFailure), or none (other events, or input that is not JSON).
pub fn traceparent_for_hook_input(input: &[u8]) -> Option<String> {
    let payload: Value = serde_json::from_slice(input).ok()?;
    traceparent_for_tool_use(payload.get("tool_use_id")?.as_str()?)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_trace_id_is_a_fixed_domain_separated_digest_of_the_tool_use_id() {
        let id = "toolu_01H8kVq3ZbXy7mN2pQ4rS6tU";
        let trace = trace_id_for_tool_use(id).unwrap();
        let expected = {
            let digest = Sha256::digest([DOMAIN, id.as_bytes()].concat());
            hex::encode(&digest[..16])
        };
        assert_eq!(trace, expected, "the first 16 bytes of SHA-256(domain || id)");
        assert_eq!(trace.len(), 32);
        assert!(trace.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f')), "lowercase hex: {trace}");
        assert_ne!(trace, hex::encode(&Sha256::digest(id.as_bytes())[..16]), "not a plain hash of the id");
        // Pinned: a change here splits traces between an old shim and a new daemon.
        assert_eq!(trace, "86c57acb84c715cf4bca368c3b816aaa", "the derivation is stable across releases");
        assert_eq!(trace_id_for_tool_use(id), Some(trace.clone()), "deterministic");
        assert_ne!(
            trace_id_for_tool_use("toolu_01H8kVq3ZbXy7mN2pQ4rS6tV"),
            Some(trace),
            "another tool use, another id"
        );
        for bad in ["", "a\nb", &"x".repeat(257)] {
            assert_eq!(trace_id_for_tool_use(bad), None, "{bad:?} is not a tool use id");
        }
    }

    #[test]
    fn the_shim_and_the_gateway_arrive_at_the_same_trace_id() {
        let id = "toolu_01H8kVq3ZbXy7mN2pQ4rS6tU";
        let hook_input = json!({"session_id": "5c1f", "hook_event_name": "PreToolUse", "tool_name": "mcp__castellan__customers__get_customer", "tool_input": {"id": 1}, "tool_use_id": id});
        let traceparent = traceparent_for_hook_input(hook_input.to_string().as_bytes()).unwrap();
        let (trace, parent) = crate::trace::parse_traceparent(&traceparent).expect("a valid traceparent");
        assert_ne!(parent, "0000000000000000");
        let params = json!({"name": "customers__get_customer", "arguments": {"id": 1}, "_meta": {"claudecode/toolUseId": id, "progressToken": 2}});
        assert_eq!(trace_id_for_tool_call(&params).as_deref(), Some(trace), "the gateway derives the shim's trace id");
        assert_eq!(
            traceparent_for_hook_input(hook_input.to_string().as_bytes()),
            Some(traceparent),
            "a retry sends the same"
        );

        assert_eq!(trace_id_for_tool_call(&json!({"name": "t", "arguments": {}})), None, "other clients: none");
        assert_eq!(trace_id_for_tool_call(&json!({"name": "t", "_meta": {"claudecode/toolUseId": 5}})), None);
        assert_eq!(traceparent_for_hook_input(br#"{"hook_event_name": "Stop"}"#), None, "no tool use, no header");
        assert_eq!(traceparent_for_hook_input(b"not json"), None);
    }
}
