//! Prometheus metrics shared by the actors and the HTTP layer.
//!
//! Callers do not choose label values: they report what happened (`tool_call`, `child_restart`,
//! `auth_decision`) and this module decides the labels. A server that is not configured, or a tool
//! that is not in its server's live catalogue, is counted under [`UNKNOWN_LABEL`], so a client
//! cannot grow `/metrics` by inventing names; every value is escaped as the text exposition format
//! requires, so a name cannot forge a line either.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

use arc_swap::ArcSwap;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The label value of every name that is not configured (or not in the live catalogue).
pub const UNKNOWN_LABEL: &str = "unknown";

/// Longer names are counted as [`UNKNOWN_LABEL`]: MCP asks tool names to be at most 128
/// characters, and one label value should never be a noticeable part of a scrape.
pub const MAX_LABEL_BYTES: usize = 128;

/// Escapes a label value for the text exposition format (Prometheus 0.0.4 and OpenMetrics 1.0):
/// backslash, double quote and line feed. Nothing else needs escaping inside the quotes.
pub fn escape_label_value(raw: &str, out: &mut impl std::fmt::Write) -> std::fmt::Result {
    for character in raw.chars() {
        match character {
            '\\' => out.write_str("\\\\")?,
            '"' => out.write_str("\\\"")?,
            '\n' => out.write_str("\\n")?,
            other => out.write_char(other)?,
        }
    }
    Ok(())
}

/// A label value, escaped when it is encoded (the library writes label values verbatim).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct LabelValue(String);

impl LabelValue {
    fn unknown() -> Self {
        LabelValue(UNKNOWN_LABEL.to_string())
    }
}

impl EncodeLabelValue for LabelValue {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        escape_label_value(&self.0, encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolCallLabels {
    server: LabelValue,
    tool: LabelValue,
    status: LabelValue,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AiLabels {
    provider: LabelValue,
    model: LabelValue,
    status: LabelValue,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AiTokenLabels {
    provider: LabelValue,
    model: LabelValue,
    kind: LabelValue,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    step: String,
}

/// The time of each step of a governed tool call, made once at start so that the request path
/// observes a histogram without building a label.
#[derive(Clone)]
pub struct ChainSteps {
    /// From the chain's start to the upstream call: resolution, rate limit, RBAC, pins,
    /// PreToolUse hooks, the redaction of the arguments and the audit health check.
    pub admission: Histogram,
    /// The upstream call and the redaction of its answer.
    pub execute: Histogram,
    /// The wait for the row's durable commit (queue, hash chain, transaction, `fsync`).
    pub audit: Histogram,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabels {
    server: LabelValue,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: AuthOutcome,
}

/// Every outcome `castellan_auth_decisions_total` counts: a closed set, so no request can add one.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum AuthOutcome {
    Ok,
    Missing,
    Invalid,
    Expired,
    Unavailable,
    InvalidToken,
    TokenAuthorizationCode,
    TokenClientCredentials,
    TokenRefreshToken,
}

impl AuthOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthOutcome::Ok => "ok",
            AuthOutcome::Missing => "missing",
            AuthOutcome::Invalid => "invalid",
            AuthOutcome::Expired => "expired",
            AuthOutcome::Unavailable => "unavailable",
            AuthOutcome::InvalidToken => "invalid_token",
            AuthOutcome::TokenAuthorizationCode => "token_authorization_code",
            AuthOutcome::TokenClientCredentials => "token_client_credentials",
            AuthOutcome::TokenRefreshToken => "token_refresh_token",
        }
    }

    /// The outcome of a token issued under `grant_type`, if it is a grant Castellan issues.
    pub fn token_issued(grant_type: &str) -> Option<Self> {
        match grant_type {
            "authorization_code" => Some(AuthOutcome::TokenAuthorizationCode),
            "client_credentials" => Some(AuthOutcome::TokenClientCredentials),
            "refresh_token" => Some(AuthOutcome::TokenRefreshToken),
            _ => None,
        }
    }
}

impl EncodeLabelValue for AuthOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// Whether a server's live catalogue has a tool: the registry of ready servers in the daemon, a
/// plain map in tests.
pub trait ToolCatalogue: Send + Sync {
    fn has_tool(&self, server: &str, tool: &str) -> bool;
}

impl ToolCatalogue for crate::registry::Registry {
    fn has_tool(&self, server: &str, tool: &str) -> bool {
        self.get(server).is_some_and(|live| live.tool(tool).is_some())
    }
}

impl ToolCatalogue for std::collections::BTreeMap<String, BTreeSet<String>> {
    fn has_tool(&self, server: &str, tool: &str) -> bool {
        self.get(server).is_some_and(|tools| tools.contains(tool))
    }
}

/// The names that may become label values.
struct KnownNames {
    configured_servers: ArcSwap<BTreeSet<String>>,
    /// AI providers and model names the profile routes (exact route keys, and catalog models a
    /// glob route matches): the only ones that become label values of the AI metrics.
    configured_providers: ArcSwap<BTreeSet<String>>,
    configured_models: ArcSwap<BTreeSet<String>>,
    catalogue: Arc<dyn ToolCatalogue>,
}

impl KnownNames {
    fn server(&self, server: &str) -> LabelValue {
        if server.len() <= MAX_LABEL_BYTES && self.configured_servers.load().contains(server) {
            LabelValue(server.to_string())
        } else {
            LabelValue::unknown()
        }
    }

