//! The governance snapshot: RBAC, rate limits, hook chains and the tool-pinning mode of one
//! profile, compiled together and swapped in one atomic store, so no request ever sees half of a
//! new profile (new RBAC with the old hooks, say). Request handlers read it without a mailbox.

use std::sync::Arc;

use arc_swap::ArcSwap;
use castellan_actors::PolicySnapshot;
use castellan_config::{Profile, ToolChanges};

use crate::governance::rate_limit::Limits;
use crate::hooks::{HookCall, HookChains, HookOutcome, Hooks};

/// Everything a governed request is judged by, from one profile.
pub struct Snapshot {
    /// Starts at 1; each reload adds one.
    pub generation: u64,
    pub policy: Arc<PolicySnapshot>,
    pub limits: Arc<Limits>,
    pub hooks: Arc<HookChains>,
    pub tool_changes: ToolChanges,
}

impl Snapshot {
    /// Compiles `profile`; rate-limit buckets are carried over from `previous` when the limits
    /// did not change (a rebuilt bucket would forget what was spent).
    pub fn compile(profile: &Profile, previous: Option<&Snapshot>) -> Snapshot {
        let generation = previous.map_or(1, |previous| previous.generation + 1);
        Snapshot {
            generation,
            policy: Arc::new(PolicySnapshot { rbac: profile.rbac.clone(), generation }),
            limits: Limits::compile(&profile.rate_limits, previous.map(|previous| &previous.limits)),
            hooks: Arc::new(HookChains::compile(&profile.hooks)),
            tool_changes: profile.server.tool_changes,
        }
    }
}

/// The snapshot in force; replaced whole on reload.
pub struct Policies {
    current: ArcSwap<Snapshot>,
}

impl Policies {
    pub fn new(profile: &Profile) -> Self {
        Policies { current: ArcSwap::from_pointee(Snapshot::compile(profile, None)) }
    }

    /// The snapshot in force now; a request keeps the one it loaded to its end.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Compiles and publishes a reloaded (already validated) profile; returns its generation.
    pub fn apply(&self, profile: &Profile) -> u64 {
        let next = Snapshot::compile(profile, Some(&self.current.load()));
        let generation = next.generation;
        self.current.store(Arc::new(next));
        generation
    }
}

/// The hook runner bound to one snapshot's chains, for the chain.
pub struct SnapshotHooks<'a> {
    pub runner: &'a Hooks,
    pub chains: &'a HookChains,
}

impl super::HookRunner for SnapshotHooks<'_> {
    fn has(&self, event: castellan_config::HookEvent) -> bool {
        self.chains.has(event)
    }

    fn run<'a>(&'a self, call: &'a HookCall<'a>) -> futures_util::future::BoxFuture<'a, HookOutcome> {
        Box::pin(self.runner.run(self.chains, call))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use castellan_config::{HookEvent, Tier};

    fn profile(text: &str) -> Profile {
        let env = |_: &str| None;
        castellan_config::parse_profile(text, "t.yaml", &env).expect("valid profile")
    }

    const BEFORE: &str = r#"
database: { url: "sqlite::memory:" }
rbac: { default: allow }
rate_limits: { per_second: { mcp_tool_call: 5 } }
"#;
    const AFTER: &str = r#"
database: { url: "sqlite::memory:" }
server: { tool_changes: block }
rbac: { default: deny }
rate_limits: { per_second: { mcp_tool_call: 5 } }
hooks:
  PreToolUse:
    - { builtin: deny_tools, tools: ["*"] }
"#;

    #[test]
    fn a_reload_replaces_rbac_hooks_and_pin_mode_in_one_store_and_keeps_unchanged_buckets() {
        let policies = Policies::new(&profile(BEFORE));
        let before = policies.load();
        assert_eq!(before.generation, 1);
        assert!(before.policy.decide(Tier::User, "s", "t").is_allowed());
        assert!(!before.hooks.has(HookEvent::PreToolUse));
        assert_eq!(before.tool_changes, ToolChanges::Warn);

        assert_eq!(policies.apply(&profile(AFTER)), 2);
        let after = policies.load();
        assert!(!after.policy.decide(Tier::User, "s", "t").is_allowed(), "the new RBAC");
        assert!(after.hooks.has(HookEvent::PreToolUse), "with the new hooks");
        assert_eq!(after.tool_changes, ToolChanges::Block, "and the new pinning mode");
        assert_eq!(after.policy.generation, after.generation, "all of one generation");
        assert!(Arc::ptr_eq(&before.limits, &after.limits), "unchanged limits keep their spent buckets");
        // A request that loaded the old snapshot keeps judging by it to its end.
        assert!(before.policy.decide(Tier::User, "s", "t").is_allowed());
    }
}
