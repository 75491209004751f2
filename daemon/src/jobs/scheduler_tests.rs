//! The scheduler on a paused clock, with runs and leases kept in memory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use castellan_actors::Metrics;
use tokio::time::Instant;

use super::*;

/// A run: its job, and how it ended once it has.
type Run = (String, Option<(RunStatus, String)>);

#[derive(Default)]
struct MemoryRuns {
    leases: Mutex<HashMap<String, (String, Instant)>>,
    runs: Mutex<Vec<Run>>,
}

impl MemoryRuns {
    fn finished(&self) -> Vec<(RunStatus, String)> {
        self.runs.lock().unwrap().iter().filter_map(|(_, end)| end.clone()).collect()
    }
}

impl RunStore for MemoryRuns {
    fn acquire<'a>(&'a self, job: &'a str, holder: &'a str, ttl: Duration) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move {
            let mut leases = self.leases.lock().unwrap();
            let now = Instant::now();
            match leases.get(job) {
                Some((other, expires)) if other != holder && *expires > now => Ok(false),
                _ => {
                    leases.insert(job.to_string(), (holder.to_string(), now + ttl));
                    Ok(true)
                }
            }
        })
    }

    fn release<'a>(&'a self, job: &'a str, holder: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let mut leases = self.leases.lock().unwrap();
            if leases.get(job).is_some_and(|(other, _)| other == holder) {
                leases.remove(job);
            }
        })
    }

    fn start<'a>(&'a self, job: &'a str) -> BoxFuture<'a, Result<i64, String>> {
        Box::pin(async move {
            let mut runs = self.runs.lock().unwrap();
            runs.push((job.to_string(), None));
            Ok(runs.len() as i64 - 1)
        })
    }

    fn finish<'a>(&'a self, run: i64, status: RunStatus, detail: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.runs.lock().unwrap()[run as usize].1 = Some((status, detail.to_string()));
        })
    }
}

/// A job whose runs take `work`, fail while `failing` says so, and count how many overlap.
struct Probe {
    schedule: Schedule,
    timeout: Duration,
    work: Duration,
    fail: bool,
    panic: bool,
    started_at: Mutex<Vec<Instant>>,
    running: AtomicUsize,
    most_at_once: AtomicUsize,
}

impl Probe {
    fn every(seconds: u64) -> Probe {
        Probe {
            schedule: Schedule::Every(Duration::from_secs(seconds)),
            timeout: Duration::from_secs(60),
            work: Duration::from_millis(10),
            fail: false,
            panic: false,
            started_at: Mutex::new(Vec::new()),
            running: AtomicUsize::new(0),
            most_at_once: AtomicUsize::new(0),
        }
    }

    fn gaps(&self) -> Vec<Duration> {
        let starts = self.started_at.lock().unwrap();
        starts.windows(2).map(|pair| pair[1] - pair[0]).collect()
    }
}

impl Job for Probe {
    fn name(&self) -> &str {
        "probe"
    }

    fn schedule(&self) -> Schedule {
        self.schedule.clone()
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn run<'a>(&'a self, _context: &'a JobContext) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            self.started_at.lock().unwrap().push(Instant::now());
            let now_running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_at_once.fetch_max(now_running, Ordering::SeqCst);
            tokio::time::sleep(self.work).await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            if self.panic {
                panic!("the probe panics");
            }
            if self.fail { Err("the sink said no".to_string()) } else { Ok("done".to_string()) }
        })
    }
}

fn start(probe: &Arc<Probe>, store: &Arc<MemoryRuns>, holder: &str) -> Scheduler {
    let job: Arc<dyn Job> = probe.clone();
    Scheduler::start(
        vec![Scheduled { name: "probe".into(), job, config: None }],
        store.clone(),
        sea_orm::DatabaseConnection::default(),
        holder.to_string(),
        EventBus::new(Metrics::default()),
    )
}

