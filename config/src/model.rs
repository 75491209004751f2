//! The parsed profile: plain, validated types that the daemon and the actors code against.
//!
//! Every value here has passed validation, so consumers never re-check names, URLs or durations.
//! Everything is `PartialEq` because the reconciler compares specs to decide what to restart.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::ai::{BudgetSpec, DEFAULT_TOKENS_PER_MINUTE, ModelRoute, ProviderSpec};
use crate::names::{NamePattern, ServerName};
use crate::template::Template;
use crate::tier::Tier;

/// Where the daemon listens when the profile does not say.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The largest request body accepted by default: 4 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// How long one tool call may take by default.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long shutdown waits for in-flight requests by default.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(15);
/// How long a request body may take to arrive by default: with the second actix lingers before
/// closing, a stalled client is gone within 30 s.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(25);
/// How many MCP sessions one principal may hold by default.
pub const DEFAULT_MAX_SESSIONS_PER_PRINCIPAL: usize = 100;
/// The database used when the profile names none; `${CASTELLAN_DATA_DIR}` is expanded like any value.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://${CASTELLAN_DATA_DIR:-castellan-data}/castellan.db";

/// A whole profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// `server`: how the daemon serves HTTP.
    pub server: ServerSettings,
    /// `database`: where state and the audit trail live.
    pub database: DatabaseSettings,
    /// `mcp_servers`: the upstream MCP servers, by name.
    pub mcp_servers: BTreeMap<ServerName, McpServerSpec>,
    /// `rbac`: who may call which tool.
    pub rbac: RbacSettings,
    /// `identity`: the built-in authorization server and federated issuers.
    pub identity: IdentitySettings,
    /// `secrets`: how `${secret:NAME}` references are resolved.
    pub secrets: SecretsSettings,
    /// `rate_limits`: requests per second per principal and class.
    pub rate_limits: RateLimitSettings,
    /// `hooks`: handlers per lifecycle event, run in order.
    pub hooks: HooksSettings,
    /// `metrics`: who may read `GET /metrics`.
    pub metrics: MetricsSettings,
    /// `audit`: how much of a call the audit trail stores.
    pub audit: AuditSettings,
    /// `providers`: the AI providers, by name (`[a-z0-9-]{1,48}`).
    pub providers: BTreeMap<String, ProviderSpec>,
    /// `models`: model routes in file order, keyed by the model names (or globs) clients ask for;
    /// the first matching key wins ([`Profile::route`]).
    pub models: Vec<(String, ModelRoute)>,
    /// `pricing`: prices by upstream model name, overriding the built-in catalog.
    pub pricing: BTreeMap<String, castellan_ai::cost::Prices>,
    /// `budgets`: spending limits, each applying to the requests its selectors match.
    pub budgets: Vec<BudgetSpec>,
    /// `jobs`: the built-in scheduled jobs.
    pub jobs: crate::jobs::JobsSettings,
    /// `skills`: folders to publish and the keys signatures must come from.
    pub skills: crate::skills::SkillsSettings,
    /// The sections of extensions built into this binary, by their prefix, as JSON.
    pub extensions: BTreeMap<String, serde_json::Value>,
}

impl McpServerSpec {
    /// Every template of the entry: args, env, url, headers, and its process's.
    fn templates(&self) -> Vec<&Template> {
        let mut templates: Vec<&Template> = Vec::new();
        match &self.transport {
            Transport::Stdio { args, env, .. } => templates.extend(args.iter().chain(env.values())),
            Transport::Http { url, headers, process, .. } => {
                templates.push(url);
                templates.extend(headers.values());
                if let Some(process) = process {
                    templates.extend(process.args.iter().chain(process.env.values()));
                }
            }
        }
        templates
    }

    /// The secrets this server's definition references: a change of any of them restarts it.
    pub fn secret_names(&self) -> Vec<&str> {
        self.templates().into_iter().flat_map(Template::secret_names).collect()
    }
}

