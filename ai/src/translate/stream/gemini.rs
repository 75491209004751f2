//! Gemini streams (`:streamGenerateContent?alt=sse`): unnamed events, each a
//! GenerateContentResponse with the next parts; the last has `finishReason` and `usageMetadata`.
//! There is no `[DONE]`.

use serde_json::{Map, Value, json};

use super::{Context, ErrorKind, Piece, StreamError, data_event, parse_event_data};
use crate::sse::Event;
use crate::translate::TranslateError;
use crate::translate::fields::{invalid, stable_hash};
use crate::translate::gemini::{finish_reason_name, reply_parts, stop_reason_from, usage_json, usage_update};
use crate::translate::hub::{ReplyPart, StopReason, Usage, arguments_object};

/// Reads a Gemini stream.
#[derive(Debug, Default)]
pub(super) struct Decoder {
    id: Option<String>,
    calls: usize,
    ended: bool,
}

impl Decoder {
    pub(super) fn decode(&mut self, event: &Event) -> Result<Vec<Piece>, TranslateError> {
        let chunk = parse_event_data(event)?;
        if let Some(error) = chunk.get("error") {
            let kind = match error.get("status").and_then(Value::as_str).unwrap_or_default() {
                "INVALID_ARGUMENT" | "FAILED_PRECONDITION" => ErrorKind::InvalidRequest,
                "RESOURCE_EXHAUSTED" => ErrorKind::RateLimit,
                "UNAVAILABLE" => ErrorKind::Overloaded,
                _ => ErrorKind::Api,
            };
            let message = error.get("message").and_then(Value::as_str).unwrap_or("upstream error").to_owned();
            return Ok(vec![Piece::Error(StreamError { kind, message })]);
        }
        if self.ended {
            return Ok(Vec::new());
        }
        let mut pieces = Vec::new();
        let id = match &self.id {
            Some(id) => id.clone(),
            None => {
                let id = match chunk.get("responseId").and_then(Value::as_str) {
                    Some(id) => id.to_owned(),
                    None => format!("{:016x}", stable_hash(&[event.data.as_bytes()])),
                };
                self.id = Some(id.clone());
                pieces.push(Piece::Start { id: id.clone(), created: None });
                id
            }
        };
        let candidate = chunk.get("candidates").and_then(Value::as_array).and_then(|candidates| candidates.first());
        if let Some(candidate) = candidate {
            let (parts, _) = reply_parts(candidate, &id, self.calls)?;
            for part in parts {
                match part {
                    ReplyPart::Text(text) => {
                        if !text.is_empty() {
                            pieces.push(Piece::Text(text));
                        }
                    }
                    ReplyPart::ToolCall(call) => {
                        self.calls += 1;
                        pieces.push(Piece::ToolCallStart { id: call.id, name: call.name });
                        pieces.push(Piece::ToolArguments(Value::Object(call.input).to_string()));
                        pieces.push(Piece::BlockStop);
                    }
                }
            }
        }
        if let Some(usage) = chunk.get("usageMetadata") {
            pieces.push(Piece::Usage(usage_update(usage)));
        }
        let finish = candidate.and_then(|candidate| candidate.get("finishReason")).and_then(Value::as_str);
        let blocked = candidate.is_none() && chunk.pointer("/promptFeedback/blockReason").is_some();
        if finish.is_some() || blocked {
            let stop = match finish {
                Some(reason) => stop_reason_from(reason, self.calls > 0),
                None => StopReason::ContentFilter,
            };
            pieces.push(Piece::BlockStop);
            pieces.push(Piece::Stop(stop));
            pieces.push(Piece::End);
            self.ended = true;
        }
        Ok(pieces)
    }
}

/// Writes a Gemini stream. A tool call's argument fragments are held until the call ends, since a
/// `functionCall` part carries the whole arguments object.
#[derive(Debug)]
pub(super) struct Encoder {
    context: Context,
    id: String,
    done: bool,
    pending_call: Option<(String, String)>,
    stop: Option<StopReason>,
    usage: Usage,
}

impl Encoder {
    pub(super) fn new(context: Context) -> Self {
        let id = format!("{:016x}", stable_hash(&[context.model.as_bytes(), b"stream"]));
        Encoder { context, id, done: false, pending_call: None, stop: None, usage: Usage::default() }
    }

    fn chunk(&self, parts: Vec<Value>, finish_reason: Option<StopReason>) -> Event {
        let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        let mut chunk = Map::new();
        if let Some(reason) = finish_reason {
            candidate["finishReason"] = json!(finish_reason_name(reason));
        }
        chunk.insert("candidates".into(), json!([candidate]));
        if finish_reason.is_some() {
            chunk.insert("usageMetadata".into(), usage_json(&self.usage));
        }
        chunk.insert("modelVersion".into(), json!(self.context.model));
        chunk.insert("responseId".into(), json!(self.id));
        data_event(&Value::Object(chunk))
    }

    fn flush_call(&mut self, out: &mut Vec<Event>) -> Result<(), TranslateError> {
        if let Some((name, arguments)) = self.pending_call.take() {
            let args = arguments_object("tool call arguments", &arguments)?;
            out.push(self.chunk(vec![json!({"functionCall": {"name": name, "args": args}})], None));
        }
        Ok(())
    }

    pub(super) fn encode(&mut self, piece: Piece, out: &mut Vec<Event>) -> Result<(), TranslateError> {
        if self.done {
            return Ok(());
        }
        match piece {
            Piece::Start { id, .. } => self.id = id,
            Piece::Text(text) => {
                self.flush_call(out)?;
                out.push(self.chunk(vec![json!({"text": text})], None));
            }
            Piece::ToolCallStart { name, .. } => {
                self.flush_call(out)?;
                self.pending_call = Some((name, String::new()));
            }
            Piece::ToolArguments(fragment) => match &mut self.pending_call {
                Some((_, arguments)) => arguments.push_str(&fragment),
                None => return Err(invalid("tool call arguments arrived outside a tool call")),
            },
            Piece::BlockStop => self.flush_call(out)?,
            Piece::Usage(update) => update.apply(&mut self.usage),
            Piece::Stop(reason) => self.stop = Some(reason),
            Piece::Ping => {}
            Piece::Error(error) => {
                let (code, status) = match error.kind {
                    ErrorKind::InvalidRequest => (400, "INVALID_ARGUMENT"),
                    ErrorKind::RateLimit => (429, "RESOURCE_EXHAUSTED"),
                    ErrorKind::Overloaded => (503, "UNAVAILABLE"),
                    ErrorKind::Api => (500, "INTERNAL"),
                };
                out.push(data_event(&json!({"error": {"code": code, "message": error.message, "status": status}})));
                self.done = true;
            }
            Piece::End => self.end(out)?,
        }
        Ok(())
    }

    fn end(&mut self, out: &mut Vec<Event>) -> Result<(), TranslateError> {
        let flushed = self.flush_call(out);
        out.push(self.chunk(Vec::new(), Some(self.stop.unwrap_or(StopReason::EndTurn))));
        self.done = true;
        flushed
    }

    pub(super) fn finish(&mut self, out: &mut Vec<Event>) {
        if !self.done {
            // Arguments that do not parse at the end of a cut-off stream are lost with it.
            let _ = self.end(out);
        }
    }
}
