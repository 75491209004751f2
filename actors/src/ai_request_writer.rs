//! The AiRequestWriter: the single writer of `ai_requests`, on a thread of its own
//! ([`crate::writer_thread`]), as the [`crate::audit_writer`] is.
//!
//! Group commit without an artificial delay: while one transaction is being committed, writes
//! that arrive queue up and go out together in the next one. A start is durable before its caller
//! hears its id, so the row exists as `started` before the request goes upstream. On a SQLite file
//! a batch is one synchronous transaction through the writer's own connection
//! ([`SqliteAiWriter`]); PostgreSQL gets a pool of its own, driven by the thread's runtime.
//!
//! If the database fails, the health flag drops and callers are told: a start is refused (its
//! request must not go upstream unrecorded), while completions and refusals, records of what
//! already happened, are kept and committed once the database is back.
//!
//! Error values name what failed, never a row's contents (prompts do not pass here, but user
//! names, models and messages do).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;

use castellan_schema::ai_requests::{
    self, AiCompletion, AiRequestStatus, AiRequestWrite, AiRequestWritten, NewAiRequest, SqliteAiWriter,
};
use castellan_schema::{DatabaseConnection, DbError};
use tokio::sync::oneshot;

use crate::database_health::DatabaseHealth;
use crate::writer_thread::{self, BatchWriter, CheckpointSchedule};

/// The most writes one transaction carries.
const MAX_BATCH: usize = 256;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AiRequestError {
    #[error("the AI request log is unavailable")]
    Unavailable,
    #[error("the AI request writer has stopped")]
    Stopped,
    /// A completion must end the request; `started` is not an ending (a bug in the caller).
    #[error("an AI request cannot be completed with the status `started`")]
    NotAnEnding,
}

type Reply = oneshot::Sender<Result<AiRequestWritten, AiRequestError>>;

type Command = writer_thread::Command<AiRequestWrite, Reply>;

/// Starts the writer; see the module documentation.
pub struct AiRequestWriter;

/// What request handlers hold: the writer's queue and the health flag.
#[derive(Clone)]
pub struct AiRequestsHandle {
    commands: Sender<Command>,
    healthy: Arc<AtomicBool>,
    commits: Arc<AtomicU64>,
}

