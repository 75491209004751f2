//! Faults: a child killed mid-call, the daemon killed with SIGKILL, SIGTERM, the database going away,
//! and profile reloads good and bad.

use std::time::Duration;

use integration_tests::events::EventStream;
use integration_tests::mcp::{Session, bearer};
use integration_tests::{
    AppOptions, Database, alive, descendants, eventually, profile_with_everything, spawn_app, spawn_app_with,
};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

/// The real demo-server process (the supervisor's child), by its command line.
fn demo_server_pid(daemon: i32) -> i32 {
    descendants(daemon)
        .into_iter()
        .find(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let text = String::from_utf8_lossy(&cmdline);
            text.contains("demo-server") && !text.contains("supervise-child")
        })
        .expect("demo server process")
}

#[test]
fn killed_child_fails_in_flight_calls_and_comes_back() {
    let app = spawn_app(Database::Sqlite);
    let url = format!("{}/mcp", app.base_url);
    let mut session = Session::open(&url, &bearer(&app.admin_key));
    assert_eq!(session.call("customers__list_customers", json!({}))["result"]["isError"], false);
    let child = demo_server_pid(app.pid());
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child), Signal::SIGKILL).expect("kill child");
    // Calls while it is down fail cleanly and are audited as failed.
    let during = session.call("customers__list_customers", json!({}));
    assert!(during.get("error").is_some(), "a call to a dead server errors: {during}");
    let came_back = eventually(Duration::from_secs(20), || {
        session.call("customers__list_customers", json!({})).pointer("/result/isError") == Some(&json!(false))
    });
    assert!(came_back, "the server is back after its backoff; log:\n{}", app.log());
    let new_child = demo_server_pid(app.pid());
    assert_ne!(new_child, child, "a new process");
    let statuses: Vec<String> =
        app.audit_rows().iter().map(|row| row["status"].as_str().unwrap_or_default().to_string()).collect();
    assert!(statuses.iter().any(|status| status == "failed"), "the failed call is audited as failed: {statuses:?}");
}

#[test]
fn sigkill_of_the_daemon_leaves_no_child_behind() {
    let mut app = spawn_app(Database::Sqlite);
    let children = descendants(app.pid());
    assert!(children.len() >= 2, "supervisor and demo server are running: {children:?}");
    app.signal(Signal::SIGKILL);
    app.wait_exit(Duration::from_secs(5));
    let gone = eventually(Duration::from_secs(8), || children.iter().all(|pid| !alive(*pid)));
    assert!(
        gone,
        "children still alive after kill -9 of the daemon: {:?}",
        children.iter().filter(|pid| alive(**pid)).collect::<Vec<_>>()
    );
}

#[test]
fn sigterm_drains_stops_children_and_exits_zero() {
    let mut app = spawn_app(Database::Postgres);
    let mut session = Session::open(&format!("{}/mcp", app.base_url), &bearer(&app.admin_key));
    assert_eq!(session.call("customers__list_customers", json!({}))["result"]["isError"], false);
    let children = descendants(app.pid());
    app.signal(Signal::SIGTERM);
    let status = app.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "clean exit on SIGTERM: {status:?}; log:\n{}", app.log());
    assert!(children.iter().all(|pid| !alive(*pid)), "no child survives a clean stop");
    assert!(app.log_shows("shutdown complete"), "the shutdown path ran");
}

#[test]
fn database_down_refuses_calls_and_the_tool_does_not_run() {
    let app = spawn_app(Database::Postgres);
    let url = format!("{}/mcp", app.base_url);
    let mut session = Session::open(&url, &bearer(&app.admin_key));
    assert_eq!(session.call("customers__list_customers", json!({}))["result"]["isError"], false);
    app.database.take_down();
    // A call already past the health check when the database dies may still run; its answer is
    // withheld and its row is kept for later. Harmless reads trip the health flag first.
    let refused = eventually(Duration::from_secs(10), || {
        let answer = session.call("customers__get_customer", json!({"id": 1}));
        answer.get("error").is_some() && answer.to_string().contains("audit unavailable")
    });
    assert!(refused, "calls are refused while the database is down; log:\n{}", app.log());
    let delete = session.call("customers__delete_customer", json!({"id": 3}));
    assert!(
        delete.to_string().contains("audit unavailable"),
        "a known-down database refuses before the tool: {delete}"
    );
    app.database.bring_up();
    let back = eventually(Duration::from_secs(15), || {
        session.call("customers__get_customer", json!({"id": 1})).pointer("/result/isError") == Some(&json!(false))
    });
    assert!(back, "calls work again once the database is back");
    let customer = session.call("customers__get_customer", json!({"id": 3}));
    assert_eq!(customer["result"]["structuredContent"]["id"], 3, "the refused delete never ran: {customer}");
    let rows = app.audit_rows();
    assert!(
        rows.iter().any(|row| row["tool"] == "delete_customer"
            && row["error_message"].as_str().unwrap_or_default().contains("unavailable")),
        "the refused attempt is on record once the database is back: {rows:#?}"
    );
}

