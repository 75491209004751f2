//! What the supervisor promises about children: a cleared environment holding only what the
//! profile names, and a server that keeps dying is put in crash-loop state without disturbing others.

use std::time::Duration;

use integration_tests::mcp::{Session, bearer};
use integration_tests::{AppOptions, Database, eventually, profile_with_everything, spawn_app_with};
use serde_json::{Value, json};

#[test]
fn a_child_sees_only_the_environment_the_profile_names() {
    let profile = profile_with_everything().replace(", stdio]\n", ", stdio]\n    env: { MARKER: from-profile }\n");
    assert!(profile.contains("MARKER"), "{profile}");
    let app = spawn_app_with(
        AppOptions::new(Database::Sqlite).profile(&profile).env("LEAK_CHECK_SECRET", "must-not-reach-children"),
    );
    let mut session = Session::open(&format!("{}/mcp", app.base_url), &bearer(&app.admin_key));
    let answer = session.call("everything__get-env", json!({}));
    let text = answer.pointer("/result/content/0/text").and_then(Value::as_str).expect("env text");
    let env: serde_json::Map<String, Value> = serde_json::from_str(text).expect("env JSON");
    assert_eq!(env.get("MARKER"), Some(&json!("from-profile")), "the declared variable is there: {env:?}");
    for leaked in ["LEAK_CHECK_SECRET", "CASTELLAN_DATABASE_URL", "CASTELLAN_PROFILE", "PATH", "HOME"] {
        assert!(!env.contains_key(leaked), "{leaked} must not reach the child: {env:?}");
    }
}

#[test]
fn a_server_that_keeps_dying_enters_crash_loop_and_the_others_keep_serving() {
    let profile = integration_tests::DEFAULT_TEST_PROFILE.replace(
        "rbac:\n",
        "  broken:\n    command: /bin/false\n    restart: { backoff_initial: 50ms, backoff_max: 500ms, crash_loop_threshold: 3, crash_loop_window: 30s }\nrbac:\n",
    );
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&profile));
    let looping = eventually(Duration::from_secs(10), || app.log().contains("crash loop"));
    assert!(looping, "crash loop reported; log:\n{}", app.log());
    let metrics = ureq::get(&format!("{}/metrics", app.base_url)).call().expect("metrics").into_string().expect("text");
    let restarts = metrics
        .lines()
        .find(|line| line.starts_with("castellan_child_restarts_total{server=\"broken\"}"))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|count| count.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(restarts >= 3.0, "restarts counted: {restarts}");
    let mut session = Session::open(&format!("{}/mcp", app.base_url), &bearer(&app.admin_key));
    assert_eq!(session.call("customers__get_customer", json!({"id": 1}))["result"]["isError"], false);
    let broken = session.call("broken__anything", json!({}));
    assert!(
        broken["error"]["message"].as_str().unwrap_or_default().contains("not running"),
        "a call to it says so: {broken}"
    );
}

#[test]
fn a_server_that_stops_answering_pings_is_restarted() {
    let profile = integration_tests::DEFAULT_TEST_PROFILE.replace("server:\n", "server:\n  health_interval: 300ms\n");
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&profile));
    let frozen = demo_server_pid(app.pid());
    // Stopped, not dead: the process and its pipes stay, only the answers stop.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(frozen), nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP");
    let replaced = eventually(Duration::from_secs(15), || {
        integration_tests::descendants(app.pid()).iter().any(|pid| *pid != frozen && is_demo_server(*pid))
    });
    assert!(replaced, "a new demo server after three unanswered pings; log:\n{}", app.log());
    assert!(app.log_shows("health check failed"), "the reason is logged");
    let mut session = Session::open(&format!("{}/mcp", app.base_url), &bearer(&app.admin_key));
    let served = eventually(Duration::from_secs(10), || {
        session.call("customers__get_customer", json!({"id": 1})).pointer("/result/isError") == Some(&json!(false))
    });
    assert!(served, "and it serves again");
    let metrics = ureq::get(&format!("{}/metrics", app.base_url)).call().expect("metrics").into_string().expect("text");
    assert!(metrics.contains("castellan_servers_memory_bytes "), "process memory is exported");
}

