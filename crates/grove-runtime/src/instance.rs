//! Supervised long-running sandboxed processes (an app's `web.commands.start`).
//!
//! One tokio task per [`Instance`] owns the current `bwrap` child, restarts it
//! with exponential backoff whenever it exits, and pumps its output into a
//! size-capped log file. Stopping is a request to that task, which signals the
//! processes inside the sandbox by PID, waits, then kills the sandbox.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::process::Child;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::command::{humanize, kill_sandbox, sandbox_inits, spawn_error, wait_gone};
use crate::output::{LineReader, merged_output};
use crate::procfs::{self, Signal};
use crate::{CommandOutcome, Network, RuntimeError, SandboxSpec};

/// How many lines of output a readiness failure shows.
const TAIL_LINES: usize = 20;
/// How long we wait for the output of an exited process to be fully read.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(5);
const TEARDOWN_WAIT: Duration = Duration::from_secs(10);

/// Tunables of the supervisor; [`Default`] is what the platform uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisorOptions {
    /// First delay before a restart, doubled after each quick exit.
    pub backoff_initial: Duration,
    /// Upper bound of the restart delay.
    pub backoff_max: Duration,
    /// A process that stayed up this long gets the initial delay again.
    pub stable_after: Duration,
    /// The log file is moved to `<log_file>.1` when it would grow past this.
    pub log_max_bytes: u64,
}

impl Default for SupervisorOptions {
    fn default() -> Self {
        SupervisorOptions {
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            stable_after: Duration::from_secs(10),
            log_max_bytes: 10 * 1024 * 1024,
        }
    }
}

/// Where an instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    /// A new incarnation is being started.
    Starting,
    /// The process is running (not necessarily accepting connections yet).
    Running,
    /// The process exited; it is restarted at `until`.
    BackingOff { until: Instant },
    /// A stop was requested and the processes are being terminated.
    Stopping,
    /// Nothing runs and nothing will be restarted.
    Stopped,
}

#[derive(Debug, Clone)]
struct Status {
    state: InstanceState,
    /// Outer bwrap pid of the current incarnation.
    pid: Option<u32>,
    /// Number of incarnations started so far (the first one is 1).
    generation: u64,
    /// The last incarnation whose exit was observed (0: none).
    exited_generation: u64,
    restarts: u32,
    last_exit: Option<String>,
}

struct Shared {
    status: watch::Sender<Status>,
    /// `Some(grace)` once a stop was requested.
    stop: watch::Sender<Option<Duration>>,
    log: Mutex<LogSink>,
}

/// A long-running, supervised sandboxed process.
pub struct Instance {
    shared: Arc<Shared>,
    log_file: PathBuf,
    /// The sandbox's network: readiness is probed from inside it.
    network: Network,
}

impl Instance {
    /// Starts `spec` and supervises it, appending its output to `log_file`.
    ///
    /// Must be called from an async task of a tokio runtime, not from
    /// `spawn_blocking`: bwrap's `--die-with-parent` uses `PR_SET_PDEATHSIG`,
    /// which fires when the spawning *thread* exits.
    pub fn spawn(spec: SandboxSpec, log_file: PathBuf) -> Result<Instance, RuntimeError> {
        Instance::spawn_with_options(spec, log_file, SupervisorOptions::default())
    }

