//! Hooks: handlers from the profile that run on the ten lifecycle events, in order. The gateway
//! raises PreToolUse, PostToolUse, PostToolUseFailure, SessionStart and SessionEnd for MCP traffic;
//! `POST /hooks/{Event}` raises any event for Claude Code's own hooks. Handlers are the built-in
//! rules (plain functions over the event, testable without the gateway), command hooks and HTTP
//! hooks; every decision becomes a `hook_events` row with the trace id.
//!
//! The first handler that denies decides; the others are not run. On PreToolUse a handler may
//! rewrite the tool's input, which the handlers after it and the tool then see.

pub mod command;
pub mod endpoint;
pub mod writer;

use std::collections::HashMap;
use std::time::Duration;

use castellan_actors::mcp_server::SecretLookup;
use castellan_config::{ChildProcess, HookEvent, HookHandler, HooksSettings, NamePattern, Tier};
use regex::Regex;
use serde_json::{Value, json};

/// A handler ready to run (patterns compiled).
enum Compiled {
    DenyTools(Vec<NamePattern>),
    DenyArguments(Regex),
    RequireTier(Tier, Vec<NamePattern>),
    BlockCredentials(Regex),
    Http { url: String, timeout: Duration, deny_on_failure: bool },
    Command { process: ChildProcess, timeout: Duration, deny_on_failure: bool },
}

/// What one handler decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookDecision {
    pub handler: String,
    pub allowed: bool,
    pub reason: Option<String>,
    /// The tool input the handler rewrote the call to (PreToolUse only).
    pub rewritten: Option<Value>,
}

impl HookDecision {
    /// The `hook_events` row recording this decision.
    pub fn row(
        &self,
        event: HookEvent,
        (server, tool): (Option<&str>, Option<&str>),
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
            server: server.map(str::to_string),
            tool: tool.map(str::to_string),
            user_id: Some(subject.to_string()),
            trace_id: trace_id.to_string(),
            created_at: chrono::Utc::now(),
        }
    }
}

/// One event to run the handlers on.
pub struct HookCall<'a> {
    pub event: HookEvent,
    /// The server of the event (`claude-code` for Claude Code's own tools), when there is one.
    pub server: Option<&'a str>,
    /// The tool of a tool event: what `deny_tools` and `require_tier` match.
    pub tool: Option<&'a str>,
    pub tier: Tier,
    pub subject: &'a str,
    pub trace_id: &'a str,
    /// The event in Claude Code's shape (`hook_event_name`, `session_id`, `tool_name`, `tool_input`,
    /// `tool_response`, `prompt`, ...); handlers get it with `castellan: {user, tier, server, trace_id}`.
    pub input: Value,
}

/// What the handlers of one event decided.
#[derive(Debug, Default)]
pub struct HookOutcome {
    /// Every decision, in order; the last one is the denial when there is one.
    pub decisions: Vec<HookDecision>,
    /// The tool input after every rewrite, when a handler rewrote it.
    pub tool_input: Option<Value>,
}

impl HookOutcome {
    /// The denial, as `handler: reason`.
    pub fn denial(&self) -> Option<String> {
        self.decisions
            .iter()
            .find(|decision| !decision.allowed)
            .map(|decision| format!("{}: {}", decision.handler, decision.reason.as_deref().unwrap_or("denied")))
    }

    /// The `hook_events` rows of these decisions.
    pub fn rows(&self, call: &HookCall<'_>) -> Vec<castellan_schema::hook_events::HookEventRow> {
        self.decisions
            .iter()
            .map(|decision| decision.row(call.event, (call.server, call.tool), call.subject, call.trace_id))
            .collect()
    }
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

/// The compiled handlers of one profile's `hooks`, by event: part of the governance snapshot.
#[derive(Default)]
pub struct HookChains(HashMap<HookEvent, Vec<Compiled>>);

impl HookChains {
    /// Compiles the handlers; patterns were validated when the profile was read.
    pub fn compile(settings: &HooksSettings) -> Self {
        HookChains(
            settings
                .events
                .iter()
                .map(|(event, handlers)| (*event, handlers.iter().filter_map(compile).collect::<Vec<_>>()))
                .filter(|(_, handlers)| !handlers.is_empty())
                .collect(),
        )
    }

