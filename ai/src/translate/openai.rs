//! OpenAI Chat Completions (`/v1/chat/completions`): request and response, read into and written
//! from the hub.
//!
//! Read but not carried: `model`, `stream` and `stream_options.include_usage` (the caller's
//! [`RequestOptions`] decide; a translated stream always ends with a usage chunk), and
//! `detail: "auto"` on images (the default everywhere). `n: 1`, `logprobs: false`,
//! `frequency_penalty: 0`, `presence_penalty: 0` and `response_format: {type: text}` are accepted as the
//! defaults they are; other values are refused.

use serde_json::{Map, Value, json};

use super::RequestOptions;
use super::fields::{Fields, Result, Spelling, expect_array, expect_string, invalid, parse_body, unsupported};
use super::hub::{
    Conversation, Image, Message, Part, Reply, ReplyPart, Role, Sourced, StopReason, ToolCall, ToolChoice,
    ToolDefinition, ToolResult, Usage, UsageUpdate, arguments_object, image_from_url, image_to_url, refuse_prefill,
    response_id,
};

const TARGET: &str = "OpenAI Chat Completions";

/// Written before the text of a failed tool's result (Anthropic `is_error`, Gemini `error`), which
/// an OpenAI `tool` message cannot flag.
pub(super) const TOOL_ERROR_PREFIX: &str = "Error: ";

fn is_zero(value: &Value) -> bool {
    value.as_f64() == Some(0.0)
}

pub(super) fn parse_request(body: &[u8]) -> Result<Conversation> {
    let mut root = Fields::new(String::new(), parse_body(body)?, Spelling::Exact)?;
    root.ignore("model");
    root.ignore("stream");
    if let Some(mut stream_options) = root.object("stream_options")? {
        stream_options.ignore("include_usage");
        stream_options.finish()?;
    }
    root.accept_only("n", |value| value.as_u64() == Some(1), "only one choice (n = 1) can be translated")?;
    root.accept_only("logprobs", |value| value == &json!(false), "log probabilities cannot be translated")?;
    root.accept_only("frequency_penalty", is_zero, "only OpenAI models take a frequency penalty")?;
    root.accept_only("presence_penalty", is_zero, "only OpenAI models take a presence penalty")?;
    root.accept_only(
        "response_format",
        |value| value == &json!({"type": "text"}),
        "structured output formats cannot be translated",
    )?;
    let max_completion_tokens = root.u64("max_completion_tokens")?;
    let max_tokens = root.u64("max_tokens")?;
    let mut conversation = Conversation {
        max_tokens: max_completion_tokens.or(max_tokens),
        temperature: root.f64("temperature")?.map(|value| Sourced { value, field: "temperature".into() }),
        top_p: root.f64("top_p")?,
        ..Conversation::default()
    };
    conversation.stop_sequences = match root.take("stop") {
        None => Vec::new(),
        Some(Value::String(stop)) => vec![stop],
        Some(stops) => expect_array("stop", stops)?
            .into_iter()
            .map(|(path, stop)| expect_string(&path, stop))
            .collect::<Result<_>>()?,
    };
    if let Some(user) = root.string("user")? {
        conversation.user = Some(Sourced { value: user, field: "user".into() });
    }
    for (path, message) in root.array("messages")?.ok_or_else(|| invalid("`messages` is required"))? {
        parse_message(path, message, &mut conversation)?;
    }
    for (path, tool) in root.array("tools")?.unwrap_or_default() {
        conversation.tools.push(parse_tool(path, tool)?);
    }
    conversation.tool_choice = match root.take("tool_choice") {
        None => None,
        Some(Value::String(choice)) => Some(match choice.as_str() {
            "auto" => ToolChoice::Auto,
            "required" => ToolChoice::Any,
            "none" => ToolChoice::None,
            other => return Err(unsupported(format!("tool_choice: {other}"), "unknown tool choice")),
        }),
        Some(choice) => {
            let mut choice = Fields::new("tool_choice".into(), choice, Spelling::Exact)?;
            let kind = choice.required_string("type")?;
            if kind != "function" {
                return Err(unsupported(format!("tool_choice.type: {kind}"), "only function tool choices translate"));
            }
            let mut function =
                choice.object("function")?.ok_or_else(|| invalid("`tool_choice.function` is required"))?;
            let name = function.required_string("name")?;
            function.finish()?;
            choice.finish()?;
            Some(ToolChoice::Tool(name))
        }
    };
    if let Some(parallel) = root.bool("parallel_tool_calls")? {
        conversation.parallel_tool_calls = Some(Sourced { value: parallel, field: "parallel_tool_calls".into() });
    }
    root.finish()?;
    Ok(conversation)
}

