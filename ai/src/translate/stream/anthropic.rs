//! Anthropic Messages streams: `message_start`, `content_block_start`/`delta`/`stop`,
//! `message_delta`, `message_stop`, `ping`, `error`, every event named with `event:`.

use serde_json::{Value, json};

use super::{Context, ErrorKind, Piece, StreamError, parse_event_data};
use crate::sse::Event;
use crate::translate::TranslateError;
use crate::translate::anthropic::{stop_reason_from, stop_reason_name, usage_json, usage_update};
use crate::translate::fields::{invalid, stable_hash, unsupported};
use crate::translate::hub::{StopReason, Usage};

/// Reads an Anthropic stream.
#[derive(Debug, Default)]
pub(super) struct Decoder;

impl Decoder {
    pub(super) fn decode(&self, event: &Event) -> Result<Vec<Piece>, TranslateError> {
        let data = parse_event_data(event)?;
        let kind = data.get("type").and_then(Value::as_str).or(event.event.as_deref()).unwrap_or_default();
        let mut pieces = Vec::new();
        match kind {
            "message_start" => {
                let message = data.get("message").cloned().unwrap_or(Value::Null);
                let id = match message.get("id").and_then(Value::as_str) {
                    Some(id) => id.to_owned(),
                    None => format!("msg_{:016x}", stable_hash(&[event.data.as_bytes()])),
                };
                pieces.push(Piece::Start { id, created: None });
                if let Some(usage) = message.get("usage") {
                    pieces.push(Piece::Usage(usage_update(usage)));
                }
            }
            "content_block_start" => {
                let block = data.get("content_block").cloned().unwrap_or(Value::Null);
                match block.get("type").and_then(Value::as_str).unwrap_or_default() {
                    "text" => {
                        let text = block.get("text").and_then(Value::as_str).unwrap_or_default();
                        if !text.is_empty() {
                            pieces.push(Piece::Text(text.to_owned()));
                        }
                    }
                    "tool_use" => {
                        let text = |key: &str| block.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
                        pieces.push(Piece::ToolCallStart { id: text("id"), name: text("name") });
                        if let Some(input) = block.get("input").and_then(Value::as_object)
                            && !input.is_empty()
                        {
                            pieces.push(Piece::ToolArguments(Value::Object(input.clone()).to_string()));
                        }
                    }
                    other => {
                        return Err(unsupported(
                            format!("content_block_start.content_block.type: {other}"),
                            "this content block has no equivalent in the client's wire format",
                        ));
                    }
                }
            }
            "content_block_delta" => {
                let delta = data.get("delta").cloned().unwrap_or(Value::Null);
                let text = |key: &str| delta.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
                match delta.get("type").and_then(Value::as_str).unwrap_or_default() {
                    "text_delta" => pieces.push(Piece::Text(text("text"))),
                    "input_json_delta" => {
                        let fragment = text("partial_json");
                        if !fragment.is_empty() {
                            pieces.push(Piece::ToolArguments(fragment));
                        }
                    }
                    other => {
                        return Err(unsupported(
                            format!("content_block_delta.delta.type: {other}"),
                            "this delta has no equivalent in the client's wire format",
                        ));
                    }
                }
            }
            "content_block_stop" => pieces.push(Piece::BlockStop),
            "message_delta" => {
                if let Some(usage) = data.get("usage") {
                    pieces.push(Piece::Usage(usage_update(usage)));
                }
                if let Some(reason) =
                    data.get("delta").and_then(|delta| delta.get("stop_reason")).and_then(Value::as_str)
                {
                    pieces.push(Piece::Stop(stop_reason_from(reason)));
                }
            }
            "message_stop" => pieces.push(Piece::End),
            "ping" => pieces.push(Piece::Ping),
            "error" => {
                let error = data.get("error").cloned().unwrap_or(Value::Null);
                let kind = match error.get("type").and_then(Value::as_str).unwrap_or_default() {
                    "invalid_request_error" | "request_too_large" => ErrorKind::InvalidRequest,
                    "rate_limit_error" => ErrorKind::RateLimit,
                    "overloaded_error" => ErrorKind::Overloaded,
                    _ => ErrorKind::Api,
                };
                let message = error.get("message").and_then(Value::as_str).unwrap_or("upstream error").to_owned();
                pieces.push(Piece::Error(StreamError { kind, message }));
            }
            // Event types added later carry nothing the client formats could show.
            _ => {}
        }
        Ok(pieces)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Text,
    ToolUse,
}

/// Writes an Anthropic stream.
#[derive(Debug)]
pub(super) struct Encoder {
    context: Context,
    started: bool,
    done: bool,
    open: Option<(u32, BlockKind)>,
    next_index: u32,
    stop: Option<StopReason>,
    usage: Usage,
}

fn named(name: &str, data: Value) -> Event {
    Event { event: Some(name.to_owned()), data: data.to_string() }
}

impl Encoder {
    pub(super) fn new(context: Context) -> Self {
        Encoder { context, started: false, done: false, open: None, next_index: 0, stop: None, usage: Usage::default() }
    }

