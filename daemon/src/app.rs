//! `Application::build` wires the database, the actors and the HTTP server; `run_until_stopped`
//! serves until SIGTERM, then drains calls, stops the children and flushes the audit writer.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix::prelude::*;
use actix_web::{App, HttpServer, web};
use arc_swap::ArcSwap;
use castellan_actors::health_monitor::HealthMonitor;
use castellan_actors::mcp_server::ServerContext;
use castellan_actors::port_allocator::PortAllocator;
use castellan_actors::reconciler::{ApplyServers, Reconciler, Shutdown};
use castellan_actors::upstream::http::upstream_http_client;
use castellan_actors::{AuditHandle, AuditWriter, EventBus, Metrics, Registry};
use castellan_config::Profile;
use sea_orm::DatabaseConnection;

use crate::http::{AppState, configure};
use crate::identity::Authenticator;
use crate::identity::address_limiter::AddressLimiter;
use crate::identity::authority::Authority;
use crate::identity::client_metadata::ClientMetadataResolver;
use crate::identity::federation::{FederatedIssuers, FederationTiming};
use crate::identity::master_key::MasterKey;
use crate::identity::outbound::{GuardedClient, OutboundPolicy};
use crate::identity::revocations::{self, Revocations};
use crate::identity::signing::{self, SigningKeys};
use crate::mcp::GatewayRouter;
use crate::mcp::gateway::{Gateway, GatewayParts};
use crate::mcp::session::{SessionLimits, SessionStore};
use crate::secrets::{SecretStore, load_master_key};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Database(#[from] castellan_schema::DbError),
    #[error("cannot listen on {address}: {source}")]
    Listen { address: String, source: std::io::Error },
    #[error("{0}")]
    Other(String),
}

/// Where the profile came from, for reloads.
#[derive(Debug, Clone)]
pub enum ProfileSource {
    Embedded,
    File(PathBuf),
}

/// The running daemon before it starts serving.
pub struct Application {
    server: actix_web::dev::Server,
    pub address: std::net::SocketAddr,
    pub state: web::Data<AppState>,
    reconciler: Addr<Reconciler>,
    audit: AuditHandle,
    pub bus: EventBus,
    /// Its tasks run on the runtime; kept for the life of the daemon.
    _scheduler: crate::jobs::scheduler::Scheduler,
}

/// What reload needs to apply a new profile.
#[derive(Clone)]
pub struct LiveHandles {
    pub state: web::Data<AppState>,
    pub reconciler: Addr<Reconciler>,
    pub bus: EventBus,
}

impl Application {
    /// Must run inside an actix System (the actors start on its arbiter).
    pub async fn build(profile: &Profile, db: DatabaseConnection) -> Result<Self, StartError> {
        let listener = TcpListener::bind(&profile.server.listen)
            .map_err(|source| StartError::Listen { address: profile.server.listen.clone(), source })?;
        Self::build_on(profile, db, listener).await
    }

