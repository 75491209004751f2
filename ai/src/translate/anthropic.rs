//! Anthropic Messages (`/v1/messages`): request and response, read into and written from the hub.
//!
//! Read but not carried: `model` (the route names the upstream model), `stream` (the caller's
//! [`RequestOptions`] decide) and `cache_control` on blocks and tools (a caching hint: OpenAI and
//! Gemini cache prompts on their own, and the answer does not depend on it).

use serde_json::{Map, Value, json};

use super::fields::{Fields, Result, Spelling, expect_array, expect_object, invalid, parse_body, unsupported};
use super::hub::{
    Conversation, Image, ImageSource, Message, Part, Reply, ReplyPart, Role, Sourced, StopReason, ToolCall, ToolChoice,
    ToolDefinition, ToolResult, Usage, UsageUpdate, merged_turns, response_id,
};
use super::{DEFAULT_MAX_TOKENS, RequestOptions};

pub(super) fn parse_request(body: &[u8]) -> Result<Conversation> {
    let mut root = Fields::new(String::new(), parse_body(body)?, Spelling::Exact)?;
    root.ignore("model");
    root.ignore("stream");
    let mut conversation = Conversation {
        max_tokens: root.u64("max_tokens")?,
        temperature: root.f64("temperature")?.map(|value| Sourced { value, field: "temperature".into() }),
        top_p: root.f64("top_p")?,
        top_k: root.u64("top_k")?.map(|value| Sourced { value, field: "top_k".into() }),
        stop_sequences: root.strings("stop_sequences")?,
        ..Conversation::default()
    };
    if let Some(system) = root.take("system") {
        conversation.system = parse_system(system)?;
    }
    for (path, message) in root.array("messages")?.ok_or_else(|| invalid("`messages` is required"))? {
        conversation.messages.push(parse_message(path, message)?);
    }
    for (path, tool) in root.array("tools")?.unwrap_or_default() {
        conversation.tools.push(parse_tool(path, tool)?);
    }
    if let Some(mut choice) = root.object("tool_choice")? {
        let kind = choice.required_string("type")?;
        conversation.tool_choice = Some(match kind.as_str() {
            "auto" => ToolChoice::Auto,
            "any" => ToolChoice::Any,
            "none" => ToolChoice::None,
            "tool" => ToolChoice::Tool(choice.required_string("name")?),
            other => return Err(unsupported(format!("tool_choice.type: {other}"), "unknown tool choice")),
        });
        if let Some(disable) = choice.bool("disable_parallel_tool_use")? {
            let field = choice.path_of("disable_parallel_tool_use");
            conversation.parallel_tool_calls = Some(Sourced { value: !disable, field });
        }
        choice.finish()?;
    }
    if let Some(mut metadata) = root.object("metadata")? {
        let field = metadata.path_of("user_id");
        conversation.user = metadata.string("user_id")?.map(|value| Sourced { value, field });
        metadata.finish()?;
    }
    root.finish()?;
    Ok(conversation)
}

fn parse_system(system: Value) -> Result<Vec<String>> {
    match system {
        Value::String(text) => Ok(vec![text]),
        blocks => {
            let mut out = Vec::new();
            for (path, block) in expect_array("system", blocks)? {
                let mut block = Fields::new(path, block, Spelling::Exact)?;
                let kind = block.required_string("type")?;
                if kind != "text" {
                    return Err(unsupported(format!("{}.type: {kind}", block.path()), "system blocks must be text"));
                }
                out.push(block.required_string("text")?);
                block.ignore("cache_control");
                block.finish()?;
            }
            Ok(out)
        }
    }
}

