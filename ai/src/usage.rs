//! Tokens from what providers answer, normalised to [`Usage`] (input without cached or
//! cache-written tokens, output with reasoning) as pricing.md §2 says: from a whole response body,
//! or from a stream's events as they pass through the gateway ([`StreamMeter`]).
//!
//! Counts that are absent are zero; a count that is not a non-negative integer is treated as
//! absent. Where a provider's subset exceeds its total (cached above prompt), the subtraction
//! stops at zero and the subset is kept as reported: the record errs towards more tokens, not
//! fewer.

use serde_json::Value;

use crate::cost::Usage;
use crate::format::WireFormat;
use crate::sse::Event;

fn count(object: &Value, key: &str) -> u64 {
    object.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn nested_count(object: &Value, outer: &str, key: &str) -> u64 {
    object.get(outer).map_or(0, |inner| count(inner, key))
}

/// Anthropic `usage`: `input_tokens` already excludes cache reads and writes. Cache writes are
/// split by TTL when `cache_creation` says so; without the split they are billed as 5-minute
/// writes, the TTL a `cache_control` block has unless it names another.
fn anthropic_usage(usage: &Value) -> Usage {
    let written = count(usage, "cache_creation_input_tokens");
    let (cache_write_5m, cache_write_1h) = match usage.get("cache_creation").filter(|split| split.is_object()) {
        Some(split) => {
            let five_minutes = count(split, "ephemeral_5m_input_tokens");
            let one_hour = count(split, "ephemeral_1h_input_tokens");
            // A split that adds up to less than the total leaves no token unbilled: the rest
            // goes to the 5-minute price.
            (five_minutes.max(written.saturating_sub(one_hour)), one_hour)
        }
        None => (written, 0),
    };
    Usage {
        input: count(usage, "input_tokens"),
        output: count(usage, "output_tokens"),
        cache_write_5m,
        cache_write_1h,
        cache_read: count(usage, "cache_read_input_tokens"),
    }
}

/// OpenAI Chat `usage`: `prompt_tokens` includes `cached_tokens` (and, read the same way until
/// known otherwise, `cache_write_tokens`); `completion_tokens` includes reasoning. OpenAI has one
/// cache-write price, kept in the 5-minute slot.
fn chat_usage(usage: &Value) -> Usage {
    let cached = nested_count(usage, "prompt_tokens_details", "cached_tokens");
    let written = nested_count(usage, "prompt_tokens_details", "cache_write_tokens");
    Usage {
        input: count(usage, "prompt_tokens").saturating_sub(cached).saturating_sub(written),
        output: count(usage, "completion_tokens"),
        cache_write_5m: written,
        cache_write_1h: 0,
        cache_read: cached,
    }
}

/// OpenAI Responses `usage`: the same inclusion rules under other names.
fn responses_usage(usage: &Value) -> Usage {
    let cached = nested_count(usage, "input_tokens_details", "cached_tokens");
    let written = nested_count(usage, "input_tokens_details", "cache_write_tokens");
    Usage {
        input: count(usage, "input_tokens").saturating_sub(cached).saturating_sub(written),
        output: count(usage, "output_tokens"),
        cache_write_5m: written,
        cache_write_1h: 0,
        cache_read: cached,
    }
}

/// Gemini `usageMetadata`: `promptTokenCount` includes `cachedContentTokenCount`; thoughts are
/// outside `candidatesTokenCount` but billed as output; tool-use prompt tokens are outside the
/// prompt count and taken as input (unverified, pricing.md §2).
fn gemini_usage(metadata: &Value) -> Usage {
    let cached = count(metadata, "cachedContentTokenCount");
    Usage {
        input: count(metadata, "promptTokenCount").saturating_sub(cached) + count(metadata, "toolUsePromptTokenCount"),
        output: count(metadata, "candidatesTokenCount") + count(metadata, "thoughtsTokenCount"),
        cache_write_5m: 0,
        cache_write_1h: 0,
        cache_read: cached,
    }
}

fn usage_object<'a>(holder: &'a Value, key: &str) -> Option<&'a Value> {
    holder.get(key).filter(|usage| usage.is_object())
}

/// The usage of a non-streaming response body (for Responses, the `response` object), or `None`
/// when the body carries none.
pub fn from_response(format: WireFormat, body: &Value) -> Option<Usage> {
    match format {
        WireFormat::Messages => usage_object(body, "usage").map(anthropic_usage),
        WireFormat::ChatCompletions => usage_object(body, "usage").map(chat_usage),
        WireFormat::Responses => usage_object(body, "usage").map(responses_usage),
        WireFormat::Gemini => usage_object(body, "usageMetadata").map(gemini_usage),
    }
}

/// Watches a stream go by, one event at a time, for its usage, its first output and an error.
#[derive(Debug, Clone)]
pub struct StreamMeter {
    format: WireFormat,
    /// The provider's usage object as it stands: Anthropic's merged from `message_start` and
    /// every `message_delta`, the others' the last one seen.
    usage: Option<Value>,
    saw_output: bool,
    error: Option<String>,
}

impl StreamMeter {
    pub fn new(format: WireFormat) -> StreamMeter {
        StreamMeter { format, usage: None, saw_output: false, error: None }
    }

