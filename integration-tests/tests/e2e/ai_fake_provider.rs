//! The official anthropic, openai and google-genai SDKs straight against `fake-provider` (no
//! Castellan): proves the fake speaks each SDK's wire format (bodies, SSE streams, tool calls,
//! usage, error bodies) and is the baseline the AI gateway tests compare with. One Python process
//! per SDK runs all its scenarios: starting Python and importing an SDK takes 0.5-1 s, a scenario a
//! few milliseconds.

use integration_tests::ai::{FakeProvider, run_ai_sdks};
use integration_tests::eventually;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const ANSWER: &str = "fake answer to: What is the capital of France?";
/// Words in ANSWER: the fake's output token count for it.
const ANSWER_WORDS: u64 = 9;
const KEY: &str = "sk-fake-provider-test";

fn ok<'a>(report: &'a Value, scenario: &str) -> &'a Value {
    let result = &report[scenario];
    assert_eq!(result["ok"], true, "{scenario} succeeded: {result}");
    result
}

fn assert_text_answer(result: &Value, stop_reason: &str, what: &str) {
    assert_eq!(result["text"], ANSWER, "{what}: the answer echoes the prompt: {result}");
    assert_eq!(result["stop_reason"], stop_reason, "{what}: {result}");
    assert!(result["tool"].is_null(), "{what}: no tool call: {result}");
}

fn assert_tool_call(result: &Value, what: &str) {
    assert_eq!(result["tool"]["name"], "search", "{what}: the first tool is called: {result}");
    assert_eq!(result["tool"]["input"], json!({"query": "x"}), "{what}: with the fixed input: {result}");
}

fn assert_streamed(result: &Value, what: &str) {
    assert_eq!(result["deltas"], ANSWER_WORDS, "{what}: one text delta per word: {result}");
}

fn error_of<'a>(report: &'a Value, scenario: &str) -> &'a Value {
    let result = &report[scenario];
    assert_eq!(result["ok"], false, "{scenario} failed: {result}");
    &result["error"]
}

/// (scenario, exception class, HTTP status): what the SDK raises for each fake failure.
fn assert_errors(report: &Value, table: &[(&str, &str, Option<u64>)]) {
    for (scenario, class, status) in table {
        let error = error_of(report, scenario);
        assert_eq!(error["class"], *class, "{scenario}: {error}");
        assert_eq!(error["status"].as_u64(), *status, "{scenario}: {error}");
    }
}

#[test]
fn anthropic_sdk_reads_the_fakes_messages_streams_tools_counts_and_errors() {
    let fake = FakeProvider::start();
    let scenarios = [
        "anthropic.create",
        "anthropic.stream",
        "anthropic.tool",
        "anthropic.tool_stream",
        "anthropic.count_tokens",
        "anthropic.models",
        "anthropic.create=claude-cached",
        "anthropic.create=claude-fail-401",
        "anthropic.stream=claude-fail-403",
        "anthropic.create=claude-fail-429",
        "anthropic.create=claude-fail-500",
        "anthropic.create=claude-fail-529",
        "anthropic.create=claude-drop",
        "anthropic.stream=claude-stream-error",
    ];
    let report = run_ai_sdks(&scenarios, &fake.url(), KEY, &[]);

    let created = ok(&report, "anthropic.create");
    assert_text_answer(created, "end_turn", "create");
    assert_eq!(created["usage"]["input_tokens"], 11, "{created}");
    assert_eq!(created["usage"]["output_tokens"], ANSWER_WORDS, "{created}");
    assert_eq!(created["usage"]["cache_read_input_tokens"], 0, "{created}");
    let streamed = ok(&report, "anthropic.stream");
    assert_text_answer(streamed, "end_turn", "stream");
    assert_eq!(streamed["streamed_text"], ANSWER, "text_stream yields the answer: {streamed}");
    assert_streamed(streamed, "stream");
    assert_eq!(streamed["usage"], created["usage"], "the stream's final usage is the body's");
    for scenario in ["anthropic.tool", "anthropic.tool_stream"] {
        let result = ok(&report, scenario);
        assert_tool_call(result, scenario);
        assert_eq!(result["stop_reason"], "tool_use", "{scenario}: {result}");
        assert_eq!(result["usage"]["output_tokens"], 3, "{scenario}: {result}");
    }
    assert_eq!(ok(&report, "anthropic.count_tokens")["input_tokens"], 11);
    assert_eq!(ok(&report, "anthropic.models")["ids"], json!(["claude-sonnet-4-5", "claude-haiku-4-5"]));
    let cached = ok(&report, "anthropic.create=claude-cached");
    assert_eq!(cached["usage"]["input_tokens"], 11, "input_tokens excludes the cache: {cached}");
    assert_eq!(cached["usage"]["cache_read_input_tokens"], 1000, "{cached}");
    assert_eq!(cached["usage"]["cache_creation_input_tokens"], 200, "{cached}");

    assert_errors(
        &report,
        &[
            ("anthropic.create=claude-fail-401", "AuthenticationError", Some(401)),
            ("anthropic.stream=claude-fail-403", "PermissionDeniedError", Some(403)),
            ("anthropic.create=claude-fail-429", "RateLimitError", Some(429)),
            ("anthropic.create=claude-fail-500", "InternalServerError", Some(500)),
            ("anthropic.create=claude-fail-529", "OverloadedError", Some(529)),
            ("anthropic.create=claude-drop", "APIConnectionError", None),
            // An `event: error` after HTTP 200: no status subclass applies.
            ("anthropic.stream=claude-stream-error", "APIStatusError", Some(200)),
        ],
    );
    let rate_limited = error_of(&report, "anthropic.create=claude-fail-429");
    assert_eq!(rate_limited["body"]["error"]["type"], "rate_limit_error", "Anthropic's error body: {rate_limited}");

    // What the SDK sent, as the fake recorded it: SDK >= 2 puts the key in Authorization: Bearer.
    let requests = fake.requests_to("/v1/messages");
    assert_eq!(requests.len(), 12, "one request per messages scenario, no retries");
    for request in &requests {
        assert_eq!(request["headers"]["authorization"], format!("Bearer {KEY}"), "{request}");
        assert!(request["headers"]["x-api-key"].is_null(), "{request}");
        assert!(request["headers"]["anthropic-version"].is_string(), "{request}");
    }
    let first: Value = serde_json::from_str(requests[0]["body"].as_str().expect("body text")).expect("JSON body");
    assert_eq!(first["model"], "claude-sonnet-4-5", "{first}");
    assert_eq!(fake.requests_to("/v1/messages/count_tokens").len(), 1);
    assert!(fake.requests_to("/v1/models")[0]["path"].as_str().expect("path").starts_with("/v1/models"));
    let stats = fake.stats();
    assert_eq!(stats["streams_completed"], 3, "the streams ran to their end (the error event is the end): {stats}");
    assert_eq!(stats["streams_cancelled"], 0, "{stats}");
    fake.clear();
    assert!(fake.requests().is_empty(), "clear() empties the record");
}