fn parse_message(path: String, message: Value) -> Result<Message> {
    let mut message = Fields::new(path, message, Spelling::Exact)?;
    let role = match message.required_string("role")?.as_str() {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => {
            return Err(unsupported(format!("{}: {other}", message.path_of("role")), "roles are user and assistant"));
        }
    };
    let content_path = message.path_of("content");
    let parts = match message.required("content")? {
        Value::String(text) => vec![Part::Text(text)],
        blocks => {
            let mut parts = Vec::new();
            for (path, block) in expect_array(&content_path, blocks)? {
                let part = parse_block(&path, block)?;
                let misplaced = match (&part, role) {
                    (Part::ToolCall(_), Role::User) => Some("tool_use blocks belong in assistant messages"),
                    (Part::ToolResult(_), Role::Assistant) => Some("tool_result blocks belong in user messages"),
                    _ => None,
                };
                if let Some(reason) = misplaced {
                    return Err(invalid(format!("`{path}`: {reason}")));
                }
                parts.push(part);
            }
            parts
        }
    };
    message.finish()?;
    Ok(Message { role, parts })
}

fn parse_block(path: &str, block: Value) -> Result<Part> {
    let mut block = Fields::new(path.to_owned(), block, Spelling::Exact)?;
    let kind = block.required_string("type")?;
    block.ignore("cache_control");
    let part = match kind.as_str() {
        "text" => Part::Text(block.required_string("text")?),
        "image" => Part::Image(parse_image(&mut block)?),
        "tool_use" => {
            let id = block.required_string("id")?;
            let name = block.required_string("name")?;
            let input = expect_object(&block.path_of("input"), block.required("input")?)?;
            Part::ToolCall(ToolCall { id, name, input })
        }
        "tool_result" => {
            let call_id = block.required_string("tool_use_id")?;
            let is_error = block.bool("is_error")?.unwrap_or(false);
            let content_path = block.path_of("content");
            let content = match block.take("content") {
                None => Vec::new(),
                Some(Value::String(text)) => vec![Part::Text(text)],
                Some(blocks) => {
                    let mut content = Vec::new();
                    for (path, inner) in expect_array(&content_path, blocks)? {
                        match parse_block(&path, inner)? {
                            part @ (Part::Text(_) | Part::Image(_)) => content.push(part),
                            _ => return Err(invalid(format!("`{path}`: tool results hold text and images"))),
                        }
                    }
                    content
                }
            };
            Part::ToolResult(ToolResult { call_id, content, is_error, field: path.to_owned() })
        }
        other => {
            return Err(unsupported(
                format!("{}: {other}", block.path_of("type")),
                "this content block has no equivalent in the other wire formats",
            ));
        }
    };
    block.finish()?;
    Ok(part)
}

fn parse_image(block: &mut Fields) -> Result<Image> {
    let mut source =
        block.object("source")?.ok_or_else(|| invalid(format!("`{}` is required", block.path_of("source"))))?;
    let kind = source.required_string("type")?;
    let image_source = match kind.as_str() {
        "base64" => ImageSource::Base64 {
            media_type: source.required_string("media_type")?,
            data: source.required_string("data")?,
        },
        "url" => ImageSource::Url { url: source.required_string("url")?, media_type: None },
        other => {
            return Err(unsupported(
                format!("{}: {other}", source.path_of("type")),
                "only base64 and url images can be translated",
            ));
        }
    };
    source.finish()?;
    Ok(Image { source: image_source, field: block.path().to_owned() })
}

fn parse_tool(path: String, tool: Value) -> Result<ToolDefinition> {
    let mut tool = Fields::new(path, tool, Spelling::Exact)?;
    if let Some(kind) = tool.string("type")?
        && kind != "custom"
    {
        return Err(unsupported(
            format!("{}: {kind}", tool.path_of("type")),
            "Anthropic server tools have no equivalent in the other wire formats",
        ));
    }
    let name = tool.required_string("name")?;
    let description = tool.string("description")?;
    let parameters = tool.required("input_schema")?;
    tool.ignore("cache_control");
    tool.finish()?;
    Ok(ToolDefinition { name, description, parameters })
}

