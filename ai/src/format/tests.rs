//! Tests of reading request facts and of rewriting the model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

fn facts(format: WireFormat, body: &str) -> RequestFacts {
    RequestFacts::read(format, body.as_bytes()).unwrap_or_else(|error| panic!("{format:?} {body}: {error}"))
}

#[test]
fn each_format_yields_its_model_stream_flag_limit_and_newest_user_text() {
    use WireFormat::*;
    // (what, format, body, model, stream, max_output_tokens, newest_user_text)
    type Case<'a> = (&'a str, WireFormat, &'a str, Option<&'a str>, bool, Option<u64>, Option<&'a str>);
    let cases: &[Case] = &[
        (
            "Claude Code's shape: content blocks, system as blocks",
            Messages,
            r#"{"model":"claude-opus-4-8","max_tokens":64000,"stream":true,"system":[{"type":"text","text":"x-anthropic-billing-header: cc_version=2"}],
               "messages":[{"role":"user","content":[{"type":"text","text":"first"}]},{"role":"assistant","content":"ok"},
                           {"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AA=="}},{"type":"text","text":"what is this?"},{"type":"text","text":"be brief"}]}]}"#,
            Some("claude-opus-4-8"),
            true,
            Some(64000),
            Some("what is this?\nbe brief"),
        ),
        (
            "Messages: string content, no stream",
            Messages,
            r#"{"model":"claude-haiku-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#,
            Some("claude-haiku-4-5"),
            false,
            Some(10),
            Some("hi"),
        ),
        (
            "Messages: a turn of tool results has no user text",
            Messages,
            r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"old"},{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"n","input":{}}]},
               {"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"42"}]}]}"#,
            Some("m"),
            false,
            Some(1),
            None,
        ),
        (
            "Chat: max_completion_tokens wins over max_tokens, parts",
            ChatCompletions,
            r#"{"model":"gpt-4.1-mini","max_tokens":5,"max_completion_tokens":50,"stream":true,"stream_options":{"include_usage":true},
               "messages":[{"role":"system","content":"be nice"},{"role":"user","content":[{"type":"text","text":"hello"},{"type":"image_url","image_url":{"url":"data:,"}}]},{"role":"tool","tool_call_id":"c","content":"x"}]}"#,
            Some("gpt-4.1-mini"),
            true,
            Some(50),
            Some("hello"),
        ),
        (
            "Chat: max_tokens alone, null stream",
            ChatCompletions,
            r#"{"model":"gpt-4o","max_tokens":7,"stream":null,"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}"#,
            Some("gpt-4o"),
            false,
            Some(7),
            Some("q"),
        ),
        ("Chat: no limit", ChatCompletions, r#"{"model":"o3","messages":[]}"#, Some("o3"), false, None, None),
        (
            "Responses: input as a string",
            Responses,
            r#"{"model":"gpt-5","input":"tell me a joke","max_output_tokens":300,"stream":true}"#,
            Some("gpt-5"),
            true,
            Some(300),
            Some("tell me a joke"),
        ),
        (
            "Responses: the newest user item among function calls",
            Responses,
            r#"{"model":"gpt-5","instructions":"x","input":[{"role":"user","content":"old"},{"type":"message","role":"user","content":[{"type":"input_text","text":"new"}]},
               {"type":"function_call","call_id":"c","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":"1"}]}"#,
            Some("gpt-5"),
            false,
            None,
            Some("new"),
        ),
        (
            "Gemini: model in the path, stream by endpoint, snake_case and camelCase keys",
            Gemini,
            r#"{"contents":[{"parts":[{"text":"hi"},{"inlineData":{"data":"AA","mime_type":"image/png"}}],"role":"user"},{"role":"model","parts":[{"text":"yo"}]}],
               "systemInstruction":{"parts":[{"text":"sys"}]},"generationConfig":{"temperature":0.2,"maxOutputTokens":10,"stopSequences":["END"]},"model":"ignored","stream":true}"#,
            None,
            false,
            Some(10),
            Some("hi"),
        ),
        (
            "Gemini: contents without a role are the user's",
            Gemini,
            r#"{"contents":[{"parts":[{"text":"a"},{"text":"b"}]}]}"#,
            None,
            false,
            None,
            Some("a\nb"),
        ),
    ];
    for (what, format, body, model, stream, max_output_tokens, newest_user_text) in cases {
        let facts = facts(*format, body);
        assert_eq!(facts.model.as_deref(), *model, "{what}: model");
        assert_eq!(facts.stream, *stream, "{what}: stream");
        assert_eq!(facts.max_output_tokens, *max_output_tokens, "{what}: max_output_tokens");
        assert_eq!(facts.newest_user_text.as_deref(), *newest_user_text, "{what}: newest_user_text");
        assert_eq!(facts.estimated_input_tokens, (body.len() as u64).div_ceil(3), "{what}: estimate");
    }
}

