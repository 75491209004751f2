//! The writer of `hook_events`: callers hand it their decisions and wait until they are committed,
//! and it commits whatever has accumulated in one statement (group commit), so recording every
//! decision durably costs one write per batch rather than one per decision.

use castellan_schema::hook_events::HookEventRow;
use sea_orm::DatabaseConnection;
use tokio::sync::{mpsc, oneshot};

/// The most rows committed in one statement.
const MAX_BATCH_ROWS: usize = 512;

type Job = (Vec<HookEventRow>, oneshot::Sender<bool>);

/// A handle to the writer task; cheap to clone.
#[derive(Clone)]
pub struct HookWriter {
    sender: mpsc::Sender<Job>,
}

impl HookWriter {
    pub fn start(db: DatabaseConnection) -> Self {
        let (sender, mut receiver) = mpsc::channel::<Job>(4096);
        tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                let mut jobs = vec![first];
                let mut rows: usize = jobs[0].0.len();
                while rows < MAX_BATCH_ROWS {
                    match receiver.try_recv() {
                        Ok(job) => {
                            rows += job.0.len();
                            jobs.push(job);
                        }
                        Err(_) => break,
                    }
                }
                let batch: Vec<HookEventRow> = jobs.iter().flat_map(|(rows, _)| rows.iter().cloned()).collect();
                let committed = match castellan_schema::hook_events::record_many(&db, &batch).await {
                    Ok(()) => true,
                    Err(error) => {
                        tracing::error!(%error, rows = batch.len(), "recording hook decisions failed");
                        false
                    }
                };
                for (_, done) in jobs {
                    let _ = done.send(committed);
                }
            }
        });
        HookWriter { sender }
    }

    /// Records `rows`; true once they are committed.
    pub async fn record(&self, rows: Vec<HookEventRow>) -> bool {
        let (done, committed) = oneshot::channel();
        if self.sender.send((rows, done)).await.is_err() {
            return false;
        }
        committed.await.unwrap_or(false)
    }
}