/// Anthropic tool ids match `^[a-zA-Z0-9_-]+$`; ids from other providers are made to fit the same
/// way at the call and at its result, so they still pair.
fn tool_id(id: &str) -> String {
    let cleaned: String =
        id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
    if cleaned.is_empty() { "toolu_empty".into() } else { cleaned }
}

pub(super) fn render_request(conversation: &Conversation, options: &RequestOptions) -> Result<Value> {
    let mut body = Map::new();
    body.insert("model".into(), json!(options.upstream_model));
    body.insert("max_tokens".into(), json!(conversation.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)));
    match conversation.system.as_slice() {
        [] => {}
        [only] => {
            body.insert("system".into(), json!(only));
        }
        blocks => {
            let blocks: Vec<Value> = blocks.iter().map(|text| json!({"type": "text", "text": text})).collect();
            body.insert("system".into(), Value::Array(blocks));
        }
    }
    let mut messages = Vec::new();
    for message in merged_turns(&conversation.messages) {
        let mut parts = message.parts;
        // Anthropic wants a user turn's tool results before anything else in it.
        parts.sort_by_key(|part| !matches!(part, Part::ToolResult(_)));
        let content = parts.iter().map(render_block).collect::<Result<Vec<_>>>()?;
        let role = match message.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        messages.push(json!({"role": role, "content": content}));
    }
    body.insert("messages".into(), Value::Array(messages));
    if !conversation.tools.is_empty() {
        let tools: Vec<Value> = conversation
            .tools
            .iter()
            .map(|tool| {
                let mut out = json!({"name": tool.name, "input_schema": tool.parameters});
                if let Some(description) = &tool.description {
                    out["description"] = json!(description);
                }
                out
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    let parallel_off = conversation.parallel_tool_calls.as_ref().is_some_and(|parallel| !parallel.value);
    if conversation.tool_choice.is_some() || parallel_off {
        let mut choice = match conversation.tool_choice.as_ref().unwrap_or(&ToolChoice::Auto) {
            ToolChoice::Auto => json!({"type": "auto"}),
            ToolChoice::Any => json!({"type": "any"}),
            ToolChoice::None => json!({"type": "none"}),
            ToolChoice::Tool(name) => json!({"type": "tool", "name": name}),
        };
        if parallel_off {
            choice["disable_parallel_tool_use"] = json!(true);
        }
        body.insert("tool_choice".into(), choice);
    }
    if let Some(temperature) = &conversation.temperature {
        if !(0.0..=1.0).contains(&temperature.value) {
            return Err(unsupported(
                format!("{}: {}", temperature.field, temperature.value),
                "the Anthropic Messages API takes a temperature from 0 to 1",
            ));
        }
        body.insert("temperature".into(), json!(temperature.value));
    }
    if let Some(top_p) = conversation.top_p {
        body.insert("top_p".into(), json!(top_p));
    }
    if let Some(top_k) = &conversation.top_k {
        body.insert("top_k".into(), json!(top_k.value));
    }
    if !conversation.stop_sequences.is_empty() {
        body.insert("stop_sequences".into(), json!(conversation.stop_sequences));
    }
    if let Some(user) = &conversation.user {
        body.insert("metadata".into(), json!({"user_id": user.value}));
    }
    if options.stream {
        body.insert("stream".into(), json!(true));
    }
    Ok(Value::Object(body))
}

fn render_block(part: &Part) -> Result<Value> {
    Ok(match part {
        Part::Text(text) => json!({"type": "text", "text": text}),
        Part::Image(image) => match &image.source {
            ImageSource::Base64 { media_type, data } => {
                json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}})
            }
            ImageSource::Url { url, .. } => json!({"type": "image", "source": {"type": "url", "url": url}}),
        },
        Part::ToolCall(call) => {
            json!({"type": "tool_use", "id": tool_id(&call.id), "name": call.name, "input": call.input})
        }
        Part::ToolResult(result) => {
            let content = match result.content.as_slice() {
                [Part::Text(text)] => json!(text),
                parts => Value::Array(parts.iter().map(render_block).collect::<Result<Vec<_>>>()?),
            };
            let mut block = json!({"type": "tool_result", "tool_use_id": tool_id(&result.call_id), "content": content});
            if result.is_error {
                block["is_error"] = json!(true);
            }
            block
        }
    })
}

