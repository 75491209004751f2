//! `castellan policy explain`: what RBAC decides for a user and a tool or a model, and which rule
//! decided it, computed by the same functions the gateways call (`castellan_actors::policy::explain`,
//! `explain_model`) over the
//! profile's rules and the user's tier as stored in the database.

use std::process::ExitCode;

use castellan_actors::Decision;
use castellan_actors::policy::{explain, explain_model, explain_skill};
use castellan_config::{RbacRule, RbacSettings, Tier};
use clap::Subcommand;

use super::terminal::escape;
use super::{GlobalArgs, load_profile};

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Print the RBAC decision for USER calling SERVER__TOOL (or asking for MODEL) and the rule that
    /// made it (its index in rbac.rules and its text, or "default"). Exit 0 when allowed; 1 when
    /// denied, or when no decision could be made (unknown user, malformed name, no database: the
    /// message says which). `--agent` (A2A) comes with that feature.
    Explain {
        /// A user name, looked up in the database for its tier.
        #[arg(long)]
        user: String,
        /// The tool as clients see it: `{server}__{tool}`, e.g. customers__delete_customer.
        #[arg(long, required_unless_present_any = ["model", "skill"], conflicts_with_all = ["model", "skill"])]
        tool: Option<String>,
        /// A model name as clients ask for it (AI requests), e.g. claude-opus-4-5.
        #[arg(long, conflicts_with = "skill")]
        model: Option<String>,
        /// A skill's name: whether the user sees and may fetch it.
        #[arg(long)]
        skill: Option<String>,
    },
}

pub async fn run(global: &GlobalArgs, command: PolicyCommand) -> Result<ExitCode, String> {
    let PolicyCommand::Explain { user, tool, model, skill } = command;
    match (tool, model, skill) {
        (Some(tool), _, _) => explain_call(global, &user, &tool).await,
        (None, Some(model), _) => explain_model_request(global, &user, &model).await,
        (None, None, Some(skill)) => explain_skill_fetch(global, &user, &skill).await,
        (None, None, None) => Err("give --tool SERVER__TOOL, --model MODEL or --skill NAME".into()),
    }
}

