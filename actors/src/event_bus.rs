//! The event bus: a bounded fan-out of typed events about servers, tool calls and decisions.
//!
//! Publishing never waits: the bus is a broadcast ring, and a subscriber that falls behind loses the
//! oldest events (counted in `castellan_events_lost_total`) instead of slowing the publisher.

use actix::prelude::*;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::metrics::Metrics;

/// How many events the ring holds before a slow subscriber starts losing them.
pub const EVENT_RING_CAPACITY: usize = 4096;

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
        /// Changed settings that are read only at start (`server.public_url`, ...), by profile
        /// key: applied at the next restart, not by this reload.
        restart_needed: Vec<String>,
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
    /// An AI request ended (or was refused): its provider, the model as asked, its status
    /// (`ai_requests.status`), and its cost when the model is priced.
    AiRequest {
        provider: String,
        model: String,
        status: String,
        user: Option<String>,
        trace_id: String,
        latency_ms: Option<i64>,
        cost_microdollars: Option<u64>,
    },
    /// A scheduled job's run failed or timed out (`job_runs.status`); the scheduler backs off.
    JobFailed {
        job: String,
        status: String,
        detail: String,
    },
    /// The secrets pull could not reach or read its Vault; the last values stay in force.
    SecretsPullFailed {
        detail: String,
    },
    /// A skill version was stored (`castellan skills publish`, or a folder of `skills.dirs`).
    SkillPublished {
        skill: String,
        version: String,
    },
}

impl Event {
    /// Every value of the serialized `type` tag, in declaration order (what `?types=` filters accept).
    pub const TYPE_NAMES: [&'static str; 18] = [
        "server_starting",
        "server_ready",
        "server_exited",
        "server_restart_scheduled",
        "server_crash_loop",
        "server_stopped",
        "server_health",
        "tools_changed",
        "reconcile_action",
        "profile_applied",
        "profile_rejected",
        "tool_call",
        "auth_decision",
        "tool_definition_changed",
        "ai_request",
        "job_failed",
        "secrets_pull_failed",
        "skill_published",
    ];

    /// A server starting, ready, exiting, restarting, stopping, its health, or its tools changing.
    pub fn is_server_lifecycle(&self) -> bool {
        matches!(
            self,
            Event::ServerStarting { .. }
                | Event::ServerReady { .. }
                | Event::ServerExited { .. }
                | Event::ServerRestartScheduled { .. }
                | Event::ServerCrashLoop { .. }
                | Event::ServerStopped { .. }
                | Event::ServerHealth { .. }
                | Event::ToolsChanged { .. }
        )
    }

    /// The serialized `type` tag of this event, without serializing it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::ServerStarting { .. } => "server_starting",
            Event::ServerReady { .. } => "server_ready",
            Event::ServerExited { .. } => "server_exited",
            Event::ServerRestartScheduled { .. } => "server_restart_scheduled",
            Event::ServerCrashLoop { .. } => "server_crash_loop",
            Event::ServerStopped { .. } => "server_stopped",
            Event::ServerHealth { .. } => "server_health",
            Event::ToolsChanged { .. } => "tools_changed",
            Event::ReconcileAction { .. } => "reconcile_action",
            Event::ProfileApplied { .. } => "profile_applied",
            Event::ProfileRejected { .. } => "profile_rejected",
            Event::ToolCall { .. } => "tool_call",
            Event::AuthDecision { .. } => "auth_decision",
            Event::ToolDefinitionChanged { .. } => "tool_definition_changed",
            Event::AiRequest { .. } => "ai_request",
            Event::JobFailed { .. } => "job_failed",
            Event::SecretsPullFailed { .. } => "secrets_pull_failed",
            Event::SkillPublished { .. } => "skill_published",
        }
    }
}

/// What a subscriber that must report its losses receives (the admin event stream).
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Event(Event),
    /// This many events were dropped from the ring before this subscriber read them.
    Lost(u64),
}

/// The bus itself. Cloning the handle is cheap; every clone publishes into the same ring.
#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Event>,
    /// The servers' lifecycle events only, for subscribers that want nothing else: a subscriber
    /// of `sender` is woken for every tool call and authentication, on whatever thread it runs.
    lifecycle: broadcast::Sender<Event>,
    metrics: Metrics,
}

impl EventBus {
    pub fn new(metrics: Metrics) -> Self {
        let (sender, _) = broadcast::channel(EVENT_RING_CAPACITY);
        let (lifecycle, _) = broadcast::channel(EVENT_RING_CAPACITY);
        Self { sender, lifecycle, metrics }
    }

    /// Publishes without waiting; with no subscriber the event is simply dropped.
    pub fn publish(&self, event: Event) {
        tracing::debug!(event = ?event, "event");
        if event.is_server_lifecycle() && self.lifecycle.receiver_count() > 0 {
            let _ = self.lifecycle.send(event.clone());
        }
        let _ = self.sender.send(event);
    }

    /// Every event.
    pub fn subscribe(&self) -> Subscription {
        Subscription { receiver: self.sender.subscribe(), metrics: self.metrics.clone() }
    }

