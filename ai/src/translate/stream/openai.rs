//! OpenAI Chat Completions streams: unnamed `chat.completion.chunk` events, a usage chunk with
//! empty `choices`, then `data: [DONE]`.

use serde_json::{Value, json};

use super::{Context, ErrorKind, Piece, StreamError, data_event, parse_event_data};
use crate::sse::Event;
use crate::translate::TranslateError;
use crate::translate::fields::{stable_hash, unsupported};
use crate::translate::hub::{StopReason, Usage};
use crate::translate::openai::{finish_reason_name, stop_reason_from, usage_json, usage_update};

const DONE: &str = "[DONE]";

/// Reads an OpenAI Chat stream.
#[derive(Debug, Default)]
pub(super) struct Decoder {
    started: bool,
    /// The `index` and id of the tool call being streamed.
    current_tool: Option<(u64, String)>,
}

impl Decoder {
    pub(super) fn decode(&mut self, event: &Event) -> Result<Vec<Piece>, TranslateError> {
        if event.data.trim_start().starts_with(DONE) {
            return Ok(vec![Piece::End]);
        }
        let chunk = parse_event_data(event)?;
        let mut pieces = Vec::new();
        if let Some(error) = chunk.get("error").filter(|error| !error.is_null()) {
            let kind = match (error.get("type").and_then(Value::as_str), error.get("code").and_then(Value::as_str)) {
                (_, Some("rate_limit_exceeded")) => ErrorKind::RateLimit,
                (Some("invalid_request_error"), _) => ErrorKind::InvalidRequest,
                _ => ErrorKind::Api,
            };
            let message = error.get("message").and_then(Value::as_str).unwrap_or("upstream error").to_owned();
            return Ok(vec![Piece::Error(StreamError { kind, message })]);
        }
        if !self.started {
            self.started = true;
            let id = match chunk.get("id").and_then(Value::as_str) {
                Some(id) => id.to_owned(),
                None => format!("chatcmpl-{:016x}", stable_hash(&[event.data.as_bytes()])),
            };
            pieces.push(Piece::Start { id, created: chunk.get("created").and_then(Value::as_u64) });
        }
        let choice = chunk.get("choices").and_then(Value::as_array).and_then(|choices| choices.first());
        if let Some(choice) = choice {
            let delta = choice.get("delta").cloned().unwrap_or(Value::Null);
            for key in ["content", "refusal"] {
                if let Some(text) = delta.get(key).and_then(Value::as_str)
                    && !text.is_empty()
                {
                    pieces.push(Piece::Text(text.to_owned()));
                }
            }
            for call in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                self.tool_call(call, &mut pieces)?;
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                pieces.push(Piece::BlockStop);
                pieces.push(Piece::Stop(stop_reason_from(reason)));
            }
        }
        if let Some(usage) = chunk.get("usage").filter(|usage| usage.is_object()) {
            pieces.push(Piece::Usage(usage_update(usage)));
        }
        Ok(pieces)
    }

    fn tool_call(&mut self, call: &Value, pieces: &mut Vec<Piece>) -> Result<(), TranslateError> {
        let index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
        let function = call.get("function");
        let text = |key: &str| function.and_then(|function| function.get(key)).and_then(Value::as_str);
        let id = call.get("id").and_then(Value::as_str).filter(|id| !id.is_empty());
        // A new call has a higher index, or a new id (some providers repeat the id on every chunk).
        let is_new = match (&self.current_tool, id) {
            (None, _) => true,
            (Some((current, _)), _) if index > *current => true,
            (Some((current, current_id)), Some(id)) => index == *current && id != current_id,
            (Some(_), None) => false,
        };
        if is_new {
            let id = id.map_or_else(|| format!("call_{index}"), str::to_owned);
            self.current_tool = Some((index, id.clone()));
            pieces.push(Piece::ToolCallStart { id, name: text("name").unwrap_or_default().to_owned() });
        } else if self.current_tool.as_ref().is_none_or(|(current, _)| *current != index) {
            return Err(unsupported(
                format!("choices[0].delta.tool_calls[index {index}]"),
                "interleaved tool call arguments cannot be translated",
            ));
        }
        if let Some(arguments) = text("arguments")
            && !arguments.is_empty()
        {
            pieces.push(Piece::ToolArguments(arguments.to_owned()));
        }
        Ok(())
    }
}

