//! Castellan's profile: the YAML file that says what to serve, which MCP servers and AI providers to
//! use, and who may call what. This crate parses it into plain validated types and explains every problem as
//! `FILE:LINE:COL: key.path: message`.
//!
//! Architecture invariants:
//! - Parsing is pure: the environment comes in as a function, nothing here reads the clock, the network
//!   or a secret store, and a parsed profile never holds a secret value (only `${secret:NAME}`).
//! - Untrusted text never panics the parser; sizes and depths are bounded.
//! - What the profile cannot enforce it refuses: unsupported sections are errors, not ignored.

mod ai;
mod cron;
mod decode;
mod extensions;
mod jobs;
mod model;
mod names;
mod positions;
mod problem;
mod skills;
mod template;
mod tier;

use std::path::Path;

pub use ai::{
    BUDGET_NAME_MAX_LEN, BudgetPer, BudgetPeriod, BudgetSpec, DEFAULT_PROVIDER_CONNECT_TIMEOUT,
    DEFAULT_PROVIDER_TIMEOUT, DEFAULT_TOKENS_PER_MINUTE, ModelRoute, ProviderKind, ProviderSpec, next_period_start,
    period_start,
};
pub use cron::Cron;
pub use extensions::{
    ExtensionProviderKind, ExtensionSection, SectionProblem, SectionValidator, install_extension_provider_kinds,
    install_extension_sections,
};
pub use jobs::{
    DEFAULT_FORWARD_BATCH, DEFAULT_JOB_TIMEOUT, FORWARD_TABLES, ForwardJob, JobTiming, JobsSettings, MAX_FORWARD_BATCH,
    RetentionJob, Schedule, SecretsPullJob, SinkKind, SinkSpec, VaultAuthSpec, VaultSpec,
};
pub use model::{
    AuditSettings, ChildProcess, DEFAULT_AUDIT_MAX_FIELD_BYTES, DEFAULT_BODY_READ_TIMEOUT, DEFAULT_CALL_TIMEOUT,
    DEFAULT_DATABASE_URL, DEFAULT_DRAIN_TIMEOUT, DEFAULT_LISTEN, DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_SESSIONS_PER_PRINCIPAL, DatabaseSettings, Effect, ExternalIssuer, HookEvent, HookHandler,
    HooksSettings, IdentitySettings, MIN_AUDIT_MAX_FIELD_BYTES, MIN_METRICS_TOKEN_LEN, McpServerSpec, MetricsSettings,
    MetricsToken, PortSetting, Profile, RateClass, RateLimitSettings, RbacRule, RbacSettings, RestartPolicy,
    SecretValidation, SecretsSettings, ServerSettings, ToolChanges, Transport, derived_public_url, parse_cidr,
};
pub use names::{NamePattern, SERVER_NAME_MAX_LEN, ServerName, glob_matches, is_model_glob};
pub use problem::{DOCUMENT_PATH, Problem};
pub use skills::{SIGNING_KEY_PREFIX, SkillsSettings};
pub use template::{RenderError, Template, TemplatePart, is_secret_name};
pub use tier::{Tier, UnknownTier};

use decode::{Decoder, Node, decode_profile};
use positions::{Mark, index_positions};

/// The top-level sections this build reads.
pub const BUILT_IN_SECTIONS: &[&str] = &[
    "server",
    "database",
    "mcp_servers",
    "rbac",
    "identity",
    "secrets",
    "rate_limits",
    "hooks",
    "metrics",
    "audit",
    "providers",
    "models",
    "pricing",
    "budgets",
    "jobs",
    "skills",
];

/// Sections the contract defines for parts still to come: no extension may claim them either.
pub const RESERVED_SECTIONS: &[&str] = &["agents"];

/// The profile `castellan serve` runs when given none.
pub const DEFAULT_PROFILE_YAML: &str = include_str!("default.yaml");

