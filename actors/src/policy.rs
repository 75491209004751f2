//! RBAC decisions: plain functions over plain types, so that the same code filters `tools/list`
//! and guards `tools/call`. The snapshot they are read from is published by the daemon's
//! `governance::Policies` together with the rate limits and hook chains of the same profile (one
//! atomic store: a separate actor for RBAC alone let a reload show new RBAC with old hooks).

use castellan_config::{Effect, RbacSettings, Tier};

/// Why a call is allowed or denied; the rule name is what `forbidden:` errors and audit rows cite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow { rule: String },
    Deny { rule: String },
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }
}

/// The name reported when no rule matched and the default applied.
pub const DEFAULT_RULE_NAME: &str = "rbac.default";

/// Any matching deny wins; else any matching allow; else the default.
pub fn decide(rbac: &RbacSettings, tier: Tier, server: &str, tool: &str) -> Decision {
    let mut first_allow: Option<&str> = None;
    for rule in &rbac.rules {
        let tier_fits = rule.min_tier.is_none_or(|min| tier >= min) && rule.max_tier.is_none_or(|max| tier <= max);
        if !tier_fits
            || !rule.servers.iter().any(|pattern| pattern.matches(server))
            || !rule.tools.iter().any(|pattern| pattern.matches(tool))
        {
            continue;
        }
        match rule.effect {
            Effect::Deny => return Decision::Deny { rule: rule.name.clone() },
            Effect::Allow => {
                first_allow.get_or_insert(rule.name.as_str());
            }
        }
    }
    match (first_allow, rbac.default) {
        (Some(rule), _) => Decision::Allow { rule: rule.to_string() },
        (None, Effect::Allow) => Decision::Allow { rule: DEFAULT_RULE_NAME.to_string() },
        (None, Effect::Deny) => Decision::Deny { rule: DEFAULT_RULE_NAME.to_string() },
    }
}

/// The compiled policy in force. Immutable; a reload builds a new one.
#[derive(Debug, Clone)]
pub struct PolicySnapshot {
    pub rbac: RbacSettings,
    pub generation: u64,
}

impl PolicySnapshot {
    pub fn decide(&self, tier: Tier, server: &str, tool: &str) -> Decision {
        decide(&self.rbac, tier, server, tool)
    }

    /// Whether the tier may reach `server` itself (its resources, prompts and completions):
    /// allowed when the server's `*` is, or else when any of its tools is; a denial names the
    /// rule that denied the server's `*`.
    pub fn decide_server<'t>(&self, tier: Tier, server: &str, tools: impl IntoIterator<Item = &'t str>) -> Decision {
        decide_server(&self.rbac, tier, server, tools)
    }
}

/// [`PolicySnapshot::decide_server`] over plain settings.
pub fn decide_server<'t>(
    rbac: &RbacSettings,
    tier: Tier,
    server: &str,
    tools: impl IntoIterator<Item = &'t str>,
) -> Decision {
    let whole = decide(rbac, tier, server, "*");
    if whole.is_allowed() {
        return whole;
    }
    tools.into_iter().map(|tool| decide(rbac, tier, server, tool)).find(Decision::is_allowed).unwrap_or(whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rbac() -> RbacSettings {
        let text = r#"
database: { url: "sqlite::memory:" }
rbac:
  default: deny
  rules:
    - { name: users-may-use-tools, effect: allow, min_tier: user, servers: ["*"], tools: ["*"] }
    - { name: no-destructive-for-users, effect: deny, max_tier: user, servers: ["customers"], tools: ["delete_*"] }
    - { name: services-read, effect: allow, min_tier: service, servers: ["customers"], tools: ["get_*"] }
    - { name: billing-closed, effect: deny, servers: ["billing"], tools: ["*"] }
"#;
        let env = |_: &str| None;
        castellan_config::parse_profile(text, "t.yaml", &env).expect("valid profile").rbac
    }

    #[test]
    fn deny_wins_then_allow_then_the_default() {
        let rbac = rbac();
        let cases = [
            (Tier::User, "customers", "get_customer", Decision::Allow { rule: "users-may-use-tools".into() }),
            (Tier::User, "customers", "delete_customer", Decision::Deny { rule: "no-destructive-for-users".into() }),
            (Tier::Admin, "customers", "delete_customer", Decision::Allow { rule: "users-may-use-tools".into() }),
            (Tier::Service, "customers", "get_customer", Decision::Allow { rule: "services-read".into() }),
            (Tier::Service, "customers", "list_customers", Decision::Deny { rule: DEFAULT_RULE_NAME.into() }),
            (Tier::Admin, "billing", "get_invoice", Decision::Deny { rule: "billing-closed".into() }),
            (Tier::Anonymous, "customers", "get_customer", Decision::Deny { rule: DEFAULT_RULE_NAME.into() }),
        ];
        for (tier, server, tool, expected) in cases {
            assert_eq!(decide(&rbac, tier, server, tool), expected, "{} on {server}__{tool}", tier.as_str());
        }
    }

    #[test]
    fn a_server_is_reachable_when_its_star_or_any_tool_is() {
        let rbac = rbac();
        let tools = ["get_customer", "delete_customer"];
        let service = decide_server(&rbac, Tier::Service, "customers", tools);
        assert_eq!(service, Decision::Allow { rule: "services-read".into() }, "one readable tool opens the server");
        let user = decide_server(&rbac, Tier::User, "customers", tools);
        assert_eq!(user, Decision::Allow { rule: "users-may-use-tools".into() });
        let closed = decide_server(&rbac, Tier::Admin, "billing", ["get_invoice"]);
        assert_eq!(closed, Decision::Deny { rule: "billing-closed".into() }, "the denial names the rule");
        let nothing = decide_server(&rbac, Tier::Service, "other", std::iter::empty());
        assert_eq!(nothing, Decision::Deny { rule: DEFAULT_RULE_NAME.into() });
    }
}
