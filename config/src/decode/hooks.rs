//! The `hooks` section: per event, a list of handlers run in order.

use super::{Decoder, Node};
use crate::model::{HookEvent, HookHandler, HooksSettings};
use crate::names::NamePattern;
use crate::tier::Tier;

const BUILTINS: &[&str] = &["deny_tools", "deny_arguments", "require_tier", "block_credentials"];

pub(super) fn decode_hooks(decoder: &mut Decoder, node: Option<Node>) -> HooksSettings {
    let mut settings = HooksSettings::default();
    let Some(node) = node else { return settings };
    for (name, handlers) in decoder.entries(&node) {
        let Some(event) = HookEvent::ALL.into_iter().find(|event| event.as_str() == name) else {
            let names: Vec<&str> = HookEvent::ALL.iter().map(|event| event.as_str()).collect();
            decoder.at_key(&handlers, format!("unknown event; use one of {}", names.join(", ")));
            continue;
        };
        let mut decoded = Vec::new();
        for item in decoder.items(&handlers).unwrap_or_default() {
            if let Some(handler) = decode_handler(decoder, &item, event) {
                decoded.push(handler);
            }
        }
        settings.events.insert(event, decoded);
    }
    settings
}

fn decode_handler(decoder: &mut Decoder, node: &Node, event: HookEvent) -> Option<HookHandler> {
    let mut fields = decoder.fields(
        node,
        &["builtin", "tools", "pattern", "tier", "command", "args", "env", "cwd", "http", "timeout", "on_failure"],
    )?;
    let handler = decode_kind(decoder, node, event, &mut fields);
    // Keys left over after a handler was decoded belong to another kind of handler (after a
    // problem, they are noise).
    if handler.is_some() {
        for (key, misplaced) in fields.into_rest() {
            decoder.at_key(&misplaced, format!("`{key}` does not apply to this kind of handler"));
        }
    }
    handler
}

fn decode_kind(
    decoder: &mut Decoder,
    node: &Node,
    event: HookEvent,
    fields: &mut super::Fields,
) -> Option<HookHandler> {
    let (command, args, env, cwd) =
        (fields.take("command"), fields.take("args"), fields.take("env"), fields.take("cwd"));
    if command.is_none() {
        for (key, misplaced) in [("args", &args), ("env", &env), ("cwd", &cwd)] {
            if let Some(misplaced) = misplaced {
                decoder.at_key(misplaced, format!("`{key}` applies only to a command hook"));
            }
        }
    }
    if let Some(command) = command {
        let keys = super::mcp::ProcessKeys { command, args, env, cwd };
        let process = super::mcp::decode_process(decoder, keys, super::Placeholders::Secrets);
        let timeout = timeout(decoder, fields)?;
        let deny_on_failure = on_failure(decoder, fields)?;
        return Some(HookHandler::Command { process: process?, timeout, deny_on_failure });
    }
    if let Some(url_node) = fields.take("http") {
        let url = decoder.nonempty_plain(&url_node)?;
        if let Err(reason) = super::scalars::check_http_url(&url) {
            decoder.at_value(&url_node, reason);
            return None;
        }
        let timeout = timeout(decoder, fields)?;
        let deny_on_failure = on_failure(decoder, fields)?;
        return Some(HookHandler::Http { url, timeout, deny_on_failure });
    }
    let Some(kind_node) = fields.take("builtin") else {
        decoder.at_value(node, format!("a handler needs `builtin` (one of {})", BUILTINS.join(", ")));
        return None;
    };
    decode_builtin(decoder, node, event, fields, &kind_node)
}

