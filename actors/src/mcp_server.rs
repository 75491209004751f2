//! The McpServer actor: owns one upstream server (a supervised child or a remote URL) through its
//! whole life: start, handshake, tool catalogue, restart with backoff and jitter, crash-loop state.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use castellan_config::{McpServerSpec, PortSetting, Template, Transport};
use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};

use crate::child_output::{OutputField, OutputRedactor, spawn_line_logger};
use crate::event_bus::{Event, EventBus};
use crate::metrics::Metrics;
use crate::port_allocator::{AllocatePort, PortAllocator, ReleasePort};
use crate::registry::{LiveServer, Registry, ServerIdentity, ToolEntry};
use crate::spawn::{ChildCommand, SupervisedChild, spawn_supervised};
use crate::upstream::{Connection, InboundRouter, UPSTREAM_PROTOCOL_VERSIONS, http, stdio};

/// Looks a secret up by name at the moment of injection; `None` when it is not set.
pub type SecretLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// What every server actor shares.
pub struct ServerContext {
    pub registry: Registry,
    pub bus: EventBus,
    pub metrics: Metrics,
    pub router: Arc<dyn InboundRouter>,
    pub secrets: SecretLookup,
    /// Redacts what children write to stdout and stderr before it is logged.
    pub output_redactor: Arc<dyn OutputRedactor>,
    pub port_allocator: Addr<PortAllocator>,
    pub http_client: reqwest::Client,
    pub handshake_timeout: Duration,
    /// The command name that means "this binary" (`castellan`), and the path it maps to.
    pub self_executable: PathBuf,
}

/// Stop the server and wait until its process is gone.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopServer;

/// Restart the server now (the health monitor asks for this).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RestartServer {
    pub reason: String,
}

/// The server said its tool list changed: fetch it again.
#[derive(Message)]
#[rtype(result = "()")]
struct RefreshTools;

/// How one run of the server ended.
enum RunEnd {
    Stopped,
    Failed(String),
}

pub struct McpServer {
    name: String,
    spec: McpServerSpec,
    context: Arc<ServerContext>,
    attempt: u32,
    exits: VecDeque<Instant>,
    stop_run: Option<oneshot::Sender<()>>,
    pending_start: Option<SpawnHandle>,
    stopping: bool,
    running: watch::Sender<bool>,
    settled: Option<oneshot::Sender<()>>,
}

impl McpServer {
    /// `settled` fires after the first attempt, whatever its outcome (readiness waits for it).
    pub fn new(name: String, spec: McpServerSpec, context: Arc<ServerContext>, settled: oneshot::Sender<()>) -> Self {
        Self {
            name,
            spec,
            context,
            attempt: 0,
            exits: VecDeque::new(),
            stop_run: None,
            pending_start: None,
            stopping: false,
            running: watch::Sender::new(false),
            settled: Some(settled),
        }
    }

    fn start_run(&mut self, ctx: &mut Context<Self>) {
        self.pending_start = None;
        if self.stopping {
            return;
        }
        self.attempt += 1;
        self.context.bus.publish(Event::ServerStarting { server: self.name.clone(), attempt: self.attempt });
        let (stop_sender, stop_receiver) = oneshot::channel();
        self.stop_run = Some(stop_sender);
        self.running.send_replace(true);
        let run = RunOnce {
            name: self.name.clone(),
            spec: self.spec.clone(),
            context: Arc::clone(&self.context),
            refresh: ctx.address().recipient(),
        };
        let started = Instant::now();
        let settled = self.settled.take();
        ctx.spawn(
            run.run(stop_receiver, settled)
                .into_actor(self)
                .map(move |end, actor, ctx| actor.run_ended(end, started, ctx)),
        );
    }

    fn run_ended(&mut self, end: RunEnd, started: Instant, ctx: &mut Context<Self>) {
        self.stop_run = None;
        self.running.send_replace(false);
        let reason = match end {
            RunEnd::Stopped => {
                self.context.bus.publish(Event::ServerStopped { server: self.name.clone() });
                return;
            }
            RunEnd::Failed(reason) => reason,
        };
        if self.stopping {
            return;
        }
        tracing::warn!(server = %self.name, %reason, "mcp server exited");
        self.context.bus.publish(Event::ServerExited { server: self.name.clone(), reason });
        let policy = &self.spec.restart;
        let restart =
            plan_restart(policy, &mut self.attempt, &mut self.exits, started, Instant::now(), &mut rand::rng());
        if let Some(exits_in_window) = restart.crash_loop {
            tracing::error!(
                server = %self.name,
                exits_in_window,
                retry_ms = restart.delay.as_millis() as u64,
                "mcp server is in a crash loop; retrying at the longest backoff"
            );
            self.context.bus.publish(Event::ServerCrashLoop { server: self.name.clone(), exits_in_window });
        }
        let delay = restart.delay;
        self.context.metrics.child_restart(&self.name);
        self.context
            .bus
            .publish(Event::ServerRestartScheduled { server: self.name.clone(), delay_ms: delay.as_millis() as u64 });
        self.pending_start = Some(ctx.run_later(delay, |actor, ctx| actor.start_run(ctx)));
    }
}

