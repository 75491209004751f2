//! The conversation model every wire format is read into and written from: one reader and one
//! writer per format instead of a translator per pair.

use serde_json::{Map, Value};

use super::fields::{Result, invalid, stable_hash, unsupported};

/// A setting only some formats carry, with the source field's path for the refusal.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Sourced<T> {
    pub value: T,
    pub field: String,
}

impl<T> Sourced<T> {
    pub fn refuse(&self, target: &str) -> super::TranslateError {
        unsupported(self.field.clone(), format!("{target} has no equivalent"))
    }
}

/// A request: what the model is asked, with what tools and sampling settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Conversation {
    /// System prompt blocks, in order.
    pub system: Vec<String>,
    pub messages: Vec<Message>,
    pub tools: Vec<ToolDefinition>,
    pub tool_choice: Option<ToolChoice>,
    /// `false` means at most one tool call a turn.
    pub parallel_tool_calls: Option<Sourced<bool>>,
    pub max_tokens: Option<u64>,
    pub temperature: Option<Sourced<f64>>,
    pub top_p: Option<f64>,
    pub top_k: Option<Sourced<u64>>,
    pub stop_sequences: Vec<String>,
    /// An end-user identifier for the provider's abuse monitoring.
    pub user: Option<Sourced<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Message {
    pub role: Role,
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Part {
    Text(String),
    Image(Image),
    ToolCall(ToolCall),
    ToolResult(ToolResult),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Image {
    pub source: ImageSource,
    /// Where the image was in the source body, for a refusal.
    pub field: String,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum ImageSource {
    Base64 { media_type: String, data: String },
    Url { url: String, media_type: Option<String> },
}

impl ImageSource {
    /// The media type, or one guessed from a URL's extension (Gemini's `fileData` needs one).
    pub fn media_type(&self) -> Option<String> {
        match self {
            ImageSource::Base64 { media_type, .. } => Some(media_type.clone()),
            ImageSource::Url { media_type: Some(media_type), .. } => Some(media_type.clone()),
            ImageSource::Url { url, media_type: None } => {
                let path = url.split(['?', '#']).next().unwrap_or_default().to_ascii_lowercase();
                let extension = path.rsplit('.').next().unwrap_or_default();
                match extension {
                    "png" => Some("image/png".into()),
                    "jpg" | "jpeg" => Some("image/jpeg".into()),
                    "gif" => Some("image/gif".into()),
                    "webp" => Some("image/webp".into()),
                    _ => None,
                }
            }
        }
    }
}

/// A `data:` URL (`data:image/png;base64,....`) as a base64 image; any other URL as a link.
pub(super) fn image_from_url(url: String) -> Result<ImageSource> {
    let Some(rest) = url.strip_prefix("data:") else {
        return Ok(ImageSource::Url { url, media_type: None });
    };
    let Some((header, data)) = rest.split_once(',') else {
        return Err(invalid("a data: URL has no comma before its data"));
    };
    let Some(media_type) = header.strip_suffix(";base64") else {
        return Err(unsupported("image_url.url", "only base64 data: URLs can be translated"));
    };
    Ok(ImageSource::Base64 { media_type: media_type.to_owned(), data: data.to_owned() })
}

pub(super) fn image_to_url(source: &ImageSource) -> String {
    match source {
        ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        ImageSource::Url { url, .. } => url.clone(),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct ToolCall {
    pub id: String,
    pub name: String,
    /// Always an object: every format's tool input is one.
    pub input: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct ToolResult {
    pub call_id: String,
    /// Text and images only.
    pub content: Vec<Part>,
    pub is_error: bool,
    pub field: String,
}

impl ToolResult {
    /// The result's text, refusing images where the target cannot carry them.
    pub fn text(&self, target: &str) -> Result<String> {
        let mut text = String::new();
        for part in &self.content {
            match part {
                Part::Text(piece) => text.push_str(piece),
                Part::Image(image) => {
                    return Err(unsupported(image.field.clone(), format!("{target} tool results carry only text")));
                }
                Part::ToolCall(_) | Part::ToolResult(_) => {
                    return Err(invalid(format!("`{}` holds a tool call or result", self.field)));
                }
            }
        }
        Ok(text)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct ToolDefinition {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the input.
    pub parameters: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum ToolChoice {
    Auto,
    /// Some tool must be called.
    Any,
    None,
    Tool(String),
}

/// Reads a JSON-string argument list (`""` counts as `{}`) as the object a tool input must be.
pub(super) fn arguments_object(path: &str, arguments: &str) -> Result<Map<String, Value>> {
    if arguments.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(invalid(format!("`{path}` must be a JSON object"))),
        Err(error) => Err(invalid(format!("`{path}` is not valid JSON: {error}"))),
    }
}

/// Joins consecutive messages of one role (Anthropic and Gemini want turns to alternate; OpenAI's
/// several `tool` messages after one assistant turn become one user turn).
pub(super) fn merged_turns(messages: &[Message]) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::new();
    for message in messages.iter().filter(|message| !message.parts.is_empty()) {
        match out.last_mut() {
            Some(last) if last.role == message.role => last.parts.extend(message.parts.iter().cloned()),
            _ => out.push(message.clone()),
        }
    }
    out
}

/// Refuses a conversation that ends with an assistant turn: Anthropic continues such a turn (a
/// prefill), which OpenAI Chat and Gemini cannot do.
pub(super) fn refuse_prefill(messages: &[Message], target: &str) -> Result<()> {
    match messages.iter().rfind(|message| !message.parts.is_empty()) {
        Some(last) if last.role == Role::Assistant => Err(unsupported(
            "the last message: assistant",
            format!("a conversation ending with an assistant turn (a prefill) has no equivalent in {target}"),
        )),
        _ => Ok(()),
    }
}

/// The tool name for each call id, for Gemini's `functionResponse`, which names the function
/// instead of the call.
pub(super) fn tool_name_for_call<'a>(messages: &'a [Message], call_id: &str) -> Option<&'a str> {
    messages.iter().flat_map(|message| &message.parts).find_map(|part| match part {
        Part::ToolCall(call) if call.id == call_id => Some(call.name.as_str()),
        _ => None,
    })
}

/// A call id for a format that has none (Gemini): stable for the same response and position.
pub(super) fn generated_call_id(salt: &str, index: usize, name: &str) -> String {
    let hash = stable_hash(&[salt.as_bytes(), &index.to_le_bytes(), name.as_bytes()]);
    format!("call_{hash:016x}")
}

/// A model's answer.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Reply {
    pub id: Option<String>,
    pub created: Option<u64>,
    pub content: Vec<ReplyPart>,
    pub stop: StopReason,
    pub usage: Usage,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum ReplyPart {
    Text(String),
    ToolCall(ToolCall),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StopReason {
    EndTurn,
    MaxTokens,
    StopSequence,
    ToolUse,
    /// Refused or filtered by the provider's safety systems.
    ContentFilter,
}

/// Token counts, in Anthropic's convention: `input_tokens` excludes the cache reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
}

impl Usage {
    /// All input tokens, cached or not (OpenAI's `prompt_tokens`, Gemini's `promptTokenCount`).
    pub fn prompt_total(&self) -> u64 {
        self.input_tokens.saturating_add(self.cache_read_tokens).saturating_add(self.cache_write_tokens)
    }

    pub fn total(&self) -> u64 {
        self.prompt_total().saturating_add(self.output_tokens)
    }

    /// From totals that include the cache counts (OpenAI, Gemini).
    pub fn from_prompt_total(prompt_total: u64, cache_read: u64, cache_write: u64, output: u64) -> Usage {
        Usage {
            input_tokens: prompt_total.saturating_sub(cache_read).saturating_sub(cache_write),
            output_tokens: output,
            cache_read_tokens: cache_read,
            cache_write_tokens: cache_write,
        }
    }
}

/// A usage report in a stream: counts it does not carry stay as they were (Anthropic's counts are
/// cumulative and each later value replaces the earlier one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct UsageUpdate {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cache_read_tokens: Option<u64>,
    pub cache_write_tokens: Option<u64>,
}

impl UsageUpdate {
    pub fn all(usage: Usage) -> UsageUpdate {
        UsageUpdate {
            input_tokens: Some(usage.input_tokens),
            output_tokens: Some(usage.output_tokens),
            cache_read_tokens: Some(usage.cache_read_tokens),
            cache_write_tokens: Some(usage.cache_write_tokens),
        }
    }

    pub fn apply(&self, usage: &mut Usage) {
        let fields = [
            (self.input_tokens, &mut usage.input_tokens),
            (self.output_tokens, &mut usage.output_tokens),
            (self.cache_read_tokens, &mut usage.cache_read_tokens),
            (self.cache_write_tokens, &mut usage.cache_write_tokens),
        ];
        for (update, count) in fields {
            if let Some(update) = update {
                *count = update;
            }
        }
    }
}

/// A response id in the client's convention (`msg_...`, `chatcmpl-...`), from the upstream's id or,
/// when it has none, a hash of the body.
pub(super) fn response_id(prefix: &str, upstream_id: Option<&str>, body: &[u8]) -> String {
    match upstream_id {
        Some(id) if id.starts_with(prefix) => id.to_owned(),
        Some(id) if !id.is_empty() => format!("{prefix}{id}"),
        _ => format!("{prefix}{:016x}", stable_hash(&[body])),
    }
}