fn is_demo_server(pid: i32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let text = String::from_utf8_lossy(&cmdline);
    text.contains("demo-server") && !text.contains("supervise-child")
}

fn demo_server_pid(daemon: i32) -> i32 {
    integration_tests::descendants(daemon).into_iter().find(|pid| is_demo_server(*pid)).expect("demo server")
}

#[test]
fn a_stop_reaches_the_program_as_sigterm_before_any_sigkill() {
    let dir = std::env::temp_dir().join(format!("castellan-stop-{}", integration_tests::random_suffix()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let marker = dir.join("terminated");
    let script = format!("trap 'echo clean > {}; exit 0' TERM; while :; do sleep 0.05; done", marker.display());
    let mut supervisor = std::process::Command::new(integration_tests::castellan_binary())
        .args(["supervise-child", "--", "/bin/sh", "-c", &script])
        .env_clear()
        .spawn()
        .expect("supervise-child starts");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(supervisor.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .expect("signal the supervisor");
    let status = supervisor.wait().expect("the supervisor exits");
    let took = started.elapsed();
    assert_eq!(status.code(), Some(0), "the program exited on its own after SIGTERM, not by SIGKILL: {status:?}");
    assert!(took < std::time::Duration::from_secs(2), "well within the 3 s grace: {took:?}");
    assert_eq!(std::fs::read_to_string(&marker).unwrap_or_default().trim(), "clean", "the program's TERM handler ran");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// The `everything` server's environment as the child itself reports it.
fn child_env(session: &mut Session, server: &str) -> Option<serde_json::Map<String, Value>> {
    let answer = session.call(&format!("{server}__get-env"), json!({}));
    let text = answer.pointer("/result/content/0/text").and_then(Value::as_str)?;
    serde_json::from_str(text).ok()
}

#[test]
fn a_child_gets_only_the_secrets_its_own_entry_names() {
    let base = profile_with_everything();
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&base));
    for (name, value) in [("alpha_token", "alpha-value-7f3a"), ("beta_token", "beta-value-91c2")] {
        let stored = app.cli_with_stdin(&["secrets", "set", name], &format!("{value}\n"));
        assert!(stored.status.success(), "secrets set: {}", String::from_utf8_lossy(&stored.stderr));
    }
    let listed = app.cli(&["secrets", "list"]);
    let listing = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(listing.contains("alpha_token") && listing.contains("beta_token"), "names are listed: {listing}");
    assert!(!listing.contains("alpha-value") && !listing.contains("beta-value"), "values never are: {listing}");
    let stored: String = app.database.query_scalar("SELECT group_concat(sealed_value) FROM secrets");
    assert!(!stored.contains("alpha-value") && !stored.contains("beta-value"), "values are sealed at rest");

    // One entry names alpha, a second entry (the same program) names beta.
    let everything =
        base.split("  everything:\n").nth(1).expect("the everything entry").split("rbac:\n").next().unwrap();
    let second = format!("  second:\n{everything}")
        .replace(", stdio]\n", ", stdio]\n    env: { OTHER: \"${secret:beta_token}\" }\n");
    let first = base.replace(", stdio]\n", ", stdio]\n    env: { TOKEN: \"${secret:alpha_token}\" }\n");
    let changed = first.replace("rbac:\n", &format!("{second}rbac:\n"));
    std::fs::write(&app.profile_path, &changed).expect("rewrite the profile");

    let mut seen = (None, None);
    let ready = eventually(Duration::from_secs(30), || {
        let mut session = Session::open(&format!("{}/mcp", app.base_url), &bearer(&app.admin_key));
        seen = (child_env(&mut session, "everything"), child_env(&mut session, "second"));
        matches!(&seen, (Some(first), Some(_)) if first.contains_key("TOKEN"))
    });
    assert!(ready, "both servers run with their secrets: {seen:?}\n{}", app.log());
    let (first_env, second_env) = (seen.0.unwrap_or_default(), seen.1.unwrap_or_default());
    // What a child reports passes the redactor, which names the secret it replaced: the child held
    // exactly that value, and the value itself never comes back out.
    assert_eq!(first_env.get("TOKEN"), Some(&json!("[REDACTED:alpha_token]")), "its own secret reaches the child");
    assert_eq!(second_env.get("OTHER"), Some(&json!("[REDACTED:beta_token]")), "the other entry gets its own");
    let first_text = serde_json::to_string(&first_env).unwrap_or_default();
    let second_text = serde_json::to_string(&second_env).unwrap_or_default();
    assert!(!first_text.contains("beta_token"), "the first child never sees the second's secret: {first_text}");
    assert!(!second_text.contains("alpha_token"), "nor the second the first's: {second_text}");
    assert!(!first_text.contains("alpha-value") && !second_text.contains("beta-value"), "no value in clear");
}

#[test]
fn a_server_naming_a_missing_secret_is_not_started_and_the_log_names_the_secret() {
    let profile =
        profile_with_everything().replace(", stdio]\n", ", stdio]\n    env: { TOKEN: \"${secret:never_set}\" }\n");
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&profile));
    let mut session = Session::open(&format!("{}/mcp", app.base_url), &bearer(&app.admin_key));
    let names = session.tool_names();
    assert!(names.iter().all(|name| !name.starts_with("everything__")), "strict: the server is not started: {names:?}");
    assert!(names.iter().any(|name| name.starts_with("customers__")), "the other servers run: {names:?}");
    assert!(
        eventually(Duration::from_secs(10), || app.log().contains("secret `never_set` is not set")),
        "the log names the missing secret:\n{}",
        app.log()
    );
}

