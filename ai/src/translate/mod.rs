//! Translation between Anthropic Messages, OpenAI Chat Completions and Gemini generateContent
//! (requests, responses and streams), for a client that calls one format when the model's route
//! goes to a provider of another.
//!
//! # Design
//! Each format is read into one conversation model ([`hub`]) and written from it: three readers and
//! three writers, not six translators. Readers take every key of a request body at most once and
//! refuse the keys nobody took ([`fields::Fields::finish`]), so a field is either mapped or refused
//! by its path (`messages[2].content[0].type: document`), never dropped. Responses and stream events
//! are read leniently (providers add fields), but content that cannot be carried (thinking blocks,
//! server tools) is refused there too.
//!
//! # What maps to what
//! | | Anthropic | OpenAI Chat | Gemini |
//! |---|---|---|---|
//! | system | `system` (string or text blocks) | leading `system`/`developer` messages | `systemInstruction.parts` |
//! | text | `text` blocks | string or `text` parts | `text` parts |
//! | image | `image` base64 / url | `image_url` with a `data:` or http URL | `inlineData` / `fileData` |
//! | tools | `tools[name, description, input_schema]` | `tools[function{name, description, parameters}]` | `functionDeclarations` (`parametersJsonSchema`) |
//! | tool choice | `auto`/`any`/`none`/`tool` | `auto`/`required`/`none`/function | `AUTO`/`ANY`/`NONE`/`ANY`+one name |
//! | one call a turn | `disable_parallel_tool_use` | `parallel_tool_calls: false` | refused |
//! | tool call | `tool_use` | `tool_calls` (JSON-string arguments) | `functionCall` (generated ids) |
//! | tool result | `tool_result` in a user turn | `role: tool` message | `functionResponse{name, response{output\|error}}` |
//! | max tokens | `max_tokens` (default [`DEFAULT_MAX_TOKENS`]) | `max_completion_tokens` (or `max_tokens`) | `maxOutputTokens` |
//! | sampling | `temperature` (0 to 1), `top_p`, `top_k`, `stop_sequences` | `temperature`, `top_p`, `stop` (at most 4) | `temperature`, `topP`, `topK`, `stopSequences` |
//! | end user | `metadata.user_id` | `user` | refused |
//!
//! Stop reasons: `end_turn`/`stop_sequence` = `stop` = `STOP`; `max_tokens` = `length` =
//! `MAX_TOKENS`; `tool_use` = `tool_calls` = `STOP` with function calls; `refusal` =
//! `content_filter` = `SAFETY` (and Gemini's other blocking reasons). Usage: Anthropic's
//! `input_tokens` excludes the cache; OpenAI's `prompt_tokens` and Gemini's `promptTokenCount`
//! include it (`cached_tokens`, `cache_write_tokens`, `cachedContentTokenCount`); Gemini's thoughts
//! count as output.
//!
//! Same format in and out is not translated: the functions return the body unchanged (the daemon
//! forwards such bodies itself). The OpenAI Responses format is never translated.
//!
//! Time is a parameter: OpenAI's `created` comes from [`response_created_at`] and
//! [`StreamTranslator::created_at`] (0 otherwise); no clock is read here.

mod anthropic;
mod fields;
mod gemini;
mod hub;
mod openai;
mod stream;
#[cfg(test)]
mod tests;

pub use stream::StreamTranslator;

use crate::format::WireFormat;

/// `max_tokens` written to Anthropic when the source request has no maximum (Anthropic requires
/// one; OpenAI and Gemini do not).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// What the route decides about the request going upstream.
#[derive(Debug, Clone, Copy)]
pub struct RequestOptions<'a> {
    /// The provider's model name, written into the body (Gemini takes it in the URL instead).
    pub upstream_model: &'a str,
    /// Whether the upstream request streams (Gemini: the `:streamGenerateContent` URL instead).
    pub stream: bool,
}

/// Why a body could not be translated: the daemon answers 400 with the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// A field, value or content type with no equivalent in the other format.
    #[error("`{field}` cannot be translated: {reason}")]
    Unsupported { field: String, reason: String },
    /// The body is not valid for its own format.
    #[error("invalid body: {0}")]
    Invalid(String),
}

fn responses_unsupported() -> TranslateError {
    TranslateError::Unsupported {
        field: "/v1/responses".into(),
        reason: "the OpenAI Responses API is served only by OpenAI-kind providers; call a model routed to an \
                 OpenAI provider, or use /v1/chat/completions"
            .into(),
    }
}

fn refuse_responses(first: WireFormat, second: WireFormat) -> Result<(), TranslateError> {
    if first == WireFormat::Responses || second == WireFormat::Responses {
        return Err(responses_unsupported());
    }
    Ok(())
}

/// Translates a request body from the client's format to the upstream's.
pub fn request(
    from: WireFormat,
    to: WireFormat,
    body: &[u8],
    options: &RequestOptions,
) -> Result<Vec<u8>, TranslateError> {
    refuse_responses(from, to)?;
    if from == to {
        return Ok(body.to_vec());
    }
    let conversation = match from {
        WireFormat::Messages => anthropic::parse_request(body)?,
        WireFormat::ChatCompletions => openai::parse_request(body)?,
        WireFormat::Gemini => gemini::parse_request(body)?,
        WireFormat::Responses => return Err(responses_unsupported()),
    };
    let rendered = match to {
        WireFormat::Messages => anthropic::render_request(&conversation, options)?,
        WireFormat::ChatCompletions => openai::render_request(&conversation, options)?,
        WireFormat::Gemini => gemini::render_request(&conversation, options)?,
        WireFormat::Responses => return Err(responses_unsupported()),
    };
    fields::to_bytes(&rendered)
}

/// Translates a (successful, non-streaming) response body from the upstream's format to the
/// client's, naming `requested_model` as the model. OpenAI's `created` is 0 unless the upstream had
/// one; [`response_created_at`] takes the time.
pub fn response(
    upstream: WireFormat,
    client: WireFormat,
    body: &[u8],
    requested_model: &str,
) -> Result<Vec<u8>, TranslateError> {
    response_created_at(upstream, client, body, requested_model, 0)
}

/// [`response`] with OpenAI's `created` (Unix seconds) for a client in the OpenAI format.
pub fn response_created_at(
    upstream: WireFormat,
    client: WireFormat,
    body: &[u8],
    requested_model: &str,
    created_unix_seconds: u64,
) -> Result<Vec<u8>, TranslateError> {
    refuse_responses(upstream, client)?;
    if upstream == client {
        return Ok(body.to_vec());
    }
    let reply = match upstream {
        WireFormat::Messages => anthropic::parse_response(body)?,
        WireFormat::ChatCompletions => openai::parse_response(body)?,
        WireFormat::Gemini => gemini::parse_response(body)?,
        WireFormat::Responses => return Err(responses_unsupported()),
    };
    let rendered = match client {
        WireFormat::Messages => anthropic::render_response(&reply, requested_model, body),
        WireFormat::ChatCompletions => openai::render_response(&reply, requested_model, body, created_unix_seconds),
        WireFormat::Gemini => gemini::render_response(&reply, requested_model, body),
        WireFormat::Responses => return Err(responses_unsupported()),
    };
    fields::to_bytes(&rendered)
}