    fn listed(names: &ArcSwap<BTreeSet<String>>, name: &str) -> LabelValue {
        if name.len() <= MAX_LABEL_BYTES && names.load().contains(name) {
            LabelValue(name.to_string())
        } else {
            LabelValue::unknown()
        }
    }

    /// (server, tool): a tool is named only when its server is configured and has it right now.
    fn server_and_tool(&self, server: &str, tool: &str) -> (LabelValue, LabelValue) {
        let server_label = self.server(server);
        let known_tool =
            server_label.0 != UNKNOWN_LABEL && tool.len() <= MAX_LABEL_BYTES && self.catalogue.has_tool(server, tool);
        let tool_label = if known_tool { LabelValue(tool.to_string()) } else { LabelValue::unknown() };
        (server_label, tool_label)
    }
}

/// A status of `mcp_tool_executions`, or `unknown`.
fn status_label(status: &str) -> LabelValue {
    if castellan_schema::audit::EXECUTION_STATUSES.contains(&status) {
        LabelValue(status.to_string())
    } else {
        LabelValue::unknown()
    }
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]
        .into_iter()
}

/// Finer than [`latency_buckets`] where a step's time lies (tens of microseconds to milliseconds).
fn step_buckets() -> impl Iterator<Item = f64> {
    [
        0.000025, 0.00005, 0.0001, 0.00015, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.01,
        0.025, 0.1, 1.0,
    ]
    .into_iter()
}

fn batch_buckets() -> impl Iterator<Item = f64> {
    [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0].into_iter()
}

struct Inner {
    registry: Registry,
    known: KnownNames,
}