    /// Whether any handler runs on `event` (so callers can skip building its input).
    pub fn has(&self, event: HookEvent) -> bool {
        self.0.contains_key(&event)
    }
}

/// What runs hook handlers: the HTTP client of HTTP hooks and the secrets of command hooks.
pub struct Hooks {
    http: reqwest::Client,
    /// Resolves `${secret:NAME}` in command hooks' arguments and environment.
    secrets: Option<SecretLookup>,
}

impl Hooks {
    pub fn new(secrets: Option<SecretLookup>) -> Self {
        // Operators name hook endpoints, so no address guard; no redirects, bounded connect time.
        let http = castellan_actors::http_client::builder(Duration::from_secs(3)).build().unwrap_or_default();
        Hooks { http, secrets }
    }

    /// Runs the handlers of `call.event` in `chains` in order until one denies.
    pub async fn run(&self, chains: &HookChains, call: &HookCall<'_>) -> HookOutcome {
        let Some(handlers) = chains.0.get(&call.event) else { return HookOutcome::default() };
        let mut outcome = HookOutcome::default();
        let mut input = call.input.clone();
        for handler in handlers {
            let decision = match handler {
                Compiled::Http { url, timeout, deny_on_failure } => {
                    self.ask_http(url, *timeout, *deny_on_failure, call, &input).await
                }
                Compiled::Command { process, timeout, deny_on_failure } => {
                    self.ask_command(process, *timeout, *deny_on_failure, call, &input).await
                }
                builtin => evaluate(builtin, call, &input),
            };
            let denied = !decision.allowed;
            if let Some(rewritten) = &decision.rewritten {
                input["tool_input"] = rewritten.clone();
                outcome.tool_input = Some(rewritten.clone());
            }
            outcome.decisions.push(decision);
            if denied {
                break;
            }
        }
        outcome
    }

    /// POSTs the event to an HTTP hook and reads its decision.
    async fn ask_http(
        &self,
        url: &str,
        timeout: Duration,
        deny_on_failure: bool,
        call: &HookCall<'_>,
        input: &Value,
    ) -> HookDecision {
        let payload = handler_payload(call, input);
        let handler = format!("http:{url}");
        let answer = async {
            let response = self
                .http
                .post(url)
                .header("traceparent", crate::trace::outgoing_traceparent(call.trace_id))
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
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(answer)) => decision_from_answer(handler, &answer, deny_on_failure, call.event),
            Ok(Err(problem)) => failure(handler, deny_on_failure, problem),
            Err(_) => failure(handler, deny_on_failure, format!("the hook did not answer within {timeout:?}")),
        }
    }

    /// Runs a command hook: the event as JSON on stdin; exit 0 allows (stdout may carry an answer),
    /// exit 2 denies with stderr as the reason; anything else takes `on_failure`.
    async fn ask_command(
        &self,
        process: &ChildProcess,
        timeout: Duration,
        deny_on_failure: bool,
        call: &HookCall<'_>,
        input: &Value,
    ) -> HookDecision {
        let handler = format!("command:{}", process.command);
        let secret = |name: &str| self.secrets.as_ref().and_then(|lookup| lookup(name));
        let mut args = Vec::with_capacity(process.args.len());
        for arg in &process.args {
            match arg.render(&secret, None) {
                Ok(arg) => args.push(arg),
                Err(error) => return failure(handler, deny_on_failure, format!("its arguments: {error}")),
            }
        }
        let mut env = Vec::with_capacity(process.env.len());
        for (name, value) in &process.env {
            match value.render(&secret, None) {
                Ok(value) => env.push((name.clone(), value)),
                Err(error) => return failure(handler, deny_on_failure, format!("its environment: {error}")),
            }
        }
        let payload = handler_payload(call, input).to_string();
        let hook = crate::hooks::command::CommandHook {
            program: &process.command,
            args: &args,
            env: &env,
            cwd: process.cwd.as_deref(),
            timeout,
        };
        let redactor = crate::redaction::current();
        match crate::hooks::command::run(&hook, payload.as_bytes()).await {
            crate::hooks::command::CommandOutcome::Exited { code: 0, stdout, .. } => {
                let text = String::from_utf8_lossy(&stdout);
                if text.trim().is_empty() {
                    return HookDecision { handler, allowed: true, reason: None, rewritten: None };
                }
                match serde_json::from_str::<Value>(text.trim()) {
                    Ok(answer) => decision_from_answer(handler, &answer, deny_on_failure, call.event),
                    Err(_) => failure(handler, deny_on_failure, "it printed something that is not JSON".into()),
                }
            }
            crate::hooks::command::CommandOutcome::Exited { code: 2, stderr, .. } => {
                let reason = excerpt(&redactor.redact(&String::from_utf8_lossy(&stderr)));
                HookDecision {
                    handler,
                    allowed: false,
                    reason: Some(if reason.is_empty() { "denied by the hook (exit 2)".into() } else { reason }),
                    rewritten: None,
                }
            }
            crate::hooks::command::CommandOutcome::Exited { code, stderr, .. } => {
                let detail = excerpt(&redactor.redact(&String::from_utf8_lossy(&stderr)));
                let problem = if detail.is_empty() {
                    format!("the hook exited with {code}")
                } else {
                    format!("the hook exited with {code}: {detail}")
                };
                failure(handler, deny_on_failure, problem)
            }
            crate::hooks::command::CommandOutcome::TimedOut => {
                failure(handler, deny_on_failure, format!("the hook did not finish within {timeout:?}"))
            }
            crate::hooks::command::CommandOutcome::Failed(problem) => {
                failure(handler, deny_on_failure, redactor.redact(&problem).into_owned())
            }
        }
    }
}