impl Profile {
    /// Every `${secret:NAME}` the profile references (servers, command hooks, issuers' client
    /// secrets, providers' keys and headers), sorted, each once: what strict `secrets.validation`
    /// must find set.
    pub fn referenced_secrets(&self) -> Vec<&str> {
        let mut templates: Vec<&Template> = Vec::new();
        for spec in self.mcp_servers.values() {
            templates.extend(spec.templates());
        }
        for handler in self.hooks.events.values().flatten() {
            if let HookHandler::Command { process, .. } = handler {
                templates.extend(process.args.iter().chain(process.env.values()));
            }
        }
        templates.extend(self.identity.issuers.iter().filter_map(|issuer| issuer.client_secret.as_ref()));
        for provider in self.providers.values() {
            templates.push(&provider.api_key);
            templates.extend(provider.headers.values());
        }
        if let Some(forward) = &self.jobs.forward {
            templates.extend(forward.to.iter().filter_map(|sink| sink.token.as_ref()));
        }
        if let Some(pull) = &self.jobs.secrets_pull {
            match &pull.vault.auth {
                crate::jobs::VaultAuthSpec::Token(token) => templates.push(token),
                crate::jobs::VaultAuthSpec::AppRole { role_id, secret_id, .. } => {
                    templates.extend([role_id, secret_id]);
                }
            }
        }
        let mut names: Vec<&str> = templates.into_iter().flat_map(Template::secret_names).collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

/// The `metrics` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetricsSettings {
    /// `token`: when set, `GET /metrics` requires `Authorization: Bearer <token>` (else 401).
    /// Absent: `/metrics` is open, which is meant for a loopback listener.
    pub token: Option<MetricsToken>,
}

/// The shortest `metrics.token` accepted: 16 characters (e.g. `openssl rand -hex 16` gives 32).
pub const MIN_METRICS_TOKEN_LEN: usize = 16;

/// A bearer token for `/metrics`. Its `Debug` does not show it, so a logged profile keeps it.
#[derive(Clone, PartialEq, Eq)]
pub struct MetricsToken(String);

impl MetricsToken {
    /// A token of at least [`MIN_METRICS_TOKEN_LEN`] visible ASCII characters (what an HTTP header
    /// can carry without quoting), else the reason it is refused.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() < MIN_METRICS_TOKEN_LEN {
            return Err(format!(
                "must be at least {MIN_METRICS_TOKEN_LEN} characters, e.g. from `openssl rand -hex 16`"
            ));
        }
        if !text.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err("may hold only visible ASCII characters (no spaces)".to_string());
        }
        Ok(MetricsToken(text.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(..)")
    }
}

/// The default of `audit.max_field_bytes`: 64 KiB.
pub const DEFAULT_AUDIT_MAX_FIELD_BYTES: usize = 64 * 1024;
/// The smallest `audit.max_field_bytes`: the truncation marker alone takes about 110 bytes.
pub const MIN_AUDIT_MAX_FIELD_BYTES: usize = 1024;

/// The `audit` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// `max_field_bytes`: the most bytes stored of each text field of an audit row (arguments,
    /// result, error message, server and tool as written); a longer value is cut and ends with a
    /// marker carrying its full size and SHA-256. Default 64 KiB.
    pub max_field_bytes: usize,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings { max_field_bytes: DEFAULT_AUDIT_MAX_FIELD_BYTES }
    }
}

/// The ten lifecycle events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HookEvent {
    PreToolUse,
    PostToolUse,
    PostToolUseFailure,
    UserPromptSubmit,
    Notification,
    Stop,
    SubagentStart,
    SubagentStop,
    SessionStart,
    SessionEnd,
}

impl HookEvent {
    pub const ALL: [HookEvent; 10] = [
        HookEvent::PreToolUse,
        HookEvent::PostToolUse,
        HookEvent::PostToolUseFailure,
        HookEvent::UserPromptSubmit,
        HookEvent::Notification,
        HookEvent::Stop,
        HookEvent::SubagentStart,
        HookEvent::SubagentStop,
        HookEvent::SessionStart,
        HookEvent::SessionEnd,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HookEvent::PreToolUse => "PreToolUse",
            HookEvent::PostToolUse => "PostToolUse",
            HookEvent::PostToolUseFailure => "PostToolUseFailure",
            HookEvent::UserPromptSubmit => "UserPromptSubmit",
            HookEvent::Notification => "Notification",
            HookEvent::Stop => "Stop",
            HookEvent::SubagentStart => "SubagentStart",
            HookEvent::SubagentStop => "SubagentStop",
            HookEvent::SessionStart => "SessionStart",
            HookEvent::SessionEnd => "SessionEnd",
        }
    }
}

