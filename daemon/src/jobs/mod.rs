//! Scheduled jobs: the built-in ones (retention, identity housekeeping, forwarding to SIEM sinks, the
//! Vault pull) and the extensions' own, all run by [`scheduler`] under the same rules.

pub mod scheduler;

use std::sync::Arc;
use std::time::Duration;

use castellan_actors::{Event, EventBus};
use castellan_config::{Profile, Schedule, SinkKind, Template, VaultAuthSpec};
use castellan_extension::{Job, JobContext};
use castellan_schema::retention::PruneLimits;
use chrono::Utc;
use futures_util::future::BoxFuture;
use sea_orm::DatabaseConnection;

use crate::forward::{ForwardTable, Sink};
use crate::identity::master_key::MasterKey;
use crate::secrets::SecretStore;
use scheduler::Scheduled;

/// Rows deleted per statement by retention: short write locks on SQLite.
const PRUNE_BATCH: u64 = 1_000;

/// How long one forwarding run may drain a backlog before it yields to the next.
const FORWARD_BUDGET: Duration = Duration::from_secs(30);

/// The user id of anonymous callers in `ai_requests` and `hook_events`.
const ANONYMOUS: &str = "anonymous";

/// The client of forwarding and the Vault pull: the Vault client (the shared outbound builder: no
/// redirects, so a sink or Vault that redirects elsewhere gets no rows or token; bounded in time).
pub fn http_client() -> Result<reqwest::Client, String> {
    crate::vault::client().map_err(|error| format!("the jobs' HTTP client: {error}"))
}

/// This replica's name in job leases: host, process and a random part (a restarted process is a
/// new holder, so its predecessor's lease lapses rather than being inherited mid-run).
pub fn lease_holder() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_else(|_| "host".to_string());
    format!("{host}:{}:{:08x}", std::process::id(), rand::random::<u32>())
}

/// What built-in jobs need from the daemon.
#[derive(Clone)]
pub struct Services {
    pub db: DatabaseConnection,
    pub master: Arc<MasterKey>,
    pub secrets: Arc<SecretStore>,
    pub http: reqwest::Client,
    pub bus: Option<EventBus>,
}

/// Every job this binary runs under `profile`: the built-in ones first, then each extension's,
/// named `{extension id}.{job}`. Fails on two jobs with one name.
pub fn all_jobs(
    profile: &Profile,
    services: &Services,
    extensions: &castellan_extension::Ordered,
) -> Result<Vec<Scheduled>, String> {
    let mut jobs: Vec<Scheduled> = Vec::new();
    let add = |jobs: &mut Vec<Scheduled>, name: String, job: Arc<dyn Job>, config: Option<serde_json::Value>| {
        if jobs.iter().any(|existing| existing.name == name) {
            return Err(format!("two jobs are named `{name}`"));
        }
        jobs.push(Scheduled { name, job, config });
        Ok(())
    };
    let purge =
        IdentityPurge { db: services.db.clone(), unused_client_ttl: profile.identity.unused_dynamic_client_ttl };
    add(&mut jobs, "identity-purge".into(), Arc::new(purge), None)?;
    if let Some(retention) = &profile.jobs.retention {
        let job = Retention { settings: retention.clone(), sinks: sink_tables(profile), services: services.clone() };
        add(&mut jobs, "retention".into(), Arc::new(job), None)?;
    }
    if let Some(forward) = &profile.jobs.forward {
        let job = Forward { settings: forward.clone(), services: services.clone() };
        add(&mut jobs, "forward".into(), Arc::new(job), None)?;
    }
    if let Some(pull) = &profile.jobs.secrets_pull {
        let job = SecretsPull { settings: pull.clone(), services: services.clone() };
        add(&mut jobs, "secrets-pull".into(), Arc::new(job), None)?;
    }
    for extension in extensions.iter() {
        let id = extension.metadata().id;
        let config = extension.config_prefix().and_then(|prefix| profile.extensions.get(prefix).cloned());
        for job in extension.jobs() {
            add(&mut jobs, format!("{id}.{}", job.name()), job, config.clone())?;
        }
    }
    Ok(jobs)
}

/// `(sink, table)` for every table a configured sink forwards: retention never deletes past them.
fn sink_tables(profile: &Profile) -> Vec<(String, String)> {
    let Some(forward) = &profile.jobs.forward else { return Vec::new() };
    forward.to.iter().flat_map(|sink| sink.tables.iter().map(|table| (sink.name.clone(), table.clone()))).collect()
}