/// What a command or HTTP hook receives: the event, plus who and where, with every secret value
/// replaced.
fn handler_payload(call: &HookCall<'_>, input: &Value) -> Value {
    let mut payload = input.clone();
    if let Some(object) = payload.as_object_mut() {
        object.insert("hook_event_name".into(), Value::String(call.event.as_str().into()));
        object.insert(
            "castellan".into(),
            json!({
                "user": call.subject,
                "tier": call.tier.as_str(),
                "server": call.server,
                "trace_id": call.trace_id,
            }),
        );
    }
    crate::redaction::current().redact_value(&mut payload);
    payload
}

/// The first 500 characters of the trimmed text, on one line.
fn excerpt(text: &str) -> String {
    let trimmed = text.trim();
    let mut out: String = trimmed.chars().take(500).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if trimmed.chars().count() > 500 {
        out.push('…');
    }
    out
}

/// Reads a hook's answer: ours (`{"decision": "allow"|"deny", "reason", "updated_input"}`) or
/// Claude Code's (`{"decision": "block", "reason"}` or `{"hookSpecificOutput": {"permissionDecision",
/// "permissionDecisionReason", "updatedInput"}}`). A rewrite counts on PreToolUse only.
pub fn decision_from_answer(handler: String, answer: &Value, deny_on_failure: bool, event: HookEvent) -> HookDecision {
    if !answer.is_object() {
        return failure(handler, deny_on_failure, "the hook's answer is not a JSON object".into());
    }
    let specific = answer.get("hookSpecificOutput");
    let field = |names: &[&str], specific_name: &str| {
        names
            .iter()
            .find_map(|name| answer.get(*name))
            .or_else(|| specific.and_then(|output| output.get(specific_name)))
            .cloned()
    };
    let decision = match field(&["decision"], "permissionDecision") {
        None => None,
        Some(Value::String(decision)) => Some(decision),
        Some(_) => return failure(handler, deny_on_failure, "the hook's decision is not a string".into()),
    };
    let reason = field(&["reason"], "permissionDecisionReason").and_then(|value| value.as_str().map(str::to_string));
    let rewritten = field(&["updated_input", "updatedInput"], "updatedInput")
        .filter(|input| input.is_object() && event == HookEvent::PreToolUse);
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
        HookHandler::Command { process, timeout, deny_on_failure } => {
            Compiled::Command { process: process.clone(), timeout: *timeout, deny_on_failure: *deny_on_failure }
        }
    })
}

/// Whether a pattern matches the tool: `server__tool` patterns name the server too.
fn tool_matches(patterns: &[NamePattern], (server, tool): (&str, &str)) -> bool {
    let qualified = format!("{server}__{tool}");
    patterns.iter().any(|pattern| pattern.matches(tool) || pattern.matches(&qualified))
}

/// What the content rules (`deny_arguments`, `block_credentials`) look at: the tool's input before
/// the call, its response after it, its error when it failed, the prompt of UserPromptSubmit.
fn inspected(event: HookEvent, input: &Value) -> Option<&Value> {
    let field = match event {
        HookEvent::PreToolUse => "tool_input",
        HookEvent::PostToolUse => "tool_response",
        HookEvent::PostToolUseFailure => "error",
        HookEvent::UserPromptSubmit => "prompt",
        _ => return None,
    };
    input.get(field)
}

