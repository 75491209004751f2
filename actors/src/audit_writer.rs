//! The AuditWriter: the single writer of `mcp_tool_executions`.
//!
//! Group commit without an artificial delay: while one batch is being committed, rows that arrive
//! queue up and go out together in the next transaction. Each caller waits for its own row to be
//! durable before it answers its client. If the database fails, the health flag drops, callers are
//! told, and the rows are kept and committed once it is back, marked as withheld from the caller.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use actix::prelude::*;
use castellan_schema::DatabaseConnection;
use castellan_schema::audit::{self, NewExecution};
use tokio::sync::oneshot;

use crate::database_health::{DatabaseHealth, GroupCommitWriter, HEALTH_INTERVAL, check_health};
use crate::metrics::Metrics;

// The smallest cap a profile may set still holds the marker, so a cut value keeps some text.
const _: () = assert!(audit::MARKER_MAX_BYTES < castellan_config::MIN_AUDIT_MAX_FIELD_BYTES);

/// The most rows one transaction carries.
const MAX_BATCH: usize = 256;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AuditError {
    #[error("the audit database is unavailable")]
    Unavailable,
    #[error("the audit writer has stopped")]
    Stopped,
}

type Reply = oneshot::Sender<Result<i64, AuditError>>;

pub struct AuditWriter {
    db: DatabaseConnection,
    last_hash: String,
    queue: Vec<(NewExecution, Option<Reply>)>,
    flushing: bool,
    health: DatabaseHealth,
    metrics: Metrics,
    drained: Vec<oneshot::Sender<()>>,
}

/// What request handlers hold: the mailbox, the health flag and the field cap.
#[derive(Clone)]
pub struct AuditHandle {
    writer: Addr<AuditWriter>,
    healthy: Arc<AtomicBool>,
    /// `audit.max_field_bytes`: every row is capped here, the one door all rows pass, before it
    /// is queued (so a flood of large refusals is small in memory too) and before it is hashed.
    max_field_bytes: Arc<AtomicUsize>,
}

impl AuditHandle {
    /// Whether a tool may run now: false while the database is known to be down.
    pub fn is_available(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Sets `audit.max_field_bytes` for the rows recorded from now on.
    pub fn set_max_field_bytes(&self, max_bytes: usize) {
        self.max_field_bytes.store(max_bytes, Ordering::Relaxed);
    }

    /// Appends a row, its long fields capped (see [`audit::cap_row`]), and waits until it is
    /// durably committed; returns its id.
    pub async fn record(&self, mut row: NewExecution) -> Result<i64, AuditError> {
        audit::cap_row(&mut row, self.max_field_bytes.load(Ordering::Relaxed));
        let (reply, answer) = oneshot::channel();
        // Not `send`: its acknowledgement would wake the caller once more before the commit's
        // answer. A writer that has stopped drops the message, and with it `reply`.
        self.writer.do_send(Append { row, reply });
        answer.await.map_err(|_| AuditError::Stopped)?
    }

    /// Waits until every queued row is committed (or the database refuses); for shutdown.
    pub async fn drain(&self) {
        if let Ok(done) = self.writer.send(Drain).await {
            let _ = done.await;
        }
    }
}

impl AuditWriter {
    /// Reads the chain head and starts the writer on the current arbiter.
    pub async fn start(db: DatabaseConnection, metrics: Metrics) -> Result<AuditHandle, castellan_schema::DbError> {
        let last_hash = audit::last_hash(&db).await?;
        let health = DatabaseHealth::new("audit", "tool calls are refused");
        let healthy = health.flag();
        let writer =
            AuditWriter { db, last_hash, queue: Vec::new(), flushing: false, health, metrics, drained: Vec::new() }
                .start();
        let max_field_bytes = Arc::new(AtomicUsize::new(castellan_config::DEFAULT_AUDIT_MAX_FIELD_BYTES));
        Ok(AuditHandle { writer, healthy, max_field_bytes })
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.flushing || self.queue.is_empty() {
            if self.queue.is_empty() && !self.flushing {
                for done in self.drained.drain(..) {
                    let _ = done.send(());
                }
            }
            return;
        }
        self.flushing = true;
        let take = self.queue.len().min(MAX_BATCH);
        let batch: Vec<(NewExecution, Option<Reply>)> = self.queue.drain(..take).collect();
        let rows: Vec<NewExecution> = batch.iter().map(|(row, _)| row.clone()).collect();
        let db = self.db.clone();
        let prev = self.last_hash.clone();
        let started = Instant::now();
        let commit = async move { audit::insert_batch(&db, &prev, &rows).await };
        ctx.spawn(commit.into_actor(self).map(move |result, writer, ctx| {
            writer.flushing = false;
            writer.metrics.audit_commit_seconds.observe(started.elapsed().as_secs_f64());
            match result {
                Ok((ids, new_last)) => {
                    writer.metrics.audit_batch_size.observe(ids.len() as f64);
                    writer.last_hash = new_last;
                    writer.health.committed();
                    for ((_, reply), id) in batch.into_iter().zip(ids) {
                        if let Some(reply) = reply {
                            let _ = reply.send(Ok(id));
                        }
                    }
                    writer.flush(ctx);
                }
                Err(error) => {
                    writer.metrics.audit_failures.inc();
                    writer.health.failed();
                    tracing::error!(%error, rows = batch.len(), "audit commit failed; keeping rows for retry");
                    // The callers are told now and withhold their results; the rows are kept, marked,
                    // and committed when the database is back, so the attempt is still on record.
                    let mut kept: Vec<(NewExecution, Option<Reply>)> = batch
                        .into_iter()
                        .map(|(mut row, reply)| {
                            if let Some(reply) = reply {
                                let _ = reply.send(Err(AuditError::Unavailable));
                                row.status = castellan_schema::audit::ExecutionStatus::Failed;
                                row.error_message =
                                    Some("audit commit failed; result withheld from the caller".to_string());
                            }
                            (row, None)
                        })
                        .collect();
                    kept.append(&mut writer.queue);
                    writer.queue = kept;
                    for done in writer.drained.drain(..) {
                        let _ = done.send(());
                    }
                }
            }
        }));
    }
}

impl GroupCommitWriter for AuditWriter {
    fn database(&self) -> DatabaseConnection {
        self.db.clone()
    }

    fn health(&mut self) -> &mut DatabaseHealth {
        &mut self.health
    }

    fn is_flushing(&self) -> bool {
        self.flushing
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        AuditWriter::flush(self, ctx);
    }
}

impl Actor for AuditWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(HEALTH_INTERVAL, check_health);
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Append {
    row: NewExecution,
    reply: Reply,
}

impl Handler<Append> for AuditWriter {
    type Result = ();

    fn handle(&mut self, message: Append, ctx: &mut Context<Self>) {
        if !self.health.is_healthy() && !self.flushing {
            // Known down: refuse at once rather than queue behind a dead database, but keep the row.
            let _ = message.reply.send(Err(AuditError::Unavailable));
            let mut row = message.row;
            row.error_message
                .get_or_insert_with(|| "audit database unavailable; result withheld from the caller".into());
            self.queue.push((row, None));
            return;
        }
        self.queue.push((message.row, Some(message.reply)));
        self.flush(ctx);
    }
}

#[derive(Message)]
#[rtype(result = "oneshot::Receiver<()>")]
struct Drain;

impl Handler<Drain> for AuditWriter {
    type Result = MessageResult<Drain>;

    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) -> Self::Result {
        let (done, receiver) = oneshot::channel();
        self.drained.push(done);
        self.flush(ctx);
        MessageResult(receiver)
    }
}
