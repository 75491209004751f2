//! The scheduler: one task per job that sleeps until the job is due, takes the job's lease, runs it
//! under its timeout, records the run and decides when the next one is.
//!
//! One run at a time per job across replicas sharing PostgreSQL: a run starts only under the job's
//! lease (a row in `job_leases` taken by one conditional statement). After a run the holder keeps the
//! lease until shortly before the job is next due, so replicas whose timers fire a little later skip
//! that period instead of running it again; if the holder dies, the lease lapses and another replica
//! takes the job over at its next due time. A run that fails backs off exponentially (capped at five
//! minutes, or the period if longer), raises `job.failed` on the bus, and never stops the daemon.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use castellan_actors::job_schedule::{Every, MAX_FAILURE_BACKOFF};
use castellan_actors::mcp_server::backoff_delay;
use castellan_actors::{Event, EventBus};
use castellan_config::Schedule;
use castellan_extension::{Job, JobContext};
use castellan_schema::jobs::RunStatus;
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use tokio::sync::Notify;

/// Every `every:` job runs up to this fraction of its period late, so replicas and jobs sharing a
/// period do not fire in step.
pub const JITTER: f64 = 0.1;

/// How long before its next due time a holder gives up a job's lease: enough for clocks a little
/// apart, small against any period (which is at least a second).
const LEASE_MARGIN: Duration = Duration::from_millis(500);

/// How long a running job's lease lasts unless renewed: the holder renews it every third of this
/// while the run goes on, so the lease of a holder that died mid-run (SIGKILL, a lost host) lapses
/// this long after its last renewal, whatever the job's timeout, and a restarted daemon or another
/// replica takes the job over.
pub const RUN_LEASE_TTL: Duration = Duration::from_secs(10);

/// Where runs and leases are kept: the database in the daemon, memory in the scheduler's tests.
pub trait RunStore: Send + Sync {
    /// Takes (or renews) the lease of `job` for `ttl` from now; false when another holder has it.
    fn acquire<'a>(&'a self, job: &'a str, holder: &'a str, ttl: Duration) -> BoxFuture<'a, Result<bool, String>>;
    fn release<'a>(&'a self, job: &'a str, holder: &'a str) -> BoxFuture<'a, ()>;
    /// Records a run as started; its id.
    fn start<'a>(&'a self, job: &'a str) -> BoxFuture<'a, Result<i64, String>>;
    fn finish<'a>(&'a self, run: i64, status: RunStatus, detail: &'a str) -> BoxFuture<'a, ()>;
}

/// The database as a [`RunStore`].
pub struct DatabaseRuns(pub sea_orm::DatabaseConnection);

impl RunStore for DatabaseRuns {
    fn acquire<'a>(&'a self, job: &'a str, holder: &'a str, ttl: Duration) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move {
            castellan_schema::jobs::acquire_lease(&self.0, job, holder, Utc::now(), ttl)
                .await
                .map_err(|error| error.to_string())
        })
    }

    fn release<'a>(&'a self, job: &'a str, holder: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Err(error) = castellan_schema::jobs::release_lease(&self.0, job, holder).await {
                tracing::warn!(job, %error, "releasing a job's lease failed; it lapses by itself");
            }
        })
    }

    fn start<'a>(&'a self, job: &'a str) -> BoxFuture<'a, Result<i64, String>> {
        Box::pin(async move {
            castellan_schema::jobs::start_run(&self.0, job, Utc::now()).await.map_err(|error| error.to_string())
        })
    }

    fn finish<'a>(&'a self, run: i64, status: RunStatus, detail: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Err(error) = castellan_schema::jobs::finish_run(&self.0, run, status, Some(detail), Utc::now()).await
            {
                tracing::warn!(run, %error, "recording a job run's end failed");
            }
        })
    }
}

/// A job under its scheduler name (`retention`, `tickets.digest`), with its extension's profile
/// section.
#[derive(Clone)]
pub struct Scheduled {
    pub name: String,
    pub job: Arc<dyn Job>,
    pub config: Option<serde_json::Value>,
}

/// How one run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    pub status: RunStatus,
    pub detail: String,
}

/// The wait before the next run of `schedule` after `failures` failed runs in a row.
pub fn next_delay(schedule: &Schedule, failures: u32, now: DateTime<Utc>, rng: &mut impl rand::Rng) -> Duration {
    match schedule {
        Schedule::Every(period) => Every::new(*period, JITTER).next_delay(failures, rng),
        Schedule::Cron(cron) if failures == 0 => cron
            .next_after(now)
            .and_then(|next| (next - now).to_std().ok())
            // A date that never comes: look again in a day, in case the clock was wrong.
            .unwrap_or(Duration::from_secs(86_400)),
        Schedule::Cron(_) => {
            backoff_delay(Duration::from_secs(60), MAX_FAILURE_BACKOFF, failures.saturating_add(1), rng)
        }
    }
}

