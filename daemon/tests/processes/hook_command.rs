//! The command hook runner with real processes: shell scripts in a scratch directory, run under the
//! real `castellan supervise-child`.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{CASTELLAN, ScratchDir, ends_within, wait_for_pid_file};
use castellan::hooks::command::{
    CommandHook, CommandOutcome, HOOK_PATH, MAX_STDERR_BYTES, MAX_STDOUT_BYTES, run_with_supervisor,
};

const GENEROUS: Duration = Duration::from_secs(10);

async fn run_program(program: &Path, env: &[(String, String)], timeout: Duration, payload: &[u8]) -> CommandOutcome {
    let program = program.to_string_lossy();
    let hook = CommandHook { program: &program, args: &[], env, cwd: None, timeout };
    run_with_supervisor(Path::new(CASTELLAN), &hook, payload).await
}

fn exited(code: i32, stdout: &str, stderr: &str) -> CommandOutcome {
    CommandOutcome::Exited { code, stdout: stdout.into(), stderr: stderr.into() }
}

#[tokio::test]
async fn a_hook_that_exits_0_returns_its_stdout_and_received_the_payload() {
    let scratch = ScratchDir::new("hook-exit-0");
    let hook = scratch.script("hook", r#"payload=$(cat); printf '{"decision":"allow","seen":%s}\n' "$payload""#);

    let outcome = run_program(&hook, &[], GENEROUS, br#"{"tool":"read_file"}"#).await;

    assert_eq!(outcome, exited(0, "{\"decision\":\"allow\",\"seen\":{\"tool\":\"read_file\"}}\n", ""));
}

#[tokio::test]
async fn a_hook_that_exits_2_returns_its_stderr() {
    let scratch = ScratchDir::new("hook-exit-2");
    let hook = scratch.script("hook", "cat >/dev/null; echo 'rm -rf is not allowed' >&2; exit 2");

    let outcome = run_program(&hook, &[], GENEROUS, b"{}").await;

    assert_eq!(outcome, exited(2, "", "rm -rf is not allowed\n"));
}

#[tokio::test]
async fn a_hook_sees_only_path_and_its_declared_environment() {
    let own_environment: Vec<String> = std::env::vars().map(|(name, _)| name).collect();
    assert!(
        own_environment.iter().any(|name| name.starts_with("CARGO") || name == "HOME"),
        "the test process has variables a hook must not see: {own_environment:?}"
    );
    let declared = [("HOOK_MARKER".to_string(), "declared value".to_string())];

    let outcome = run_program(Path::new("/usr/bin/env"), &declared, GENEROUS, b"").await;

    let CommandOutcome::Exited { code: 0, stdout, .. } = &outcome else { panic!("env did not run: {outcome:?}") };
    let mut seen: Vec<&str> = std::str::from_utf8(stdout).expect("env prints text").lines().collect();
    seen.sort_unstable();
    let path = format!("PATH={HOOK_PATH}");
    assert_eq!(seen, ["HOOK_MARKER=declared value", path.as_str()], "the hook's whole environment");
}

#[tokio::test]
async fn a_hook_reads_a_one_mebibyte_payload_in_full() {
    let scratch = ScratchDir::new("hook-big-payload");
    let hook = scratch.script("hook", "wc -c | tr -d ' '");
    let payload = vec![b'x'; 1 << 20];

    let outcome = run_program(&hook, &[], GENEROUS, &payload).await;

    assert_eq!(outcome, exited(0, "1048576\n", ""));
}

#[tokio::test]
async fn a_hook_that_answers_without_reading_a_large_payload_neither_blocks_nor_fails() {
    let scratch = ScratchDir::new("hook-no-read");
    let hook = scratch.script("hook", "echo '{\"decision\":\"allow\"}'; exit 0");
    let payload = vec![b'x'; 1 << 20];

    let started = Instant::now();
    let outcome = run_program(&hook, &[], GENEROUS, &payload).await;

    assert_eq!(outcome, exited(0, "{\"decision\":\"allow\"}\n", ""));
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

/// Both pipes fill before the hook reads a byte: a runner that writes the payload first, or drains
/// one output only after the other, would wait on the hook while the hook waits on it.
#[tokio::test]
async fn a_hook_that_writes_a_lot_before_reading_does_not_deadlock() {
    let scratch = ScratchDir::new("hook-write-first");
    let hook =
        scratch.script("hook", "head -c 204800 /dev/zero >&2 || exit 3; head -c 204800 /dev/zero; wc -c | tr -d ' '");
    let payload = vec![b'x'; 1 << 20];

    let outcome = run_program(&hook, &[], Duration::from_secs(5), &payload).await;

    let CommandOutcome::Exited { code: 0, stdout, stderr } = &outcome else { panic!("{outcome:?}") };
    assert_eq!(stdout.len(), 204800 + "1048576\n".len(), "all of stdout");
    assert!(stdout.ends_with(b"1048576\n"), "the whole payload was read after the outputs");
    assert_eq!(stderr.len(), MAX_STDERR_BYTES, "stderr kept up to its limit");
}

#[tokio::test]
async fn a_hung_hook_times_out_and_leaves_no_process() {
    let scratch = ScratchDir::new("hook-hung");
    let pid_file = scratch.path.join("sleep.pid");
    let hook = scratch.script("hook", &format!("sleep 300 & echo $! >'{}'; wait", pid_file.display()));

    let started = Instant::now();
    let outcome = run_program(&hook, &[], Duration::from_millis(500), b"{}").await;
    let elapsed = started.elapsed();

    assert_eq!(outcome, CommandOutcome::TimedOut);
    assert!(elapsed >= Duration::from_millis(500) && elapsed < Duration::from_secs(2), "took {elapsed:?}");
    let sleep = wait_for_pid_file(&pid_file).await;
    assert!(ends_within(sleep, Duration::from_secs(1)).await, "the hook's sleep {sleep} outlived the timeout");
}

#[tokio::test]
async fn a_hook_that_floods_stdout_fails_at_once_and_is_killed() {
    let scratch = ScratchDir::new("hook-flood");
    let pid_file = scratch.path.join("hook.pid");
    let hook = scratch.script("hook", &format!("echo $$ >'{}'; exec yes", pid_file.display()));

    let started = Instant::now();
    let outcome = run_program(&hook, &[], GENEROUS, b"{}").await;

    let expected = format!("the hook wrote more than {MAX_STDOUT_BYTES} bytes to stdout");
    assert_eq!(outcome, CommandOutcome::Failed(expected));
    assert!(started.elapsed() < Duration::from_secs(5), "the flood was cut early: {:?}", started.elapsed());
    let flooding = wait_for_pid_file(&pid_file).await;
    assert!(ends_within(flooding, Duration::from_secs(1)).await, "the flooding hook {flooding} still runs");
}

#[tokio::test]
async fn a_hook_answer_of_exactly_the_limit_is_accepted() {
    let scratch = ScratchDir::new("hook-at-limit");
    let hook = scratch.script("hook", &format!("head -c {MAX_STDOUT_BYTES} /dev/zero"));

    let outcome = run_program(&hook, &[], GENEROUS, b"").await;

    let CommandOutcome::Exited { code: 0, stdout, .. } = &outcome else { panic!("{outcome:?}") };
    assert_eq!(stdout.len(), MAX_STDOUT_BYTES);
}

/// The rest of stderr is read and dropped, not refused: a hook that logs a lot must not die of SIGPIPE.
#[tokio::test]
async fn a_hook_keeps_the_first_64_kib_of_a_long_stderr_and_still_finishes() {
    let scratch = ScratchDir::new("hook-long-stderr");
    let hook = scratch.script("hook", "printf start >&2; head -c 204800 /dev/zero >&2 || exit 3; echo done; exit 2");

    let outcome = run_program(&hook, &[], GENEROUS, b"").await;

    let CommandOutcome::Exited { code: 2, stdout, stderr } = &outcome else { panic!("{outcome:?}") };
    assert_eq!(stdout, b"done\n");
    assert_eq!(stderr.len(), MAX_STDERR_BYTES);
    assert!(stderr.starts_with(b"start"), "the first bytes are kept");
}

#[tokio::test]
async fn a_hook_that_cannot_start_exits_127_and_stderr_says_why() {
    let outcome = run_program(Path::new("/nonexistent/policy/check.sh"), &[], GENEROUS, b"{}").await;

    let CommandOutcome::Exited { code: 127, stderr, .. } = &outcome else { panic!("{outcome:?}") };
    let stderr = String::from_utf8_lossy(stderr);
    assert!(stderr.contains("cannot start /nonexistent/policy/check.sh"), "stderr: {stderr}");
}

#[tokio::test]
async fn a_relative_program_and_its_arguments_are_taken_from_cwd() {
    let scratch = ScratchDir::new("hook-cwd");
    scratch.script("check.sh", r#"echo "$1 $2 $(pwd)""#);
    let args = ["first".to_string(), "second word".to_string()];
    let hook =
        CommandHook { program: "./check.sh", args: &args, env: &[], cwd: Some(&scratch.path), timeout: GENEROUS };

    let outcome = run_with_supervisor(Path::new(CASTELLAN), &hook, b"").await;

    let expected = format!("first second word {}\n", scratch.path.display());
    assert_eq!(outcome, exited(0, &expected, ""));
}