/// Every metric family Castellan exports. Clones share the same series.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
    tool_calls: Family<ToolCallLabels, Counter>,
    tool_call_seconds: Family<ServerLabels, Histogram>,
    child_restarts: Family<ServerLabels, Counter>,
    auth_decisions: Family<OutcomeLabels, Counter>,
    ai_requests: Family<AiLabels, Counter>,
    ai_tokens: Family<AiTokenLabels, Counter>,
    ai_cost: Family<AiLabels, Counter>,
    pub servers_ready: Gauge,
    pub audit_commit_seconds: Histogram,
    pub chain_steps: ChainSteps,
    pub audit_batch_size: Histogram,
    pub audit_failures: Counter,
    pub events_lost: Counter,
    pub servers_memory_bytes: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Metrics that know no tool (every tool is `unknown`): for tests and tools without servers.
    pub fn new() -> Self {
        Self::with_catalogue(Arc::new(std::collections::BTreeMap::<String, BTreeSet<String>>::new()))
    }

    /// Metrics whose tool labels are the tools `catalogue` has at the time of each call.
    pub fn with_catalogue(catalogue: Arc<dyn ToolCatalogue>) -> Self {
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
        let ai_requests = Family::<AiLabels, Counter>::default();
        let ai_tokens = Family::<AiTokenLabels, Counter>::default();
        let ai_cost = Family::<AiLabels, Counter>::default();
        registry.register("ai_requests", "AI requests by provider, model and status", ai_requests.clone());
        registry.register(
            "ai_tokens",
            "AI tokens by provider, model and kind (input, output, cache_read, cache_write)",
            ai_tokens.clone(),
        );
        registry.register(
            "ai_cost_microdollars",
            "Cost of AI requests in microdollars, by provider, model and status",
            ai_cost.clone(),
        );
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
        let steps = Family::<StepLabels, Histogram>::new_with_constructor(|| Histogram::new(step_buckets()));
        let step = |name: &str| steps.get_or_create(&StepLabels { step: name.to_owned() }).clone();
        let chain_steps = ChainSteps { admission: step("admission"), execute: step("execute"), audit: step("audit") };
        registry.register("chain_step_duration_seconds", "Time of each step of a governed tool call", steps);
        registry.register("audit_batch_size", "Rows per audit commit", audit_batch_size.clone());
        registry.register("audit_commit_failures", "Audit batches that failed to commit", audit_failures.clone());
        registry.register("events_lost", "Events a slow subscriber lost", events_lost.clone());
        registry.register("auth_decisions", "Authentication outcomes", auth_decisions.clone());
        registry.register(
            "servers_memory_bytes",
            "Resident memory of every supervised server's process tree",
            servers_memory_bytes.clone(),
        );
        let known = KnownNames {
            configured_servers: ArcSwap::from_pointee(BTreeSet::new()),
            configured_providers: ArcSwap::from_pointee(BTreeSet::new()),
            configured_models: ArcSwap::from_pointee(BTreeSet::new()),
            catalogue,
        };
        Self {
            inner: Arc::new(Inner { registry, known }),
            tool_calls,
            tool_call_seconds,
            child_restarts,
            servers_ready,
            audit_commit_seconds,
            chain_steps,
            audit_batch_size,
            servers_memory_bytes,
            audit_failures,
            events_lost,
            auth_decisions,
            ai_requests,
            ai_tokens,
            ai_cost,
        }
    }

    /// The AI providers and models the profile configures: the only ones named in AI metrics.
    pub fn set_configured_models(&self, providers: BTreeSet<String>, models: BTreeSet<String>) {
        self.inner.known.configured_providers.store(Arc::new(providers));
        self.inner.known.configured_models.store(Arc::new(models));
    }

    /// One finished AI request: counted, its tokens and its cost (when priced) added.
    pub fn ai_request(
        &self,
        provider: &str,
        model: &str,
        status: &str,
        usage: Option<&castellan_ai::cost::Usage>,
        cost: Option<u64>,
    ) {
        let provider = KnownNames::listed(&self.inner.known.configured_providers, provider);
        let model = KnownNames::listed(&self.inner.known.configured_models, model);
        let status = if castellan_schema::ai_requests::AI_REQUEST_STATUSES.contains(&status) {
            LabelValue(status.to_string())
        } else {
            LabelValue::unknown()
        };
        let labels = AiLabels { provider: provider.clone(), model: model.clone(), status };
        self.ai_requests.get_or_create(&labels).inc();
        if let Some(cost) = cost {
            self.ai_cost.get_or_create(&labels).inc_by(cost);
        }
        if let Some(usage) = usage {
            let kinds = [
                ("input", usage.input),
                ("output", usage.output),
                ("cache_read", usage.cache_read),
                ("cache_write", usage.cache_write_5m + usage.cache_write_1h),
            ];
            for (kind, tokens) in kinds.into_iter().filter(|(_, tokens)| *tokens > 0) {
                let labels = AiTokenLabels {
                    provider: provider.clone(),
                    model: model.clone(),
                    kind: LabelValue(kind.to_string()),
                };
                self.ai_tokens.get_or_create(&labels).inc_by(tokens);
            }
        }
    }

    /// The servers the profile declares: the only server names that become label values.
    pub fn set_configured_servers(&self, servers: BTreeSet<String>) {
        self.inner.known.configured_servers.store(Arc::new(servers));
    }

    /// One finished tool call, under the names the audit row carries (whatever the client wrote
    /// when the name did not resolve): counted and timed under known names or `unknown`.
    pub fn tool_call(&self, server: &str, tool: &str, status: &str, seconds: f64) {
        let (server, tool) = self.inner.known.server_and_tool(server, tool);
        self.tool_call_seconds.get_or_create(&ServerLabels { server: server.clone() }).observe(seconds);
        self.tool_calls.get_or_create(&ToolCallLabels { server, tool, status: status_label(status) }).inc();
    }

    /// A supervised server is being restarted.
    pub fn child_restart(&self, server: &str) {
        self.child_restarts.get_or_create(&ServerLabels { server: self.inner.known.server(server) }).inc();
    }

    /// One authentication or token decision.
    pub fn auth_decision(&self, outcome: AuthOutcome) {
        self.auth_decisions.get_or_create(&OutcomeLabels { outcome }).inc();
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn escaped(raw: &str) -> String {
        let mut out = String::new();
        escape_label_value(raw, &mut out).expect("writing to a String");
        out
    }

    #[test]
    fn label_values_escape_backslash_quote_and_newline_only() {
        for (raw, expected) in [
            ("get_customer", "get_customer"),
            (r"a\b", r"a\\b"),
            (r#"say "hi""#, r#"say \"hi\""#),
            ("one\ntwo", r"one\ntwo"),
            ("tab\tand\rcr", "tab\tand\rcr"),
            ("ünïcode", "ünïcode"),
            ("\"\n castellan_servers_ready 999", r#"\"\n castellan_servers_ready 999"#),
        ] {
            assert_eq!(escaped(raw), expected, "escaping of {raw:?}");
        }
    }

    fn metrics_knowing(servers: &[&str], tools: &[(&str, &str)]) -> Metrics {
        let mut catalogue: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (server, tool) in tools {
            catalogue.entry(server.to_string()).or_default().insert(tool.to_string());
        }
        let metrics = Metrics::with_catalogue(Arc::new(catalogue));
        metrics.set_configured_servers(servers.iter().map(|name| name.to_string()).collect());
        metrics
    }

    #[test]
    fn only_configured_servers_and_catalogued_tools_become_labels() {
        let metrics = metrics_knowing(&["customers", "idle"], &[("customers", "get_customer"), ("stray", "x")]);
        for (server, tool, expected) in [
            ("customers", "get_customer", ("customers", "get_customer")),
            ("customers", "no_such_tool", ("customers", UNKNOWN_LABEL)),
            ("customers", "customers__get_customer", ("customers", UNKNOWN_LABEL)),
            ("idle", "get_customer", ("idle", UNKNOWN_LABEL)),
            // In a catalogue but not in the profile (being removed): not a label.
            ("stray", "x", (UNKNOWN_LABEL, UNKNOWN_LABEL)),
            ("forged", "get_customer", (UNKNOWN_LABEL, UNKNOWN_LABEL)),
            ("", "", (UNKNOWN_LABEL, UNKNOWN_LABEL)),
        ] {
            let (server_label, tool_label) = metrics.inner.known.server_and_tool(server, tool);
            assert_eq!((server_label.0.as_str(), tool_label.0.as_str()), expected, "labels of ({server:?}, {tool:?})");
        }
        assert_eq!(status_label("success").0, "success");
        assert_eq!(status_label("made_up").0, UNKNOWN_LABEL, "a status outside the audit's set is unknown");
    }

    #[test]
    fn forged_and_unique_names_neither_forge_lines_nor_grow_the_scrape() {
        let metrics = metrics_knowing(&["customers"], &[("customers", "get_customer")]);
        metrics.tool_call("customers", "get_customer", "success", 0.01);
        let forged = "\"} 1\n castellan_servers_ready 999\n#";
        metrics.tool_call("customers", forged, "rpc_error", 0.01);
        metrics.tool_call(forged, forged, "rpc_error", 0.01);
        metrics.tool_call(forged, forged, forged, 0.01);
        let baseline = metrics.render();
        for index in 0..30 {
            let unique = format!("{index}{}", "x".repeat(100 * 1024));
            metrics.tool_call("customers", &unique, "rpc_error", 0.01);
            metrics.tool_call(&unique, &unique, &unique, 0.01);
        }
        let text = metrics.render();
        assert!(!text.lines().any(|line| line.contains("castellan_servers_ready 999")), "no forged line:\n{text}");
        assert_eq!(text.lines().count(), baseline.lines().count(), "30 unique 100 KB names add no series:\n{text}");
        assert!(text.len() < baseline.len() + 100, "only counts changed: {} then {} bytes", baseline.len(), text.len());
        assert!(
            text.contains(r#"castellan_tool_calls_total{server="customers",tool="unknown",status="rpc_error"} 31"#),
            "unknown tools of a known server are counted together:\n{text}"
        );
        assert!(
            text.contains(r#"castellan_tool_calls_total{server="unknown",tool="unknown",status="rpc_error"} 1"#),
            "unknown servers are counted together:\n{text}"
        );
        assert!(
            text.contains(r#"castellan_tool_calls_total{server="unknown",tool="unknown",status="unknown"} 31"#),
            "unknown statuses are counted together:\n{text}"
        );
    }

    #[test]
    fn an_escaped_value_renders_on_one_line() {
        // An upstream's own tool name is a label (it is configured and catalogued): escaped, still one line.
        let odd = "we\"ird\\name\nnext";
        let metrics = metrics_knowing(&["customers"], &[("customers", odd)]);
        metrics.tool_call("customers", odd, "success", 0.01);
        let text = metrics.render();
        let line = r#"castellan_tool_calls_total{server="customers",tool="we\"ird\\name\nnext",status="success"} 1"#;
        assert!(text.lines().any(|candidate| candidate == line), "the escaped series:\n{text}");
    }

    #[test]
    fn auth_outcomes_are_a_closed_set() {
        let metrics = Metrics::new();
        metrics.auth_decision(AuthOutcome::InvalidToken);
        assert_eq!(AuthOutcome::token_issued("client_credentials"), Some(AuthOutcome::TokenClientCredentials));
        assert_eq!(AuthOutcome::token_issued("password\n"), None, "an unknown grant is no outcome");
        assert!(metrics.render().contains(r#"castellan_auth_decisions_total{outcome="invalid_token"} 1"#));
    }
}