/// Runs `job` once under its lease: `None` when another holder has it.
pub async fn run_once(
    scheduled: &Scheduled,
    store: &dyn RunStore,
    context: &JobContext,
    holder: &str,
    bus: Option<&EventBus>,
) -> Option<RunOutcome> {
    let name = scheduled.name.as_str();
    let timeout = scheduled.job.timeout();
    match store.acquire(name, holder, RUN_LEASE_TTL).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!(job = name, "another replica holds the job's lease; skipping this run");
            return None;
        }
        Err(error) => {
            let outcome = RunOutcome { status: RunStatus::Failed, detail: format!("the job's lease: {error}") };
            report(name, &outcome, bus);
            return Some(outcome);
        }
    }
    let run = match store.start(name).await {
        Ok(run) => run,
        Err(error) => {
            let outcome = RunOutcome { status: RunStatus::Failed, detail: format!("recording the run: {error}") };
            report(name, &outcome, bus);
            return Some(outcome);
        }
    };
    let started = tokio::time::Instant::now();
    // The run is its own task: a panic in a job is a failed run, not a dead scheduler.
    let job = Arc::clone(&scheduled.job);
    let task_context = context.clone();
    let mut task = tokio::spawn(async move { job.run(&task_context).await });
    let outcome = tokio::select! {
        finished = tokio::time::timeout(timeout, &mut task) => match finished {
            Ok(Ok(Ok(detail))) => RunOutcome { status: RunStatus::Success, detail },
            Ok(Ok(Err(reason))) => RunOutcome { status: RunStatus::Failed, detail: reason },
            Ok(Err(_)) => RunOutcome { status: RunStatus::Failed, detail: "the job panicked".to_string() },
            Err(_) => {
                task.abort();
                RunOutcome {
                    status: RunStatus::TimedOut,
                    detail: format!("cancelled after its timeout of {}s", timeout.as_secs()),
                }
            }
        },
        lost = keep_lease(store, name, holder) => {
            // Another holder may run the job now: this run stops rather than run beside it.
            task.abort();
            RunOutcome { status: RunStatus::Failed, detail: lost }
        }
    };
    let detail = crate::redaction::current().redact(&outcome.detail).into_owned();
    let outcome = RunOutcome { detail, ..outcome };
    store.finish(run, outcome.status, &outcome.detail).await;
    tracing::info!(job = name, status = outcome.status.as_str(), elapsed_ms = started.elapsed().as_millis() as u64, detail = %outcome.detail, "job run finished");
    report(name, &outcome, bus);
    Some(outcome)
}

/// Renews `job`'s lease every third of [`RUN_LEASE_TTL`] for as long as it is polled; returns (why)
/// only when the lease is lost: taken by another holder after this one missed its renewals, or
/// not renewable because the store failed for a whole TTL.
async fn keep_lease(store: &dyn RunStore, job: &str, holder: &str) -> String {
    let every = RUN_LEASE_TTL / 3;
    let mut last_renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(every).await;
        match store.acquire(job, holder, RUN_LEASE_TTL).await {
            Ok(true) => last_renewed = tokio::time::Instant::now(),
            Ok(false) => return "stopped: another replica took the job's lease".to_string(),
            Err(error) if last_renewed.elapsed() >= RUN_LEASE_TTL => {
                return format!("stopped: the job's lease could not be renewed: {error}");
            }
            Err(error) => tracing::warn!(job, %error, "renewing the job's lease failed; retrying"),
        }
    }
}

fn report(job: &str, outcome: &RunOutcome, bus: Option<&EventBus>) {
    if outcome.status == RunStatus::Success {
        return;
    }
    tracing::warn!(job, status = outcome.status.as_str(), detail = %outcome.detail, "job run failed");
    if let Some(bus) = bus {
        bus.publish(Event::JobFailed {
            job: job.to_string(),
            status: outcome.status.as_str().to_string(),
            detail: outcome.detail.clone(),
        });
    }
}

/// The running scheduler: a trigger per job, for `POST /api/v1/jobs/{name}/run`.
pub struct Scheduler {
    triggers: BTreeMap<String, Arc<Notify>>,
}

impl Scheduler {
    /// Starts one task per job. `holder` names this replica in the leases.
    pub fn start(
        jobs: Vec<Scheduled>,
        store: Arc<dyn RunStore>,
        db: sea_orm::DatabaseConnection,
        holder: String,
        bus: EventBus,
    ) -> Scheduler {
        let mut triggers = BTreeMap::new();
        for scheduled in jobs {
            let trigger = Arc::new(Notify::new());
            triggers.insert(scheduled.name.clone(), Arc::clone(&trigger));
            let context = JobContext { db: db.clone(), config: scheduled.config.clone() };
            let (store, holder, bus) = (Arc::clone(&store), holder.clone(), bus.clone());
            tokio::spawn(async move { run_forever(scheduled, store, context, holder, bus, trigger).await });
        }
        Scheduler { triggers }
    }

    /// The jobs this scheduler runs, by name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.triggers.keys().map(String::as_str)
    }

    /// Makes the job run now (when its lease allows); false for a job this scheduler does not run.
    pub fn trigger(&self, name: &str) -> bool {
        match self.triggers.get(name) {
            Some(trigger) => {
                trigger.notify_one();
                true
            }
            None => false,
        }
    }
}

async fn run_forever(
    scheduled: Scheduled,
    store: Arc<dyn RunStore>,
    context: JobContext,
    holder: String,
    bus: EventBus,
    trigger: Arc<Notify>,
) {
    let schedule = scheduled.job.schedule();
    let mut failures: u32 = 0;
    let mut delay = next_delay(&schedule, 0, Utc::now(), &mut rand::rng());
    loop {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = trigger.notified() => {}
        }
        match run_once(&scheduled, store.as_ref(), &context, &holder, Some(&bus)).await {
            Some(outcome) if outcome.status == RunStatus::Success => failures = 0,
            Some(_) => failures = failures.saturating_add(1),
            // Another replica ran it: due again a period from now, like after a success.
            None => {}
        }
        delay = next_delay(&schedule, failures, Utc::now(), &mut rand::rng());
        if failures == 0 {
            // Keep the job until just before it is due again (see the module comment).
            match delay.checked_sub(LEASE_MARGIN) {
                Some(keep) if !keep.is_zero() => {
                    let _ = store.acquire(&scheduled.name, &holder, keep).await;
                }
                _ => store.release(&scheduled.name, &holder).await,
            }
        } else {
            store.release(&scheduled.name, &holder).await;
        }
    }
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
