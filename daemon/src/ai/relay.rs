//! Relaying a provider's stream to the client event by event, never buffering the stream: each
//! chunk that arrives is passed on (same format: the bytes themselves, redacted; another format:
//! its events translated) as soon as it is read, and fed to the meter on the way, so usage and
//! time to first token are known when the stream ends. The row is completed before the client
//! sees the end of the stream; a client that hangs up drops the relay, which drops the upstream
//! request (cancelling it) and the admitted call (whose row becomes `client_closed`).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use castellan_ai::format::WireFormat;
use castellan_ai::sse::{Event, Parser};
use castellan_ai::translate::StreamTranslator;
use castellan_ai::usage::StreamMeter;
use castellan_schema::ai_requests::AiRequestStatus;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt as _, Stream, StreamExt as _};

use crate::governance::{AdmittedCall, Ending};
use crate::redaction::Redactor;

/// The largest single event accepted from a provider.
const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// How long a stream may go quiet before the client gets an SSE comment (`: keepalive`, which every
/// SSE reader skips). A client that hung up is noticed only when a write to it fails, so without
/// these a stalled provider would hold the upstream request, and the row, until its timeout.
const KEEPALIVE_AFTER: Duration = Duration::from_secs(5);
const KEEPALIVE: &[u8] = b": keepalive\n\n";

type UpstreamBytes = Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>>;

/// The relay of one stream: what the response body polls.
pub struct Relay {
    upstream: UpstreamBytes,
    parser: Parser,
    meter: StreamMeter,
    translator: Option<StreamTranslator>,
    client_format: WireFormat,
    redactor: Arc<Redactor>,
    call: Option<AdmittedCall>,
    answered_by: Option<(String, String, Option<castellan_ai::cost::Prices>)>,
    started: Instant,
    ttft: Option<Duration>,
    finishing: Option<BoxFuture<'static, ()>>,
    /// Bytes to send after the row is completed (a translator's closing events).
    tail: Option<Bytes>,
    /// Where the tool uses of an Anthropic-format answer are remembered, with the request's trace.
    lineage: Option<(Arc<super::lineage::ToolUseTraces>, String)>,
    done: bool,
    /// When the client next gets a keepalive, unless the provider sends something first.
    quiet_until: Pin<Box<tokio::time::Sleep>>,
}

impl Relay {
    pub fn new(
        upstream: reqwest::Response,
        (upstream_format, client_format): (WireFormat, WireFormat),
        call: AdmittedCall,
        answered_by: Option<(String, String, Option<castellan_ai::cost::Prices>)>,
        redactor: Arc<Redactor>,
        started: Instant,
        tool_uses: Arc<super::lineage::ToolUseTraces>,
    ) -> Self {
        let lineage = (client_format == WireFormat::Messages).then(|| (tool_uses, call.trace_id.clone()));
        let translator = (upstream_format != client_format)
            .then(|| StreamTranslator::new(upstream_format, client_format, &call.requested_model));
        Relay {
            upstream: Box::pin(upstream.bytes_stream()),
            parser: Parser::new(MAX_EVENT_BYTES),
            meter: StreamMeter::new(upstream_format),
            translator,
            client_format,
            redactor,
            call: Some(call),
            answered_by,
            started,
            ttft: None,
            finishing: None,
            tail: None,
            lineage,
            done: false,
            quiet_until: Box::pin(tokio::time::sleep(KEEPALIVE_AFTER)),
        }
    }

    /// Meters the chunk's events and returns what the client gets for it.
    fn relay_chunk(&mut self, chunk: &Bytes) -> Result<Bytes, String> {
        let events = self.parser.push(chunk).map_err(|error| format!("the provider's stream is not valid: {error}"))?;
        for event in &events {
            self.meter.observe(event);
        }
        if self.ttft.is_none() && self.meter.saw_output() {
            self.ttft = Some(self.started.elapsed());
        }
        match &mut self.translator {
            None => {
                if let Some((tool_uses, trace_id)) = &self.lineage {
                    for event in &events {
                        tool_uses.remember_event(event, trace_id, Instant::now());
                    }
                }
                Ok(Bytes::from(self.redactor.redact_bytes(chunk).into_owned()))
            }
            Some(translator) => {
                let mut out = String::new();
                for event in &events {
                    for translated in translator.push(event).map_err(|error| error.to_string())? {
                        if let Some((tool_uses, trace_id)) = &self.lineage {
                            tool_uses.remember_event(&translated, trace_id, Instant::now());
                        }
                        out.push_str(&translated.encode());
                    }
                }
                Ok(Bytes::from(self.redactor.redact(&out).into_owned()))
            }
        }
    }

