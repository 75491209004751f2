//! The HealthMonitor: pings every ready server, samples its processes' memory, and asks the
//! reconciler to restart a server that stops answering.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use actix::prelude::*;
use prometheus_client::metrics::gauge::Gauge;

use crate::event_bus::{Event, EventBus};
use crate::reconciler::{Reconciler, RestartNamed};
use crate::registry::Registry;

/// Consecutive failed pings before a server is restarted.
const UNHEALTHY_AFTER: u32 = 3;

pub struct HealthMonitor {
    registry: Registry,
    reconciler: Addr<Reconciler>,
    bus: EventBus,
    interval: Duration,
    timeout: Duration,
    failures: HashMap<String, u32>,
    system: sysinfo::System,
    pub memory_bytes: Gauge,
}

impl HealthMonitor {
    /// Pings every `interval`; a ping gets the interval (at most 5 s) to be answered.
    pub fn new(
        registry: Registry,
        reconciler: Addr<Reconciler>,
        bus: EventBus,
        interval: Duration,
        memory_bytes: Gauge,
    ) -> Self {
        Self {
            registry,
            reconciler,
            bus,
            interval,
            timeout: interval.min(Duration::from_secs(5)),
            failures: HashMap::new(),
            system: process_sampler(),
            memory_bytes,
        }
    }

    fn sweep(&mut self, ctx: &mut Context<Self>) {
        let servers = self.registry.snapshot();
        let timeout = self.timeout;
        let pings = servers.values().map(|live| {
            let connection = std::sync::Arc::clone(&live.connection);
            let name = live.name.clone();
            async move {
                let started = Instant::now();
                let answered = matches!(connection.request("ping", None, timeout).await, Ok(Ok(_)));
                (name, answered, started.elapsed())
            }
        });
        let pings = futures_util::future::join_all(pings.collect::<Vec<_>>());
        ctx.spawn(pings.into_actor(self).map(|results, monitor, _| {
            for (name, answered, latency) in results {
                let failures = monitor.failures.entry(name.clone()).or_default();
                if answered {
                    if *failures >= 1 {
                        monitor.bus.publish(Event::ServerHealth {
                            server: name.clone(),
                            state: "healthy".into(),
                            detail: format!("ping {latency:?}"),
                        });
                    }
                    *failures = 0;
                    continue;
                }
                *failures += 1;
                let state = if *failures >= UNHEALTHY_AFTER { "unhealthy" } else { "degraded" };
                monitor.bus.publish(Event::ServerHealth {
                    server: name.clone(),
                    state: state.into(),
                    detail: format!("{failures} pings unanswered"),
                });
                if *failures >= UNHEALTHY_AFTER {
                    *failures = 0;
                    monitor.reconciler.do_send(RestartNamed { server: name, reason: "health check failed".into() });
                }
            }
        }));
        self.sample_resources(&servers.values().filter_map(|live| live.pid).collect());
    }

    /// Sums the resident memory of each supervised process tree.
    fn sample_resources(&mut self, roots: &HashSet<u32>) {
        // Memory and parents only: no threads (each would be one more /proc entry read per sample).
        self.system.refresh_processes_specifics(
            sysinfo::ProcessesToUpdate::All,
            true,
            sysinfo::ProcessRefreshKind::nothing().with_memory().without_tasks(),
        );
        let mut total = 0u64;
        for (pid, process) in self.system.processes() {
            let mut cursor = Some(*pid);
            while let Some(current) = cursor {
                if roots.contains(&current.as_u32()) {
                    total += process.memory();
                    break;
                }
                cursor = self.system.process(current).and_then(|found| found.parent());
            }
        }
        self.memory_bytes.set(total as i64);
    }
}

/// A process table that keeps no file open between samples. sysinfo otherwise keeps every sampled
/// process's `/proc/<pid>/stat` open to re-read it faster: hundreds of descriptors on other processes
/// (and on their threads), held for as long as those live. The limit is process-wide; the health
/// monitor is this process's only sysinfo user.
pub fn process_sampler() -> sysinfo::System {
    sysinfo::set_open_files_limit(0);
    sysinfo::System::new()
}

impl Actor for HealthMonitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.interval, |monitor, ctx| monitor.sweep(ctx));
    }
}