    pub fn spawn_with_options(
        spec: SandboxSpec,
        log_file: PathBuf,
        options: SupervisorOptions,
    ) -> Result<Instance, RuntimeError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| RuntimeError::NoTokioRuntime)?;
        let log = LogSink::open(&log_file, options.log_max_bytes)?;
        let shared = Arc::new(Shared {
            status: watch::Sender::new(Status {
                state: InstanceState::Starting,
                pid: None,
                generation: 0,
                exited_generation: 0,
                restarts: 0,
                last_exit: None,
            }),
            stop: watch::Sender::new(None),
            log: Mutex::new(log),
        });
        let first = start_incarnation(&spec, &shared)?;
        let network = spec.network.clone();
        runtime.spawn(supervise(spec, Arc::clone(&shared), first, options));
        Ok(Instance {
            shared,
            log_file,
            network,
        })
    }

    /// Waits until something accepts connections on `addr` (TCP addresses as
    /// seen from the sandbox's network). Fails early,
    /// with the last lines of the log, if the process exits first (when it is
    /// backing off, the next incarnation is the one waited for), and on timeout.
    pub async fn wait_ready(
        &self,
        addr: impl Into<Listen>,
        timeout: Duration,
    ) -> Result<(), RuntimeError> {
        let addr = addr.into();
        let mut status = self.shared.status.subscribe();
        let target = {
            let s = status.borrow_and_update();
            match s.state {
                InstanceState::Running => s.generation,
                // The incarnation being (re)started, or the next one.
                InstanceState::Starting | InstanceState::BackingOff { .. } => s.generation + 1,
                InstanceState::Stopping | InstanceState::Stopped => {
                    return Err(self.not_ready(format!(
                        "was stopped before accepting connections on {addr}"
                    )));
                }
            }
        };
        let deadline = far_from_now(timeout);
        loop {
            {
                let s = status.borrow_and_update();
                if matches!(s.state, InstanceState::Stopping | InstanceState::Stopped) {
                    return Err(self.not_ready(format!(
                        "was stopped before accepting connections on {addr}"
                    )));
                }
                if s.exited_generation >= target {
                    let how = s.last_exit.clone().unwrap_or_else(|| "exited".to_owned());
                    return Err(
                        self.not_ready(format!("{how} before accepting connections on {addr}"))
                    );
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.not_ready(format!(
                    "did not accept connections on {addr} within {}",
                    humanize(timeout)
                )));
            }
            let attempt = left.min(Duration::from_secs(1));
            if tokio::time::timeout(attempt, addr.connect(&self.network))
                .await
                .is_ok_and(|connected| connected.is_ok())
            {
                return Ok(());
            }
            let pause = deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100));
            tokio::select! {
                _ = status.changed() => {},
                () = tokio::time::sleep(pause) => {},
            }
        }
    }

    fn not_ready(&self, what: String) -> RuntimeError {
        let tail = self
            .shared
            .log
            .lock()
            .map(|log| log.tail.iter().cloned().collect())
            .unwrap_or_default();
        RuntimeError::NotReady {
            message: format!("the process {what} (log: {})", self.log_file.display()),
            log_tail: tail,
        }
    }

    /// Graceful stop: no more restarts; SIGTERM to the processes inside the
    /// sandbox, up to `grace` for them to exit, then SIGKILL of the sandbox.
    /// Returns once nothing is left. Idempotent; concurrent calls all wait.
    pub async fn stop(&self, grace: Duration) {
        self.shared.stop.send_if_modified(|stop| {
            if stop.is_none() {
                *stop = Some(grace);
                true
            } else {
                false
            }
        });
        let mut status = self.shared.status.subscribe();
        // The supervisor always ends in Stopped (a guard sets it even if its task
        // is dropped), and the sender lives in `self`, so this can't hang on a
        // vanished task.
        let _ = status.wait_for(|s| s.state == InstanceState::Stopped).await;
    }

    /// Outer bwrap pid of the current incarnation.
    pub fn pid(&self) -> Option<u32> {
        self.shared.status.borrow().pid
    }

    /// How many times the process was started again after exiting.
    pub fn restarts(&self) -> u32 {
        self.shared.status.borrow().restarts
    }

    pub fn state(&self) -> InstanceState {
        self.shared.status.borrow().state
    }

    pub fn log_file(&self) -> &Path {
        &self.log_file
    }

    /// The last lines of output (and of Grove's notes about restarts).
    pub fn log_tail(&self) -> Vec<String> {
        self.shared
            .log
            .lock()
            .map(|log| log.tail.iter().cloned().collect())
            .unwrap_or_default()
    }
}

impl Drop for Instance {
    /// A dropped handle must not leave an unsupervisable process behind: ask the
    /// supervisor to kill it (no grace: nobody waits for it).
    fn drop(&mut self) {
        self.shared.stop.send_if_modified(|stop| {
            if stop.is_none() {
                *stop = Some(Duration::ZERO);
                true
            } else {
                false
            }
        });
    }
}

struct Incarnation {
    child: Child,
    pump: JoinHandle<()>,
}

fn start_incarnation(
    spec: &SandboxSpec,
    shared: &Arc<Shared>,
) -> Result<Incarnation, RuntimeError> {
    shared
        .status
        .send_modify(|s| s.state = InstanceState::Starting);
    let mut cmd = spec.command()?;
    let output = merged_output(&mut cmd).map_err(RuntimeError::Output)?;
    let child = cmd.spawn().map_err(spawn_error)?;
    drop(cmd);
    let pid = child.id();
    shared.status.send_modify(|s| {
        s.state = InstanceState::Running;
        s.pid = pid;
        s.generation += 1;
    });
    tracing::debug!(?pid, command = %spec.command, "started supervised process");
    let pump = tokio::spawn(pump_output(output, Arc::clone(shared)));
    Ok(Incarnation { child, pump })
}

