//! The Reconciler: holds the desired set of MCP servers and drives the running set to it.
//!
//! Level-triggered and idempotent: every profile change and a periodic timer run the same
//! `reconcile`, which starts what is missing, stops what was removed, and restarts what changed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix::prelude::*;
use castellan_config::{McpServerSpec, ServerName};
use futures_util::future::join_all;
use tokio::sync::oneshot;

use crate::event_bus::Event;
use crate::mcp_server::{McpServer, RestartServer, ServerContext, StopServer};

/// What runs now under one name, as far as the plan cares.
pub struct Actual<'a> {
    pub spec: &'a McpServerSpec,
    /// False when the server's actor has gone (it crashed or gave up).
    pub alive: bool,
}

/// What one reconcile does: stop what is no longer desired, restart what changed or died, start
/// what is missing. Each name appears in at most one list; the lists are sorted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub stop: Vec<String>,
    pub restart: Vec<String>,
    pub start: Vec<String>,
}

/// The decision of a reconcile, apart from its effects: a pure function of the desired specs and
/// what runs (kube-rs style: the reason it was triggered is deliberately not an input).
pub fn plan(desired: &BTreeMap<String, McpServerSpec>, actual: &BTreeMap<String, Actual<'_>>) -> Plan {
    let mut plan = Plan::default();
    for (name, running) in actual {
        match desired.get(name) {
            None => plan.stop.push(name.clone()),
            Some(spec) if spec != running.spec || !running.alive => plan.restart.push(name.clone()),
            Some(_) => {}
        }
    }
    plan.start = desired.keys().filter(|name| !actual.contains_key(*name)).cloned().collect();
    plan
}

/// How often the reconciler re-checks even without a change (drift fallback).
const RESYNC_INTERVAL: Duration = Duration::from_secs(10);

struct Running {
    spec: McpServerSpec,
    actor: Addr<McpServer>,
    /// A secret its definition references changed since it started: restart it with the new value.
    stale: bool,
}

pub struct Reconciler {
    context: Arc<ServerContext>,
    desired: BTreeMap<String, McpServerSpec>,
    running: BTreeMap<String, Running>,
    /// Set once every desired server has had its first start attempt: part of readiness.
    pub converged_once: Arc<AtomicBool>,
    shutting_down: bool,
}

impl Reconciler {
    pub fn new(context: Arc<ServerContext>, converged_once: Arc<AtomicBool>) -> Self {
        Self { context, desired: BTreeMap::new(), running: BTreeMap::new(), converged_once, shutting_down: false }
    }

    fn reconcile(&mut self, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        let actual: BTreeMap<String, Actual<'_>> = self
            .running
            .iter()
            .map(|(name, running)| {
                (name.clone(), Actual { spec: &running.spec, alive: running.actor.connected() && !running.stale })
            })
            .collect();
        let plan = plan(&self.desired, &actual);
        let mut stops = Vec::new();
        for (name, action) in
            plan.stop.iter().map(|name| (name, "stop")).chain(plan.restart.iter().map(|name| (name, "restart")))
        {
            if let Some(running) = self.running.remove(name) {
                self.context.bus.publish(Event::ReconcileAction { server: name.clone(), action: action.into() });
                stops.push(running.actor.send(StopServer));
            }
        }
        let mut settled = Vec::new();
        // Changed servers start only once their old process is gone, so a fixed port is free again.
        let start_after_stops = join_all(stops);
        ctx.wait(start_after_stops.into_actor(self).map(move |_, actor, _| {
            for (name, spec) in actor.desired.clone() {
                if actor.running.contains_key(&name) {
                    continue;
                }
                actor.context.bus.publish(Event::ReconcileAction { server: name.clone(), action: "start".into() });
                let (settled_sender, settled_receiver) = oneshot::channel();
                settled.push(settled_receiver);
                let server = McpServer::new(name.clone(), spec.clone(), Arc::clone(&actor.context), settled_sender);
                actor.running.insert(name, Running { spec, actor: server.start(), stale: false });
            }
            let converged = Arc::clone(&actor.converged_once);
            actix::spawn(async move {
                join_all(settled).await;
                converged.store(true, Ordering::Release);
            });
        }));
    }
}

impl Actor for Reconciler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(RESYNC_INTERVAL, |actor, ctx| actor.reconcile(ctx));
    }
}

