//! The `rate_limits` section: base rates per class, tier multipliers, the burst multiplier, and the
//! optional limits of single servers and tools.

use serde_yaml_ng::Value;

use super::{Decoder, Node, kind};
use crate::model::{RateClass, RateLimitSettings};
use crate::names::ServerName;
use crate::tier::Tier;

/// The largest rate accepted, per second: beyond it a limit means nothing on one machine.
const MAX_RATE: f64 = 1_000_000.0;

/// The longest tool part of a `tools` key: the limit of MCP tool names. Limits are matched against
/// the tool's upstream name after the gateway resolved whatever (possibly shortened) name the client
/// wrote, so a key may be longer than the 64 characters a client sees on `/mcp`.
const UPSTREAM_TOOL_NAME_MAX_LEN: usize = 128;

/// Separates the server from the tool in the names of the aggregated endpoint.
const SEPARATOR: &str = "__";

pub(super) fn decode_rate_limits(decoder: &mut Decoder, node: Option<Node>) -> RateLimitSettings {
    let mut settings = RateLimitSettings::default();
    let Some(mut fields) = node.as_ref().and_then(|node| {
        decoder.fields(
            node,
            &["burst_multiplier", "tier_multipliers", "per_second", "servers", "tools", "tokens_per_minute"],
        )
    }) else {
        return settings;
    };
    if let Some(node) = fields.take("burst_multiplier")
        && let Some(value) = positive_number(decoder, &node)
    {
        if value < 1.0 {
            decoder.at_value(&node, "the burst multiplier is at least 1 (the burst is rate × this)");
        } else {
            settings.burst_multiplier = value;
        }
    }
    if let Some(node) = fields.take("tokens_per_minute")
        && let Some(tokens) = decoder.positive_integer(&node)
    {
        settings.tokens_per_minute = tokens;
    }
    if let Some(node) = fields.take("tier_multipliers") {
        for (name, value) in decoder.entries(&node) {
            let Some(tier) = Tier::parse(&name) else {
                let names: Vec<&str> = Tier::ALL.iter().map(|tier| tier.as_str()).collect();
                decoder.at_key(&value, format!("unknown tier; use one of {}", names.join(", ")));
                continue;
            };
            if let Some(multiplier) = positive_number(decoder, &value) {
                settings.tier_multipliers.insert(tier, multiplier);
            }
        }
    }
    if let Some(node) = fields.take("per_second") {
        for (name, value) in decoder.entries(&node) {
            let Some(class) = RateClass::ALL.into_iter().find(|class| class.as_str() == name) else {
                let names: Vec<&str> = RateClass::ALL.iter().map(|class| class.as_str()).collect();
                decoder.at_key(&value, format!("unknown class; use one of {}", names.join(", ")));
                continue;
            };
            if let Some(rate) = positive_number(decoder, &value) {
                settings.per_second.insert(class, rate);
            }
        }
    }
    if let Some(node) = fields.take("servers") {
        for (name, value) in decoder.entries(&node) {
            let server = ServerName::parse(&name).map_err(|message| decoder.at_key(&value, message));
            if let (Ok(server), Some(rate)) = (server, positive_number(decoder, &value)) {
                settings.servers.insert(server, rate);
            }
        }
    }
    if let Some(node) = fields.take("tools") {
        for (name, value) in decoder.entries(&node) {
            let tool = tool_limit_name(&name).map_err(|message| decoder.at_key(&value, message));
            if let (Ok(tool), Some(rate)) = (tool, positive_number(decoder, &value)) {
                settings.tools.insert(tool, rate);
            }
        }
    }
    settings
}

/// A `tools` key: `server__tool` as the aggregated `/mcp` endpoint names the tool, split into the
/// server and the tool as the server's own endpoint names it.
fn tool_limit_name(name: &str) -> Result<(ServerName, String), String> {
    let Some((server, tool)) = name.split_once(SEPARATOR) else {
        return Err(
            "a tool is named `server__tool`, as /mcp lists it (e.g. `customers__delete_customer`); to limit a whole server use `servers`"
                .to_string(),
        );
    };
    // Server names cannot hold `_`, so the first `__` is always the separator, as in the gateway.
    let server = ServerName::parse(server).map_err(|message| format!("{message} (the part before `__`)"))?;
    if tool.is_empty() {
        return Err("the tool part after `__` is empty".to_string());
    }
    if !tool.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.')) {
        return Err("a tool name may contain only letters A-Z and a-z, digits, `_`, `-` and `.`".to_string());
    }
    if tool.len() > UPSTREAM_TOOL_NAME_MAX_LEN {
        return Err(format!("the tool part has at most {UPSTREAM_TOOL_NAME_MAX_LEN} characters (MCP's limit)"));
    }
    Ok((server, tool.to_string()))
}

