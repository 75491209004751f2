//! Responses: one answer with text and a tool call in each format, translated to the others with
//! the ids, object fields, stop reasons and usage the client SDKs read.

use serde_json::{Value, json};

use super::{differs, translate_response};
use crate::format::WireFormat::{self, ChatCompletions, Gemini, Messages};

fn anthropic_answer() -> Value {
    json!({
        "id": "msg_01abc", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 100, "output_tokens": 20, "cache_creation_input_tokens": 5, "cache_read_input_tokens": 30},
    })
}

fn openai_answer() -> Value {
    json!({
        "id": "chatcmpl-xyz", "object": "chat.completion", "created": 1_699_999_999, "model": "gpt-x",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Let me check.",
            "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}],
        }}],
        "usage": {"prompt_tokens": 135, "completion_tokens": 20, "total_tokens": 155,
                  "prompt_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 5}},
    })
}

fn gemini_answer() -> Value {
    json!({
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "Let me check."},
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
        ]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 130, "candidatesTokenCount": 12, "thoughtsTokenCount": 8,
                          "cachedContentTokenCount": 30, "totalTokenCount": 150},
        "modelVersion": "gemini-x", "responseId": "resp-1",
    })
}

fn answer(format: WireFormat) -> Value {
    match format {
        Messages => anthropic_answer(),
        ChatCompletions => openai_answer(),
        _ => gemini_answer(),
    }
}

/// What each client sees, per upstream: Gemini has no cache writes, so its counts differ.
fn expected(upstream: WireFormat, client: WireFormat) -> Value {
    let (id, call_id, input, cache_read, cache_write, output) = match upstream {
        Messages => ("msg_01abc", "toolu_1", 100, 30, 5, 20),
        ChatCompletions => ("chatcmpl-xyz", "call_9", 100, 30, 5, 20),
        _ => ("resp-1", "", 100, 30, 0, 20),
    };
    let prompt = input + cache_read + cache_write;
    match client {
        Messages => json!({
            "id": if id.starts_with("msg_") { id.to_owned() } else { format!("msg_{id}") },
            "type": "message", "role": "assistant", "model": "client-model",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": call_id, "name": "get_weather", "input": {"city": "Paris"}},
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": input, "output_tokens": output, "cache_creation_input_tokens": cache_write,
                      "cache_read_input_tokens": cache_read},
        }),
        ChatCompletions => {
            let mut details = json!({"cached_tokens": cache_read});
            if cache_write > 0 {
                details["cache_write_tokens"] = json!(cache_write);
            }
            json!({
                "id": if id.starts_with("chatcmpl-") { id.to_owned() } else { format!("chatcmpl-{id}") },
                "object": "chat.completion", "created": 1_700_000_000, "model": "client-model",
                "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls", "message": {
                    "role": "assistant", "content": "Let me check.", "refusal": null,
                    "tool_calls": [{"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}],
                }}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output,
                          "prompt_tokens_details": details},
            })
        }
        _ => json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "Let me check."},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
            ]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": prompt, "candidatesTokenCount": output, "totalTokenCount": prompt + output,
                              "cachedContentTokenCount": cache_read},
            "modelVersion": "client-model", "responseId": id,
        }),
    }
}

#[test]
fn an_answer_with_a_tool_call_translates_in_all_six_directions() {
    let formats = [Messages, ChatCompletions, Gemini];
    for upstream in formats {
        for client in formats.into_iter().filter(|client| *client != upstream) {
            let name = format!("{upstream:?} -> {client:?}");
            let mut actual = translate_response(upstream, client, &answer(upstream))
                .unwrap_or_else(|error| panic!("{name}: refused: {error}"));
            // Gemini gives no call id: one is made, and must be there; compare the rest.
            let pointer = match client {
                Messages => "/content/1/id",
                ChatCompletions => "/choices/0/message/tool_calls/0/id",
                _ => "",
            };
            if upstream == Gemini
                && let Some(id) = actual.pointer_mut(pointer)
            {
                assert!(id.as_str().is_some_and(|id| id.starts_with("call_")), "{name}: a call id is made: {id}");
                *id = json!("");
            }
            let expected = expected(upstream, client);
            assert_eq!(actual, expected, "{}", differs(&name, &actual, &expected));
        }
    }
}