/// When to start a server again after it ended, and whether it is in a crash loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restart {
    pub delay: Duration,
    /// The exits counted in the window, when they reach the crash-loop threshold.
    pub crash_loop: Option<u32>,
}

/// The restart decision after a run that began at `started` ended at `now`: pure, so the schedule
/// is tested with made-up instants. A run that lasted a whole window starts the backoff afresh;
/// exits older than the window are forgotten; at the threshold the delay is the longest.
pub fn plan_restart(
    policy: &castellan_config::RestartPolicy,
    attempt: &mut u32,
    exits: &mut VecDeque<Instant>,
    started: Instant,
    now: Instant,
    rng: &mut impl Rng,
) -> Restart {
    if now.duration_since(started) >= policy.crash_loop_window {
        // It ran calmly for a whole window: the next failure starts the backoff afresh.
        *attempt = 1;
        exits.clear();
    }
    exits.push_back(now);
    while exits.front().is_some_and(|&exit| now.duration_since(exit) > policy.crash_loop_window) {
        exits.pop_front();
    }
    let exits_in_window = exits.len() as u32;
    if exits_in_window >= policy.crash_loop_threshold {
        return Restart { delay: policy.backoff_max, crash_loop: Some(exits_in_window) };
    }
    Restart { delay: backoff_delay(policy.backoff_initial, policy.backoff_max, *attempt, rng), crash_loop: None }
}

/// Exponential backoff from `initial`, capped at `max`, with +-20% jitter so restarts do not align.
pub fn backoff_delay(initial: Duration, max: Duration, attempt: u32, rng: &mut impl Rng) -> Duration {
    let exponent = attempt.saturating_sub(1).min(20);
    let base = initial.saturating_mul(1u32 << exponent).min(max);
    let jitter = rng.random_range(0.8..1.2);
    base.mul_f64(jitter).min(max)
}

impl Actor for McpServer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.start_run(ctx);
    }
}

impl Handler<StopServer> for McpServer {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: StopServer, ctx: &mut Context<Self>) -> Self::Result {
        self.stopping = true;
        // Stopping the actor cancels its run future before that future's own cleanup runs, so the
        // server leaves the registry here: a removed server's tools must not stay on offer.
        self.context.registry.remove(&self.name);
        if let Some(handle) = self.pending_start.take() {
            ctx.cancel_future(handle);
        }
        if let Some(stop) = self.stop_run.take() {
            let _ = stop.send(());
        }
        let mut running = self.running.subscribe();
        ctx.stop();
        Box::pin(async move {
            let _ = running.wait_for(|running| !*running).await;
        })
    }
}

impl Handler<RestartServer> for McpServer {
    type Result = ();

    fn handle(&mut self, message: RestartServer, _: &mut Context<Self>) {
        tracing::warn!(server = %self.name, reason = %message.reason, "restart requested");
        if let Some(live) = self.context.registry.get(&self.name) {
            // Closing the connection ends the run as a failure, which takes the normal restart path.
            live.connection.close();
        }
    }
}

impl Handler<RefreshTools> for McpServer {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: RefreshTools, _: &mut Context<Self>) -> Self::Result {
        let context = Arc::clone(&self.context);
        let name = self.name.clone();
        Box::pin(async move {
            let Some(live) = context.registry.get(&name) else { return };
            match list_tools(&live.connection, context.handshake_timeout).await {
                Ok(tools) => {
                    let count = tools.len();
                    context.registry.insert(live.with_tools(tools));
                    context.bus.publish(Event::ToolsChanged { server: name, tools: count });
                }
                Err(error) => tracing::warn!(server = %name, %error, "tool list refresh failed"),
            }
        })
    }
}

/// Everything one run needs, moved into its future.
struct RunOnce {
    name: String,
    spec: McpServerSpec,
    context: Arc<ServerContext>,
    refresh: Recipient<RefreshTools>,
}

