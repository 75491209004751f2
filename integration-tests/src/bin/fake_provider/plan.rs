//! What one request gets: the behaviour switch from the model name, the answer text or tool call,
//! and the deterministic usage numbers (documented at the top of main.rs).

use std::time::Duration;

use actix_web::web::Bytes;
use serde_json::Value;

/// How the fake answers, from a substring of the requested model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    Normal,
    Fail(u16),
    Garbage,
    Stall,
    StallMid,
    Slow,
    Drop,
    StreamError,
}

impl Behaviour {
    pub fn of_model(model: &str) -> Behaviour {
        if let Some(at) = model.find("fail-") {
            let digits: String = model[at + 5..].chars().take_while(char::is_ascii_digit).collect();
            if let Ok(status) = digits.parse::<u16>()
                && (400..=599).contains(&status)
            {
                return Behaviour::Fail(status);
            }
        }
        if model.contains("stream-error") {
            Behaviour::StreamError
        } else if model.contains("garbage") {
            Behaviour::Garbage
        } else if model.contains("stall-mid") {
            Behaviour::StallMid
        } else if model.contains("stall") {
            Behaviour::Stall
        } else if model.contains("slow") {
            Behaviour::Slow
        } else if model.contains("drop") {
            Behaviour::Drop
        } else {
            Behaviour::Normal
        }
    }
}

/// The input and cache counts of every answer.
pub const INPUT_TOKENS: u64 = 11;
pub const CACHE_READ_TOKENS: u64 = 1000;
pub const CACHE_WRITE_TOKENS: u64 = 200;
/// A tool call's output tokens.
pub const TOOL_CALL_OUTPUT_TOKENS: u64 = 3;
/// `slow` streams this many text deltas, each after `SLOW_EVENT_GAP`.
pub const SLOW_DELTAS: usize = 40;
pub const SLOW_EVENT_GAP: Duration = Duration::from_millis(50);
/// How long `stall` and `stall-mid` hold the connection.
pub const STALL: Duration = Duration::from_secs(120);
/// The fixed input of every tool call.
pub const TOOL_INPUT_JSON: &str = r#"{"query":"x"}"#;
/// The same, cut in two for streamed argument deltas.
pub const TOOL_INPUT_FRAGMENTS: [&str; 2] = [r#"{"query""#, r#":"x"}"#];
/// The input of a `call-NAME` tool call (`{"id":1}`), cut in two the same way.
pub const CALL_INPUT_FRAGMENTS: [&str; 2] = [r#"{"id""#, r#":1}"#];
/// Text parts starting with this are context a client added to the user's turn (Claude Code's
/// `<system-reminder>` blocks), not what the user typed: the answer leaves them out.
const CLIENT_CONTEXT_PREFIX: &str = "<system-reminder>";

/// What to answer one request with.
pub struct Plan {
    pub model: String,
    pub behaviour: Behaviour,
    pub cached: bool,
    /// The answer's text pieces, one per streamed delta (joined they are the whole answer).
    pub words: Vec<String>,
    /// `Some(name)`: answer with a call of this tool instead of text.
    pub tool: Option<String>,
    /// That call's input, in two pieces (one per streamed argument delta; joined they are the JSON).
    pub tool_input: [&'static str; 2],
}

impl Plan {
    /// `newest_user_text`: the text of the newest user turn; `first_tool`: the first tool's name when
    /// the request has tools and its newest turn is not a tool result.
    pub fn new(model: &str, newest_user_text: &str, first_tool: Option<String>) -> Plan {
        let behaviour = Behaviour::of_model(model);
        let prompt: String = newest_user_text.chars().take(40).collect();
        let answer = format!("fake answer to: {prompt}");
        let mut words: Vec<String> = answer.split_whitespace().map(str::to_string).collect();
        if behaviour == Behaviour::Slow {
            while words.len() < SLOW_DELTAS {
                words.push("more".to_string());
            }
            words.truncate(SLOW_DELTAS);
        }
        let last = words.len().saturating_sub(1);
        for word in &mut words[..last] {
            word.push(' ');
        }
        let tool = if model.contains("tool") { first_tool } else { None };
        Plan {
            model: model.to_string(),
            behaviour,
            cached: model.contains("cached"),
            words,
            tool,
            tool_input: TOOL_INPUT_FRAGMENTS,
        }
    }

    /// The `call-NAME` switch: answer with a call of `name` with input `{"id":1}`.
    pub fn calling(mut self, name: String) -> Plan {
        self.tool = Some(name);
        self.tool_input = CALL_INPUT_FRAGMENTS;
        self
    }

    /// The tool call's whole input as JSON.
    pub fn tool_input_json(&self) -> Value {
        serde_json::from_str(&self.tool_input.concat()).unwrap_or(Value::Null)
    }

    pub fn text(&self) -> String {
        self.words.concat()
    }

    pub fn output_tokens(&self) -> u64 {
        if self.tool.is_some() { TOOL_CALL_OUTPUT_TOKENS } else { self.words.len() as u64 }
    }

    pub fn cache_read_tokens(&self) -> u64 {
        if self.cached { CACHE_READ_TOKENS } else { 0 }
    }

    pub fn cache_write_tokens(&self) -> u64 {
        if self.cached { CACHE_WRITE_TOKENS } else { 0 }
    }

    /// OpenAI's and Gemini's prompt count, which includes the cached tokens.
    pub fn prompt_tokens_with_cache(&self) -> u64 {
        INPUT_TOKENS + self.cache_read_tokens()
    }

    /// The pause before each streamed event.
    pub fn event_gap(&self) -> Option<Duration> {
        (self.behaviour == Behaviour::Slow).then_some(SLOW_EVENT_GAP)
    }

    /// Cuts a stream after its first two events and appends the provider's mid-stream error event.
    pub fn with_stream_error(&self, mut events: Vec<Bytes>, error_event: Bytes) -> Vec<Bytes> {
        if self.behaviour == Behaviour::StreamError {
            events.truncate(2);
            events.push(error_event);
        }
        events
    }

    pub fn stalls_mid_stream(&self) -> bool {
        self.behaviour == Behaviour::StallMid
    }
}

/// What a `call-NAME` model names: the rest of the model name after `call-`, which the called tool's
/// name must end with.
pub fn called_tool_suffix(model: &str) -> Option<&str> {
    model.find("call-").map(|at| &model[at + "call-".len()..]).filter(|suffix| !suffix.is_empty())
}

/// The text of a content value: a string, or an array of parts with `text` (nested `content` of
/// tool results included), leaving out parts that start with `<system-reminder>`.
pub fn text_of(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => {
            parts.iter().map(text_of_part).filter(|text| !text.is_empty()).collect::<Vec<_>>().join(" ")
        }
        _ => String::new(),
    }
}

fn text_of_part(part: &Value) -> String {
    if let Some(text) = part.get("text").and_then(Value::as_str) {
        if text.starts_with(CLIENT_CONTEXT_PREFIX) {
            return String::new();
        }
        return text.to_string();
    }
    if let Some(content) = part.get("content") {
        return text_of(content);
    }
    if let Some(output) = part.get("output") {
        return match output {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
    }
    String::new()
}
