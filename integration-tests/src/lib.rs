//! `spawn_app()` and friends: start the real `castellan` binary on a free port with a fresh database
//! (a SQLite file or a new PostgreSQL database), wait until it is ready, and talk to it.

pub mod ai;
pub mod events;
pub mod mcp;
pub mod oauth;
pub mod sink;
pub mod vault;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::distr::{Alphanumeric, SampleString};
use serde_json::Value;

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Database {
    Sqlite,
    Postgres,
}

impl Database {
    pub const ALL: [Database; 2] = [Database::Sqlite, Database::Postgres];
}

/// The PostgreSQL server tests use; CI starts it.
pub fn postgres_admin_url() -> String {
    std::env::var("CASTELLAN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// Path of a binary this workspace builds: `$env_var` when set, else beside the test executable's
/// directory (where cargo puts the workspace's binaries).
pub fn workspace_binary(env_var: &str, name: &str) -> PathBuf {
    if let Ok(path) = std::env::var(env_var) {
        return PathBuf::from(path);
    }
    let mut dir = std::env::current_exe().expect("test executable path");
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(name)
}

/// Path of the castellan binary built by this workspace.
pub fn castellan_binary() -> PathBuf {
    workspace_binary("CASTELLAN_BIN", "castellan")
}

/// The reference extension's binary (`examples/extension-tickets`): Castellan with the tickets
/// extension built in.
pub fn tickets_binary() -> PathBuf {
    castellan_binary().with_file_name("castellan-tickets")
}

/// The repository root (for fixtures and installed tools).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

pub fn random_suffix() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 10).to_ascii_lowercase()
}

/// A free loopback port (bound then released: good enough for tests on one machine).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A fresh database and its URL; PostgreSQL databases are dropped when this is dropped.
pub struct TestDatabase {
    pub url: String,
    postgres_name: Option<String>,
    _dir: Option<TempDir>,
}

impl TestDatabase {
    pub fn new(kind: Database, dir: &Path) -> Self {
        match kind {
            Database::Sqlite => {
                Self { url: format!("sqlite://{}/castellan.db", dir.display()), postgres_name: None, _dir: None }
            }
            Database::Postgres => {
                let name = format!("castellan_test_{}", random_suffix());
                psql(&format!("CREATE DATABASE {name}"));
                let admin = postgres_admin_url();
                let base = admin.rsplit_once('/').map(|(base, _)| base).unwrap_or(&admin);
                Self { url: format!("{base}/{name}"), postgres_name: Some(name), _dir: None }
            }
        }
    }