/// The servers the profile now declares (disabled ones already left out or kept with `enabled: false`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ApplyServers(pub BTreeMap<ServerName, McpServerSpec>);

impl Handler<ApplyServers> for Reconciler {
    type Result = ();

    fn handle(&mut self, message: ApplyServers, ctx: &mut Context<Self>) {
        self.desired = message
            .0
            .into_iter()
            .filter(|(_, spec)| spec.enabled)
            .map(|(name, spec)| (name.as_str().to_string(), spec))
            .collect();
        self.reconcile(ctx);
    }
}

/// Restart one server (health monitor).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RestartNamed {
    pub server: String,
    pub reason: String,
}

impl Handler<RestartNamed> for Reconciler {
    type Result = ();

    fn handle(&mut self, message: RestartNamed, _: &mut Context<Self>) {
        if let Some(running) = self.running.get(&message.server) {
            running.actor.do_send(RestartServer { reason: message.reason });
        }
    }
}

/// These secrets changed value (or appeared, or were removed): restart, as a planned restart (stop,
/// then start with the new values), exactly the running servers whose definitions reference one.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SecretsChanged(pub Vec<String>);

impl Handler<SecretsChanged> for Reconciler {
    type Result = ();

    fn handle(&mut self, message: SecretsChanged, ctx: &mut Context<Self>) {
        let mut affected = false;
        for (name, running) in &mut self.running {
            if running.spec.secret_names().iter().any(|secret| message.0.iter().any(|changed| changed == secret)) {
                tracing::info!(server = %name, "a secret it uses changed; restarting it");
                running.stale = true;
                affected = true;
            }
        }
        if affected {
            self.reconcile(ctx);
        }
    }
}

/// Stop every server and wait until all their processes are gone.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Handler<Shutdown> for Reconciler {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Shutdown, _: &mut Context<Self>) -> Self::Result {
        self.shutting_down = true;
        let stops: Vec<_> =
            std::mem::take(&mut self.running).into_values().map(|running| running.actor.send(StopServer)).collect();
        Box::pin(async move {
            join_all(stops).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(yaml_servers: &str) -> BTreeMap<String, McpServerSpec> {
        let text = format!("database: {{ url: \"sqlite::memory:\" }}\nmcp_servers:\n{yaml_servers}");
        let env = |_: &str| None;
        let profile = castellan_config::parse_profile(&text, "t.yaml", &env).expect("valid profile");
        profile.mcp_servers.into_iter().map(|(name, spec)| (name.as_str().to_string(), spec)).collect()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn the_plan_stops_restarts_and_starts_exactly_what_differs() {
        let old = specs("  a: { command: a }\n  b: { command: b }\n  c: { command: c }\n  d: { command: d }\n");
        let new = specs("  a: { command: a }\n  b: { command: b2 }\n  c: { command: c }\n  e: { command: e }\n");
        // a unchanged and alive; b changed; c unchanged but its actor died; d removed; e new.
        let alive = |name: &str| name != "c";
        let actual: BTreeMap<String, Actual<'_>> =
            old.iter().map(|(name, spec)| (name.clone(), Actual { spec, alive: alive(name) })).collect();
        let cases = [
            ("a change", &new, Plan { stop: names(&["d"]), restart: names(&["b", "c"]), start: names(&["e"]) }),
            ("no change but a dead actor", &old, Plan { stop: vec![], restart: names(&["c"]), start: vec![] }),
        ];
        for (what, desired, expected) in cases {
            assert_eq!(plan(desired, &actual), expected, "{what}");
        }
    }

    #[test]
    fn the_plan_is_idempotent_once_converged_and_starts_everything_from_nothing() {
        let desired = specs("  a: { command: a }\n  b: { url: \"http://127.0.0.1:9/mcp\" }\n");
        let converged: BTreeMap<String, Actual<'_>> =
            desired.iter().map(|(name, spec)| (name.clone(), Actual { spec, alive: true })).collect();
        assert_eq!(plan(&desired, &converged), Plan::default(), "nothing to do when the state is the desired one");
        assert_eq!(plan(&desired, &BTreeMap::new()).start, names(&["a", "b"]), "a cold start starts every server");
        assert_eq!(plan(&BTreeMap::new(), &converged).stop, names(&["a", "b"]), "an empty profile stops them all");
    }
}
