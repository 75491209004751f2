//! The parsed profile: plain, validated types that the daemon and the actors code against.
//!
//! Every value here has passed validation, so consumers never re-check names, URLs or durations.
//! Everything is `PartialEq` because the reconciler compares specs to decide what to restart.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

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
}

/// The `server` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// `listen`: the socket address to bind, e.g. `127.0.0.1:8080` (an IP, not a host name).
    pub listen: String,
    /// `public_url`: the URL clients use; issuer, resource identifier and passkey origin.
    /// Defaults to `http://` + `listen`.
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

/// One RBAC rule. A rule matches a call when the caller's tier is within `[min_tier, max_tier]` and the
/// server and tool names each match one of the patterns.
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
    /// `servers`: server-name patterns; default `["*"]`.
    pub servers: Vec<NamePattern>,
    /// `tools`: tool-name patterns (unprefixed upstream names); default `["*"]`.
    pub tools: Vec<NamePattern>,
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
