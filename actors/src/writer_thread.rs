//! The thread a group-commit writer (`AuditWriter`, `AiRequestWriter`) runs on, and what the two
//! share there: the receive loop, the health ping and the checkpoint schedule on a SQLite file.
//!
//! A thread rather than an actor on a shared arbiter: a write crosses one thread boundary to get
//! there and one to get back, and a synchronous commit on a SQLite file blocks no one else. The
//! thread sleeps until a command arrives, takes every command waiting (up to the writer's batch),
//! commits, answers, and sleeps again: group commit without an artificial delay.

use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::Instant;

use castellan_schema::DbError;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

use crate::database_health::{DatabaseHealth, HEALTH_INTERVAL};

/// On a SQLite file, the commits between two checkpoints by the writer itself: about SQLite's own
/// default of 1,000 log pages (a one-row audit commit writes ten to thirteen pages)...
const COMMITS_PER_CHECKPOINT: u32 = 128;
/// ... or the rows, when batches are large (consecutive rows share their pages).
const ROWS_PER_CHECKPOINT: u32 = 2048;
/// Between those, a background checkpointer (where the writer has one) is asked to copy the log
/// every this many commits, so that the writer's own checkpoint finds little left to copy.
const COMMITS_PER_BACKGROUND_CHECKPOINT: u32 = 16;

/// What a writer's handle sends to its thread.
// Nearly every command is a write: boxing it would cost an allocation per call.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Command<Write, Reply> {
    /// A write, and where its outcome goes.
    Write(Write, Reply),
    /// Answered once nothing is queued (or the database refuses what is); for shutdown.
    Drain(oneshot::Sender<()>),
}

/// What a writer does on its thread; [`run`] drives it.
pub(crate) trait BatchWriter {
    type Write;
    type Reply;
    /// Queues one write (or, with the database known down, answers it at once).
    fn accept(&mut self, write: Self::Write, reply: Self::Reply);
    /// How many writes wait for a commit.
    fn queued(&self) -> usize;
    fn health(&mut self) -> &mut DatabaseHealth;
    /// Whether the database answers now.
    fn ping(&mut self) -> bool;
    /// Commits what is queued, a batch at a time, while the database takes it, and answers.
    fn flush(&mut self);
    /// After the answers: a checkpoint, if one is due.
    fn after_flush(&mut self);
}

/// Until every sender is gone: wait for a command, take all that are waiting, commit.
pub(crate) fn run<W: BatchWriter>(mut writer: W, commands: Receiver<Command<W::Write, W::Reply>>, max_batch: usize) {
    let mut last_check = Instant::now();
    let mut drained: Vec<oneshot::Sender<()>> = Vec::new();
    let accept = |writer: &mut W, drained: &mut Vec<_>, command| match command {
        Command::Write(write, reply) => writer.accept(write, reply),
        Command::Drain(done) => drained.push(done),
    };
    loop {
        match commands.recv_timeout(HEALTH_INTERVAL) {
            Ok(command) => accept(&mut writer, &mut drained, command),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                writer.flush();
                return;
            }
        }
        while writer.queued() < max_batch {
            match commands.try_recv() {
                Ok(command) => accept(&mut writer, &mut drained, command),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        // At most once a health interval: a ping that succeeds on a database that still refuses
        // writes (a full disk) would otherwise let requests run between each command and the next
        // failed commit.
        if writer.health().check_due(false) && last_check.elapsed() >= HEALTH_INTERVAL {
            last_check = Instant::now();
            let up = writer.ping();
            writer.health().pinged(up);
        }
        writer.flush();
        if writer.queued() == 0 || !writer.health().is_healthy() {
            for done in drained.drain(..) {
                let _ = done.send(());
            }
        }
        writer.after_flush();
    }
}

/// Starts the thread `name` with a current-thread runtime of its own: `open` runs there first (its
/// error is the start's error, returned here), then `run` until the writer's senders are gone.
pub(crate) async fn spawn<S, Open, Run>(name: &str, open: Open, run: Run) -> Result<(), DbError>
where
    Open: FnOnce(&Runtime) -> Result<S, DbError> + Send + 'static,
    Run: FnOnce(S, Runtime) + Send + 'static,
{
    let (started, opened) = oneshot::channel();
    let thread = name.to_owned();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = started.send(Err(DbError::Other(format!("the {thread} thread's runtime: {error}"))));
                    return;
                }
            };
            match open(&runtime) {
                Ok(state) => {
                    let _ = started.send(Ok(()));
                    run(state, runtime);
                }
                Err(error) => {
                    let _ = started.send(Err(error));
                }
            }
        })
        .map_err(|error| DbError::Other(format!("cannot start the {name} thread: {error}")))?;
    opened.await.map_err(|_| DbError::Other(format!("the {name} thread stopped while starting")))?
}

