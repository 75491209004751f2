//! The wire formats the gateway serves, and what it reads from a request body before the request
//! goes upstream: the model (for routing and RBAC), the stream flag, the output limit, the newest
//! user text (for `UserPromptSubmit` hooks) and a token estimate (for budget reservations). Also
//! the one edit the gateway makes to a body it passes through: the model's name.
//!
//! Bodies are read strictly: a key repeated in any object is refused, because JSON parsers
//! disagree on which copy wins, and a body whose checked copy differs from the one the provider
//! uses would slip past RBAC (a second `model`) or the prompt hooks (a second `messages`).

use serde_json::{Map, Value};

mod strict_json;
mod top_level;

/// An endpoint's wire format; `as_str` is the `ai_requests.endpoint` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireFormat {
    /// Anthropic Messages (`/v1/messages`).
    Messages,
    /// OpenAI Chat Completions (`/v1/chat/completions`).
    ChatCompletions,
    /// OpenAI Responses (`/v1/responses`).
    Responses,
    /// Gemini (`/v1beta/models/{model}:generateContent` and friends).
    Gemini,
}

impl WireFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            WireFormat::Messages => "messages",
            WireFormat::ChatCompletions => "chat_completions",
            WireFormat::Responses => "responses",
            WireFormat::Gemini => "gemini",
        }
    }

    /// Every format, for tables and tests.
    pub const ALL: [WireFormat; 4] =
        [WireFormat::Messages, WireFormat::ChatCompletions, WireFormat::Responses, WireFormat::Gemini];
}

/// Why a request body was refused. Each message names the field and what was expected, since it
/// goes back to the client that wrote the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("the body must be a JSON object")]
    NotAnObject,
    #[error("{field}: expected {expected}")]
    WrongType { field: String, expected: &'static str },
    #[error("{field}: missing; expected {expected}")]
    Missing { field: &'static str, expected: &'static str },
    #[error("model: the body has no top-level model to rewrite")]
    NoModelToRewrite,
}

/// What the gateway reads from a request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFacts {
    /// The body's `model`; `None` for Gemini, whose model is in the URL path.
    pub model: Option<String>,
    /// Whether the client asked for a stream. Always false for Gemini, where the endpoint
    /// (`:streamGenerateContent`) decides.
    pub stream: bool,
    /// The output limit the client set: Messages `max_tokens` (required there), Chat
    /// `max_completion_tokens` else `max_tokens`, Responses `max_output_tokens`, Gemini
    /// `generationConfig.maxOutputTokens`.
    pub max_output_tokens: Option<u64>,
    /// The text of the newest user-role message, its text parts joined with `\n`; `None` when
    /// there is no user message or it holds no text (a turn of tool results only).
    pub newest_user_text: Option<String>,
    /// A local over-estimate of the input tokens: see [`estimate_input_tokens`].
    pub estimated_input_tokens: u64,
}

/// The input-token estimate: one token per three bytes of the whole body, rounded up.
///
/// It reserves budget before the request goes upstream, when no tokenizer is at hand; the
/// reservation is replaced by the provider's usage when the answer ends. Too low an estimate lets
/// concurrent requests together overspend a budget; too high one at worst refuses a request near
/// the edge of its budget, so the estimate errs high: English runs about four bytes a token,
/// code and CJK text about three, and the JSON around the text (keys, quotes, roles, tool
/// schemas) pads the count further. It errs far high for images, which are billed by size in
/// pixels rather than by the length of their base64.
pub fn estimate_input_tokens(body: &[u8]) -> u64 {
    u64::try_from(body.len().div_ceil(3)).unwrap_or(u64::MAX)
}

