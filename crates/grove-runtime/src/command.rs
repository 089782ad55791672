//! One-shot sandboxed commands: build, deploy and post_deploy hooks.

use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use crate::RuntimeError;
use crate::output::merged_output;
use crate::procfs::{self, ProcStat, Signal};
use crate::sandbox::{SandboxSpec, bwrap_path};

/// How long we keep reading output after the command itself has exited: only a
/// sandbox torn down by SIGKILL can leave its pipe open that long.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(5);
/// How long we wait for a killed sandbox's PID namespace to disappear.
const TEARDOWN_WAIT: Duration = Duration::from_secs(10);

/// How a one-shot command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandOutcome {
    /// The command's exit status (a command killed by signal N inside the sandbox
    /// shows as 128+N, as in a shell).
    pub exit_code: Option<i32>,
    /// Set when the sandbox itself was killed by a signal.
    pub signal: Option<i32>,
    /// The command ran longer than `timeout` and was killed with everything it
    /// started.
    pub timed_out: bool,
    /// The command was stopped (`run_command_until`) and killed with everything it
    /// started.
    pub stopped: bool,
    /// The time limit that applied.
    pub timeout: Duration,
}

impl CommandOutcome {
    pub fn success(&self) -> bool {
        !self.timed_out && !self.stopped && self.exit_code == Some(0)
    }
}

impl fmt::Display for CommandOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.timed_out {
            write!(f, "timed out after {}", humanize(self.timeout))
        } else if self.stopped {
            f.write_str("stopped: the activity was cancelled")
        } else if let Some(signal) = self.signal {
            write!(f, "killed by signal {signal}")
        } else if let Some(code) = self.exit_code {
            write!(f, "exited with status {code}")
        } else {
            f.write_str("ended without an exit status")
        }
    }
}