impl AiRequestsHandle {
    /// Whether a request may go upstream now: false while the database is known to be down.
    pub fn is_available(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// How many transactions the writer has committed (diagnostics; the tests count group commits).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Stores the `started` row and waits until it is durably committed; returns its id.
    pub async fn start(&self, row: NewAiRequest) -> Result<i64, AiRequestError> {
        match self.write(AiRequestWrite::Start(row)).await? {
            AiRequestWritten::Inserted(id) => Ok(id),
            AiRequestWritten::Completed(_) => Err(AiRequestError::Stopped),
        }
    }

    /// Completes the row `id` and waits for the commit. Only a row still `started` changes: a
    /// second completion (or one after the row was marked interrupted) is logged and ignored.
    pub async fn complete(&self, id: i64, completion: AiCompletion) -> Result<(), AiRequestError> {
        ends(&completion)?;
        match self.write(AiRequestWrite::Complete { id, completion }).await? {
            AiRequestWritten::Completed(true) => {}
            AiRequestWritten::Completed(false) | AiRequestWritten::Inserted(_) => {
                tracing::warn!(
                    id,
                    "an AI request was completed twice (or after it was marked interrupted); kept the first ending"
                );
            }
        }
        Ok(())
    }

    /// Stores a request that ended before it went upstream (denied, rate limited, over budget, bad
    /// input) as one finished row and waits for the commit; returns its id.
    pub async fn finish(&self, row: NewAiRequest, completion: AiCompletion) -> Result<i64, AiRequestError> {
        ends(&completion)?;
        match self.write(AiRequestWrite::Finish(row, completion)).await? {
            AiRequestWritten::Inserted(id) => Ok(id),
            AiRequestWritten::Completed(_) => Err(AiRequestError::Stopped),
        }
    }

    /// Waits until every queued write is committed (or the database refuses); for shutdown.
    pub async fn drain(&self) {
        let (done, finished) = oneshot::channel();
        if self.commands.send(Command::Drain(done)).is_ok() {
            let _ = finished.await;
        }
    }

    async fn write(&self, write: AiRequestWrite) -> Result<AiRequestWritten, AiRequestError> {
        let (reply, answer) = oneshot::channel();
        // A writer that has stopped drops the command, and with it `reply`.
        let _ = self.commands.send(Command::Write(write, reply));
        answer.await.map_err(|_| AiRequestError::Stopped)?
    }
}

/// Refuses a completion that does not end the request before it reaches a batch (where it would
/// fail every write of the batch).
fn ends(completion: &AiCompletion) -> Result<(), AiRequestError> {
    if completion.status == AiRequestStatus::Started {
        return Err(AiRequestError::NotAnEnding);
    }
    Ok(())
}

impl AiRequestWriter {
    /// Opens the writer's connection to `url` (the database `db` is connected to) and starts the
    /// writer's thread.
    pub async fn start(db: DatabaseConnection, url: &str) -> Result<AiRequestsHandle, DbError> {
        let health = DatabaseHealth::new("AI request log", "AI requests are refused");
        let healthy = health.flag();
        let commits = Arc::new(AtomicU64::new(0));
        let (commands, receiver) = std::sync::mpsc::channel();
        let url = url.to_owned();
        let counter = Arc::clone(&commits);
        writer_thread::spawn(
            "castellan-ai-requests",
            move |runtime| runtime.block_on(Store::open(db, &url)),
            move |store, runtime| {
                let writer = Writer { store, runtime, queue: VecDeque::new(), health, commits: counter };
                writer_thread::run(writer, receiver, MAX_BATCH);
            },
        )
        .await?;
        Ok(AiRequestsHandle { commands, healthy, commits })
    }
}

/// Where batches are committed.
enum Store {
    /// A SQLite file: the writer's own connection.
    SqliteFile { writer: Box<SqliteAiWriter>, checkpoints: CheckpointSchedule },
    /// PostgreSQL (a pool of the writer's own) or an in-memory SQLite database (the shared one,
    /// which lives only in its single connection).
    Pool(DatabaseConnection),
}

impl Store {
    async fn open(shared: DatabaseConnection, url: &str) -> Result<Store, DbError> {
        Ok(match castellan_schema::sqlite_file(url)? {
            Some(path) => Store::SqliteFile {
                writer: Box::new(SqliteAiWriter::open(&path)?),
                checkpoints: CheckpointSchedule::default(),
            },
            None if url.starts_with("sqlite") => Store::Pool(shared),
            // The shared pool's connections belong to the daemon's runtime; this thread drives its own.
            None => Store::Pool(castellan_schema::connect(url).await?),
        })
    }
}

struct Writer {
    store: Store,
    runtime: tokio::runtime::Runtime,
    /// Writes waiting for a commit, oldest first; while the database is down, the ones kept for it.
    queue: VecDeque<(AiRequestWrite, Option<Reply>)>,
    health: DatabaseHealth,
    commits: Arc<AtomicU64>,
}

impl BatchWriter for Writer {
    type Write = AiRequestWrite;
    type Reply = Reply;

    fn accept(&mut self, write: AiRequestWrite, reply: Reply) {
        if self.health.is_healthy() {
            self.queue.push_back((write, Some(reply)));
            return;
        }
        // Known down: answer at once rather than queue behind a dead database; keep what already
        // happened for the retry.
        let _ = reply.send(Err(AiRequestError::Unavailable));
        if !matches!(write, AiRequestWrite::Start(_)) {
            self.queue.push_back((write, None));
        }
    }

    fn queued(&self) -> usize {
        self.queue.len()
    }

