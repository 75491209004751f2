//! Runs one command hook: the program under the child supervisor, the event on its stdin, and its
//! stdout, stderr and exit code back, all within the hook's timeout.
//!
//! What the answer means (exit 0 allows, exit 2 denies, ...) is the hook engine's business
//! (`hooks.rs`); this module only runs the process and collects what it said. Writing stdin, reading
//! stdout and stderr and waiting for the exit happen concurrently: a hook may answer before it has
//! read the whole event, and one that does must not deadlock against a payload larger than a pipe.

use std::path::Path;
use std::time::Duration;

use castellan_actors::spawn::{ChildCommand, SupervisedChild, spawn_supervised, spawn_supervised_with};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};

/// A hook's whole search path. With the hook's declared variables it is the hook's entire
/// environment: no HOME, nothing else of the daemon's.
pub const HOOK_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The most a hook may write to stdout; more is a failure rather than a cut answer.
pub const MAX_STDOUT_BYTES: usize = 1 << 20;

/// How much of a hook's stderr is kept; the rest is read and dropped, so the hook never blocks on it.
pub const MAX_STDERR_BYTES: usize = 64 << 10;

/// One command hook, resolved: secrets in `args` and `env` already rendered.
#[derive(Debug, Clone, Copy)]
pub struct CommandHook<'a> {
    /// The program: a path (a relative one is taken from `cwd`), or a name looked up in [`HOOK_PATH`].
    pub program: &'a str,
    pub args: &'a [String],
    /// The declared variables. `PATH` is [`HOOK_PATH`] unless this names it too.
    pub env: &'a [(String, String)],
    /// The working directory; the daemon's own when `None`.
    pub cwd: Option<&'a Path>,
    /// For everything: start, the exchange and the exit.
    pub timeout: Duration,
}

/// What running a hook came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandOutcome {
    /// The hook exited with `code`: its own exit code, 128 + n when signal n ended it, or one of the
    /// supervisor's own, with the reason on stderr: 127 when the program could not be started (no
    /// such file, not executable), 125 when the supervisor could not set itself up.
    Exited { code: i32, stdout: Vec<u8>, stderr: Vec<u8> },
    /// It did not finish within the timeout; its whole process tree has been killed.
    TimedOut,
    /// Castellan could not run it or take its answer (for one, stdout over [`MAX_STDOUT_BYTES`]); any
    /// process it left has been killed. The message names no argument or variable of the hook.
    Failed(String),
}

/// Runs the hook with `payload` on its stdin and waits for it (at most `hook.timeout`).
///
/// Call it on a runtime worker thread, never from `spawn_blocking`: the supervisor's parent-death
/// signal fires when the spawning thread exits.
#[tracing::instrument(skip_all, fields(hook = %hook.program))]
pub async fn run(hook: &CommandHook<'_>, payload: &[u8]) -> CommandOutcome {
    let started = spawn_supervised(&child_command(hook));
    run_started(started, hook.timeout, payload).await
}

/// [`run`] with the executable that runs the child supervisor named: tests pass the real `castellan`
/// binary, since their own executable is the test harness.
#[tracing::instrument(skip_all, fields(hook = %hook.program))]
pub async fn run_with_supervisor(
    supervisor_executable: &Path,
    hook: &CommandHook<'_>,
    payload: &[u8],
) -> CommandOutcome {
    let started = spawn_supervised_with(supervisor_executable, &child_command(hook));
    run_started(started, hook.timeout, payload).await
}

fn child_command(hook: &CommandHook<'_>) -> ChildCommand {
    // The declared variables come after PATH, so a hook that declares its own PATH gets it.
    let mut env = Vec::with_capacity(hook.env.len() + 1);
    env.push(("PATH".to_string(), HOOK_PATH.to_string()));
    env.extend(hook.env.iter().cloned());
    ChildCommand {
        program: hook.program.to_string(),
        args: hook.args.to_vec(),
        env,
        cwd: hook.cwd.map(Path::to_path_buf),
    }
}

async fn run_started(started: std::io::Result<SupervisedChild>, timeout: Duration, payload: &[u8]) -> CommandOutcome {
    let mut child = match started {
        Ok(child) => child,
        Err(error) => return CommandOutcome::Failed(format!("the hook's supervisor could not be started: {error}")),
    };
    match tokio::time::timeout(timeout, exchange(&mut child, payload)).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(problem)) => {
            child.kill().await;
            CommandOutcome::Failed(problem)
        }
        Err(_) => {
            child.kill().await;
            CommandOutcome::TimedOut
        }
    }
}

/// Feeds the payload, collects both outputs and waits for the exit, all at once.
async fn exchange(child: &mut SupervisedChild, payload: &[u8]) -> Result<CommandOutcome, String> {
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.child.stdin.take(), child.child.stdout.take(), child.child.stderr.take())
    else {
        return Err("the hook has no pipes".to_string());
    };
    let (_, stdout, stderr, status) =
        tokio::try_join!(write_payload(stdin, payload), read_stdout(stdout), read_stderr(stderr), async {
            child.child.wait().await.map_err(|error| format!("the hook could not be waited for: {error}"))
        },)?;
    match status.code() {
        Some(code) => Ok(CommandOutcome::Exited { code, stdout, stderr }),
        None => Err(format!("the hook's supervisor was killed ({status})")),
    }
}

/// Writes the payload and closes stdin, so the hook sees end of file. A hook that exits without
/// reading everything is not an error: its answer is what counts.
async fn write_payload(mut stdin: impl tokio::io::AsyncWrite + Unpin, payload: &[u8]) -> Result<(), String> {
    match stdin.write_all(payload).await {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("the event could not be written to the hook: {error}"))
        }
        _ => Ok(()),
    }
}

async fn read_stdout(stdout: impl AsyncRead + Unpin) -> Result<Vec<u8>, String> {
    let mut answer = Vec::new();
    let limit = MAX_STDOUT_BYTES as u64 + 1;
    stdout
        .take(limit)
        .read_to_end(&mut answer)
        .await
        .map_err(|error| format!("the hook's stdout could not be read: {error}"))?;
    if answer.len() > MAX_STDOUT_BYTES {
        return Err(format!("the hook wrote more than {MAX_STDOUT_BYTES} bytes to stdout"));
    }
    Ok(answer)
}

async fn read_stderr(mut stderr: impl AsyncRead + Unpin) -> Result<Vec<u8>, String> {
    let mut kept = Vec::new();
    (&mut stderr)
        .take(MAX_STDERR_BYTES as u64)
        .read_to_end(&mut kept)
        .await
        .map_err(|error| format!("the hook's stderr could not be read: {error}"))?;
    tokio::io::copy(&mut stderr, &mut tokio::io::sink())
        .await
        .map_err(|error| format!("the hook's stderr could not be read: {error}"))?;
    Ok(kept)
}