    fn start(&mut self, id: String, out: &mut Vec<Event>) {
        self.started = true;
        let id = if id.starts_with("msg_") { id } else { format!("msg_{id}") };
        out.push(named(
            "message_start",
            json!({"type": "message_start", "message": {
                "id": id, "type": "message", "role": "assistant", "model": self.context.model,
                "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage_json(&self.usage),
            }}),
        ));
    }

    fn ensure_started(&mut self, out: &mut Vec<Event>) {
        if !self.started {
            let id = format!("{:016x}", stable_hash(&[self.context.model.as_bytes(), b"stream"]));
            self.start(id, out);
        }
    }

    fn close_block(&mut self, out: &mut Vec<Event>) {
        if let Some((index, _)) = self.open.take() {
            out.push(named("content_block_stop", json!({"type": "content_block_stop", "index": index})));
        }
    }

    fn open_block(&mut self, kind: BlockKind, block: Value, out: &mut Vec<Event>) -> u32 {
        self.close_block(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((index, kind));
        out.push(named(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": block}),
        ));
        index
    }

    fn delta(index: u32, delta: Value) -> Event {
        named("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": delta}))
    }

    pub(super) fn encode(&mut self, piece: Piece, out: &mut Vec<Event>) -> Result<(), TranslateError> {
        if self.done {
            return Ok(());
        }
        match piece {
            Piece::Start { id, .. } => {
                if !self.started {
                    self.start(id, out);
                }
            }
            Piece::Text(text) => {
                self.ensure_started(out);
                let index = match self.open {
                    Some((index, BlockKind::Text)) => index,
                    _ => self.open_block(BlockKind::Text, json!({"type": "text", "text": ""}), out),
                };
                out.push(Self::delta(index, json!({"type": "text_delta", "text": text})));
            }
            Piece::ToolCallStart { id, name } => {
                self.ensure_started(out);
                let block = json!({"type": "tool_use", "id": id, "name": name, "input": {}});
                self.open_block(BlockKind::ToolUse, block, out);
            }
            Piece::ToolArguments(fragment) => match self.open {
                Some((index, BlockKind::ToolUse)) => {
                    out.push(Self::delta(index, json!({"type": "input_json_delta", "partial_json": fragment})));
                }
                _ => return Err(invalid("tool call arguments arrived outside a tool call")),
            },
            Piece::BlockStop => self.close_block(out),
            Piece::Usage(update) => update.apply(&mut self.usage),
            Piece::Stop(reason) => self.stop = Some(reason),
            Piece::Ping => out.push(named("ping", json!({"type": "ping"}))),
            Piece::Error(error) => {
                let kind = match error.kind {
                    ErrorKind::InvalidRequest => "invalid_request_error",
                    ErrorKind::RateLimit => "rate_limit_error",
                    ErrorKind::Overloaded => "overloaded_error",
                    ErrorKind::Api => "api_error",
                };
                out.push(named("error", json!({"type": "error", "error": {"type": kind, "message": error.message}})));
                self.done = true;
            }
            Piece::End => self.end(out),
        }
        Ok(())
    }

    fn end(&mut self, out: &mut Vec<Event>) {
        self.ensure_started(out);
        self.close_block(out);
        let stop = self.stop.unwrap_or(StopReason::EndTurn);
        out.push(named(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": stop_reason_name(stop), "stop_sequence": null},
                   "usage": usage_json(&self.usage)}),
        ));
        out.push(named("message_stop", json!({"type": "message_stop"})));
        self.done = true;
    }

    pub(super) fn finish(&mut self, out: &mut Vec<Event>) {
        if !self.done {
            self.end(out);
        }
    }
}