fn evaluate(handler: &Compiled, call: &HookCall<'_>, input: &Value) -> HookDecision {
    let content = inspected(call.event, input);
    let target = call.server.zip(call.tool);
    let (name, denial) = match handler {
        Compiled::DenyTools(patterns) => (
            "builtin:deny_tools",
            target
                .filter(|target| tool_matches(patterns, *target))
                .map(|(_, tool)| format!("the tool {tool} is denied by a hook")),
        ),
        Compiled::DenyArguments(pattern) => (
            "builtin:deny_arguments",
            content
                .filter(|content| match content {
                    Value::String(text) => pattern.is_match(text),
                    other => pattern.is_match(&other.to_string()),
                })
                .map(|_| {
                    format!(
                        "the {} the denied pattern {}",
                        what_with_verb(call.event, "matches", "match"),
                        pattern.as_str()
                    )
                }),
        ),
        Compiled::RequireTier(tier, patterns) => (
            "builtin:require_tier",
            target
                .filter(|target| tool_matches(patterns, *target) && call.tier < *tier)
                .map(|(_, tool)| format!("the tool {tool} needs the {} tier", tier.as_str())),
        ),
        Compiled::BlockCredentials(shapes) => (
            "builtin:block_credentials",
            content.filter(|content| shapes.is_match(&unescaped_text(content))).map(|_| {
                format!("the {} something shaped like a credential", what_with_verb(call.event, "carries", "carry"))
            }),
        ),
        Compiled::Http { .. } | Compiled::Command { .. } => {
            ("hook", Some("a command or http hook cannot be evaluated as a rule".into()))
        }
    };
    HookDecision { handler: name.to_string(), allowed: denial.is_none(), reason: denial, rewritten: None }
}

/// How a denial names what the content rules looked at.
/// What was inspected and a verb that agrees with it: "arguments match", "prompt matches".
fn what_with_verb(event: HookEvent, singular: &str, plural: &str) -> String {
    let verb = if matches!(what(event), "arguments") { plural } else { singular };
    format!("{} {verb}", what(event))
}

