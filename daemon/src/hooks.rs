//! Hooks: handlers from the profile that run on lifecycle events, in order, and may deny or rewrite.
//! This build runs PreToolUse on the gateway's tool calls: the built-in rules (plain functions over
//! the call, testable without the gateway) and HTTP hooks. Every decision is a `hook_events` row
//! with the call's trace id.
//!
//! The first handler that denies decides; the others are not run. A handler that rewrites the
//! arguments hands the rewritten ones to the handlers after it and to the tool.

use std::sync::Arc;

use arc_swap::ArcSwap;
use castellan_config::{HookEvent, HookHandler, HooksSettings, NamePattern, Tier};
use regex::Regex;
use serde_json::Value;

/// A handler ready to run (patterns compiled).
enum Compiled {
    DenyTools(Vec<NamePattern>),
    DenyArguments(Regex),
    RequireTier(Tier, Vec<NamePattern>),
    BlockCredentials(Regex),
    Http { url: String, timeout: std::time::Duration, deny_on_failure: bool },
}

/// What one handler decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookDecision {
    pub handler: String,
    pub allowed: bool,
    pub reason: Option<String>,
    /// Arguments the handler rewrote the call to.
    pub rewritten: Option<Value>,
}

impl HookDecision {
    /// The `hook_events` row recording this decision.
    pub fn row(
        &self,
        event: HookEvent,
        target: Option<(&str, &str)>,
        subject: &str,
        trace_id: &str,
    ) -> castellan_schema::hook_events::HookEventRow {
        let decision = match (self.allowed, self.rewritten.is_some()) {
            (false, _) => "deny",
            (true, true) => "rewrite",
            (true, false) => "allow",
        };
        castellan_schema::hook_events::HookEventRow {
            id: 0,
            event: event.as_str().to_string(),
            decision: decision.to_string(),
            handler: self.handler.clone(),
            reason: self.reason.clone(),
            server: target.map(|(server, _)| server.to_string()),
            tool: target.map(|(_, tool)| tool.to_string()),
            user_id: Some(subject.to_string()),
            trace_id: trace_id.to_string(),
            created_at: chrono::Utc::now(),
        }
    }
}

/// The call a PreToolUse handler looks at.
pub struct ToolUse<'a> {
    pub server: &'a str,
    pub tool: &'a str,
    pub tier: Tier,
    pub arguments: &'a Value,
}

/// Shapes of credentials that have no business in tool arguments.
const CREDENTIAL_SHAPES: &str = concat!(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    r"|\bAKIA[0-9A-Z]{16}\b",
    r"|\bgh[pousr]_[A-Za-z0-9]{36,}\b",
    r"|\bxox[baprs]-[A-Za-z0-9-]{10,}\b",
    r"|\bsk-[A-Za-z0-9_-]{20,}\b",
    r"|\bcas_[a-z0-9]{12}_[A-Za-z0-9_-]{43}\b",
    r"|(?i)\bbearer\s+[A-Za-z0-9._~+/-]{20,}=*",
);

/// The hooks of this replica, replaced on profile reload.
pub struct Hooks {
    pre_tool_use: ArcSwap<Vec<Compiled>>,
    http: reqwest::Client,
}

impl Hooks {
    pub fn new(settings: &HooksSettings) -> Self {
        // Operators name hook endpoints, so no address guard; no redirects, bounded connect time.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(std::time::Duration::from_secs(3))
            .build()
            .unwrap_or_default();
        let hooks = Hooks { pre_tool_use: ArcSwap::from_pointee(Vec::new()), http };
        hooks.apply(settings);
        hooks
    }

    /// Compiles the handlers; patterns were validated when the profile was read.
    pub fn apply(&self, settings: &HooksSettings) {
        let compiled = settings
            .events
            .get(&HookEvent::PreToolUse)
            .map(|handlers| handlers.iter().filter_map(compile).collect())
            .unwrap_or_default();
        self.pre_tool_use.store(Arc::new(compiled));
    }

    pub fn has_pre_tool_use(&self) -> bool {
        !self.pre_tool_use.load().is_empty()
    }

    /// Runs the PreToolUse handlers in order until one denies; returns every decision made.
    /// `context` is what HTTP hooks receive besides the call (user, trace id).
    pub async fn pre_tool_use(&self, call: &ToolUse<'_>, context: &HookContext<'_>) -> Vec<HookDecision> {
        let handlers = self.pre_tool_use.load();
        let mut decisions = Vec::new();
        let mut arguments = call.arguments.clone();
        for handler in handlers.iter() {
            let current = ToolUse { arguments: &arguments, ..*call };
            let decision = match handler {
                Compiled::Http { url, timeout, deny_on_failure } => {
                    self.ask_http(url, *timeout, *deny_on_failure, &current, context).await
                }
                other => evaluate(other, &current),
            };
            let denied = !decision.allowed;
            if let Some(rewritten) = &decision.rewritten {
                arguments = rewritten.clone();
            }
            decisions.push(decision);
            if denied {
                break;
            }
        }
        decisions
    }

