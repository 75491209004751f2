//! Gemini generateContent: request and response, read into and written from the hub. Keys are
//! read in either spelling (`maxOutputTokens`, `max_output_tokens`), as proto3 JSON allows.
//!
//! Gemini has no call ids: function calls read from Gemini get stable generated ids, and function
//! responses are paired with the earliest unanswered call of the same name. Written to Gemini, a
//! tool result names the function its call id belongs to. Tool results travel as
//! `response: {output: text}` (or `{error: text}`), as the SDK recommends.
//!
//! Read but not carried: `model`, and `thoughtSignature` on parts (an opaque token only Gemini can
//! check). `candidateCount: 1` and `responseMimeType: "text/plain"` are accepted as the defaults
//! they are. The model and streaming are in the URL, so the written body has neither.

use serde_json::{Map, Value, json};

use super::RequestOptions;
use super::fields::{Fields, Result, Spelling, expect_object, invalid, parse_body, unsupported};
use super::hub::{
    Conversation, Image, ImageSource, Message, Part, Reply, ReplyPart, Role, Sourced, StopReason, ToolCall, ToolChoice,
    ToolDefinition, ToolResult, Usage, UsageUpdate, generated_call_id, merged_turns, refuse_prefill, response_id,
    tool_name_for_call,
};

const TARGET: &str = "Gemini";

pub(super) fn parse_request(body: &[u8]) -> Result<Conversation> {
    let mut root = Fields::new(String::new(), parse_body(body)?, Spelling::CamelOrSnake)?;
    root.ignore("model");
    let mut conversation = Conversation::default();
    if let Some(mut system) = root.object("systemInstruction")? {
        system.ignore("role");
        for (path, part) in system.array("parts")?.unwrap_or_default() {
            let mut part = Fields::new(path, part, Spelling::CamelOrSnake)?;
            conversation.system.push(part.required_string("text")?);
            part.finish()?;
        }
        system.finish()?;
    }
    let mut calls = PendingCalls::default();
    for (path, content) in root.array("contents")?.ok_or_else(|| invalid("`contents` is required"))? {
        conversation.messages.push(parse_content(path, content, &mut calls)?);
    }
    for (path, tool) in root.array("tools")?.unwrap_or_default() {
        let mut tool = Fields::new(path, tool, Spelling::CamelOrSnake)?;
        for (path, declaration) in tool.array("functionDeclarations")?.unwrap_or_default() {
            conversation.tools.push(parse_declaration(path, declaration)?);
        }
        tool.finish()?;
    }
    if let Some(mut config) = root.object("toolConfig")? {
        if let Some(mut calling) = config.object("functionCallingConfig")? {
            let allowed = calling.strings("allowedFunctionNames")?;
            let mode_path = calling.path_of("mode");
            let mode = calling.string("mode")?.unwrap_or_else(|| "AUTO".into());
            conversation.tool_choice = Some(match (mode.as_str(), allowed.as_slice()) {
                ("AUTO", []) => ToolChoice::Auto,
                ("ANY", []) => ToolChoice::Any,
                ("ANY", [only]) => ToolChoice::Tool(only.clone()),
                ("NONE", _) => ToolChoice::None,
                (_, [_, ..]) => {
                    return Err(unsupported(
                        calling.path_of("allowedFunctionNames"),
                        "only one allowed function name (with mode ANY) can be translated",
                    ));
                }
                (other, []) => {
                    return Err(unsupported(format!("{mode_path}: {other}"), "unknown function calling mode"));
                }
            });
            calling.finish()?;
        }
        config.finish()?;
    }
    if let Some(mut generation) = root.object("generationConfig")? {
        conversation.max_tokens = generation.u64("maxOutputTokens")?;
        let field = generation.path_of("temperature");
        conversation.temperature = generation.f64("temperature")?.map(|value| Sourced { value, field });
        conversation.top_p = generation.f64("topP")?;
        let field = generation.path_of("topK");
        conversation.top_k = generation.u64("topK")?.map(|value| Sourced { value, field });
        conversation.stop_sequences = generation.strings("stopSequences")?;
        generation.accept_only(
            "candidateCount",
            |count| count.as_u64() == Some(1),
            "only one candidate can be translated",
        )?;
        generation.accept_only(
            "responseMimeType",
            |mime| mime == "text/plain",
            "structured output formats cannot be translated",
        )?;
        generation.finish()?;
    }
    root.finish()?;
    Ok(conversation)
}

