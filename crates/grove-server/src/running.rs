//! What an environment runs right now, in this process: app instances, service
//! processes, cron schedulers. Plain types, held by the platform's state; the local
//! backend creates and stops what they describe.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use grove_runtime::{Instance, SandboxSpec};
use grove_services::{RunningService, ServiceSpec};
use tokio_util::sync::CancellationToken;

/// What an active environment runs right now.
pub struct RunningEnvironment {
    pub commit: String,
    pub routes: grove_config::RouteTable,
    pub apps: Vec<RunningApp>,
    /// How a command runs in each app's runtime sandbox (SSH sessions), by app name.
    pub shells: BTreeMap<String, AppCommands>,
}

/// How a command runs in an app's runtime sandbox, as its hooks and crons do: its
/// build read-only, its mounts, variables, network and cgroup, `.environment` sourced.
#[derive(Clone)]
pub struct AppCommands {
    /// The sandbox, with an empty command.
    pub(crate) sandbox: SandboxSpec,
    /// The build has a `.environment` file.
    pub(crate) environment_file: bool,
}

impl AppCommands {
    /// The sandbox running `command`.
    pub fn spec(&self, command: &str) -> SandboxSpec {
        let mut spec = self.sandbox.clone();
        spec.command = self.with_environment(command);
        spec
    }

    /// Platform.sh sources the app's `.environment` with bash when its container starts,
    /// so what it exports is in the environment of every start command, hook and cron
    /// (never of the build). The command itself still runs with dash, as there.
    fn with_environment(&self, command: &str) -> String {
        if !self.environment_file || command.is_empty() {
            return command.to_string();
        }
        format!(
            "exec bash -c '. {}/.environment; exec dash -c \"$1\"' grove-environment {}",
            grove_runtime::sandbox::APP_DIR,
            crate::deploy::shell_quote(command)
        )
    }
}

pub struct RunningApp {
    /// The app's name; `<app>--<worker>` for a worker.
    pub name: String,
    /// Said when another runtime version runs than the one asked for.
    pub runtime_warning: Option<String>,
    /// Where it accepts requests (`$PORT` or `$SOCKET`); `None` for a worker, which
    /// gets no requests.
    pub upstream: Option<grove_router::Upstream>,
    pub instance: Arc<Instance>,
}

/// One running service of an environment.
pub struct ServiceEntry {
    pub running: Arc<RunningService>,
    pub address: Ipv4Addr,
    /// `mariadb:10.11`, as services.yaml asked.
    pub requested: String,
    /// What decides whether a redeploy must restart it: type and configuration.
    pub(crate) signature: String,
    /// How it was started, to start it again after a pause.
    pub(crate) spec: ServiceSpec,
}

/// Addresses in use by running services.
#[derive(Default)]
pub struct Addresses {
    used: Mutex<HashSet<Ipv4Addr>>,
}

impl Addresses {
    /// A free address in 127.64.0.0/10, starting from a stable guess for `key` so that
    /// a service tends to keep its address across restarts.
    pub(crate) fn allocate(&self, key: &str) -> Option<Ipv4Addr> {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        let span: u32 = 1 << 22;
        let start = key.bytes().fold(2166136261u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(16777619)
        }) % span;
        for offset in 0..span {
            let n = (start + offset) % span;
            // Skip .0 and .255 host parts: some tools treat them specially.
            if n & 0xff == 0 || n & 0xff == 0xff {
                continue;
            }
            let address = Ipv4Addr::from((127u32 << 24) | (64 << 16) | n);
            if used.insert(address) {
                return Some(address);
            }
        }
        None
    }

    pub(crate) fn release(&self, address: Ipv4Addr) {
        self.used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&address);
    }
}

pub type EnvironmentServices = BTreeMap<String, ServiceEntry>;

/// Health of one service, as `environment:info` shows it.
#[derive(Debug, Clone, Default)]
pub struct ServiceHealth {
    pub kind: String,
    /// What runs it when that is not the version asked for (see
    /// [`crate::services::substitute`]).
    pub runs_on: Option<String>,
    pub address: String,
    pub healthy: bool,
    pub restarts: u32,
    pub failures: u32,
    pub last_error: Option<String>,
}

/// The schedulers of one environment; cancelled when it is redeployed or stopped.
pub struct EnvironmentCrons {
    pub(crate) cancel: CancellationToken,
    /// Cancels the runs in progress (not the schedules): another operation wants the
    /// environment. Replaced by a fresh token each time it is used.
    pub(crate) interrupt: Arc<Mutex<CancellationToken>>,
    pub(crate) tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl EnvironmentCrons {
    /// Asks the runs in progress to stop within their shutdown timeout; the schedules
    /// go on.
    pub fn interrupt(&self) {
        let mut token = self.interrupt.lock().unwrap_or_else(|e| e.into_inner());
        token.cancel();
        *token = CancellationToken::new();
    }

    /// Stops scheduling; running crons get their `shutdown_timeout`.
    pub async fn stop(self) {
        self.cancel.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
