//! Streams fed event by event: each upstream event must produce exactly the client events listed
//! beside it, at once (nothing held back except a Gemini client's tool arguments).

use serde_json::{Value, json};

use crate::format::WireFormat::{self, ChatCompletions, Gemini, Messages};
use crate::sse::Event;
use crate::translate::StreamTranslator;
use crate::translate::hub::generated_call_id;

fn named(name: &str, data: Value) -> Event {
    Event { event: Some(name.into()), data: data.to_string() }
}

fn unnamed(data: Value) -> Event {
    Event { event: None, data: data.to_string() }
}

fn done() -> Event {
    Event { event: None, data: "[DONE]".into() }
}

/// An event as (name, data as JSON when it is JSON), so key order does not matter.
fn comparable(event: &Event) -> (Option<String>, Value) {
    let data = serde_json::from_str(&event.data).unwrap_or_else(|_| Value::String(event.data.clone()));
    (event.event.clone(), data)
}

fn comparable_all(events: &[Event]) -> Vec<(Option<String>, Value)> {
    events.iter().map(comparable).collect()
}

/// Feeds `steps` one event at a time, checking each push's output, then `finish`.
fn run(
    name: &str,
    mut translator: StreamTranslator,
    steps: Vec<(Event, Vec<Event>)>,
    at_finish: Vec<Event>,
) -> Vec<Event> {
    let mut all = Vec::new();
    for (index, (input, expected)) in steps.into_iter().enumerate() {
        let actual = translator.push(&input).unwrap_or_else(|error| panic!("{name}: event {index} refused: {error}"));
        assert_eq!(
            comparable_all(&actual),
            comparable_all(&expected),
            "{name}: the client events for upstream event {index} ({})",
            input.data
        );
        all.extend(actual);
    }
    let finished = translator.finish();
    assert_eq!(comparable_all(&finished), comparable_all(&at_finish), "{name}: the events at finish");
    all.extend(finished);
    all
}

// --- Anthropic upstream ------------------------------------------------------------------------

fn message_start() -> Event {
    named(
        "message_start",
        json!({"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "content": [],
        "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 4}}}),
    )
}

fn block_start(index: u32, block: Value) -> Event {
    named("content_block_start", json!({"type": "content_block_start", "index": index, "content_block": block}))
}

fn block_delta(index: u32, delta: Value) -> Event {
    named("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": delta}))
}

fn block_stop(index: u32) -> Event {
    named("content_block_stop", json!({"type": "content_block_stop", "index": index}))
}

fn text_delta(index: u32, text: &str) -> Event {
    block_delta(index, json!({"type": "text_delta", "text": text}))
}

fn json_delta(index: u32, partial: &str) -> Event {
    block_delta(index, json!({"type": "input_json_delta", "partial_json": partial}))
}

fn message_delta(stop_reason: &str, usage: Value) -> Event {
    named(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": usage}),
    )
}

fn message_stop() -> Event {
    named("message_stop", json!({"type": "message_stop"}))
}

fn ping() -> Event {
    named("ping", json!({"type": "ping"}))
}

/// An OpenAI chunk as the translator writes it for model `client-model`.
fn chunk(id: &str, created: u64, delta: Value, finish_reason: Value) -> Event {
    unnamed(json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": "client-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": null}], "usage": null}))
}

fn usage_chunk(id: &str, created: u64, usage: Value) -> Event {
    unnamed(json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": "client-model",
        "choices": [], "usage": usage}))
}