    fn health(&mut self) -> &mut DatabaseHealth {
        &mut self.health
    }

    fn ping(&mut self) -> bool {
        match &mut self.store {
            Store::SqliteFile { writer, .. } => writer.ping().is_ok(),
            Store::Pool(pool) => self.runtime.block_on(castellan_schema::ping(pool)).is_ok(),
        }
    }

    fn flush(&mut self) {
        while !self.queue.is_empty() && self.health.is_healthy() {
            let take = self.queue.len().min(MAX_BATCH);
            let batch: Vec<(AiRequestWrite, Option<Reply>)> = self.queue.drain(..take).collect();
            match self.commit(&batch) {
                Ok(written) => {
                    self.commits.fetch_add(1, Ordering::Relaxed);
                    self.health.committed();
                    for ((_, reply), outcome) in batch.into_iter().zip(written) {
                        if let Some(reply) = reply {
                            let _ = reply.send(Ok(outcome));
                        }
                    }
                }
                Err(error) => self.failed(batch, &error),
            }
        }
    }

    fn after_flush(&mut self) {
        if let Store::SqliteFile { writer, checkpoints } = &mut self.store {
            checkpoints.run_if_due("AI request", || writer.checkpoint());
        }
    }
}

impl Writer {
    /// One transaction of the batch's writes, in order.
    fn commit(&mut self, batch: &[(AiRequestWrite, Option<Reply>)]) -> Result<Vec<AiRequestWritten>, DbError> {
        match &mut self.store {
            Store::SqliteFile { writer, checkpoints } => {
                checkpoints.committed(batch.len());
                let writes: Vec<&AiRequestWrite> = batch.iter().map(|(write, _)| write).collect();
                writer.write_batch(&writes)
            }
            Store::Pool(pool) => {
                let writes: Vec<AiRequestWrite> = batch.iter().map(|(write, _)| write.clone()).collect();
                self.runtime.block_on(ai_requests::write_batch(pool, &writes))
            }
        }
    }

