//! The platform's state: settings, the store, what runs, the owners of environments,
//! and how an operation becomes an activity. The operations themselves live in
//! `platform` (pushes, deactivation, restart recovery), `tree` and `deploy`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use grove_git::Repository;
use grove_runtime::RuntimeCatalog;
use grove_services::ServiceCatalog;
use grove_store::{EnvironmentRow, LogWriter, ProjectRow, Store};
use tokio::sync::mpsc;

use crate::activity::{self, ActivityKind, ActivityLog};
use crate::error::{Error, Result};
use crate::names;
pub use crate::owners::EnvKey;
use crate::owners::Owners;
use crate::running::{
    Addresses, EnvironmentCrons, EnvironmentServices, RunningEnvironment, ServiceEntry,
    ServiceHealth,
};

/// How the server was started.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub api_listen: SocketAddr,
    pub http_listen: SocketAddr,
    /// The SSH gateway's address (`None`: no gateway).
    pub ssh_listen: Option<SocketAddr>,
    pub domain: String,
    /// How long a new app instance may take to accept connections.
    pub app_start_timeout: Duration,
    /// How long a build hook may run (Platform.sh: one hour).
    pub build_timeout: Duration,
    /// The grove binary, run by git as the pre-receive hook.
    pub grove_exe: PathBuf,
    /// How environments' data is stored (`auto`, `plain`, `btrfs`, `btrfs-loop:SIZE`).
    pub storage: grove_volumes::StorageSpec,
    /// Where runtime images live (`DATA_DIR/images` unless the operator shares one
    /// directory between servers).
    pub images_dir: Option<PathBuf>,
    /// The Debian mirror runtime images are built from.
    pub image_mirror: String,
    /// cgroup limits per environment and build (memory, CPU, processes);
    /// `false` runs everything unlimited (`--no-resource-limits`).
    pub resource_limits: bool,
    /// The backup store: a restic repository (a directory, or `sftp:…`, `s3:…`, `rest:…`).
    pub backup_store: String,
    /// How often production environments are backed up automatically (zero: never).
    pub automatic_backups_every: Duration,
}

impl Settings {
    pub fn repository(&self, project: &str) -> Repository {
        Repository::at(self.data_dir.join("git").join(format!("{project}.git")))
    }
    pub fn images_dir(&self) -> PathBuf {
        self.images_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("images"))
    }
    pub fn builds_dir(&self) -> PathBuf {
        self.data_dir.join("builds")
    }
    pub fn cache_dir(&self, project: &str, app: &str) -> PathBuf {
        self.data_dir.join("cache").join(project).join(app)
    }
    pub fn log_file(&self, project: &str, machine_name: &str, app: &str) -> PathBuf {
        self.log_dir(project, machine_name)
            .join(format!("{app}.log"))
    }
    /// The router's access log of an environment (`environment:logs access`), apart
    /// from the apps' logs so that no app name can stand for it.
    pub fn access_log_file(&self, project: &str, machine_name: &str) -> PathBuf {
        self.log_dir(project, machine_name)
            .join("router")
            .join("access.log")
    }
    fn log_dir(&self, project: &str, machine_name: &str) -> PathBuf {
        self.data_dir.join("logs").join(project).join(machine_name)
    }
    /// An environment's persistent data: app mounts and service data.
    pub fn volume_dir(&self, project: &str, machine_name: &str) -> PathBuf {
        self.data_dir
            .join("volumes")
            .join(project)
            .join(machine_name)
    }
    /// An environment's scratch space (`tmp` mounts): may be wiped.
    pub fn scratch_dir(&self, project: &str, machine_name: &str) -> PathBuf {
        self.data_dir.join("tmp").join(project).join(machine_name)
    }
    /// The base URL clients use to reach the API (and git).
    pub fn api_url(&self) -> String {
        format!("http://{}", connectable(self.api_listen))
    }
}

/// A listen address as a client can connect to it (`0.0.0.0` -> loopback).
pub fn connectable(addr: SocketAddr) -> SocketAddr {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    addr
}

