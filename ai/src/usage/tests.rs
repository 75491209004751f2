//! Tests of usage normalisation, with bodies and events in the shapes of docs/ai-gateway-notes/.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;

use super::*;

fn usage(input: u64, output: u64, cache_write_5m: u64, cache_write_1h: u64, cache_read: u64) -> Usage {
    Usage { input, output, cache_write_5m, cache_write_1h, cache_read }
}

fn named(name: &str, data: serde_json::Value) -> Event {
    Event { event: Some(name.to_owned()), data: data.to_string() }
}

fn unnamed(data: &str) -> Event {
    Event { event: None, data: data.to_owned() }
}

#[test]
fn response_bodies_are_normalised_per_provider() {
    use WireFormat::*;
    let cases = [
        (
            "Anthropic: input excludes the cache; the TTL split is used",
            Messages,
            json!({"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn",
                   "usage":{"input_tokens":1,"output_tokens":567,"cache_creation_input_tokens":3000,"cache_read_input_tokens":30433,
                            "cache_creation":{"ephemeral_5m_input_tokens":2000,"ephemeral_1h_input_tokens":1000},"service_tier":"standard"}}),
            Some(usage(1, 567, 2000, 1000, 30433)),
        ),
        (
            "Anthropic: without the split, cache writes are 5-minute writes",
            Messages,
            json!({"usage":{"input_tokens":10,"output_tokens":5,"cache_creation_input_tokens":300,"cache_read_input_tokens":0}}),
            Some(usage(10, 5, 300, 0, 0)),
        ),
        (
            "Anthropic: a split short of the total bills the rest at 5 minutes",
            Messages,
            json!({"usage":{"input_tokens":0,"output_tokens":0,"cache_creation_input_tokens":300,"cache_creation":{"ephemeral_1h_input_tokens":100}}}),
            Some(usage(0, 0, 200, 100, 0)),
        ),
        (
            "OpenAI Chat: cached tokens come out of the prompt; reasoning stays in completion",
            ChatCompletions,
            json!({"id":"chatcmpl-1","object":"chat.completion","choices":[],
                   "usage":{"prompt_tokens":10001,"completion_tokens":333,"total_tokens":10334,
                            "prompt_tokens_details":{"cached_tokens":2048,"audio_tokens":0},
                            "completion_tokens_details":{"reasoning_tokens":200,"audio_tokens":0}}}),
            Some(usage(7953, 333, 0, 0, 2048)),
        ),
        (
            "OpenAI Chat: cache writes are a subset of the prompt too",
            ChatCompletions,
            json!({"usage":{"prompt_tokens":1000,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":100,"cache_write_tokens":400}}}),
            Some(usage(500, 1, 400, 0, 100)),
        ),
        (
            "OpenAI Chat: cached above the prompt stops at zero and keeps the cached count",
            ChatCompletions,
            json!({"usage":{"prompt_tokens":10,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":20}}}),
            Some(usage(0, 1, 0, 0, 20)),
        ),
        ("OpenAI Chat: null usage is none", ChatCompletions, json!({"usage":null}), None),
        (
            "OpenAI Responses",
            Responses,
            json!({"id":"resp_1","object":"response","status":"completed",
                   "usage":{"input_tokens":5000,"input_tokens_details":{"cached_tokens":4096},"output_tokens":900,
                            "output_tokens_details":{"reasoning_tokens":700},"total_tokens":5900}}),
            Some(usage(904, 900, 0, 0, 4096)),
        ),
        (
            "Gemini: the prompt includes cached content; thoughts are output",
            Gemini,
            json!({"candidates":[{"content":{"role":"model","parts":[{"text":"hi"}]},"finishReason":"STOP"}],
                   "usageMetadata":{"promptTokenCount":11500,"candidatesTokenCount":1000,"cachedContentTokenCount":10000,
                                    "thoughtsTokenCount":10000,"totalTokenCount":22500},"modelVersion":"gemini-2.5-pro"}),
            Some(usage(1500, 11000, 0, 0, 10000)),
        ),
        (
            "Gemini: tool-use prompt tokens are input",
            Gemini,
            json!({"usageMetadata":{"promptTokenCount":100,"toolUsePromptTokenCount":20,"candidatesTokenCount":3}}),
            Some(usage(120, 3, 0, 0, 0)),
        ),
        ("no usage at all", Messages, json!({"type":"message"}), None),
        ("a Gemini body without usageMetadata", Gemini, json!({"candidates":[]}), None),
    ];
    for (what, format, body, expected) in cases {
        assert_eq!(from_response(format, &body), expected, "{what}");
    }
}

#[test]
fn an_anthropic_stream_takes_input_from_message_start_and_lets_deltas_replace_it() {
    let mut meter = StreamMeter::new(WireFormat::Messages);
    let events = [
        named(
            "message_start",
            json!({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"stop_reason":null,
            "usage":{"input_tokens":1234,"output_tokens":1,"cache_creation_input_tokens":2000,"cache_read_input_tokens":50000,
                     "cache_creation":{"ephemeral_5m_input_tokens":2000,"ephemeral_1h_input_tokens":0}}}}),
        ),
        named(
            "content_block_start",
            json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
        ),
        named("ping", json!({"type":"ping"})),
    ];
    for event in &events {
        meter.observe(event);
    }
    assert!(!meter.saw_output(), "no content delta yet");
    assert_eq!(meter.usage(), Some(usage(1234, 1, 2000, 0, 50000)), "message_start's counts");
    meter.observe(&named(
        "content_block_delta",
        json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}),
    ));
    assert!(meter.saw_output(), "the first text delta is the first token");
    meter.observe(&named("content_block_stop", json!({"type":"content_block_stop","index":0})));
    // Cumulative: output replaced, not added; null leaves the held value.
    meter.observe(&named(
        "message_delta",
        json!({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},
        "usage":{"output_tokens":300,"cache_read_input_tokens":null}}),
    ));
    meter.observe(&named(
        "message_delta",
        json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},
        "usage":{"output_tokens":567,"input_tokens":1234}}),
    ));
    meter.observe(&named("message_stop", json!({"type":"message_stop"})));
    assert_eq!(meter.usage(), Some(usage(1234, 567, 2000, 0, 50000)), "the last cumulative output count");
    assert_eq!(meter.error(), None, "no error");
}