#[test]
fn profile_reload_applies_valid_changes_and_ignores_invalid_ones() {
    let app = spawn_app_with(AppOptions::new(Database::Sqlite));
    let user_key = app.user_with_key("dave", "user");
    let url = format!("{}/mcp", app.base_url);
    let mut session = Session::open(&url, &bearer(&user_key));
    assert!(session.tool_names().contains(&"customers__get_customer".to_string()));

    let broken = std::fs::read_to_string(&app.profile_path).expect("profile").replace("rbac:", "rbac:\n  bogus_key: 1");
    std::fs::write(&app.profile_path, broken).expect("write");
    std::thread::sleep(Duration::from_secs(3));
    assert!(app.log_shows("profile change rejected"), "an invalid profile is logged");
    assert!(session.tool_names().contains(&"customers__get_customer".to_string()), "and the running profile stays");

    let stricter =
        integration_tests::DEFAULT_TEST_PROFILE.replace("tools: [\"delete_*\"]", "tools: [\"delete_*\", \"get_*\"]");
    std::fs::write(&app.profile_path, stricter).expect("write");
    let applied =
        eventually(Duration::from_secs(10), || !session.tool_names().contains(&"customers__get_customer".to_string()));
    assert!(applied, "a valid change is applied without a restart; log:\n{}", app.log());
    assert_eq!(session.call("customers__get_customer", json!({"id": 1}))["error"]["code"], -32003);
}

/// A reload that changes settings read only at start (here `identity.max_dynamic_clients` and
/// `identity.access_token_ttl`) applies what it can (the stricter RBAC rule), and names each of
/// the others as "needs a restart: KEY" in the log and in the `profile_applied` event. Before, these
/// were silently ignored. The command-line `--listen` of every test daemon is not a change.
#[test]
fn profile_reload_names_the_settings_that_need_a_restart() {
    let app = spawn_app_with(AppOptions::new(Database::Sqlite));
    let user_key = app.user_with_key("dave", "user");
    let mut session = Session::open(&format!("{}/mcp", app.base_url), &bearer(&user_key));
    let mut events =
        EventStream::open(&app.base_url, &bearer(&app.admin_key), "?types=profile_applied").expect("event stream");

    let changed = integration_tests::DEFAULT_TEST_PROFILE
        .replace("tools: [\"delete_*\"]", "tools: [\"delete_*\", \"get_*\"]")
        + "identity:\n  max_dynamic_clients: 7\n  access_token_ttl: 5m\n";
    std::fs::write(&app.profile_path, changed).expect("write");
    let applied = events.find(Duration::from_secs(10), |message| message.event == "profile_applied");
    let applied = applied.unwrap_or_else(|| panic!("a profile_applied event; log:\n{}", app.log()));
    assert_eq!(
        applied.data["restart_needed"],
        json!(["identity.access_token_ttl", "identity.max_dynamic_clients"]),
        "the event names the restart-only keys that changed: {}",
        applied.raw
    );
    let log = app.log();
    for key in ["identity.access_token_ttl", "identity.max_dynamic_clients"] {
        assert!(log.contains(&format!("needs a restart: {key}")), "the log names {key}:\n{log}");
    }
    assert!(!log.contains("needs a restart: server.listen"), "--listen is not a profile change:\n{log}");
    assert!(!session.tool_names().contains(&"customers__get_customer".to_string()), "the live change was applied");
}