/// Hourly: expired codes, tokens, sessions and flows, and dynamic clients never used within
/// `identity.unused_dynamic_client_ttl` of their registration.
struct IdentityPurge {
    db: DatabaseConnection,
    unused_client_ttl: Duration,
}

impl Job for IdentityPurge {
    fn name(&self) -> &str {
        "identity-purge"
    }

    fn schedule(&self) -> Schedule {
        Schedule::Every(Duration::from_secs(3600))
    }

    fn run<'a>(&'a self, _context: &'a JobContext) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let now = Utc::now();
            let expired =
                castellan_schema::oauth::purge_expired(&self.db, now).await.map_err(|error| error.to_string())?;
            let cutoff = crate::oauth::register::unused_registered_since(now, self.unused_client_ttl);
            let clients = castellan_schema::oauth::delete_unused_dynamic_clients(&self.db, cutoff)
                .await
                .map_err(|error| error.to_string())?;
            Ok(format!("removed {expired} expired authorization records and {clients} never-used dynamic clients"))
        })
    }
}

/// `jobs.retention`.
struct Retention {
    settings: castellan_config::RetentionJob,
    sinks: Vec<(String, String)>,
    services: Services,
}

impl Retention {
    /// The highest id of `table` every sink forwarding it has received; `None` when none forwards it.
    async fn forwarded_up_to(&self, table: &str) -> Result<Option<i64>, String> {
        let mut lowest: Option<i64> = None;
        for (sink, forwarded) in &self.sinks {
            if forwarded != table {
                continue;
            }
            let cursor = castellan_schema::jobs::forward_cursor(&self.services.db, sink, table)
                .await
                .map_err(|error| error.to_string())?;
            lowest = Some(lowest.map_or(cursor, |lowest| lowest.min(cursor)));
        }
        Ok(lowest)
    }

    async fn limits(&self, days: u32, table: &str, only_user: Option<&'static str>) -> Result<PruneLimits, String> {
        Ok(PruneLimits {
            older_than: Utc::now() - chrono::Duration::days(i64::from(days)),
            forwarded_up_to: self.forwarded_up_to(table).await?,
            batch: PRUNE_BATCH,
            only_user,
        })
    }
}

impl Job for Retention {
    fn name(&self) -> &str {
        "retention"
    }

    fn schedule(&self) -> Schedule {
        self.settings.timing.schedule.clone()
    }

    fn timeout(&self) -> Duration {
        self.settings.timing.timeout
    }

    fn run<'a>(&'a self, _context: &'a JobContext) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let db = &self.services.db;
            let settings = &self.settings;
            let mut done = Vec::new();
            if let Some(days) = settings.audit_days {
                let limits = self.limits(days, "mcp_tool_executions", None).await?;
                let key = crate::secrets::audit_checkpoint_key(&self.services.master);
                let outcome = castellan_schema::audit::prune(db, limits, &key, Utc::now())
                    .await
                    .map_err(|error| error.to_string())?;
                done.push(format!("mcp_tool_executions {}", outcome.deleted));
                // Skill fetches are part of the audit trail: kept as long as the calls.
                let limits = self.limits(days, "skill_fetches", None).await?;
                let deleted = castellan_schema::retention::prune_skill_fetches(db, limits)
                    .await
                    .map_err(|error| error.to_string())?;
                done.push(format!("skill_fetches {deleted}"));
            }
            if let Some(days) = settings.ai_requests_days {
                let limits = self.limits(days, "ai_requests", None).await?;
                let deleted = castellan_schema::retention::prune_ai_requests(db, limits)
                    .await
                    .map_err(|error| error.to_string())?;
                done.push(format!("ai_requests {deleted}"));
            }
            if let Some(days) = settings.hook_events_days {
                let limits = self.limits(days, "hook_events", None).await?;
                let deleted = castellan_schema::retention::prune_hook_events(db, limits)
                    .await
                    .map_err(|error| error.to_string())?;
                done.push(format!("hook_events {deleted}"));
            }
            if let Some(days) = settings.anonymous_days {
                let requests = self.limits(days, "ai_requests", Some(ANONYMOUS)).await?;
                let hooks = self.limits(days, "hook_events", Some(ANONYMOUS)).await?;
                let deleted = castellan_schema::retention::prune_ai_requests(db, requests)
                    .await
                    .map_err(|error| error.to_string())?
                    + castellan_schema::retention::prune_hook_events(db, hooks)
                        .await
                        .map_err(|error| error.to_string())?;
                done.push(format!("anonymous callers' rows {deleted}"));
            }
            Ok(if done.is_empty() {
                "no table has an age set".to_string()
            } else {
                format!("pruned {}", done.join(", "))
            })
        })
    }
}