#[test]
fn anthropic_text_then_tool_use_becomes_openai_chunks() {
    let id = "chatcmpl-msg_1";
    let piece = |delta: Value| chunk(id, 42, delta, Value::Null);
    let steps = vec![
        (message_start(), vec![piece(json!({"role": "assistant", "content": ""}))]),
        (ping(), vec![]),
        (block_start(0, json!({"type": "text", "text": ""})), vec![]),
        (text_delta(0, "Hello"), vec![piece(json!({"content": "Hello"}))]),
        (text_delta(0, " world"), vec![piece(json!({"content": " world"}))]),
        (block_stop(0), vec![]),
        (
            block_start(1, json!({"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}})),
            vec![piece(json!({"tool_calls": [{"index": 0, "id": "toolu_1", "type": "function",
                "function": {"name": "get_weather", "arguments": ""}}]}))],
        ),
        (json_delta(1, ""), vec![]),
        (
            json_delta(1, "{\"city\": \"Pa"),
            vec![piece(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\": \"Pa"}}]}))],
        ),
        (
            json_delta(1, "ris\", \"days\": 3}"),
            vec![piece(json!({"tool_calls": [{"index": 0, "function": {"arguments": "ris\", \"days\": 3}"}}]}))],
        ),
        (block_stop(1), vec![]),
        (message_delta("tool_use", json!({"output_tokens": 15})), vec![chunk(id, 42, json!({}), json!("tool_calls"))]),
        (
            message_stop(),
            vec![
                usage_chunk(
                    id,
                    42,
                    json!({"prompt_tokens": 14, "completion_tokens": 15, "total_tokens": 29,
                    "prompt_tokens_details": {"cached_tokens": 4}}),
                ),
                done(),
            ],
        ),
    ];
    let translator = StreamTranslator::new(Messages, ChatCompletions, "client-model").created_at(42);
    let events = run("Anthropic -> OpenAI", translator, steps, vec![]);

    let arguments: String = events
        .iter()
        .filter_map(|event| serde_json::from_str::<Value>(&event.data).ok())
        .filter_map(|data| {
            data.pointer("/choices/0/delta/tool_calls/0/function/arguments").and_then(Value::as_str).map(str::to_owned)
        })
        .collect();
    let input: Value = serde_json::from_str(&arguments).expect("the concatenated arguments are JSON");
    assert_eq!(input, json!({"city": "Paris", "days": 3}), "the arguments are the tool input");
}