    /// POSTs the event to an HTTP hook and reads its decision: `{"decision": "allow"|"deny",
    /// "reason", "updatedInput"}` or Claude Code's `{"hookSpecificOutput": {"permissionDecision",
    /// "permissionDecisionReason", "updatedInput"}}`.
    async fn ask_http(
        &self,
        url: &str,
        timeout: std::time::Duration,
        deny_on_failure: bool,
        call: &ToolUse<'_>,
        context: &HookContext<'_>,
    ) -> HookDecision {
        let mut payload = serde_json::json!({
            "hook_event_name": "PreToolUse",
            "tool_name": format!("{}__{}", call.server, call.tool),
            "server": call.server,
            "tool": call.tool,
            "tool_input": call.arguments,
            "user": context.subject,
            "tier": call.tier.as_str(),
            "trace_id": context.trace_id,
        });
        crate::redaction::current().redact_value(&mut payload);
        let handler = format!("http:{url}");
        let answer = async {
            let response = self
                .http
                .post(url)
                .header("traceparent", crate::http::outgoing_traceparent(context.trace_id))
                .json(&payload)
                .send()
                .await
                .map_err(|_| "the hook could not be reached".to_string())?;
            if !response.status().is_success() {
                return Err(format!("the hook answered HTTP {}", response.status().as_u16()));
            }
            let bytes = response.bytes().await.map_err(|_| "the hook's answer could not be read".to_string())?;
            if bytes.len() > 1 << 20 {
                return Err("the hook's answer is too large".to_string());
            }
            serde_json::from_slice::<Value>(&bytes).map_err(|_| "the hook's answer is not JSON".to_string())
        };
        let answer = match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(problem)) => return failure(handler, deny_on_failure, problem),
            Err(_) => return failure(handler, deny_on_failure, format!("the hook did not answer within {timeout:?}")),
        };
        let specific = answer.get("hookSpecificOutput");
        let field = |name: &str, specific_name: &str| {
            answer.get(name).or_else(|| specific.and_then(|output| output.get(specific_name))).cloned()
        };
        let decision = field("decision", "permissionDecision").and_then(|value| value.as_str().map(str::to_string));
        let reason = field("reason", "permissionDecisionReason").and_then(|value| value.as_str().map(str::to_string));
        let rewritten = field("updatedInput", "updatedInput").filter(Value::is_object);
        match decision.as_deref() {
            Some("deny" | "block") => HookDecision {
                handler,
                allowed: false,
                reason: reason.or(Some("denied by the hook".into())),
                rewritten: None,
            },
            Some("allow" | "approve") | None => HookDecision { handler, allowed: true, reason, rewritten },
            Some(_) => failure(handler, deny_on_failure, "the hook's decision is neither allow nor deny".into()),
        }
    }
}

/// Who is calling, for hooks that want to know.
pub struct HookContext<'a> {
    pub subject: &'a str,
    pub trace_id: &'a str,
}

fn failure(handler: String, deny: bool, problem: String) -> HookDecision {
    let reason =
        if deny { format!("{problem}; on_failure is deny") } else { format!("{problem}; on_failure is allow") };
    HookDecision { handler, allowed: !deny, reason: Some(reason), rewritten: None }
}

fn patterns(texts: &[String]) -> Vec<NamePattern> {
    texts.iter().filter_map(|text| NamePattern::parse(text).ok()).collect()
}

fn compile(handler: &HookHandler) -> Option<Compiled> {
    Some(match handler {
        HookHandler::DenyTools { tools } => Compiled::DenyTools(patterns(tools)),
        HookHandler::DenyArguments { pattern } => {
            Compiled::DenyArguments(regex::RegexBuilder::new(pattern).size_limit(1 << 20).build().ok()?)
        }
        HookHandler::RequireTier { tier, tools } => Compiled::RequireTier(*tier, patterns(tools)),
        HookHandler::BlockCredentials => Compiled::BlockCredentials(Regex::new(CREDENTIAL_SHAPES).ok()?),
        HookHandler::Http { url, timeout, deny_on_failure } => {
            Compiled::Http { url: url.clone(), timeout: *timeout, deny_on_failure: *deny_on_failure }
        }
    })
}

/// Whether a pattern matches the tool: `server__tool` patterns name the server too.
fn tool_matches(patterns: &[NamePattern], call: &ToolUse<'_>) -> bool {
    let qualified = format!("{}__{}", call.server, call.tool);
    patterns.iter().any(|pattern| pattern.matches(call.tool) || pattern.matches(&qualified))
}