/// Wraps the gateway's router so that `tools/list_changed` also refreshes our catalogue.
struct CatalogueRouter {
    inner: Arc<dyn InboundRouter>,
    refresh: Recipient<RefreshTools>,
}

impl InboundRouter for CatalogueRouter {
    fn notification(&self, server: &str, message: Value) {
        if message.get("method").and_then(Value::as_str) == Some("notifications/tools/list_changed") {
            self.refresh.do_send(RefreshTools);
        }
        self.inner.notification(server, message);
    }

    fn request(&self, server: &str, connection: Arc<Connection>, message: Value) {
        self.inner.request(server, connection, message);
    }
}

impl RunOnce {
    async fn run(self, stop: oneshot::Receiver<()>, settled: Option<oneshot::Sender<()>>) -> RunEnd {
        let mut allocated_port = None;
        let end = self.run_inner(stop, settled, &mut allocated_port).await;
        if let Some(port) = allocated_port {
            self.context.port_allocator.do_send(ReleasePort(port));
        }
        end
    }

    async fn run_inner(
        &self,
        stop: oneshot::Receiver<()>,
        settled: Option<oneshot::Sender<()>>,
        allocated_port: &mut Option<u16>,
    ) -> RunEnd {
        let router: Arc<dyn InboundRouter> =
            Arc::new(CatalogueRouter { inner: Arc::clone(&self.context.router), refresh: self.refresh.clone() });
        let started = self.start(router, allocated_port).await;
        let (connection, mut child) = match started {
            Ok(pair) => pair,
            Err(reason) => {
                drop(settled);
                return RunEnd::Failed(reason);
            }
        };
        let handshake = tokio::time::timeout(
            self.context.handshake_timeout,
            handshake(&connection, self.context.handshake_timeout),
        )
        .await;
        let (identity, tools) = match handshake {
            Ok(Ok(found)) => found,
            Ok(Err(reason)) => return self.fail(child, reason, settled).await,
            Err(_) => return self.fail(child, "handshake timed out".into(), settled).await,
        };
        let pid = child.as_ref().and_then(SupervisedChild::pid);
        let tool_count = tools.len();
        self.context.registry.insert(LiveServer::new(self.name.clone(), Arc::clone(&connection), identity, tools, pid));
        self.context.metrics.servers_ready.inc();
        self.context.bus.publish(Event::ServerReady { server: self.name.clone(), tools: tool_count, pid });
        tracing::info!(server = %self.name, tools = tool_count, "mcp server ready");
        drop(settled);

        let end = match &mut child {
            Some(child) => tokio::select! {
                _ = stop => RunEnd::Stopped,
                status = child.child.wait() => RunEnd::Failed(match status {
                    Ok(status) => format!("process exited ({status})"),
                    Err(error) => format!("process lost ({error})"),
                }),
                _ = connection.closed() => RunEnd::Failed("connection closed".into()),
            },
            None => tokio::select! {
                _ = stop => RunEnd::Stopped,
                _ = connection.closed() => RunEnd::Failed("connection closed".into()),
            },
        };
        self.context.metrics.servers_ready.dec();
        self.context.registry.remove_if(&self.name, &connection);
        connection.close();
        if let Some(mut child) = child {
            child.stop().await;
        }
        end
    }

    async fn fail(
        &self,
        child: Option<SupervisedChild>,
        reason: String,
        settled: Option<oneshot::Sender<()>>,
    ) -> RunEnd {
        drop(settled);
        if let Some(mut child) = child {
            child.stop().await;
        }
        RunEnd::Failed(reason)
    }