/// `1h`, `90s`, `2m`, `250ms`: the largest unit that divides the duration.
pub fn humanize(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    if secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// Runs a one-shot command to completion, streaming each output line (stdout
/// and stderr merged, in order as far as possible) to `on_line`. On timeout the
/// whole sandbox (every process the command started) is killed.
pub async fn run_command(
    spec: &SandboxSpec,
    timeout: Duration,
    on_line: &mut (dyn FnMut(&str) + Send),
) -> Result<CommandOutcome, RuntimeError> {
    run_command_until(spec, timeout, std::future::pending(), on_line).await
}

/// [`run_command`], and the whole sandbox is killed as soon as `stop` completes (an
/// activity cancelled): the outcome says `stopped`.
pub async fn run_command_until(
    spec: &SandboxSpec,
    timeout: Duration,
    stop: impl std::future::Future<Output = ()>,
    on_line: &mut (dyn FnMut(&str) + Send),
) -> Result<CommandOutcome, RuntimeError> {
    let mut cmd = spec.command()?;
    let mut output = merged_output(&mut cmd).map_err(RuntimeError::Output)?;
    let mut child = cmd.spawn().map_err(spawn_error)?;
    // The command holds our copies of the pipe's write end: drop it so EOF comes
    // when the sandbox is gone.
    drop(cmd);
    tracing::debug!(pid = ?child.id(), command = %spec.command, "started sandboxed command");

    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut status = None;
    let mut timed_out = false;
    let mut stopped = false;
    tokio::pin!(stop);
    let mut eof = false;
    let drain = tokio::time::sleep(Duration::MAX);
    tokio::pin!(drain);
    let mut killed_inner = Vec::new();

    while status.is_none() || !eof {
        tokio::select! {
            line = output.next_line(), if !eof => match line {
                Ok(Some(line)) => on_line(&line),
                Ok(None) => eof = true,
                Err(e) => {
                    kill_sandbox(&mut child);
                    return Err(RuntimeError::Output(e));
                }
            },
            exit = child.wait(), if status.is_none() => {
                status = Some(exit.map_err(RuntimeError::Wait)?);
                drain.as_mut().reset(tokio::time::Instant::now() + DRAIN_AFTER_EXIT);
            },
            () = &mut stop, if !stopped && !timed_out && status.is_none() => {
                stopped = true;
                tracing::info!(pid = ?child.id(), "sandboxed command stopped; killing it");
                killed_inner = kill_sandbox(&mut child);
            },
            () = &mut deadline, if !timed_out && !stopped && status.is_none() => {
                timed_out = true;
                tracing::warn!(pid = ?child.id(), timeout = %humanize(timeout), "sandboxed command timed out; killing it");
                killed_inner = kill_sandbox(&mut child);
            },
            () = &mut drain, if status.is_some() && !eof => {
                tracing::warn!("sandbox exited but its output stayed open; killing what is left");
                killed_inner.extend(kill_sandbox(&mut child));
                break;
            },
        }
    }
    wait_gone(&killed_inner, TEARDOWN_WAIT).await;

    let status = status.ok_or_else(|| {
        RuntimeError::Wait(std::io::Error::other("the command's exit status was lost"))
    })?;
    Ok(CommandOutcome {
        exit_code: status.code(),
        signal: if timed_out || stopped {
            None
        } else {
            status.signal()
        },
        timed_out,
        stopped,
        timeout,
    })
}

/// Runs a command with `stdio` as its stdin, stdout and stderr (an SSH session's pipes
/// or terminal) until it exits, or until `stop` completes (the client went away): then
/// the whole sandbox is killed. No time limit: a session lasts as long as its user.
pub async fn run_attached(
    spec: &SandboxSpec,
    stdio: [std::os::fd::OwnedFd; 3],
    stop: impl std::future::Future<Output = ()>,
) -> Result<CommandOutcome, RuntimeError> {
    let mut cmd = spec.command()?;
    let [stdin, stdout, stderr] = stdio;
    cmd.stdin(stdin).stdout(stdout).stderr(stderr);
    let mut child = cmd.spawn().map_err(spawn_error)?;
    // Our copies of the session's descriptors go with the command.
    drop(cmd);
    tokio::pin!(stop);
    let status = tokio::select! {
        exit = child.wait() => exit.map_err(RuntimeError::Wait)?,
        () = &mut stop => {
            tracing::debug!(pid = ?child.id(), "session ended by its client; killing its sandbox");
            let killed = kill_sandbox(&mut child);
            wait_gone(&killed, TEARDOWN_WAIT).await;
            child.wait().await.map_err(RuntimeError::Wait)?
        }
    };
    Ok(CommandOutcome {
        exit_code: status.code(),
        signal: status.signal(),
        timed_out: false,
        stopped: false,
        timeout: Duration::ZERO,
    })
}

pub(crate) fn spawn_error(source: std::io::Error) -> RuntimeError {
    match bwrap_path() {
        Ok(bwrap) if source.kind() != std::io::ErrorKind::NotFound => RuntimeError::Spawn {
            bwrap: bwrap.to_owned(),
            source,
        },
        _ => RuntimeError::BwrapNotFound,
    }
}

/// The PID-namespace inits of a sandbox: the direct children of the outer
/// bwrap. It is our un-reaped child, so its pid is still its own, and its
/// children can only be reaped by it.
pub(crate) fn sandbox_inits(child: &tokio::process::Child) -> Vec<ProcStat> {
    let Some(outer) = child.id() else {
        return Vec::new();
    };
    procfs::all_processes()
        .into_iter()
        .filter(|p| p.ppid == outer)
        .collect()
}

/// SIGKILLs the sandbox: first its PID-namespace init (the inner bwrap, which
/// takes every process of the namespace down with it), then the outer bwrap.
/// Returns the inits it killed, to wait for.
pub(crate) fn kill_sandbox(child: &mut tokio::process::Child) -> Vec<ProcStat> {
    let inits = sandbox_inits(child);
    for init in &inits {
        if let Err(e) = procfs::send_signal(init.pid, Signal::Kill) {
            tracing::warn!(pid = init.pid, error = %e, "could not kill sandbox init");
        }
    }
    if let Err(e) = child.start_kill() {
        tracing::debug!(pid = ?child.id(), error = %e, "could not kill bwrap (already exited?)");
    }
    inits
}

/// Waits until none of `processes` is alive any more (zombies and reused pids
/// count as gone). The outer bwrap may report its command's exit while the
/// namespace's init is still finishing; one that outlives `limit` is killed.
pub(crate) async fn wait_gone(processes: &[ProcStat], limit: Duration) {
    let start = tokio::time::Instant::now();
    let mut killed = false;
    loop {
        let alive: Vec<&ProcStat> = processes
            .iter()
            .filter(|p| procfs::is_still_alive(p))
            .collect();
        if alive.is_empty() {
            return;
        }
        if start.elapsed() > limit {
            if killed {
                let pids: Vec<u32> = alive.iter().map(|p| p.pid).collect();
                tracing::warn!(?pids, "sandbox processes still alive after being killed");
                return;
            }
            for p in alive {
                let _ = procfs::send_signal(p.pid, Signal::Kill);
            }
            killed = true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_read_well() {
        let outcome = |exit_code, signal, timed_out, secs| CommandOutcome {
            exit_code,
            signal,
            timed_out,
            stopped: false,
            timeout: Duration::from_secs(secs),
        };
        let o = outcome(Some(3), None, false, 3600);
        assert_eq!(o.to_string(), "exited with status 3");
        assert!(!o.success());
        assert!(outcome(Some(0), None, false, 1).success());
        assert_eq!(
            outcome(None, Some(9), false, 1).to_string(),
            "killed by signal 9"
        );
        let o = outcome(None, Some(9), true, 3600);
        assert_eq!(o.to_string(), "timed out after 1h");
        assert!(!o.success());
    }

    #[test]
    fn durations_are_humanized() {
        assert_eq!(humanize(Duration::from_secs(3600)), "1h");
        assert_eq!(humanize(Duration::from_secs(120)), "2m");
        assert_eq!(humanize(Duration::from_secs(90)), "90s");
        assert_eq!(humanize(Duration::from_millis(1500)), "1500ms");
        assert_eq!(humanize(Duration::ZERO), "0s");
    }
}
