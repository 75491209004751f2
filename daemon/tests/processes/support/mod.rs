//! Helpers for the tests that start real processes: a scratch directory, pid files written by shell
//! scripts, and a look at /proc to tell whether a process still runs.
#![allow(clippy::expect_used, reason = "test helpers: a broken scratch directory should stop the test loudly")]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The real binary, whose `supervise-child` subcommand runs between the test and every program.
pub const CASTELLAN: &str = env!("CARGO_BIN_EXE_castellan");

/// A directory of its own for one test, removed when dropped.
pub struct ScratchDir {
    pub path: PathBuf,
}

impl ScratchDir {
    pub fn new(test_name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("castellan-{test_name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create the scratch directory");
        Self { path }
    }

    /// Writes an executable `#!/bin/sh` script and returns its path.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let path = self.path.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write the script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("make the script executable");
        path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Waits until a script has written a whole pid (digits and a newline) to `pid_file`.
pub async fn wait_for_pid_file(pid_file: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(pid_file).unwrap_or_default();
        if let Some(pid) = text.strip_suffix('\n').and_then(|digits| digits.trim().parse().ok()) {
            return pid;
        }
        assert!(Instant::now() < deadline, "no pid written to {} within 10 s", pid_file.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// True while the process exists and is not a zombie (a zombie has ended; only its parent has not
/// collected it yet, and for an orphan that parent is PID 1, which need not reap in a container).
pub fn is_running(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // The state follows the command name, which is in parentheses and may itself hold any character.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, None | Some('Z') | Some('X'))
}

/// Polls until the process has ended; false if it still runs after `limit`.
pub async fn ends_within(pid: i32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while is_running(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}