/// The `hooks` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HooksSettings {
    pub events: BTreeMap<HookEvent, Vec<HookHandler>>,
}

/// One handler of the `hooks` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookHandler {
    /// `{ builtin: deny_tools, tools: [PATTERN...] }`: deny calls of matching tools (`server__tool`
    /// patterns match the server and the tool; a bare pattern matches the tool of any server).
    DenyTools { tools: Vec<String> },
    /// `{ builtin: deny_arguments, pattern: REGEX }`: deny calls whose arguments (as JSON text) match.
    DenyArguments { pattern: String },
    /// `{ builtin: require_tier, tier: TIER, tools: [PATTERN...] }`: deny matching tools below `tier`.
    RequireTier { tier: Tier, tools: Vec<String> },
    /// `{ builtin: block_credentials }`: deny calls whose arguments carry something shaped like a
    /// credential (private keys, cloud and forge tokens, Castellan's own keys, bearer headers).
    BlockCredentials,
    /// `{ http: URL, timeout: DURATION, on_failure: allow|deny }`: POSTs the event as JSON; the answer
    /// may allow, deny or rewrite the arguments. A timeout, an error status or an unreadable answer
    /// takes `on_failure` (default deny).
    Http { url: String, timeout: Duration, deny_on_failure: bool },
    /// `{ command: PROGRAM, args: [...], env: {...}, cwd: DIR, timeout: DURATION, on_failure: allow|deny }`:
    /// runs the program with the event as JSON on stdin and an environment of only `PATH` and `env`
    /// (which may hold `${secret:NAME}`). Exit 0 allows (stdout may carry an HTTP hook's answer), exit 2
    /// denies with stderr as the reason; any other exit, a timeout or unreadable stdout takes
    /// `on_failure` (default deny).
    Command { process: ChildProcess, timeout: Duration, deny_on_failure: bool },
}

impl HookEvent {
    /// Whether the built-in rules apply to this event: the tool events (they look at the tool's
    /// name, arguments and, after the call, its response) and UserPromptSubmit (the prompt). On the
    /// others (Stop, Notification, ...) a rule has nothing to look at, and a denial on Stop would
    /// keep the agent going: only command and HTTP hooks, which decide explicitly, run there.
    pub fn takes_builtin_rules(self) -> bool {
        matches!(
            self,
            HookEvent::PreToolUse
                | HookEvent::PostToolUse
                | HookEvent::PostToolUseFailure
                | HookEvent::UserPromptSubmit
        )
    }

    /// Whether a handler's denial can stop what the event announces (the tool call, the prompt, the
    /// agent stopping). On the other events a denial is recorded and reported, nothing more.
    pub fn can_block(self) -> bool {
        matches!(
            self,
            HookEvent::PreToolUse
                | HookEvent::PostToolUse
                | HookEvent::PostToolUseFailure
                | HookEvent::UserPromptSubmit
                | HookEvent::Stop
                | HookEvent::SubagentStop
        )
    }
}

/// The burst of `mcp_session` in seconds of its rate, whatever `burst_multiplier` says: a user
/// may open 100 sessions back to back (its whole default session cap), anonymous callers 50, an
/// admin 1000. A class's usual burst (3 s) would refuse a client that reconnects a few times in a row.
pub const MCP_SESSION_BURST_SECONDS: f64 = 20.0;

/// The classes of requests that have their own buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RateClass {
    McpToolCall,
    /// MCP `initialize`: opening a session. Its burst is [`MCP_SESSION_BURST_SECONDS`] of its rate.
    McpSession,
    Oauth,
    AiRequest,
    Hooks,
}

impl RateClass {
    pub const ALL: [RateClass; 5] =
        [RateClass::McpToolCall, RateClass::McpSession, RateClass::Oauth, RateClass::AiRequest, RateClass::Hooks];

    /// The key under `rate_limits.per_second`.
    pub fn as_str(self) -> &'static str {
        match self {
            RateClass::McpToolCall => "mcp_tool_call",
            RateClass::McpSession => "mcp_session",
            RateClass::Oauth => "oauth",
            RateClass::AiRequest => "ai_request",
            RateClass::Hooks => "hooks",
        }
    }
}