    /// [`Application::build`] on a listener the caller bound (so a taken port fails before anything
    /// starts); `profile.server.listen` is not read.
    pub async fn build_on(
        profile: &Profile,
        db: DatabaseConnection,
        listener: TcpListener,
    ) -> Result<Self, StartError> {
        // The extensions were checked by `serve` before anything started; discovering again is cheap.
        let extensions =
            castellan_extension::discover().map_err(|error| StartError::Other(format!("extensions: {error}")))?;
        let registry = Registry::default();
        let in_process =
            crate::extension_tools::register(&extensions, &registry, &db, profile).map_err(StartError::Other)?;
        if !in_process.is_empty() {
            tracing::info!(servers = ?in_process, "extension tool providers registered");
        }
        // Tool labels are the tools ready servers have right now (never what a client wrote).
        let metrics = Metrics::with_catalogue(Arc::new(registry.clone()));
        let bus = EventBus::new(metrics.clone());
        let sessions = Arc::new(SessionStore::new(SessionLimits {
            total: crate::mcp::session::MAX_SESSIONS,
            per_principal: profile.server.max_sessions_per_principal,
        }));
        let audit = AuditWriter::start(db.clone(), &profile.database.url, metrics.clone()).await?;
        let policies = Arc::new(crate::governance::Policies::new(profile));
        let master = Arc::new(load_master_key(profile).map_err(|error| StartError::Other(error.to_string()))?);
        tracing::info!(fingerprint = %master.fingerprint, "master key loaded");
        let secrets = Arc::new(SecretStore::new(db.clone(), Arc::clone(&master), profile.secrets.validation));
        let loaded = secrets.reload().await.map_err(|error| StartError::Other(format!("secret store: {error}")))?;
        tracing::info!(secrets = loaded, "secret store loaded");
        crate::secrets::spawn_refresh(Arc::clone(&secrets));
        let (reconciler, converged_once) =
            start_supervision(profile, &registry, &bus, &metrics, &secrets, Arc::clone(&sessions))?;
        let restarts = reconciler.clone();
        secrets.set_change_listener(Arc::new(move |names| {
            restarts.do_send(castellan_actors::reconciler::SecretsChanged(names));
        }));

        let address = listener
            .local_addr()
            .map_err(|source| StartError::Listen { address: profile.server.listen.clone(), source })?;
        let authority = build_authority(profile, &db, Arc::clone(&master)).await?;
        let client_metadata = client_metadata_resolver(profile)?;
        let passkeys = crate::web::passkeys::Passkeys::for_public_url(&profile.server.public_url);
        if passkeys.is_none() {
            tracing::warn!(
                public_url = %profile.server.public_url,
                "passkeys are unavailable: server.public_url must be a host name such as localhost, not an IP address"
            );
        }

        let tool_pins = Arc::new(crate::governance::tool_pins::ToolPins::new(db.clone(), profile.server.tool_changes));
        tool_pins.reload().await?;
        crate::governance::tool_pins::spawn_observer(Arc::clone(&tool_pins), registry.clone(), bus.clone());
        let skills = crate::skills::SkillCatalog::load(db.clone(), profile.skills.signing_keys.clone())
            .await
            .map_err(|error| StartError::Other(format!("skills catalog: {error}")))?;
        crate::skills::catalog::spawn_refresh(Arc::clone(&skills));
        let skills_watch = crate::skills::watch::spawn(
            Arc::clone(&skills),
            crate::skills::watch::Watched {
                dirs: profile.skills.dirs.clone(),
                signing_keys: profile.skills.signing_keys.clone(),
            },
            bus.clone(),
        );
        let gateway = Arc::new(Gateway::new(GatewayParts {
            registry,
            policies,
            audit: audit.clone(),
            bus: bus.clone(),
            metrics: metrics.clone(),
            sessions,
            call_timeout: profile.server.call_timeout,
            tool_pins,
            hooks: Arc::new(crate::hooks::Hooks::new(Some(secrets.lookup()))),
            hook_writer: crate::hooks::writer::HookWriter::start(db.clone()),
            skills: Some(skills),
        }));
        // Rows a crash left `started` are marked before anything new is admitted.
        mark_interrupted_ai_requests(&db, profile).await?;
        let ai_rows = castellan_actors::AiRequestWriter::start(db.clone(), &profile.database.url).await?;
        let ai =
            crate::ai::AiGateway::new(profile, db.clone(), ai_rows, Arc::clone(&gateway)).map_err(StartError::Other)?;
        let services = crate::jobs::Services {
            db: db.clone(),
            master: Arc::clone(&master),
            secrets: Arc::clone(&secrets),
            http: crate::jobs::http_client().map_err(StartError::Other)?,
            bus: Some(bus.clone()),
        };
        let jobs = crate::jobs::all_jobs(profile, &services, &extensions).map_err(StartError::Other)?;
        let job_names: Vec<String> = jobs.iter().map(|job| job.name.clone()).collect();
        let scheduler = crate::jobs::scheduler::Scheduler::start(
            jobs,
            Arc::new(crate::jobs::scheduler::DatabaseRuns(db.clone())),
            db.clone(),
            crate::jobs::lease_holder(),
            bus.clone(),
        );
        tracing::info!(jobs = ?job_names, "scheduler started");
        let state = web::Data::new(AppState {
            ai,
            gateway,
            authenticator: Authenticator::new(db.clone(), Arc::clone(&authority)),
            metrics,
            metrics_access: crate::metrics_access::MetricsAccess::new(profile.metrics.token.as_ref()),
            db,
            public_url: profile.server.public_url.clone(),
            allowed_origins: ArcSwap::from_pointee(profile.server.allowed_origins.clone()),
            listen_origin: format!("http://{address}"),
            allow_anonymous: AtomicBool::new(profile.server.allow_anonymous),
            converged_once,
            migrations_applied: AtomicBool::new(true),
            authority,
            client_metadata,
            passkeys,
            secrets,
            registration_limiter: AddressLimiter::for_registrations(std::time::Instant::now()),
            trusted_proxies: crate::governance::rate_limit::TrustedProxies::new(&profile.server.trusted_proxies),
            bodies: crate::http_body::BodyBounds::from_profile(&profile.server),
            metadata_fetch_limiter: AddressLimiter::for_metadata_fetches(),
            flow_limiter: AddressLimiter::for_flows(),
            skills_watch: Some(skills_watch),
        });
        spawn_sweeps(state.clone(), profile.clone());
        let handles = LiveHandles { state: state.clone(), reconciler: reconciler.clone(), bus: bus.clone() };
        apply_servers(&handles, profile);

        let max_body = profile.server.max_body_bytes;
        let app_state = state.clone();
        let mounted = crate::extension_routes::collect(&extensions, profile).map_err(StartError::Other)?;
        let server = HttpServer::new(move || {
            // Every body goes through `http_body` (bounded and timed); web::Json is not used.
            App::new()
                .app_data(app_state.clone())
                .app_data(web::PayloadConfig::new(max_body))
                .configure(configure)
                .configure(|config| crate::extension_routes::configure(config, &mounted))
        })
        .workers(2)
        // Streams go out as many small writes; with Nagle's algorithm each waits for the client's
        // delayed ACK (about 40 ms on Linux). Every response is written whole or as events, so
        // coalescing buys nothing.
        .on_connect(|connection, _| {
            if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
                let _ = tcp.set_nodelay(true);
            }
        })
        .shutdown_timeout(profile.server.drain_timeout.as_secs().max(1))
        .listen(listener)
        .map_err(|source| StartError::Listen { address: address.to_string(), source })?
        .run();
        Ok(Self { server, address, state, reconciler, audit, bus, _scheduler: scheduler })
    }

    pub fn handles(&self) -> LiveHandles {
        LiveHandles { state: self.state.clone(), reconciler: self.reconciler.clone(), bus: self.bus.clone() }
    }

    /// Serves until a stop signal; then children are stopped and the audit trail and the AI request
    /// log are flushed.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        tracing::info!("http server stopped; stopping mcp servers");
        let _ = self.reconciler.send(Shutdown).await;
        self.audit.drain().await;
        self.state.ai.drain().await;
        tracing::info!("shutdown complete");
        result
    }
}

