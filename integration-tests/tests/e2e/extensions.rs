//! Extensions built into a binary of their own (`castellan::run()` plus `register_extension!`): what
//! `serve` does with them before it starts.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integration_tests::{DEFAULT_TEST_PROFILE, TempDir};

#[test]
fn a_missing_extension_dependency_stops_serve_naming_both_before_anything_is_created() {
    let dir = TempDir::new();
    let profile = dir.0.join("profile.yaml");
    std::fs::write(&profile, DEFAULT_TEST_PROFILE).expect("profile");
    let database = format!("sqlite://{}/data/castellan.db", dir.0.display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_castellan-missing-extension-dependency"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(&dir.0)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CASTELLAN_PROFILE", &profile)
        .env("CASTELLAN_DATABASE_URL", &database)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the extension binary starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve kept running with a missing extension dependency");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "exit 1; stderr:\n{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line:\n{stderr}");
    assert!(!stderr.contains("panicked"), "no panic:\n{stderr}");
    assert!(
        stderr.contains("\"tickets\"") && stderr.contains("\"crm\"") && stderr.contains("not built into this binary"),
        "names the extension and its missing dependency: {stderr}"
    );
    assert!(!dir.0.join("data").exists(), "no database was created for a daemon that never started");
}
