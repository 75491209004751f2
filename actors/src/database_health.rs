//! What the group-commit writers (`AuditWriter`, `AiRequestWriter`) know of their database's health:
//! the flag request handlers read before anything runs, when it last committed, and the check that
//! pings a database that has been quiet or failing. One implementation, so the two writers cannot
//! drift apart on when a database counts as down or back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often a writer checks the database when it has not committed recently.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(1);

/// One writer's view of its database.
pub struct DatabaseHealth {
    healthy: Arc<AtomicBool>,
    last_success: Instant,
    /// For the log lines: what the database holds ("audit", "AI request log").
    what: &'static str,
    /// What callers see while it is down ("tool calls are refused").
    while_down: &'static str,
}

impl DatabaseHealth {
    pub fn new(what: &'static str, while_down: &'static str) -> Self {
        DatabaseHealth { healthy: Arc::new(AtomicBool::new(true)), last_success: Instant::now(), what, while_down }
    }

    /// The flag the writer's handle reads.
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.healthy)
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// A batch committed.
    pub fn committed(&mut self) {
        self.last_success = Instant::now();
        self.healthy.store(true, Ordering::Release);
    }

    /// A batch failed.
    pub fn failed(&mut self) {
        self.healthy.store(false, Ordering::Release);
    }

    /// Whether a ping is due: the database is down, or nothing committed for a while (and no
    /// commit is in flight, which would say the same sooner).
    pub(crate) fn check_due(&self, flushing: bool) -> bool {
        !flushing && (!self.is_healthy() || self.last_success.elapsed() >= HEALTH_INTERVAL)
    }

    /// Records a ping's result; true when the database is up.
    pub(crate) fn pinged(&mut self, up: bool) -> bool {
        let was = self.healthy.swap(up, Ordering::AcqRel);
        if up {
            self.last_success = Instant::now();
            if !was {
                tracing::warn!("{} database is reachable again", self.what);
            }
        } else if was {
            tracing::error!("{} database is unreachable; {}", self.what, self.while_down);
        }
        up
    }
}