    /// Makes the database refuse connections and drops the existing ones: "the database is down".
    pub fn take_down(&self) {
        if let Some(name) = &self.postgres_name {
            psql(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"));
            psql(&format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"));
        }
    }

    /// Runs one SQL statement directly against this database, behind Castellan's back (tamper tests).
    pub fn execute(&self, sql: &str) {
        let output = match &self.postgres_name {
            Some(_) => Command::new("psql").args([&self.url, "-qAt", "-c", sql]).output(),
            None => {
                let path = self.url.trim_start_matches("sqlite://").to_string();
                let script =
                    "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nc.execute(sys.argv[2])\nc.commit()";
                Command::new("python3").args(["-c", script, &path, sql]).output()
            }
        }
        .expect("the SQL client runs");
        assert!(output.status.success(), "{sql}: {}", String::from_utf8_lossy(&output.stderr));
    }

    /// The first column of the first row of `sql`, as text (read behind Castellan's back).
    pub fn query_scalar(&self, sql: &str) -> String {
        let output = match &self.postgres_name {
            Some(_) => Command::new("psql").args([&self.url, "-qAt", "-c", sql]).output(),
            None => {
                let path = self.url.trim_start_matches("sqlite://").to_string();
                let script =
                    "import sqlite3, sys\nprint(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])";
                Command::new("python3").args(["-c", script, &path, sql]).output()
            }
        }
        .expect("the SQL client runs");
        assert!(output.status.success(), "{sql}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    pub fn bring_up(&self) {
        if let Some(name) = &self.postgres_name {
            psql(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"));
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(name) = &self.postgres_name {
            let _ = Command::new("psql")
                .args([&postgres_admin_url(), "-q", "-c", &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Runs one SQL statement as the PostgreSQL admin; panics with psql's message on failure.
pub fn psql(sql: &str) -> String {
    let output = Command::new("psql").args([&postgres_admin_url(), "-qAt", "-c", sql]).output().expect("psql runs");
    assert!(output.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!("castellan-test-{}", random_suffix()));
        std::fs::create_dir_all(&path).expect("temp dir");
        Self(path)
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The default test profile: the demo server as `customers`, the default RBAC rules.
/// The master key every test daemon uses (`CASTELLAN_MASTER_KEY`).
pub const TEST_MASTER_KEY: &str = "4f1c2a7e9b3d5f60718293a4b5c6d7e8f90112233445566778899aabbccddeef";

pub const DEFAULT_TEST_PROFILE: &str = r#"
server:
  listen: 127.0.0.1:0
database:
  url: "${CASTELLAN_DATABASE_URL}"
mcp_servers:
  customers:
    command: castellan
    args: [demo-server]
rbac:
  default: deny
  rules:
    - { name: users-may-use-tools, effect: allow, min_tier: user, servers: ["*"], tools: ["*"] }
    - { name: services-may-use-tools, effect: allow, min_tier: service, servers: ["*"], tools: ["*"] }
    - { name: no-destructive-for-users, effect: deny, max_tier: user, servers: ["customers"], tools: ["delete_*"] }
# Tests call as fast as they can; the rate-limit tests set their own limits.
rate_limits:
  per_second: { mcp_tool_call: 100000, oauth: 100000 }
"#;

/// Runs `command` (a castellan binary, its working directory set by the caller if it matters) with
/// `args` against `profile` and `database_url`, the test master key, and `input` on its stdin.
pub fn run_cli(
    mut command: Command,
    profile: &Path,
    database_url: &str,
    args: &[&str],
    input: &str,
) -> std::process::Output {
    use std::io::Write;
    let mut child = command
        .args(args)
        .env("CASTELLAN_PROFILE", profile)
        .env("CASTELLAN_DATABASE_URL", database_url)
        .env("CASTELLAN_MASTER_KEY", TEST_MASTER_KEY)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("castellan cli runs");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("castellan cli finishes")
}

/// A running daemon.
pub struct TestApp {
    pub child: Child,
    /// `http://127.0.0.1:PORT`: for plain HTTP calls.
    pub base_url: String,
    /// `http://localhost:PORT`: the issuer and passkey origin (what OAuth clients and browsers use).
    pub public_url: String,
    pub admin_key: String,
    /// The bootstrap admin's passkey enrolment link, as printed at first start.
    pub admin_enrolment_link: String,
    pub database: TestDatabase,
    pub dir: TempDir,
    pub profile_path: PathBuf,
    pub log: Arc<Mutex<String>>,
    /// The binary that serves (and that `cli` runs).
    pub binary: PathBuf,
}

pub struct AppOptions {
    pub database: Database,
    pub profile: String,
    pub env: Vec<(String, String)>,
    /// Another app's database URL: a second replica on the same database (no bootstrap key then).
    pub shared_database: Option<String>,
    /// The soft `RLIMIT_FSIZE` of the daemon, in bytes, with SIGXFSZ ignored: a write past this
    /// offset of any file fails with EFBIG, which SQLite reports as a write error, as it would a
    /// full disk. The hard limit stays unlimited, so a test can lift it again (`prlimit --pid`).
    pub file_size_limit: Option<u64>,
    /// Arguments after `serve --listen ADDR` (e.g. `--log-format text`).
    pub args: Vec<String>,
    /// Another Castellan binary (one with extensions built in); default [`castellan_binary`].
    pub binary: Option<PathBuf>,
}

impl AppOptions {
    pub fn new(database: Database) -> Self {
        Self {
            database,
            profile: DEFAULT_TEST_PROFILE.to_string(),
            env: Vec::new(),
            shared_database: None,
            file_size_limit: None,
            args: Vec::new(),
            binary: None,
        }
    }

    pub fn binary(mut self, binary: PathBuf) -> Self {
        self.binary = Some(binary);
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_string());
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    pub fn sharing_database_of(mut self, other: &TestApp) -> Self {
        self.shared_database = Some(other.database.url.clone());
        self
    }

    pub fn profile(mut self, profile: &str) -> Self {
        self.profile = profile.to_string();
        self
    }

    pub fn file_size_limit(mut self, bytes: u64) -> Self {
        self.file_size_limit = Some(bytes);
        self
    }
}

pub fn spawn_app(database: Database) -> TestApp {
    spawn_app_with(AppOptions::new(database))
}

pub fn spawn_app_with(options: AppOptions) -> TestApp {
    let dir = TempDir::new();
    let database = TestDatabase::new(options.database, &dir.0);
    let profile_path = dir.0.join("profile.yaml");
    std::fs::write(&profile_path, &options.profile).expect("write profile");
    let port = free_port();
    let binary = options.binary.clone().unwrap_or_else(castellan_binary);
    let mut command = match options.file_size_limit {
        // An ignored signal stays ignored across exec, and prlimit execs the daemon in place, so the
        // child's pid is the daemon's. Works as root without mounting a small filesystem.
        Some(bytes) => {
            let mut wrapped = Command::new("sh");
            wrapped.args(["-c", r#"trap '' XFSZ; exec prlimit --fsize="$0":unlimited -- "$@""#, &bytes.to_string()]);
            wrapped.arg(&binary);
            wrapped
        }
        None => Command::new(&binary),
    };
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(&options.args)
        .env("CASTELLAN_PROFILE", &profile_path)
        .env("CASTELLAN_DATABASE_URL", options.shared_database.as_ref().unwrap_or(&database.url))
        .env("CASTELLAN_LOG", "info")
        // One fixed master key for every test daemon: replicas sharing a database must share it,
        // and the key file would otherwise land in the test runner's working directory.
        .env("CASTELLAN_MASTER_KEY", TEST_MASTER_KEY)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (name, value) in &options.env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("castellan starts");
    let log = Arc::new(Mutex::new(String::new()));
    let (key_sender, key_receiver) = std::sync::mpsc::channel::<String>();
    let (link_sender, link_receiver) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().expect("stderr");
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        let mut expect_key = false;
        let mut expect_link = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if expect_key {
                let _ = key_sender.send(line.trim().to_string());
                expect_key = false;
            }
            if expect_link {
                let _ = link_sender.send(line.trim().to_string());
                expect_link = false;
            }
            if line.contains("Bootstrap admin API key") {
                expect_key = true;
            }
            if line.contains("passkey enrolment link for 'admin'") {
                expect_link = true;
            }
            if std::env::var("CASTELLAN_TEST_ECHO").is_ok() {
                eprintln!("[castellan] {line}");
            }
            sink.lock().expect("log lock").push_str(&(line + "\n"));
        }
    });
    let admin_key = if options.shared_database.is_some() {
        String::new()
    } else {
        key_receiver
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no bootstrap key; log:\n{}", log.lock().expect("log")))
    };
    let admin_enrolment_link = if options.shared_database.is_some() {
        String::new()
    } else {
        link_receiver.recv_timeout(Duration::from_secs(10)).unwrap_or_default()
    };
    let app = TestApp {
        child,
        base_url: format!("http://127.0.0.1:{port}"),
        public_url: format!("http://localhost:{port}"),
        admin_key,
        admin_enrolment_link,
        database,
        dir,
        profile_path,
        log,
        binary,
    };
    app.wait_ready(Duration::from_secs(60));
    app
}

impl TestApp {
    pub fn wait_ready(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(response) = ureq::get(&format!("{}/readyz", self.base_url)).call()
                && response.status() == 200
            {
                return;
            }
            assert!(Instant::now() < deadline, "not ready within {limit:?}; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    /// Whether the log holds `needle` within 5 s: the log is read from the daemon's stderr by a
    /// thread of ours, so a line may lag what the daemon answered.
    pub fn log_shows(&self, needle: &str) -> bool {
        eventually(Duration::from_secs(5), || self.log().contains(needle))
    }

    /// Runs a castellan CLI command against this app's profile and database.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        self.cli_with_stdin(args, "")
    }

    /// Runs a castellan CLI command with `input` on its stdin (for `secrets set`).
    pub fn cli_with_stdin(&self, args: &[&str], input: &str) -> std::process::Output {
        run_cli(Command::new(&self.binary), &self.profile_path, &self.database.url, args, input)
    }

    /// Registers an OAuth client with `castellan clients add NAME ARGS...`; returns its id and, for a
    /// confidential client, its secret.
    pub fn oauth_client(&self, name: &str, args: &[&str]) -> (String, Option<String>) {
        let mut command = vec!["clients", "add", name];
        command.extend_from_slice(args);
        let output = self.cli(&command);
        assert!(output.status.success(), "clients add: {}", String::from_utf8_lossy(&output.stderr));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let field = |name: &str| {
            stdout
                .lines()
                .find_map(|line| line.strip_prefix(&format!("{name}: ")).map(|value| value.trim().to_string()))
        };
        (field("client_id").expect("client_id printed"), field("client_secret"))
    }

    /// A one-time passkey enrolment link for `user` (created with `users add` first), on the
    /// localhost origin that passkeys need.
    pub fn enrolment_link(&self, user: &str) -> String {
        let output = self.cli(&["users", "enrol", user]);
        assert!(output.status.success(), "users enrol: {}", String::from_utf8_lossy(&output.stderr));
        let link = String::from_utf8_lossy(&output.stdout).trim().to_string();
        let path = link.split_once("/enrol?").map(|(_, query)| format!("/enrol?{query}")).expect("an enrolment URL");
        format!("{}{path}", self.public_url)
    }

    /// Creates a user with `tier` and returns a fresh API key for it.
    pub fn user_with_key(&self, name: &str, tier: &str) -> String {
        let added = self.cli(&["users", "add", name, "--tier", tier]);
        assert!(added.status.success(), "users add: {}", String::from_utf8_lossy(&added.stderr));
        let key = self.cli(&["keys", "create", "--user", name]);
        assert!(key.status.success(), "keys create: {}", String::from_utf8_lossy(&key.stderr));
        String::from_utf8_lossy(&key.stdout).trim().to_string()
    }

    /// Every audit row, oldest first.
    pub fn audit_rows(&self) -> Vec<Value> {
        let output = self.cli(&["audit", "tail", "--json", "--limit", "100000"]);
        assert!(output.status.success(), "audit tail: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).expect("audit json line"))
            .collect()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal).expect("signal");
    }

    /// Waits for the daemon to exit; returns its status.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "daemon did not exit within {limit:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Processes whose command line contains `needle` (from /proc), excluding ourselves.
pub fn processes_matching(needle: &str) -> Vec<(i32, String)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return found };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmdline.contains(needle) && pid != std::process::id() as i32 {
            found.push((pid, cmdline));
        }
    }
    found
}

/// Every live descendant of `root` (children, grandchildren, ...), from /proc.
pub fn descendants(root: i32) -> Vec<i32> {
    let mut parents = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            // Fields after the parenthesised command name: state, ppid, ...
            let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest.to_string()) else { continue };
            let fields: Vec<&str> = after.split_whitespace().collect();
            if fields.first() == Some(&"Z") {
                continue;
            }
            if let Some(ppid) = fields.get(1).and_then(|ppid| ppid.parse::<i32>().ok()) {
                parents.push((pid, ppid));
            }
        }
    }
    let mut found = vec![root];
    let mut index = 0;
    while index < found.len() {
        let current = found[index];
        found.extend(parents.iter().filter(|(_, ppid)| *ppid == current).map(|(pid, _)| *pid));
        index += 1;
    }
    found.remove(0);
    found
}

/// Whether `pid` is still a live (non-zombie) process.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with('Z')).unwrap_or(false),
        Err(_) => false,
    }
}

/// Polls `condition` until it holds or `limit` passes; returns whether it held.
pub fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    condition()
}

/// Where `scripts/install-test-deps.sh` put the pinned npm and PyPI peers.
pub fn tools_dir() -> PathBuf {
    std::env::var("CASTELLAN_TOOLS_DIR").map(PathBuf::from).unwrap_or_else(|_| repo_root().join(".tools"))
}

/// The default test profile plus `@modelcontextprotocol/server-everything` (npm, pinned) as the
/// stdio server `everything`, run by the pinned Node.
pub fn profile_with_everything() -> String {
    let tools = tools_dir();
    let node = tools.join("bin/node22");
    let entry = tools.join("npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(node.exists() && entry.exists(), "run scripts/install-test-deps.sh first ({} missing)", entry.display());
    DEFAULT_TEST_PROFILE.replace(
        "rbac:\n",
        &format!("  everything:\n    command: {}\n    args: [{}, stdio]\nrbac:\n", node.display(), entry.display()),
    )
}

/// Runs one of the Python client scripts in `integration-tests/clients/` with the venv `venv`
/// (`py1`: mcp 1.x, `py2`: mcp 2.x) and returns the JSON object it prints.
pub fn run_python_client(venv: &str, script: &str, args: &[&str]) -> Value {
    let python = tools_dir().join(venv).join("bin/python");
    let script = repo_root().join("integration-tests/clients").join(script);
    let output = Command::new(&python).arg(&script).args(args).stdin(Stdio::null()).output().unwrap_or_else(|error| {
        panic!("{} cannot start ({error}); run scripts/install-test-deps.sh", python.display())
    });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script:?} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("{script:?} printed no JSON: {stdout}"))
}

/// Runs a Python client script from `integration-tests/clients/` with the py2 venv, `job` as JSON on
/// its stdin, and returns the JSON object it prints.
pub fn run_python_job(script: &str, job: &Value) -> Value {
    use std::io::Write;
    let python = tools_dir().join("py2/bin/python");
    let mut child = Command::new(&python)
        .arg(repo_root().join("integration-tests/clients").join(script))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| {
            panic!("{} cannot start ({error}); run scripts/install-test-deps.sh", python.display())
        });
    child.stdin.take().expect("stdin").write_all(job.to_string().as_bytes()).expect("write the job");
    let output = child.wait_with_output().expect("the script finishes");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("{script} printed no JSON: {stdout}"))
}

/// A Python fixture server from `integration-tests/fixtures/`, run with the py2 venv and killed on drop.
pub struct Fixture {
    child: Child,
    /// What followed `ready_prefix` on the fixture's first stderr line (its base URL).
    pub url: String,
}

impl Fixture {
    /// Starts `integration-tests/fixtures/{script}` and waits for its first stderr line, which must
    /// start with `ready_prefix`; later stderr lines are drained and discarded.
    pub fn start(script: &str, args: &[&str], ready_prefix: &str) -> Fixture {
        let mut child = Command::new(tools_dir().join("py2/bin/python"))
            .arg(repo_root().join("integration-tests/fixtures").join(script))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("{script} cannot start ({error}); run scripts/install-test-deps.sh"));
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let line = lines.next().unwrap_or_else(|| panic!("no line from {script}")).expect("utf-8");
        let url = line
            .strip_prefix(ready_prefix)
            .unwrap_or_else(|| panic!("unexpected first line from {script}: {line}"))
            .trim()
            .to_string();
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        Fixture { child, url }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
