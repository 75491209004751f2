//! Prometheus metrics shared by the actors and the HTTP layer.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolCallLabels {
    pub server: String,
    pub tool: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerLabels {
    pub server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]
        .into_iter()
}

fn batch_buckets() -> impl Iterator<Item = f64> {
    [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0].into_iter()
}

struct Inner {
    registry: Registry,
}

/// Every metric family Castellan exports. Clones share the same series.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
    pub tool_calls: Family<ToolCallLabels, Counter>,
    pub tool_call_seconds: Family<ServerLabels, Histogram>,
    pub child_restarts: Family<ServerLabels, Counter>,
    pub servers_ready: Gauge,
    pub audit_commit_seconds: Histogram,
    pub audit_batch_size: Histogram,
    pub audit_failures: Counter,
    pub events_lost: Counter,
    pub auth_decisions: Family<OutcomeLabels, Counter>,
    pub servers_memory_bytes: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("castellan");
        let tool_calls = Family::<ToolCallLabels, Counter>::default();
        let tool_call_seconds =
            Family::<ServerLabels, Histogram>::new_with_constructor(|| Histogram::new(latency_buckets()));
        let child_restarts = Family::<ServerLabels, Counter>::default();
        let servers_ready = Gauge::default();
        let audit_commit_seconds = Histogram::new(latency_buckets());
        let audit_batch_size = Histogram::new(batch_buckets());
        let audit_failures = Counter::default();
        let events_lost = Counter::default();
        let auth_decisions = Family::<OutcomeLabels, Counter>::default();
        let servers_memory_bytes = Gauge::default();
        registry.register("tool_calls", "Tool calls by server, tool and outcome", tool_calls.clone());
        registry.register(
            "tool_call_duration_seconds",
            "Time from request to committed audit row, by server",
            tool_call_seconds.clone(),
        );
        registry.register("child_restarts", "Restarts of supervised MCP servers", child_restarts.clone());
        registry.register("servers_ready", "Supervised MCP servers currently ready", servers_ready.clone());
        registry.register(
            "audit_commit_duration_seconds",
            "Time to commit one audit batch durably",
            audit_commit_seconds.clone(),
        );
        registry.register("audit_batch_size", "Rows per audit commit", audit_batch_size.clone());
        registry.register("audit_commit_failures", "Audit batches that failed to commit", audit_failures.clone());
        registry.register("events_lost", "Events a slow subscriber lost", events_lost.clone());
        registry.register("auth_decisions", "Authentication outcomes", auth_decisions.clone());
        registry.register(
            "servers_memory_bytes",
            "Resident memory of every supervised server's process tree",
            servers_memory_bytes.clone(),
        );
        Self {
            inner: Arc::new(Inner { registry }),
            tool_calls,
            tool_call_seconds,
            child_restarts,
            servers_ready,
            audit_commit_seconds,
            audit_batch_size,
            servers_memory_bytes,
            audit_failures,
            events_lost,
            auth_decisions,
        }
    }

    /// The text exposition format, for `GET /metrics`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.inner.registry).is_err() {
            tracing::error!("metrics encoding failed");
        }
        out
    }
}