/// `castellan profile check FILE --running RUNNING_FILE` says before the reload what it will not apply.
#[test]
fn profile_check_against_the_running_profile_names_the_settings_that_need_a_restart() {
    let dir = std::env::temp_dir().join(format!("castellan-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let (running, changed) = (dir.join("running.yaml"), dir.join("changed.yaml"));
    std::fs::write(&running, "server:\n  listen: 127.0.0.1:8080\n").expect("write");
    std::fs::write(
        &changed,
        "server:\n  listen: 127.0.0.1:8080\n  public_url: https://castellan.example\nrbac:\n  default: allow\n",
    )
    .expect("write");
    let check = |extra: &[&std::path::Path]| {
        let mut command = std::process::Command::new(integration_tests::castellan_binary());
        command.args(["profile", "check"]).arg(&changed);
        if let Some(running) = extra.first() {
            command.arg("--running").arg(running);
        }
        let output = command.output().expect("profile check runs");
        (output.status.code(), String::from_utf8_lossy(&output.stdout).to_string())
    };
    let (code, out) = check(&[&running]);
    assert_eq!(code, Some(0), "a valid profile: {out}");
    let expected = format!("{0}: ok\n{0}: needs a restart: server.public_url\n", changed.display());
    assert_eq!(out, expected, "the restart-only change is named, the live rbac change is not");
    assert_eq!(check(&[]), (Some(0), format!("{}: ok\n", changed.display())), "without --running, as before");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A long call to server-everything posted on its own thread with a fixed request id.
fn long_call_in_background(session: &Session, id: u64, seconds: u64) -> std::thread::JoinHandle<(Value, Duration)> {
    let url = session.url.clone();
    let headers: Vec<(String, String)> =
        session.headers().into_iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
    std::thread::spawn(move || {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
            "name": "everything__trigger-long-running-operation", "arguments": {"duration": seconds, "steps": seconds}
        }});
        let headers: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
        let started = std::time::Instant::now();
        let reply = integration_tests::mcp::post_raw(&url, &headers, &body.to_string());
        (reply.body, started.elapsed())
    })
}

fn everything_pid(daemon: i32) -> i32 {
    descendants(daemon)
        .into_iter()
        .find(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let text = String::from_utf8_lossy(&cmdline);
            text.contains("server-everything") && !text.contains("supervise-child")
        })
        .expect("server-everything process")
}

#[test]
fn a_child_killed_during_a_call_fails_that_call_and_it_is_audited_failed() {
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&profile_with_everything()));
    let session = Session::open(&format!("{}/mcp", app.base_url), &bearer(&app.admin_key));
    let call = long_call_in_background(&session, 41, 10);
    std::thread::sleep(Duration::from_millis(700));
    let child = everything_pid(app.pid());
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child), Signal::SIGKILL).expect("kill child");
    let (answer, took) = call.join().expect("call thread");
    assert!(answer.get("error").is_some(), "the in-flight call gets an error: {answer}");
    assert!(took < Duration::from_secs(5), "and at once, not after the tool's 10 s: {took:?}");
    let rows = app.audit_rows();
    let row = rows.iter().find(|row| row["tool"] == "trigger-long-running-operation").expect("audited");
    assert_eq!(row["status"], "failed", "{row}");
    let back = eventually(Duration::from_secs(20), || {
        descendants(app.pid()).iter().any(|pid| {
            *pid != child && {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                String::from_utf8_lossy(&cmdline).contains("server-everything")
            }
        })
    });
    assert!(back, "server-everything is restarted after its backoff");
}

#[test]
fn a_cancelled_call_ends_at_once_reaches_the_server_and_is_audited() {
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&profile_with_everything()));
    let mut session = Session::open(&format!("{}/mcp", app.base_url), &bearer(&app.admin_key));
    let call = long_call_in_background(&session, 42, 10);
    std::thread::sleep(Duration::from_millis(700));
    let accepted =
        session.notify("notifications/cancelled", Some(json!({"requestId": 42, "reason": "user pressed stop"})));
    assert_eq!(accepted, 202);
    let (answer, took) = call.join().expect("call thread");
    assert!(took < Duration::from_secs(5), "the call ended when cancelled, not after 10 s: {took:?} {answer}");
    let rows = app.audit_rows();
    let row = rows.iter().find(|row| row["tool"] == "trigger-long-running-operation").expect("audited");
    assert_eq!(
        (row["status"].as_str(), row["error_message"].as_str()),
        (Some("failed"), Some("cancelled by the client"))
    );
    // The server is still healthy and serves the next call.
    let next = session.call("everything__get-sum", json!({"a": 1, "b": 1}));
    assert!(
        next.pointer("/result/content/0/text").and_then(Value::as_str).is_some_and(|text| text.contains("is 2")),
        "{next}"
    );
}