/// The authorization server's state: master key, signing keys (created or rotated as due), the
/// revoked set, and the background tasks that keep them current.
async fn build_authority(
    profile: &Profile,
    db: &DatabaseConnection,
    master: Arc<MasterKey>,
) -> Result<Arc<Authority>, StartError> {
    let identity = &profile.identity;
    let keys = SigningKeys::start(
        db.clone(),
        master,
        identity.signing_key_rotation,
        identity.access_token_ttl,
        chrono::Utc::now(),
    )
    .await
    .map_err(|error| StartError::Other(format!("token signing keys: {error}")))?;
    let keys = Arc::new(keys);
    signing::spawn_maintenance(Arc::clone(&keys), Duration::from_secs(60));
    let revocations = Arc::new(Revocations::new(db.clone()));
    revocations.poll(chrono::Utc::now()).await?;
    revocations::spawn_polling(Arc::clone(&revocations));
    let federation = federated_issuers(profile)?;
    Ok(Arc::new(Authority::new(
        db.clone(),
        profile.server.public_url.clone(),
        identity.clone(),
        keys,
        revocations,
        federation,
    )))
}

/// The external issuers of `identity.issuers`, discovered in the background (a failure is logged and
/// retried, never fatal). Operators name these servers, so private addresses are allowed; plain http
/// is accepted on loopback only (checked per request by the federation module).
fn federated_issuers(profile: &Profile) -> Result<Option<Arc<FederatedIssuers>>, StartError> {
    let identity = &profile.identity;
    if identity.issuers.is_empty() {
        return Ok(None);
    }
    let client = GuardedClient::new(OutboundPolicy {
        allow_private_addresses: true,
        require_https: false,
        extra_root_certificates_pem: extra_certificates(profile)?,
        connect_timeout: Duration::from_secs(5),
        timeout: Duration::from_secs(10),
        max_body_bytes: 512 * 1024,
    })
    .map_err(|error| StartError::Other(format!("federated issuers' HTTP client: {error}")))?;
    let timing = FederationTiming { on_demand_fetch_interval: identity.key_refetch_interval, ..Default::default() };
    let issuers = FederatedIssuers::new(&identity.issuers, client, timing).map_err(StartError::Other)?;
    let issuers = Arc::new(issuers);
    issuers.spawn_refresh();
    Ok(Some(issuers))
}

