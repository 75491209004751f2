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

/// How often the reconciler re-checks even without a change (drift fallback).
const RESYNC_INTERVAL: Duration = Duration::from_secs(10);

struct Running {
    spec: McpServerSpec,
    actor: Addr<McpServer>,
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
        let stale: Vec<String> = self
            .running
            .iter()
            .filter(|(name, running)| self.desired.get(*name) != Some(&running.spec) || !running.actor.connected())
            .map(|(name, _)| name.clone())
            .collect();
        let mut stops = Vec::new();
        for name in stale {
            if let Some(running) = self.running.remove(&name) {
                let action = if self.desired.contains_key(&name) { "restart" } else { "stop" };
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
                actor.running.insert(name, Running { spec, actor: server.start() });
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