pub(super) fn stop_reason_from(reason: &str) -> StopReason {
    match reason {
        "max_tokens" | "model_context_window_exceeded" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence,
        "tool_use" => StopReason::ToolUse,
        "refusal" => StopReason::ContentFilter,
        // end_turn, pause_turn and values added later.
        _ => StopReason::EndTurn,
    }
}

pub(super) fn stop_reason_name(reason: StopReason) -> &'static str {
    match reason {
        StopReason::EndTurn => "end_turn",
        StopReason::MaxTokens => "max_tokens",
        StopReason::StopSequence => "stop_sequence",
        StopReason::ToolUse => "tool_use",
        StopReason::ContentFilter => "refusal",
    }
}

pub(super) fn usage_update(usage: &Value) -> UsageUpdate {
    UsageUpdate {
        input_tokens: usage.get("input_tokens").and_then(Value::as_u64),
        output_tokens: usage.get("output_tokens").and_then(Value::as_u64),
        cache_read_tokens: usage.get("cache_read_input_tokens").and_then(Value::as_u64),
        cache_write_tokens: usage.get("cache_creation_input_tokens").and_then(Value::as_u64),
    }
}

pub(super) fn usage_json(usage: &Usage) -> Value {
    json!({
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
    })
}

pub(super) fn parse_response(body: &[u8]) -> Result<Reply> {
    let response = parse_body(body)?;
    if response.get("type").and_then(Value::as_str) == Some("error") {
        return Err(invalid("the upstream answered with an error body"));
    }
    let mut content = Vec::new();
    let blocks = response.get("content").and_then(Value::as_array).ok_or_else(|| invalid("`content` is required"))?;
    for (index, block) in blocks.iter().enumerate() {
        let kind = block.get("type").and_then(Value::as_str).unwrap_or_default();
        match kind {
            "text" => {
                content.push(ReplyPart::Text(block.get("text").and_then(Value::as_str).unwrap_or_default().into()))
            }
            "tool_use" => content.push(ReplyPart::ToolCall(ToolCall {
                id: block.get("id").and_then(Value::as_str).unwrap_or_default().into(),
                name: block.get("name").and_then(Value::as_str).unwrap_or_default().into(),
                input: block.get("input").and_then(Value::as_object).cloned().unwrap_or_default(),
            })),
            other => {
                return Err(unsupported(
                    format!("content[{index}].type: {other}"),
                    "this content block has no equivalent in the client's wire format",
                ));
            }
        }
    }
    let mut usage = Usage::default();
    if let Some(reported) = response.get("usage") {
        usage_update(reported).apply(&mut usage);
    }
    Ok(Reply {
        id: response.get("id").and_then(Value::as_str).map(str::to_owned),
        created: None,
        content,
        stop: stop_reason_from(response.get("stop_reason").and_then(Value::as_str).unwrap_or("end_turn")),
        usage,
    })
}

pub(super) fn render_response(reply: &Reply, requested_model: &str, body: &[u8]) -> Value {
    let content: Vec<Value> = reply
        .content
        .iter()
        .map(|part| match part {
            ReplyPart::Text(text) => json!({"type": "text", "text": text}),
            ReplyPart::ToolCall(call) => {
                json!({"type": "tool_use", "id": tool_id(&call.id), "name": call.name, "input": call.input})
            }
        })
        .collect();
    json!({
        "id": response_id("msg_", reply.id.as_deref(), body),
        "type": "message",
        "role": "assistant",
        "model": requested_model,
        "content": content,
        "stop_reason": stop_reason_name(reply.stop),
        "stop_sequence": null,
        "usage": usage_json(&reply.usage),
    })
}