impl RequestFacts {
    pub fn read(format: WireFormat, body: &[u8]) -> Result<RequestFacts, FormatError> {
        let object = parse_object(body)?;
        let estimated_input_tokens = estimate_input_tokens(body);
        let facts = match format {
            WireFormat::Messages => RequestFacts {
                model: Some(required_string(&object, "model")?),
                stream: optional_bool(&object, "stream")?,
                max_output_tokens: Some(
                    optional_count(&object, "max_tokens")?
                        .ok_or(FormatError::Missing { field: "max_tokens", expected: "a non-negative integer" })?,
                ),
                newest_user_text: newest_user_text_of_messages(&object, "messages")?,
                estimated_input_tokens,
            },
            WireFormat::ChatCompletions => {
                // The newer name wins: o-series models reject `max_tokens`, and a client that
                // sets both means the newer one.
                let completion = optional_count(&object, "max_completion_tokens")?;
                let legacy = optional_count(&object, "max_tokens")?;
                RequestFacts {
                    model: Some(required_string(&object, "model")?),
                    stream: optional_bool(&object, "stream")?,
                    max_output_tokens: completion.or(legacy),
                    newest_user_text: newest_user_text_of_messages(&object, "messages")?,
                    estimated_input_tokens,
                }
            }
            WireFormat::Responses => RequestFacts {
                model: Some(required_string(&object, "model")?),
                stream: optional_bool(&object, "stream")?,
                max_output_tokens: optional_count(&object, "max_output_tokens")?,
                newest_user_text: newest_user_text_of_responses_input(&object)?,
                estimated_input_tokens,
            },
            WireFormat::Gemini => RequestFacts {
                model: None,
                stream: false,
                max_output_tokens: match object.get("generationConfig") {
                    None | Some(Value::Null) => None,
                    Some(Value::Object(config)) => {
                        count_at(config.get("maxOutputTokens"), "generationConfig.maxOutputTokens")?
                    }
                    Some(_) => {
                        return Err(wrong_type("generationConfig", "an object"));
                    }
                },
                newest_user_text: newest_user_text_of_gemini_contents(&object)?,
                estimated_input_tokens,
            },
        };
        Ok(facts)
    }
}

/// `body` with the top-level `"model"` value replaced by `new_model` (as a JSON string) and every
/// other byte left as it was: unknown fields, key order, whitespace and number spellings reach
/// the provider as the client wrote them.
pub fn rewrite_model(body: &[u8], new_model: &str) -> Result<Vec<u8>, FormatError> {
    // Strict parsing first: the scanner below then walks text known to be one JSON object
    // without repeated keys, so exactly one top-level `model` can exist.
    parse_object(body)?;
    let span = top_level::value_span(body, "model")?.ok_or(FormatError::NoModelToRewrite)?;
    let replacement = serde_json::to_string(new_model).map_err(|error| FormatError::NotJson(error.to_string()))?;
    let mut rewritten = Vec::with_capacity(body.len() + replacement.len());
    rewritten.extend_from_slice(body.get(..span.start).unwrap_or_default());
    rewritten.extend_from_slice(replacement.as_bytes());
    rewritten.extend_from_slice(body.get(span.end..).unwrap_or_default());
    Ok(rewritten)
}

/// The body as a JSON object, refusing repeated keys at any depth.
pub(crate) fn parse_object(body: &[u8]) -> Result<Map<String, Value>, FormatError> {
    match strict_json::parse(body)? {
        Value::Object(object) => Ok(object),
        _ => Err(FormatError::NotAnObject),
    }
}

fn wrong_type(field: impl Into<String>, expected: &'static str) -> FormatError {
    FormatError::WrongType { field: field.into(), expected }
}

fn required_string(object: &Map<String, Value>, field: &'static str) -> Result<String, FormatError> {
    match object.get(field) {
        Some(Value::String(text)) => Ok(text.clone()),
        None => Err(FormatError::Missing { field, expected: "a string" }),
        Some(_) => Err(wrong_type(field, "a string")),
    }
}

/// An absent or null flag is false: clients send `null` for "not given".
fn optional_bool(object: &Map<String, Value>, field: &'static str) -> Result<bool, FormatError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(flag)) => Ok(*flag),
        Some(_) => Err(wrong_type(field, "true or false")),
    }
}

fn optional_count(object: &Map<String, Value>, field: &'static str) -> Result<Option<u64>, FormatError> {
    count_at(object.get(field), field)
}

fn count_at(value: Option<&Value>, field: &str) -> Result<Option<u64>, FormatError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value.as_u64().map(Some).ok_or_else(|| wrong_type(field, "a non-negative integer")),
    }
}

fn array_at<'a>(value: Option<&'a Value>, field: &str) -> Result<Option<&'a Vec<Value>>, FormatError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(_) => Err(wrong_type(field, "an array")),
    }
}

fn object_at<'a>(value: &'a Value, field: &str) -> Result<&'a Map<String, Value>, FormatError> {
    value.as_object().ok_or_else(|| wrong_type(field, "an object"))
}

fn optional_string<'a>(object: &'a Map<String, Value>, key: &str, field: &str) -> Result<Option<&'a str>, FormatError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(wrong_type(field, "a string")),
    }
}