#[test]
fn anthropic_sdk_with_the_header_claude_code_sends() {
    let fake = FakeProvider::start();
    let report = run_ai_sdks(
        &["anthropic.stream"],
        &fake.url(),
        KEY,
        &["--anthropic-auth", "x-api-key", "--header", "X-Claude-Code-Session-Id: session-1"],
    );
    assert_text_answer(ok(&report, "anthropic.stream"), "end_turn", "x-api-key");
    let request = &fake.requests_to("/v1/messages")[0];
    assert_eq!(request["headers"]["x-api-key"], KEY, "{request}");
    assert!(request["headers"]["authorization"].is_null(), "{request}");
    assert_eq!(request["headers"]["x-claude-code-session-id"], "session-1", "{request}");
}

#[test]
fn openai_sdk_reads_the_fakes_chat_completions_responses_and_errors() {
    let fake = FakeProvider::start();
    let scenarios = [
        "openai.chat",
        "openai.chat_stream",
        "openai.chat_tool",
        "openai.chat_tool_stream",
        "openai.responses",
        "openai.responses_stream",
        "openai.responses_tool",
        "openai.responses_tool_stream",
        "openai.models",
        "openai.chat=gpt-cached",
        "openai.responses=gpt-cached",
        "openai.chat=gpt-fail-401",
        "openai.chat_stream=gpt-fail-403",
        "openai.chat=gpt-fail-429",
        "openai.responses=gpt-fail-500",
        "openai.chat=gpt-drop",
        "openai.chat_stream=gpt-stream-error",
        "openai.responses_stream=gpt-stream-error",
    ];
    let report = run_ai_sdks(&scenarios, &fake.url(), KEY, &[]);

    let chat = ok(&report, "openai.chat");
    assert_text_answer(chat, "stop", "chat");
    assert_eq!(chat["usage"]["prompt_tokens"], 11, "{chat}");
    assert_eq!(chat["usage"]["completion_tokens"], ANSWER_WORDS, "{chat}");
    assert_eq!(chat["usage"]["total_tokens"], 11 + ANSWER_WORDS, "{chat}");
    let chat_stream = ok(&report, "openai.chat_stream");
    assert_text_answer(chat_stream, "stop", "chat stream");
    assert_streamed(chat_stream, "chat stream");
    assert_eq!(chat_stream["usage"], chat["usage"], "include_usage brings the final usage chunk: {chat_stream}");
    for scenario in ["openai.chat_tool", "openai.chat_tool_stream"] {
        let result = ok(&report, scenario);
        assert_tool_call(result, scenario);
        assert_eq!(result["stop_reason"], "tool_calls", "{scenario}: {result}");
    }
    let responses = ok(&report, "openai.responses");
    assert_text_answer(responses, "completed", "responses");
    assert_eq!(responses["usage"]["input_tokens"], 11, "{responses}");
    assert_eq!(responses["usage"]["output_tokens"], ANSWER_WORDS, "{responses}");
    let responses_stream = ok(&report, "openai.responses_stream");
    assert_text_answer(responses_stream, "completed", "responses stream");
    assert_streamed(responses_stream, "responses stream");
    assert_eq!(responses_stream["usage"], responses["usage"], "{responses_stream}");
    let types = responses_stream["event_types"].as_array().expect("event types");
    assert_eq!(types.first(), Some(&json!("response.created")), "{types:?}");
    assert_eq!(types.last(), Some(&json!("response.completed")), "{types:?}");
    for scenario in ["openai.responses_tool", "openai.responses_tool_stream"] {
        assert_tool_call(ok(&report, scenario), scenario);
    }
    assert_eq!(ok(&report, "openai.models")["ids"], json!(["gpt-4.1", "gpt-4.1-mini"]));
    let cached = ok(&report, "openai.chat=gpt-cached");
    assert_eq!(cached["usage"]["prompt_tokens"], 1011, "cached tokens are inside prompt_tokens: {cached}");
    assert_eq!(cached["usage"]["prompt_tokens_details"]["cached_tokens"], 1000, "{cached}");
    let cached = ok(&report, "openai.responses=gpt-cached");
    assert_eq!(cached["usage"]["input_tokens_details"]["cached_tokens"], 1000, "{cached}");

    assert_errors(
        &report,
        &[
            ("openai.chat=gpt-fail-401", "AuthenticationError", Some(401)),
            ("openai.chat_stream=gpt-fail-403", "PermissionDeniedError", Some(403)),
            ("openai.chat=gpt-fail-429", "RateLimitError", Some(429)),
            ("openai.responses=gpt-fail-500", "InternalServerError", Some(500)),
            ("openai.chat=gpt-drop", "APIConnectionError", None),
            // A chunk with a top-level `error`.
            ("openai.chat_stream=gpt-stream-error", "APIError", None),
            // The Responses `error` event has no `error` key, so the SDK passes it on as an event and
            // the stream helper then misses `response.completed`.
            ("openai.responses_stream=gpt-stream-error", "RuntimeError", None),
        ],
    );
    assert_eq!(error_of(&report, "openai.chat=gpt-fail-429")["code"], "rate_limit_exceeded");

    let requests = fake.requests_to("/v1/chat/completions");
    assert_eq!(requests.len(), 10, "one request per chat scenario");
    for request in requests.iter().chain(&fake.requests_to("/v1/responses")) {
        assert_eq!(request["headers"]["authorization"], format!("Bearer {KEY}"), "{request}");
    }
    let streamed: Value =
        serde_json::from_str(requests[1]["body"].as_str().expect("body")).expect("the stream request's body");
    assert_eq!(streamed["stream_options"], json!({"include_usage": true}), "{streamed}");
}