/// Renders a credential template against the secret store; the error names the secret, never a value.
fn credential(template: &Template, secrets: &SecretStore) -> Result<String, String> {
    template.render(&|name| secrets.get(name), None).map_err(|error| error.to_string())
}

/// `jobs.forward`.
struct Forward {
    settings: castellan_config::ForwardJob,
    services: Services,
}

impl Forward {
    fn sink(&self, spec: &castellan_config::SinkSpec) -> Result<Sink, String> {
        let token = match &spec.token {
            Some(template) => {
                credential(template, &self.services.secrets).map_err(|error| format!("sink {}: {error}", spec.name))?
            }
            None => String::new(),
        };
        Ok(Sink {
            name: spec.name.clone(),
            kind: match spec.kind {
                SinkKind::SplunkHec => crate::forward::SinkKind::SplunkHec,
                SinkKind::Datadog => crate::forward::SinkKind::DatadogLogs,
                SinkKind::Otlp => crate::forward::SinkKind::OtlpLogs,
            },
            url: spec.url.clone(),
            token,
            tables: spec.tables.iter().filter_map(|table| ForwardTable::parse(table)).collect(),
            batch: spec.batch,
        })
    }
}

impl Job for Forward {
    fn name(&self) -> &str {
        "forward"
    }

    fn schedule(&self) -> Schedule {
        self.settings.timing.schedule.clone()
    }

    fn timeout(&self) -> Duration {
        self.settings.timing.timeout
    }

    fn run<'a>(&'a self, _context: &'a JobContext) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            // Every sink gets its turn even when one before it fails; the run fails if any did.
            let mut lines = Vec::new();
            let mut failed = false;
            let budget = FORWARD_BUDGET.min(self.settings.timing.timeout / 2);
            for spec in &self.settings.to {
                let outcome = match self.sink(spec) {
                    Ok(sink) => crate::forward::forward_once(&self.services.db, &self.services.http, &sink, budget)
                        .await
                        .map(|report| report.to_string())
                        .map_err(|error| error.to_string()),
                    Err(error) => Err(error),
                };
                match outcome {
                    Ok(line) => lines.push(line),
                    Err(error) => {
                        failed = true;
                        lines.push(error);
                    }
                }
            }
            let detail = lines.join("; ");
            if failed { Err(detail) } else { Ok(detail) }
        })
    }
}

/// `jobs.secrets_pull`.
struct SecretsPull {
    settings: castellan_config::SecretsPullJob,
    services: Services,
}

impl SecretsPull {
    fn source(&self) -> Result<crate::vault::VaultSource, String> {
        let vault = &self.settings.vault;
        let secrets = &self.services.secrets;
        let auth = match &vault.auth {
            VaultAuthSpec::Token(token) => crate::vault::VaultAuth::Token(credential(token, secrets)?),
            VaultAuthSpec::AppRole { role_id, secret_id, mount } => crate::vault::VaultAuth::AppRole {
                role_id: credential(role_id, secrets)?,
                secret_id: credential(secret_id, secrets)?,
                mount: mount.clone(),
            },
        };
        Ok(crate::vault::VaultSource {
            url: vault.url.clone(),
            mount: vault.mount.clone(),
            path: vault.path.clone(),
            auth,
            namespace: vault.namespace.clone(),
        })
    }
}

impl Job for SecretsPull {
    fn name(&self) -> &str {
        "secrets-pull"
    }

    fn schedule(&self) -> Schedule {
        self.settings.timing.schedule.clone()
    }

    fn timeout(&self) -> Duration {
        self.settings.timing.timeout
    }

    fn run<'a>(&'a self, _context: &'a JobContext) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let pulled = match self.source() {
                Ok(source) => crate::vault::pull(&self.services.http, &source).await.map_err(|error| error.to_string()),
                Err(error) => Err(error),
            };
            let values = match pulled {
                Ok(values) => values,
                Err(error) => {
                    // The last values stay in force; operators see why on the bus and in job_runs.
                    if let Some(bus) = &self.services.bus {
                        bus.publish(Event::SecretsPullFailed { detail: error.clone() });
                    }
                    return Err(format!("{error}; the secrets pulled before stay in force"));
                }
            };
            let services = &self.services;
            crate::vault::apply(&services.secrets, &services.db, &services.master, &values)
                .await
                .map(|report| report.to_string())
                .map_err(|error| error.to_string())
        })
    }
}