/// The daemon's descriptors that point into `/proc/<pid>/` of another process, and into its own.
fn proc_descriptors(daemon: i32) -> (Vec<String>, usize) {
    let mut others = Vec::new();
    let mut own = 0;
    for entry in std::fs::read_dir(format!("/proc/{daemon}/fd")).into_iter().flatten().flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else { continue };
        let target = target.to_string_lossy().into_owned();
        let Some(pid) = target.strip_prefix("/proc/").and_then(|rest| rest.split('/').next()) else { continue };
        if pid.parse::<i32>().is_err() {
            continue;
        }
        if pid == daemon.to_string() { own += 1 } else { others.push(target) }
    }
    (others, own)
}

#[test]
fn health_sampling_holds_no_descriptors_on_other_processes_proc_files() {
    let servers = (1..=3)
        .map(|index| format!("  demo{index}:\n    command: castellan\n    args: [demo-server]\n"))
        .collect::<String>();
    let profile = integration_tests::DEFAULT_TEST_PROFILE
        .replace("server:\n", "server:\n  health_interval: 200ms\n")
        .replace("rbac:\n", &format!("{servers}rbac:\n"));
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&profile));
    let children = integration_tests::descendants(app.pid()).into_iter().filter(|pid| is_demo_server(*pid)).count();
    assert!(children >= 4, "four supervised demo servers run: {children}");
    let sampled = eventually(Duration::from_secs(10), || {
        let metrics = ureq::get(&format!("{}/metrics", app.base_url)).call().ok().and_then(|r| r.into_string().ok());
        metrics
            .unwrap_or_default()
            .lines()
            .find(|line| line.starts_with("castellan_servers_memory_bytes "))
            .and_then(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .is_some_and(|bytes| bytes > 0.0)
    });
    assert!(sampled, "the health monitor sampled the children's memory");
    // Several more samples at 200 ms.
    std::thread::sleep(Duration::from_millis(1200));
    let (others, own) = proc_descriptors(app.pid());
    eprintln!("descriptors into /proc of other processes: {}, into its own: {own}", others.len());
    assert!(
        others.is_empty(),
        "{} descriptors on other processes' /proc files, e.g. {:?}",
        others.len(),
        &others[..others.len().min(5)]
    );
    assert!(own <= 2, "at most a transient read of its own /proc files: {own}");
}
