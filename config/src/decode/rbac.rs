//! The `rbac` section: the default effect and the rules, with the checks that catch rules which could
//! never match what the operator meant.

use std::collections::BTreeSet;

use serde_yaml_ng::Value;

use super::{Decoder, Node};
use crate::model::{Effect, RbacRule, RbacSettings};
use crate::names::NamePattern;
use crate::tier::Tier;

const RULE_KEYS: &[&str] = &["name", "effect", "min_tier", "max_tier", "servers", "tools", "models", "skills"];

pub(super) fn decode_rbac(decoder: &mut Decoder, node: Option<Node>) -> RbacSettings {
    let mut settings = RbacSettings::default();
    let Some(mut fields) = node.as_ref().and_then(|node| decoder.fields(node, &["default", "rules"])) else {
        return settings;
    };
    if let Some(node) = fields.take("default")
        && let Some(effect) = decode_effect(decoder, &node)
    {
        settings.default = effect;
    }
    let Some(rules) = fields.take("rules") else { return settings };
    let mut names = BTreeSet::new();
    for (index, item) in decoder.items(&rules).unwrap_or_default().into_iter().enumerate() {
        let Some((rule, name_node)) = decode_rule(decoder, &item, index) else { continue };
        // Denials cite the rule name, so two rules with one name would make the audit trail ambiguous.
        if !names.insert(rule.name.clone()) {
            let at = name_node.as_ref().unwrap_or(&item);
            decoder.at_value(at, format!("another rule is already named `{}`", rule.name));
        }
        settings.rules.push(rule);
    }
    settings
}

/// Returns the rule and the node of its `name`, for the duplicate-name check.
fn decode_rule<'v, 'p>(
    decoder: &mut Decoder,
    node: &Node<'v, 'p>,
    index: usize,
) -> Option<(RbacRule, Option<Node<'v, 'p>>)> {
    let mut fields = decoder.fields(node, RULE_KEYS)?;
    let name_node = fields.take("name");
    let name = match &name_node {
        Some(name_node) => decoder.nonempty_plain(name_node),
        None => Some(format!("rbac.rules[{index}]")),
    };
    let effect = match fields.take("effect") {
        Some(effect) => decode_effect(decoder, &effect),
        None => {
            decoder.at_value(node, "a rule needs `effect: allow` or `effect: deny`");
            None
        }
    };
    let min_node = fields.take("min_tier");
    let max_node = fields.take("max_tier");
    let min_tier = min_node.as_ref().and_then(|node| decode_tier(decoder, node));
    let max_tier = max_node.as_ref().and_then(|node| decode_tier(decoder, node));
    if let (Some(min), Some(max), Some(max_node)) = (min_tier, max_tier, &max_node)
        && min > max
    {
        decoder.at_value(max_node, format!("max_tier `{max}` is below min_tier `{min}`, so the rule matches no one"));
    }
    let (servers_node, tools_node) = (fields.take("servers"), fields.take("tools"));
    let (models_node, skills_node) = (fields.take("models"), fields.take("skills"));
    // A rule is for tool calls, for model requests or for skills. Naming two would read as "this
    // tool with that model", which nothing can check, so it is refused rather than given a meaning
    // by guess.
    let tool_key = if servers_node.is_some() { Some("servers") } else { tools_node.as_ref().map(|_| "tools") };
    let (servers, tools, models, skills) = match (models_node, skills_node) {
        (Some(models_node), Some(skills_node)) => {
            decoder.at_key(
                &skills_node,
                "a rule with `models` (model requests) cannot also have `skills`; write two rules",
            );
            (None, None, super::ai_costs::decode_model_globs(decoder, &models_node), None)
        }
        (Some(models_node), None) => {
            if let Some(key) = tool_key {
                decoder.at_key(
                    &models_node,
                    format!(
                        "a rule with `models` (model requests) cannot also have `{key}` (tool calls); write two rules"
                    ),
                );
            }
            (
                Some(Vec::new()),
                Some(Vec::new()),
                super::ai_costs::decode_model_globs(decoder, &models_node),
                Some(Vec::new()),
            )
        }
        (None, Some(skills_node)) => {
            if let Some(key) = tool_key {
                decoder.at_key(
                    &skills_node,
                    format!("a rule with `skills` cannot also have `{key}` (tool calls); write two rules"),
                );
            }
            (Some(Vec::new()), Some(Vec::new()), Some(Vec::new()), decode_skill_globs(decoder, &skills_node))
        }
        (None, None) => (
            decode_patterns(decoder, servers_node, true),
            decode_patterns(decoder, tools_node, false),
            Some(Vec::new()),
            Some(Vec::new()),
        ),
    };
    let rule = RbacRule {
        name: name?,
        effect: effect?,
        min_tier,
        max_tier,
        servers: servers?,
        tools: tools?,
        models: models?,
        skills: skills?,
    };
    Some((rule, name_node))
}