/// Writes an OpenAI Chat stream.
#[derive(Debug)]
pub(super) struct Encoder {
    context: Context,
    id: String,
    started: bool,
    done: bool,
    tool_calls: u32,
    finished: bool,
    usage: Usage,
}

impl Encoder {
    pub(super) fn new(context: Context) -> Self {
        let id = format!("chatcmpl-{:016x}", stable_hash(&[context.model.as_bytes(), b"stream"]));
        Encoder { context, id, started: false, done: false, tool_calls: 0, finished: false, usage: Usage::default() }
    }

    pub(super) fn set_created(&mut self, unix_seconds: u64) {
        self.context.created = unix_seconds;
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Event {
        data_event(&json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.context.created,
            "model": self.context.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": null}],
            "usage": null,
        }))
    }

    fn ensure_started(&mut self, out: &mut Vec<Event>) {
        if !self.started {
            self.started = true;
            out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
        }
    }

    pub(super) fn encode(&mut self, piece: Piece, out: &mut Vec<Event>) -> Result<(), TranslateError> {
        if self.done {
            return Ok(());
        }
        match piece {
            Piece::Start { id, created } => {
                if !self.started {
                    self.id = if id.starts_with("chatcmpl-") { id } else { format!("chatcmpl-{id}") };
                    if let Some(created) = created {
                        self.context.created = created;
                    }
                    self.ensure_started(out);
                }
            }
            Piece::Text(text) => {
                self.ensure_started(out);
                out.push(self.chunk(json!({"content": text}), None));
            }
            Piece::ToolCallStart { id, name } => {
                self.ensure_started(out);
                let index = self.tool_calls;
                self.tool_calls += 1;
                let call =
                    json!({"index": index, "id": id, "type": "function", "function": {"name": name, "arguments": ""}});
                out.push(self.chunk(json!({"tool_calls": [call]}), None));
            }
            Piece::ToolArguments(fragment) => {
                self.ensure_started(out);
                let index = self.tool_calls.saturating_sub(1);
                let call = json!({"index": index, "function": {"arguments": fragment}});
                out.push(self.chunk(json!({"tool_calls": [call]}), None));
            }
            Piece::BlockStop | Piece::Ping => {}
            Piece::Usage(update) => update.apply(&mut self.usage),
            Piece::Stop(reason) => {
                if !self.finished {
                    self.ensure_started(out);
                    self.finished = true;
                    out.push(self.chunk(json!({}), Some(finish_reason_name(reason))));
                }
            }
            Piece::Error(error) => {
                let kind = match error.kind {
                    ErrorKind::InvalidRequest => "invalid_request_error",
                    ErrorKind::RateLimit => "rate_limit_error",
                    ErrorKind::Overloaded => "server_error",
                    ErrorKind::Api => "api_error",
                };
                out.push(data_event(
                    &json!({"error": {"message": error.message, "type": kind, "param": null, "code": null}}),
                ));
                self.done = true;
            }
            Piece::End => self.end(out),
        }
        Ok(())
    }

    fn end(&mut self, out: &mut Vec<Event>) {
        self.ensure_started(out);
        if !self.finished {
            self.finished = true;
            out.push(self.chunk(json!({}), Some(finish_reason_name(StopReason::EndTurn))));
        }
        out.push(data_event(&json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.context.created,
            "model": self.context.model, "choices": [], "usage": usage_json(&self.usage),
        })));
        out.push(Event { event: None, data: DONE.to_owned() });
        self.done = true;
    }

    pub(super) fn finish(&mut self, out: &mut Vec<Event>) {
        if !self.done {
            self.end(out);
        }
    }
}