/// When a writer on a SQLite file checkpoints: it never checkpoints inside a commit (every caller
/// of the batch would wait), but after the batch's callers have their answers, every
/// [`COMMITS_PER_CHECKPOINT`] commits or [`ROWS_PER_CHECKPOINT`] rows. The log is reused from its
/// start only after a checkpoint that caught up with the last commit, which a checkpoint racing
/// the writer never does, and a log that keeps growing makes every commit an extension of the
/// file, dearer to sync than an overwrite.
#[derive(Default)]
pub(crate) struct CheckpointSchedule {
    commits: u32,
    rows: u32,
}

impl CheckpointSchedule {
    /// A commit of `rows` rows was attempted.
    pub(crate) fn committed(&mut self, rows: usize) {
        self.commits += 1;
        self.rows = self.rows.saturating_add(rows as u32);
    }

    /// Whether a background checkpoint is due now (every [`COMMITS_PER_BACKGROUND_CHECKPOINT`]).
    pub(crate) fn background_due(&self) -> bool {
        self.commits > 0 && self.commits.is_multiple_of(COMMITS_PER_BACKGROUND_CHECKPOINT)
    }

    /// Runs `checkpoint` if the writer's own checkpoint is due. A database that is busy (another
    /// connection's checkpoint is running) is tried again after the next batch; any other failure
    /// waits for the next period.
    pub(crate) fn run_if_due(&mut self, what: &str, checkpoint: impl FnOnce() -> Result<(), DbError>) {
        if self.commits < COMMITS_PER_CHECKPOINT && self.rows < ROWS_PER_CHECKPOINT {
            return;
        }
        match checkpoint() {
            Ok(()) => *self = CheckpointSchedule::default(),
            Err(error) if error.is_unavailable() => tracing::debug!(%error, "{what} log checkpoint deferred"),
            Err(error) => {
                *self = CheckpointSchedule::default();
                tracing::warn!(%error, "{what} log checkpoint failed; the next one retries");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_fall_due_by_commits_or_by_rows_and_a_busy_one_is_retried() {
        let mut schedule = CheckpointSchedule::default();
        let mut ran = 0;
        for _ in 0..COMMITS_PER_CHECKPOINT - 1 {
            schedule.committed(1);
            schedule.run_if_due("test", || {
                ran += 1;
                Ok(())
            });
        }
        assert_eq!(ran, 0, "not before {COMMITS_PER_CHECKPOINT} commits");
        assert!(!schedule.background_due(), "{} commits", COMMITS_PER_CHECKPOINT - 1);
        schedule.committed(1);
        assert!(schedule.background_due(), "every {COMMITS_PER_BACKGROUND_CHECKPOINT} commits");
        schedule.run_if_due("test", || Err(DbError::Unavailable("busy".into())));
        schedule.run_if_due("test", || {
            ran += 1;
            Ok(())
        });
        assert_eq!(ran, 1, "a busy checkpoint is tried again at once after the next batch");
        schedule.run_if_due("test", || {
            ran += 1;
            Ok(())
        });
        assert_eq!(ran, 1, "and the period starts again after one that ran");

        schedule.committed(ROWS_PER_CHECKPOINT as usize);
        schedule.run_if_due("test", || Err(DbError::Other("broken".into())));
        schedule.committed(1);
        schedule.run_if_due("test", || {
            ran += 1;
            Ok(())
        });
        assert_eq!(ran, 1, "one large batch makes it due; a failure other than busy waits a whole period");
    }
}