    /// Starts the process (if any) and opens the connection.
    async fn start(
        &self,
        router: Arc<dyn InboundRouter>,
        allocated_port: &mut Option<u16>,
    ) -> Result<(Arc<Connection>, Option<SupervisedChild>), String> {
        let secrets = Arc::clone(&self.context.secrets);
        let lookup = move |name: &str| secrets(name);
        match &self.spec.transport {
            Transport::Stdio { command, args, env, cwd } => {
                let command = self.child_command(command, args, env, cwd.clone(), &lookup, None)?;
                let mut child =
                    spawn_supervised(&command).map_err(|error| format!("cannot start {}: {error}", command.program))?;
                let connection =
                    stdio::connect_stdio(&self.name, &mut child, router, Arc::clone(&self.context.output_redactor))
                        .map_err(|error| error.to_string())?;
                Ok((connection, Some(child)))
            }
            Transport::Http { url, headers, process, port } => {
                let port = match port {
                    PortSetting::Auto => {
                        let port = self
                            .context
                            .port_allocator
                            .send(AllocatePort)
                            .await
                            .map_err(|_| "port allocator is gone".to_string())??;
                        *allocated_port = Some(port);
                        Some(port)
                    }
                    PortSetting::Fixed => None,
                };
                let url = url.render(&lookup, port).map_err(|error| error.to_string())?;
                let headers = headers
                    .iter()
                    .map(|(name, value)| {
                        Ok((name.clone(), value.render(&lookup, port).map_err(|error| error.to_string())?))
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                let child = match process {
                    Some(process) => {
                        let command = self.child_command(
                            &process.command,
                            &process.args,
                            &process.env,
                            process.cwd.clone(),
                            &lookup,
                            port,
                        )?;
                        let mut child = spawn_supervised(&command)
                            .map_err(|error| format!("cannot start {}: {error}", command.program))?;
                        log_output(&self.name, &mut child, &self.context.output_redactor);
                        Some(child)
                    }
                    None => None,
                };
                let connection = http::connect_http(&self.name, self.context.http_client.clone(), url, headers, router);
                Ok((connection, child))
            }
        }
    }

    fn child_command(
        &self,
        program: &str,
        args: &[Template],
        env: &std::collections::BTreeMap<String, Template>,
        cwd: Option<PathBuf>,
        lookup: &dyn Fn(&str) -> Option<String>,
        port: Option<u16>,
    ) -> Result<ChildCommand, String> {
        let program = if program == "castellan" {
            self.context.self_executable.to_string_lossy().into_owned()
        } else {
            program.to_string()
        };
        let args = args
            .iter()
            .map(|arg| arg.render(lookup, port).map_err(|error| error.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut variables = env
            .iter()
            .map(|(name, value)| Ok((name.clone(), value.render(lookup, port).map_err(|error| error.to_string())?)))
            .collect::<Result<Vec<_>, String>>()?;
        if let Some(port) = port {
            variables.push(("PORT".to_string(), port.to_string()));
        }
        Ok(ChildCommand { program, args, env: variables, cwd })
    }
}

/// An HTTP child's stdout and stderr go to the log, line by line, redacted.
fn log_output(server: &str, child: &mut SupervisedChild, redactor: &Arc<dyn OutputRedactor>) {
    if let Some(stdout) = child.child.stdout.take() {
        spawn_line_logger(server.to_string(), stdout, Arc::clone(redactor), OutputField::Output);
    }
    if let Some(stderr) = child.child.stderr.take() {
        spawn_line_logger(server.to_string(), stderr, Arc::clone(redactor), OutputField::Output);
    }
}

/// initialize, notifications/initialized, then the tool catalogue. An HTTP child may still be
/// binding its port, so a refused connection is retried until the caller's timeout.
pub async fn handshake(
    connection: &Arc<Connection>,
    timeout: Duration,
) -> Result<(ServerIdentity, Vec<ToolEntry>), String> {
    let params = json!({
        "protocolVersion": UPSTREAM_PROTOCOL_VERSIONS[0],
        "capabilities": {"sampling": {}, "elicitation": {}, "roots": {"listChanged": true}},
        "clientInfo": {"name": "castellan", "version": env!("CARGO_PKG_VERSION")},
    });
    let result = loop {
        match connection.request("initialize", Some(params.clone()), timeout).await {
            Ok(Ok(result)) => break result,
            Ok(Err(error)) => return Err(format!("initialize refused: {error}")),
            Err(crate::upstream::UpstreamError::Transport(reason)) if reason == "could not connect" => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => return Err(format!("initialize failed: {error}")),
        }
    };
    let version = result.get("protocolVersion").and_then(Value::as_str).unwrap_or_default().to_string();
    if !UPSTREAM_PROTOCOL_VERSIONS.contains(&version.as_str()) {
        return Err(format!("server speaks protocol revision {version:?}, which this build does not"));
    }
    connection.set_protocol_version(&version);
    connection.notify("notifications/initialized", None).await;
    let identity = ServerIdentity {
        protocol_version: version,
        capabilities: result.get("capabilities").cloned().unwrap_or_else(|| json!({})),
        server_info: result.get("serverInfo").cloned().unwrap_or_else(|| json!({})),
        instructions: result.get("instructions").and_then(Value::as_str).map(str::to_string),
    };
    let tools =
        if identity.capabilities.get("tools").is_some() { list_tools(connection, timeout).await? } else { Vec::new() };
    Ok((identity, tools))
}

/// Every page of tools/list. Bounded, so a server that pages forever cannot hold us.
pub async fn list_tools(connection: &Arc<Connection>, timeout: Duration) -> Result<Vec<ToolEntry>, String> {
    const MAX_PAGES: usize = 1000;
    let mut tools = Vec::new();
    let mut cursor: Option<Value> = None;
    for _ in 0..MAX_PAGES {
        let params = cursor.take().map(|cursor| json!({"cursor": cursor}));
        let result = match connection.request("tools/list", params, timeout).await {
            Ok(Ok(result)) => result,
            Ok(Err(error)) => return Err(format!("tools/list refused: {error}")),
            Err(error) => return Err(format!("tools/list failed: {error}")),
        };
        let page = result.get("tools").and_then(Value::as_array).cloned().unwrap_or_default();
        tools.extend(page.into_iter().filter_map(ToolEntry::new));
        match result.get("nextCursor") {
            Some(next) if !next.is_null() => cursor = Some(next.clone()),
            _ => return Ok(tools),
        }
    }
    Err("tools/list never ended".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// The schedule over made-up time: each quick exit doubles the delay (start_run counts the
    /// attempts), the fifth within a minute is a crash loop at the longest delay, exits older than
    /// the window stop counting, and a run that lasted a window starts over at the first delay.
    #[test]
    fn restarts_back_off_enter_a_crash_loop_and_start_over_after_a_calm_run() {
        let policy = castellan_config::RestartPolicy::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let (mut attempt, mut exits) = (0u32, VecDeque::new());
        let origin = Instant::now();
        let at = |seconds: f64| origin + Duration::from_secs_f64(seconds);
        let mut clock = 0.0;
        let mut planned = Vec::new();
        for _ in 0..6 {
            attempt += 1; // start_run
            let started = at(clock);
            clock += 1.0; // each run fails after a second
            let restart = plan_restart(&policy, &mut attempt, &mut exits, started, at(clock), &mut rng);
            planned.push(restart);
            clock += restart.delay.as_secs_f64();
        }
        let nominal_ms = [500u64, 1000, 2000, 4000];
        for (restart, nominal) in planned.iter().zip(nominal_ms) {
            let delay = restart.delay.as_millis() as u64;
            assert!(restart.crash_loop.is_none(), "{planned:?}");
            assert!(
                (nominal * 8 / 10..=nominal * 12 / 10).contains(&delay),
                "{delay} ms, nominal {nominal}: {planned:?}"
            );
        }
        assert_eq!(planned[4], Restart { delay: policy.backoff_max, crash_loop: Some(5) }, "the fifth exit in 60 s");
        assert_eq!(planned[5], Restart { delay: policy.backoff_max, crash_loop: Some(6) }, "and stays in it");

        // A run of a whole window, then a failure: the backoff starts over.
        attempt += 1;
        let started = at(clock);
        let calm =
            plan_restart(&policy, &mut attempt, &mut exits, started, started + policy.crash_loop_window, &mut rng);
        assert_eq!((attempt, exits.len()), (1, 1), "attempts and exits start over");
        assert!(calm.crash_loop.is_none() && calm.delay <= Duration::from_millis(600), "{calm:?}");

        // Exits spread wider than the window never make a crash loop.
        let (mut attempt, mut exits) = (0u32, VecDeque::new());
        for run in 0..10 {
            attempt += 1;
            let started = at(100.0 + run as f64 * 20.0);
            let restart =
                plan_restart(&policy, &mut attempt, &mut exits, started, started + Duration::from_secs(1), &mut rng);
            assert!(restart.crash_loop.is_none(), "one exit every 20 s keeps at most 4 in a minute: {restart:?}");
        }
    }

    #[test]
    fn backoff_grows_exponentially_within_jitter_and_caps() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let initial = Duration::from_millis(500);
        let max = Duration::from_secs(30);
        for (attempt, expected_ms) in [(1u32, 500u64), (2, 1000), (3, 2000), (4, 4000), (8, 30_000), (40, 30_000)] {
            let delay = backoff_delay(initial, max, attempt, &mut rng).as_millis() as u64;
            assert!(delay <= 30_000, "attempt {attempt}: never above the cap, got {delay}");
            assert!(
                delay as f64 >= expected_ms as f64 * 0.8 && delay as f64 <= (expected_ms as f64 * 1.2).min(30_000.0),
                "attempt {attempt}: {delay}ms should be {expected_ms}ms +-20%"
            );
        }
    }
}