#[test]
fn the_estimate_rounds_up_and_errs_high() {
    for (bytes, tokens) in [(0, 0), (1, 1), (3, 1), (4, 2), (3_000, 1_000)] {
        assert_eq!(estimate_input_tokens(&vec![b'x'; bytes]), tokens, "{bytes} bytes");
    }
    // A plain English prompt of about 4 bytes a token is estimated well above that.
    let body = json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "the quick brown fox jumps over the lazy dog ".repeat(50)}]});
    let estimate = facts(WireFormat::Messages, &body.to_string()).estimated_input_tokens;
    assert!(estimate > 2_200 / 4, "{estimate} is above a four-bytes-a-token count");
}

#[test]
fn malformed_bodies_are_refused_naming_the_field_and_what_was_expected() {
    use WireFormat::*;
    let cases: &[(WireFormat, &str, &str)] = &[
        (Messages, "[1]", "the body must be a JSON object"),
        (Gemini, "\"text\"", "the body must be a JSON object"),
        (Messages, r#"{"max_tokens":1,"messages":[]}"#, "model: missing; expected a string"),
        (Messages, r#"{"model":7,"max_tokens":1,"messages":[]}"#, "model: expected a string"),
        (Messages, r#"{"model":"m","messages":[]}"#, "max_tokens: missing; expected a non-negative integer"),
        (Messages, r#"{"model":"m","max_tokens":"10","messages":[]}"#, "max_tokens: expected a non-negative integer"),
        (Messages, r#"{"model":"m","max_tokens":-1,"messages":[]}"#, "max_tokens: expected a non-negative integer"),
        (Messages, r#"{"model":"m","max_tokens":1.5,"messages":[]}"#, "max_tokens: expected a non-negative integer"),
        (Messages, r#"{"model":"m","max_tokens":1,"stream":"yes","messages":[]}"#, "stream: expected true or false"),
        (Messages, r#"{"model":"m","max_tokens":1,"messages":{}}"#, "messages: expected an array"),
        (Messages, r#"{"model":"m","max_tokens":1,"messages":["hi"]}"#, "messages[0]: expected an object"),
        (
            Messages,
            r#"{"model":"m","max_tokens":1,"messages":[{"content":"hi"}]}"#,
            "messages[0].role: expected a string",
        ),
        (
            Messages,
            r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":5}]}"#,
            "messages[0].content: expected a string or an array",
        ),
        (
            Messages,
            r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"text","text":1}]}]}"#,
            "messages[0].content[0].text: expected a string",
        ),
        (
            ChatCompletions,
            r#"{"model":"m","max_completion_tokens":true,"messages":[]}"#,
            "max_completion_tokens: expected a non-negative integer",
        ),
        (Responses, r#"{"model":"m","input":3}"#, "input: expected a string or an array"),
        (Responses, r#"{"model":"m","max_output_tokens":"1"}"#, "max_output_tokens: expected a non-negative integer"),
        (Gemini, r#"{"generationConfig":[]}"#, "generationConfig: expected an object"),
        (
            Gemini,
            r#"{"generationConfig":{"maxOutputTokens":"1"}}"#,
            "generationConfig.maxOutputTokens: expected a non-negative integer",
        ),
        (
            Gemini,
            r#"{"contents":[{"role":"user","parts":[{"text":1}]}]}"#,
            "contents[0].parts[0].text: expected a string",
        ),
    ];
    for (format, body, message) in cases {
        let error = RequestFacts::read(*format, body.as_bytes()).unwrap_err();
        assert_eq!(error.to_string(), *message, "{format:?} {body}");
    }
    for body in ["", "{", "{\"model\":\"m\"} x", "\u{feff}{}"] {
        let error = RequestFacts::read(Messages, body.as_bytes()).unwrap_err();
        assert!(error.to_string().starts_with("the body is not JSON: "), "{body:?}: {error}");
    }
}

#[test]
fn a_key_repeated_in_any_object_is_refused() {
    // Parsers disagree on which copy wins; the one checked must be the one the provider uses.
    for body in [
        r#"{"model":"allowed","model":"forbidden","max_tokens":1,"messages":[]}"#,
        r#"{"model":"m","max_tokens":1,"messages":[],"messages":[{"role":"user","content":"hidden"}]}"#,
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"shown","content":"hidden"}]}"#,
        r#"{"model":"a","mod\u0065l":"b","max_tokens":1,"messages":[]}"#,
    ] {
        let error = RequestFacts::read(WireFormat::Messages, body.as_bytes()).unwrap_err();
        assert!(error.to_string().contains("appears twice"), "{body}: {error}");
        assert!(rewrite_model(body.as_bytes(), "x").is_err(), "{body}: no rewrite either");
    }
}

#[test]
fn rewriting_the_model_changes_only_its_value() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "unknown fields, whitespace, key order and number spelling survive",
            "{ \"stream\" : true,\n  \"model\"\t:  \"fast\" ,\"x-new\":{\"model\":\"nested\"},\"n\":1.0e2, \"max_tokens\":10}",
            "{ \"stream\" : true,\n  \"model\"\t:  \"gpt-4.1-mini\" ,\"x-new\":{\"model\":\"nested\"},\"n\":1.0e2, \"max_tokens\":10}",
        ),
        ("the last key", r#"{"a":[1,{"b":"}"}],"model":"fast"}"#, r#"{"a":[1,{"b":"}"}],"model":"gpt-4.1-mini"}"#),
        ("an escaped key is still the model", r#"{"mod\u0065l":"fast"}"#, r#"{"mod\u0065l":"gpt-4.1-mini"}"#),
        (
            "a string with escaped quotes before it",
            r#"{"s":"a\"model\":\"b","model":"fast"}"#,
            r#"{"s":"a\"model\":\"b","model":"gpt-4.1-mini"}"#,
        ),
        ("a non-string model is replaced too", r#"{"model":null}"#, r#"{"model":"gpt-4.1-mini"}"#),
    ];
    for (what, body, expected) in cases {
        let rewritten = rewrite_model(body.as_bytes(), "gpt-4.1-mini").unwrap();
        assert_eq!(String::from_utf8(rewritten).unwrap(), *expected, "{what}");
    }
    let rewritten = rewrite_model(br#"{"model":"a"}"#, "we\"ird\n").unwrap();
    let value: Value = serde_json::from_slice(&rewritten).unwrap();
    assert_eq!(value["model"], "we\"ird\n", "the new name is written as a JSON string");
    assert_eq!(rewrite_model(br#"{"contents":[]}"#, "m"), Err(FormatError::NoModelToRewrite), "no model to rewrite");
    assert_eq!(rewrite_model(b"[]", "m"), Err(FormatError::NotAnObject), "not an object");
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[^\"]{0,6}|\"|\\\\".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z\"]{0,5}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

proptest! {
    /// The body is written by hand with arbitrary whitespace, so the model value's place is
    /// known; the rewrite must equal the text with exactly that range replaced.
    #[test]
    fn a_rewrite_replaces_exactly_the_model_value(
        fields in proptest::collection::btree_map("[a-z_\"]{1,6}", json_value(), 0..5),
        old_model in json_value(),
        position in 0usize..6,
        spaces in proptest::collection::vec(prop_oneof![Just(""), Just(" "), Just("\n  "), Just("\t")], 4),
        pretty_values: bool,
        new_model in "\\PC{0,12}",
    ) {
        let mut entries: Vec<(String, Value)> = fields.into_iter().filter(|(key, _)| key != "model").collect();
        let position = position.min(entries.len());
        entries.insert(position, ("model".to_owned(), old_model));
        let write = |value: &Value| if pretty_values { serde_json::to_string_pretty(value).unwrap() } else { value.to_string() };
        let mut text = format!("{}{{", spaces[0]);
        let mut model_span = 0..0;
        for (index, (key, value)) in entries.iter().enumerate() {
            if index > 0 {
                text.push(',');
            }
            text.push_str(&format!("{}{}{}:{}", spaces[1], Value::from(key.as_str()), spaces[2], spaces[3]));
            let start = text.len();
            text.push_str(&write(value));
            if key == "model" {
                model_span = start..text.len();
            }
        }
        text.push_str(&format!("{}}}{}", spaces[1], spaces[0]));

        let rewritten = rewrite_model(text.as_bytes(), &new_model).unwrap();
        let expected = format!("{}{}{}", &text[..model_span.start], Value::from(new_model.as_str()), &text[model_span.end..]);
        prop_assert_eq!(String::from_utf8(rewritten.clone()).unwrap(), expected);
        let parsed: Value = serde_json::from_slice(&rewritten).unwrap();
        prop_assert_eq!(&parsed["model"], &Value::from(new_model));
    }
}
