//! What hooks and traces read from outside: `castellan::hooks::decision_from_answer` (the answer of a
//! command or HTTP hook, any JSON) and `castellan::trace::parse_traceparent` (any header text).
//!
//! Checked besides "never panics":
//! - an answer that is not a JSON object, or names a decision other than allow/approve/deny/block,
//!   takes the failure mode: denied exactly when `on_failure` is deny;
//! - a rewrite is only ever taken on PreToolUse, and is a JSON object; a denial never rewrites;
//! - an accepted traceparent yields a trace id of 32 and a parent id of 16 lowercase hex digits,
//!   neither all zeros, both found in the header as given.
#![no_main]

use arbitrary::Arbitrary;
use castellan::hooks::decision_from_answer;
use castellan::trace::parse_traceparent;
use castellan_config::HookEvent;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

#[derive(Arbitrary, Debug)]
struct Input {
    answer: Vec<u8>,
    deny_on_failure: bool,
    event: u8,
    traceparent: String,
}

fn lower_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f')) && text.bytes().any(|byte| byte != b'0')
}

fuzz_target!(|input: Input| {
    let event = HookEvent::ALL[usize::from(input.event) % HookEvent::ALL.len()];
    if let Ok(answer) = serde_json::from_slice::<Value>(&input.answer) {
        let decision = decision_from_answer("fuzz".into(), &answer, input.deny_on_failure, event);
        let named = answer
            .get("decision")
            .or_else(|| answer.get("hookSpecificOutput").and_then(|output| output.get("permissionDecision")));
        let readable = answer.is_object()
            && match named {
                None => true,
                Some(Value::String(name)) => matches!(name.as_str(), "allow" | "approve" | "deny" | "block"),
                Some(_) => false,
            };
        if !readable {
            assert_eq!(decision.allowed, !input.deny_on_failure, "unreadable answers take on_failure: {answer}");
        }
        if let Some(rewritten) = &decision.rewritten {
            assert_eq!(event, HookEvent::PreToolUse, "rewrites only on PreToolUse");
            assert!(rewritten.is_object(), "a rewrite is an object");
            assert!(decision.allowed, "a denial never rewrites");
        }
    }
    if let Some((trace, parent)) = parse_traceparent(&input.traceparent) {
        assert!(lower_hex(trace, 32), "trace id {trace:?}");
        assert!(lower_hex(parent, 16), "parent id {parent:?}");
        assert!(input.traceparent.contains(trace) && input.traceparent.contains(parent));
    }
});