async fn pump_output(mut output: LineReader, shared: Arc<Shared>) {
    loop {
        match output.next_line().await {
            Ok(Some(line)) => {
                if let Ok(mut log) = shared.log.lock() {
                    log.write_line(&line);
                }
            }
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the output of a supervised process");
                return;
            }
        }
    }
}

/// Marks the instance stopped however the supervisor task ends (also when the
/// runtime drops it); the child itself is killed by `kill_on_drop`.
struct StoppedOnDrop(Arc<Shared>);

impl Drop for StoppedOnDrop {
    fn drop(&mut self) {
        self.0.status.send_modify(|s| {
            s.state = InstanceState::Stopped;
            s.pid = None;
        });
    }
}

async fn supervise(
    spec: SandboxSpec,
    shared: Arc<Shared>,
    first: Incarnation,
    options: SupervisorOptions,
) {
    let _stopped = StoppedOnDrop(Arc::clone(&shared));
    let mut stop = shared.stop.subscribe();
    let mut current = Some(first);
    let mut backoff = options.backoff_initial;
    loop {
        if let Some(mut incarnation) = current.take() {
            let started = Instant::now();
            let exit = tokio::select! {
                exit = incarnation.child.wait() => exit,
                grace = stop_requested(&mut stop) => {
                    terminate(incarnation, grace, &shared).await;
                    return;
                }
            };
            // Read what it printed before saying it exited, so the log reads in order.
            let _ = tokio::time::timeout(DRAIN_AFTER_EXIT, &mut incarnation.pump).await;
            incarnation.pump.abort();
            let how = match exit {
                Ok(status) => {
                    use std::os::unix::process::ExitStatusExt;
                    CommandOutcome {
                        exit_code: status.code(),
                        signal: status.signal(),
                        timed_out: false,
                        stopped: false,
                        timeout: Duration::ZERO,
                    }
                    .to_string()
                }
                Err(e) => format!("could not be waited for ({e})"),
            };
            if started.elapsed() >= options.stable_after {
                backoff = options.backoff_initial;
            }
            note(
                &shared,
                &format!("process {how}; restarting in {}", humanize(backoff)),
            );
            tracing::info!(how = %how, backoff = %humanize(backoff), "supervised process exited");
            shared.status.send_modify(|s| {
                s.exited_generation = s.generation;
                s.last_exit = Some(format!("exited ({how})"));
            });
        }

        let until = far_from_now(backoff);
        shared.status.send_modify(|s| {
            s.state = InstanceState::BackingOff { until };
            s.pid = None;
        });
        tokio::select! {
            () = tokio::time::sleep_until(until) => {},
            _ = stop_requested(&mut stop) => return,
        }
        backoff = backoff.saturating_mul(2).min(options.backoff_max);

        match start_incarnation(&spec, &shared) {
            Ok(incarnation) => {
                shared.status.send_modify(|s| s.restarts += 1);
                current = Some(incarnation);
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not restart supervised process");
                note(&shared, &format!("could not restart: {e}"));
                shared.status.send_modify(|s| {
                    s.generation += 1;
                    s.exited_generation = s.generation;
                    s.last_exit = Some(format!("could not be started ({e})"));
                });
            }
        }
    }
}

/// `now + d`, for any `d` a caller may pass (`Duration::MAX` means "a year").
fn far_from_now(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

/// Resolves with the grace period once a stop was requested.
async fn stop_requested(stop: &mut watch::Receiver<Option<Duration>>) -> Duration {
    match stop.wait_for(Option::is_some).await {
        Ok(grace) => grace.unwrap_or(Duration::ZERO),
        // The sender lives in `Shared`, which we hold: unreachable, but stopping
        // is the safe answer.
        Err(_) => Duration::ZERO,
    }
}

/// SIGTERM to every process inside the sandbox, up to `grace` for the sandbox to
/// end by itself, then SIGKILL; returns when the sandbox is gone.
async fn terminate(mut incarnation: Incarnation, grace: Duration, shared: &Shared) {
    shared
        .status
        .send_modify(|s| s.state = InstanceState::Stopping);
    let child = &mut incarnation.child;
    // The outer bwrap's child is the namespace's init (another bwrap, which
    // ignores SIGTERM from outside); everything below it is the app.
    let inits = sandbox_inits(child);
    if let Some(outer) = child.id() {
        let inside = procfs::descendants(outer);
        if !grace.is_zero() {
            for pid in inside
                .iter()
                .filter(|pid| !inits.iter().any(|init| init.pid == **pid))
            {
                if let Err(e) = procfs::send_signal(*pid, Signal::Term) {
                    tracing::debug!(pid, error = %e, "could not send SIGTERM");
                }
            }
        }
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            tracing::info!(pid = outer, grace = %humanize(grace), "process did not stop in time; killing it");
            kill_sandbox(child);
        }
    }
    let _ = child.wait().await;
    wait_gone(&inits, TEARDOWN_WAIT).await;
    let _ = tokio::time::timeout(DRAIN_AFTER_EXIT, &mut incarnation.pump).await;
    incarnation.pump.abort();
    note(shared, "process stopped");
}