/// The largest profile accepted. Real profiles are kilobytes; the bound keeps a wrong file (a log, a
/// database) from costing seconds of parsing.
pub const MAX_PROFILE_BYTES: usize = 16 * 1024 * 1024;

/// Parses and validates a profile. `file_label` is what problems name as the file; `env` supplies
/// `${VAR}` values. On failure every problem found is returned, sorted by position.
pub fn parse_profile(
    text: &str,
    file_label: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Profile, Vec<Problem>> {
    let document_problem = |mark: Mark, message: String| {
        vec![Problem {
            file: file_label.to_string(),
            line: mark.line,
            col: mark.col,
            path: DOCUMENT_PATH.to_string(),
            message,
        }]
    };
    if text.len() > MAX_PROFILE_BYTES {
        return Err(document_problem(
            Mark::START,
            format!("the profile is larger than {} MiB; is this the right file?", MAX_PROFILE_BYTES >> 20),
        ));
    }
    // The event index runs first: it refuses documents nested deep enough to exhaust the stack of a
    // recursive decoder, before serde_yaml_ng builds a value from them.
    let positions = match index_positions(text) {
        Ok(positions) => positions,
        Err(refusal) => return Err(document_problem(refusal.mark, refusal.message)),
    };
    let mut value: serde_yaml_ng::Value = match serde_yaml_ng::from_str(text) {
        Ok(value) => value,
        Err(error) => {
            let (mut mark, message) = yaml_error(&error);
            if message.starts_with("duplicate entry") {
                mark = positions.first_duplicate_key.unwrap_or(mark);
            }
            return Err(document_problem(mark, message));
        }
    };
    if let Err(error) = value.apply_merge() {
        return Err(document_problem(Mark::START, format!("invalid `<<` merge: {error}")));
    }
    let mut decoder = Decoder::new(file_label, env);
    let profile = decode_profile(&mut decoder, &Node::root(&value, &positions.root));
    match profile {
        Some(profile) if !decoder.has_problems() => Ok(profile),
        _ => Err(decoder.into_problems()),
    }
}

/// Splits a serde_yaml_ng error into its position and its message without the trailing position.
fn yaml_error(error: &serde_yaml_ng::Error) -> (Mark, String) {
    let message = error.to_string();
    match error.location() {
        Some(location) => {
            let mark = Mark { line: location.line().max(1), col: location.column().max(1) };
            let suffix = format!(" at line {} column {}", location.line(), location.column());
            let message = message.replacen(&suffix, "", 1);
            (mark, message)
        }
        None => (Mark::START, message),
    }
}

/// Reads and parses a profile file, expanding `${VAR}` from the process environment.
pub fn load_profile_file(path: &Path) -> Result<Profile, Vec<Problem>> {
    let label = path.display().to_string();
    let unreadable = |message: String| {
        vec![Problem { file: label.clone(), line: 1, col: 1, path: DOCUMENT_PATH.to_string(), message }]
    };
    let metadata = std::fs::metadata(path).map_err(|error| unreadable(format!("cannot read the profile: {error}")))?;
    if metadata.len() > MAX_PROFILE_BYTES as u64 {
        return Err(unreadable(format!(
            "the profile is larger than {} MiB; is this the right file?",
            MAX_PROFILE_BYTES >> 20
        )));
    }
    let bytes = std::fs::read(path).map_err(|error| unreadable(format!("cannot read the profile: {error}")))?;
    let text = String::from_utf8(bytes).map_err(|_| unreadable("the profile is not valid UTF-8".to_string()))?;
    parse_profile(&text, &label, &process_env)
}

/// Parses the embedded default profile with the process environment (for `CASTELLAN_DATA_DIR`).
pub fn default_profile() -> Result<Profile, Vec<Problem>> {
    parse_profile(DEFAULT_PROFILE_YAML, "(embedded default profile)", &process_env)
}

/// A variable that is unset or not valid Unicode counts as unset.
fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}