#[test]
fn an_anthropic_error_event_is_reported() {
    let mut meter = StreamMeter::new(WireFormat::Messages);
    meter.observe(&named("error", json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})));
    assert_eq!(meter.error().as_deref(), Some("overloaded_error: Overloaded"), "kind and message");
    assert_eq!(meter.usage(), None, "no usage before message_start");
}

#[test]
fn an_openai_chat_stream_reads_the_final_usage_chunk() {
    let mut meter = StreamMeter::new(WireFormat::ChatCompletions);
    let chunk = |delta: serde_json::Value| {
        unnamed(
            &json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",
            "choices":[{"index":0,"delta":delta,"finish_reason":null}],"usage":null})
            .to_string(),
        )
    };
    meter.observe(&chunk(json!({"role":"assistant","content":""})));
    assert!(!meter.saw_output(), "the role chunk carries no output");
    meter.observe(&chunk(json!({"content":"Hi"})));
    assert!(meter.saw_output(), "the first content");
    assert_eq!(meter.usage(), None, "usage: null on every chunk before the last");
    meter.observe(&unnamed(r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[],
        "usage":{"prompt_tokens":10001,"completion_tokens":333,"total_tokens":10334,"prompt_tokens_details":{"cached_tokens":2048}}}"#));
    meter.observe(&unnamed("[DONE]"));
    assert_eq!(meter.usage(), Some(usage(7953, 333, 0, 0, 2048)), "the include_usage chunk");

    let mut tools = StreamMeter::new(WireFormat::ChatCompletions);
    tools.observe(&chunk(
        json!({"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]}),
    ));
    assert!(tools.saw_output(), "a tool call is output");

    let mut failing = StreamMeter::new(WireFormat::ChatCompletions);
    failing.observe(&unnamed(
        r#"{"error":{"message":"The server had an error","type":"server_error","param":null,"code":null}}"#,
    ));
    assert_eq!(failing.error().as_deref(), Some("server_error: The server had an error"), "a mid-stream error chunk");
}

#[test]
fn a_responses_stream_reads_usage_from_its_ending_event() {
    let mut meter = StreamMeter::new(WireFormat::Responses);
    let events = [
        named(
            "response.created",
            json!({"type":"response.created","sequence_number":0,"response":{"id":"resp_1","status":"in_progress","usage":null}}),
        ),
        named(
            "response.output_item.added",
            json!({"type":"response.output_item.added","sequence_number":1,"output_index":0,"item":{"type":"message"}}),
        ),
    ];
    for event in &events {
        meter.observe(event);
    }
    assert_eq!((meter.saw_output(), meter.usage()), (false, None), "nothing yet");
    meter.observe(&named("response.output_text.delta", json!({"type":"response.output_text.delta","sequence_number":2,"item_id":"m","output_index":0,"content_index":0,"delta":"Hi"})));
    assert!(meter.saw_output(), "the first text delta");
    meter.observe(&named("response.completed", json!({"type":"response.completed","sequence_number":9,"response":{"id":"resp_1","status":"completed",
        "usage":{"input_tokens":5000,"input_tokens_details":{"cached_tokens":4096},"output_tokens":900,"output_tokens_details":{"reasoning_tokens":700}}}})));
    assert_eq!(meter.usage(), Some(usage(904, 900, 0, 0, 4096)), "response.completed's usage");

    let mut failed = StreamMeter::new(WireFormat::Responses);
    failed.observe(&named(
        "response.failed",
        json!({"type":"response.failed","response":{"status":"failed","error":{"code":"server_error","message":"boom"},
        "usage":{"input_tokens":10,"output_tokens":0}}}),
    ));
    assert_eq!(failed.error().as_deref(), Some("server_error: boom"), "a failed response");
    assert_eq!(failed.usage(), Some(usage(10, 0, 0, 0, 0)), "its usage still counts");

    let mut error = StreamMeter::new(WireFormat::Responses);
    error.observe(&named(
        "error",
        json!({"type":"error","code":"rate_limit_exceeded","message":"slow down","param":null,"sequence_number":3}),
    ));
    assert_eq!(error.error().as_deref(), Some("rate_limit_exceeded: slow down"), "an error event");
}

#[test]
fn a_gemini_stream_keeps_the_last_usage_metadata() {
    let mut meter = StreamMeter::new(WireFormat::Gemini);
    meter.observe(&unnamed(r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Hel"}]},"index":0}],
        "usageMetadata":{"promptTokenCount":11500,"cachedContentTokenCount":10000,"totalTokenCount":11500},"modelVersion":"gemini-2.5-pro"}"#));
    assert!(meter.saw_output(), "the first text part");
    assert_eq!(meter.usage(), Some(usage(1500, 0, 0, 0, 10000)), "an early chunk without candidates");
    meter.observe(&unnamed(r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"lo"}]},"finishReason":"STOP","index":0}],
        "usageMetadata":{"promptTokenCount":11500,"candidatesTokenCount":1000,"cachedContentTokenCount":10000,"thoughtsTokenCount":10000,"totalTokenCount":22500}}"#));
    assert_eq!(meter.usage(), Some(usage(1500, 11000, 0, 0, 10000)), "the last chunk's running total wins");

    let mut thinking = StreamMeter::new(WireFormat::Gemini);
    thinking.observe(&unnamed(r#"{"candidates":[{"content":{"role":"model","parts":[]}}]}"#));
    assert!(!thinking.saw_output(), "an empty chunk is no output");

    let mut failing = StreamMeter::new(WireFormat::Gemini);
    failing.observe(&unnamed(r#"{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"#));
    assert_eq!(failing.error().as_deref(), Some("UNAVAILABLE: The model is overloaded."), "an error chunk");
}

#[test]
fn events_that_are_not_json_pass_without_effect() {
    for format in WireFormat::ALL {
        let mut meter = StreamMeter::new(format);
        for data in ["[DONE]", "", "{", "null", "[]", "\"text\""] {
            meter.observe(&unnamed(data));
        }
        assert_eq!((meter.usage(), meter.saw_output(), meter.error()), (None, false, None), "{format:?}");
    }
}