/// Calls read so far that no function response has answered yet, to pair responses by name.
#[derive(Default)]
struct PendingCalls {
    unanswered: Vec<(String, String)>,
}

fn parse_content(path: String, content: Value, calls: &mut PendingCalls) -> Result<Message> {
    let mut content = Fields::new(path, content, Spelling::CamelOrSnake)?;
    let role = match content.string("role")?.as_deref() {
        None | Some("user") | Some("function") | Some("tool") => Role::User,
        Some("model") => Role::Assistant,
        Some(other) => {
            return Err(unsupported(format!("{}: {other}", content.path_of("role")), "roles are user and model"));
        }
    };
    let mut parts = Vec::new();
    for (path, part) in content.array("parts")?.unwrap_or_default() {
        let index = parts.len();
        parts.push(parse_part(path, part, role, calls, &format!("{}:{index}", content.path()))?);
    }
    content.finish()?;
    Ok(Message { role, parts })
}

fn parse_part(path: String, part: Value, role: Role, calls: &mut PendingCalls, salt: &str) -> Result<Part> {
    let mut part = Fields::new(path, part, Spelling::CamelOrSnake)?;
    part.ignore("thoughtSignature");
    part.accept_only("thought", |thought| thought == &json!(false), "thinking parts cannot be translated")?;
    let parsed = if let Some(text) = part.string("text")? {
        Part::Text(text)
    } else if let Some(mut blob) = part.object("inlineData")? {
        let media_type = image_media_type(&mut blob)?;
        let data = blob.required_string("data")?;
        blob.finish()?;
        Part::Image(Image { source: ImageSource::Base64 { media_type, data }, field: part.path().to_owned() })
    } else if let Some(mut file) = part.object("fileData")? {
        let media_type = image_media_type(&mut file)?;
        let url = file.required_string("fileUri")?;
        file.finish()?;
        Part::Image(Image {
            source: ImageSource::Url { url, media_type: Some(media_type) },
            field: part.path().to_owned(),
        })
    } else if let Some(mut call) = part.object("functionCall")? {
        if role != Role::Assistant {
            return Err(invalid(format!("`{}`: function calls belong in model turns", call.path())));
        }
        let name = call.required_string("name")?;
        let args_path = call.path_of("args");
        let input = call.take("args").map(|args| expect_object(&args_path, args)).transpose()?.unwrap_or_default();
        let id = match call.string("id")? {
            Some(id) => id,
            None => generated_call_id(salt, 0, &name),
        };
        call.finish()?;
        calls.unanswered.push((id.clone(), name.clone()));
        Part::ToolCall(ToolCall { id, name, input })
    } else if let Some(mut response) = part.object("functionResponse")? {
        let name = response.required_string("name")?;
        let given_id = response.string("id")?;
        let output = response.take("response").unwrap_or_else(|| json!({}));
        response.finish()?;
        let position = match &given_id {
            Some(id) => calls.unanswered.iter().position(|(call_id, _)| call_id == id),
            None => calls.unanswered.iter().position(|(_, call_name)| call_name == &name),
        };
        let call_id = match (position, given_id) {
            (Some(position), _) => calls.unanswered.remove(position).0,
            (None, Some(id)) => id,
            (None, None) => {
                return Err(invalid(format!("`{}`: no earlier functionCall named `{name}` to answer", part.path())));
            }
        };
        let (text, is_error) = response_text(output);
        Part::ToolResult(ToolResult {
            call_id,
            content: vec![Part::Text(text)],
            is_error,
            field: part.path().to_owned(),
        })
    } else {
        return Err(unsupported(
            part.path().to_owned(),
            "only text, inlineData, fileData, functionCall and functionResponse parts can be translated",
        ));
    };
    part.finish()?;
    Ok(parsed)
}