/// A finite number greater than zero and at most [`MAX_RATE`].
fn positive_number(decoder: &mut Decoder, node: &Node) -> Option<f64> {
    let number = match node.value {
        Value::Number(number) => number.as_f64(),
        other => {
            decoder.at_value(node, format!("expected a number, found {}", kind(other)));
            return None;
        }
    };
    match number {
        Some(value) if value.is_finite() && value > 0.0 && value <= MAX_RATE => Some(value),
        _ => {
            decoder.at_value(node, format!("expected a number greater than 0 and at most {MAX_RATE}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn parse(text: &str) -> Result<RateLimitSettings, Vec<String>> {
        crate::parse_profile(text, "p.yaml", &|_| None)
            .map(|profile| profile.rate_limits)
            .map_err(|problems| problems.iter().map(ToString::to_string).collect())
    }

    fn server(name: &str) -> ServerName {
        ServerName::parse(name).unwrap()
    }

    #[test]
    fn server_and_tool_limits_are_read_and_scale_like_classes() {
        let settings = parse(
            "rate_limits:\n  burst_multiplier: 2\n  servers: { customers: 5, my-db2: 0.5 }\n  tools: { \"customers__delete_customer\": 1, everything__echo: 2.5, \"a__b__c\": 3 }\n",
        )
        .unwrap();
        assert_eq!(settings.servers.get(&server("customers")), Some(&5.0), "customers");
        assert_eq!(settings.servers.get(&server("my-db2")), Some(&0.5), "fractions are allowed");
        let tool =
            |server_name: &str, tool: &str| settings.tools.get(&(server(server_name), tool.to_string())).copied();
        assert_eq!(tool("customers", "delete_customer"), Some(1.0), "split at `__`");
        assert_eq!(tool("everything", "echo"), Some(2.5), "unquoted keys");
        assert_eq!(tool("a", "b__c"), Some(3.0), "only the first `__` separates, as in the gateway");
        assert_eq!(settings.scaled(5.0, Tier::Service), (25.0, 50), "tier multiplier, then burst multiplier");
        let defaults = parse("{}\n").unwrap();
        assert!(defaults.servers.is_empty() && defaults.tools.is_empty(), "no server or tool limits by default");
        let empty = parse("rate_limits:\n  servers:\n  tools: {}\n").unwrap();
        assert_eq!(empty, defaults, "empty sections are no limits");
    }

    #[test]
    fn bad_names_and_rates_are_reported_at_their_keys() {
        let cases = [
            ("servers: { Customers: 5 }", "p.yaml:2:14: rate_limits.servers.Customers: a server name may contain only"),
            ("servers: { my_db: 5 }", "rate_limits.servers.my_db: a server name may contain only"),
            ("servers: { \"\": 5 }", "a server name must not be empty"),
            ("tools: { delete_customer: 1 }", "rate_limits.tools.delete_customer: a tool is named `server__tool`"),
            ("tools: { customers_delete: 1 }", "rate_limits.tools.customers_delete: a tool is named `server__tool`"),
            ("tools: { \"__echo\": 1 }", "a server name must not be empty (the part before `__`)"),
            ("tools: { My-Server__echo: 1 }", "a server name may contain only lowercase letters"),
            ("tools: { \"everything__\": 1 }", "rate_limits.tools.everything__: the tool part after `__` is empty"),
            ("tools: { \"everything__a b\": 1 }", "a tool name may contain only letters"),
            ("tools: { \"everything__ech o\": 1 }", "a tool name may contain only letters"),
            ("servers: { customers: fast }", "rate_limits.servers.customers: expected a number, found a string"),
            ("servers: { customers: \"5\" }", "expected a number, found a string"),
            ("servers: { customers: 0 }", "rate_limits.servers.customers: expected a number greater than 0"),
            ("servers: { customers: -1 }", "expected a number greater than 0"),
            ("servers: { customers: 1000001 }", "and at most 1000000"),
            ("servers: { customers: .nan }", "expected a number greater than 0"),
            ("servers: { customers: }", "expected a number, found nothing (null)"),
            ("tools: { everything__echo: [1] }", "rate_limits.tools.everything__echo: expected a number, found a list"),
            ("tools: { everything__echo: .inf }", "expected a number greater than 0"),
            ("servers: [customers]", "rate_limits.servers: expected a mapping, found a list"),
            ("tools: everything__echo", "rate_limits.tools: expected a mapping, found a string"),
            ("server: { customers: 5 }", "rate_limits.server: unknown key `server`"),
        ];
        for (section, expected) in cases {
            let text = format!("rate_limits:\n  {section}\n");
            let problems = parse(&text).expect_err(&text);
            assert!(
                problems.iter().any(|line| line.contains(expected)),
                "{section:?} should report {expected:?}: {problems:?}"
            );
        }
        let long = format!("everything__{}", "x".repeat(UPSTREAM_TOOL_NAME_MAX_LEN + 1));
        let problems = parse(&format!("rate_limits:\n  tools: {{ {long}: 1 }}\n")).expect_err("too long");
        assert!(problems.iter().any(|line| line.contains("at most 128 characters")), "{problems:?}");
        let longest = &long[..long.len() - 1];
        assert!(
            parse(&format!("rate_limits:\n  tools: {{ {longest}: 1 }}\n")).is_ok(),
            "a 128-character upstream name fits, though clients see it shortened on /mcp"
        );
    }

    #[test]
    fn a_bad_name_and_a_bad_rate_in_one_entry_are_both_reported() {
        let problems = parse("rate_limits:\n  tools: { echo: zero }\n").expect_err("two problems");
        assert_eq!(problems.len(), 2, "{problems:?}");
    }
}
