//! Refusals: a field with no equivalent is a 400-style error naming the field, never dropped.

use serde_json::{Value, json};

use super::{translate_request, translate_response};
use crate::format::WireFormat::{self, ChatCompletions, Gemini, Messages, Responses};
use crate::sse::Event;
use crate::translate::{StreamTranslator, TranslateError};

fn user_hi() -> Value {
    json!([{"role": "user", "content": "hi"}])
}

#[test]
fn fields_without_an_equivalent_are_refused_by_their_path() {
    let cases: [(&str, WireFormat, WireFormat, Value, &str); 24] = [
        (
            "Anthropic thinking",
            Messages,
            ChatCompletions,
            json!({"model": "m", "max_tokens": 5, "thinking": {"type": "adaptive"}, "messages": user_hi()}),
            "thinking",
        ),
        (
            "Anthropic document block",
            Messages,
            Gemini,
            json!({"model": "m", "max_tokens": 5, "messages": [
                {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                {"role": "user", "content": [{"type": "text", "text": "c"}, {"type": "document", "source": {}}]}]}),
            "messages[2].content[1].type: document",
        ),
        (
            "Anthropic thinking block in history",
            Messages,
            ChatCompletions,
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "assistant", "content": [{"type": "thinking", "thinking": "x", "signature": "s"}]}]}),
            "messages[0].content[0].type: thinking",
        ),
        (
            "Anthropic server tool",
            Messages,
            ChatCompletions,
            json!({"model": "m", "max_tokens": 5, "messages": user_hi(), "tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
            "tools[0].type: web_search_20250305",
        ),
        (
            "Anthropic unknown key in a block",
            Messages,
            ChatCompletions,
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "text", "text": "x", "citations": []}]}]}),
            "messages[0].content[0].citations",
        ),
        (
            "Anthropic file image",
            Messages,
            Gemini,
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]}),
            "messages[0].content[0].source.type: file",
        ),
        (
            "Anthropic top_k to OpenAI",
            Messages,
            ChatCompletions,
            json!({"model": "m", "max_tokens": 5, "top_k": 3, "messages": user_hi()}),
            "top_k",
        ),
        (
            "Anthropic end user to Gemini",
            Messages,
            Gemini,
            json!({"model": "m", "max_tokens": 5, "metadata": {"user_id": "u"}, "messages": user_hi()}),
            "metadata.user_id",
        ),
        (
            "Anthropic prefill to OpenAI",
            Messages,
            ChatCompletions,
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "{"}]}),
            "the last message: assistant",
        ),
        (
            "Anthropic prefill to Gemini",
            Messages,
            Gemini,
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "{"}]}),
            "the last message: assistant",
        ),
        ("OpenAI n > 1", ChatCompletions, Messages, json!({"model": "m", "n": 2, "messages": user_hi()}), "n: 2"),
        (
            "OpenAI logprobs",
            ChatCompletions,
            Messages,
            json!({"model": "m", "logprobs": true, "messages": user_hi()}),
            "logprobs: true",
        ),
        (
            "OpenAI audio output",
            ChatCompletions,
            Gemini,
            json!({"model": "m", "audio": {"voice": "alloy"}, "modalities": ["text", "audio"], "messages": user_hi()}),
            "audio",
        ),
        (
            "OpenAI input audio",
            ChatCompletions,
            Messages,
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}),
            "messages[0].content[0].type: input_audio",
        ),
        (
            "OpenAI json schema output",
            ChatCompletions,
            Messages,
            json!({"model": "m", "response_format": {"type": "json_object"}, "messages": user_hi()}),
            "response_format: {\"type\":\"json_object\"}",
        ),
        (
            "OpenAI high image detail",
            ChatCompletions,
            Messages,
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "high"}}]}]}),
            "messages[0].content[0].image_url.detail: \"high\"",
        ),
        (
            "OpenAI system message mid-conversation",
            ChatCompletions,
            Messages,
            json!({"model": "m", "messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]}),
            "messages[1].role: system",
        ),
        (
            "OpenAI temperature above Anthropic's range",
            ChatCompletions,
            Messages,
            json!({"model": "m", "temperature": 1.5, "messages": user_hi()}),
            "temperature: 1.5",
        ),
        (
            "OpenAI one call a turn to Gemini",
            ChatCompletions,
            Gemini,
            json!({"model": "m", "parallel_tool_calls": false, "messages": user_hi()}),
            "parallel_tool_calls",
        ),
        (
            "OpenAI strict schema",
            ChatCompletions,
            Messages,
            json!({"model": "m", "messages": user_hi(), "tools": [{"type": "function", "function": {"name": "f", "strict": true}}]}),
            "tools[0].function.strict: true",
        ),
        (
            "Gemini safety settings",
            Gemini,
            Messages,
            json!({"contents": [{"parts": [{"text": "hi"}]}], "safetySettings": []}),
            "safetySettings",
        ),
        (
            "Gemini thinking config",
            Gemini,
            ChatCompletions,
            json!({"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}}}),
            "generationConfig.thinkingConfig",
        ),
        (
            "Gemini PDF",
            Gemini,
            Messages,
            json!({"contents": [{"parts": [{"inlineData": {"mimeType": "application/pdf", "data": "AA=="}}]}]}),
            "contents[0].parts[0].inlineData.mimeType: application/pdf",
        ),
        (
            "Gemini search tool",
            Gemini,
            ChatCompletions,
            json!({"contents": [{"parts": [{"text": "hi"}]}], "tools": [{"googleSearch": {}}]}),
            "tools[0].googleSearch",
        ),
    ];
    for (name, from, to, body, field) in cases {
        match translate_request(from, to, &body, false) {
            Err(error @ TranslateError::Unsupported { .. }) => {
                let TranslateError::Unsupported { field: actual, .. } = &error else { unreachable!() };
                assert_eq!(actual, field, "{name}: the refused field");
                assert!(error.to_string().contains(field), "{name}: the message names the field: {error}");
            }
            other => panic!("{name}: expected a refusal of `{field}`, got {other:?}"),
        }
    }
}

#[test]
fn malformed_bodies_are_invalid_with_a_reason() {
    let cases: [(&str, WireFormat, &[u8], &str); 5] = [
        ("not JSON", Messages, b"{", "not JSON"),
        ("not an object", ChatCompletions, b"[]", "must be an object"),
        ("no messages", Messages, br#"{"model":"m","max_tokens":1}"#, "`messages` is required"),
        ("arguments not JSON", ChatCompletions,
            br#"{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{nope"}}]}]}"#,
            "messages[0].tool_calls[0].function.arguments"),
        ("an answer to no call", Gemini,
            br#"{"contents":[{"role":"user","parts":[{"functionResponse":{"name":"f","response":{}}}]}]}"#,
            "no earlier functionCall named `f`"),
    ];
    for (name, from, body, expected) in cases {
        let to = if from == Messages { ChatCompletions } else { Messages };
        let options = crate::translate::RequestOptions { upstream_model: "m", stream: false };
        match crate::translate::request(from, to, body, &options) {
            Err(error @ TranslateError::Invalid(_)) => {
                assert!(error.to_string().contains(expected), "{name}: `{error}` should mention `{expected}`");
            }
            other => panic!("{name}: expected Invalid, got {other:?}"),
        }
    }
}

#[test]
fn the_responses_format_is_never_translated() {
    let options = crate::translate::RequestOptions { upstream_model: "m", stream: false };
    for (first, second) in
        [(Responses, Messages), (ChatCompletions, Responses), (Responses, Responses), (Gemini, Responses)]
    {
        let refused = crate::translate::request(first, second, b"{}", &options).expect_err("request refused");
        assert!(
            refused.to_string().contains("served only by OpenAI-kind providers"),
            "{first:?}->{second:?}: {refused}"
        );
        let refused = translate_response(first, second, &json!({})).expect_err("response refused");
        assert!(refused.to_string().contains("Responses API"), "{first:?}->{second:?} response: {refused}");
        let mut stream = StreamTranslator::new(first, second, "m");
        let refused = stream.push(&Event { event: None, data: "{}".into() }).expect_err("stream refused");
        assert!(refused.to_string().contains("Responses API"), "{first:?}->{second:?} stream: {refused}");
        assert!(stream.finish().is_empty(), "{first:?}->{second:?}: a refused stream closes with nothing");
    }
}

#[test]
fn response_content_without_an_equivalent_is_refused() {
    let cases = [
        (
            "Anthropic thinking in an answer",
            Messages,
            ChatCompletions,
            json!({"id": "msg_1", "type": "message", "role": "assistant", "content": [{"type": "thinking", "thinking": "x"}], "stop_reason": "end_turn", "usage": {}}),
            "content[0].type: thinking",
        ),
        (
            "Gemini thought part",
            Gemini,
            Messages,
            json!({"candidates": [{"content": {"parts": [{"text": "hmm", "thought": true}]}}]}),
            "candidates[0].content.parts[0].thought",
        ),
    ];
    for (name, upstream, client, body, field) in cases {
        match translate_response(upstream, client, &body) {
            Err(TranslateError::Unsupported { field: actual, .. }) => assert_eq!(actual, field, "{name}"),
            other => panic!("{name}: expected a refusal, got {other:?}"),
        }
    }
}
