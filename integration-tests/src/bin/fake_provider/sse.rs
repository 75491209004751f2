//! The SSE body stream: a list of prepared events, optionally paced or stalled, that counts itself
//! completed when its last event was taken and cancelled when the server drops it earlier (the
//! client went away).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::rt::time::{Instant, sleep};
use actix_web::web::Bytes;
use futures_util::Stream;
use serde_json::Value;

use crate::State;
use crate::peer::{Peer, wait_or_hang_up};
use crate::plan::{Plan, STALL};

/// One SSE event: `event: NAME` (when named) and `data: JSON`.
pub fn event(name: Option<&str>, data: &Value) -> Bytes {
    let mut text = String::with_capacity(128);
    if let Some(name) = name {
        text.push_str("event: ");
        text.push_str(name);
        text.push('\n');
    }
    text.push_str("data: ");
    text.push_str(&data.to_string());
    text.push_str("\n\n");
    Bytes::from(text)
}

/// A raw `data:` line (e.g. OpenAI's `[DONE]`).
pub fn raw_data(data: &str) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

struct EventStream {
    events: VecDeque<Bytes>,
    gap: Option<Duration>,
    stall_after_first: bool,
    sent: usize,
    /// The pause before the next event was taken.
    gap_taken: bool,
    /// The pending sleep is the mid-stream stall (not a pacing gap).
    stalling: bool,
    /// A pacing gap (resolves `false`) or the stall (resolves `true` when the client hung up).
    pending: Option<Pin<Box<dyn Future<Output = bool>>>>,
    peer: Option<Peer>,
    state: Arc<State>,
    finished: bool,
}

impl Stream for EventStream {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(pending) = this.pending.as_mut() {
                let Poll::Ready(hung_up) = pending.as_mut().poll(context) else { return Poll::Pending };
                this.pending = None;
                if hung_up {
                    // Ends the connection; the drop counts the stream cancelled.
                    return Poll::Ready(Some(Err(actix_web::error::ErrorGone("the client hung up"))));
                }
                if this.stalling {
                    // The stall is over: end without the rest, like a cut-off stream.
                    this.stalling = false;
                    this.events.clear();
                } else {
                    this.gap_taken = true;
                }
            }
            if this.events.is_empty() {
                if !this.finished {
                    this.finished = true;
                    this.state.streams_completed.fetch_add(1, Ordering::Relaxed);
                }
                return Poll::Ready(None);
            }
            if let Some(gap) = this.gap
                && !this.gap_taken
            {
                this.pending = Some(Box::pin(async move {
                    sleep(gap).await;
                    false
                }));
                continue;
            }
            let Some(bytes) = this.events.pop_front() else { continue };
            this.sent += 1;
            this.gap_taken = false;
            if this.stall_after_first && this.sent == 1 {
                let peer = this.peer.clone();
                let deadline = Instant::now() + STALL;
                this.pending = Some(Box::pin(async move { wait_or_hang_up(peer.as_ref(), deadline).await }));
                this.stalling = true;
            }
            return Poll::Ready(Some(Ok(bytes)));
        }
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        if !self.finished {
            self.state.streams_cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A `text/event-stream` response of `events`, paced and stalled as `plan` says.
pub fn response(state: Arc<State>, peer: Option<Peer>, plan: &Plan, events: Vec<Bytes>) -> HttpResponse {
    state.streams_started.fetch_add(1, Ordering::Relaxed);
    let stream = EventStream {
        events: events.into(),
        gap: plan.event_gap(),
        stall_after_first: plan.stalls_mid_stream(),
        sent: 0,
        gap_taken: false,
        stalling: false,
        pending: None,
        peer,
        state,
        finished: false,
    };
    HttpResponse::Ok().content_type("text/event-stream").insert_header(("cache-control", "no-cache")).streaming(stream)
}

/// A body that fails before its first byte, so the server closes the connection.
pub fn dropped_connection() -> HttpResponse {
    let failing = futures_util::stream::once(async {
        Err::<Bytes, actix_web::Error>(actix_web::error::ErrorInternalServerError("fake drop"))
    });
    HttpResponse::Ok().streaming(failing)
}