/// The `rate_limits` section. Limits always apply; these are the defaults of the contract.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitSettings {
    /// `burst_multiplier`: burst = rate × this. Default 3.
    pub burst_multiplier: f64,
    /// `tier_multipliers`: a principal's rate is the class's base rate times its tier's multiplier.
    pub tier_multipliers: BTreeMap<Tier, f64>,
    /// `per_second`: the base rate of each class.
    pub per_second: BTreeMap<RateClass, f64>,
    /// `servers`: a base rate for the `tools/call`s of one server, per principal, applied on top of
    /// `mcp_tool_call`. Empty by default.
    pub servers: BTreeMap<ServerName, f64>,
    /// `tools`: a base rate for one tool, per principal, on top of its server's and the class's.
    /// Keyed by the server and the tool as a client names it on the server's own endpoint (the part
    /// after `__` on `/mcp`). Empty by default.
    pub tools: BTreeMap<(ServerName, String), f64>,
    /// `tokens_per_minute`: the base number of tokens per minute a principal's AI requests may use
    /// (input estimate plus the most output asked for, reserved up front and settled with the real
    /// usage), scaled by the tier multiplier. Default 1,000,000; greater than zero.
    pub tokens_per_minute: u64,
}

impl Eq for RateLimitSettings {}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            burst_multiplier: 3.0,
            tier_multipliers: BTreeMap::from([
                (Tier::Admin, 10.0),
                (Tier::User, 1.0),
                (Tier::Service, 5.0),
                (Tier::A2a, 5.0),
                (Tier::Mcp, 5.0),
                (Tier::Anonymous, 0.5),
            ]),
            per_second: BTreeMap::from([
                (RateClass::McpToolCall, 20.0),
                (RateClass::McpSession, 5.0),
                (RateClass::Oauth, 5.0),
                (RateClass::AiRequest, 5.0),
                (RateClass::Hooks, 50.0),
            ]),
            servers: BTreeMap::new(),
            tools: BTreeMap::new(),
            tokens_per_minute: DEFAULT_TOKENS_PER_MINUTE,
        }
    }
}

impl RateLimitSettings {
    /// The rate (per second) and burst of `class` for `tier`.
    pub fn quota(&self, class: RateClass, tier: Tier) -> (f64, u32) {
        let base_rate = self.per_second.get(&class).copied().unwrap_or(1.0);
        match class {
            RateClass::McpSession => self.scaled_with_burst(base_rate, tier, MCP_SESSION_BURST_SECONDS),
            _ => self.scaled(base_rate, tier),
        }
    }

    /// The rate (per second) and burst for `tier` of a limit whose base rate is `base_rate`: the
    /// base times the tier's multiplier, the burst that times `burst_multiplier` (at least 1).
    /// Classes, `servers` and `tools` all scale this way.
    pub fn scaled(&self, base_rate: f64, tier: Tier) -> (f64, u32) {
        self.scaled_with_burst(base_rate, tier, self.burst_multiplier)
    }

    /// The tokens per minute of `tier`: `tokens_per_minute` times the tier's multiplier, at least 1.
    pub fn tokens_per_minute_for(&self, tier: Tier) -> u64 {
        let scaled = self.tokens_per_minute as f64 * self.tier_multipliers.get(&tier).copied().unwrap_or(1.0);
        scaled.floor().clamp(1.0, u64::MAX as f64) as u64
    }

    fn scaled_with_burst(&self, base_rate: f64, tier: Tier, burst_seconds: f64) -> (f64, u32) {
        let rate = base_rate * self.tier_multipliers.get(&tier).copied().unwrap_or(1.0);
        let burst = (rate * burst_seconds).floor().clamp(1.0, f64::from(u32::MAX));
        (rate, burst as u32)
    }
}

/// The `secrets` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecretsSettings {
    /// `validation`: what a reference to a secret that is not set does.
    pub validation: SecretValidation,
    /// `master_key_file`: where the master key lives when `CASTELLAN_MASTER_KEY` is not set.
    /// Default: `master.key` in `CASTELLAN_DATA_DIR`, else next to a SQLite database.
    pub master_key_file: Option<PathBuf>,
}

/// `secrets.validation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecretValidation {
    /// A server that references a missing secret is not started, with an error naming the secret.
    #[default]
    Strict,
    /// The server starts with the reference replaced by an empty string, and a warning is logged.
    Warn,
    /// As `warn`, without the warning.
    Skip,
}

