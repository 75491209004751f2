//! `castellan jobs list` and `castellan jobs run NAME`.
//!
//! `run` runs the job in this process, under the same lease as the daemon's scheduler: if a daemon
//! (or another `jobs run`) is running it at that moment, this one says so and runs nothing.

use std::process::ExitCode;
use std::sync::Arc;

use castellan_config::Schedule;
use castellan_schema::jobs::RunStatus;
use chrono::{DateTime, Utc};
use clap::Subcommand;
use serde_json::json;

use super::terminal::{escape, json_line, table, truncate};
use super::{GlobalArgs, load_profile};
use crate::jobs::scheduler::{DatabaseRuns, Scheduled, run_once};
use crate::jobs::{Services, all_jobs};
use crate::secrets::{SecretStore, load_existing_master_key};

/// How much of a run's detail the table shows; `--json` has all of it.
const DETAIL_SHOWN: usize = 80;

/// The exit status when another holder is running the job.
const BUSY: u8 = 3;

#[derive(Subcommand, Debug)]
pub enum JobsCommand {
    /// Every scheduled job with its schedule, last run, outcome and next run.
    List {
        /// One JSON object per job per line.
        #[arg(long)]
        json: bool,
    },
    /// Run one job now, in this process; exit 0 when it succeeds, 1 when it fails, 3 when a daemon
    /// is running it at this moment.
    Run { name: String },
}

pub async fn run(global: &GlobalArgs, command: JobsCommand) -> Result<ExitCode, String> {
    let (profile, _) = load_profile(global)?;
    let db = super::database::open_existing(global, &profile).await?;
    let extensions = castellan_extension::discover().map_err(|error| format!("extensions: {error}"))?;
    let master = Arc::new(load_existing_master_key(&profile).map_err(|error| error.to_string())?);
    let secrets = Arc::new(SecretStore::new(db.clone(), Arc::clone(&master), profile.secrets.validation));
    secrets.reload().await.map_err(|error| format!("secret store: {error}"))?;
    let services = Services { db: db.clone(), master, secrets, http: crate::jobs::http_client()?, bus: None };
    let jobs = all_jobs(&profile, &services, &extensions)?;
    match command {
        JobsCommand::List { json } => list(&db, &jobs, json).await,
        JobsCommand::Run { name } => {
            let Some(scheduled) = jobs.iter().find(|job| job.name == name) else {
                let names: Vec<&str> = jobs.iter().map(|job| job.name.as_str()).collect();
                return Err(format!("no job is named `{name}`; this profile has: {}", names.join(", ")));
            };
            let holder = format!("cli:{}", crate::jobs::lease_holder());
            let context = castellan_extension::JobContext { db: db.clone(), config: scheduled.config.clone() };
            match run_once(scheduled, &DatabaseRuns(db), &context, &holder, None).await {
                None => {
                    println!("{name}: not run: another process holds its lease (a daemon is running it now)");
                    Ok(ExitCode::from(BUSY))
                }
                Some(outcome) => {
                    println!("{name}: {}: {}", outcome.status.as_str(), escape(&outcome.detail));
                    Ok(if outcome.status == RunStatus::Success { ExitCode::SUCCESS } else { ExitCode::FAILURE })
                }
            }
        }
    }
}

fn schedule_text(schedule: &Schedule) -> String {
    match schedule {
        Schedule::Every(period) => format!("every {}", humanize(period.as_secs())),
        Schedule::Cron(cron) => format!("cron {cron}"),
    }
}

fn humanize(seconds: u64) -> String {
    match seconds {
        seconds if seconds % 86_400 == 0 => format!("{}d", seconds / 86_400),
        seconds if seconds % 3600 == 0 => format!("{}h", seconds / 3600),
        seconds if seconds % 60 == 0 => format!("{}m", seconds / 60),
        seconds => format!("{seconds}s"),
    }
}

/// When the job is next due, as far as a process other than the daemon can tell: a cron job's next
/// minute; an `every` job one period after its last run started (jitter adds up to 10%), or one
/// period after the daemon starts when it never ran.
fn next_run(schedule: &Schedule, last_started: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match schedule {
        Schedule::Cron(cron) => cron.next_after(now),
        Schedule::Every(period) => {
            let period = chrono::Duration::from_std(*period).ok()?;
            last_started.map(|started| (started + period).max(now))
        }
    }
}

async fn list(db: &sea_orm::DatabaseConnection, jobs: &[Scheduled], json: bool) -> Result<ExitCode, String> {
    let now = Utc::now();
    let mut rows = Vec::new();
    for scheduled in jobs {
        let schedule = scheduled.job.schedule();
        let last = castellan_schema::jobs::recent_runs(db, &scheduled.name, 1)
            .await
            .map_err(|error| error.to_string())?
            .into_iter()
            .next();
        let next = next_run(&schedule, last.as_ref().map(|run| run.started_at), now);
        if json {
            println!(
                "{}",
                json_line(&json!({
                    "job": scheduled.name,
                    "schedule": schedule_text(&schedule),
                    "timeout_s": scheduled.job.timeout().as_secs(),
                    "last_started_at": last.as_ref().map(|run| run.started_at.to_rfc3339()),
                    "last_completed_at": last.as_ref().and_then(|run| run.completed_at).map(|at| at.to_rfc3339()),
                    "last_status": last.as_ref().map(|run| run.status.clone()),
                    "last_detail": last.as_ref().and_then(|run| run.detail.clone()),
                    "next_run_at": next.map(|at| at.to_rfc3339()),
                }))
            );
            continue;
        }
        let shown = |at: DateTime<Utc>| at.format("%Y-%m-%d %H:%M:%S").to_string();
        rows.push(vec![
            scheduled.name.clone(),
            schedule_text(&schedule),
            last.as_ref().map_or("-".into(), |run| shown(run.started_at)),
            last.as_ref().map_or("never run".into(), |run| run.status.clone()),
            next.map_or_else(
                || match schedule {
                    Schedule::Every(_) => "after start".to_string(),
                    Schedule::Cron(_) => "never".to_string(),
                },
                shown,
            ),
            last.as_ref()
                .and_then(|run| run.detail.as_deref())
                .map_or(String::new(), |detail| truncate(&escape(detail), DETAIL_SHOWN)),
        ]);
    }
    if !json {
        print!("{}", table(&["JOB", "SCHEDULE", "LAST RUN (UTC)", "OUTCOME", "NEXT RUN (UTC)", "DETAIL"], &rows));
    }
    Ok(ExitCode::SUCCESS)
}