#[test]
fn stop_reasons_map_between_formats() {
    // (Anthropic, OpenAI, Gemini) naming the same stop.
    let rows =
        [("end_turn", "stop", "STOP"), ("max_tokens", "length", "MAX_TOKENS"), ("refusal", "content_filter", "SAFETY")];
    for (anthropic, openai, gemini) in rows {
        let from_anthropic =
            json!({"id": "msg_1", "content": [{"type": "text", "text": "x"}], "stop_reason": anthropic, "usage": {}});
        let from_openai = json!({"id": "c", "choices": [{"message": {"role": "assistant", "content": "x"}, "finish_reason": openai}]});
        let from_gemini = json!({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": gemini}]});
        let to_openai = translate_response(Messages, ChatCompletions, &from_anthropic).expect("translates");
        assert_eq!(to_openai["choices"][0]["finish_reason"], openai, "{anthropic} -> OpenAI");
        let to_gemini = translate_response(Messages, Gemini, &from_anthropic).expect("translates");
        assert_eq!(to_gemini["candidates"][0]["finishReason"], gemini, "{anthropic} -> Gemini");
        let to_anthropic = translate_response(ChatCompletions, Messages, &from_openai).expect("translates");
        assert_eq!(to_anthropic["stop_reason"], anthropic, "{openai} -> Anthropic");
        let to_anthropic = translate_response(Gemini, Messages, &from_gemini).expect("translates");
        assert_eq!(to_anthropic["stop_reason"], anthropic, "{gemini} -> Anthropic");
    }
    let stop_sequence = json!({"id": "msg_1", "content": [], "stop_reason": "stop_sequence", "usage": {}});
    let to_openai = translate_response(Messages, ChatCompletions, &stop_sequence).expect("translates");
    assert_eq!(to_openai["choices"][0]["finish_reason"], "stop", "stop_sequence is OpenAI's stop");
    let recitation = json!({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": "RECITATION"}]});
    let to_openai = translate_response(Gemini, ChatCompletions, &recitation).expect("translates");
    assert_eq!(to_openai["choices"][0]["finish_reason"], "content_filter", "Gemini's blocking reasons are a filter");
}

#[test]
fn a_blocked_gemini_prompt_is_a_refusal() {
    let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}});
    let to_anthropic = translate_response(Gemini, Messages, &blocked).expect("translates");
    assert_eq!(to_anthropic["stop_reason"], "refusal", "blocked: {to_anthropic}");
    assert_eq!(to_anthropic["content"], json!([]), "no content: {to_anthropic}");
    assert_eq!(to_anthropic["usage"]["input_tokens"], 7, "prompt tokens still counted: {to_anthropic}");
}

#[test]
fn an_openai_refusal_is_text_with_a_filter_stop() {
    let refusal = json!({"id": "c", "choices": [{"message": {"role": "assistant", "content": null, "refusal": "I can't."}, "finish_reason": "stop"}]});
    let to_anthropic = translate_response(ChatCompletions, Messages, &refusal).expect("translates");
    assert_eq!(to_anthropic["content"], json!([{"type": "text", "text": "I can't."}]), "{to_anthropic}");
    assert_eq!(to_anthropic["stop_reason"], "refusal", "{to_anthropic}");
}

#[test]
fn created_is_zero_without_a_time() {
    let bytes = crate::translate::response(Messages, ChatCompletions, anthropic_answer().to_string().as_bytes(), "m")
        .expect("translates");
    let body: Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(body["created"], 0, "no clock is read: {body}");
}