#[test]
fn anthropic_text_then_tool_use_becomes_gemini_chunks() {
    let part = |part: Value| {
        unnamed(json!({"candidates": [{"content": {"role": "model", "parts": [part]}, "index": 0}],
        "modelVersion": "client-model", "responseId": "msg_1"}))
    };
    let steps = vec![
        (message_start(), vec![]),
        (block_start(0, json!({"type": "text", "text": ""})), vec![]),
        (text_delta(0, "Hello"), vec![part(json!({"text": "Hello"}))]),
        (block_stop(0), vec![]),
        (block_start(1, json!({"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}})), vec![]),
        (json_delta(1, "{\"city\": \"Pa"), vec![]),
        (json_delta(1, "ris\"}"), vec![]),
        (block_stop(1), vec![part(json!({"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}))]),
        (message_delta("tool_use", json!({"output_tokens": 15})), vec![]),
        (
            message_stop(),
            vec![unnamed(
                json!({"candidates": [{"content": {"role": "model", "parts": []}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": {"promptTokenCount": 14, "candidatesTokenCount": 15, "totalTokenCount": 29, "cachedContentTokenCount": 4},
                "modelVersion": "client-model", "responseId": "msg_1"}),
            )],
        ),
    ];
    run("Anthropic -> Gemini", StreamTranslator::new(Messages, Gemini, "client-model"), steps, vec![]);
}

// --- OpenAI upstream ---------------------------------------------------------------------------

fn upstream_chunk(delta: Value, finish_reason: Value) -> Event {
    unnamed(json!({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 5, "model": "gpt-x",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}], "usage": null}))
}

fn upstream_usage_chunk() -> Event {
    unnamed(
        json!({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 5, "model": "gpt-x", "choices": [],
        "usage": {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27, "prompt_tokens_details": {"cached_tokens": 5}}}),
    )
}

#[test]
fn openai_text_and_tool_call_become_anthropic_events() {
    let steps = vec![
        (
            upstream_chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            vec![named(
                "message_start",
                json!({"type": "message_start", "message": {
                "id": "msg_chatcmpl-9", "type": "message", "role": "assistant", "model": "client-model", "content": [],
                "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}),
            )],
        ),
        (
            upstream_chunk(json!({"content": "Hi"}), Value::Null),
            vec![block_start(0, json!({"type": "text", "text": ""})), text_delta(0, "Hi")],
        ),
        (
            upstream_chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
                Value::Null,
            ),
            vec![block_stop(0), block_start(1, json!({"type": "tool_use", "id": "call_1", "name": "f", "input": {}}))],
        ),
        (
            upstream_chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}), Value::Null),
            vec![json_delta(1, "{\"a\":")],
        ),
        (
            upstream_chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}), Value::Null),
            vec![json_delta(1, "1}")],
        ),
        (
            upstream_chunk(
                json!({"tool_calls": [{"index": 1, "id": "call_2", "type": "function", "function": {"name": "g", "arguments": "{}"}}]}),
                Value::Null,
            ),
            vec![
                block_stop(1),
                block_start(2, json!({"type": "tool_use", "id": "call_2", "name": "g", "input": {}})),
                json_delta(2, "{}"),
            ],
        ),
        (upstream_chunk(json!({}), json!("tool_calls")), vec![block_stop(2)]),
        (upstream_usage_chunk(), vec![]),
        (
            done(),
            vec![
                message_delta(
                    "tool_use",
                    json!({"input_tokens": 15, "output_tokens": 7, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 5}),
                ),
                message_stop(),
            ],
        ),
    ];
    run("OpenAI -> Anthropic", StreamTranslator::new(ChatCompletions, Messages, "client-model"), steps, vec![]);
}

#[test]
fn an_openai_tool_call_whose_id_repeats_on_every_chunk_is_one_call() {
    let call = |arguments: &str| {
        upstream_chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": arguments}}]}),
            Value::Null,
        )
    };
    let steps = vec![
        (
            upstream_chunk(json!({"role": "assistant"}), Value::Null),
            vec![named(
                "message_start",
                json!({"type": "message_start", "message": {
            "id": "msg_chatcmpl-9", "type": "message", "role": "assistant", "model": "client-model", "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}),
            )],
        ),
        (
            call("{\"a\":"),
            vec![
                block_start(0, json!({"type": "tool_use", "id": "call_1", "name": "f", "input": {}})),
                json_delta(0, "{\"a\":"),
            ],
        ),
        (call("2}"), vec![json_delta(0, "2}")]),
    ];
    let closing = vec![
        block_stop(0),
        message_delta(
            "end_turn",
            json!({"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}),
        ),
        message_stop(),
    ];
    run(
        "OpenAI repeated ids -> Anthropic",
        StreamTranslator::new(ChatCompletions, Messages, "client-model"),
        steps,
        closing,
    );
}

// --- Gemini upstream ---------------------------------------------------------------------------

fn gemini_chunk(parts: Value, finish_reason: Option<&str>, usage: Option<Value>) -> Event {
    let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
    if let Some(reason) = finish_reason {
        candidate["finishReason"] = json!(reason);
    }
    let mut chunk = json!({"candidates": [candidate], "modelVersion": "gemini-x", "responseId": "r1"});
    if let Some(usage) = usage {
        chunk["usageMetadata"] = usage;
    }
    unnamed(chunk)
}

#[test]
fn gemini_text_and_function_call_become_openai_chunks() {
    let id = "chatcmpl-r1";
    let piece = |delta: Value| chunk(id, 0, delta, Value::Null);
    let call_id = generated_call_id("r1", 0, "f");
    let steps = vec![
        (
            gemini_chunk(json!([{"text": "Hel"}]), None, Some(json!({"promptTokenCount": 9}))),
            vec![piece(json!({"role": "assistant", "content": ""})), piece(json!({"content": "Hel"}))],
        ),
        (gemini_chunk(json!([{"text": "lo"}]), None, None), vec![piece(json!({"content": "lo"}))]),
        (
            gemini_chunk(
                json!([{"functionCall": {"name": "f", "args": {"a": 1}}}]),
                Some("STOP"),
                Some(json!({"promptTokenCount": 9, "candidatesTokenCount": 4, "totalTokenCount": 13})),
            ),
            vec![
                piece(
                    json!({"tool_calls": [{"index": 0, "id": call_id, "type": "function", "function": {"name": "f", "arguments": ""}}]}),
                ),
                piece(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":1}"}}]})),
                chunk(id, 0, json!({}), json!("tool_calls")),
                usage_chunk(
                    id,
                    0,
                    json!({"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13, "prompt_tokens_details": {"cached_tokens": 0}}),
                ),
                done(),
            ],
        ),
    ];
    run("Gemini -> OpenAI", StreamTranslator::new(Gemini, ChatCompletions, "client-model"), steps, vec![]);
}

#[test]
fn gemini_text_becomes_anthropic_events() {
    let steps = vec![
        (
            gemini_chunk(json!([{"text": "Hi"}]), None, None),
            vec![
                named(
                    "message_start",
                    json!({"type": "message_start", "message": {
                    "id": "msg_r1", "type": "message", "role": "assistant", "model": "client-model", "content": [],
                    "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}),
                ),
                block_start(0, json!({"type": "text", "text": ""})),
                text_delta(0, "Hi"),
            ],
        ),
        (
            gemini_chunk(
                json!([{"text": "!"}]),
                Some("MAX_TOKENS"),
                Some(json!({"promptTokenCount": 3, "candidatesTokenCount": 2})),
            ),
            vec![
                text_delta(0, "!"),
                block_stop(0),
                message_delta(
                    "max_tokens",
                    json!({"input_tokens": 3, "output_tokens": 2, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}),
                ),
                message_stop(),
            ],
        ),
    ];
    run("Gemini -> Anthropic", StreamTranslator::new(Gemini, Messages, "client-model"), steps, vec![]);
}

// --- Endings and errors ------------------------------------------------------------------------

#[test]
fn a_cut_off_stream_is_closed_at_finish() {
    struct Case {
        name: &'static str,
        upstream: WireFormat,
        client: WireFormat,
        events: Vec<Event>,
        /// The event names (or `[DONE]`) finish must add.
        closing: Vec<&'static str>,
    }
    let cases = [
        Case {
            name: "Anthropic cut mid-text, OpenAI client",
            upstream: Messages,
            client: ChatCompletions,
            events: vec![message_start(), block_start(0, json!({"type": "text", "text": ""})), text_delta(0, "Hi")],
            closing: vec!["finish_reason:stop", "usage", "[DONE]"],
        },
        Case {
            name: "OpenAI cut mid-text, Anthropic client",
            upstream: ChatCompletions,
            client: Messages,
            events: vec![upstream_chunk(json!({"content": "Hi"}), Value::Null)],
            closing: vec!["content_block_stop", "message_delta", "message_stop"],
        },
        Case {
            name: "OpenAI ended without [DONE], Anthropic client",
            upstream: ChatCompletions,
            client: Messages,
            events: vec![upstream_chunk(json!({"content": "Hi"}), json!("stop")), upstream_usage_chunk()],
            closing: vec!["message_delta", "message_stop"],
        },
        Case {
            name: "Anthropic cut, Gemini client",
            upstream: Messages,
            client: Gemini,
            events: vec![message_start()],
            closing: vec!["finishReason:STOP"],
        },
        Case {
            name: "nothing at all, OpenAI client",
            upstream: Gemini,
            client: ChatCompletions,
            events: vec![],
            closing: vec!["role", "finish_reason:stop", "usage", "[DONE]"],
        },
    ];
    for case in cases {
        let mut translator = StreamTranslator::new(case.upstream, case.client, "client-model");
        for event in &case.events {
            translator.push(event).unwrap_or_else(|error| panic!("{}: refused: {error}", case.name));
        }
        let closing: Vec<String> = translator
            .finish()
            .iter()
            .map(|event| {
                let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
                if let Some(name) = &event.event {
                    name.clone()
                } else if event.data == "[DONE]" {
                    "[DONE]".into()
                } else if let Some(reason) = data.pointer("/choices/0/finish_reason").and_then(Value::as_str) {
                    format!("finish_reason:{reason}")
                } else if data.pointer("/choices/0/delta/role").is_some() {
                    "role".into()
                } else if let Some(reason) = data.pointer("/candidates/0/finishReason").and_then(Value::as_str) {
                    format!("finishReason:{reason}")
                } else if data.get("usage").is_some() {
                    "usage".into()
                } else {
                    event.data.clone()
                }
            })
            .collect();
        assert_eq!(closing, case.closing, "{}: the closing events", case.name);
        assert!(translator.finish().is_empty(), "{}: a second finish adds nothing", case.name);
    }
}

#[test]
fn upstream_errors_become_the_client_formats_error_and_end_the_stream() {
    let anthropic_error =
        named("error", json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}));
    let openai_error =
        unnamed(json!({"error": {"message": "Rate limited", "type": "requests", "code": "rate_limit_exceeded"}}));
    let gemini_error = unnamed(json!({"error": {"code": 503, "message": "Busy", "status": "UNAVAILABLE"}}));
    let cases = [
        (
            "Anthropic -> OpenAI",
            Messages,
            ChatCompletions,
            anthropic_error.clone(),
            unnamed(json!({"error": {"message": "Overloaded", "type": "server_error", "param": null, "code": null}})),
        ),
        (
            "Anthropic -> Gemini",
            Messages,
            Gemini,
            anthropic_error,
            unnamed(json!({"error": {"code": 503, "message": "Overloaded", "status": "UNAVAILABLE"}})),
        ),
        (
            "OpenAI -> Anthropic",
            ChatCompletions,
            Messages,
            openai_error,
            named("error", json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limited"}})),
        ),
        (
            "Gemini -> Anthropic",
            Gemini,
            Messages,
            gemini_error,
            named("error", json!({"type": "error", "error": {"type": "overloaded_error", "message": "Busy"}})),
        ),
    ];
    for (name, upstream, client, error, expected) in cases {
        let mut translator = StreamTranslator::new(upstream, client, "client-model");
        let out = translator.push(&error).unwrap_or_else(|refused| panic!("{name}: refused: {refused}"));
        assert_eq!(comparable_all(&out), comparable_all(&[expected]), "{name}: the error event");
        assert!(translator.finish().is_empty(), "{name}: nothing closes a stream after an error");
    }
}

#[test]
fn fail_writes_the_client_formats_error() {
    let mut translator = StreamTranslator::new(ChatCompletions, Messages, "client-model");
    let out = translator.fail("upstream went away");
    assert_eq!(
        comparable_all(&out),
        comparable_all(&[named(
            "error",
            json!({"type": "error", "error": {"type": "api_error", "message": "upstream went away"}})
        )]),
        "an Anthropic error event"
    );
    assert!(translator.finish().is_empty(), "nothing after the error");
}

#[test]
fn unsupported_stream_content_is_refused() {
    let mut translator = StreamTranslator::new(Messages, ChatCompletions, "client-model");
    translator.push(&message_start()).expect("start");
    let refused = translator
        .push(&block_start(0, json!({"type": "thinking", "thinking": ""})))
        .expect_err("a thinking block has no OpenAI equivalent");
    assert!(refused.to_string().contains("content_block.type: thinking"), "names the block: {refused}");
}

#[test]
fn the_same_format_streams_through_unchanged() {
    for format in [Messages, ChatCompletions, Gemini] {
        let mut translator = StreamTranslator::new(format, format, "m");
        let event = named("anything", json!({"x": 1}));
        assert_eq!(translator.push(&event).expect("passes"), vec![event.clone()], "{format:?}: unchanged");
        assert!(translator.finish().is_empty(), "{format:?}: nothing added");
    }
}