/// The demo-server processes under the daemon (not their supervisors).
fn demo_server_pids(daemon: i32) -> Vec<i32> {
    let mut pids: Vec<i32> = descendants(daemon)
        .into_iter()
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let text = String::from_utf8_lossy(&cmdline);
            text.contains("demo-server") && !text.contains("supervise-child")
        })
        .collect();
    pids.sort_unstable();
    pids
}

#[test]
fn reload_starts_restarts_and_stops_only_the_servers_whose_definition_changed() {
    let app = spawn_app(Database::Sqlite);
    let url = format!("{}/mcp", app.base_url);
    let mut session = Session::open(&url, &bearer(&app.admin_key));
    let original = demo_server_pids(app.pid());
    assert_eq!(original.len(), 1, "one demo server at start: {original:?}");
    let with_second = |extra: &str| {
        integration_tests::DEFAULT_TEST_PROFILE.replace(
            "rbac:\n",
            &format!("  customers2:\n    command: castellan\n    args: [demo-server]\n{extra}rbac:\n"),
        )
    };

    std::fs::write(&app.profile_path, with_second("")).expect("write");
    let added = eventually(Duration::from_secs(15), || {
        session.tool_names().contains(&"customers2__get_customer".to_string()) && demo_server_pids(app.pid()).len() == 2
    });
    assert!(added, "an added server is started; log:\n{}", app.log());
    let two = demo_server_pids(app.pid());
    assert!(two.contains(&original[0]), "the unchanged server kept its process: {original:?} -> {two:?}");
    let second = *two.iter().find(|pid| **pid != original[0]).expect("second");

    std::fs::write(&app.profile_path, with_second("    env: { MARKER: v2 }\n")).expect("write");
    let restarted = eventually(Duration::from_secs(15), || {
        let now = demo_server_pids(app.pid());
        now.len() == 2 && now.contains(&original[0]) && !now.contains(&second)
    });
    assert!(restarted, "only the changed server is restarted: {:?}; log:\n{}", demo_server_pids(app.pid()), app.log());

    std::fs::write(&app.profile_path, integration_tests::DEFAULT_TEST_PROFILE).expect("write");
    let removed = eventually(Duration::from_secs(15), || demo_server_pids(app.pid()) == original);
    assert!(removed, "a removed server is stopped and the other untouched: {:?}", demo_server_pids(app.pid()));
    assert!(!session.tool_names().iter().any(|name| name.starts_with("customers2__")), "its tools are gone");
}

#[test]
fn sigterm_lets_a_call_in_flight_finish_and_audits_it_before_exiting() {
    let mut app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&profile_with_everything()));
    let session = Session::open(&format!("{}/mcp", app.base_url), &bearer(&app.admin_key));
    let call = long_call_in_background(&session, 43, 2);
    std::thread::sleep(Duration::from_millis(500));
    app.signal(Signal::SIGTERM);
    let (answer, _) = call.join().expect("call thread");
    let text = answer.pointer("/result/content/0/text").and_then(Value::as_str).unwrap_or_default();
    assert!(text.contains("completed"), "the call in flight was drained, not cut: {answer}");
    let status = app.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "exit 0 after draining: {status:?}");
    let rows = app.audit_rows();
    let row = rows.iter().find(|row| row["tool"] == "trigger-long-running-operation").expect("audited");
    assert_eq!(row["status"], "success", "{row}");
}

#[test]
fn a_call_over_its_server_timeout_is_cut_and_audited_as_timeout() {
    let profile = profile_with_everything().replace(", stdio]\n", ", stdio]\n    call_timeout: 1s\n");
    assert!(profile.contains("call_timeout: 1s"), "{profile}");
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&profile));
    let session = Session::open(&format!("{}/mcp", app.base_url), &bearer(&app.admin_key));
    let (answer, took) = long_call_in_background(&session, 44, 5).join().expect("call thread");
    assert_eq!(answer["error"]["code"], -32001, "timeout error: {answer}");
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(4), "cut at about 1 s: {took:?}");
    let rows = app.audit_rows();
    let row = rows.iter().find(|row| row["tool"] == "trigger-long-running-operation").expect("audited");
    assert_eq!(row["status"], "timeout", "{row}");
}
