//! Requests: one two-turn tool conversation (system prompt, text, a base64 and a URL image, two
//! tool calls and their results, sampling settings) written in each format; translating any one of
//! them to another format must give exactly the other.

use serde_json::{Value, json};

use super::{differs, translate_request};
use crate::format::WireFormat::{self, ChatCompletions, Gemini, Messages};
use crate::translate::DEFAULT_MAX_TOKENS;

fn schema() -> Value {
    json!({"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]})
}

fn anthropic_conversation() -> Value {
    json!({
        "model": "upstream-model",
        "max_tokens": 1024,
        "system": "You are terse.",
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Weather in Paris? See the map."},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/map.png"}},
            ]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris", "days": 2}},
            ]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "18C, sunny"}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Paris", "days": 1}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_2", "content": "19C, cloudy"},
                {"type": "text", "text": "Summarize."},
            ]},
        ],
        "tools": [{"name": "get_weather", "description": "Current weather", "input_schema": schema()}],
        "tool_choice": {"type": "auto"},
        "temperature": 0.5,
        "top_p": 0.9,
        "stop_sequences": ["END"],
    })
}

fn openai_conversation() -> Value {
    json!({
        "model": "upstream-model",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [
                {"type": "text", "text": "Weather in Paris? See the map."},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/map.png"}},
            ]},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"days\":2}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"days\":1}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_2", "content": "19C, cloudy"},
            {"role": "user", "content": "Summarize."},
        ],
        "max_completion_tokens": 1024,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": ["END"],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Current weather", "parameters": schema()}}],
        "tool_choice": "auto",
    })
}

fn gemini_conversation() -> Value {
    json!({
        "contents": [
            {"role": "user", "parts": [
                {"text": "Weather in Paris? See the map."},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                {"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/map.png"}},
            ]},
            {"role": "model", "parts": [
                {"text": "Checking."},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris", "days": 2}}},
            ]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"output": "18C, sunny"}}}]},
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris", "days": 1}}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"output": "19C, cloudy"}}},
                {"text": "Summarize."},
            ]},
        ],
        "systemInstruction": {"parts": [{"text": "You are terse."}]},
        "tools": [{"functionDeclarations": [{"name": "get_weather", "description": "Current weather", "parametersJsonSchema": schema()}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
        "generationConfig": {"maxOutputTokens": 1024, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]},
    })
}

fn conversation(format: WireFormat) -> Value {
    match format {
        Messages => anthropic_conversation(),
        ChatCompletions => openai_conversation(),
        _ => gemini_conversation(),
    }
}

/// Tool call ids renamed by order of appearance: Gemini has none, so ids made for it differ from
/// the fixture's while still pairing each call with its result.
fn normalize_ids(value: &Value) -> Value {
    fn walk(value: &Value, seen: &mut Vec<String>) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(key, value)| match (key.as_str(), value) {
                        ("id" | "tool_use_id" | "tool_call_id", Value::String(id)) => {
                            let position = seen.iter().position(|known| known == id).unwrap_or_else(|| {
                                seen.push(id.clone());
                                seen.len() - 1
                            });
                            (key.clone(), json!(format!("id#{position}")))
                        }
                        _ => (key.clone(), walk(value, seen)),
                    })
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(|item| walk(item, seen)).collect()),
            other => other.clone(),
        }
    }
    walk(value, &mut Vec::new())
}

#[test]
fn the_same_conversation_translates_exactly_in_all_six_directions() {
    let formats = [Messages, ChatCompletions, Gemini];
    for from in formats {
        for to in formats.into_iter().filter(|to| *to != from) {
            let name = format!("{from:?} -> {to:?}");
            let translated = translate_request(from, to, &conversation(from), false)
                .unwrap_or_else(|error| panic!("{name}: refused: {error}"));
            let (actual, expected) = (normalize_ids(&translated), normalize_ids(&conversation(to)));
            assert_eq!(actual, expected, "{}", differs(&name, &actual, &expected));
        }
    }
}

#[test]
fn round_trips_through_every_other_format_return_the_original() {
    let formats = [Messages, ChatCompletions, Gemini];
    for from in formats {
        for via in formats.into_iter().filter(|via| *via != from) {
            let name = format!("{from:?} -> {via:?} -> {from:?}");
            let there = translate_request(from, via, &conversation(from), false).expect("there");
            let back = translate_request(via, from, &there, false).expect("back");
            let (actual, expected) = (normalize_ids(&back), normalize_ids(&conversation(from)));
            assert_eq!(actual, expected, "{}", differs(&name, &actual, &expected));
        }
    }
}

