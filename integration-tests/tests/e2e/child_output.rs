//! What supervised servers write to stderr reaches the log whole-line redacted and lossily decoded:
//! a secret split across pipe reads or across the 2,048-character limit of a logged line is still
//! replaced, and bytes that are not UTF-8 neither end the logging nor break the server.

use std::time::Duration;

use integration_tests::mcp::{Session, bearer};
use integration_tests::{AppOptions, Database, TestApp, eventually, repo_root, spawn_app_with, tools_dir};
use serde_json::{Value, json};

const VALUE: &str = "sv-5b1e9d0c-leak-canary";

/// The default profile plus the stderr fixture as `noisy`, with `env` (YAML flow mapping entries).
fn profile_with_noisy_server(env: &str) -> String {
    let python = tools_dir().join("py2/bin/python");
    let fixture = repo_root().join("integration-tests/fixtures/stderr_server.py");
    integration_tests::DEFAULT_TEST_PROFILE.replace(
        "rbac:\n",
        &format!(
            "  noisy:\n    command: {}\n    args: [{}]\n    env: {{ {env} }}\nrbac:\n",
            python.display(),
            fixture.display()
        ),
    )
}

fn log_line_containing(app: &TestApp, needle: &str) -> Option<String> {
    app.log().lines().find(|line| line.contains(needle)).map(str::to_string)
}

#[test]
fn a_secret_split_across_pipe_reads_or_the_logged_line_limit_is_still_redacted() {
    let app = spawn_app_with(AppOptions::new(Database::Sqlite));
    let stored = app.cli_with_stdin(&["secrets", "set", "canary"], VALUE);
    assert!(stored.status.success(), "secrets set: {}", String::from_utf8_lossy(&stored.stderr));
    std::fs::write(&app.profile_path, profile_with_noisy_server("CANARY: \"${secret:canary}\"")).expect("profile");

    let both_logged = eventually(Duration::from_secs(30), || {
        log_line_containing(&app, "split across reads").is_some() && log_line_containing(&app, "bbbbbbbbbb").is_some()
    });
    assert!(both_logged, "the fixture's stderr lines were logged; log:\n{}", app.log());
    let split = log_line_containing(&app, "split across reads").unwrap_or_default();
    assert!(split.contains("split across reads: [REDACTED:canary] end"), "one line from two reads: {split}");
    let long = log_line_containing(&app, "bbbbbbbbbb").unwrap_or_default();
    let stderr_field: Value =
        serde_json::from_str::<Value>(&long).map(|line| line["fields"]["stderr"].clone()).unwrap_or_default();
    let shown = stderr_field.as_str().unwrap_or_default();
    assert_eq!(shown.chars().count(), 2048, "the line is cut to 2,048 characters: {long}");
    assert!(
        shown.ends_with(&format!("{}[RED", "b".repeat(10))),
        "the secret across the cut was redacted before the cut: ...{}",
        &shown[shown.len().saturating_sub(40)..]
    );
    assert!(
        !long.contains(&VALUE[..4]),
        "no beginning of the value before the cut: ...{}",
        &long[long.len().saturating_sub(80)..]
    );
    assert!(!app.log().contains(VALUE), "no log line holds the value");
}

#[test]
fn invalid_utf8_on_a_childs_stderr_is_logged_lossily_and_the_server_keeps_answering() {
    let profile = profile_with_noisy_server("STDERR_HEX: \"fffe0a\"");
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&profile));
    let url = format!("{}/mcp", app.base_url);
    let mut session = Session::open(&url, &bearer(&app.admin_key));
    let pid_before = noisy_pid(&app);
    assert!(pid_before.is_some(), "the fixture runs");
    for call in 1..=3 {
        let answer = session.call("noisy__ping", json!({}));
        assert_eq!(
            answer.pointer("/result/content/0/text"),
            Some(&json!(format!("pong {call}"))),
            "call {call} after the invalid bytes is answered by the same process: {answer}\nlog:\n{}",
            app.log()
        );
    }
    assert_eq!(noisy_pid(&app), pid_before, "the server was never restarted");
    assert!(app.log().contains("\u{fffd}\u{fffd}"), "the invalid bytes are logged as U+FFFD; log:\n{}", app.log());
    let later = eventually(Duration::from_secs(5), || app.log().contains("stderr line after call 3"));
    assert!(later, "stderr after the invalid bytes is still logged; log:\n{}", app.log());
}

fn noisy_pid(app: &TestApp) -> Option<i32> {
    integration_tests::descendants(app.pid()).into_iter().find(|pid| {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let text = String::from_utf8_lossy(&cmdline);
        text.contains("stderr_server.py") && !text.contains("supervise-child")
    })
}
