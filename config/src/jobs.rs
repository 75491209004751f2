//! The `jobs` section: when the built-in jobs run and what they touch, and the schedule type that
//! extensions' jobs use too.

use std::time::Duration;

use crate::cron::Cron;
use crate::template::Template;

/// How long a run may take when the profile does not say.
pub const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_secs(300);

/// Rows forwarded per request when a sink does not say.
pub const DEFAULT_FORWARD_BATCH: usize = 500;

/// The largest batch a sink may ask for: every sink's intake caps a request at a few MiB.
pub const MAX_FORWARD_BATCH: usize = 10_000;

/// When a job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// `every: 1h`: the period (at least one second), plus up to 10% jitter.
    Every(Duration),
    /// `cron: "0 3 * * *"`: five fields, UTC.
    Cron(Cron),
}

/// What every job entry has besides its own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobTiming {
    pub schedule: Schedule,
    /// `timeout`: a run still going after this is cancelled and recorded `timed_out`.
    pub timeout: Duration,
}

/// The `jobs` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobsSettings {
    pub retention: Option<RetentionJob>,
    pub forward: Option<ForwardJob>,
    pub secrets_pull: Option<SecretsPullJob>,
}

/// `jobs.retention`: rows older than these ages are deleted; a table whose age is not given keeps
/// everything. Expired OAuth codes, tokens, flow states and browser sessions, and never-used dynamic
/// clients (`identity.unused_dynamic_client_ttl`), are pruned by the `identity-purge` job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionJob {
    pub timing: JobTiming,
    pub audit_days: Option<u32>,
    pub ai_requests_days: Option<u32>,
    pub hook_events_days: Option<u32>,
    /// The AI requests and hook events of anonymous callers (Castellan keeps no anonymous user
    /// records; what anonymous callers leave is these rows), usually shorter than the rest.
    pub anonymous_days: Option<u32>,
}

/// `jobs.forward`: where audit, AI and hook rows are streamed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardJob {
    pub timing: JobTiming,
    pub to: Vec<SinkSpec>,
}

/// The wire format of a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SinkKind {
    /// Splunk HTTP Event Collector (`/services/collector/event`).
    SplunkHec,
    /// Datadog logs intake (`/api/v2/logs`).
    Datadog,
    /// OpenTelemetry logs over HTTP/JSON (`/v1/logs`).
    Otlp,
}

impl SinkKind {
    pub const ALL: [SinkKind; 3] = [SinkKind::SplunkHec, SinkKind::Datadog, SinkKind::Otlp];

    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::SplunkHec => "splunk_hec",
            SinkKind::Datadog => "datadog",
            SinkKind::Otlp => "otlp",
        }
    }

    pub fn parse(text: &str) -> Option<SinkKind> {
        SinkKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// The tables a sink may receive.
pub const FORWARD_TABLES: [&str; 3] = ["mcp_tool_executions", "ai_requests", "hook_events"];

/// One entry of `jobs.forward.to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkSpec {
    /// `name`: the cursor's key; defaults to the kind. Unique within the list.
    pub name: String,
    pub kind: SinkKind,
    /// `url`: the intake's base URL (the kind's path is appended).
    pub url: String,
    /// `token`: the HEC token, Datadog API key or OTLP bearer token; may be `${secret:NAME}`.
    pub token: Option<Template>,
    /// `tables`: what this sink receives, of [`FORWARD_TABLES`]; default all.
    pub tables: Vec<String>,
    /// `batch`: rows per request.
    pub batch: usize,
}

/// `jobs.secrets_pull`: a Vault (or OpenBao) KV v2 path read into the secret store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretsPullJob {
    pub timing: JobTiming,
    pub vault: VaultSpec,
}

/// `jobs.secrets_pull.vault`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultSpec {
    pub url: String,
    /// `mount`: the KV v2 engine's mount (default `secret`).
    pub mount: String,
    pub path: String,
    pub namespace: Option<String>,
    pub auth: VaultAuthSpec,
}

/// How Castellan logs in to Vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultAuthSpec {
    /// `token`.
    Token(Template),
    /// `approle: { role_id, secret_id, mount }`.
    AppRole { role_id: Template, secret_id: Template, mount: String },
}