fn what(event: HookEvent) -> &'static str {
    match event {
        HookEvent::PostToolUse => "tool's response",
        HookEvent::PostToolUseFailure => "tool's error",
        HookEvent::UserPromptSubmit => "prompt",
        _ => "arguments",
    }
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

    fn hooks(event: HookEvent, handlers: Vec<HookHandler>) -> HookChains {
        let mut settings = HooksSettings::default();
        settings.events.insert(event, handlers);
        HookChains::compile(&settings)
    }

    fn run(chains: &HookChains, event: HookEvent, tool: Option<&str>, tier: Tier, input: Value) -> HookOutcome {
        let call = HookCall { event, server: Some("db"), tool, tier, subject: "s", trace_id: "t", input };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(Hooks::new(None).run(chains, &call))
    }

    fn denied_by(hooks: &HookChains, tool: &str, tier: Tier, arguments: Value) -> Option<String> {
        let input = json!({"tool_name": tool, "tool_input": arguments});
        let outcome = run(hooks, HookEvent::PreToolUse, Some(tool), tier, input);
        outcome.decisions.into_iter().find(|decision| !decision.allowed).map(|decision| decision.handler)
    }

    #[test]
    fn denial_reasons_agree_in_number() {
        let rules = [HookHandler::DenyArguments { pattern: "(?i)drop".into() }, HookHandler::BlockCredentials];
        let reason = |event: HookEvent, field: &str, value: Value, index: usize| {
            let hooks = hooks(event, vec![rules[index].clone()]);
            let mut input = json!({"tool_name": "query"});
            input[field] = value;
            run(&hooks, event, Some("query"), Tier::User, input).denial().unwrap_or_default()
        };
        let arguments = reason(HookEvent::PreToolUse, "tool_input", json!({"sql": "DROP it"}), 0);
        assert!(arguments.contains("the arguments match the denied pattern"), "{arguments}");
        let carried = reason(HookEvent::PreToolUse, "tool_input", json!({"k": "AKIAIOSFODNN7EXAMPLE"}), 1);
        assert!(carried.contains("the arguments carry something shaped like a credential"), "{carried}");
        let response = reason(HookEvent::PostToolUse, "tool_response", json!("drop"), 0);
        assert!(response.contains("the tool's response matches the denied pattern"), "{response}");
        for text in [&arguments, &carried, &response] {
            assert!(!text.contains("arguments matches") && !text.contains("arguments carries"), "{text}");
        }
    }

    #[test]
    fn each_builtin_denies_what_it_names_and_allows_the_rest() {
        let all = hooks(
            HookEvent::PreToolUse,
            vec![
                HookHandler::DenyArguments { pattern: r"(?i)drop\s+table".into() },
                HookHandler::DenyTools { tools: vec!["delete_*".into(), "db__truncate".into()] },
                HookHandler::RequireTier { tier: Tier::Admin, tools: vec!["export_*".into()] },
                HookHandler::BlockCredentials,
            ],
        );
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
            let denied = denied_by(&all, tool, tier, arguments.clone());
            assert_eq!(denied.as_deref(), expected, "{tool} by {tier:?} with {arguments}");
        }
    }

    #[test]
    fn the_first_denial_stops_the_chain_and_every_decision_is_reported() {
        let chain = hooks(
            HookEvent::PreToolUse,
            vec![
                HookHandler::DenyTools { tools: vec!["nothing_matches".into()] },
                HookHandler::DenyTools { tools: vec!["*".into()] },
                HookHandler::BlockCredentials,
            ],
        );
        let outcome = run(&chain, HookEvent::PreToolUse, Some("t"), Tier::User, json!({"tool_input": {}}));
        assert_eq!(outcome.decisions.len(), 2, "allow, then deny; the third is not run: {outcome:?}");
        assert!(outcome.decisions[0].allowed && !outcome.decisions[1].allowed, "{outcome:?}");
        assert!(outcome.denial().is_some_and(|denial| denial.starts_with("builtin:deny_tools: ")), "{outcome:?}");
    }

    #[test]
    fn content_rules_look_at_the_response_after_the_call_and_at_the_prompt() {
        let key = "AKIAIOSFODNN7EXAMPLE";
        let post = hooks(HookEvent::PostToolUse, vec![HookHandler::BlockCredentials]);
        let leaked = json!({"tool_input": {"id": 1}, "tool_response": {"content": [{"type": "text", "text": key}]}});
        let outcome = run(&post, HookEvent::PostToolUse, Some("get"), Tier::User, leaked);
        assert_eq!(outcome.denial().as_deref().map(|d| d.contains("tool's response")), Some(true), "{outcome:?}");
        let clean = json!({"tool_input": {"note": key}, "tool_response": {"content": []}});
        let outcome = run(&post, HookEvent::PostToolUse, Some("get"), Tier::User, clean);
        assert_eq!(outcome.denial(), None, "after the call, the input is not what is inspected");

        let prompt =
            hooks(HookEvent::UserPromptSubmit, vec![HookHandler::DenyArguments { pattern: "(?i)^export all".into() }]);
        let outcome =
            run(&prompt, HookEvent::UserPromptSubmit, None, Tier::User, json!({"prompt": "Export all customers"}));
        assert!(outcome.denial().is_some_and(|denial| denial.contains("the prompt matches")), "{outcome:?}");
        let outcome = run(&prompt, HookEvent::UserPromptSubmit, None, Tier::User, json!({"prompt": "list one"}));
        assert_eq!(outcome.denial(), None);
    }

    #[test]
    fn answers_in_our_form_and_in_claude_codes_form() {
        let cases = [
            (json!({"decision": "allow"}), HookEvent::PreToolUse, Some(true), None),
            (json!({}), HookEvent::PreToolUse, Some(true), None),
            (json!({"decision": "deny", "reason": "no"}), HookEvent::PreToolUse, Some(false), None),
            (json!({"decision": "block", "reason": "keep going"}), HookEvent::Stop, Some(false), None),
            (
                json!({"decision": "allow", "updated_input": {"id": 2}}),
                HookEvent::PreToolUse,
                Some(true),
                Some(json!({"id": 2})),
            ),
            (
                json!({"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "allow", "updatedInput": {"id": 3}}}),
                HookEvent::PreToolUse,
                Some(true),
                Some(json!({"id": 3})),
            ),
            (json!({"decision": "allow", "updated_input": {"id": 2}}), HookEvent::PostToolUse, Some(true), None),
            (json!({"decision": "maybe"}), HookEvent::PreToolUse, Some(false), None),
            (json!([1]), HookEvent::PreToolUse, Some(false), None),
            (json!({"decision": 5}), HookEvent::PreToolUse, Some(false), None),
        ];
        for (answer, event, allowed, rewritten) in cases {
            let decision = decision_from_answer("h".into(), &answer, true, event);
            assert_eq!(Some(decision.allowed), allowed, "{answer} on {event:?}");
            assert_eq!(decision.rewritten, rewritten, "{answer} on {event:?}");
        }
        let lenient = decision_from_answer("h".into(), &json!({"decision": "maybe"}), false, HookEvent::PreToolUse);
        assert!(lenient.allowed, "on_failure: allow lets an unreadable decision through");
    }
}