pub struct Platform {
    pub settings: Settings,
    pub store: Arc<Store>,
    /// Stores activity log lines in batches on its own thread; wakes their followers.
    pub logs: LogWriter,
    pub router: grove_router::RouteTable,
    pub catalog: RuntimeCatalog,
    /// Runtime images: built once, read-only, shared by every project.
    pub images: grove_runtime::ImageStore,
    pub service_catalog: ServiceCatalog,
    /// Where environments keep their data; clones are copy-on-write where possible.
    pub volumes: Arc<grove_volumes::VolumeStore>,
    pub(crate) addresses: Addresses,
    /// Authenticates the pre-receive hook's calls; lives only in this process.
    pub hook_secret: String,
    pub(crate) running: Mutex<HashMap<EnvKey, RunningEnvironment>>,
    pub(crate) services: Mutex<HashMap<EnvKey, EnvironmentServices>>,
    pub(crate) crons: Mutex<HashMap<EnvKey, EnvironmentCrons>>,
    pub(crate) health: Mutex<HashMap<EnvKey, BTreeMap<String, ServiceHealth>>>,
    /// Each active environment's network namespace: its apps, hooks, crons and
    /// services run in it and see nothing of another environment's. Created when
    /// the environment first starts something, dropped when it is stopped (the
    /// namespace ends with the last process in it).
    pub(crate) networks: Mutex<HashMap<EnvKey, grove_runtime::NetNs>>,
    /// Serialises operations per environment (see `owners`).
    pub(crate) owners: Owners,
    /// Held while a check of the plan's limit and the activation it allows happen
    /// together, so that concurrent activations cannot both take the last slot.
    pub(crate) plan_lock: Mutex<()>,
    /// This server's cgroups (`None`: limits off or unavailable on this host).
    pub cgroups: Option<grove_runtime::Cgroups>,
    /// The OOM kills of each environment's cgroup already reported.
    pub(crate) oom_reported: Mutex<HashMap<EnvKey, u64>>,
    /// The activities not complete yet, by id: cancelling one's token cancels it
    /// (`activity:cancel`).
    pub(crate) cancellable: Mutex<HashMap<String, tokio_util::sync::CancellationToken>>,
    /// When this server last pruned the backup repository (retention forgets at once
    /// and prunes the data at most daily: a prune holds the exclusive lock).
    pub(crate) last_backup_prune: Mutex<Option<std::time::Instant>>,
    /// The logins the SSH gateway's `sshd` can look up.
    pub(crate) ssh_logins: crate::ssh::Logins,
}

/// What an activity is about and which environments it owns while it runs.
pub struct ActivitySpec {
    pub project: String,
    pub env: String,
    /// Other environments the operation reads or changes (the parent whose data it
    /// copies, the parent it merges into).
    pub also: Vec<String>,
    pub kind: ActivityKind,
    pub description: String,
    /// A live copy of the log (the `git push` that started it).
    pub tee: Option<mpsc::UnboundedSender<String>>,
}

impl ActivitySpec {
    pub fn new(project: &str, env: &str, kind: ActivityKind, description: String) -> Self {
        ActivitySpec {
            project: project.to_string(),
            env: env.to_string(),
            also: Vec::new(),
            kind,
            description,
            tee: None,
        }
    }

    pub fn also(mut self, env: &str) -> Self {
        self.also.push(env.to_string());
        self
    }

    pub fn tee(mut self, tee: Option<mpsc::UnboundedSender<String>>) -> Self {
        self.tee = tee;
        self
    }
}

/// The name of an environment's cgroup (project and machine names are both
/// lowercase letters, digits and dashes).
pub(crate) fn env_cgroup_name(project: &str, machine_name: &str) -> String {
    format!("{project}.{machine_name}")
}

/// Environment types (Platform.sh's).
pub const ENVIRONMENT_TYPES: &[&str] = &["production", "staging", "development"];

impl Platform {
    pub fn new(
        settings: Settings,
        store: Arc<Store>,
        catalog: RuntimeCatalog,
        service_catalog: ServiceCatalog,
        volumes: Arc<grove_volumes::VolumeStore>,
        router: grove_router::RouteTable,
        logs: LogWriter,
    ) -> Platform {
        let ssh_logins = crate::ssh::Logins::new(&settings.data_dir);
        Platform {
            images: grove_runtime::ImageStore::new(
                settings.images_dir(),
                settings.image_mirror.clone(),
            ),
            settings,
            store,
            logs,
            router,
            catalog,
            service_catalog,
            volumes,
            addresses: Addresses::default(),
            hook_secret: crate::auth::random_token("hook"),
            running: Mutex::new(HashMap::new()),
            services: Mutex::new(HashMap::new()),
            crons: Mutex::new(HashMap::new()),
            health: Mutex::new(HashMap::new()),
            networks: Mutex::new(HashMap::new()),
            owners: Owners::default(),
            plan_lock: Mutex::new(()),
            cgroups: None,
            oom_reported: Mutex::new(HashMap::new()),
            cancellable: Mutex::new(HashMap::new()),
            last_backup_prune: Mutex::new(None),
            ssh_logins,
        }
    }

    /// Runs environments and builds in `cgroups`.
    pub fn with_cgroups(mut self, cgroups: Option<grove_runtime::Cgroups>) -> Platform {
        self.cgroups = cgroups;
        self
    }