async fn explain_skill_fetch(global: &GlobalArgs, user: &str, skill: &str) -> Result<ExitCode, String> {
    let (profile, _) = load_profile(global)?;
    let (row, tier) = user_and_tier(global, &profile, user).await?;
    let explanation = explain_skill(&profile.rbac, tier, skill);
    let allowed = explanation.decision.is_allowed() && !row.disabled;
    println!("decision: {}", if allowed { "allow" } else { "deny" });
    println!("user: {} (tier {})", row.name, tier.as_str());
    println!("skill: {}", escape(skill));
    println!("rule: {}", describe_rule(&profile.rbac, explanation.rule_index, &explanation.decision));
    if row.disabled {
        println!("note: the user is disabled: authentication refuses every request before RBAC is asked");
    }
    Ok(if allowed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn explain_model_request(global: &GlobalArgs, user: &str, model: &str) -> Result<ExitCode, String> {
    let (profile, _) = load_profile(global)?;
    let (row, tier) = user_and_tier(global, &profile, user).await?;
    let route = profile.route(model);
    if route.is_none() {
        eprintln!("note: no route of `models` matches '{}'; the gateway answers 404 before RBAC", escape(model));
    }
    let explanation = explain_model(&profile.rbac, tier, model);
    let allowed = explanation.decision.is_allowed() && !row.disabled;
    println!("decision: {}", if allowed { "allow" } else { "deny" });
    println!("user: {} (tier {})", row.name, tier.as_str());
    match route {
        Some((key, route)) => println!(
            "model: {} (route '{}', provider {}, upstream {})",
            escape(model),
            escape(key),
            escape(&route.provider),
            escape(route.upstream_model(model))
        ),
        None => println!("model: {} (no route)", escape(model)),
    }
    println!("rule: {}", describe_rule(&profile.rbac, explanation.rule_index, &explanation.decision));
    if row.disabled {
        println!("note: the user is disabled: authentication refuses every request before RBAC is asked");
    }
    Ok(if allowed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The user's row and tier, from the database the profile names.
async fn user_and_tier(
    global: &GlobalArgs,
    profile: &castellan_config::Profile,
    user: &str,
) -> Result<(castellan_schema::users::UserRow, Tier), String> {
    let db = super::database::open_existing(global, profile).await?;
    let row = castellan_schema::users::find_by_name(&db, user)
        .await
        .map_err(|error| error.to_string())?
        .ok_or_else(|| format!("no user named '{}'", escape(user)))?;
    let tier =
        Tier::parse(&row.tier).ok_or_else(|| format!("user '{}' has an unknown tier '{}'", row.name, row.tier))?;
    Ok((row, tier))
}

async fn explain_call(global: &GlobalArgs, user: &str, exposed_tool: &str) -> Result<ExitCode, String> {
    let (server, tool) = split_exposed_name(exposed_tool)?;
    let (profile, _) = load_profile(global)?;
    let (row, tier) = user_and_tier(global, &profile, user).await?;
    if !profile.mcp_servers.keys().any(|name| name.as_str() == server) {
        eprintln!("note: the profile has no server '{}'; the rules are evaluated anyway", escape(server));
    }
    let explanation = explain(&profile.rbac, tier, server, tool);
    let allowed = explanation.decision.is_allowed() && !row.disabled;
    println!("decision: {}", if allowed { "allow" } else { "deny" });
    println!("user: {} (tier {})", row.name, tier.as_str());
    println!("tool: {} (server {}, tool {})", escape(exposed_tool), escape(server), escape(tool));
    println!("rule: {}", describe_rule(&profile.rbac, explanation.rule_index, &explanation.decision));
    if row.disabled {
        println!("note: the user is disabled: authentication refuses every request before RBAC is asked");
    }
    Ok(if allowed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `server__tool` at its first `__` (server names have no underscore, tool names may).
fn split_exposed_name(exposed: &str) -> Result<(&str, &str), String> {
    match exposed.split_once("__") {
        Some((server, tool)) if !server.is_empty() && !tool.is_empty() => Ok((server, tool)),
        _ => Err(format!(
            "--tool '{}' is not SERVER__TOOL (the name clients see, e.g. customers__get_customer)",
            escape(exposed)
        )),
    }
}

fn describe_rule(rbac: &RbacSettings, index: Option<usize>, decision: &Decision) -> String {
    match index.and_then(|index| rbac.rules.get(index).map(|rule| (index, rule))) {
        Some((index, rule)) => {
            let position = format!("rbac.rules[{index}]");
            if rule.name == position {
                format!("{position} {}", rule_text(rule))
            } else {
                format!("{position} '{}' {}", rule.name, rule_text(rule))
            }
        }
        None => {
            format!("default: {} (no rule of rbac.rules matched)", if decision.is_allowed() { "allow" } else { "deny" })
        }
    }
}

/// A rule as it could be written in the profile.
fn rule_text(rule: &RbacRule) -> String {
    let list = |patterns: &[castellan_config::NamePattern]| {
        let names: Vec<String> = patterns.iter().map(|pattern| format!("\"{pattern}\"")).collect();
        format!("[{}]", names.join(", "))
    };
    let mut parts = vec![format!("effect: {}", rule.effect.as_str())];
    if let Some(min) = rule.min_tier {
        parts.push(format!("min_tier: {}", min.as_str()));
    }
    if let Some(max) = rule.max_tier {
        parts.push(format!("max_tier: {}", max.as_str()));
    }
    let globs = |globs: &[String]| {
        let quoted: Vec<String> = globs.iter().map(|pattern| format!("\"{pattern}\"")).collect();
        format!("[{}]", quoted.join(", "))
    };
    if !rule.models.is_empty() {
        parts.push(format!("models: {}", globs(&rule.models)));
    } else if !rule.skills.is_empty() {
        parts.push(format!("skills: {}", globs(&rule.skills)));
    } else {
        parts.push(format!("servers: {}", list(&rule.servers)));
        parts.push(format!("tools: {}", list(&rule.tools)));
    }
    format!("{{ {} }}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use castellan_config::{Effect, NamePattern};

    use super::*;

    #[test]
    fn exposed_names_split_at_the_first_double_underscore() {
        assert_eq!(split_exposed_name("customers__get_customer").unwrap(), ("customers", "get_customer"));
        assert_eq!(split_exposed_name("s__a__b").unwrap(), ("s", "a__b"));
        for bad in ["customers", "__tool", "server__", ""] {
            assert!(split_exposed_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rules_are_described_by_index_name_and_text() {
        let rule = RbacRule {
            name: "no-destructive-for-users".into(),
            effect: Effect::Deny,
            min_tier: None,
            max_tier: Some(Tier::User),
            servers: vec![NamePattern::parse("customers").unwrap()],
            tools: vec![NamePattern::parse("delete_*").unwrap()],
            models: vec![],
            skills: vec![],
        };
        let rbac = RbacSettings { default: Effect::Deny, rules: vec![rule] };
        let denied = Decision::Deny { rule: "x".into() };
        assert_eq!(
            describe_rule(&rbac, Some(0), &denied),
            r#"rbac.rules[0] 'no-destructive-for-users' { effect: deny, max_tier: user, servers: ["customers"], tools: ["delete_*"] }"#
        );
        assert_eq!(describe_rule(&rbac, None, &denied), "default: deny (no rule of rbac.rules matched)");
    }
}