#[tokio::test(start_paused = true)]
async fn an_every_job_runs_once_per_period_plus_at_most_its_jitter() {
    let probe = Arc::new(Probe::every(10));
    let store = Arc::new(MemoryRuns::default());
    let _scheduler = start(&probe, &store, "a");
    tokio::time::sleep(Duration::from_secs(1000)).await;
    let gaps = probe.gaps();
    assert!((85..=100).contains(&gaps.len()), "{} runs in 1000 s", gaps.len() + 1);
    for gap in &gaps {
        // Each gap is the period plus up to 10% jitter, plus the run's own 10 ms.
        assert!(*gap >= Duration::from_secs(10) && *gap <= Duration::from_millis(11_010), "gap {gap:?}");
    }
    assert!(gaps.iter().any(|gap| *gap > Duration::from_millis(10_200)), "jitter is applied");
    assert!(store.finished().iter().all(|(status, detail)| *status == RunStatus::Success && detail == "done"));
}

#[tokio::test(start_paused = true)]
async fn a_failing_job_backs_off_up_to_five_minutes_and_raises_an_event_each_time() {
    let probe = Arc::new(Probe { fail: true, ..Probe::every(10) });
    let store = Arc::new(MemoryRuns::default());
    let bus = EventBus::new(Metrics::default());
    let mut events = bus.subscribe();
    let job: Arc<dyn Job> = probe.clone();
    let _scheduler = Scheduler::start(
        vec![Scheduled { name: "probe".into(), job, config: None }],
        store.clone(),
        sea_orm::DatabaseConnection::default(),
        "a".into(),
        bus,
    );
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let gaps = probe.gaps();
    assert!(gaps.len() >= 10, "it keeps trying: {} runs", gaps.len() + 1);
    assert!(gaps.iter().all(|gap| *gap >= Duration::from_secs(10)), "never sooner than the period: {gaps:?}");
    assert!(gaps.iter().all(|gap| *gap <= Duration::from_millis(300_010)), "capped at five minutes: {gaps:?}");
    assert!(gaps[gaps.len() - 1] >= Duration::from_secs(150), "the waits grew: {gaps:?}");
    assert!(gaps[0] < gaps[gaps.len() - 1], "{gaps:?}");
    match events.next().await {
        Some(Event::JobFailed { job, status, detail }) => {
            assert_eq!((job.as_str(), status.as_str(), detail.as_str()), ("probe", "failed", "the sink said no"));
        }
        other => panic!("expected job_failed, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_run_past_its_timeout_is_cancelled_recorded_and_the_next_run_still_comes() {
    let probe = Arc::new(Probe { work: Duration::from_secs(120), timeout: Duration::from_secs(5), ..Probe::every(10) });
    let store = Arc::new(MemoryRuns::default());
    let _scheduler = start(&probe, &store, "a");
    tokio::time::sleep(Duration::from_secs(60)).await;
    let finished = store.finished();
    assert!(finished.len() >= 2, "{finished:?}");
    assert_eq!(finished[0], (RunStatus::TimedOut, "cancelled after its timeout of 5s".to_string()));
    assert_eq!(probe.running.load(Ordering::SeqCst), finished.len(), "each cancelled run stopped mid-sleep");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_job_is_a_failed_run_and_the_scheduler_goes_on() {
    let probe = Arc::new(Probe { panic: true, ..Probe::every(10) });
    let store = Arc::new(MemoryRuns::default());
    let _scheduler = start(&probe, &store, "a");
    tokio::time::sleep(Duration::from_secs(120)).await;
    let finished = store.finished();
    assert!(finished.len() >= 2, "{finished:?}");
    assert!(finished.iter().all(|run| *run == (RunStatus::Failed, "the job panicked".to_string())));
}

#[tokio::test(start_paused = true)]
async fn two_replicas_sharing_the_leases_never_run_the_job_at_once_nor_twice_a_period() {
    // Runs take a third of the period, so overlapping replicas would show.
    let probe = Arc::new(Probe { work: Duration::from_secs(3), ..Probe::every(10) });
    let store = Arc::new(MemoryRuns::default());
    let _a = start(&probe, &store, "replica-a");
    let _b = start(&probe, &store, "replica-b");
    tokio::time::sleep(Duration::from_secs(1000)).await;
    assert_eq!(probe.most_at_once.load(Ordering::SeqCst), 1, "never two runs at once");
    let runs = probe.gaps().len() + 1;
    assert!((70..=100).contains(&runs), "about one run per period across both replicas: {runs}");
}

#[tokio::test(start_paused = true)]
async fn a_trigger_runs_the_job_now() {
    let probe = Arc::new(Probe::every(3600));
    let store = Arc::new(MemoryRuns::default());
    let scheduler = start(&probe, &store, "a");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(probe.gaps().is_empty() && probe.started_at.lock().unwrap().is_empty(), "not due yet");
    assert!(scheduler.trigger("probe"));
    assert!(!scheduler.trigger("nothing"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(probe.started_at.lock().unwrap().len(), 1);
}

#[test]
fn a_cron_job_waits_until_its_next_minute_and_backs_off_by_minutes_after_failures() {
    let schedule = Schedule::Cron(castellan_config::Cron::parse("30 3 * * *").unwrap());
    let now = DateTime::parse_from_rfc3339("2026-12-07T03:00:00Z").unwrap().with_timezone(&Utc);
    assert_eq!(next_delay(&schedule, 0, now, &mut rand::rng()), Duration::from_secs(1800));
    let after_failure = next_delay(&schedule, 1, now, &mut rand::rng());
    assert!(after_failure >= Duration::from_secs(60) && after_failure <= MAX_FAILURE_BACKOFF, "{after_failure:?}");
}

#[tokio::test(start_paused = true)]
async fn a_run_longer_than_the_lease_keeps_it_and_no_replica_starts_beside_it() {
    // Runs take six lease lifetimes; only renewals keep the second replica out.
    let probe = Arc::new(Probe { work: RUN_LEASE_TTL * 6, timeout: Duration::from_secs(600), ..Probe::every(10) });
    let store = Arc::new(MemoryRuns::default());
    let _a = start(&probe, &store, "replica-a");
    let _b = start(&probe, &store, "replica-b");
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(probe.most_at_once.load(Ordering::SeqCst), 1, "never two runs at once");
    let finished = store.finished();
    assert!(finished.len() >= 5, "{finished:?}");
    assert!(finished.iter().all(|(status, _)| *status == RunStatus::Success), "{finished:?}");
}

#[tokio::test(start_paused = true)]
async fn the_lease_of_a_holder_that_died_mid_run_lapses_within_its_ttl_whatever_the_timeout() {
    let probe = Arc::new(Probe { timeout: Duration::from_secs(3600), ..Probe::every(1) });
    let store = Arc::new(MemoryRuns::default());
    // A run of an hour-long timeout holds the lease for no more than the TTL ahead.
    let long =
        Arc::new(Probe { work: Duration::from_secs(600), timeout: Duration::from_secs(3600), ..Probe::every(3600) });
    let other_store = Arc::new(MemoryRuns::default());
    let running = start(&long, &other_store, "running");
    assert!(running.trigger("probe"));
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(long.running.load(Ordering::SeqCst), 1);
    let expires = other_store.leases.lock().unwrap()["probe"].1;
    assert!(expires <= Instant::now() + RUN_LEASE_TTL, "renewed a TTL at a time, not for the whole timeout");
    // A predecessor took the lease for a run and was killed: it never renews nor releases it.
    assert_eq!(store.acquire("probe", "killed", RUN_LEASE_TTL).await, Ok(true));
    let _restarted = start(&probe, &store, "restarted");
    tokio::time::sleep(RUN_LEASE_TTL - Duration::from_millis(100)).await;
    assert!(probe.started_at.lock().unwrap().is_empty(), "the lease still holds");
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert!(!probe.started_at.lock().unwrap().is_empty(), "taken over at the first due time after the lapse");
}

#[tokio::test(start_paused = true)]
async fn a_run_whose_lease_is_taken_stops_and_is_a_failed_run() {
    let probe =
        Arc::new(Probe { work: Duration::from_secs(600), timeout: Duration::from_secs(3600), ..Probe::every(3600) });
    let store = Arc::new(MemoryRuns::default());
    let scheduler = start(&probe, &store, "stalled");
    assert!(scheduler.trigger("probe"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(probe.running.load(Ordering::SeqCst), 1);
    // The holder's renewals go missing (a stalled database): another holder takes the lapsed lease.
    store.leases.lock().unwrap().insert("probe".into(), ("other".into(), Instant::now() + Duration::from_secs(3600)));
    tokio::time::sleep(RUN_LEASE_TTL).await;
    assert_eq!(
        store.finished(),
        vec![(RunStatus::Failed, "stopped: another replica took the job's lease".to_string())]
    );
}
