//! The event bus: a bounded fan-out of typed events about servers, tool calls and decisions.
//!
//! Publishing never waits: the bus is a broadcast ring, and a subscriber that falls behind loses the
//! oldest events (counted in `castellan_events_lost_total`) instead of slowing the publisher.

use actix::prelude::*;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::metrics::Metrics;

/// How many events the ring holds before a slow subscriber starts losing them.
const EVENT_RING_CAPACITY: usize = 4096;

/// Something that happened, as the admin event stream and the logs report it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    ServerStarting {
        server: String,
        attempt: u32,
    },
    ServerReady {
        server: String,
        tools: usize,
        pid: Option<u32>,
    },
    ServerExited {
        server: String,
        reason: String,
    },
    ServerRestartScheduled {
        server: String,
        delay_ms: u64,
    },
    ServerCrashLoop {
        server: String,
        exits_in_window: u32,
    },
    ServerStopped {
        server: String,
    },
    ServerHealth {
        server: String,
        state: String,
        detail: String,
    },
    ToolsChanged {
        server: String,
        tools: usize,
    },
    ReconcileAction {
        server: String,
        action: String,
    },
    ProfileApplied {
        source: String,
    },
    ProfileRejected {
        source: String,
        problems: Vec<String>,
    },
    ToolCall {
        server: String,
        tool: String,
        status: String,
        user: Option<String>,
        trace_id: String,
        duration_ms: i64,
    },
    AuthDecision {
        outcome: String,
        subject: Option<String>,
        reason: String,
        trace_id: String,
    },
    /// A server changed a tool's definition after it was pinned; `blocked` under `tool_changes: block`.
    ToolDefinitionChanged {
        server: String,
        tool: String,
        blocked: bool,
    },
}

/// The bus itself. Cloning the handle is cheap; every clone publishes into the same ring.
#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Event>,
    metrics: Metrics,
}

impl EventBus {
    pub fn new(metrics: Metrics) -> Self {
        let (sender, _) = broadcast::channel(EVENT_RING_CAPACITY);
        Self { sender, metrics }
    }

    /// Publishes without waiting; with no subscriber the event is simply dropped.
    pub fn publish(&self, event: Event) {
        tracing::debug!(event = ?event, "event");
        let _ = self.sender.send(event);
    }

    pub fn subscribe(&self) -> Subscription {
        Subscription { receiver: self.sender.subscribe(), metrics: self.metrics.clone() }
    }
}

/// One subscriber's view of the bus.
pub struct Subscription {
    receiver: broadcast::Receiver<Event>,
    metrics: Metrics,
}

impl Subscription {
    /// The next event; `None` once the bus is gone. Lost events are counted, then skipped.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            match self.receiver.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(lost)) => {
                    self.metrics.events_lost.inc_by(lost);
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

impl Actor for EventBus {
    type Context = Context<Self>;
}

/// Publish through the actor's mailbox, for code that only holds an `Addr`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish(pub Event);

impl Handler<Publish> for EventBus {
    type Result = ();
    fn handle(&mut self, message: Publish, _: &mut Context<Self>) {
        self.publish(message.0);
    }
}

/// Subscribe through the actor's mailbox.
#[derive(Message)]
#[rtype(result = "Subscription")]
pub struct Subscribe;

impl Handler<Subscribe> for EventBus {
    type Result = MessageResult<Subscribe>;
    fn handle(&mut self, _: Subscribe, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slow_subscriber_loses_events_and_they_are_counted() {
        let metrics = Metrics::new();
        let bus = EventBus::new(metrics.clone());
        let mut slow = bus.subscribe();
        for attempt in 0..(EVENT_RING_CAPACITY as u32 + 10) {
            bus.publish(Event::ServerStarting { server: "a".into(), attempt });
        }
        let first = slow.next().await.expect("bus is open");
        assert_eq!(metrics.events_lost.get(), 10, "exactly the overflow is counted as lost");
        assert_eq!(first, Event::ServerStarting { server: "a".into(), attempt: 10 }, "the oldest events were dropped");
    }
}