fn image_media_type(blob: &mut Fields) -> Result<String> {
    let path = blob.path_of("mimeType");
    let media_type = blob.required_string("mimeType")?;
    if !media_type.starts_with("image/") {
        return Err(unsupported(format!("{path}: {media_type}"), "only images can be translated"));
    }
    Ok(media_type)
}

/// `{output: "..."}` and `{error: "..."}` as plain text; any other response as its JSON.
fn response_text(output: Value) -> (String, bool) {
    if let Value::Object(map) = &output
        && map.len() == 1
    {
        if let Some(Value::String(text)) = map.get("output") {
            return (text.clone(), false);
        }
        if let Some(Value::String(text)) = map.get("error") {
            return (text.clone(), true);
        }
    }
    (output.to_string(), false)
}

fn parse_declaration(path: String, declaration: Value) -> Result<ToolDefinition> {
    let mut declaration = Fields::new(path, declaration, Spelling::CamelOrSnake)?;
    let name = declaration.required_string("name")?;
    let description = declaration.string("description")?;
    let parameters = match (declaration.take("parametersJsonSchema"), declaration.take("parameters")) {
        (Some(schema), _) => schema,
        (None, Some(openapi)) => lowercase_types(openapi),
        (None, None) => json!({"type": "object", "properties": {}}),
    };
    declaration.finish()?;
    Ok(ToolDefinition { name, description, parameters })
}

