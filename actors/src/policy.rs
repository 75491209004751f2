//! RBAC decisions and the PolicyEngine actor that publishes the compiled policy snapshot.
//!
//! The decision is a plain function over plain types so that the same code filters `tools/list` and
//! guards `tools/call`; handlers read the current snapshot through `arc-swap`, never a mailbox.

use std::sync::Arc;

use actix::prelude::*;
use arc_swap::ArcSwap;
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
}

/// Owns the current snapshot; handlers hold a clone of `snapshot` and `load()` it per request.
pub struct PolicyEngine {
    pub snapshot: Arc<ArcSwap<PolicySnapshot>>,
}

impl PolicyEngine {
    pub fn new(rbac: RbacSettings) -> Self {
        Self { snapshot: Arc::new(ArcSwap::from_pointee(PolicySnapshot { rbac, generation: 1 })) }
    }
}

impl Actor for PolicyEngine {
    type Context = Context<Self>;
}

/// Replace the policy with one compiled from a profile that already passed validation.
#[derive(Message)]
#[rtype(result = "u64")]
pub struct ApplyPolicy(pub RbacSettings);

impl Handler<ApplyPolicy> for PolicyEngine {
    type Result = u64;
    fn handle(&mut self, message: ApplyPolicy, _: &mut Context<Self>) -> u64 {
        let generation = self.snapshot.load().generation + 1;
        self.snapshot.store(Arc::new(PolicySnapshot { rbac: message.0, generation }));
        generation
    }
}