#[test]
fn generated_gemini_call_ids_pair_each_call_with_its_result() {
    let translated = translate_request(Gemini, Messages, &gemini_conversation(), false).expect("translates");
    let messages = translated["messages"].as_array().expect("messages");
    let call_ids: Vec<&Value> = messages
        .iter()
        .flat_map(|message| message["content"].as_array().into_iter().flatten())
        .filter(|block| block["type"] == "tool_use")
        .map(|block| &block["id"])
        .collect();
    let result_ids: Vec<&Value> = messages
        .iter()
        .flat_map(|message| message["content"].as_array().into_iter().flatten())
        .filter(|block| block["type"] == "tool_result")
        .map(|block| &block["tool_use_id"])
        .collect();
    assert_eq!(call_ids.len(), 2, "two calls in {translated}");
    assert_ne!(call_ids[0], call_ids[1], "generated ids are distinct");
    assert_eq!(call_ids, result_ids, "each result answers its call, in order");
    let again = translate_request(Gemini, Messages, &gemini_conversation(), false).expect("translates");
    assert_eq!(translated, again, "generated ids are stable for the same body");
}

#[test]
fn request_details_map_as_documented() {
    struct Case {
        name: &'static str,
        from: WireFormat,
        to: WireFormat,
        stream: bool,
        body: Value,
        /// JSON pointer into the translated body, and the value expected there.
        expected: Vec<(&'static str, Value)>,
    }
    let cases = [
        Case {
            name: "no max tokens becomes Anthropic's documented default",
            from: ChatCompletions,
            to: Messages,
            stream: false,
            body: json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
            expected: vec![("/max_tokens", json!(DEFAULT_MAX_TOKENS)), ("/messages/0/content/0/text", json!("hi"))],
        },
        Case {
            name: "a stream to OpenAI asks for usage",
            from: Messages,
            to: ChatCompletions,
            stream: true,
            body: json!({"model": "m", "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
            expected: vec![("/stream", json!(true)), ("/stream_options", json!({"include_usage": true}))],
        },
        Case {
            name: "a stream to Anthropic sets stream",
            from: ChatCompletions,
            to: Messages,
            stream: true,
            body: json!({"model": "m", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "hi"}]}),
            expected: vec![("/stream", json!(true)), ("/model", json!("upstream-model"))],
        },
        Case {
            name: "a stream to Gemini is in the URL, not the body",
            from: Messages,
            to: Gemini,
            stream: true,
            body: json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
            expected: vec![
                ("/stream", Value::Null),
                ("/model", Value::Null),
                ("/contents/0/parts/0/text", json!("hi")),
            ],
        },
        Case {
            name: "system and developer messages become Anthropic system blocks",
            from: ChatCompletions,
            to: Messages,
            stream: false,
            body: json!({"model": "m", "messages": [
                {"role": "system", "content": "one"},
                {"role": "developer", "content": [{"type": "text", "text": "two"}]},
                {"role": "user", "content": "hi"},
            ]}),
            expected: vec![("/system", json!([{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]))],
        },
        Case {
            name: "Anthropic system blocks with cache_control become one OpenAI system message",
            from: Messages,
            to: ChatCompletions,
            stream: false,
            body: json!({"model": "m", "max_tokens": 5,
                "system": [{"type": "text", "text": "a"}, {"type": "text", "text": "b", "cache_control": {"type": "ephemeral"}}],
                "messages": [{"role": "user", "content": "hi"}]}),
            expected: vec![(
                "/messages/0",
                json!({"role": "system", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}),
            )],
        },
        Case {
            name: "a failed tool result is flagged in the OpenAI text",
            from: Messages,
            to: ChatCompletions,
            stream: false,
            body: json!({"model": "m", "max_tokens": 5, "messages": [
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "is_error": true, "content": [{"type": "text", "text": "boom"}]}]},
            ]}),
            expected: vec![("/messages/1", json!({"role": "tool", "tool_call_id": "t1", "content": "Error: boom"}))],
        },
        Case {
            name: "a failed tool result is a Gemini error response",
            from: Messages,
            to: Gemini,
            stream: false,
            body: json!({"model": "m", "max_tokens": 5, "messages": [
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "is_error": true, "content": "boom"}]},
            ]}),
            expected: vec![(
                "/contents/1/parts/0",
                json!({"functionResponse": {"name": "f", "response": {"error": "boom"}}}),
            )],
        },
        Case {
            name: "OpenAI ids outside Anthropic's alphabet are made to fit, the same at call and result",
            from: ChatCompletions,
            to: Messages,
            stream: false,
            body: json!({"model": "m", "messages": [
                {"role": "assistant", "tool_calls": [{"id": "functions.f:0", "type": "function", "function": {"name": "f", "arguments": ""}}]},
                {"role": "tool", "tool_call_id": "functions.f:0", "content": "ok"},
            ]}),
            expected: vec![
                ("/messages/0/content/0", json!({"type": "tool_use", "id": "functions_f_0", "name": "f", "input": {}})),
                (
                    "/messages/1/content/0",
                    json!({"type": "tool_result", "tool_use_id": "functions_f_0", "content": "ok"}),
                ),
            ],
        },
        Case {
            name: "a forced tool and one call a turn, Anthropic to OpenAI",
            from: Messages,
            to: ChatCompletions,
            stream: false,
            body: json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
                "tools": [{"name": "f", "input_schema": {"type": "object"}}],
                "tool_choice": {"type": "tool", "name": "f", "disable_parallel_tool_use": true}}),
            expected: vec![
                ("/tool_choice", json!({"type": "function", "function": {"name": "f"}})),
                ("/parallel_tool_calls", json!(false)),
            ],
        },
        Case {
            name: "a forced tool, OpenAI to Gemini",
            from: ChatCompletions,
            to: Gemini,
            stream: false,
            body: json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                "tools": [{"type": "function", "function": {"name": "f"}}],
                "tool_choice": {"type": "function", "function": {"name": "f"}}}),
            expected: vec![
                ("/toolConfig", json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}})),
                ("/tools/0/functionDeclarations/0/parametersJsonSchema", json!({"type": "object", "properties": {}})),
            ],
        },
        Case {
            name: "required and one call a turn, OpenAI to Anthropic",
            from: ChatCompletions,
            to: Messages,
            stream: false,
            body: json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "tool_choice": "required",
                "parallel_tool_calls": false, "user": "u-1", "max_tokens": 7, "n": 1, "logprobs": false}),
            expected: vec![
                ("/tool_choice", json!({"type": "any", "disable_parallel_tool_use": true})),
                ("/metadata", json!({"user_id": "u-1"})),
                ("/max_tokens", json!(7)),
            ],
        },
        Case {
            name: "Gemini snake_case keys and OpenAPI schemas",
            from: Gemini,
            to: Messages,
            stream: false,
            body: json!({
                "contents": [{"parts": [{"text": "hi"}, {"inline_data": {"mime_type": "image/jpeg", "data": "AAAA"}}]}],
                "system_instruction": {"role": "user", "parts": [{"text": "sys"}]},
                "tools": [{"function_declarations": [{"name": "f", "parameters": {"type": "OBJECT", "properties": {"x": {"type": "STRING"}}}}]}],
                "generation_config": {"max_output_tokens": 9, "top_k": 3, "candidate_count": 1},
            }),
            expected: vec![
                ("/messages/0/content/1/source", json!({"type": "base64", "media_type": "image/jpeg", "data": "AAAA"})),
                ("/system", json!("sys")),
                ("/tools/0/input_schema", json!({"type": "object", "properties": {"x": {"type": "string"}}})),
                ("/max_tokens", json!(9)),
                ("/top_k", json!(3)),
            ],
        },
        Case {
            name: "null and empty fields an SDK echoes back from a response are absent",
            from: ChatCompletions,
            to: Messages,
            stream: false,
            body: json!({"model": "m", "tool_choice": null, "messages": [
                {"role": "user", "content": "hi", "name": null},
                {"role": "assistant", "content": "yo", "refusal": null, "annotations": [], "audio": null, "function_call": null},
                {"role": "user", "content": "again"},
            ]}),
            expected: vec![
                ("/messages/1", json!({"role": "assistant", "content": [{"type": "text", "text": "yo"}]})),
                ("/tool_choice", Value::Null),
            ],
        },
        Case {
            name: "a bare string stop becomes a list",
            from: ChatCompletions,
            to: Gemini,
            stream: false,
            body: json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stop": "END", "temperature": 1.5}),
            expected: vec![("/generationConfig", json!({"stopSequences": ["END"], "temperature": 1.5}))],
        },
        Case {
            name: "an image URL without an extension needs no media type for Anthropic",
            from: ChatCompletions,
            to: Messages,
            stream: false,
            body: json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/img", "detail": "auto"}}]}]}),
            expected: vec![(
                "/messages/0/content/0",
                json!({"type": "image", "source": {"type": "url", "url": "https://example.com/img"}}),
            )],
        },
    ];
    for case in cases {
        let translated = translate_request(case.from, case.to, &case.body, case.stream)
            .unwrap_or_else(|error| panic!("{}: refused: {error}", case.name));
        for (pointer, expected) in case.expected {
            let actual = translated.pointer(pointer).cloned().unwrap_or(Value::Null);
            assert_eq!(actual, expected, "{}: at {pointer} in {translated}", case.name);
        }
    }
}

#[test]
fn the_same_format_passes_through_unchanged() {
    let body = br#"{"model":"m","unknown_field":1,"messages":[]}"#;
    for format in [Messages, ChatCompletions, Gemini] {
        let options = crate::translate::RequestOptions { upstream_model: "x", stream: false };
        let out = crate::translate::request(format, format, body, &options).expect("passes through");
        assert_eq!(out, body.to_vec(), "{format:?} to itself is untouched");
    }
}
