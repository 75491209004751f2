//! RBAC decisions: plain functions over plain types, so that the same code filters `tools/list`
//! and guards `tools/call`, and filters `GET /v1/models` and guards model requests. The snapshot they are read from is published by the daemon's
//! `governance::Policies` together with the rate limits and hook chains of the same profile (one
//! atomic store: a separate actor for RBAC alone let a reload show new RBAC with old hooks).

use castellan_config::{Effect, RbacRule, RbacSettings, Tier, glob_matches};

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

/// A decision together with the rule that made it, for `castellan policy explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub decision: Decision,
    /// The index in `rbac.rules` of the deciding rule; `None` when the default applied.
    pub rule_index: Option<usize>,
}

/// Any matching deny wins; else any matching allow; else the default.
pub fn decide(rbac: &RbacSettings, tier: Tier, server: &str, tool: &str) -> Decision {
    explain(rbac, tier, server, tool).decision
}

/// What [`decide`] decides, and which rule (by index) decided it. The first matching deny wins;
/// else the first matching allow; else the default.
pub fn explain(rbac: &RbacSettings, tier: Tier, server: &str, tool: &str) -> Explanation {
    // A rule for model requests has no server or tool patterns, so it matches no tool call.
    explain_matching(rbac, tier, |rule| {
        rule.servers.iter().any(|pattern| pattern.matches(server))
            && rule.tools.iter().any(|pattern| pattern.matches(tool))
    })
}

/// The decision for a request of model `model` (the name the client asked for), with the same
/// semantics as a tool call's: any matching deny wins, else any matching allow, else the default.
/// Only rules that name `models` match; tool rules have none.
pub fn decide_model(rbac: &RbacSettings, tier: Tier, model: &str) -> Decision {
    explain_model(rbac, tier, model).decision
}

/// What [`decide_model`] decides, and which rule (by index) decided it.
pub fn explain_model(rbac: &RbacSettings, tier: Tier, model: &str) -> Explanation {
    explain_matching(rbac, tier, |rule| rule.models.iter().any(|pattern| glob_matches(pattern, model)))
}

/// The decision for skill `skill`, with the same semantics as a tool call's: any matching deny
/// wins, else any matching allow, else the default. Only rules that name `skills` match.
pub fn decide_skill(rbac: &RbacSettings, tier: Tier, skill: &str) -> Decision {
    explain_skill(rbac, tier, skill).decision
}

/// What [`decide_skill`] decides, and which rule (by index) decided it.
pub fn explain_skill(rbac: &RbacSettings, tier: Tier, skill: &str) -> Explanation {
    explain_matching(rbac, tier, |rule| rule.skills.iter().any(|pattern| glob_matches(pattern, skill)))
}