fn joined(texts: Vec<&str>) -> Option<String> {
    (!texts.is_empty()).then(|| texts.join("\n"))
}

/// A message and its index in its array (for error paths).
type IndexedMessage<'a> = (usize, &'a Map<String, Value>);

/// The newest message in `messages` whose `role` is `user`, walking from the end. Only the
/// messages walked over are checked: the provider checks the rest.
fn newest_user_message<'a>(
    messages: &'a [Value],
    field: &str,
    role_optional: bool,
) -> Result<Option<IndexedMessage<'a>>, FormatError> {
    for (index, message) in messages.iter().enumerate().rev() {
        let message = object_at(message, &format!("{field}[{index}]"))?;
        let role = optional_string(message, "role", &format!("{field}[{index}].role"))?;
        match role {
            Some("user") => return Ok(Some((index, message))),
            None if role_optional => return Ok(Some((index, message))),
            None => {
                return Err(FormatError::WrongType { field: format!("{field}[{index}].role"), expected: "a string" });
            }
            Some(_) => {}
        }
    }
    Ok(None)
}

/// Text of a `content` that is a string or an array of parts; a part is text when its `type` is
/// one of `text_types` (Anthropic and Chat `text`, Responses `input_text`).
fn content_text(content: Option<&Value>, field: &str, text_types: &[&str]) -> Result<Option<String>, FormatError> {
    match content {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::new();
            for (index, part) in parts.iter().enumerate() {
                let part_field = format!("{field}[{index}]");
                let part = object_at(part, &part_field)?;
                let kind = optional_string(part, "type", &format!("{part_field}.type"))?;
                if kind.is_some_and(|kind| text_types.contains(&kind)) {
                    match optional_string(part, "text", &format!("{part_field}.text"))? {
                        Some(text) => texts.push(text),
                        None => {
                            return Err(FormatError::WrongType {
                                field: format!("{part_field}.text"),
                                expected: "a string",
                            });
                        }
                    }
                }
            }
            Ok(joined(texts))
        }
        Some(_) => Err(wrong_type(field, "a string or an array")),
    }
}

/// Anthropic Messages and OpenAI Chat: `messages[]`, role `user`, content a string or parts.
fn newest_user_text_of_messages(
    object: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, FormatError> {
    let Some(messages) = array_at(object.get(field), field)? else {
        return Ok(None);
    };
    let Some((index, message)) = newest_user_message(messages, field, false)? else {
        return Ok(None);
    };
    content_text(message.get("content"), &format!("{field}[{index}].content"), &["text"])
}

/// OpenAI Responses: `input` is a string (one user message) or a list of items; messages are
/// items with a `role` (their `type` is `message` or left out), other items (function calls and
/// their outputs) have none and are passed over.
fn newest_user_text_of_responses_input(object: &Map<String, Value>) -> Result<Option<String>, FormatError> {
    let items = match object.get("input") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(text)) => return Ok(Some(text.clone())),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(wrong_type("input", "a string or an array")),
    };
    for (index, item) in items.iter().enumerate().rev() {
        let item = object_at(item, &format!("input[{index}]"))?;
        if optional_string(item, "role", &format!("input[{index}].role"))? == Some("user") {
            return content_text(item.get("content"), &format!("input[{index}].content"), &["input_text", "text"]);
        }
    }
    Ok(None)
}

/// Gemini: `contents[]` with role `user` (or no role, which the API reads as user), the text of
/// its `parts[]`.
fn newest_user_text_of_gemini_contents(object: &Map<String, Value>) -> Result<Option<String>, FormatError> {
    let Some(contents) = array_at(object.get("contents"), "contents")? else {
        return Ok(None);
    };
    let Some((index, content)) = newest_user_message(contents, "contents", true)? else {
        return Ok(None);
    };
    let field = format!("contents[{index}].parts");
    let Some(parts) = array_at(content.get("parts"), &field)? else {
        return Ok(None);
    };
    let mut texts = Vec::new();
    for (part_index, part) in parts.iter().enumerate() {
        let part_field = format!("{field}[{part_index}]");
        let part = object_at(part, &part_field)?;
        if let Some(text) = optional_string(part, "text", &format!("{part_field}.text"))? {
            texts.push(text);
        }
    }
    Ok(joined(texts))
}

#[cfg(test)]
mod tests;