/// Gemini's OpenAPI-subset schemas may spell types `STRING`, `OBJECT`; JSON Schema wants lowercase.
fn lowercase_types(schema: Value) -> Value {
    match schema {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| match (key.as_str(), value) {
                    ("type", Value::String(kind)) => (key, Value::String(kind.to_ascii_lowercase())),
                    (_, value) => (key, lowercase_types(value)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(lowercase_types).collect()),
        other => other,
    }
}

pub(super) fn render_request(conversation: &Conversation, _options: &RequestOptions) -> Result<Value> {
    refuse_prefill(&conversation.messages, TARGET)?;
    let mut body = Map::new();
    let mut contents = Vec::new();
    for message in merged_turns(&conversation.messages) {
        let parts =
            message.parts.iter().map(|part| render_part(part, &conversation.messages)).collect::<Result<Vec<_>>>()?;
        let role = match message.role {
            Role::User => "user",
            Role::Assistant => "model",
        };
        contents.push(json!({"role": role, "parts": parts}));
    }
    body.insert("contents".into(), Value::Array(contents));
    if !conversation.system.is_empty() {
        let parts: Vec<Value> = conversation.system.iter().map(|text| json!({"text": text})).collect();
        body.insert("systemInstruction".into(), json!({"parts": parts}));
    }
    if !conversation.tools.is_empty() {
        let declarations: Vec<Value> = conversation
            .tools
            .iter()
            .map(|tool| {
                let mut declaration = json!({"name": tool.name, "parametersJsonSchema": tool.parameters});
                if let Some(description) = &tool.description {
                    declaration["description"] = json!(description);
                }
                declaration
            })
            .collect();
        body.insert("tools".into(), json!([{"functionDeclarations": declarations}]));
    }
    if let Some(choice) = &conversation.tool_choice {
        let config = match choice {
            ToolChoice::Auto => json!({"mode": "AUTO"}),
            ToolChoice::Any => json!({"mode": "ANY"}),
            ToolChoice::None => json!({"mode": "NONE"}),
            ToolChoice::Tool(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
        };
        body.insert("toolConfig".into(), json!({"functionCallingConfig": config}));
    }
    if let Some(parallel) = &conversation.parallel_tool_calls
        && !parallel.value
    {
        return Err(parallel.refuse(TARGET));
    }
    if let Some(user) = &conversation.user {
        return Err(user.refuse(TARGET));
    }
    let mut generation = Map::new();
    if let Some(max_tokens) = conversation.max_tokens {
        generation.insert("maxOutputTokens".into(), json!(max_tokens));
    }
    if let Some(temperature) = &conversation.temperature {
        generation.insert("temperature".into(), json!(temperature.value));
    }
    if let Some(top_p) = conversation.top_p {
        generation.insert("topP".into(), json!(top_p));
    }
    if let Some(top_k) = &conversation.top_k {
        generation.insert("topK".into(), json!(top_k.value));
    }
    if !conversation.stop_sequences.is_empty() {
        generation.insert("stopSequences".into(), json!(conversation.stop_sequences));
    }
    if !generation.is_empty() {
        body.insert("generationConfig".into(), Value::Object(generation));
    }
    Ok(Value::Object(body))
}

fn render_part(part: &Part, history: &[Message]) -> Result<Value> {
    Ok(match part {
        Part::Text(text) => json!({"text": text}),
        Part::Image(image) => match &image.source {
            ImageSource::Base64 { media_type, data } => json!({"inlineData": {"mimeType": media_type, "data": data}}),
            source @ ImageSource::Url { url, .. } => {
                let media_type = source.media_type().ok_or_else(|| {
                    unsupported(
                        image.field.clone(),
                        "Gemini needs an image URL's media type; use a data: URL or a .png, .jpg, .gif or .webp URL",
                    )
                })?;
                json!({"fileData": {"mimeType": media_type, "fileUri": url}})
            }
        },
        Part::ToolCall(call) => json!({"functionCall": {"name": call.name, "args": call.input}}),
        Part::ToolResult(result) => {
            let name = tool_name_for_call(history, &result.call_id).ok_or_else(|| {
                invalid(format!(
                    "`{}` answers tool call `{}`, which no earlier turn made",
                    result.field, result.call_id
                ))
            })?;
            let text = result.text(TARGET)?;
            let response = if result.is_error { json!({"error": text}) } else { json!({"output": text}) };
            json!({"functionResponse": {"name": name, "response": response}})
        }
    })
}

pub(super) fn stop_reason_from(reason: &str, called_a_function: bool) -> StopReason {
    match reason {
        "STOP" if called_a_function => StopReason::ToolUse,
        "MAX_TOKENS" => StopReason::MaxTokens,
        "SAFETY"
        | "RECITATION"
        | "LANGUAGE"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION"
        | "MODEL_ARMOR" => StopReason::ContentFilter,
        _ if called_a_function => StopReason::ToolUse,
        _ => StopReason::EndTurn,
    }
}

pub(super) fn finish_reason_name(reason: StopReason) -> &'static str {
    match reason {
        StopReason::EndTurn | StopReason::StopSequence | StopReason::ToolUse => "STOP",
        StopReason::MaxTokens => "MAX_TOKENS",
        StopReason::ContentFilter => "SAFETY",
    }
}

/// Gemini's `promptTokenCount` includes cached content, and thoughts are outside
/// `candidatesTokenCount`; both are output tokens for the other formats.
pub(super) fn usage_update(usage: &Value) -> UsageUpdate {
    let count = |key: &str| usage.get(key).and_then(Value::as_u64);
    let prompt = count("promptTokenCount");
    let cached = count("cachedContentTokenCount");
    let output = match (count("candidatesTokenCount"), count("thoughtsTokenCount")) {
        (None, None) => None,
        (candidates, thoughts) => Some(candidates.unwrap_or(0).saturating_add(thoughts.unwrap_or(0))),
    };
    UsageUpdate {
        input_tokens: prompt.map(|prompt| prompt.saturating_sub(cached.unwrap_or(0))),
        output_tokens: output,
        cache_read_tokens: Some(cached.unwrap_or(0)),
        cache_write_tokens: Some(0),
    }
}

pub(super) fn usage_json(usage: &Usage) -> Value {
    let mut out = json!({
        "promptTokenCount": usage.prompt_total(),
        "candidatesTokenCount": usage.output_tokens,
        "totalTokenCount": usage.total(),
    });
    if usage.cache_read_tokens > 0 {
        out["cachedContentTokenCount"] = json!(usage.cache_read_tokens);
    }
    out
}

pub(super) fn parse_response(body: &[u8]) -> Result<Reply> {
    let response = parse_body(body)?;
    if response.get("error").is_some() {
        return Err(invalid("the upstream answered with an error body"));
    }
    let id = response.get("responseId").and_then(Value::as_str).map(str::to_owned);
    let salt = id.clone().unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let mut usage = Usage::default();
    if let Some(reported) = response.get("usageMetadata") {
        usage_update(reported).apply(&mut usage);
    }
    let candidate = response.get("candidates").and_then(Value::as_array).and_then(|candidates| candidates.first());
    let Some(candidate) = candidate else {
        // A blocked prompt: no candidates, and `promptFeedback.blockReason`.
        return Ok(Reply { id, created: None, content: Vec::new(), stop: StopReason::ContentFilter, usage });
    };
    let (content, called) = reply_parts(candidate, &salt, 0)?;
    let finish = candidate.get("finishReason").and_then(Value::as_str).unwrap_or("STOP");
    Ok(Reply { id, created: None, content, stop: stop_reason_from(finish, called), usage })
}

/// A candidate's parts as reply parts, and whether any was a function call. `first_call` numbers
/// the generated call ids (a stream continues the count across chunks).
pub(super) fn reply_parts(candidate: &Value, salt: &str, first_call: usize) -> Result<(Vec<ReplyPart>, bool)> {
    let mut content = Vec::new();
    let mut calls = first_call;
    let parts = candidate.get("content").and_then(|content| content.get("parts")).and_then(Value::as_array);
    for (index, part) in parts.into_iter().flatten().enumerate() {
        if part.get("thought").and_then(Value::as_bool) == Some(true) {
            return Err(unsupported(
                format!("candidates[0].content.parts[{index}].thought"),
                "thinking parts cannot be translated",
            ));
        }
        if let Some(text) = part.get("text").and_then(Value::as_str) {
            content.push(ReplyPart::Text(text.to_owned()));
        } else if let Some(call) = part.get("functionCall").or_else(|| part.get("function_call")) {
            let name = call.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
            let id = match call.get("id").and_then(Value::as_str) {
                Some(id) => id.to_owned(),
                None => generated_call_id(salt, calls, &name),
            };
            calls += 1;
            let input = call.get("args").and_then(Value::as_object).cloned().unwrap_or_default();
            content.push(ReplyPart::ToolCall(ToolCall { id, name, input }));
        } else {
            return Err(unsupported(
                format!("candidates[0].content.parts[{index}]"),
                "only text and functionCall parts can be translated",
            ));
        }
    }
    Ok((content, calls > first_call))
}

pub(super) fn render_response(reply: &Reply, requested_model: &str, body: &[u8]) -> Value {
    let parts: Vec<Value> = reply
        .content
        .iter()
        .map(|part| match part {
            ReplyPart::Text(text) => json!({"text": text}),
            ReplyPart::ToolCall(call) => json!({"functionCall": {"name": call.name, "args": call.input}}),
        })
        .collect();
    json!({
        "candidates": [{
            "content": {"role": "model", "parts": parts},
            "finishReason": finish_reason_name(reply.stop),
            "index": 0,
        }],
        "usageMetadata": usage_json(&reply.usage),
        "modelVersion": requested_model,
        "responseId": response_id("", reply.id.as_deref(), body),
    })
}