fn note(shared: &Shared, message: &str) {
    if let Ok(mut log) = shared.log.lock() {
        log.write_line(&format!("[grove] {message}"));
    }
}

/// The instance's log file, moved aside to `<file>.1` when it grows past its cap,
/// plus the last lines in memory for error messages.
struct LogSink {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    max_bytes: u64,
    tail: VecDeque<String>,
    warned: bool,
}

impl LogSink {
    fn open(path: &Path, max_bytes: u64) -> Result<LogSink, RuntimeError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| RuntimeError::Io {
                what: "could not create log directory",
                path: parent.to_owned(),
                source,
            })?;
        }
        let file = open_append(path).map_err(|source| RuntimeError::Io {
            what: "could not open log file",
            path: path.to_owned(),
            source,
        })?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(LogSink {
            path: path.to_owned(),
            file: Some(file),
            size,
            max_bytes,
            tail: VecDeque::with_capacity(TAIL_LINES),
            warned: false,
        })
    }

    fn write_line(&mut self, line: &str) {
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line.to_owned());

        let len = line.len() as u64 + 1;
        if self.size > 0 && self.size + len > self.max_bytes {
            self.rotate();
        }
        let Some(file) = self.file.as_mut() else {
            return;
        };
        let written = file
            .write_all(line.as_bytes())
            .and_then(|()| file.write_all(b"\n"));
        match written {
            Ok(()) => self.size += len,
            Err(e) => self.warn_once(&e),
        }
    }

    fn rotate(&mut self) {
        let mut rotated = self.path.clone().into_os_string();
        rotated.push(".1");
        self.file = None;
        if let Err(e) = std::fs::rename(&self.path, &rotated) {
            self.warn_once(&e);
        }
        match open_append(&self.path) {
            Ok(file) => {
                self.file = Some(file);
                self.size = 0;
            }
            Err(e) => self.warn_once(&e),
        }
    }

    /// A full disk must not stop the app; say so once.
    fn warn_once(&mut self, error: &std::io::Error) {
        if !self.warned {
            self.warned = true;
            tracing::warn!(path = %self.path.display(), error = %error, "could not write the app log");
        }
    }
}

/// App logs hold whatever the app prints (secrets included): readable by the owner only.
fn open_append(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// Where an instance accepts connections: `$PORT` on TCP, or a unix socket (`$SOCKET`)
/// by its path on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    Unix(std::path::PathBuf),
}

impl From<SocketAddr> for Listen {
    fn from(addr: SocketAddr) -> Listen {
        Listen::Tcp(addr)
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(addr) => write!(f, "{addr}"),
            Listen::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl Listen {
    async fn connect(&self, network: &Network) -> std::io::Result<()> {
        match self {
            Listen::Tcp(addr) => network.connect_tcp(*addr).await.map(drop),
            Listen::Unix(path) => tokio::net::UnixStream::connect(path).await.map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_rotates_at_its_cap_and_keeps_a_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("logs/app.log");
        let mut log = LogSink::open(&path, 100).expect("open");
        for i in 0..30 {
            log.write_line(&format!("line {i:02} ......"));
        }
        let current = std::fs::read_to_string(&path).expect("read log");
        let previous = std::fs::read_to_string(dir.path().join("logs/app.log.1")).expect("read .1");
        assert!(current.len() <= 100, "{current}");
        assert!(previous.len() <= 100, "{previous}");
        assert!(current.ends_with("line 29 ......\n"), "{current}");
        assert_eq!(log.tail.len(), TAIL_LINES);
        assert_eq!(log.tail.front().map(String::as_str), Some("line 10 ......"));
    }
}