/// The public URL used when the profile gives none: `http://` + `listen`, except that a loopback IP
/// becomes `localhost`, because browsers refuse passkeys on an IP-address origin.
pub fn derived_public_url(listen: &str) -> String {
    match listen.parse::<std::net::SocketAddr>() {
        Ok(address) if address.ip().is_loopback() => format!("http://localhost:{}", address.port()),
        _ => format!("http://{listen}"),
    }
}

/// The `server` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// `listen`: the socket address to bind, e.g. `127.0.0.1:8080` (an IP, not a host name).
    pub listen: String,
    /// `public_url`: the URL clients use; issuer, resource identifier and passkey origin.
    /// Defaults to [`derived_public_url`] of `listen`.
    pub public_url: String,
    /// `max_body_bytes`: the largest request body accepted.
    pub max_body_bytes: usize,
    /// `call_timeout`: the default limit for one tool call; a server may set its own.
    pub call_timeout: Duration,
    /// `drain_timeout`: how long shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
    /// `allowed_origins`: `Origin` values accepted beyond `public_url`'s origin and loopback,
    /// lowercased, each `scheme://host[:port]`.
    pub allowed_origins: Vec<String>,
    /// `allow_anonymous`: a request without any credential is served as the `anonymous` tier
    /// (level 10) instead of being answered 401; RBAC then decides what it may do. A credential
    /// that is present but bad is still refused. Default false.
    pub allow_anonymous: bool,
    /// `health_interval`: how often every server is pinged; three unanswered pings in a row
    /// restart it. Read at start.
    pub health_interval: Duration,
    /// `trusted_proxies`: addresses (CIDR) whose `X-Forwarded-For` is believed; from anyone else the
    /// header is ignored and the peer address is the client.
    pub trusted_proxies: Vec<String>,
    /// `tool_changes`: what happens when a server changes a tool's definition after it was pinned.
    pub tool_changes: ToolChanges,
    /// `body_read_timeout`: how long a request body may take to arrive, from the moment the handler
    /// starts reading it; a slower client is answered 408 and its connection closed.
    pub body_read_timeout: Duration,
    /// `max_sessions_per_principal`: the most MCP sessions one subject may hold; a new one past it
    /// ends that subject's least recently used session. Read at start.
    pub max_sessions_per_principal: usize,
}

/// `server.tool_changes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ToolChanges {
    /// An event and a log line; the changed tool stays available.
    #[default]
    Warn,
    /// The changed tool is hidden and refused until `castellan tools approve SERVER TOOL`.
    Block,
}

/// The `database` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSettings {
    /// `url`: `sqlite:...` or `postgres://...` (`postgresql://` is accepted too).
    pub url: String,
}

/// One entry of `mcp_servers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpServerSpec {
    /// How Castellan talks to the server, and whether it runs a child process for it.
    pub transport: Transport,
    /// `restart`: backoff and crash-loop detection for the child or the connection.
    pub restart: RestartPolicy,
    /// `call_timeout`: overrides `server.call_timeout` for this server.
    pub call_timeout: Option<Duration>,
    /// `enabled`: a disabled server is kept in the profile but not started or offered.
    pub enabled: bool,
}

/// How a server is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// `command` without `url`: a child process speaking MCP on stdin/stdout.
    Stdio {
        /// `command`: the program; the daemon maps `castellan` to its own executable.
        command: String,
        /// `args`: arguments, which may hold secrets.
        args: Vec<Template>,
        /// `env`: the child's entire environment; nothing else is inherited.
        env: BTreeMap<String, Template>,
        /// `cwd`: the working directory.
        cwd: Option<PathBuf>,
    },
    /// `url`: streamable HTTP. With `command` too, Castellan runs the child that serves it.
    Http {
        /// `url`: the MCP endpoint (http or https).
        url: Template,
        /// `headers`: sent with every request, e.g. `Authorization`.
        headers: BTreeMap<String, Template>,
        /// The child process serving `url`, when `command` is given.
        process: Option<ChildProcess>,
        /// `port`: whether the port is fixed in `url` or allocated at spawn.
        port: PortSetting,
    },
}

/// A child process that serves MCP over HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildProcess {
    /// `command`: the program.
    pub command: String,
    /// `args`: arguments; may hold secrets and, with `port: auto`, `${PORT}`.
    pub args: Vec<Template>,
    /// `env`: the child's entire environment.
    pub env: BTreeMap<String, Template>,
    /// `cwd`: the working directory.
    pub cwd: Option<PathBuf>,
}