    /// A batch did not commit (nothing of it was written). Every caller is told now. Completions
    /// and refusals are kept for a retry when the database was unreachable; a database that refuses
    /// the statements themselves would refuse them again, so then they are dropped (and logged).
    fn failed(&mut self, batch: Vec<(AiRequestWrite, Option<Reply>)>, error: &DbError) {
        self.health.failed();
        let retry = error.is_unavailable();
        let mut kept = 0usize;
        let mut dropped = 0usize;
        // Kept in their order, ahead of what arrived since.
        for (write, reply) in batch.into_iter().rev() {
            if let Some(reply) = reply {
                let _ = reply.send(Err(AiRequestError::Unavailable));
            }
            match write {
                // Its caller refuses the request: nothing went upstream, there is nothing to record.
                AiRequestWrite::Start(_) => {}
                write if retry => {
                    kept += 1;
                    self.queue.push_front((write, None));
                }
                _ => dropped += 1,
            }
        }
        tracing::error!(%error, kept, dropped, "AI request log commit failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use castellan_schema::ai_requests::AiRequestFilter;
    use chrono::{TimeZone, Utc};

    fn row(index: usize) -> NewAiRequest {
        let started_at = Utc.with_ymd_and_hms(2026, 12, 3, 10, 0, 0).single().expect("a valid instant");
        NewAiRequest {
            user_id: Some(format!("user-{}", index % 3)),
            api_key_id: None,
            session_id: None,
            trace_id: format!("{index:032x}"),
            endpoint: "messages".into(),
            provider: "anthropic".into(),
            model: "claude-sonnet-4-5".into(),
            upstream_model: "claude-sonnet-4-5".into(),
            streamed: false,
            started_at: started_at + chrono::TimeDelta::milliseconds(index as i64),
        }
    }

    fn ending(status: AiRequestStatus, cost: Option<i64>) -> AiCompletion {
        AiCompletion {
            provider: None,
            upstream_model: None,
            input_tokens: Some(10),
            output_tokens: Some(2),
            cache_read_tokens: None,
            cache_write_tokens: None,
            cost_microdollars: cost,
            latency_ms: Some(12),
            ttft_ms: None,
            status,
            error_message: None,
            completed_at: Utc.with_ymd_and_hms(2026, 12, 3, 11, 0, 0).single().expect("a valid instant"),
        }
    }

    async fn database() -> DatabaseConnection {
        let db = castellan_schema::connect("sqlite::memory:").await.expect("connect");
        castellan_schema::migrate(&db).await.expect("migrate");
        db
    }

    async fn rows(db: &DatabaseConnection) -> Vec<castellan_schema::ai_requests::AiRequestRow> {
        let filter = AiRequestFilter { limit: 10_000, ..AiRequestFilter::default() };
        castellan_schema::ai_requests::list(db, &filter).await.expect("list")
    }

    #[tokio::test]
    async fn concurrent_starts_share_transactions_and_each_gets_its_id() {
        let db = database().await;
        let handle = AiRequestWriter::start(db.clone(), "sqlite::memory:").await.expect("start");
        let callers = 200;
        let starts = (0..callers).map(|index| {
            let handle = handle.clone();
            async move { (index, handle.start(row(index)).await.expect("start")) }
        });
        let answers = futures_util::future::join_all(starts).await;
        let stored = rows(&db).await;
        assert_eq!(stored.len(), callers, "every start is stored");
        for (index, id) in &answers {
            let stored_row = stored.iter().find(|stored| stored.id == *id).expect("the id names a stored row");
            assert_eq!(stored_row.trace_id, format!("{index:032x}"), "caller {index} got its own row's id");
            assert_eq!(stored_row.status, "started", "committed as started");
        }
        let commits = handle.commits();
        assert!(commits >= 1 && commits < callers as u64 / 4, "{callers} starts took {commits} transactions");
    }

    #[tokio::test]
    async fn complete_after_start_and_a_second_completion_changes_nothing() {
        let db = database().await;
        let handle = AiRequestWriter::start(db.clone(), "sqlite::memory:").await.expect("start");
        assert!(handle.is_available(), "a fresh writer is available");
        let id = handle.start(row(1)).await.expect("start");
        handle.complete(id, ending(AiRequestStatus::Success, Some(42))).await.expect("complete");
        handle
            .complete(id, ending(AiRequestStatus::ClientClosed, Some(7)))
            .await
            .expect("a second completion is no error");
        let stored = rows(&db).await;
        assert_eq!(stored.len(), 1);
        assert_eq!(
            (stored[0].status.as_str(), stored[0].cost_microdollars),
            ("success", Some(42)),
            "the first ending stays"
        );

        let error = handle.complete(id, ending(AiRequestStatus::Started, None)).await.expect_err("not an ending");
        assert_eq!(error, AiRequestError::NotAnEnding);

        let refused = handle.finish(row(2), ending(AiRequestStatus::Denied, None)).await.expect("finish");
        assert_ne!(refused, id, "a refusal is a row of its own");
        let stored = rows(&db).await;
        let denied = stored.iter().find(|stored| stored.id == refused).expect("the refused row");
        assert_eq!((denied.status.as_str(), denied.cost_microdollars), ("denied", None), "no made-up cost");
        handle.drain().await;
    }

    #[tokio::test]
    async fn a_closed_database_refuses_starts_with_a_message_free_of_row_contents() {
        let db = database().await;
        let handle = AiRequestWriter::start(db.clone(), "sqlite::memory:").await.expect("start");
        db.close_by_ref().await.expect("close");
        let mut secret = row(3);
        secret.user_id = Some("user-with-a-s3cret-name".into());
        let error = handle.start(secret).await.expect_err("the database is closed");
        assert_eq!(error, AiRequestError::Unavailable);
        assert!(!error.to_string().contains("s3cret"), "{error}");
        assert!(!handle.is_available(), "the health flag drops");
    }
}
