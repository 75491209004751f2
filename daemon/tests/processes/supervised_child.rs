//! The child supervisor with the real `castellan supervise-child`: however a `SupervisedChild` ends
//! (dropped, stopped, stopped while ignoring SIGTERM), the program and what it started end with it,
//! and the program's exit code reaches the daemon unchanged.

use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{CASTELLAN, ScratchDir, ends_within, is_running, wait_for_pid_file};
use castellan_actors::spawn::{ChildCommand, STOP_GRACE, spawn_supervised_with};

fn shell(script: &str) -> ChildCommand {
    ChildCommand { program: "/bin/sh".into(), args: vec!["-c".into(), script.into()], env: Vec::new(), cwd: None }
}

/// A program that starts a grandchild and waits for it, the shape of `npx some-server`.
fn background_sleep(pid_file: &Path, before: &str) -> ChildCommand {
    shell(&format!("{before} sleep 300 & echo $! >'{}'; wait", pid_file.display()))
}

#[tokio::test]
async fn dropping_a_supervised_child_kills_the_program_and_its_children() {
    let scratch = ScratchDir::new("drop");
    let pid_file = scratch.path.join("sleep.pid");
    let child = spawn_supervised_with(Path::new(CASTELLAN), &background_sleep(&pid_file, "")).expect("spawn");
    let sleep = wait_for_pid_file(&pid_file).await;
    assert!(is_running(sleep), "the grandchild {sleep} runs before the drop");

    drop(child);

    assert!(ends_within(sleep, Duration::from_secs(2)).await, "the grandchild {sleep} still runs 2 s after the drop");
}

#[tokio::test]
async fn stopping_a_supervised_child_ends_the_program_with_sigterm_and_its_children() {
    let scratch = ScratchDir::new("stop");
    let pid_file = scratch.path.join("sleep.pid");
    let mut child = spawn_supervised_with(Path::new(CASTELLAN), &background_sleep(&pid_file, "")).expect("spawn");
    let sleep = wait_for_pid_file(&pid_file).await;
    assert!(is_running(sleep), "the grandchild {sleep} runs before the stop");

    let started = Instant::now();
    child.stop().await;

    assert!(started.elapsed() < Duration::from_secs(2), "stop took {:?}", started.elapsed());
    assert!(ends_within(sleep, Duration::from_secs(2)).await, "the grandchild {sleep} still runs 2 s after the stop");
    let status = child.child.wait().await.expect("the supervisor's status");
    assert_eq!(status.code(), Some(128 + 15), "the shell died of SIGTERM: {status:?}");
}

#[tokio::test]
async fn stopping_a_program_that_ignores_sigterm_kills_it_after_the_grace_period() {
    let scratch = ScratchDir::new("stop-ignoring-term");
    let pid_file = scratch.path.join("sleep.pid");
    let command = background_sleep(&pid_file, "trap '' TERM;");
    let mut child = spawn_supervised_with(Path::new(CASTELLAN), &command).expect("spawn");
    let sleep = wait_for_pid_file(&pid_file).await;

    let started = Instant::now();
    child.stop().await;

    let elapsed = started.elapsed();
    assert!(elapsed >= STOP_GRACE && elapsed < STOP_GRACE + Duration::from_secs(2), "stop took {elapsed:?}");
    assert!(ends_within(sleep, Duration::from_secs(2)).await, "the grandchild {sleep} still runs 2 s after the stop");
    let status = child.child.wait().await.expect("the supervisor's status");
    assert_eq!(status.code(), Some(128 + 9), "the shell died of SIGKILL: {status:?}");
}

/// The last resort of `stop()`: a supervisor that answers neither SIGTERM nor the kill-now signal is
/// itself killed. A shell script stands in for a stuck supervisor.
#[tokio::test]
async fn stopping_a_supervisor_that_answers_no_signal_kills_the_supervisor() {
    let scratch = ScratchDir::new("stuck-supervisor");
    let ready_file = scratch.path.join("supervisor.pid");
    let stuck = scratch
        .script("stuck-supervisor", &format!("trap '' TERM USR1\necho $$ >'{}'\nexec sleep 300", ready_file.display()));
    let mut child = spawn_supervised_with(&stuck, &shell("exit 0")).expect("spawn");
    let supervisor = wait_for_pid_file(&ready_file).await;
    assert_eq!(child.pid(), u32::try_from(supervisor).ok(), "the script is the supervisor");

    let started = Instant::now();
    child.stop().await;

    let elapsed = started.elapsed();
    assert!(elapsed < STOP_GRACE + Duration::from_secs(5), "stop took {elapsed:?}");
    assert!(!is_running(supervisor), "the stuck supervisor {supervisor} still runs after stop");
    let status = child.child.wait().await.expect("the supervisor's status");
    assert_eq!(status.signal(), Some(9), "the supervisor was killed with SIGKILL: {status:?}");
}

#[tokio::test]
async fn the_program_exit_code_passes_through_the_supervisor() {
    let cases =
        [("exit 0", 0), ("exit 2", 2), ("exit 127", 127), ("kill -TERM $$", 128 + 15), ("kill -KILL $$", 128 + 9)];
    for (script, expected) in cases {
        let mut child = spawn_supervised_with(Path::new(CASTELLAN), &shell(script)).expect("spawn");
        let status = child.child.wait().await.expect("the supervisor's status");
        assert_eq!(status.code(), Some(expected), "`{script}` gives {expected}: {status:?}");
    }
}

#[tokio::test]
async fn a_program_that_cannot_start_gives_127_and_says_why_on_stderr() {
    use tokio::io::AsyncReadExt as _;
    let missing = ChildCommand {
        program: "/nonexistent/castellan-test-program".into(),
        args: Vec::new(),
        env: Vec::new(),
        cwd: None,
    };
    let mut child = spawn_supervised_with(Path::new(CASTELLAN), &missing).expect("spawn the supervisor");
    let mut stderr = String::new();
    child.child.stderr.take().expect("stderr pipe").read_to_string(&mut stderr).await.expect("read stderr");
    let status = child.child.wait().await.expect("the supervisor's status");
    assert_eq!(status.code(), Some(127), "{status:?}");
    assert!(stderr.contains("cannot start /nonexistent/castellan-test-program"), "stderr: {stderr}");
}