    /// Feed every event of the stream, in order. Events that are not JSON (OpenAI's `[DONE]`) or
    /// that the meter does not know pass without effect.
    pub fn observe(&mut self, event: &Event) {
        let Ok(data) = serde_json::from_str::<Value>(&event.data) else {
            return;
        };
        match self.format {
            WireFormat::Messages => self.observe_anthropic(event.event.as_deref(), &data),
            WireFormat::ChatCompletions => self.observe_chat(&data),
            WireFormat::Responses => self.observe_responses(event.event.as_deref(), &data),
            WireFormat::Gemini => self.observe_gemini(&data),
        }
    }

    /// The tokens so far, normalised; `None` until the stream has reported any.
    pub fn usage(&self) -> Option<Usage> {
        let usage = self.usage.as_ref()?;
        Some(match self.format {
            WireFormat::Messages => anthropic_usage(usage),
            WireFormat::ChatCompletions => chat_usage(usage),
            WireFormat::Responses => responses_usage(usage),
            WireFormat::Gemini => gemini_usage(usage),
        })
    }

    /// Whether the first piece of output (text, thinking, a tool call) has gone by: the moment
    /// for time to first token.
    pub fn saw_output(&self) -> bool {
        self.saw_output
    }

    /// The error the stream reported after it began, as `kind: message`.
    pub fn error(&self) -> Option<String> {
        self.error.clone()
    }

    fn observe_anthropic(&mut self, name: Option<&str>, data: &Value) {
        // The SSE name and the data's `type` agree; the name is what the SDK goes by.
        let kind = name.or_else(|| data.get("type").and_then(Value::as_str)).unwrap_or_default();
        match kind {
            "message_start" => {
                if let Some(usage) = data.get("message").and_then(|message| usage_object(message, "usage")) {
                    self.usage = Some(usage.clone());
                }
            }
            // Cumulative counts: any value given replaces the one held (pricing.md §2 and
            // wire-formats.md §3); null means "unchanged".
            "message_delta" => {
                if let Some(Value::Object(delta)) = data.get("usage") {
                    let held = self.usage.get_or_insert_with(|| Value::Object(serde_json::Map::new()));
                    if let Value::Object(held) = held {
                        for (key, value) in delta {
                            if !value.is_null() {
                                held.insert(key.clone(), value.clone());
                            }
                        }
                    }
                }
            }
            "content_block_delta" => self.saw_output = true,
            "error" => self.error = Some(error_text(data.get("error"), "type", "message")),
            _ => {}
        }
    }

    fn observe_chat(&mut self, data: &Value) {
        if let Some(error) = data.get("error").filter(|error| !error.is_null()) {
            self.error = Some(error_text(Some(error), "type", "message"));
            return;
        }
        // With `include_usage` every chunk but the last has `usage: null`.
        if let Some(usage) = usage_object(data, "usage") {
            self.usage = Some(usage.clone());
        }
        let choices = data.get("choices").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        let has_output = |delta: &Value| {
            ["content", "refusal", "reasoning_content", "reasoning"]
                .iter()
                .any(|key| delta.get(*key).and_then(Value::as_str).is_some_and(|text| !text.is_empty()))
                || delta.get("tool_calls").and_then(Value::as_array).is_some_and(|calls| !calls.is_empty())
        };
        if choices.iter().filter_map(|choice| choice.get("delta")).any(has_output) {
            self.saw_output = true;
        }
    }

    fn observe_responses(&mut self, name: Option<&str>, data: &Value) {
        // The SDK goes by the data's `type`, so the meter does too.
        let kind = data.get("type").and_then(Value::as_str).or(name).unwrap_or_default();
        match kind {
            "response.completed" | "response.incomplete" | "response.failed" => {
                if let Some(response) = data.get("response") {
                    if let Some(usage) = usage_object(response, "usage") {
                        self.usage = Some(usage.clone());
                    }
                    if kind == "response.failed" {
                        self.error = Some(error_text(response.get("error"), "code", "message"));
                    }
                }
            }
            "error" => self.error = Some(error_text(Some(data), "code", "message")),
            // Text, refusals, reasoning, function-call arguments, audio: every output streams as
            // some `*.delta`.
            kind if kind.ends_with(".delta") => self.saw_output = true,
            _ => {}
        }
    }

    fn observe_gemini(&mut self, data: &Value) {
        if let Some(error) = data.get("error").filter(|error| !error.is_null()) {
            self.error = Some(error_text(Some(error), "status", "message"));
            return;
        }
        // Each chunk's usageMetadata is the running total: the last one wins.
        if let Some(metadata) = usage_object(data, "usageMetadata") {
            self.usage = Some(metadata.clone());
        }
        let candidates = data.get("candidates").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        let has_output = candidates
            .iter()
            .filter_map(|candidate| candidate.pointer("/content/parts").and_then(Value::as_array))
            .flatten()
            .any(|part| {
                part.get("text").and_then(Value::as_str).is_some_and(|text| !text.is_empty())
                    || part.get("functionCall").is_some()
            });
        if has_output {
            self.saw_output = true;
        }
    }
}

/// `kind: message` from an error object, with whichever parts it has.
fn error_text(error: Option<&Value>, kind_key: &str, message_key: &str) -> String {
    let text = |key: &str| {
        error.and_then(|error| error.get(key)).and_then(|value| match value {
            Value::String(text) => Some(text.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        })
    };
    match (text(kind_key), text(message_key)) {
        (Some(kind), Some(message)) => format!("{kind}: {message}"),
        (Some(only), None) | (None, Some(only)) => only,
        (None, None) => "the stream reported an error".to_owned(),
    }
}

#[cfg(test)]
mod tests;