/// The fetcher of Client ID Metadata Documents, with the SSRF guard the profile asks for.
fn client_metadata_resolver(profile: &Profile) -> Result<Option<ClientMetadataResolver>, StartError> {
    let identity = &profile.identity;
    if !identity.client_metadata_documents {
        return Ok(None);
    }
    let client = GuardedClient::new(OutboundPolicy {
        allow_private_addresses: identity.allow_private_addresses,
        require_https: true,
        extra_root_certificates_pem: extra_certificates(profile)?,
        connect_timeout: Duration::from_secs(3),
        timeout: Duration::from_secs(5),
        max_body_bytes: 5 * 1024,
    })
    .map_err(|error| StartError::Other(format!("client metadata fetcher: {error}")))?;
    Ok(Some(ClientMetadataResolver::new(client)))
}

/// `identity.extra_ca_file`, read at start.
pub fn extra_certificates(profile: &Profile) -> Result<Vec<Vec<u8>>, StartError> {
    match &profile.identity.extra_ca_file {
        Some(path) => std::fs::read(path)
            .map(|pem| vec![pem])
            .map_err(|error| StartError::Other(format!("identity.extra_ca_file {}: {error}", path.display()))),
        None => Ok(Vec::new()),
    }
}

/// Applies the server part of a (validated) profile: reconciler, timeouts, the known names.
pub fn apply_servers(handles: &LiveHandles, profile: &Profile) {
    let names: BTreeSet<String> = profile.mcp_servers.keys().map(|name| name.as_str().to_string()).collect();
    handles.state.metrics.set_configured_servers(names.clone());
    handles.state.gateway.audit.set_max_field_bytes(profile.audit.max_field_bytes);
    handles.state.metrics_access.set_token(profile.metrics.token.as_ref());
    handles.state.gateway.configured_servers.store(Arc::new(names));
    let timeouts = profile
        .mcp_servers
        .iter()
        .filter_map(|(name, spec)| spec.call_timeout.map(|timeout| (name.as_str().to_string(), timeout)))
        .collect();
    handles.state.gateway.server_call_timeouts.store(Arc::new(timeouts));
    handles.state.allowed_origins.store(Arc::new(profile.server.allowed_origins.clone()));
    handles.state.allow_anonymous.store(profile.server.allow_anonymous, Ordering::Relaxed);
    handles.state.secrets.set_validation(profile.secrets.validation);
    // RBAC, rate limits, hook chains and the pinning mode: one atomic store.
    let generation = handles.state.gateway.policies.apply(profile);
    tracing::debug!(generation, "governance snapshot published");
    handles.state.trusted_proxies.apply(&profile.server.trusted_proxies);
    handles.state.gateway.tool_pins.set_mode(profile.server.tool_changes);
    if let Err(error) = handles.state.ai.apply(profile) {
        tracing::error!(%error, "the AI gateway kept its previous configuration");
    }
    if let Some(watch) = &handles.state.skills_watch {
        let skills = &profile.skills;
        watch.store(Arc::new(crate::skills::watch::Watched {
            dirs: skills.dirs.clone(),
            signing_keys: skills.signing_keys.clone(),
        }));
    }
    if let Some(catalog) = handles.state.gateway.skills.clone() {
        let keys = profile.skills.signing_keys.clone();
        tokio::spawn(async move {
            if let Err(error) = catalog.set_signing_keys(keys).await {
                tracing::error!(%error, "reloading the skills catalog for the new signing keys failed");
            }
        });
    }
    handles.reconciler.do_send(ApplyServers(profile.mcp_servers.clone()));
    handles.state.migrations_applied.store(true, Ordering::Release);
}