/// The first matching deny wins; else the first matching allow; else the default. A rule matches
/// when the tier is within its bounds and `targets` says it covers the request.
fn explain_matching(rbac: &RbacSettings, tier: Tier, targets: impl Fn(&RbacRule) -> bool) -> Explanation {
    let mut first_allow: Option<(usize, &str)> = None;
    for (index, rule) in rbac.rules.iter().enumerate() {
        let tier_fits = rule.min_tier.is_none_or(|min| tier >= min) && rule.max_tier.is_none_or(|max| tier <= max);
        if !tier_fits || !targets(rule) {
            continue;
        }
        match rule.effect {
            Effect::Deny => {
                return Explanation { decision: Decision::Deny { rule: rule.name.clone() }, rule_index: Some(index) };
            }
            Effect::Allow => {
                first_allow.get_or_insert((index, rule.name.as_str()));
            }
        }
    }
    match (first_allow, rbac.default) {
        (Some((index, rule)), _) => {
            Explanation { decision: Decision::Allow { rule: rule.to_string() }, rule_index: Some(index) }
        }
        (None, Effect::Allow) => {
            Explanation { decision: Decision::Allow { rule: DEFAULT_RULE_NAME.to_string() }, rule_index: None }
        }
        (None, Effect::Deny) => {
            Explanation { decision: Decision::Deny { rule: DEFAULT_RULE_NAME.to_string() }, rule_index: None }
        }
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

    /// Whether the tier may request `model` (the name the client asked for); see [`decide_model`].
    pub fn decide_model(&self, tier: Tier, model: &str) -> Decision {
        decide_model(&self.rbac, tier, model)
    }

    /// Whether the tier may see and fetch skill `skill`; see [`decide_skill`].
    pub fn decide_skill(&self, tier: Tier, skill: &str) -> Decision {
        decide_skill(&self.rbac, tier, skill)
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
    fn skills_follow_only_the_rules_that_name_skills() {
        let text = r#"
database: { url: "sqlite::memory:" }
rbac:
  default: deny
  rules:
    - { name: tools-for-users, effect: allow, min_tier: user, servers: ["*"], tools: ["*"] }
    - { name: skills-for-users, effect: allow, min_tier: user, skills: ["*"] }
    - { name: no-release-skills-below-admin, effect: deny, max_tier: user, skills: ["release-*"] }
"#;
        let env = |_: &str| None;
        let rbac = castellan_config::parse_profile(text, "t.yaml", &env).expect("valid profile").rbac;
        let cases = [
            (Tier::User, "pdf", Decision::Allow { rule: "skills-for-users".into() }),
            (Tier::User, "release-notes", Decision::Deny { rule: "no-release-skills-below-admin".into() }),
            (Tier::Admin, "release-notes", Decision::Allow { rule: "skills-for-users".into() }),
            (Tier::Mcp, "pdf", Decision::Deny { rule: DEFAULT_RULE_NAME.into() }),
        ];
        for (tier, skill, expected) in cases {
            assert_eq!(decide_skill(&rbac, tier, skill), expected, "{} on skill {skill}", tier.as_str());
        }
        // The tool rule allows every tool to users; it says nothing about skills, and back.
        let tools_only = castellan_config::parse_profile(
            "database: { url: \"sqlite::memory:\" }\nrbac:\n  rules:\n    - { effect: allow, servers: [\"*\"], tools: [\"*\"] }\n",
            "t.yaml",
            &env,
        )
        .expect("valid profile")
        .rbac;
        assert!(!decide_skill(&tools_only, Tier::Admin, "pdf").is_allowed(), "a tool rule grants no skill");
        assert_eq!(decide(&rbac, Tier::User, "customers", "get"), Decision::Allow { rule: "tools-for-users".into() });
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

#[cfg(test)]
mod explain_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use castellan_config::{NamePattern, RbacRule};

    use super::*;

    fn rule(
        name: &str,
        effect: Effect,
        min: Option<Tier>,
        max: Option<Tier>,
        servers: &[&str],
        tools: &[&str],
    ) -> RbacRule {
        let patterns = |names: &[&str]| names.iter().map(|name| NamePattern::parse(name).unwrap()).collect();
        RbacRule {
            name: name.to_string(),
            effect,
            min_tier: min,
            max_tier: max,
            servers: patterns(servers),
            tools: patterns(tools),
            models: Vec::new(),
            skills: Vec::new(),
        }
    }

    /// The default test profile's rules.
    fn rbac(default: Effect) -> RbacSettings {
        RbacSettings {
            default,
            rules: vec![
                rule("users-may-use-tools", Effect::Allow, Some(Tier::User), None, &["*"], &["*"]),
                rule("services-may-use-tools", Effect::Allow, Some(Tier::Service), None, &["*"], &["*"]),
                rule("no-destructive-for-users", Effect::Deny, None, Some(Tier::User), &["customers"], &["delete_*"]),
            ],
        }
    }

    #[test]
    fn explain_names_the_deciding_rule_by_index() {
        let cases = [
            (Effect::Deny, Tier::User, "customers", "get_customer", true, Some(0), "users-may-use-tools"),
            (Effect::Deny, Tier::Service, "customers", "get_customer", true, Some(1), "services-may-use-tools"),
            (Effect::Deny, Tier::User, "customers", "delete_customer", false, Some(2), "no-destructive-for-users"),
            (Effect::Deny, Tier::Service, "customers", "delete_customer", false, Some(2), "no-destructive-for-users"),
            (Effect::Deny, Tier::Admin, "customers", "delete_customer", true, Some(0), "users-may-use-tools"),
            (Effect::Deny, Tier::Anonymous, "customers", "get_customer", false, None, DEFAULT_RULE_NAME),
            (Effect::Allow, Tier::Anonymous, "customers", "get_customer", true, None, DEFAULT_RULE_NAME),
            (Effect::Allow, Tier::Mcp, "other", "delete_all", true, None, DEFAULT_RULE_NAME),
        ];
        for (default, tier, server, tool, allowed, index, name) in cases {
            let rbac = rbac(default);
            let explanation = explain(&rbac, tier, server, tool);
            let case = format!("{tier:?} {server}/{tool} default {default:?}: {explanation:?}");
            assert_eq!(explanation.decision.is_allowed(), allowed, "{case}");
            assert_eq!(explanation.rule_index, index, "{case}");
            let rule = match &explanation.decision {
                Decision::Allow { rule } | Decision::Deny { rule } => rule.clone(),
            };
            assert_eq!(rule, name, "{case}");
            assert_eq!(decide(&rbac, tier, server, tool), explanation.decision, "decide agrees with explain: {case}");
        }
    }

    #[test]
    fn a_later_deny_beats_an_earlier_allow_and_the_first_allow_is_cited() {
        let rbac = RbacSettings {
            default: Effect::Deny,
            rules: vec![
                rule("a", Effect::Allow, None, None, &["*"], &["*"]),
                rule("b", Effect::Allow, None, None, &["*"], &["read_*"]),
                rule("c", Effect::Deny, None, None, &["s"], &["read_secret"]),
            ],
        };
        assert_eq!(explain(&rbac, Tier::User, "s", "read_notes").rule_index, Some(0), "first allow");
        let denied = explain(&rbac, Tier::User, "s", "read_secret");
        assert_eq!((denied.decision.is_allowed(), denied.rule_index), (false, Some(2)), "deny wins");
    }
}

#[cfg(test)]
mod model_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn rbac(default: &str) -> RbacSettings {
        let text = format!(
            r#"
rbac:
  default: {default}
  rules:
    - {{ name: users-may-use-tools, effect: allow, min_tier: user, servers: ["*"], tools: ["*"] }}
    - {{ name: users-may-use-claude, effect: allow, min_tier: user, models: ["claude-*"] }}
    - {{ name: no-opus-for-users, effect: deny, max_tier: user, models: ["claude-opus-*"] }}
    - {{ name: services-fast, effect: allow, min_tier: service, max_tier: service, models: ["fast", "gpt-4.?-mini"] }}
    - {{ name: nobody-gets-o1, effect: deny, models: ["o1*"] }}
"#
        );
        castellan_config::parse_profile(&text, "t.yaml", &|_| None).expect("valid profile").rbac
    }

    #[test]
    fn model_decisions_take_deny_then_allow_then_the_default() {
        let allow = |rule: &str| Decision::Allow { rule: rule.to_string() };
        let deny = |rule: &str| Decision::Deny { rule: rule.to_string() };
        let cases = [
            ("deny", Tier::User, "claude-sonnet-4-5", allow("users-may-use-claude")),
            ("deny", Tier::User, "claude-opus-4-1", deny("no-opus-for-users")),
            ("deny", Tier::Service, "claude-opus-4-1", deny("no-opus-for-users")),
            ("deny", Tier::Admin, "claude-opus-4-1", allow("users-may-use-claude")),
            ("deny", Tier::Anonymous, "claude-sonnet-4-5", deny(DEFAULT_RULE_NAME)),
            ("deny", Tier::Service, "fast", allow("services-fast")),
            ("deny", Tier::Service, "gpt-4.1-mini", allow("services-fast")),
            ("deny", Tier::Service, "gpt-4.10-mini", deny(DEFAULT_RULE_NAME)),
            ("deny", Tier::User, "fast", deny(DEFAULT_RULE_NAME)),
            ("deny", Tier::Admin, "o1-preview", deny("nobody-gets-o1")),
            ("allow", Tier::Anonymous, "gemini-2.5-pro", allow(DEFAULT_RULE_NAME)),
            ("allow", Tier::Admin, "o1", deny("nobody-gets-o1")),
            // The tool rule `servers: ["*"], tools: ["*"]` says nothing about models.
            ("deny", Tier::User, "gemini-2.5-pro", deny(DEFAULT_RULE_NAME)),
        ];
        for (default, tier, model, expected) in cases {
            let rbac = rbac(default);
            assert_eq!(decide_model(&rbac, tier, model), expected, "{} asking for {model}, default {default}", tier);
            let snapshot = PolicySnapshot { rbac, generation: 1 };
            assert_eq!(snapshot.decide_model(tier, model), expected, "the snapshot agrees: {model}");
        }
        let explained = explain_model(&rbac("deny"), Tier::User, "claude-opus-4-1");
        assert_eq!(explained.rule_index, Some(2), "explain names the deciding rule by index");
    }

    #[test]
    fn model_rules_do_not_decide_tool_calls_and_tool_rules_do_not_decide_models() {
        let models_only = castellan_config::parse_profile(
            "rbac:\n  rules:\n    - { name: all-models, effect: allow, models: [\"*\"] }\n",
            "t.yaml",
            &|_| None,
        )
        .expect("valid")
        .rbac;
        assert_eq!(
            decide(&models_only, Tier::Admin, "customers", "get_customer"),
            Decision::Deny { rule: DEFAULT_RULE_NAME.into() },
            "an allow-every-model rule allows no tool"
        );
        assert!(decide_model(&models_only, Tier::Anonymous, "anything").is_allowed(), "but every model");
        let tools_only = castellan_config::parse_profile(
            "rbac:\n  rules:\n    - { name: all-tools, effect: allow }\n",
            "t.yaml",
            &|_| None,
        )
        .expect("valid")
        .rbac;
        assert!(decide(&tools_only, Tier::Anonymous, "s", "t").is_allowed(), "a rule naming nothing is for tools");
        assert_eq!(
            decide_model(&tools_only, Tier::Admin, "claude-sonnet-4-5"),
            Decision::Deny { rule: DEFAULT_RULE_NAME.into() },
            "and allows no model"
        );
        let deny_models = RbacSettings {
            default: Effect::Allow,
            rules: models_only
                .rules
                .iter()
                .cloned()
                .map(|mut rule| {
                    rule.effect = Effect::Deny;
                    rule
                })
                .collect(),
        };
        assert!(decide(&deny_models, Tier::User, "s", "t").is_allowed(), "a model deny does not deny tools");
        assert!(!decide_model(&deny_models, Tier::User, "m").is_allowed(), "it denies models");
    }
}
