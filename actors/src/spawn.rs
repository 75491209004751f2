//! The one way Castellan starts a child process, and the small supervisor that runs between the
//! daemon and every child.
//!
//! The daemon never starts an MCP server directly. It starts itself as `castellan supervise-child --
//! PROGRAM ARGS`, with a cleared environment plus only the declared variables, in a new process group,
//! and with a parent-death signal. The supervisor starts the real program in a process group of its
//! own, becomes a child subreaper, and kills that whole group when the program exits, when the daemon
//! drops its [`SupervisedChild`] or when the daemon goes away, even through `kill -9`. That is what
//! makes "no child outlives Castellan" hold for servers launched through wrappers such as `npx`, whose
//! own children a direct parent-death signal would never reach.

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// The hidden subcommand of the `castellan` binary that runs [`run_child_supervisor`].
pub const SUPERVISOR_SUBCOMMAND: &str = "supervise-child";

/// How long a child gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// Tells the supervisor to SIGKILL the program's whole process group now, reap the program and exit.
///
/// Sent by [`SupervisedChild`]'s drop and by [`SupervisedChild::kill`]. Should it arrive before the
/// supervisor has blocked it, its default action ends the supervisor before it has started anything.
pub const KILL_NOW_SIGNAL: Signal = Signal::SIGUSR1;

/// How long [`SupervisedChild::kill`] waits for the supervisor before killing it directly.
pub const KILL_NOW_WAIT: Duration = Duration::from_secs(1);

/// What to run, already resolved: no template, no secret reference left in it.
#[derive(Debug, Clone)]
pub struct ChildCommand {
    pub program: String,
    pub args: Vec<String>,
    /// The child's whole environment: nothing else is inherited.
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
}

/// A running supervised child.
///
/// Dropping it kills the program's whole process group at once, so no error path leaks one; `stop()`
/// is the orderly way out.
///
/// Every way out goes through the supervisor, because only the supervisor knows the program's group:
/// killing the supervisor itself (as `kill_on_drop` or a SIGKILL to its group would) leaves the
/// program and its children to PID 1, running. So the supervisor takes [`KILL_NOW_SIGNAL`] as "SIGKILL
/// the program's group, reap it, exit", and the daemon never kills the supervisor except as the last
/// resort of [`SupervisedChild::kill`]. A signal needs a pid that still names our process: we only ever
/// signal while tokio has not reaped the supervisor (`Child::id()` is `Some`), so a recycled pid is
/// never hit. Without `kill_on_drop`, tokio reaps the dropped supervisor in the background.
pub struct SupervisedChild {
    pub child: tokio::process::Child,
}

impl SupervisedChild {
    /// The supervisor's pid, until it has exited and been reaped.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Asks the supervisor to stop the program (SIGTERM, then SIGKILL after the grace period), and
    /// waits; kills it at once if the supervisor does not finish in time.
    pub async fn stop(&mut self) {
        self.signal_supervisor(Signal::SIGTERM);
        let deadline = STOP_GRACE + Duration::from_secs(2);
        if tokio::time::timeout(deadline, self.child.wait()).await.is_err() {
            self.kill().await;
        }
    }

    /// Kills the program's whole process group at once and waits for the supervisor to exit.
    ///
    /// A supervisor that does not exit within [`KILL_NOW_WAIT`] is killed itself. That is the one way
    /// the program could outlive it, and it takes a supervisor that cannot run (stopped, or waiting on
    /// a program stuck in uninterruptible sleep).
    pub async fn kill(&mut self) {
        self.signal_supervisor(KILL_NOW_SIGNAL);
        if tokio::time::timeout(KILL_NOW_WAIT, self.child.wait()).await.is_err() {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }

    fn signal_supervisor(&self, signal: Signal) {
        // `id()` is None once tokio has reaped the supervisor, after which its pid may name another process.
        if let Some(pid) = self.child.id().and_then(|raw| i32::try_from(raw).ok()) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), signal);
        }
    }
}

impl Drop for SupervisedChild {
    fn drop(&mut self) {
        self.signal_supervisor(KILL_NOW_SIGNAL);
    }
}

/// Starts `command` under the child supervisor, with piped stdin, stdout and stderr.
///
/// Call it from a thread that lives as long as the daemon (an arbiter thread): the parent-death
/// signal fires when the spawning thread exits.
pub fn spawn_supervised(command: &ChildCommand) -> std::io::Result<SupervisedChild> {
    spawn_supervised_with(&std::env::current_exe()?, command)
}