/// A `builtin` rule: its kind, and the keys that kind takes.
fn decode_builtin(
    decoder: &mut Decoder,
    node: &Node,
    event: HookEvent,
    fields: &mut super::Fields,
    kind_node: &Node,
) -> Option<HookHandler> {
    let kind = decoder.nonempty_plain(kind_node)?;
    if !event.takes_builtin_rules() {
        decoder.at_value(
            kind_node,
            format!(
                "built-in rules apply to PreToolUse, PostToolUse, PostToolUseFailure and UserPromptSubmit; on {} use a command or http hook",
                event.as_str()
            ),
        );
        return None;
    }
    let tool_rule = matches!(kind.as_str(), "deny_tools" | "require_tier");
    if tool_rule && event == HookEvent::UserPromptSubmit {
        decoder.at_value(kind_node, format!("{kind} looks at a tool; UserPromptSubmit has no tool"));
        return None;
    }
    match kind.as_str() {
        "deny_tools" => Some(HookHandler::DenyTools { tools: tool_patterns(decoder, node, fields, true)? }),
        "deny_arguments" => {
            let Some(pattern_node) = fields.take("pattern") else {
                decoder.at_value(node, "deny_arguments needs `pattern`: a regular expression");
                return None;
            };
            let pattern = decoder.nonempty_plain(&pattern_node)?;
            match regex::RegexBuilder::new(&pattern).size_limit(1 << 20).build() {
                Ok(_) => Some(HookHandler::DenyArguments { pattern }),
                Err(error) => {
                    // The regex crate's message spans several lines; its last one says what is wrong.
                    let text = error.to_string();
                    let reason = text.lines().last().unwrap_or_default().trim_start_matches("error: ").to_string();
                    decoder.at_value(&pattern_node, format!("not a valid regular expression: {reason}"));
                    None
                }
            }
        }
        "require_tier" => {
            let Some(tier_node) = fields.take("tier") else {
                decoder.at_value(node, "require_tier needs `tier`");
                return None;
            };
            let name = decoder.nonempty_plain(&tier_node)?;
            let Some(tier) = Tier::parse(&name) else {
                decoder.at_value(&tier_node, "unknown tier");
                return None;
            };
            Some(HookHandler::RequireTier { tier, tools: tool_patterns(decoder, node, fields, false)? })
        }
        "block_credentials" => Some(HookHandler::BlockCredentials),
        _ => {
            decoder.at_value(kind_node, format!("unknown builtin; use one of {}", BUILTINS.join(", ")));
            None
        }
    }
}

/// `tools` of a rule: name patterns, each checked; `["*"]` when absent and not `required`.
fn tool_patterns(
    decoder: &mut Decoder,
    node: &Node,
    fields: &mut super::Fields,
    required: bool,
) -> Option<Vec<String>> {
    let Some(tools) = fields.take("tools") else {
        if required {
            decoder.at_value(node, "this rule needs `tools`: a list of tool name patterns");
            return None;
        }
        return Some(vec!["*".to_string()]);
    };
    let mut patterns = Vec::new();
    for item in decoder.items(&tools).unwrap_or_default() {
        let text = decoder.nonempty_plain(&item)?;
        match NamePattern::parse(&text) {
            Ok(_) => patterns.push(text),
            Err(reason) => decoder.at_value(&item, reason),
        }
    }
    Some(patterns)
}

/// `timeout`: how long a command or HTTP hook may take. Default 5 s.
fn timeout(decoder: &mut Decoder, fields: &mut super::Fields) -> Option<std::time::Duration> {
    match fields.take("timeout") {
        Some(node) => decoder.positive_duration(&node),
        None => Some(std::time::Duration::from_secs(5)),
    }
}

/// `on_failure`: whether a hook that fails (times out, errs, answers nonsense) denies. Default deny.
fn on_failure(decoder: &mut Decoder, fields: &mut super::Fields) -> Option<bool> {
    let Some(node) = fields.take("on_failure") else { return Some(true) };
    match decoder.nonempty_plain(&node)?.as_str() {
        "deny" => Some(true),
        "allow" => Some(false),
        _ => {
            decoder.at_value(&node, "expected allow or deny");
            None
        }
    }
}