    /// The cgroup of one app or service of an environment (`app-web`,
    /// `service-db`), inside the environment's: its sandboxes join it (created
    /// with its limits by a deploy's check).
    pub(crate) fn container_cgroup(
        &self,
        project: &str,
        machine_name: &str,
        kind: grove_deployment::resources::ContainerKind,
        name: &str,
    ) -> Option<grove_runtime::CgroupJoin> {
        self.cgroups.as_ref().map(|c| {
            c.hierarchy().join_of(&format!(
                "{}/{}",
                env_cgroup_name(project, machine_name),
                grove_deployment::resources::container_group(kind, name)
            ))
        })
    }

    pub fn project(&self, name: &str) -> Result<ProjectRow> {
        self.store
            .project(name)?
            .ok_or_else(|| Error::NotFound(format!("no project `{name}`")))
    }

    pub fn environment(&self, project: &str, name: &str) -> Result<EnvironmentRow> {
        self.store.environment(project, name)?.ok_or_else(|| {
            Error::NotFound(format!("no environment `{name}` in project `{project}`"))
        })
    }

    /// The URLs an environment serves (empty when it runs nothing), primary first.
    pub fn environment_routes(
        &self,
        project: &str,
        name: &str,
    ) -> Option<grove_config::RouteTable> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running
            .get(&(project.to_string(), name.to_string()))
            .map(|r| r.routes.clone())
    }

    pub fn running_commit(&self, project: &str, name: &str) -> Option<String> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running
            .get(&(project.to_string(), name.to_string()))
            .map(|r| r.commit.clone())
    }

    /// What the environment's apps run instead of the runtime versions they ask for.
    pub fn runtime_warnings(&self, project: &str, name: &str) -> Vec<String> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running
            .get(&(project.to_string(), name.to_string()))
            .map(|r| {
                r.apps
                    .iter()
                    .filter_map(|a| a.runtime_warning.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Replaces what an environment runs and returns what it ran before.
    pub(crate) fn swap_running(
        &self,
        project: &str,
        env: &str,
        new: Option<RunningEnvironment>,
    ) -> Option<RunningEnvironment> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let key = (project.to_string(), env.to_string());
        match new {
            Some(new) => running.insert(key, new),
            None => running.remove(&key),
        }
    }

    /// Replaces an environment's cron schedulers, stopping the previous ones (running
    /// crons get their shutdown timeout).
    pub(crate) async fn replace_crons(&self, key: &EnvKey, new: Option<EnvironmentCrons>) {
        let old = {
            let mut all = self.crons.lock().unwrap_or_else(|e| e.into_inner());
            match new {
                Some(new) => all.insert(key.clone(), new),
                None => all.remove(key),
            }
        };
        if let Some(old) = old {
            old.stop().await;
        }
    }

    /// Asks an environment's cron runs in progress to stop (within their shutdown
    /// timeout) because another operation wants the environment.
    pub(crate) fn interrupt_crons(&self, key: &EnvKey) {
        let crons = self.crons.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(crons) = crons.get(key) {
            crons.interrupt();
        }
    }

    /// Whether an environment is active right now (read afresh from the store).
    pub fn is_active(&self, project: &str, env: &str) -> bool {
        matches!(self.store.environment(project, env), Ok(Some(row)) if row.status == "active")
    }

    /// Whether crons run on an environment now: its own switch, else on unless it is a
    /// development environment of a project that keeps them off there.
    pub fn crons_enabled(&self, project: &str, env: &str) -> bool {
        let Ok(Some(row)) = self.store.environment(project, env) else {
            return false;
        };
        if row.status != "active" {
            return false;
        }
        match row.crons {
            Some(on) => on,
            None => {
                row.kind != "development"
                    || self
                        .store
                        .project(project)
                        .ok()
                        .flatten()
                        .is_some_and(|p| p.development_crons)
            }
        }
    }

    /// Takes an environment's services out of the shared map (under its lock).
    /// The environment's network namespace, created on first use.
    pub(crate) fn network(&self, key: &EnvKey) -> Result<grove_runtime::NetNs> {
        let mut networks = self.networks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(netns) = networks.get(key) {
            return Ok(netns.clone());
        }
        let netns = grove_runtime::NetNs::new().map_err(|e| {
            Error::Internal(format!(
                "could not create the network namespace of `{}`: {e}",
                key.1
            ))
        })?;
        tracing::debug!(project = %key.0, env = %key.1, %netns, "created network namespace");
        networks.insert(key.clone(), netns.clone());
        Ok(netns)
    }

    /// Forgets the environment's network namespace (once nothing of it runs): the
    /// next start gets a fresh one.
    pub(crate) fn drop_network(&self, key: &EnvKey) {
        self.networks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    pub(crate) fn take_services(&self, key: &EnvKey) -> EnvironmentServices {
        let mut all = self.services.lock().unwrap_or_else(|e| e.into_inner());
        all.remove(key).unwrap_or_default()
    }

    pub(crate) fn put_services(&self, key: EnvKey, services: EnvironmentServices) {
        let mut all = self.services.lock().unwrap_or_else(|e| e.into_inner());
        if services.is_empty() {
            all.remove(&key);
        } else {
            all.insert(key, services);
        }
    }

    /// Takes one service out of an environment's running services.
    pub(crate) fn remove_service(&self, key: &EnvKey, name: &str) -> Option<ServiceEntry> {
        let mut all = self.services.lock().unwrap_or_else(|e| e.into_inner());
        let services = all.get_mut(key)?;
        let entry = services.remove(name);
        if services.is_empty() {
            all.remove(key);
        }
        entry
    }

    /// Runs `f` on an environment's running services.
    pub(crate) fn with_services<T>(
        &self,
        project: &str,
        env: &str,
        f: impl FnOnce(&EnvironmentServices) -> T,
    ) -> T {
        let all = self.services.lock().unwrap_or_else(|e| e.into_inner());
        let empty = EnvironmentServices::new();
        f(all
            .get(&(project.to_string(), env.to_string()))
            .unwrap_or(&empty))
    }

    /// The last health check of each service of an environment.
    pub fn service_health(&self, project: &str, env: &str) -> BTreeMap<String, ServiceHealth> {
        let health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        health
            .get(&(project.to_string(), env.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    /// Runs `work` as an activity in the background once it owns its environments
    /// (one operation at a time per environment, several taken in the global order),
    /// and returns the activity's id at once. A running cron of the environment it
    /// changes is asked to stop first (it gets its shutdown timeout).
    pub fn spawn_activity<F, Fut>(
        self: &Arc<Self>,
        spec: ActivitySpec,
        work: F,
    ) -> Result<(String, tokio::task::JoinHandle<bool>)>
    where
        F: FnOnce(Arc<Platform>, ActivityLog) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = std::result::Result<(), String>> + Send + 'static,
    {
        let (row, log) = activity::create(
            &self.store,
            &self.logs,
            &spec.project,
            Some(&spec.env),
            spec.kind,
            spec.description,
            spec.tee,
        )?;
        let platform = self.clone();
        let id = row.id.clone();
        let changed: EnvKey = (spec.project.clone(), spec.env.clone());
        let keys: Vec<EnvKey> = std::iter::once(spec.env)
            .chain(spec.also)
            .map(|env| (spec.project.clone(), env))
            .collect();
        self.cancellable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), log.cancel_token());
        let handle = tokio::spawn(async move {
            // Only the environment the operation changes stops its crons: a parent whose
            // data is copied keeps them, and the copy waits for a cron run in progress.
            platform.interrupt_crons(&changed);
            let owned = tokio::select! {
                owned = platform.owners.acquire(keys) => Some(owned),
                () = log.cancelled() => None,
            };
            let outcome = match owned {
                // Cancelled while it waited: it never ran.
                None => Err("cancelled before it started".to_owned()),
                Some(_owned) => {
                    if let Err(error) = platform.store.start_activity(&log.id) {
                        tracing::error!(activity = %log.id, %error, "Could not start the activity.");
                    }
                    // A panic in an operation fails its activity instead of leaving it
                    // `in_progress` (and never takes the server down).
                    tokio::spawn(work(platform.clone(), log.clone()))
                        .await
                        .unwrap_or_else(|e| Err(format!("the operation failed unexpectedly: {e}")))
                }
            };
            let result = match &outcome {
                Ok(()) => "success",
                Err(message) => {
                    log.line(format!("E: {message}"));
                    if log.is_cancelled() {
                        "cancelled"
                    } else {
                        "failure"
                    }
                }
            };
            platform
                .cancellable
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&log.id);
            activity::complete(&platform.logs, &log.id, result).await;
            outcome.is_ok()
        });
        Ok((id, handle))
    }

    pub(crate) fn unique_machine_name(&self, project: &str, branch: &str) -> Result<String> {
        let base = names::machine_name(branch);
        let mut candidate = base.clone();
        let mut n = 2;
        while self.store.machine_name_taken(project, &candidate)? {
            candidate = format!("{base}-{n}");
            n += 1;
        }
        Ok(candidate)
    }
}

/// The router table's owner key of an environment.
pub fn owner_key(project: &str, env: &str) -> String {
    format!("{project}/{env}")
}

pub fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

pub const STOP_GRACE: Duration = Duration::from_secs(5);