fn parse_message(path: String, message: Value, conversation: &mut Conversation) -> Result<()> {
    let mut message = Fields::new(path, message, Spelling::Exact)?;
    let role = message.required_string("role")?;
    let content_path = message.path_of("content");
    let content = message.take("content");
    match role.as_str() {
        "system" | "developer" => {
            if !conversation.messages.is_empty() {
                return Err(unsupported(
                    format!("{}: {role}", message.path_of("role")),
                    "a system message after the conversation started has no equivalent; put system messages first",
                ));
            }
            let text =
                text_content(&content_path, content.ok_or_else(|| invalid(format!("`{content_path}` is required")))?)?;
            conversation.system.push(text);
        }
        "user" => {
            let parts = match content.ok_or_else(|| invalid(format!("`{content_path}` is required")))? {
                Value::String(text) => vec![Part::Text(text)],
                parts => expect_array(&content_path, parts)?
                    .into_iter()
                    .map(|(path, part)| parse_user_part(path, part))
                    .collect::<Result<_>>()?,
            };
            conversation.messages.push(Message { role: Role::User, parts });
        }
        "assistant" => {
            let mut parts = Vec::new();
            // A refusal in the history is what the model said.
            let refusal = message.take("refusal").map(|refusal| Value::String(refusal_text(refusal)));
            message.accept_only(
                "annotations",
                |annotations| annotations.as_array().is_some_and(Vec::is_empty),
                "annotations (citations) cannot be translated",
            )?;
            for content in [content, refusal].into_iter().flatten() {
                let text = text_content(&content_path, content)?;
                if !text.is_empty() {
                    parts.push(Part::Text(text));
                }
            }
            for (path, call) in message.array("tool_calls")?.unwrap_or_default() {
                let mut call = Fields::new(path, call, Spelling::Exact)?;
                let id = call.required_string("id")?;
                if let Some(kind) = call.string("type")?
                    && kind != "function"
                {
                    return Err(unsupported(
                        format!("{}: {kind}", call.path_of("type")),
                        "only function calls translate",
                    ));
                }
                let mut function = call
                    .object("function")?
                    .ok_or_else(|| invalid(format!("`{}` is required", call.path_of("function"))))?;
                let name = function.required_string("name")?;
                let arguments_path = function.path_of("arguments");
                let arguments = function.string("arguments")?.unwrap_or_default();
                let input = arguments_object(&arguments_path, &arguments)?;
                function.finish()?;
                call.finish()?;
                parts.push(Part::ToolCall(ToolCall { id, name, input }));
            }
            conversation.messages.push(Message { role: Role::Assistant, parts });
        }
        "tool" => {
            let field = message.path().to_owned();
            let call_id = message.required_string("tool_call_id")?;
            let text = text_content(&content_path, content.unwrap_or(Value::String(String::new())))?;
            let result = ToolResult { call_id, content: vec![Part::Text(text)], is_error: false, field };
            conversation.messages.push(Message { role: Role::User, parts: vec![Part::ToolResult(result)] });
        }
        other => {
            return Err(unsupported(format!("{}: {other}", message.path_of("role")), "this role cannot be translated"));
        }
    }
    message.finish()
}