/// The supervision actors: the reconciler (over the servers' shared context) and the health
/// monitor. Returns the reconciler and the flag it raises once it has converged.
fn start_supervision(
    profile: &Profile,
    registry: &Registry,
    bus: &EventBus,
    metrics: &Metrics,
    secrets: &Arc<SecretStore>,
    sessions: Arc<SessionStore>,
) -> Result<(Addr<Reconciler>, Arc<AtomicBool>), StartError> {
    let self_executable =
        std::env::current_exe().map_err(|error| StartError::Other(format!("cannot find own executable: {error}")))?;
    let context = Arc::new(ServerContext {
        registry: registry.clone(),
        bus: bus.clone(),
        metrics: metrics.clone(),
        router: Arc::new(GatewayRouter { sessions }),
        secrets: secrets.lookup(),
        output_redactor: Arc::new(crate::redaction::CurrentRedactor),
        port_allocator: PortAllocator::default().start(),
        http_client: upstream_http_client().map_err(|error| StartError::Other(error.to_string()))?,
        handshake_timeout: Duration::from_secs(30),
        self_executable,
    });
    let converged_once = Arc::new(AtomicBool::new(false));
    let reconciler = Reconciler::new(context, Arc::clone(&converged_once)).start();
    let memory = metrics.servers_memory_bytes.clone();
    HealthMonitor::new(registry.clone(), reconciler.clone(), bus.clone(), profile.server.health_interval, memory)
        .start();
    Ok((reconciler, converged_once))
}

/// Once a minute: idle sessions end (with SessionEnd) and rate-limit buckets that are full again
/// are dropped, so neither grows with callers that went away.
/// Marks the AI rows left `started` by a daemon that stopped without ending them. SQLite is one
/// daemon's file: every such row is a dead one. A shared PostgreSQL may hold other replicas'
/// requests in flight, so only rows older than any request can run (the longest provider
/// `timeout`, plus a minute) are marked, at start and then every minute.
async fn mark_interrupted_ai_requests(db: &DatabaseConnection, profile: &Profile) -> Result<(), StartError> {
    let now = chrono::Utc::now();
    let started_before = match db.get_database_backend() {
        sea_orm::DatabaseBackend::Sqlite => now,
        _ => now - longest_ai_request(profile),
    };
    let interrupted = castellan_schema::ai_requests::mark_interrupted(db, started_before, now).await?;
    if interrupted > 0 {
        tracing::warn!(rows = interrupted, "AI requests interrupted by a stop were marked failed");
    }
    Ok(())
}

/// The longest an AI request can run: the longest provider `timeout`, plus a minute.
fn longest_ai_request(profile: &Profile) -> chrono::Duration {
    let longest = profile.providers.values().map(|provider| provider.timeout).max().unwrap_or(Duration::from_secs(600));
    chrono::Duration::from_std(longest + Duration::from_secs(60)).unwrap_or(chrono::Duration::hours(1))
}

fn spawn_sweeps(state: web::Data<AppState>, profile: Profile) {
    tokio::spawn(async move {
        let mut every_minute = tokio::time::interval(Duration::from_secs(60));
        loop {
            every_minute.tick().await;
            if state.db.get_database_backend() != sea_orm::DatabaseBackend::Sqlite
                && let Err(error) = mark_interrupted_ai_requests(&state.db, &profile).await
            {
                tracing::warn!(%error, "marking interrupted AI requests failed");
            }
            state.gateway.end_idle_sessions().await;
            let snapshot = state.gateway.policies.load();
            snapshot.limits.sweep();
        }
    });
}