/// Where the port of an HTTP child comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PortSetting {
    /// The port is whatever `url` says.
    #[default]
    Fixed,
    /// `port: auto`: allocated at spawn and substituted for `${PORT}`.
    Auto,
}

/// The `restart` block of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartPolicy {
    /// `backoff_initial`: the first delay before a restart.
    pub backoff_initial: Duration,
    /// `backoff_max`: the ceiling the delay doubles up to.
    pub backoff_max: Duration,
    /// `crash_loop_threshold`: this many crashes within `crash_loop_window` is a crash loop.
    pub crash_loop_threshold: u32,
    /// `crash_loop_window`: the window crashes are counted in.
    pub crash_loop_window: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            crash_loop_threshold: 5,
            crash_loop_window: Duration::from_secs(60),
        }
    }
}

/// The `rbac` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RbacSettings {
    /// `default`: the effect when no rule matches.
    pub default: Effect,
    /// `rules`: any matching deny wins; else any matching allow; else `default`.
    pub rules: Vec<RbacRule>,
}

impl Default for RbacSettings {
    fn default() -> Self {
        RbacSettings { default: Effect::Deny, rules: Vec::new() }
    }
}

/// One RBAC rule. A rule matches a tool call when the caller's tier is within `[min_tier, max_tier]`
/// and the server and tool names each match one of `servers` and `tools`; it matches a model request
/// when the tier fits and the requested model matches one of `models`. A rule is for tool calls or for
/// model requests, never both: the one kind has empty patterns of the other, which match nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RbacRule {
    /// `name`, or `rbac.rules[N]` when not given; denials cite it.
    pub name: String,
    /// `effect`: allow or deny.
    pub effect: Effect,
    /// `min_tier`: the lowest tier the rule applies to (inclusive).
    pub min_tier: Option<Tier>,
    /// `max_tier`: the highest tier the rule applies to (inclusive).
    pub max_tier: Option<Tier>,
    /// `servers`: server-name patterns; default `["*"]`, empty for a rule that names `models`.
    pub servers: Vec<NamePattern>,
    /// `tools`: tool-name patterns (unprefixed upstream names); default `["*"]`, empty for a rule
    /// that names `models`.
    pub tools: Vec<NamePattern>,
    /// `models`: globs over the model name a client asks for ([`crate::glob_matches`]); empty (the
    /// default) for a tool rule, which then matches no model request.
    pub models: Vec<String>,
    /// `skills`: globs over skill names ([`crate::glob_matches`]); empty (the default) for a tool or
    /// model rule, which then matches no skill.
    pub skills: Vec<String>,
}

/// What a rule or the default does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Allow,
    Deny,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        }
    }
}

impl std::fmt::Display for Effect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `identity` section: lifetimes of what the authorization server issues, client registration, and
/// the external issuers whose tokens are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentitySettings {
    /// `access_token_ttl`: lifetime of an access token (JWT). Default 10 minutes.
    pub access_token_ttl: Duration,
    /// `refresh_token_ttl`: how long an unused refresh token stays valid. Default 14 days.
    pub refresh_token_ttl: Duration,
    /// `grant_ttl`: absolute lifetime of a grant (a refresh-token family), however often it is
    /// refreshed. Default 90 days.
    pub grant_ttl: Duration,
    /// `session_ttl`: lifetime of a browser sign-in. Default 12 hours.
    pub session_ttl: Duration,
    /// `signing_key_rotation`: age at which the token signing key is replaced. Default 30 days.
    pub signing_key_rotation: Duration,
    /// `dynamic_registration`: RFC 7591 registration at `/oauth/register`. Default enabled.
    pub dynamic_registration: bool,
    /// `max_dynamic_clients`: registrations are refused beyond this many dynamic clients.
    pub max_dynamic_clients: u64,
    /// `unused_dynamic_client_ttl`: a dynamic client that never redeemed a code within this long of
    /// its registration no longer counts toward `max_dynamic_clients` and is deleted. Default 24 hours.
    pub unused_dynamic_client_ttl: Duration,
    /// `client_metadata_documents`: accept `https://` client ids (Client ID Metadata Documents).
    pub client_metadata_documents: bool,
    /// `allow_private_addresses`: let client metadata document fetches reach loopback, private and
    /// link-local addresses. For tests and closed networks only. Default false.
    pub allow_private_addresses: bool,
    /// `extra_ca_file`: a PEM file of certificate authorities trusted for outbound fetches in
    /// addition to the system's (client metadata documents, federated issuers).
    pub extra_ca_file: Option<PathBuf>,
    /// `key_refetch_interval`: the least time between two key-set fetches of one federated issuer
    /// caused by tokens with an unknown `kid` (and between retries of a failed discovery). Default 30 s.
    pub key_refetch_interval: Duration,
    /// `issuers`: external OpenID Connect issuers whose tokens are accepted.
    pub issuers: Vec<ExternalIssuer>,
}