#[test]
fn google_genai_reads_the_fakes_generate_content_streams_counts_and_errors() {
    let fake = FakeProvider::start();
    let scenarios = [
        "gemini.generate",
        "gemini.stream",
        "gemini.tool",
        "gemini.tool_stream",
        "gemini.count_tokens",
        "gemini.models",
        "gemini.generate=gemini-cached",
        "gemini.generate=gemini-fail-403",
        "gemini.generate=gemini-fail-429",
        "gemini.stream=gemini-fail-500",
        "gemini.stream=gemini-stream-error",
    ];
    let report = run_ai_sdks(&scenarios, &fake.url(), KEY, &[]);

    let generated = ok(&report, "gemini.generate");
    assert_text_answer(generated, "STOP", "generate");
    assert_eq!(generated["usage"]["prompt_token_count"], 11, "{generated}");
    assert_eq!(generated["usage"]["candidates_token_count"], ANSWER_WORDS, "{generated}");
    assert_eq!(generated["usage"]["total_token_count"], 11 + ANSWER_WORDS, "{generated}");
    let streamed = ok(&report, "gemini.stream");
    assert_text_answer(streamed, "STOP", "stream");
    assert_streamed(streamed, "stream");
    assert_eq!(streamed["usage"], generated["usage"], "the last chunk's usage is complete: {streamed}");
    for scenario in ["gemini.tool", "gemini.tool_stream"] {
        let result = ok(&report, scenario);
        assert_tool_call(result, scenario);
        assert_eq!(result["stop_reason"], "STOP", "a function call ends with STOP: {result}");
    }
    assert_eq!(ok(&report, "gemini.count_tokens")["total_tokens"], 11);
    assert_eq!(ok(&report, "gemini.models")["ids"], json!(["models/gemini-2.5-flash", "models/gemini-2.5-pro"]));
    let cached = ok(&report, "gemini.generate=gemini-cached");
    assert_eq!(cached["usage"]["prompt_token_count"], 1011, "promptTokenCount includes the cache: {cached}");
    assert_eq!(cached["usage"]["cached_content_token_count"], 1000, "{cached}");

    assert_errors(
        &report,
        &[
            ("gemini.generate=gemini-fail-403", "ClientError", Some(403)),
            ("gemini.generate=gemini-fail-429", "ClientError", Some(429)),
            ("gemini.stream=gemini-fail-500", "ServerError", Some(500)),
            // A `data:` chunk with `error` after HTTP 200.
            ("gemini.stream=gemini-stream-error", "ServerError", Some(503)),
        ],
    );
    assert_eq!(error_of(&report, "gemini.generate=gemini-fail-429")["api_status"], "RESOURCE_EXHAUSTED");

    // google-genai 3.x asks for API version v1 (not v1beta), with the key in x-goog-api-key.
    let requests = fake.requests();
    let paths: Vec<&str> = requests.iter().filter_map(|request| request["path"].as_str()).collect();
    assert!(paths.contains(&"/v1/models/gemini-2.5-flash:generateContent"), "{paths:?}");
    assert!(paths.contains(&"/v1/models/gemini-2.5-flash:streamGenerateContent?alt=sse"), "{paths:?}");
    assert!(paths.contains(&"/v1/models/gemini-2.5-flash:countTokens"), "{paths:?}");
    assert!(paths.iter().any(|path| path.starts_with("/v1/models") && !path.contains(':')), "list: {paths:?}");
    for request in &requests {
        assert_eq!(request["headers"]["x-goog-api-key"], KEY, "{request}");
    }
}

