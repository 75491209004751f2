//! The AuditWriter: the single writer of `mcp_tool_executions`, on a thread of its own.
//!
//! Group commit without an artificial delay: the thread sleeps until a row arrives, takes every
//! row that is waiting (up to [`MAX_BATCH`]), commits them in one transaction and answers each
//! caller; rows that arrive during a commit go out together in the next one. Each caller waits
//! for its own row to be durable before it answers its client. If the database fails, the health
//! flag drops, callers are told, and the rows are kept and committed once it is back, marked as
//! withheld from the caller.
//!
//! The thread ([`crate::writer_thread`]) computes the hash chain, off the request's thread. On a
//! SQLite file the batch is one synchronous transaction through the writer's own connection
//! ([`SqliteAppender`]); PostgreSQL gets a pool of its own, driven by the thread's own runtime.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::time::Instant;

use castellan_schema::audit::{self, ExecutionStatus, NewExecution, SqliteAppender};
use castellan_schema::{DatabaseConnection, DbError};
use tokio::sync::oneshot;

use crate::database_health::DatabaseHealth;
use crate::metrics::Metrics;
use crate::writer_thread::{self, BatchWriter, CheckpointSchedule};

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

type Command = writer_thread::Command<NewExecution, Reply>;

/// Starts the writer; see the module documentation.
pub struct AuditWriter;

/// What request handlers hold: the writer's queue, the health flag and the field cap.
#[derive(Clone)]
pub struct AuditHandle {
    commands: Sender<Command>,
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
        // A writer that has stopped drops the command, and with it `reply`.
        let _ = self.commands.send(Command::Write(row, reply));
        answer.await.map_err(|_| AuditError::Stopped)?
    }

    /// Waits until every queued row is committed (or the database refuses); for shutdown.
    pub async fn drain(&self) {
        let (done, finished) = oneshot::channel();
        if self.commands.send(Command::Drain(done)).is_ok() {
            let _ = finished.await;
        }
    }
}

impl AuditWriter {
    /// Opens the writer's connection to `url` (the database `db` is connected to), reads the chain
    /// head and starts the writer's thread.
    pub async fn start(
        db: DatabaseConnection,
        url: &str,
        metrics: Metrics,
    ) -> Result<AuditHandle, castellan_schema::DbError> {
        let health = DatabaseHealth::new("audit", "tool calls are refused");
        let healthy = health.flag();
        let (commands, receiver) = std::sync::mpsc::channel();
        let url = url.to_owned();
        writer_thread::spawn(
            "castellan-audit",
            move |runtime| runtime.block_on(Store::open(db, &url)),
            move |(store, last_hash), runtime| {
                let writer = Writer { store, runtime, last_hash, queue: VecDeque::new(), health, metrics };
                writer_thread::run(writer, receiver, MAX_BATCH);
            },
        )
        .await?;
        let max_field_bytes = Arc::new(AtomicUsize::new(castellan_config::DEFAULT_AUDIT_MAX_FIELD_BYTES));
        Ok(AuditHandle { commands, healthy, max_field_bytes })
    }
}

/// Where batches are committed.
enum Store {
    /// A SQLite file: the writer's own connection, and the pool for the careful path.
    SqliteFile {
        appender: Box<SqliteAppender>,
        pool: DatabaseConnection,
        checkpoints: CheckpointSchedule,
        background: BackgroundCheckpoints,
    },
    /// PostgreSQL (a pool of the writer's own) or an in-memory SQLite database (the shared one,
    /// which lives only in its single connection).
    Pool(DatabaseConnection),
}

impl Store {
    async fn open(shared: DatabaseConnection, url: &str) -> Result<(Store, String), DbError> {
        let store = match castellan_schema::sqlite_file(url)? {
            Some(path) => Store::SqliteFile {
                appender: Box::new(SqliteAppender::open(&path)?),
                pool: shared,
                checkpoints: CheckpointSchedule::default(),
                background: BackgroundCheckpoints::start(&path)?,
            },
            None if url.starts_with("sqlite") => Store::Pool(shared),
            // The shared pool's connections belong to the daemon's runtime; this thread drives its own.
            None => Store::Pool(castellan_schema::connect(url).await?),
        };
        let last_hash = audit::last_hash(store.pool()).await?;
        Ok((store, last_hash))
    }

    fn pool(&self) -> &DatabaseConnection {
        match self {
            Store::SqliteFile { pool, .. } | Store::Pool(pool) => pool,
        }
    }
}

struct Writer {
    store: Store,
    runtime: tokio::runtime::Runtime,
    last_hash: String,
    /// Rows waiting for a commit, oldest first; while the database is down, the rows kept for it.
    queue: VecDeque<(NewExecution, Option<Reply>)>,
    health: DatabaseHealth,
    metrics: Metrics,
}

impl BatchWriter for Writer {
    type Write = NewExecution;
    type Reply = Reply;

