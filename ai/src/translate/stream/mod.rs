//! Stream translation: the upstream's events are read one at a time into [`Piece`]s (the hub of a
//! stream) and the client's events are written from them as soon as they can be. Only a Gemini
//! client waits for anything: its `functionCall` parts carry whole arguments, so a tool call's
//! argument fragments are held until the call ends.

mod anthropic;
mod gemini;
mod openai;

use super::hub::{StopReason, UsageUpdate};
use super::{TranslateError, refuse_responses, responses_unsupported};
use crate::format::WireFormat;
use crate::sse::Event;

/// One step of a streamed answer, in no format.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Piece {
    /// The answer began; the id is the upstream's (or one derived from its first event).
    Start {
        id: String,
        created: Option<u64>,
    },
    Text(String),
    ToolCallStart {
        id: String,
        name: String,
    },
    /// A fragment of the current tool call's JSON arguments.
    ToolArguments(String),
    /// The current text or tool call is complete.
    BlockStop,
    Usage(UsageUpdate),
    Stop(StopReason),
    Ping,
    Error(StreamError),
    /// The upstream said the answer is complete.
    End,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct StreamError {
    pub kind: ErrorKind,
    pub message: String,
}

/// The error classes every format can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ErrorKind {
    InvalidRequest,
    RateLimit,
    Overloaded,
    Api,
}

/// What every writer needs about the answer.
#[derive(Debug, Clone)]
pub(super) struct Context {
    pub model: String,
    pub created: u64,
}

/// Translates one streamed answer, event by event, from the upstream's format to the client's.
///
/// Same format in and out passes every event through unchanged; the OpenAI Responses format is
/// refused at the first event.
#[derive(Debug)]
pub struct StreamTranslator {
    mode: Mode,
}

#[derive(Debug)]
enum Mode {
    Refused,
    Passthrough,
    Translate { decoder: Decoder, encoder: Encoder },
}

#[derive(Debug)]
enum Decoder {
    Anthropic(anthropic::Decoder),
    OpenAi(openai::Decoder),
    Gemini(gemini::Decoder),
}

#[derive(Debug)]
enum Encoder {
    Anthropic(anthropic::Encoder),
    OpenAi(openai::Encoder),
    Gemini(gemini::Encoder),
}

impl StreamTranslator {
    pub fn new(upstream: WireFormat, client: WireFormat, requested_model: &str) -> Self {
        let context = Context { model: requested_model.to_owned(), created: 0 };
        let mode = if refuse_responses(upstream, client).is_err() {
            Mode::Refused
        } else if upstream == client {
            Mode::Passthrough
        } else {
            let decoder = match upstream {
                WireFormat::Messages => Decoder::Anthropic(anthropic::Decoder),
                WireFormat::ChatCompletions => Decoder::OpenAi(openai::Decoder::default()),
                WireFormat::Gemini | WireFormat::Responses => Decoder::Gemini(gemini::Decoder::default()),
            };
            let encoder = match client {
                WireFormat::Messages => Encoder::Anthropic(anthropic::Encoder::new(context)),
                WireFormat::ChatCompletions => Encoder::OpenAi(openai::Encoder::new(context)),
                WireFormat::Gemini | WireFormat::Responses => Encoder::Gemini(gemini::Encoder::new(context)),
            };
            Mode::Translate { decoder, encoder }
        };
        StreamTranslator { mode }
    }

    /// OpenAI's `created` (Unix seconds) on every chunk, when the client speaks OpenAI and the
    /// upstream does not say; 0 otherwise.
    pub fn created_at(mut self, unix_seconds: u64) -> Self {
        if let Mode::Translate { encoder: Encoder::OpenAi(encoder), .. } = &mut self.mode {
            encoder.set_created(unix_seconds);
        }
        self
    }

    /// The client's events for one upstream event (often none, sometimes several).
    pub fn push(&mut self, event: &Event) -> Result<Vec<Event>, TranslateError> {
        let (decoder, encoder) = match &mut self.mode {
            Mode::Refused => return Err(responses_unsupported()),
            Mode::Passthrough => return Ok(vec![event.clone()]),
            Mode::Translate { decoder, encoder } => (decoder, encoder),
        };
        let pieces = match decoder {
            Decoder::Anthropic(decoder) => decoder.decode(event)?,
            Decoder::OpenAi(decoder) => decoder.decode(event)?,
            Decoder::Gemini(decoder) => decoder.decode(event)?,
        };
        let mut out = Vec::new();
        for piece in pieces {
            match encoder {
                Encoder::Anthropic(encoder) => encoder.encode(piece, &mut out)?,
                Encoder::OpenAi(encoder) => encoder.encode(piece, &mut out)?,
                Encoder::Gemini(encoder) => encoder.encode(piece, &mut out)?,
            }
        }
        Ok(out)
    }

    /// The closing events the client's format needs, if the upstream ended without them (OpenAI's
    /// `[DONE]`, Anthropic's `message_stop`, Gemini's `finishReason`). Nothing after an error.
    pub fn finish(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        if let Mode::Translate { encoder, .. } = &mut self.mode {
            match encoder {
                Encoder::Anthropic(encoder) => encoder.finish(&mut out),
                Encoder::OpenAi(encoder) => encoder.finish(&mut out),
                Encoder::Gemini(encoder) => encoder.finish(&mut out),
            }
        }
        out
    }

    /// The client format's error event, for a stream the gateway must end early (an upstream
    /// event [`push`](Self::push) refused, or the upstream failing mid-stream). Nothing follows it.
    pub fn fail(&mut self, message: &str) -> Vec<Event> {
        let mut out = Vec::new();
        let error = Piece::Error(StreamError { kind: ErrorKind::Api, message: message.to_owned() });
        let _ = match &mut self.mode {
            Mode::Refused | Mode::Passthrough => Ok(()),
            Mode::Translate { encoder: Encoder::Anthropic(encoder), .. } => encoder.encode(error, &mut out),
            Mode::Translate { encoder: Encoder::OpenAi(encoder), .. } => encoder.encode(error, &mut out),
            Mode::Translate { encoder: Encoder::Gemini(encoder), .. } => encoder.encode(error, &mut out),
        };
        out
    }
}

/// An event with only data (OpenAI Chat and Gemini name none).
pub(super) fn data_event(data: &serde_json::Value) -> Event {
    Event { event: None, data: data.to_string() }
}

pub(super) fn parse_event_data(event: &Event) -> Result<serde_json::Value, TranslateError> {
    serde_json::from_str(&event.data)
        .map_err(|error| TranslateError::Invalid(format!("an upstream stream event is not JSON: {error}")))
}
