//! Server-sent events framing (the `text/event-stream` of every provider's streams). TO BE WRITTEN:
//! an incremental parser (bytes as they arrive in, complete events out, bounded) and the encoder.

/// One event: its `event:` name (Anthropic and OpenAI Responses name theirs; OpenAI Chat and
/// Gemini do not) and its `data:` lines joined with `\n`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    pub event: Option<String>,
    pub data: String,
}