fn evaluate(handler: &Compiled, call: &ToolUse<'_>) -> HookDecision {
    let (name, denial) = match handler {
        Compiled::DenyTools(patterns) => (
            "builtin:deny_tools",
            tool_matches(patterns, call).then(|| format!("the tool {} is denied by a hook", call.tool)),
        ),
        Compiled::DenyArguments(pattern) => (
            "builtin:deny_arguments",
            pattern
                .is_match(&call.arguments.to_string())
                .then(|| format!("the arguments match the denied pattern {}", pattern.as_str())),
        ),
        Compiled::RequireTier(tier, patterns) => (
            "builtin:require_tier",
            (tool_matches(patterns, call) && call.tier < *tier)
                .then(|| format!("the tool {} needs the {} tier", call.tool, tier.as_str())),
        ),
        Compiled::BlockCredentials(shapes) => (
            "builtin:block_credentials",
            shapes
                .is_match(&unescaped_text(call.arguments))
                .then(|| "the arguments carry something shaped like a credential".to_string()),
        ),
        Compiled::Http { url, .. } => (url.as_str(), Some("an http hook cannot be evaluated synchronously".into())),
    };
    HookDecision { handler: name.to_string(), allowed: denial.is_none(), reason: denial, rewritten: None }
}

/// Every string of the arguments, unescaped, one per line (so escapes cannot hide a shape).
fn unescaped_text(value: &Value) -> String {
    fn walk(value: &Value, out: &mut String) {
        match value {
            Value::String(text) => {
                out.push_str(text);
                out.push('\n');
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, out)),
            Value::Object(map) => map.iter().for_each(|(key, item)| {
                out.push_str(key);
                out.push('\n');
                walk(item, out);
            }),
            other => {
                out.push_str(&other.to_string());
                out.push('\n');
            }
        }
    }
    let mut out = String::new();
    walk(value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    fn hooks(handlers: Vec<HookHandler>) -> Hooks {
        let mut settings = HooksSettings::default();
        settings.events.insert(HookEvent::PreToolUse, handlers);
        Hooks::new(&settings)
    }

    fn decide(hooks: &Hooks, tool: &str, tier: Tier, arguments: Value) -> Option<HookDecision> {
        let call = ToolUse { server: "db", tool, tier, arguments: &arguments };
        let context = HookContext { subject: "s", trace_id: "t" };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(hooks.pre_tool_use(&call, &context)).into_iter().find(|decision| !decision.allowed)
    }

    #[test]
    fn each_builtin_denies_what_it_names_and_allows_the_rest() {
        let all = hooks(vec![
            HookHandler::DenyArguments { pattern: r"(?i)drop\s+table".into() },
            HookHandler::DenyTools { tools: vec!["delete_*".into(), "db__truncate".into()] },
            HookHandler::RequireTier { tier: Tier::Admin, tools: vec!["export_*".into()] },
            HookHandler::BlockCredentials,
        ]);
        let cases = [
            ("query", Tier::User, json!({"sql": "select 1"}), None),
            ("query", Tier::User, json!({"sql": "DROP   TABLE users"}), Some("builtin:deny_arguments")),
            ("delete_row", Tier::Admin, json!({}), Some("builtin:deny_tools")),
            ("truncate", Tier::Admin, json!({}), Some("builtin:deny_tools")),
            ("export_all", Tier::User, json!({}), Some("builtin:require_tier")),
            ("export_all", Tier::Admin, json!({}), None),
            ("query", Tier::User, json!({"note": "key AKIAIOSFODNN7EXAMPLE"}), Some("builtin:block_credentials")),
            (
                "query",
                Tier::User,
                json!({"pem": "-----BEGIN RSA PRIVATE KEY-----\nMII"}),
                Some("builtin:block_credentials"),
            ),
            (
                "query",
                Tier::User,
                json!({"h": "Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345"}),
                Some("builtin:block_credentials"),
            ),
            ("query", Tier::User, json!({"text": "a bearer of good news"}), None),
        ];
        for (tool, tier, arguments, expected) in cases {
            let denied = decide(&all, tool, tier, arguments.clone()).map(|decision| decision.handler);
            assert_eq!(denied.as_deref(), expected, "{tool} by {tier:?} with {arguments}");
        }
    }

    #[test]
    fn the_first_denial_stops_the_chain_and_every_decision_is_reported() {
        let chain = hooks(vec![
            HookHandler::DenyTools { tools: vec!["nothing_matches".into()] },
            HookHandler::DenyTools { tools: vec!["*".into()] },
            HookHandler::BlockCredentials,
        ]);
        let arguments = json!({});
        let context = HookContext { subject: "s", trace_id: "t" };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let call = ToolUse { server: "s", tool: "t", tier: Tier::User, arguments: &arguments };
        let decisions = runtime.block_on(chain.pre_tool_use(&call, &context));
        assert_eq!(decisions.len(), 2, "allow, then deny; the third is not run: {decisions:?}");
        assert!(decisions[0].allowed && !decisions[1].allowed, "{decisions:?}");
    }
}