fn refusal_text(refusal: Value) -> String {
    match refusal {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

/// A content that must be text: a string, or text parts (joined).
fn text_content(path: &str, content: Value) -> Result<String> {
    match content {
        Value::String(text) => Ok(text),
        parts => {
            let mut text = String::new();
            for (path, part) in expect_array(path, parts)? {
                let mut part = Fields::new(path, part, Spelling::Exact)?;
                let kind = part.required_string("type")?;
                if kind != "text" {
                    return Err(unsupported(
                        format!("{}: {kind}", part.path_of("type")),
                        "only text can be translated here",
                    ));
                }
                text.push_str(&part.required_string("text")?);
                part.finish()?;
            }
            Ok(text)
        }
    }
}

fn parse_user_part(path: String, part: Value) -> Result<Part> {
    let mut part = Fields::new(path, part, Spelling::Exact)?;
    let kind = part.required_string("type")?;
    let parsed = match kind.as_str() {
        "text" => Part::Text(part.required_string("text")?),
        "image_url" => {
            let mut image = part
                .object("image_url")?
                .ok_or_else(|| invalid(format!("`{}` is required", part.path_of("image_url"))))?;
            let url = image.required_string("url")?;
            image.accept_only("detail", |detail| detail == "auto", "only detail \"auto\" can be translated")?;
            let source = image_from_url(url).map_err(|error| match error {
                super::TranslateError::Unsupported { reason, .. } => unsupported(image.path_of("url"), reason),
                other => other,
            })?;
            image.finish()?;
            Part::Image(Image { source, field: part.path().to_owned() })
        }
        other => {
            return Err(unsupported(
                format!("{}: {other}", part.path_of("type")),
                "this content part has no equivalent in the other wire formats",
            ));
        }
    };
    part.finish()?;
    Ok(parsed)
}

fn parse_tool(path: String, tool: Value) -> Result<ToolDefinition> {
    let mut tool = Fields::new(path, tool, Spelling::Exact)?;
    let kind = tool.required_string("type")?;
    if kind != "function" {
        return Err(unsupported(format!("{}: {kind}", tool.path_of("type")), "only function tools translate"));
    }
    let mut function =
        tool.object("function")?.ok_or_else(|| invalid(format!("`{}` is required", tool.path_of("function"))))?;
    let name = function.required_string("name")?;
    let description = function.string("description")?;
    let parameters = function.take("parameters").unwrap_or_else(|| json!({"type": "object", "properties": {}}));
    function.accept_only("strict", |strict| strict == &json!(false), "strict function schemas cannot be translated")?;
    function.finish()?;
    tool.finish()?;
    Ok(ToolDefinition { name, description, parameters })
}

pub(super) fn render_request(conversation: &Conversation, options: &RequestOptions) -> Result<Value> {
    refuse_prefill(&conversation.messages, TARGET)?;
    let mut messages = Vec::new();
    match conversation.system.as_slice() {
        [] => {}
        [only] => messages.push(json!({"role": "system", "content": only})),
        blocks => {
            let parts: Vec<Value> = blocks.iter().map(|text| json!({"type": "text", "text": text})).collect();
            messages.push(json!({"role": "system", "content": parts}));
        }
    }
    for message in &conversation.messages {
        match message.role {
            Role::User => render_user(message, &mut messages)?,
            Role::Assistant => messages.push(render_assistant(message)?),
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(options.upstream_model));
    body.insert("messages".into(), Value::Array(messages));
    if let Some(max_tokens) = conversation.max_tokens {
        body.insert("max_completion_tokens".into(), json!(max_tokens));
    }
    if let Some(temperature) = &conversation.temperature {
        body.insert("temperature".into(), json!(temperature.value));
    }
    if let Some(top_p) = conversation.top_p {
        body.insert("top_p".into(), json!(top_p));
    }
    if let Some(top_k) = &conversation.top_k {
        return Err(top_k.refuse(TARGET));
    }
    if conversation.stop_sequences.len() > 4 {
        return Err(unsupported("stop sequences", "OpenAI Chat Completions takes at most 4 stop sequences"));
    }
    if !conversation.stop_sequences.is_empty() {
        body.insert("stop".into(), json!(conversation.stop_sequences));
    }
    if !conversation.tools.is_empty() {
        let tools: Vec<Value> = conversation
            .tools
            .iter()
            .map(|tool| {
                let mut function = json!({"name": tool.name, "parameters": tool.parameters});
                if let Some(description) = &tool.description {
                    function["description"] = json!(description);
                }
                json!({"type": "function", "function": function})
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = &conversation.tool_choice {
        let choice = match choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::Any => json!("required"),
            ToolChoice::None => json!("none"),
            ToolChoice::Tool(name) => json!({"type": "function", "function": {"name": name}}),
        };
        body.insert("tool_choice".into(), choice);
    }
    if let Some(parallel) = &conversation.parallel_tool_calls {
        body.insert("parallel_tool_calls".into(), json!(parallel.value));
    }
    if let Some(user) = &conversation.user {
        body.insert("user".into(), json!(user.value));
    }
    if options.stream {
        body.insert("stream".into(), json!(true));
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(Value::Object(body))
}

/// A user turn: its tool results as `tool` messages first (they must follow the assistant's
/// `tool_calls`), then the rest as one user message.
fn render_user(message: &Message, messages: &mut Vec<Value>) -> Result<()> {
    let mut content = Vec::new();
    for part in &message.parts {
        match part {
            Part::ToolResult(result) => {
                // OpenAI tool messages have no error flag: the model is told in the text instead.
                let text = result.text(TARGET)?;
                let content = if result.is_error { format!("{TOOL_ERROR_PREFIX}{text}") } else { text };
                messages.push(json!({"role": "tool", "tool_call_id": result.call_id, "content": content}));
            }
            Part::Text(text) => content.push(json!({"type": "text", "text": text})),
            Part::Image(image) => {
                content.push(json!({"type": "image_url", "image_url": {"url": image_to_url(&image.source)}}));
            }
            Part::ToolCall(_) => return Err(invalid("a user message holds a tool call")),
        }
    }
    match content.as_slice() {
        [] => {}
        [only] if only["type"] == "text" => messages.push(json!({"role": "user", "content": only["text"]})),
        _ => messages.push(json!({"role": "user", "content": content})),
    }
    Ok(())
}

fn render_assistant(message: &Message) -> Result<Value> {
    let mut text = String::new();
    let mut calls = Vec::new();
    for part in &message.parts {
        match part {
            Part::Text(piece) => text.push_str(piece),
            Part::ToolCall(call) => calls.push(tool_call_json(call)),
            Part::Image(image) => {
                return Err(unsupported(image.field.clone(), "OpenAI assistant messages cannot hold images"));
            }
            Part::ToolResult(result) => {
                return Err(invalid(format!("`{}`: an assistant turn holds a tool result", result.field)));
            }
        }
    }
    let mut out = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) }});
    if !calls.is_empty() {
        out["tool_calls"] = Value::Array(calls);
    }
    Ok(out)
}

fn tool_call_json(call: &ToolCall) -> Value {
    let arguments = Value::Object(call.input.clone()).to_string();
    json!({"id": call.id, "type": "function", "function": {"name": call.name, "arguments": arguments}})
}

pub(super) fn stop_reason_from(reason: &str) -> StopReason {
    match reason {
        "length" => StopReason::MaxTokens,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "content_filter" => StopReason::ContentFilter,
        _ => StopReason::EndTurn,
    }
}

pub(super) fn finish_reason_name(reason: StopReason) -> &'static str {
    match reason {
        StopReason::EndTurn | StopReason::StopSequence => "stop",
        StopReason::MaxTokens => "length",
        StopReason::ToolUse => "tool_calls",
        StopReason::ContentFilter => "content_filter",
    }
}

pub(super) fn usage_from(usage: &Value) -> Usage {
    let count = |value: Option<&Value>| value.and_then(Value::as_u64).unwrap_or(0);
    let details = usage.get("prompt_tokens_details");
    Usage::from_prompt_total(
        count(usage.get("prompt_tokens")),
        count(details.and_then(|details| details.get("cached_tokens"))),
        count(details.and_then(|details| details.get("cache_write_tokens"))),
        count(usage.get("completion_tokens")),
    )
}

pub(super) fn usage_update(usage: &Value) -> UsageUpdate {
    UsageUpdate::all(usage_from(usage))
}

pub(super) fn usage_json(usage: &Usage) -> Value {
    let mut details = json!({"cached_tokens": usage.cache_read_tokens});
    if usage.cache_write_tokens > 0 {
        details["cache_write_tokens"] = json!(usage.cache_write_tokens);
    }
    json!({
        "prompt_tokens": usage.prompt_total(),
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total(),
        "prompt_tokens_details": details,
    })
}

pub(super) fn parse_response(body: &[u8]) -> Result<Reply> {
    let response = parse_body(body)?;
    if response.get("error").is_some_and(|error| !error.is_null()) {
        return Err(invalid("the upstream answered with an error body"));
    }
    let choice = response
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|choices| choices.first())
        .ok_or_else(|| invalid("the response has no choices"))?;
    let message = choice.get("message").ok_or_else(|| invalid("`choices[0].message` is required"))?;
    let mut content = Vec::new();
    for key in ["content", "refusal"] {
        if let Some(text) = message.get(key).and_then(Value::as_str)
            && !text.is_empty()
        {
            content.push(ReplyPart::Text(text.to_owned()));
        }
    }
    for (index, call) in message.get("tool_calls").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let function = call.get("function");
        let text =
            |key: &str| function.and_then(|function| function.get(key)).and_then(Value::as_str).unwrap_or_default();
        let path = format!("choices[0].message.tool_calls[{index}].function.arguments");
        content.push(ReplyPart::ToolCall(ToolCall {
            id: call.get("id").and_then(Value::as_str).unwrap_or_default().to_owned(),
            name: text("name").to_owned(),
            input: arguments_object(&path, text("arguments"))?,
        }));
    }
    let refused = message.get("refusal").and_then(Value::as_str).is_some_and(|refusal| !refusal.is_empty());
    let stop = match choice.get("finish_reason").and_then(Value::as_str) {
        _ if refused => StopReason::ContentFilter,
        Some(reason) => stop_reason_from(reason),
        None => StopReason::EndTurn,
    };
    Ok(Reply {
        id: response.get("id").and_then(Value::as_str).map(str::to_owned),
        created: response.get("created").and_then(Value::as_u64),
        content,
        stop,
        usage: response.get("usage").map(usage_from).unwrap_or_default(),
    })
}

pub(super) fn render_response(reply: &Reply, requested_model: &str, body: &[u8], created: u64) -> Value {
    let mut text = String::new();
    let mut calls = Vec::new();
    for part in &reply.content {
        match part {
            ReplyPart::Text(piece) => text.push_str(piece),
            ReplyPart::ToolCall(call) => calls.push(tool_call_json(call)),
        }
    }
    let mut message = json!({
        "role": "assistant",
        "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) },
        "refusal": null,
    });
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    json!({
        "id": response_id("chatcmpl-", reply.id.as_deref(), body),
        "object": "chat.completion",
        "created": reply.created.unwrap_or(created),
        "model": requested_model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason_name(reply.stop), "logprobs": null}],
        "usage": usage_json(&reply.usage),
    })
}