    /// Only the servers' lifecycle events (see [`Event::is_server_lifecycle`]).
    pub fn subscribe_server_lifecycle(&self) -> Subscription {
        Subscription { receiver: self.lifecycle.subscribe(), metrics: self.metrics.clone() }
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
            match self.next_delivery().await? {
                Delivery::Event(event) => return Some(event),
                Delivery::Lost(_) => {}
            }
        }
    }

    /// The next event, or how many were lost since the last one (counted in the metric too);
    /// `None` once the bus is gone. Cancel-safe: dropping the future loses nothing.
    pub async fn next_delivery(&mut self) -> Option<Delivery> {
        match self.receiver.recv().await {
            Ok(event) => Some(Delivery::Event(event)),
            Err(broadcast::error::RecvError::Lagged(lost)) => {
                self.metrics.events_lost.inc_by(lost);
                Some(Delivery::Lost(lost))
            }
            Err(broadcast::error::RecvError::Closed) => None,
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

    #[tokio::test]
    async fn a_subscriber_that_asks_for_deliveries_is_told_how_many_it_lost() {
        let metrics = Metrics::new();
        let bus = EventBus::new(metrics.clone());
        let mut slow = bus.subscribe();
        for attempt in 0..(EVENT_RING_CAPACITY as u32 + 3) {
            bus.publish(Event::ServerStarting { server: "a".into(), attempt });
        }
        assert_eq!(slow.next_delivery().await, Some(Delivery::Lost(3)), "the loss comes first, with its count");
        assert_eq!(
            slow.next_delivery().await,
            Some(Delivery::Event(Event::ServerStarting { server: "a".into(), attempt: 3 })),
            "then the oldest event still in the ring"
        );
        assert_eq!(metrics.events_lost.get(), 3, "the loss is counted in the metric as well");
    }

    #[tokio::test]
    async fn a_lifecycle_subscriber_sees_only_lifecycle_events_and_the_full_one_sees_all() {
        let bus = EventBus::new(Metrics::new());
        let mut lifecycle = bus.subscribe_server_lifecycle();
        let mut everything = bus.subscribe();
        let call = Event::ToolCall {
            server: "s".into(),
            tool: "t".into(),
            status: "success".into(),
            user: None,
            trace_id: "0".into(),
            duration_ms: 1,
        };
        let ready = Event::ServerReady { server: "s".into(), tools: 1, pid: None };
        bus.publish(call.clone());
        bus.publish(ready.clone());
        assert_eq!(lifecycle.next().await, Some(ready.clone()), "the tool call is not delivered here");
        assert_eq!(everything.next().await, Some(call), "the full subscription has the call");
        assert_eq!(everything.next().await, Some(ready), "and the lifecycle event");
    }

    #[test]
    fn every_type_name_is_the_serialized_tag_and_is_listed() {
        let samples = [
            Event::ServerStarting { server: "s".into(), attempt: 1 },
            Event::ServerReady { server: "s".into(), tools: 1, pid: None },
            Event::ServerExited { server: "s".into(), reason: "r".into() },
            Event::ServerRestartScheduled { server: "s".into(), delay_ms: 1 },
            Event::ServerCrashLoop { server: "s".into(), exits_in_window: 1 },
            Event::ServerStopped { server: "s".into() },
            Event::ServerHealth { server: "s".into(), state: "h".into(), detail: "d".into() },
            Event::ToolsChanged { server: "s".into(), tools: 1 },
            Event::ReconcileAction { server: "s".into(), action: "a".into() },
            Event::ProfileApplied { source: "p".into(), restart_needed: vec![] },
            Event::ProfileRejected { source: "p".into(), problems: vec![] },
            Event::ToolCall {
                server: "s".into(),
                tool: "t".into(),
                status: "success".into(),
                user: None,
                trace_id: "x".into(),
                duration_ms: 1,
            },
            Event::AuthDecision { outcome: "ok".into(), subject: None, reason: "r".into(), trace_id: "x".into() },
            Event::ToolDefinitionChanged { server: "s".into(), tool: "t".into(), blocked: false },
            Event::AiRequest {
                provider: "anthropic".into(),
                model: "m".into(),
                status: "success".into(),
                user: None,
                trace_id: "x".into(),
                latency_ms: Some(1),
                cost_microdollars: Some(168),
            },
            Event::JobFailed { job: "retention".into(), status: "failed".into(), detail: "d".into() },
            Event::SecretsPullFailed { detail: "d".into() },
            Event::SkillPublished { skill: "pdf".into(), version: "1.0.0".into() },
        ];
        let names: Vec<&str> = samples.iter().map(Event::type_name).collect();
        assert_eq!(names, Event::TYPE_NAMES, "one sample per variant, in declaration order");
        for sample in &samples {
            let value = serde_json::to_value(sample).expect("an event serializes");
            assert_eq!(value["type"], sample.type_name(), "type_name is the serde tag of {sample:?}");
        }
    }
}