    fn accept(&mut self, row: NewExecution, reply: Reply) {
        if self.health.is_healthy() {
            self.queue.push_back((row, Some(reply)));
            return;
        }
        // Known down: refuse at once rather than queue behind a dead database, but keep the row,
        // marked as what its caller got (as a row of a failed batch is).
        let _ = reply.send(Err(AuditError::Unavailable));
        let mut row = row;
        row.status = ExecutionStatus::Failed;
        row.error_message.get_or_insert_with(|| "audit database unavailable; result withheld from the caller".into());
        self.queue.push_back((row, None));
    }

    fn queued(&self) -> usize {
        self.queue.len()
    }

    fn health(&mut self) -> &mut DatabaseHealth {
        &mut self.health
    }

    fn ping(&mut self) -> bool {
        match &mut self.store {
            Store::SqliteFile { appender, .. } => appender.ping().is_ok(),
            Store::Pool(pool) => self.runtime.block_on(castellan_schema::ping(pool)).is_ok(),
        }
    }

    fn flush(&mut self) {
        Writer::flush(self);
    }

    /// On a SQLite file, the writer's own checkpoint when due ([`CheckpointSchedule`]); in between,
    /// the background checkpointer copies most of the log, so that the writer's own checkpoint
    /// (during which rows wait) has little left to do.
    fn after_flush(&mut self) {
        let Store::SqliteFile { appender, checkpoints, background, .. } = &mut self.store else { return };
        if checkpoints.background_due() {
            background.request();
        }
        checkpoints.run_if_due("audit", || appender.checkpoint());
    }
}

impl Writer {
    /// Commits what is queued, a batch at a time, while the database takes it.
    fn flush(&mut self) {
        while !self.queue.is_empty() && self.health.is_healthy() {
            let take = self.queue.len().min(MAX_BATCH);
            let batch: Vec<(NewExecution, Option<Reply>)> = self.queue.drain(..take).collect();
            let started = Instant::now();
            let result = self.commit(&batch);
            self.metrics.audit_commit_seconds.observe(started.elapsed().as_secs_f64());
            match result {
                Ok((ids, new_last)) => {
                    self.metrics.audit_batch_size.observe(ids.len() as f64);
                    self.last_hash = new_last;
                    self.health.committed();
                    for ((_, reply), id) in batch.into_iter().zip(ids) {
                        if let Some(reply) = reply {
                            let _ = reply.send(Ok(id));
                        }
                    }
                }
                Err(error) => {
                    self.metrics.audit_failures.inc();
                    self.health.failed();
                    tracing::error!(%error, rows = batch.len(), "audit commit failed; keeping rows for retry");
                    // The callers are told now and withhold their results; the rows are kept, marked,
                    // and committed when the database is back, so the attempt is still on record.
                    for (mut row, reply) in batch.into_iter().rev() {
                        if let Some(reply) = reply {
                            let _ = reply.send(Err(AuditError::Unavailable));
                            row.status = ExecutionStatus::Failed;
                            row.error_message =
                                Some("audit commit failed; result withheld from the caller".to_string());
                        }
                        self.queue.push_front((row, None));
                    }
                }
            }
        }
    }

    /// One transaction: the fast path when the writer's head is the stored one, else the careful one.
    fn commit(&mut self, batch: &[(NewExecution, Option<Reply>)]) -> Result<(Vec<i64>, String), DbError> {
        let rows: Vec<NewExecution>;
        match &mut self.store {
            Store::SqliteFile { appender, pool, checkpoints, .. } => {
                checkpoints.committed(batch.len());
                // The rows are borrowed for the fast path; only the careful path needs a copy.
                let borrowed: Vec<&NewExecution> = batch.iter().map(|(row, _)| row).collect();
                if let Some(appended) = appender.append(&self.last_hash, &borrowed)? {
                    return Ok(appended);
                }
                rows = borrowed.into_iter().cloned().collect();
                self.runtime.block_on(audit::insert_batch(pool, &self.last_hash, &rows))
            }
            Store::Pool(pool) => {
                rows = batch.iter().map(|(row, _)| row.clone()).collect();
                self.runtime.block_on(audit::insert_batch(pool, &self.last_hash, &rows))
            }
        }
    }
}

/// Passive checkpoints on a thread and a connection of their own, on request. They never block the
/// writer; they cannot let the log be reused (see [`CheckpointSchedule`]), only shorten the
/// writer's own checkpoints.
struct BackgroundCheckpoints {
    requests: std::sync::mpsc::SyncSender<()>,
}

impl BackgroundCheckpoints {
    fn start(path: &std::path::Path) -> Result<BackgroundCheckpoints, DbError> {
        let mut checkpointer = SqliteAppender::open_checkpointer(path)?;
        // One request waiting is enough: a checkpoint copies everything committed before it starts.
        let (requests, pending) = std::sync::mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("castellan-audit-checkpoint".into())
            .spawn(move || {
                while pending.recv().is_ok() {
                    if let Err(error) = checkpointer.checkpoint() {
                        tracing::debug!(%error, "background audit log checkpoint failed; the writer's own retries");
                    }
                }
            })
            .map_err(|error| DbError::Other(format!("cannot start the audit checkpointer: {error}")))?;
        Ok(BackgroundCheckpoints { requests })
    }

    fn request(&self) {
        let _ = self.requests.try_send(());
    }
}
