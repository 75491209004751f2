//! What an extension contributes besides its metadata: routes, tables, jobs, tools, its profile
//! section, roles and static assets. Each type is plain data or a small trait; the daemon puts every
//! contribution behind the same governed chain as its built-in counterpart.

use std::sync::Arc;
use std::time::Duration;

pub use castellan_config::{ProviderKind, Schedule, SectionProblem, Tier};
use futures_util::future::BoxFuture;
use serde_json::Value;

/// Who may call an extension's routes: a caller below `min_tier`, or without every scope in
/// `scopes`, is refused before the handler runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub min_tier: Tier,
    pub scopes: Vec<String>,
}

impl Default for Access {
    /// Signed-in users and above; no scope beyond what the token already needs.
    fn default() -> Access {
        Access { min_tier: Tier::User, scopes: Vec::new() }
    }
}

/// Configures the extension's actix-web scope (mounted at `/ext/{id}`).
pub type ConfigureRoutes = Arc<dyn Fn(&mut actix_web::web::ServiceConfig) + Send + Sync>;

/// An extension's HTTP routes. Every request is authenticated, checked against `access`, charged
/// to the caller's `extension_request` rate limit and recorded in the audit trail (kind `route`)
/// before the answer leaves. Handlers read the caller with `web::ReqData<CallContext>`.
#[derive(Clone)]
pub struct Routes {
    pub access: Access,
    pub configure: ConfigureRoutes,
}

/// The authenticated caller of an extension route or tool, as the chain established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user: String,
    pub tier: Tier,
    pub scopes: Vec<String>,
    pub trace_id: String,
}

/// A table the extension owns, created by one of its migrations. Names must not collide with a
/// built-in table or another extension's; by convention they start with the extension's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    pub name: &'static str,
    pub description: &'static str,
}

/// What a job's run may use.
#[derive(Clone)]
pub struct JobContext {
    /// The daemon's database (SQLite or PostgreSQL), migrations applied.
    pub db: sea_orm::DatabaseConnection,
    /// The extension's profile section, when the profile has one.
    pub config: Option<Value>,
}

/// A scheduled job. The scheduler runs one run at a time per job (across replicas sharing
/// PostgreSQL), cancels a run past its timeout, records every run in `job_runs` and backs off after
/// failures; a failing job never stops the daemon.
pub trait Job: Send + Sync {
    /// Unique within the extension; the scheduler names the job `{extension id}.{name}`.
    fn name(&self) -> &str;
    fn schedule(&self) -> Schedule;
    fn timeout(&self) -> Duration {
        castellan_config::DEFAULT_JOB_TIMEOUT
    }
    /// One run; `Ok` carries a one-line summary for `job_runs.detail`, `Err` the reason it failed.
    fn run<'a>(&'a self, context: &'a JobContext) -> BoxFuture<'a, Result<String, String>>;
}

/// What a route handler or an in-process tool gets: the caller the chain established, the database
/// (for the extension's own tables) and the extension's profile section. Route handlers read it with
/// `web::ReqData<CallContext>`.
#[derive(Clone)]
pub struct CallContext {
    pub caller: Caller,
    pub db: sea_orm::DatabaseConnection,
    pub config: Option<Value>,
}

/// Tools served in-process on `/mcp` as if from an MCP server named [`ToolProvider::server`]: they
/// are listed as `{server}__{tool}`, and every call goes through the same chain as a call to a
/// supervised server (authentication, RBAC rules on the server and tool names, rate limits, hooks,
/// redaction, the audit row).
pub trait ToolProvider: Send + Sync {
    /// The server name its tools appear under (`[a-z0-9-]`, not a name the profile uses).
    fn server(&self) -> &str;
    /// The tool definitions, as MCP `tools/list` entries (`name`, `description`, `inputSchema`).
    fn tools(&self) -> Vec<Value>;
    /// Runs a tool; the value is an MCP `CallToolResult` (`content`, optional `isError`,
    /// `structuredContent`). `Err` is a failure of the provider, reported as a failed call.
    fn call<'a>(
        &'a self,
        context: &'a CallContext,
        tool: &'a str,
        arguments: Value,
    ) -> BoxFuture<'a, Result<Value, String>>;
}

/// A named role an extension defines for its own checks: a minimum tier plus scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub name: &'static str,
    pub access: Access,
}

/// A static file served publicly at `/ext/{id}/assets/{path}` (stylesheets, scripts, images for the
/// extension's pages), with its content type. Assets carry no data; they skip the chain like the
/// daemon's own static files, and are the only thing under `/ext/` that does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

/// A page rendered once, when the daemon starts (and so at no cost per request), from the
/// extension's profile section; served as HTML at `/ext/{id}/pages/{path}` behind the same chain and
/// access as the extension's routes (signed-in users when it has none).
pub trait PagePrerenderer: Send + Sync {
    /// The page's path under `/ext/{id}/pages/` (`status`, `reports/weekly`).
    fn path(&self) -> &str;
    /// The page's HTML. `Err` stops the start with the reason: a page that cannot be rendered is a
    /// configuration problem, found before anything serves.
    fn render(&self, config: Option<&Value>) -> Result<String, String>;
}

/// A provider kind for the AI gateway: an API that speaks one of the three wire formats (Anthropic
/// Messages, OpenAI Chat/Responses, Gemini) but takes its key its own way. Operators name it as a
/// provider's `kind:`; requests to it go through the same model chain as any provider's (RBAC,
/// budgets, hooks, the `ai_requests` row), with the same translation between formats.
pub trait LlmProvider: Send + Sync {
    /// The `kind:` written in `providers` (lowercase letters, digits and `-`; not one of the three).
    fn kind(&self) -> &str;
    /// The wire format its API speaks.
    fn speaks(&self) -> ProviderKind;
    /// The `base_url` when a provider of this kind names none.
    fn default_base_url(&self) -> &str;
    /// The headers that carry the provider's key (`providers.*.api_key`, resolved from the secret
    /// store), instead of the format's own key header. They are marked sensitive and never logged.
    fn credential_headers(&self, api_key: &str) -> Vec<(String, String)>;
}
