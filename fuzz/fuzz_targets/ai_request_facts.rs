//! `castellan_ai::format::{RequestFacts::read, rewrite_model}` on arbitrary bytes, in every wire
//! format, with an arbitrary new model name.
//!
//! Checked, besides never panicking:
//! - when `rewrite_model` succeeds, the result is JSON whose top-level `model` is the new name, it
//!   reads (in a format with a body model) to the same facts with only the model changed, and the
//!   bytes before and after the model's value are the original's;
//! - `rewrite_model` succeeds on every body `read` accepts in a format with a body model.
#![no_main]

use arbitrary::Arbitrary;
use castellan_ai::format::{RequestFacts, WireFormat, rewrite_model};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    format: u8,
    new_model: String,
    body: &'a [u8],
}

fuzz_target!(|input: Input| {
    let format = WireFormat::ALL[usize::from(input.format) % WireFormat::ALL.len()];
    let facts = RequestFacts::read(format, input.body);
    let rewritten = rewrite_model(input.body, &input.new_model);
    if facts.is_ok() && format != WireFormat::Gemini {
        assert!(rewritten.is_ok(), "a body read in {format:?} could not be rewritten: {rewritten:?}");
    }
    let Ok(rewritten) = rewritten else { return };

    let value: serde_json::Value = serde_json::from_slice(&rewritten).expect("the rewritten body is JSON");
    assert_eq!(
        value.get("model").and_then(|model| model.as_str()),
        Some(input.new_model.as_str()),
        "the model is the new one"
    );

    let prefix = input.body.iter().zip(&rewritten).take_while(|(a, b)| a == b).count();
    let suffix = input.body.iter().rev().zip(rewritten.iter().rev()).take_while(|(a, b)| a == b).count();
    let new_value = serde_json::to_string(&input.new_model).expect("a string serializes");
    // Everything outside one changed stretch is the original's, and the stretch that replaced
    // the old value is no longer than the new value.
    assert!(rewritten.len().saturating_sub(prefix + suffix) <= new_value.len(), "more than the model's value changed");

    if let Ok(facts) = facts {
        let after = RequestFacts::read(format, &rewritten).expect("the rewritten body reads");
        let expected_model = if format == WireFormat::Gemini { None } else { Some(input.new_model.clone()) };
        assert_eq!(
            RequestFacts { model: expected_model, estimated_input_tokens: after.estimated_input_tokens, ..facts },
            after,
            "only the model changed"
        );
    }
});