/// [`spawn_supervised`] with the executable that runs [`SUPERVISOR_SUBCOMMAND`] named: tests pass the
/// real `castellan` binary, since their own executable is the test harness.
pub fn spawn_supervised_with(
    supervisor_executable: &std::path::Path,
    command: &ChildCommand,
) -> std::io::Result<SupervisedChild> {
    let mut process = tokio::process::Command::new(supervisor_executable);
    process
        .arg(SUPERVISOR_SUBCOMMAND)
        .arg("--")
        .arg(&command.program)
        .args(&command.args)
        .env_clear()
        .envs(command.env.iter().map(|(name, value)| (name, value)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(cwd) = &command.cwd {
        process.current_dir(cwd);
    }
    set_parent_death_signal(&mut process);
    Ok(SupervisedChild { child: process.spawn()? })
}

#[allow(unsafe_code)]
fn set_parent_death_signal(process: &mut tokio::process::Command) {
    // SAFETY: the closure runs between fork and exec and only calls prctl(2), which is
    // async-signal-safe; it touches no allocator and no lock.
    unsafe {
        process.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)?;
            Ok(())
        });
    }
}

#[allow(unsafe_code)]
fn unblock_signals_in_child(command: &mut std::process::Command) {
    // SAFETY: the closure runs between fork and exec and only calls pthread_sigmask(3), which is
    // async-signal-safe; it touches no allocator and no lock.
    unsafe {
        command.pre_exec(|| SigSet::all().thread_unblock().map_err(std::io::Error::from));
    }
}

/// The supervisor's main loop; returns the exit code for the process.
///
/// Runs in its own process (`castellan supervise-child -- PROGRAM ARGS`), single-threaded, with every
/// signal it cares about blocked and taken synchronously with sigwait.
pub fn run_child_supervisor(program: OsString, args: Vec<OsString>) -> i32 {
    let mut signals = SigSet::empty();
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGCHLD, Signal::SIGALRM, KILL_NOW_SIGNAL] {
        signals.add(signal);
    }
    if signals.thread_block().is_err() {
        return 125;
    }
    // The daemon may have died between our fork and the prctl taking effect.
    if nix::unistd::getppid() == Pid::from_raw(1) {
        return 125;
    }
    let _ = nix::sys::prctl::set_child_subreaper(true);
    // A spawned program inherits the signal mask, and ours blocks the signals we wait for: without
    // unblocking them SIGTERM would never reach it and every stop would end in SIGKILL.
    let mut command = std::process::Command::new(&program);
    command.args(&args).process_group(0);
    unblock_signals_in_child(&mut command);
    let program_child = match command.spawn() {
        Ok(child) => child,
        Err(error) => {
            eprintln!("castellan supervise-child: cannot start {}: {error}", program.to_string_lossy());
            return 127;
        }
    };
    let program_pid = Pid::from_raw(program_child.id() as i32);
    let mut stopping = false;
    loop {
        let Ok(signal) = signals.wait() else { continue };
        match signal {
            Signal::SIGCHLD => {
                if let Some(code) = reap_children(program_pid) {
                    let _ = killpg(program_pid, Signal::SIGKILL);
                    return code;
                }
            }
            Signal::SIGALRM => {
                let _ = killpg(program_pid, Signal::SIGKILL);
            }
            KILL_NOW_SIGNAL => return kill_program_now(program_pid),
            _ if !stopping => {
                stopping = true;
                let _ = killpg(program_pid, Signal::SIGTERM);
                nix::unistd::alarm::set(STOP_GRACE.as_secs() as u32);
            }
            _ => {}
        }
    }
}

/// Kills the program's whole group and returns the program's code once it is reaped (128 + 9, unless
/// it exited on its own just before). A descendant that moved to a group of its own is not reached.
fn kill_program_now(program_pid: Pid) -> i32 {
    let _ = killpg(program_pid, Signal::SIGKILL);
    loop {
        match waitpid(program_pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, signal, _)) => return 128 + signal as i32,
            Err(nix::errno::Errno::EINTR) | Ok(_) => {}
            Err(_) => return 128 + Signal::SIGKILL as i32,
        }
    }
}

/// Reaps every exited child (we are a subreaper, so orphans land here too); returns the exit code
/// once the program itself has exited.
fn reap_children(program_pid: Pid) -> Option<i32> {
    let mut program_code = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == program_pid => program_code = Some(code),
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == program_pid => program_code = Some(128 + signal as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return program_code,
            Ok(_) => {}
        }
    }
}