    /// Completes the row (once); the stream ends after it is committed.
    fn start_finishing(&mut self, status: AiRequestStatus, error_message: Option<String>) {
        let Some(call) = self.call.take() else { return };
        let ending = Ending {
            status,
            usage: self.meter.usage(),
            ttft: self.ttft,
            error_message,
            answered_by: self.answered_by.take(),
        };
        self.finishing = Some(
            async move {
                if let Err(error) = call.finish(ending).await {
                    tracing::error!(%error, "the row of a streamed AI request could not be completed");
                }
            }
            .boxed(),
        );
    }

    /// The closing events of a translated stream, and an error event when the stream broke.
    fn closing(&mut self, error: Option<&str>) -> Option<Bytes> {
        let mut out = String::new();
        if let Some(message) = error {
            out.push_str(&error_event(self.client_format, message).encode());
        }
        if let Some(translator) = &mut self.translator {
            for event in translator.finish() {
                out.push_str(&event.encode());
            }
        }
        (!out.is_empty()).then(|| Bytes::from(out))
    }
}

impl Stream for Relay {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(finishing) = &mut this.finishing {
                if finishing.as_mut().poll(context).is_pending() {
                    return Poll::Pending;
                }
                this.finishing = None;
                this.done = true;
                if let Some(tail) = this.tail.take() {
                    return Poll::Ready(Some(Ok(tail)));
                }
            }
            if this.done {
                return Poll::Ready(None);
            }
            match this.upstream.poll_next_unpin(context) {
                Poll::Pending => {
                    if this.quiet_until.as_mut().poll(context).is_ready() {
                        this.quiet_until.as_mut().reset(tokio::time::Instant::now() + KEEPALIVE_AFTER);
                        return Poll::Ready(Some(Ok(Bytes::from_static(KEEPALIVE))));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Some(Ok(chunk))) => {
                    this.quiet_until.as_mut().reset(tokio::time::Instant::now() + KEEPALIVE_AFTER);
                    match this.relay_chunk(&chunk) {
                        Ok(out) if out.is_empty() => continue,
                        Ok(out) => return Poll::Ready(Some(Ok(out))),
                        Err(message) => {
                            tracing::warn!(%message, "a provider stream was cut short");
                            this.tail = this.closing(Some(&message));
                            this.start_finishing(AiRequestStatus::Failed, Some(message));
                        }
                    }
                }
                Poll::Ready(Some(Err(_))) => {
                    let message = "the provider's stream broke off".to_string();
                    this.tail = this.closing(Some(&message));
                    this.start_finishing(AiRequestStatus::Failed, Some(message));
                }
                Poll::Ready(None) => {
                    let trailing = this.parser.finish().ok().flatten();
                    if let Some(event) = trailing {
                        this.meter.observe(&event);
                    }
                    let error = this.meter.error();
                    this.tail = this.closing(None);
                    let status =
                        if error.is_some() { AiRequestStatus::UpstreamError } else { AiRequestStatus::Success };
                    this.start_finishing(status, error);
                }
            }
        }
    }
}

/// An error event in the client's stream format, for a stream that broke after it started (the
/// status line was sent long ago).
fn error_event(format: WireFormat, message: &str) -> Event {
    let error = super::errors::AiError::UpstreamFailed(message.to_string());
    let body = error.body(format);
    match format {
        WireFormat::Messages => Event { event: Some("error".into()), data: body.to_string() },
        WireFormat::Responses => Event { event: Some("error".into()), data: body.to_string() },
        WireFormat::ChatCompletions | WireFormat::Gemini => Event { event: None, data: body.to_string() },
    }
}
