//! The command line as an operator meets it: failures to start that say what is wrong in one line,
//! admin commands that never create a database, private file modes, log formats, terminal-safe
//! output, `hooks tail`, `policy explain`, aligned tables, and a binary with extensions that cannot start.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use integration_tests::mcp::{Session, bearer};
use integration_tests::{
    AppOptions, DEFAULT_TEST_PROFILE, Database, TempDir, castellan_binary, descendants, free_port, psql, random_suffix,
    spawn_app, spawn_app_with,
};
use serde_json::{Value, json};

/// A castellan command with nothing of the test runner's environment but `PATH`, run in `dir`.
fn castellan(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    castellan_build(&castellan_binary(), dir, args, env)
}

/// [`castellan`] for another Castellan binary (one built with extensions).
fn castellan_build(binary: &Path, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(binary);
    command
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // The old failure was a panic; with this its backtrace would show too.
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// Runs `command` to its end, killing it (and failing) after `limit`.
fn run_to_exit(mut command: Command, limit: Duration) -> Output {
    let mut child = command.spawn().expect("castellan starts");
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!("still running after {limit:?}; stderr:\n{}", String::from_utf8_lossy(&output.stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts a start that failed: exit 1 and exactly one line on stderr, with no panic.
fn assert_one_line_failure(output: &Output, case: &str) -> String {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{case}: exit 1; stderr:\n{stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{case}: no panic:\n{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{case}: one line:\n{stderr}");
    stderr
}

#[test]
fn serve_on_a_port_in_use_exits_1_with_one_line_naming_the_address() {
    let dir = TempDir::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("address").to_string();
    let profile = dir.0.join("profile.yaml");
    std::fs::write(&profile, DEFAULT_TEST_PROFILE).expect("profile");
    let database = format!("sqlite://{}/data/castellan.db", dir.0.display());
    let command = castellan(
        &dir.0,
        &["serve", "--listen", &address],
        &[("CASTELLAN_PROFILE", profile.to_str().expect("utf-8")), ("CASTELLAN_DATABASE_URL", &database)],
    );
    let output = run_to_exit(command, Duration::from_secs(30));
    let stderr = assert_one_line_failure(&output, "port in use");
    assert!(stderr.contains(&address) && stderr.contains("in use"), "names the address and why: {stderr}");
    assert!(!stderr.contains("Bootstrap admin API key"), "no admin key printed for a daemon that never served");
    assert!(!dir.0.join("data").exists(), "nothing was created before the port was known to be free");
}

#[test]
fn a_missing_extension_dependency_stops_serve_naming_both_before_anything_is_created() {
    let dir = TempDir::new();
    let profile = dir.0.join("profile.yaml");
    std::fs::write(&profile, DEFAULT_TEST_PROFILE).expect("profile");
    let database = format!("sqlite://{}/data/castellan.db", dir.0.display());
    // `castellan::run()` with one extension, `tickets`, that depends on `crm`, which is not built in.
    let command = castellan_build(
        Path::new(env!("CARGO_BIN_EXE_castellan-missing-extension-dependency")),
        &dir.0,
        &["serve", "--listen", "127.0.0.1:0"],
        &[("CASTELLAN_PROFILE", profile.to_str().expect("utf-8")), ("CASTELLAN_DATABASE_URL", &database)],
    );
    let output = run_to_exit(command, Duration::from_secs(30));
    let stderr = assert_one_line_failure(&output, "missing extension dependency");
    assert!(
        stderr.contains("\"tickets\"") && stderr.contains("\"crm\"") && stderr.contains("not built into this binary"),
        "names the extension and its missing dependency: {stderr}"
    );
    assert!(!dir.0.join("data").exists(), "no database was created for a daemon that never started");
}

#[test]
fn serve_with_a_database_it_cannot_open_exits_1_with_one_line_and_no_password() {
    let dir = TempDir::new();
    // A regular file where a directory should be: unwritable even for root.
    std::fs::write(dir.0.join("a-file"), "not a directory").expect("file");
    let password = format!("hunter2-{}", random_suffix());
    let cases = [
        ("sqlite under a file", format!("sqlite://{}/a-file/data/castellan.db", dir.0.display()), "a-file"),
        (
            "postgres refusing connections",
            format!("postgres://castellan:{password}@127.0.0.1:{}/castellan", free_port()),
            "127.0.0.1",
        ),
        (
            "postgres without that database",
            format!("postgres://postgres:{password}@127.0.0.1:5432/castellan_missing_{}", random_suffix()),
            "does not exist",
        ),
    ];
    for (case, url, named) in cases {
        let command = castellan(
            &dir.0,
            &["serve", "--listen", &format!("127.0.0.1:{}", free_port())],
            &[("CASTELLAN_DATABASE_URL", &url), ("CASTELLAN_MASTER_KEY", integration_tests::TEST_MASTER_KEY)],
        );
        let output = run_to_exit(command, Duration::from_secs(30));
        let stderr = assert_one_line_failure(&output, case);
        assert!(stderr.contains(named), "{case}: names what failed: {stderr}");
        assert!(!stderr.contains(&password), "{case}: the password is never printed: {stderr}");
    }
}

/// Every admin command, with the arguments it needs.
const ADMIN_COMMANDS: &[&[&str]] = &[
    &["users", "list"],
    &["users", "add", "bob", "--tier", "user"],
    &["users", "enrol", "bob"],
    &["keys", "list"],
    &["keys", "create", "--user", "bob"],
    &["keys", "revoke", "cas_nothing"],
    &["clients", "list"],
    &["clients", "add", "reporting", "--tier", "service"],
    &["audit", "tail"],
    &["audit", "verify"],
    &["secrets", "list"],
    &["secrets", "set", "token"],
    &["tools", "list"],
    &["hooks", "tail"],
    &["policy", "explain", "--user", "bob", "--tool", "customers__get_customer"],
];

/// Environment variables for one run.
type Environment<'a> = Vec<(&'a str, &'a str)>;

#[test]
fn admin_commands_never_create_a_database_and_say_where_they_looked() {
    let dir = TempDir::new();
    let cwd = dir.0.canonicalize().expect("canonical");
    let elsewhere = cwd.join("elsewhere");
    let elsewhere_text = elsewhere.to_str().expect("utf-8").to_string();
    let settings: [(&str, Environment, PathBuf); 2] = [
        ("the default ./castellan-data", vec![], cwd.join("castellan-data")),
        ("CASTELLAN_DATA_DIR", vec![("CASTELLAN_DATA_DIR", elsewhere_text.as_str())], elsewhere.clone()),
    ];
    for (label, env, data_dir) in &settings {
        for args in ADMIN_COMMANDS {
            let output = run_to_exit(castellan(&cwd, args, env), Duration::from_secs(30));
            let stderr = text(&output.stderr);
            let case = format!("{label}: castellan {}", args.join(" "));
            assert_eq!(
                output.status.code(),
                Some(1),
                "{case}: exit 1; stdout {}; stderr {stderr}",
                text(&output.stdout)
            );
            let path = data_dir.join("castellan.db");
            assert!(stderr.contains(&path.display().to_string()), "{case}: names the absolute path: {stderr}");
            for way in ["--profile", "CASTELLAN_DATABASE_URL", "CASTELLAN_DATA_DIR"] {
                assert!(stderr.contains(way), "{case}: says how to point elsewhere ({way}): {stderr}");
            }
            assert_eq!(stderr.trim_end().lines().count(), 1, "{case}: one line: {stderr}");
            assert!(!data_dir.exists(), "{case}: no data directory was created");
        }
    }

    // `migrate` creates it; then the same command from the same directory works.
    let migrated = run_to_exit(castellan(&cwd, &["migrate"], &[]), Duration::from_secs(60));
    assert!(migrated.status.success(), "migrate: {}", text(&migrated.stderr));
    let verified = run_to_exit(castellan(&cwd, &["audit", "verify"], &[]), Duration::from_secs(30));
    assert!(verified.status.success(), "audit verify after migrate: {}", text(&verified.stderr));
    assert!(text(&verified.stdout).contains("0 rows verified"), "{}", text(&verified.stdout));
}

#[test]
fn secrets_set_never_creates_a_master_key_of_its_own() {
    use std::io::Write;
    let dir = TempDir::new();
    let cwd = dir.0.canonicalize().expect("canonical");
    let migrated = run_to_exit(castellan(&cwd, &["migrate"], &[]), Duration::from_secs(60));
    assert!(migrated.status.success(), "migrate: {}", text(&migrated.stderr));
    let key_file = cwd.join("castellan-data/master.key");
    assert!(!key_file.exists(), "migrate creates no master key");
    let set = |env: &[(&str, &str)]| {
        let mut command = castellan(&cwd, &["secrets", "set", "token"], env);
        command.stdin(Stdio::piped());
        let mut child = command.spawn().expect("castellan starts");
        child.stdin.take().expect("stdin").write_all(b"a-secret-value-123456").expect("write");
        child.wait_with_output().expect("output")
    };
    let refused = set(&[]);
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "no key, no daemon's key: refused: {stderr}");
    assert!(stderr.contains(&key_file.display().to_string()) && stderr.contains("CASTELLAN_MASTER_KEY"), "{stderr}");
    assert!(!key_file.exists(), "no master key of its own was created");
    let stored = set(&[("CASTELLAN_MASTER_KEY", integration_tests::TEST_MASTER_KEY)]);
    assert!(stored.status.success(), "with the daemon's key: {}", text(&stored.stderr));
}

#[test]
fn admin_commands_refuse_an_empty_postgres_database_and_create_no_tables() {
    let dir = TempDir::new();
    let name = format!("castellan_empty_{}", random_suffix());
    psql(&format!("CREATE DATABASE {name}"));
    let admin = integration_tests::postgres_admin_url();
    let base = admin.rsplit_once('/').map(|(base, _)| base).unwrap_or(&admin);
    let url = format!("{base}/{name}");
    for args in [&["audit", "verify"][..], &["users", "list"], &["hooks", "tail"]] {
        let output = run_to_exit(castellan(&dir.0, args, &[("CASTELLAN_DATABASE_URL", &url)]), Duration::from_secs(30));
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: exit 1: {stderr}");
        assert!(stderr.contains(&name) && stderr.contains("no Castellan tables"), "{args:?}: {stderr}");
        assert!(stderr.contains("CASTELLAN_DATABASE_URL"), "{args:?}: names where the URL came from: {stderr}");
    }
    let tables = Command::new("psql")
        .args([&url, "-qAt", "-c", "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"])
        .output()
        .expect("psql");
    let count = text(&tables.stdout).trim().to_string();
    psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    assert_eq!(count, "0", "no table was created in the empty database");
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap_or_else(|error| panic!("{}: {error}", path.display())).permissions().mode() & 0o777
}

#[cfg(unix)]
#[test]
fn data_directory_is_0700_and_database_files_0600_under_umask_022() {
    let dir = TempDir::new();
    let data = dir.0.join("state/data");
    let profile = dir.0.join("profile.yaml");
    std::fs::write(&profile, "server:\n  listen: 127.0.0.1:0\n").expect("profile");
    let port = free_port();
    let log = std::fs::File::create(dir.0.join("serve.log")).expect("log file");
    // Through a shell so the daemon starts with umask 022, the common default that lets group and
    // others read new files.
    let mut child = Command::new("sh")
        .args(["-c", "umask 022; exec \"$0\" \"$@\""])
        .arg(castellan_binary())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(&dir.0)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CASTELLAN_PROFILE", &profile)
        .env("CASTELLAN_DATA_DIR", &data)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("castellan starts");
    let ready = integration_tests::eventually(Duration::from_secs(60), || {
        ureq::get(&format!("http://127.0.0.1:{port}/readyz")).call().is_ok_and(|response| response.status() == 200)
    });
    let observed: Vec<(String, u32)> = if ready {
        ["state", "state/data", "state/data/castellan.db", "state/data/castellan.db-wal", "state/data/castellan.db-shm"]
            .iter()
            .chain(&["state/data/master.key"])
            .map(|relative| (relative.to_string(), mode(&dir.0.join(relative))))
            .collect()
    } else {
        Vec::new()
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        ready,
        "the daemon became ready; log:\n{}",
        std::fs::read_to_string(dir.0.join("serve.log")).unwrap_or_default()
    );
    for (relative, found) in observed {
        let expected = if relative.starts_with("state/data/") { 0o600 } else { 0o700 };
        assert_eq!(found, expected, "{relative}: mode {found:o}, expected {expected:o}");
    }
}

/// The log line announcing the listener, from a daemon's stderr.
fn listening_line(log: &str) -> String {
    log.lines()
        .find(|line| line.contains("castellan listening"))
        .unwrap_or_else(|| panic!("no listening line:\n{log}"))
        .to_string()
}

#[test]
fn logs_are_json_on_a_pipe_and_text_when_asked_or_on_a_terminal() {
    let piped = spawn_app(Database::Sqlite);
    let line = listening_line(&piped.log());
    let parsed: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("stderr is a pipe: a JSON line: {line}"));
    assert_eq!(parsed["fields"]["message"], "castellan listening", "{parsed}");
    drop(piped);

    let forced = spawn_app_with(AppOptions::new(Database::Sqlite).arg("--log-format").arg("text"));
    let line = listening_line(&forced.log());
    assert!(serde_json::from_str::<Value>(&line).is_err(), "--log-format text: not JSON: {line}");
    assert!(line.contains("INFO") && line.contains("listen_addr="), "--log-format text: a text line: {line}");
    assert!(!line.contains('\u{1b}'), "no colours when stderr is not a terminal: {line:?}");
    drop(forced);

    let json_forced = spawn_app_with(AppOptions::new(Database::Sqlite).arg("--log-format").arg("json"));
    assert!(serde_json::from_str::<Value>(&listening_line(&json_forced.log())).is_ok(), "--log-format json");
    drop(json_forced);

    // On a terminal (a pseudo-terminal from script(1)): text by default.
    let dir = TempDir::new();
    let profile = dir.0.join("profile.yaml");
    std::fs::write(&profile, "server:\n  listen: 127.0.0.1:0\n").expect("profile");
    let port = free_port();
    let inner = format!("exec {} serve --listen 127.0.0.1:{port} 2>&1", castellan_binary().display());
    let mut script = Command::new("script")
        .args(["-qfec", &inner, "/dev/null"])
        .current_dir(&dir.0)
        .env("CASTELLAN_PROFILE", &profile)
        .env("CASTELLAN_DATA_DIR", dir.0.join("data"))
        .env("CASTELLAN_MASTER_KEY", integration_tests::TEST_MASTER_KEY)
        .env_remove("CASTELLAN_DATABASE_URL")
        .env_remove("CASTELLAN_LOG_FORMAT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script(1) runs");
    let line = first_line_containing(&mut script, "castellan listening", Duration::from_secs(60));
    for pid in descendants(script.id() as i32) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
    }
    let _ = script.kill();
    let _ = script.wait();
    let line = line.expect("a listening line on the terminal");
    assert!(serde_json::from_str::<Value>(line.trim()).is_err(), "a terminal gets text: {line:?}");
    assert!(line.contains("INFO") || line.contains("\u{1b}["), "a text line (coloured on a terminal): {line:?}");
}

/// Reads `child`'s stdout until a line contains `needle` (or `limit` passes).
fn first_line_containing(child: &mut Child, needle: &str, limit: Duration) -> Option<String> {
    let stdout = child.stdout.take().expect("stdout");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + limit;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match receiver.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return Some(line),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

/// A stdio MCP server (stdlib Python) whose one tool fails with a JSON-RPC error that echoes its
/// argument, as many servers do ("invalid id: ..."): a server or a client decides what lands in
/// `error_message`, control characters included.
const ECHOING_SERVER: &str = r#"
import json, sys
TOOL = {"name": "lookup", "description": "fails, echoing its argument", "inputSchema": {"type": "object"}}
for line in sys.stdin:
    message = json.loads(line)
    if "id" not in message:
        continue
    method = message.get("method")
    if method == "initialize":
        answer = {"result": {"protocolVersion": message["params"].get("protocolVersion", "2025-06-18"),
                             "capabilities": {"tools": {}}, "serverInfo": {"name": "echoing", "version": "1"}}}
    elif method == "tools/list":
        answer = {"result": {"tools": [TOOL]}}
    elif method == "tools/call":
        text = message["params"].get("arguments", {}).get("text", "")
        answer = {"error": {"code": -32602, "message": "invalid text: " + text}}
    else:
        answer = {"result": {}}
    answer.update({"jsonrpc": "2.0", "id": message["id"]})
    print(json.dumps(answer), flush=True)
"#;

#[test]
fn audit_tail_escapes_control_characters_and_json_stays_valid() {
    let hostile = "\u{1b}]0;pwned\u{7}\u{1b}[2J\r\u{9b}31m";
    let shown_escaped = r"\x1b]0;pwned\x07\x1b[2J\r\u{9b}31m";
    let script_dir = TempDir::new();
    let script = script_dir.0.join("echoing_server.py");
    std::fs::write(&script, ECHOING_SERVER).expect("server script");
    let python = ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .find(|path| Path::new(path).exists())
        .expect("python3 is installed");
    let profile = DEFAULT_TEST_PROFILE
        .replace("rbac:\n", &format!("  echoing:\n    command: {python}\n    args: [{}]\nrbac:\n", script.display()));
    for database in Database::ALL {
        let app = spawn_app_with(AppOptions::new(database).profile(&profile));
        let mut session = Session::open(&format!("{}/mcp", app.base_url), &bearer(&app.admin_key));
        let ready = integration_tests::eventually(Duration::from_secs(20), || {
            session.tool_names().iter().any(|name| name == "echoing__lookup")
        });
        assert!(ready, "{database:?}: the echoing server is up");
        let answer = session.call("echoing__lookup", json!({"text": hostile}));
        assert!(answer["error"].is_object(), "{database:?}: the server's error is relayed: {answer}");
        let stored =
            app.database.query_scalar("SELECT error_message FROM mcp_tool_executions WHERE status = 'rpc_error'");
        assert!(stored.contains('\u{1b}'), "{database:?}: the message is stored as the server wrote it: {stored:?}");

        let tail = app.cli(&["audit", "tail"]);
        assert!(tail.status.success(), "{database:?}: {}", text(&tail.stderr));
        let shown = text(&tail.stdout);
        let raw: Vec<char> = shown.chars().filter(|character| character.is_control() && *character != '\n').collect();
        assert!(raw.is_empty(), "{database:?}: no raw control character reaches the terminal: {raw:?} in {shown:?}");
        assert!(
            shown.contains(&format!("error=invalid text: {shown_escaped}")),
            "{database:?}: the error, escaped: {shown}"
        );
        assert!(
            shown.contains(&format!(r#"args={{"text":"{shown_escaped}"}}"#)),
            "{database:?}: the arguments are shown, escaped: {shown}"
        );

        let rows = app.audit_rows();
        let row = rows.iter().find(|row| row["status"] == "rpc_error").expect("the rpc_error row");
        let input: Value = serde_json::from_str(row["input"].as_str().expect("input text")).expect("input is JSON");
        assert_eq!(input["text"], hostile, "{database:?}: --json keeps the value exactly (serde escapes it)");
        assert_eq!(row["error_message"], format!("invalid text: {hostile}"), "{database:?}: and the error");
        let json_output = text(&app.cli(&["audit", "tail", "--json"]).stdout);
        assert!(
            !json_output.chars().any(|character| character.is_control() && character != '\n'),
            "{database:?}: --json escapes too"
        );
    }
}

const HOOKS_PROFILE_ADDITION: &str = r#"
hooks:
  PreToolUse:
    - { builtin: deny_arguments, pattern: "(?i)drop\\s+table" }
"#;

#[test]
fn hooks_tail_reads_hook_events_filters_by_event_and_follows() {
    for database in Database::ALL {
        let profile = format!("{DEFAULT_TEST_PROFILE}{HOOKS_PROFILE_ADDITION}");
        let app = spawn_app_with(AppOptions::new(database).profile(&profile));
        let mut session = Session::open(&format!("{}/mcp", app.base_url), &bearer(&app.admin_key));
        let denied = session.call("customers__get_customer", json!({"id": 1, "note": "DROP TABLE customers"}));
        assert!(
            denied["error"]["message"].as_str().is_some_and(|message| message.starts_with("forbidden:")),
            "{denied}"
        );
        session.call("customers__get_customer", json!({"id": 1}));

        let tail = app.cli(&["hooks", "tail"]);
        assert!(tail.status.success(), "{database:?}: {}", text(&tail.stderr));
        let shown = text(&tail.stdout);
        let deny_line =
            shown.lines().find(|line| line.contains(" deny ")).unwrap_or_else(|| panic!("{database:?}: {shown}"));
        for part in [
            "PreToolUse",
            "builtin:deny_arguments",
            "admin",
            "customers",
            "get_customer",
            "the arguments match the denied pattern",
        ] {
            assert!(deny_line.contains(part), "{database:?}: the deny line has {part}: {deny_line}");
        }

        let json_rows = |args: &[&str]| -> Vec<Value> {
            let output = app.cli(args);
            assert!(output.status.success(), "{args:?}: {}", text(&output.stderr));
            text(&output.stdout).lines().map(|line| serde_json::from_str(line).expect("a JSON line")).collect()
        };
        let rows = json_rows(&["hooks", "tail", "--json"]);
        let deny = rows.iter().find(|row| row["decision"] == "deny").unwrap_or_else(|| panic!("{rows:?}"));
        assert_eq!(deny["event"], "PreToolUse", "{deny}");
        assert_eq!(deny["handler"], "builtin:deny_arguments", "{deny}");
        assert_eq!(deny["user_id"], "admin", "{deny}");
        assert!(deny["trace_id"].as_str().is_some_and(|trace| trace.len() == 32), "{deny}");
        assert!(rows.iter().all(|row| row["event"] == "PreToolUse" || row["event"] == "SessionStart"), "{rows:?}");
        let audit_denied = app.audit_rows().into_iter().find(|row| row["status"] == "denied").expect("a denied row");
        assert_eq!(audit_denied["trace_id"], deny["trace_id"], "{database:?}: the same trace as the audit row");

        assert!(json_rows(&["hooks", "tail", "--json", "--event", "PostToolUse"]).is_empty(), "--event filters");
        assert!(
            json_rows(&["hooks", "tail", "--json", "--event", "PreToolUse"])
                .iter()
                .all(|row| row["event"] == "PreToolUse"),
            "--event PreToolUse"
        );
        let bogus = app.cli(&["hooks", "tail", "--event", "PreToolUsed"]);
        assert_eq!(bogus.status.code(), Some(1), "an unknown event is refused");
        assert!(text(&bogus.stderr).contains("PostToolUseFailure"), "and the ten are listed: {}", text(&bogus.stderr));

        // --follow prints what is stored after it started, and only that.
        let mut follower = Command::new(castellan_binary())
            .args(["hooks", "tail", "--follow", "--json", "--limit", "0"])
            .env("CASTELLAN_PROFILE", &app.profile_path)
            .env("CASTELLAN_DATABASE_URL", &app.database.url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("follower starts");
        std::thread::sleep(Duration::from_millis(1500));
        session.call("customers__get_customer", json!({"id": 2, "note": "drop table again"}));
        let line = first_line_containing(&mut follower, "\"decision\":\"deny\"", Duration::from_secs(15));
        let _ = follower.kill();
        let _ = follower.wait();
        let followed: Value = serde_json::from_str(&line.unwrap_or_else(|| panic!("{database:?}: followed nothing")))
            .expect("a JSON line");
        assert_ne!(followed["trace_id"], deny["trace_id"], "{database:?}: only the new decision is followed");
    }
}

#[test]
fn policy_explain_prints_the_decision_and_the_rule_and_exits_by_it() {
    for database in Database::ALL {
        let app = spawn_app(database);
        let alice_key = app.user_with_key("alice", "user");
        let added = app.cli(&["users", "add", "drifter", "--tier", "anonymous"]);
        assert!(added.status.success(), "{}", text(&added.stderr));
        let cases: [(&str, &str, Option<i32>, &[&str]); 6] = [
            (
                "alice",
                "customers__get_customer",
                Some(0),
                &["decision: allow", "rbac.rules[0] 'users-may-use-tools'", "tier user"],
            ),
            (
                "alice",
                "customers__delete_customer",
                Some(1),
                &[
                    "decision: deny",
                    r#"rbac.rules[2] 'no-destructive-for-users' { effect: deny, max_tier: user, servers: ["customers"], tools: ["delete_*"] }"#,
                ],
            ),
            ("admin", "customers__delete_customer", Some(0), &["decision: allow", "rbac.rules[0]", "tier admin"]),
            ("drifter", "customers__get_customer", Some(1), &["decision: deny", "rule: default: deny"]),
            ("nobody", "customers__get_customer", Some(1), &["no user named 'nobody'"]),
            ("alice", "get_customer", Some(1), &["is not SERVER__TOOL"]),
        ];
        for (user, tool, code, expected) in cases {
            let output = app.cli(&["policy", "explain", "--user", user, "--tool", tool]);
            let shown = text(&output.stdout) + &text(&output.stderr);
            assert_eq!(output.status.code(), code, "{database:?} {user} {tool}: exit status; {shown}");
            for part in expected {
                assert!(shown.contains(part), "{database:?} {user} {tool}: has {part:?}:\n{shown}");
            }
        }
        // The gateway cites the same rule.
        let mut session = Session::open(&format!("{}/mcp", app.base_url), &bearer(&alice_key));
        let refused = session.call("customers__delete_customer", json!({"id": 1}));
        let message = refused["error"]["message"].as_str().unwrap_or_default().to_string();
        assert!(message.contains("no-destructive-for-users"), "{database:?}: the gateway agrees: {refused}");
    }
}

#[test]
fn keys_list_columns_line_up_whatever_the_name_lengths() {
    let app = spawn_app(Database::Sqlite);
    let long_name = "a-rather-long-user-name-of-forty-characters";
    app.user_with_key("al", "user");
    app.user_with_key(long_name, "user");
    let expiring = app.cli(&["keys", "create", "--user", "al", "--expires", "1d", "--scope", "mcp:tools"]);
    assert!(expiring.status.success(), "{}", text(&expiring.stderr));
    let listed = app.cli(&["keys", "list"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let listing = text(&listed.stdout);
    let lines: Vec<&str> = listing.lines().collect();
    let header = lines[0];
    let starts: Vec<usize> = ["ID", "USER", "CREATED", "EXPIRES", "REVOKED", "SCOPES"]
        .iter()
        .map(|title| header.find(title).unwrap_or_else(|| panic!("{title} in {header}")))
        .collect();
    assert!(lines.len() >= 4, "the bootstrap key and three more:\n{listing}");
    assert!(listing.contains(long_name), "{listing}");
    for line in &lines[1..] {
        let bytes = line.as_bytes();
        // Every column but the last, which is not padded and may be empty.
        for start in &starts[1..starts.len() - 1] {
            assert!(
                bytes.get(start - 1) == Some(&b' ') && bytes.get(*start).is_some_and(|byte| *byte != b' '),
                "a cell starts under each header at {start}:\n{listing}"
            );
        }
    }
}