/// `skills`: globs over skill names, held to the skill-name alphabet (lowercase letters, digits,
/// `-`) plus `*`, because a pattern outside it could never match and a deny rule using it would
/// silently protect nothing.
fn decode_skill_globs(decoder: &mut Decoder, node: &Node) -> Option<Vec<String>> {
    super::ai_costs::decode_globs(decoder, node, "write `[\"*\"]` to match every skill", |text| {
        let in_alphabet =
            text.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-' || byte == b'*');
        if in_alphabet && text.len() <= 64 {
            Ok(())
        } else {
            Err("skill names use only a-z, 0-9 and `-` (64 at most), so this pattern could never match".into())
        }
    })
}

fn decode_effect(decoder: &mut Decoder, node: &Node) -> Option<Effect> {
    let effect = match node.value {
        Value::String(_) => match decoder.plain(node)?.as_str() {
            "allow" => Some(Effect::Allow),
            "deny" => Some(Effect::Deny),
            _ => None,
        },
        _ => None,
    };
    if effect.is_none() {
        let shown = Decoder::shown(node);
        decoder.at_value(node, format!("{shown} is not an effect; expected `allow` or `deny`"));
    }
    effect
}

fn decode_tier(decoder: &mut Decoder, node: &Node) -> Option<Tier> {
    let tier = match node.value {
        Value::String(_) => decoder.plain(node)?.parse::<Tier>().map_err(|error| error.to_string()),
        other => Err(format!("expected a tier name, found {}", super::kind(other))),
    };
    tier.map_err(|reason| decoder.at_value(node, reason)).ok()
}

/// Reads `servers` or `tools`; absent means `["*"]`. Server patterns are held to the server-name
/// alphabet, because a pattern such as `Customers` could never match and a deny rule using it would
/// silently protect nothing.
fn decode_patterns(decoder: &mut Decoder, node: Option<Node>, server_names: bool) -> Option<Vec<NamePattern>> {
    let Some(node) = node else { return Some(vec![NamePattern::any()]) };
    let items = decoder.items(&node)?;
    if items.is_empty() {
        decoder.at_value(&node, "an empty list matches nothing; leave the key out to match every name");
        return None;
    }
    let mut patterns = Vec::new();
    let mut valid = true;
    for item in items {
        let Some(text) = decoder.plain(&item) else {
            valid = false;
            continue;
        };
        let bad_server_pattern = server_names
            && !text
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-' || byte == b'*');
        let parsed = if bad_server_pattern {
            Err("server names use only a-z, 0-9 and `-`, so this pattern could never match".to_string())
        } else {
            NamePattern::parse(&text)
        };
        match parsed {
            Ok(pattern) => patterns.push(pattern),
            Err(reason) => {
                valid = false;
                decoder.at_value(&item, reason);
            }
        }
    }
    valid.then_some(patterns)
}