#[test]
fn google_genai_with_api_version_v1beta() {
    let fake = FakeProvider::start();
    let report =
        run_ai_sdks(&["gemini.stream", "gemini.models"], &fake.url(), KEY, &["--gemini-api-version", "v1beta"]);
    assert_text_answer(ok(&report, "gemini.stream"), "STOP", "v1beta stream");
    assert_eq!(ok(&report, "gemini.models")["ids"][0], "models/gemini-2.5-flash");
    let paths: Vec<String> =
        fake.requests().iter().filter_map(|request| request["path"].as_str().map(str::to_string)).collect();
    assert_eq!(
        paths,
        ["/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", "/v1beta/models"],
        "the v1beta prefix is served too"
    );
}

/// The switches the gateway's failure tests lean on: `slow` paces, `stall-mid` and `stall` notice a
/// client that gives up, `garbage` is not JSON. The SDK timeout is 1 s.
#[test]
fn slow_stalled_and_garbage_answers_behave_as_documented() {
    let fake = FakeProvider::start();
    let started = Instant::now();
    let report = run_ai_sdks(
        &[
            "anthropic.stream=claude-slow",
            "openai.chat_stream=gpt-stall-mid",
            "anthropic.create=claude-stall",
            "gemini.generate=gemini-garbage",
        ],
        &fake.url(),
        KEY,
        &["--timeout", "1"],
    );
    let slow = ok(&report, "anthropic.stream=claude-slow");
    assert_eq!(slow["deltas"], 40, "slow streams 40 deltas: {slow}");
    assert_eq!(slow["usage"]["output_tokens"], 40, "{slow}");
    assert!(slow["seconds"].as_f64().unwrap_or(0.0) >= 2.0, "50 ms before each of 40+ events: {slow}");
    let stalled_mid = error_of(&report, "openai.chat_stream=gpt-stall-mid");
    assert!(stalled_mid["class"].as_str().unwrap_or_default().contains("Timeout"), "{stalled_mid}");
    let stalled = error_of(&report, "anthropic.create=claude-stall");
    assert_eq!(stalled["class"], "APITimeoutError", "{stalled}");
    let garbage = error_of(&report, "gemini.generate=gemini-garbage");
    assert_eq!(garbage["class"], "JSONDecodeError", "a 200 whose body is not JSON: {garbage}");
    assert!(started.elapsed() < Duration::from_secs(30), "no switch held the client beyond its timeout");

    let settled = eventually(Duration::from_secs(5), || {
        let stats = fake.stats();
        stats["streams_cancelled"] == 1 && stats["stalls_abandoned"] == 1
    });
    let stats = fake.stats();
    assert!(settled, "the stalls noticed their clients hanging up: {stats}");
    assert_eq!(stats["streams_started"], 2, "{stats}");
    assert_eq!(stats["streams_completed"], 1, "only the slow stream ended by itself: {stats}");
}