pub const DEFAULT_ACCESS_TOKEN_TTL: Duration = Duration::from_secs(600);
pub const DEFAULT_REFRESH_TOKEN_TTL: Duration = Duration::from_secs(14 * 86_400);
pub const DEFAULT_GRANT_TTL: Duration = Duration::from_secs(90 * 86_400);
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(12 * 3_600);
pub const DEFAULT_SIGNING_KEY_ROTATION: Duration = Duration::from_secs(30 * 86_400);
pub const DEFAULT_MAX_DYNAMIC_CLIENTS: u64 = 1_000;
pub const DEFAULT_UNUSED_DYNAMIC_CLIENT_TTL: Duration = Duration::from_secs(86_400);
pub const DEFAULT_KEY_REFETCH_INTERVAL: Duration = Duration::from_secs(30);

impl Default for IdentitySettings {
    fn default() -> Self {
        IdentitySettings {
            access_token_ttl: DEFAULT_ACCESS_TOKEN_TTL,
            refresh_token_ttl: DEFAULT_REFRESH_TOKEN_TTL,
            grant_ttl: DEFAULT_GRANT_TTL,
            session_ttl: DEFAULT_SESSION_TTL,
            signing_key_rotation: DEFAULT_SIGNING_KEY_ROTATION,
            dynamic_registration: true,
            max_dynamic_clients: DEFAULT_MAX_DYNAMIC_CLIENTS,
            unused_dynamic_client_ttl: DEFAULT_UNUSED_DYNAMIC_CLIENT_TTL,
            client_metadata_documents: true,
            allow_private_addresses: false,
            extra_ca_file: None,
            key_refetch_interval: DEFAULT_KEY_REFETCH_INTERVAL,
            issuers: Vec::new(),
        }
    }
}

/// One entry of `identity.issuers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIssuer {
    /// `issuer`: the issuer identifier, compared byte for byte with `iss` and the discovery document.
    pub issuer: String,
    /// `audience`: the `aud` value its access tokens must carry for Castellan.
    pub audience: String,
    /// `algorithms`: the signature algorithms accepted from it. Default `[RS256]`.
    pub algorithms: Vec<String>,
    /// `subject_claim`: the claim naming the user. Default `sub`.
    pub subject_claim: String,
    /// `tier_claim`: a claim (string or list of strings) mapped through `tier_map`.
    pub tier_claim: Option<String>,
    /// `tier_map`: claim value to tier; the highest matching tier wins.
    pub tier_map: BTreeMap<String, Tier>,
    /// `default_tier`: the tier when nothing in `tier_map` matches; absent means such tokens are refused.
    pub default_tier: Option<Tier>,
    /// `scope_claim`: the claim holding space-separated scopes. Default `scope`.
    pub scope_claim: String,
    /// `client_id`: Castellan's client id at this issuer, for browser sign-in through it.
    pub client_id: Option<String>,
    /// `client_secret`: its secret, if the issuer made Castellan a confidential client.
    pub client_secret: Option<Template>,
    /// `display_name`: the label on the sign-in page. Default: the issuer's host.
    pub display_name: String,
}

/// An address or CIDR block: `(network, prefix length)`.
pub fn parse_cidr(text: &str) -> Option<(std::net::IpAddr, u8)> {
    let (address, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (text, None),
    };
    let address: std::net::IpAddr = address.parse().ok()?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(prefix) => prefix.parse::<u8>().ok().filter(|prefix| *prefix <= max)?,
        None => max,
    };
    Some((address, prefix))
}
