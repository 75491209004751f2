//! The wire formats the gateway serves. TO BE WRITTEN: what the gateway reads from a request body.

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
}
