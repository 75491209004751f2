//! What the group-commit writers (`AuditWriter`, `AiRequestWriter`) know of their database's health:
//! the flag request handlers read before anything runs, when it last committed, and the check that
//! pings a database that has been quiet or failing. One implementation, so the two writers cannot
//! drift apart on when a database counts as down or back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use castellan_schema::DatabaseConnection;

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

/// A group-commit writer: an actor with a database, a health record and a queue it flushes.
pub trait GroupCommitWriter: Actor<Context = Context<Self>> {
    fn database(&self) -> DatabaseConnection;
    fn health(&mut self) -> &mut DatabaseHealth;
    fn is_flushing(&self) -> bool;
    fn flush(&mut self, ctx: &mut Context<Self>);
}

/// Pings the writer's database when a check is due, and flushes what waited once it is up.
pub fn check_health<W: GroupCommitWriter>(writer: &mut W, ctx: &mut Context<W>) {
    let flushing = writer.is_flushing();
    if !writer.health().check_due(flushing) {
        return;
    }
    let db = writer.database();
    ctx.spawn(async move { castellan_schema::ping(&db).await.is_ok() }.into_actor(writer).map(|up, writer, ctx| {
        if writer.health().pinged(up) {
            writer.flush(ctx);
        }
    }));
}
