//! Deploying one commit into one environment: its deployment is computed as data
//! (`grove_deployment::plan`), recorded, then applied by the executor
//! (`grove_deployment::apply`) through the local backend below, which builds in
//! bubblewrap sandboxes, runs the environment's services and app instances and
//! switches the router.
//!
//! The order follows Platform.sh (spec §2.5): validate, build or reuse the build with
//! the same key, bring the services up (healthy), start the new instances and wait
//! until they are ready, run the `deploy` hook with requests held, switch the router,
//! stop the previous instances, run `post_deploy`. Anything that fails before the
//! switch stops the new instances and leaves the previous deployment serving.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use grove_config::{App, MountSource, RouteKind, SourceTree};
use grove_deployment::{
    APP_DIR, AppPlan, Backend, CACHE_DIR, DataSource, Deployment, Hook, Observed, ServicePlan,
};
use grove_git::Repository;
use grove_router::{CachePolicy, HoldGuard, Redirect, RouteEntry, Target, Upstream};
use grove_runtime::{Bind, Instance, Listen, SandboxSpec};
use grove_store::{BuildRow, DeploymentRow, EnvironmentRow, ProjectRow, timestamp_now};

use crate::activity::ActivityLog;
use crate::running::{AppCommands, RunningApp, RunningEnvironment};
use crate::state::{Platform, STOP_GRACE, owner_key, short};
use crate::web_server::Front;

/// A stored build: the app's files (mounted read-only at /app) and what the build
/// installed globally (`pip install`, `npm install -g`: the app's own /usr/local, as in
/// a Platform.sh image, mounted read-only at runtime).
const BUILD_APP: &str = "app";
const BUILD_LOCAL: &str = "local";
const USR_LOCAL: &str = "/usr/local";
/// The niceness of builds (dependencies, flavor, build hook).
const BUILD_NICENESS: u8 = 10;
/// Where an app listening on a unix socket finds `$SOCKET`, in its sandbox.
pub(crate) const SOCKET_DIR: &str = "/run/app";
/// Debian's bundle of the host's certificate authorities (`ca-certificates`).
const HOST_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// How long a request may be held while the deploy hook runs (Adobe Commerce Cloud
/// queues requests for up to 5 minutes).
const HOLD_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the previous instances may take to answer what they were sent.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Platform.sh gives deploy hooks no timeout; a day bounds a stuck one.
const HOOK_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployMode {
    /// A deploy: hooks run.
    Deploy,
    /// Bringing back the last successful deployment after a restart: builds exist and
    /// hooks already ran for it, so only instances and routes are restored.
    Restore,
    /// Going back to an earlier deployment (its push was refused): like `Restore`, and
    /// recorded as the environment's deployment.
    Rollback,
}

type Outcome = std::result::Result<(), String>;

/// The files of one git tree, read lazily for the config loader.
struct GitTree {
    repo: Repository,
    tree: String,
    paths: Vec<String>,
}

impl SourceTree for GitTree {
    fn paths(&self) -> Vec<String> {
        self.paths.clone()
    }
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.repo.read_file(&self.tree, path).ok().flatten()
    }
}

/// Deploys `commit` into `env` with its own data.
pub async fn deploy(
    platform: &Arc<Platform>,
    project: &str,
    env: &str,
    repo: &Repository,
    commit: &str,
    mode: DeployMode,
    log: &ActivityLog,
) -> Outcome {
    deploy_with_data(
        platform,
        project,
        env,
        repo,
        commit,
        DataSource::Keep,
        mode,
        log,
    )
    .await
}

/// Deploys `commit` into `env`, its data coming from `data`: computes the deployment,
/// records it (a deployment counts once it applied completely), applies it.
#[allow(clippy::too_many_arguments)]
pub async fn deploy_with_data(
    platform: &Arc<Platform>,
    project: &str,
    env: &str,
    repo: &Repository,
    commit: &str,
    data: DataSource,
    mode: DeployMode,
    log: &ActivityLog,
) -> Outcome {
    let started = Instant::now();
    let project = platform.project(project).map_err(|e| e.to_string())?;
    let env = platform
        .environment(&project.id, env)
        .map_err(|e| e.to_string())?;
    let record = |tree_id: &str| DeploymentRow {
        id: 0,
        project: project.id.clone(),
        environment: env.name.clone(),
        activity: log.id.clone(),
        commit_id: commit.to_string(),
        tree_id: tree_id.to_string(),
        successful: false,
        created_at: timestamp_now(),
    };
    let (tree_id, config) = match read_config(repo, commit, log).await {
        Ok(read) => read,
        Err(error) => {
            // What was refused is on record, as a failed deployment.
            let _ = platform.store.insert_deployment(&record(""));
            return Err(error);
        }
    };
    failpoint(mode, "configured");
    let variables = user_variables(platform, &project.id, &env.name)?;
    let routes = grove_config::expand_routes(
        &config,
        &grove_config::RouteContext {
            project: &project.id,
            environment: &env.machine_name,
            domain: &platform.settings.domain,
            http_port: platform.settings.http_listen.port(),
            https_port: None,
        },
    );
    // What runs each app where it is not the host's exact version: part of its build
    // key (`check` refuses what cannot run at all).
    let runtimes: BTreeMap<String, String> = config
        .apps
        .iter()
        .filter_map(|app| {
            let resolved = platform
                .catalog
                .resolve(&app.runtime.language, &app.runtime.version)
                .ok()?;
            let source = match resolved.image() {
                Some(recipe) => format!("image {}", recipe.name()),
                None if resolved.substituted || resolved.via_alias => "host".to_string(),
                None => return None,
            };
            Some((app.name.clone(), format!("{} {source}", resolved.provided)))
        })
        .collect();
    let desired = grove_deployment::plan(&grove_deployment::Inputs {
        project: &project.id,
        project_entropy: &project.entropy,
        environment_type: &env.kind,
        commit,
        tree_id: &tree_id,
        config: &config,
        routes: &routes,
        data,
        build_variables: &variables.build,
        runtimes: &runtimes,
    });
    let generation = platform
        .store
        .plan_deployment(
            &record(&tree_id),
            &serde_json::to_string(&desired).unwrap_or_default(),
        )
        .map_err(|e| format!("could not record the deployment: {e}"))?;
    let mut backend = LocalDeploy {
        platform,
        project: &project,
        env: &env,
        repo,
        config: &config,
        routes: &routes,
        desired: &desired,
        variables: &variables,
        mode,
        log,
        built: BTreeSet::new(),
        started: Vec::new(),
        sandboxes: Vec::new(),
        hold: None,
        previous: None,
        runtimes: BTreeMap::new(),
        resources: None,
    };
    let applied = grove_deployment::apply(&mut backend, &desired, mode == DeployMode::Deploy).await;
    platform
        .store
        .complete_deployment(generation, applied.is_ok())
        .map_err(|e| format!("could not record the deployment: {e}"))?;
    applied?;
    failpoint(mode, "recorded");
    log.line(format!(
        "Environment `{}` deployed {} in {:.2}s",
        env.name,
        short(commit),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// The tree id of `commit` and its configuration as the loader found it. Blocking.
pub(crate) fn load_config(
    repo: &Repository,
    commit: &str,
) -> std::result::Result<
    (
        String,
        std::result::Result<grove_config::Project, grove_config::ConfigErrors>,
    ),
    String,
> {
    let tree = repo.tree_id(commit).map_err(|e| e.to_string())?;
    let paths = repo.list_files(&tree).map_err(|e| e.to_string())?;
    let source = GitTree {
        repo: repo.clone(),
        tree: tree.clone(),
        paths,
    };
    Ok((tree, grove_config::load(&source)))
}

/// The configuration of `commit`, validated (pure, read from the git tree), and its
/// tree id.
async fn read_config(
    repo: &Repository,
    commit: &str,
    log: &ActivityLog,
) -> std::result::Result<(String, grove_config::Project), String> {
    let (tree_id, config) = {
        let repo = repo.clone();
        let commit = commit.to_string();
        tokio::task::spawn_blocking(move || load_config(&repo, &commit))
            .await
            .map_err(|e| e.to_string())??
    };
    log.line("Validating configuration files");
    let config = match config {
        Ok(config) => config,
        Err(errors) => {
            log.line(errors.to_string());
            return Err("invalid configuration: nothing was built or deployed".into());
        }
    };
    for warning in &config.warnings {
        log.line(warning.to_string());
    }
    Ok((tree_id, config))
}

/// The failpoints of a deploy (see `failpoint`): only deploys that run hooks (pushes,
/// merges, redeploys), not the restore at start-up, which would otherwise die again.
fn failpoint(mode: DeployMode, step: &str) {
    if mode == DeployMode::Deploy {
        crate::failpoint::hit(step);
    }
}

/// The local backend of one deploy: builds and instances in bubblewrap sandboxes on
/// this host, services from its packages, routes in the router's table.
struct LocalDeploy<'a> {
    platform: &'a Arc<Platform>,
    project: &'a ProjectRow,
    env: &'a EnvironmentRow,
    repo: &'a Repository,
    config: &'a grove_config::Project,
    routes: &'a grove_config::RouteTable,
    desired: &'a Deployment,
    /// The user variables the environment's builds and apps see.
    variables: &'a grove_deployment::Resolved,
    mode: DeployMode,
    log: &'a ActivityLog,
    /// Apps built by this deploy.
    built: BTreeSet<String>,
    /// The new instances, not serving until the switch.
    started: Vec<RunningApp>,
    sandboxes: Vec<AppSandbox<'a>>,
    /// Requests held while the deploy hook runs.
    hold: Option<HoldGuard>,
    /// What served before the switch, until it is stopped.
    previous: Option<RunningEnvironment>,
    /// How each app's `type:` resolved (`check`): the version that runs and the
    /// runtime image its sandboxes use, if any.
    runtimes: BTreeMap<String, AppRuntime>,
    /// What the environment may use (set by `check`).
    resources: Option<grove_deployment::resources::Resources>,
}

/// What runs an app: the resolved runtime and, for an image, its root.
#[derive(Clone)]
struct AppRuntime {
    resolved: grove_runtime::ResolvedRuntime,
    image: Option<PathBuf>,
}

impl AppRuntime {
    /// The warning shown in the push log and `environment:info` when another version
    /// runs than the one asked for.
    fn warning(&self, app: &str) -> Option<String> {
        self.resolved
            .substituted
            .then(|| format!("app `{app}`: {}", self.resolved))
    }
}

impl<'a> LocalDeploy<'a> {
    /// Starts the `workers:` of every app: the same build and sandbox as the app's
    /// web instance (mounts, relationships, variables, network), its own
    /// `commands.start`, no requests, restarted by the supervisor when it exits, no
    /// deploy hooks (Platform.sh). A worker that cannot start is reported and the
    /// deploy goes on, as a crashing one would be restarted.
    fn start_workers(&self) -> Vec<RunningApp> {
        let (project, env, log) = (self.project, self.env, self.log);
        let mut started = Vec::new();
        for sandbox in &self.sandboxes {
            for (name, worker) in &sandbox.app.workers {
                let full = format!("{}--{name}", sandbox.app.name);
                let Some(command) = worker.start.as_deref() else {
                    continue;
                };
                for (what, overridden) in [
                    ("mounts", !worker.mounts.is_empty()),
                    ("relationships", !worker.relationships.is_empty()),
                ] {
                    if overridden {
                        log.line(format!(
                            "W: worker `{full}` overrides `{what}`: not supported yet, it gets the app's"
                        ));
                    }
                }
                let mut spec = sandbox.spec(command);
                spec.hostname = Some(full.clone());
                for (prefix, values) in &worker.variables {
                    if prefix != "env" {
                        log.line(format!(
                            "W: worker `{full}`: `variables.{prefix}` is not supported yet, it gets the app's"
                        ));
                        continue;
                    }
                    for (variable, value) in values {
                        let value = match value {
                            serde_json::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        sandbox_vars_push(&mut spec.env, variable, &value);
                    }
                }
                let log_file =
                    self.platform
                        .settings
                        .log_file(&project.id, &env.machine_name, &full);
                match Instance::spawn(spec, log_file) {
                    Ok(instance) => {
                        log.line(format!("Started worker `{full}`"));
                        started.push(RunningApp {
                            name: full,
                            runtime_warning: None,
                            upstream: None,
                            instance: Arc::new(instance),
                        });
                    }
                    Err(error) => log.line(format!("W: worker `{full}` could not start: {error}")),
                }
            }
        }
        started
    }

    fn key(&self) -> (String, String) {
        (self.project.id.clone(), self.env.name.clone())
    }

    fn app(&self, name: &str) -> std::result::Result<&'a App, String> {
        let config: &'a grove_config::Project = self.config;
        config
            .app(name)
            .ok_or_else(|| format!("no app `{name}` in the configuration"))
    }

    fn build_dir(&self, app: &AppPlan) -> PathBuf {
        self.platform.settings.builds_dir().join(&app.build_key)
    }

    /// The app's files in a stored build.
    fn app_dir(&self, app: &AppPlan) -> PathBuf {
        self.build_dir(app).join(BUILD_APP)
    }

    fn runtime(&self, app: &str) -> std::result::Result<&AppRuntime, String> {
        self.runtimes
            .get(app)
            .ok_or_else(|| format!("app `{app}`: its runtime was not checked"))
    }

    /// Caps the environment's volume at the sum of its apps' and services' `disk`
    /// (again after every fill: a copy of the parent's data starts uncapped).
    async fn cap_volume(&self) -> Outcome {
        let Some(resources) = &self.resources else {
            return Ok(());
        };
        let disks: Vec<String> = self
            .config
            .apps
            .iter()
            .filter_map(|a| a.disk.map(|d| format!("app `{}` {d} MB", a.name)))
            .chain(
                self.config
                    .services
                    .iter()
                    .filter_map(|s| s.disk.map(|d| format!("service `{}` {d} MB", s.name))),
            )
            .collect();
        let capped = self
            .platform
            .cap_volume(&self.project.id, self.env, resources.disk_mb)
            .await?;
        match (capped, resources.disk_mb) {
            (true, Some(mb)) => self.log.line(format!(
                "  Disk: the data of `{}` is capped at {mb} MB ({}); writes past it fail with \
                 \"Disk quota exceeded\"",
                self.env.name,
                disks.join(", ")
            )),
            (false, Some(mb)) => self.log.line(format!(
                "  W: disk: {mb} MB is not enforced: this storage cannot cap volumes (use btrfs)"
            )),
            _ => {}
        }
        Ok(())
    }

    fn build_exists(&self, app: &AppPlan) -> std::result::Result<bool, String> {
        Ok(self
            .platform
            .store
            .build(&app.build_key)
            .map_err(|e| e.to_string())?
            .is_some()
            && self.build_dir(app).is_dir())
    }
}

impl Backend for LocalDeploy<'_> {
    async fn observe(&mut self) -> std::result::Result<Observed, String> {
        let mut builds = BTreeSet::new();
        for app in &self.desired.apps {
            if self.build_exists(app)? {
                builds.insert(app.build_key.clone());
            }
        }
        let key = self.key();
        let instances = self
            .platform
            .running_commit(&self.project.id, &self.env.name)
            .is_some();
        Ok(Observed {
            builds,
            services: crate::services::signatures(self.platform, &key),
            instances,
        })
    }

    /// Only what this host really has: runtimes, service types, service data of the
    /// version asked for.
    async fn check(&mut self, _: &Deployment) -> Outcome {
        for app in &self.config.apps {
            let runtime = app_runtime(self.platform, app, self.log).await?;
            if crate::web_server::runs_php_fpm(app) {
                crate::web_server::check_php(app, php_version(&runtime), runtime.image.as_deref())
                    .await?;
            } else if app.web.commands.start.is_none() && app.workers.is_empty() {
                return Err(format!(
                    "app `{}` ({}): `web.commands.start` is required: grove runs the command \
                     that serves the app on $PORT",
                    app.name, app.config_file
                ));
            }
            self.runtimes.insert(app.name.clone(), runtime);
        }
        crate::services::check_requested(self.platform, self.project, self.env, self.config)?;
        let resources =
            grove_deployment::resources::resources(self.config, self.env.kind == "development");
        self.platform
            .apply_env_limits(&self.project.id, self.env, &resources, self.log)
            .await?;
        self.resources = Some(resources);
        Ok(())
    }

    async fn ensure_volume(&mut self) -> Outcome {
        self.platform
            .ensure_volume(&self.project.id, self.env)
            .await
            .map_err(|e| format!("the data volume of `{}`: {e}", self.env.name))?;
        self.cap_volume().await
    }

    async fn stop_services(&mut self) -> Outcome {
        let own = self.platform.take_services(&self.key());
        crate::services::stop_all(self.platform, own, Some(self.log)).await;
        Ok(())
    }

    async fn fill_volume(&mut self, source: &DataSource) -> Outcome {
        match source {
            DataSource::Keep => self.ensure_volume().await,
            DataSource::CopyOf { environment } => {
                let parent = self
                    .platform
                    .environment(&self.project.id, environment)
                    .map_err(|e| e.to_string())?;
                self.platform
                    .fill_from_parent(&self.project.id, &parent, self.env, self.log)
                    .await?;
                self.cap_volume().await
            }
            DataSource::Backup { id } => {
                self.platform
                    .fill_from_backup(&self.project.id, self.env, id, self.log)
                    .await
            }
        }
    }

    async fn build(&mut self, plan: &AppPlan) -> Outcome {
        let app = self.app(&plan.name)?;
        let runtime = self.runtime(&app.name)?;
        let image = runtime.image.clone();
        let commands = compat_commands(&runtime.resolved);
        build_app(
            self.platform,
            self.project,
            app,
            (image.as_deref(), &commands),
            self.repo,
            &self.desired.tree_id,
            &plan.build_key,
            &self.variables.build,
            self.log,
        )
        .await?;
        self.built.insert(plan.name.clone());
        failpoint(self.mode, "built");
        Ok(())
    }

    async fn start_service(&mut self, plan: &ServicePlan, _restart: bool) -> Outcome {
        let Some(service) = self.config.services.iter().find(|s| s.name == plan.name) else {
            return Err(format!("no service `{}` in the configuration", plan.name));
        };
        crate::services::start_one(
            self.platform,
            self.project,
            self.env,
            service,
            &plan.signature,
            self.log,
        )
        .await
    }

    async fn start_instances(&mut self, desired: &Deployment) -> Outcome {
        failpoint(self.mode, "services-ready");
        let (platform, project, env, log) = (self.platform, self.project, self.env, self.log);
        let settings = &platform.settings;
        for plan in &desired.apps {
            if !self.built.contains(&plan.name) {
                log.line(format!(
                    "Reusing build {} of app `{}` (tree {}): no build needed",
                    short(&plan.build_key),
                    plan.name,
                    short(&desired.tree_id)
                ));
            }
        }
        // The environment's own network: its apps listen on 127.0.0.1:$PORT there, next
        // to its services, and see nothing of another environment's.
        let netns = platform
            .network(&(project.id.clone(), env.name.clone()))
            .map_err(|e| e.to_string())?;
        // Ports are chosen first so that apps can find each other through app-to-app
        // relationships; free in the environment's network (the previous deployment's
        // instances listen there until the switch).
        let mut ports = BTreeMap::new();
        for plan in &desired.apps {
            let port = netns
                .run(free_port)
                .await
                .and_then(|port| port)
                .map_err(|e| format!("no free port for app `{}`: {e}", plan.name))?;
            ports.insert(plan.name.clone(), port);
        }
        let rel_ctx = grove_config::RelationshipContext {
            project: &project.id,
            environment: &env.machine_name,
        };
        for plan in &desired.apps {
            let app = self.app(&plan.name)?;
            let runtime = self.runtime(&app.name)?;
            let port = ports[&app.name];
            let relationships = platform.with_services(&project.id, &env.name, |services| {
                grove_config::relationships_json(
                    self.config,
                    app,
                    &rel_ctx,
                    &|service, endpoint| {
                        crate::services::endpoint_access(services, service, endpoint).or_else(
                            || {
                                ports.get(service).map(|port| grove_config::EndpointAccess {
                                    ip: Ipv4Addr::LOCALHOST.to_string(),
                                    port: Some(*port),
                                    username: None,
                                    password: None,
                                    path: None,
                                    query: None,
                                })
                            },
                        )
                    },
                )
            });
            let mut vars = grove_config::runtime_environment(&grove_config::RuntimeContext {
                project: &project.id,
                app,
                tree_id: &desired.tree_id,
                project_entropy: &project.entropy,
                app_dir: APP_DIR,
                branch: &env.name,
                environment: &env.machine_name,
                environment_type: &env.kind,
                routes: self.routes,
                relationships: &relationships,
                port,
                variables: &self.variables.runtime,
            });
            // Upsun's flattened `<REL>_<FIELD>` variables, never over what the platform
            // set.
            for (name, value) in grove_config::relationship_variables(&relationships) {
                if !vars.iter().any(|(n, _)| *n == name) {
                    vars.push((name, value));
                }
            }
            let hosts = settings
                .scratch_dir(&project.id, &env.machine_name)
                .join("hosts")
                .join(&app.name);
            write_file(&hosts, &crate::services::hosts_file(&relationships))
                .await
                .map_err(|e| format!("app `{}`: cannot write its hosts file: {e}", app.name))?;
            let binds = mount_binds(platform, project, env, app).await?;
            let build_dir = self.app_dir(plan);
            let mut binds = binds;
            // `socket_family: unix`: the app listens on `$SOCKET`, in a directory of this
            // instance's own that the router reaches from the host. A web server in
            // front (nginx, see `web_server`) keeps its generated configuration, its
            // own socket for the router and PHP-FPM's socket there too.
            let front = crate::web_server::Front::of(app);
            let run_dir = settings
                .scratch_dir(&project.id, &env.machine_name)
                .join("run")
                .join(format!("{}-{port}", app.name));
            let unix = app.web.upstream.socket_family == grove_config::SocketFamily::Unix;
            if unix || front != Front::Direct {
                recreate_dir(&run_dir).await.map_err(|e| {
                    format!(
                        "app `{}`: cannot create its socket directory: {e}",
                        app.name
                    )
                })?;
                binds.push(Bind {
                    source: run_dir.clone().into(),
                    target: SOCKET_DIR.to_string(),
                    writable: true,
                });
            }
            // Where the app's own server (or PHP-FPM's nginx) listens, and where the
            // router reaches the instance: the same, unless nginx is in front of the
            // app's server, on a socket of its own.
            let app_listen = if unix {
                sandbox_vars_push(&mut vars, "SOCKET", &format!("{SOCKET_DIR}/app.sock"));
                grove_web::Listen::Unix(format!("{SOCKET_DIR}/app.sock"))
            } else {
                grove_web::Listen::Tcp {
                    host: Ipv4Addr::LOCALHOST.to_string(),
                    port,
                }
            };
            let (upstream, listen) = if front == Front::Nginx {
                let socket = crate::web_server::FRONT_SOCKET;
                (
                    Upstream::Unix(run_dir.join(socket)),
                    grove_web::Listen::Unix(format!("{SOCKET_DIR}/{socket}")),
                )
            } else if unix {
                (Upstream::Unix(run_dir.join("app.sock")), app_listen.clone())
            } else {
                (
                    Upstream::InNetNs(netns.clone(), SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
                    app_listen.clone(),
                )
            };
            let start_command = crate::web_server::prepare(
                app,
                front,
                (php_version(runtime), runtime.image.as_deref()),
                &run_dir,
                listen,
                app_listen,
            )
            .await?;
            binds.insert(
                0,
                Bind {
                    source: self.build_dir(plan).join(BUILD_LOCAL).into(),
                    target: USR_LOCAL.to_string(),
                    writable: false,
                },
            );
            let sandbox = AppSandbox {
                app,
                image: runtime.image.clone(),
                environment_file: std::fs::symlink_metadata(build_dir.join(".environment")).is_ok(),
                build_dir,
                env: vars,
                binds,
                hosts,
                network: grove_runtime::Network::Namespace(netns.clone()),
                cgroup: platform.container_cgroup(
                    &project.id,
                    &env.machine_name,
                    grove_deployment::resources::ContainerKind::App,
                    &app.name,
                ),
            };
            if app.web.commands.start.is_none() && front != Front::PhpFpm {
                // Only workers run this app's build (they start at the switch).
                self.sandboxes.push(sandbox);
                continue;
            }
            let spec = sandbox.spec(&start_command);
            let log_file = settings.log_file(&project.id, &env.machine_name, &app.name);
            log.line(format!("Starting app `{}` on {upstream}", app.name));
            let instance = Instance::spawn(spec, log_file)
                .map(Arc::new)
                .map_err(|error| format!("app `{}` could not start: {error}", app.name))?;
            let waiting = Instant::now();
            let listen = match &upstream {
                Upstream::Tcp(addr) | Upstream::InNetNs(_, addr) => Listen::Tcp(*addr),
                Upstream::Unix(path) => Listen::Unix(path.clone()),
            };
            let ready = instance
                .wait_ready(listen, settings.app_start_timeout)
                .await;
            if ready.is_ok() {
                log.line(format!(
                    "  App `{}` accepted connections after {:.3}s",
                    app.name,
                    waiting.elapsed().as_secs_f64()
                ));
            }
            self.started.push(RunningApp {
                name: app.name.clone(),
                runtime_warning: runtime.warning(&app.name),
                upstream: Some(upstream),
                instance,
            });
            ready.map_err(|error| format!("app `{}`: {error}", app.name))?;
            // `post_start` is the app's own readiness check: the router only switches to
            // an instance it passed.
            if let Some(post_start) = app.web.commands.post_start.as_deref() {
                sandbox.run_check("post_start", post_start, log).await?;
            }
            self.sandboxes.push(sandbox);
        }
        failpoint(self.mode, "instances-started");
        Ok(())
    }

    async fn run_hooks(&mut self, hook: Hook) -> Outcome {
        match hook {
            Hook::Deploy => {
                // Meanwhile idempotent requests are held, not answered by the old code
                // against data the hook may be migrating; they go to the new instances
                // at the switch.
                let owner = owner_key(&self.project.id, &self.env.name);
                self.hold = Some(self.platform.router.hold_guard(&owner, HOLD_TIMEOUT));
                for sandbox in &self.sandboxes {
                    sandbox
                        .run_hook("deploy", sandbox.app.hooks.deploy.as_deref(), self.log)
                        .await;
                }
                // A failed deploy hook does not stop a deploy (Platform.sh); a
                // cancelled one does, before the switch.
                if self.log.is_cancelled() {
                    return Err(
                        "cancelled during the deploy hook; the previous deployment keeps serving"
                            .to_owned(),
                    );
                }
                failpoint(self.mode, "deploy-hook-done");
            }
            Hook::PostDeploy => {
                for sandbox in &self.sandboxes {
                    sandbox
                        .run_hook(
                            "post_deploy",
                            sandbox.app.hooks.post_deploy.as_deref(),
                            self.log,
                        )
                        .await;
                }
                failpoint(self.mode, "post-deploy-done");
            }
        }
        Ok(())
    }

    /// The previous crons stop (a running one gets its shutdown timeout); the router
    /// switches and releases the held requests.
    async fn switch(&mut self, desired: &Deployment) -> Outcome {
        let platform = self.platform;
        let key = self.key();
        platform.replace_crons(&key, None).await;
        let owner = owner_key(&self.project.id, &self.env.name);
        let entries = router_entries(self.routes, &self.started, self.log);
        // Access control is in place before the first request the new routes serve;
        // without it, the new routes are not served at all.
        crate::http_access::apply(platform, &self.project.id, &self.env.name)
            .map_err(|error| format!("HTTP access control: {error}"))?;
        platform.router.set_access_log(
            &owner,
            Some(
                platform
                    .settings
                    .access_log_file(&self.project.id, &self.env.machine_name),
            ),
        );
        platform.router.set(&owner, entries);
        self.hold = None;
        if let Some(primary) = self.routes.primary() {
            self.log.line(format!("Serving {}", primary.url));
        }
        failpoint(self.mode, "routes-switched");
        // Workers of the new code start once its deploy hook ran; the previous ones
        // stop with the previous instances, right after.
        let workers = self.start_workers();
        self.started.extend(workers);
        let previous = platform.swap_running(
            &self.project.id,
            &self.env.name,
            Some(RunningEnvironment {
                commit: desired.commit.clone(),
                routes: self.routes.clone(),
                apps: std::mem::take(&mut self.started),
                shells: self
                    .sandboxes
                    .iter()
                    .map(|s| (s.app.name.clone(), s.commands()))
                    .collect(),
            }),
        );
        platform.ssh_logins.register(
            &self.project.id,
            &self.env.machine_name,
            self.sandboxes.iter().map(|s| s.app.name.as_str()),
        );
        self.previous = previous;
        Ok(())
    }

    /// The previous instances finish what they are answering, then stop.
    async fn stop_previous(&mut self) -> Outcome {
        if let Some(previous) = self.previous.take() {
            for app in &previous.apps {
                let Some(upstream) = &app.upstream else {
                    continue;
                };
                if !self
                    .platform
                    .router
                    .drained(upstream.clone(), DRAIN_TIMEOUT)
                    .await
                {
                    self.log.line(format!(
                        "W: the previous instance of `{}` still had requests in flight after {}s",
                        app.name,
                        DRAIN_TIMEOUT.as_secs()
                    ));
                }
            }
            self.log.line(format!(
                "Stopping the previous deployment ({})",
                short(&previous.commit)
            ));
            stop_all(&previous.apps).await;
            for app in &previous.apps {
                if let Some(Upstream::Unix(socket)) = &app.upstream
                    && let Some(dir) = socket.parent()
                {
                    let _ = tokio::fs::remove_dir_all(dir).await;
                }
            }
        }
        failpoint(self.mode, "previous-stopped");
        Ok(())
    }

    async fn retire_service(&mut self, name: &str) -> Outcome {
        crate::services::retire(self.platform, &self.key(), &[name.to_string()], self.log).await;
        Ok(())
    }

    async fn schedule_crons(&mut self) -> Outcome {
        let (platform, project, env, log) = (self.platform, self.project, self.env, self.log);
        let mut jobs = Vec::new();
        for sandbox in &self.sandboxes {
            for (name, cron) in &sandbox.app.crons {
                match grove_cron::Schedule::parse_with_seed(&cron.spec, name) {
                    Ok(schedule) => jobs.push(crate::crons::CronJob {
                        app: sandbox.app.name.clone(),
                        name: name.clone(),
                        cron: cron.clone(),
                        schedule,
                        sandbox: sandbox.spec(&cron.command),
                    }),
                    Err(error) => log.line(format!(
                        "W: cron `{name}` of app `{}` is not scheduled: {error}",
                        sandbox.app.name
                    )),
                }
            }
        }
        if !jobs.is_empty() {
            log.line(format!(
                "Scheduled {} cron(s){}",
                jobs.len(),
                if platform.crons_enabled(&project.id, &env.name) {
                    ""
                } else {
                    " (switched off for this environment)"
                }
            ));
            let crons = crate::crons::start(platform, &project.id, &env.name, jobs);
            platform.replace_crons(&self.key(), Some(crons)).await;
        }
        Ok(())
    }

    async fn abandon(&mut self) {
        self.hold = None;
        stop_all(&std::mem::take(&mut self.started)).await;
    }
}

/// How an app's `type:` resolves on this server, said in the log when it is not the
/// host's exact version (a warning when another version runs), with the runtime
/// image built first when it needs one (its progress in the log).
async fn app_runtime(
    platform: &Platform,
    app: &App,
    log: &ActivityLog,
) -> std::result::Result<AppRuntime, String> {
    let resolved = platform
        .catalog
        .resolve(&app.runtime.language, &app.runtime.version)
        .map_err(|error| format!("app `{}`: {error}", app.name))?;
    let mut runtime = AppRuntime {
        resolved,
        image: None,
    };
    if let Some(warning) = runtime.warning(&app.name) {
        log.line(format!("W: {warning}"));
    } else if runtime.resolved.via_alias || runtime.resolved.image().is_some() {
        log.line(format!("  App `{}`: {}", app.name, runtime.resolved));
    }
    if let Some(recipe) = runtime.resolved.image().copied() {
        let mut on_line = |line: &str| log.line(format!("  {line}"));
        let root = platform
            .images
            .ensure(&recipe, &mut on_line)
            .await
            .map_err(|error| format!("app `{}`: {error}", app.name))?;
        runtime.image = Some(root);
    }
    Ok(runtime)
}

/// The PHP version that runs an app (`8.4` where `php:8.3` was asked for).
/// The commands a substituted runtime still answers to, in the app's own
/// `/usr/local/bin` (a link to the version that runs): Platform.sh's Python templates
/// call their version by name (`python3.10 -m pip install --upgrade pip`), and the
/// substitution was said in the push log.
fn compat_commands(resolved: &grove_runtime::ResolvedRuntime) -> Vec<(String, String)> {
    let version = |t: &str| t.split_once(':').map(|(_, v)| v.to_string());
    match (
        resolved.requested.split_once(':').map(|(l, _)| l),
        version(&resolved.requested),
        version(&resolved.provided),
    ) {
        (Some("python"), Some(asked), Some(runs)) if asked != runs && asked.contains('.') => {
            vec![(format!("python{asked}"), format!("/usr/bin/python{runs}"))]
        }
        _ => Vec::new(),
    }
}

fn php_version(runtime: &AppRuntime) -> &str {
    runtime
        .resolved
        .provided
        .split_once(':')
        .map_or("", |(_, version)| version)
}

#[allow(clippy::too_many_arguments)]
async fn build_app(
    platform: &Arc<Platform>,
    project: &ProjectRow,
    app: &App,
    (image, commands): (Option<&Path>, &[(String, String)]),
    repo: &Repository,
    tree_id: &str,
    key: &str,
    variables: &[grove_config::UserVariable],
    log: &ActivityLog,
) -> Outcome {
    let settings = &platform.settings;
    let started = Instant::now();
    log.line(format!(
        "Building app `{}` ({}, tree {})",
        app.name,
        app.runtime,
        short(tree_id)
    ));
    let builds = settings.builds_dir();
    let work = builds.join(format!(".tmp-{key}"));
    let final_dir = builds.join(key);
    let cache = settings.cache_dir(&project.id, &app.name);
    let tmp = builds.join(format!(".tmp-{key}-tmp"));
    {
        let (work, tmp, cache, repo) = (work.clone(), tmp.clone(), cache.clone(), repo.clone());
        let commands = commands.to_vec();
        let tree = tree_id.to_string();
        let root = app.source_root.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            for dir in [&work, &tmp] {
                if dir.exists() {
                    std::fs::remove_dir_all(dir)?;
                }
                std::fs::create_dir_all(dir)?;
            }
            std::fs::create_dir_all(work.join(BUILD_APP))?;
            std::fs::create_dir_all(work.join(BUILD_LOCAL))?;
            if !commands.is_empty() {
                let bin = work.join(BUILD_LOCAL).join("bin");
                std::fs::create_dir_all(&bin)?;
                for (name, target) in &commands {
                    std::os::unix::fs::symlink(target, bin.join(name))?;
                }
            }
            std::fs::create_dir_all(&cache)?;
            repo.export(&tree, &root, &work.join(BUILD_APP))
                .map_err(std::io::Error::other)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("could not check out app `{}`: {e}", app.name))?;
    }
    // A build gets a cgroup of its own, so that a build hook cannot take the host down.
    let group = format!("build-{}", short(key));
    let cgroup = platform.apply_build_limits(&group).await?;
    let result = run_build_hook(
        platform,
        project,
        app,
        image,
        tree_id,
        variables,
        (&work, &cache, &tmp),
        cgroup,
        log,
    )
    .await;
    let result = match result {
        Err(message) if platform.cgroup_oom_kills(&group) > 0 => Err(format!(
            "{message}: out of memory (a build may use {} MB)",
            crate::lifecycle::BUILD_MEMORY_MB
        )),
        other => other,
    };
    platform.remove_cgroup(&group).await;
    let result = result.and_then(|()| create_mount_points(app, &work.join(BUILD_APP)));
    let _ = tokio::fs::remove_dir_all(&tmp).await;
    if let Err(message) = result {
        let _ = tokio::fs::remove_dir_all(&work).await;
        return Err(message);
    }
    if final_dir.exists() {
        let _ = tokio::fs::remove_dir_all(&final_dir).await;
    }
    tokio::fs::rename(&work, &final_dir)
        .await
        .map_err(|e| format!("could not store build {}: {e}", short(key)))?;
    platform
        .store
        .insert_build(&BuildRow {
            key: key.to_string(),
            project: project.id.clone(),
            app: app.name.clone(),
            tree_id: tree_id.to_string(),
            activity: log.id.clone(),
            created_at: timestamp_now(),
        })
        .map_err(|e| e.to_string())?;
    log.line(format!(
        "Built app `{}` as build {} in {:.2}s",
        app.name,
        short(key),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn run_build_hook(
    platform: &Arc<Platform>,
    project: &ProjectRow,
    app: &App,
    image: Option<&Path>,
    tree_id: &str,
    variables: &[grove_config::UserVariable],
    (work, cache, tmp): (&Path, &Path, &Path),
    cgroup: Option<grove_runtime::CgroupJoin>,
    log: &ActivityLog,
) -> Outcome {
    let before_hook = grove_deployment::build_commands(app);
    if before_hook.is_empty() && app.hooks.build.is_none() {
        log.line("  No build hook");
        return Ok(());
    }
    let mut spec = SandboxSpec::new(work.join(BUILD_APP), "");
    // Builds run on the same runtime image as the app.
    spec.image = image.map(Path::to_path_buf);
    spec.app_writable = true;
    // Builds yield to the apps serving requests on the same host.
    spec.niceness = Some(BUILD_NICENESS);
    spec.cgroup = cgroup;
    spec.env =
        grove_deployment::build_variables(&project.id, &project.entropy, app, tree_id, variables);
    // Debian marks its Python "externally managed" (PEP 668); what `pip install` writes
    // here goes to the app's own /usr/local, never the host's.
    spec.env
        .push(("PIP_BREAK_SYSTEM_PACKAGES".to_string(), "1".to_string()));
    // `npm install -g` goes there too, whatever prefix the host's npm was built with.
    spec.env
        .push(("NPM_CONFIG_PREFIX".to_string(), USR_LOCAL.to_string()));
    spec.env.push(("CI".to_string(), "true".to_string()));
    // Package registries are reached with the host's certificate authorities (an
    // operator's TLS-inspecting proxy included); Node.js otherwise trusts only its own.
    if Path::new(HOST_CA_BUNDLE).is_file() {
        spec.env.push((
            "NODE_EXTRA_CA_CERTS".to_string(),
            HOST_CA_BUNDLE.to_string(),
        ));
    }
    spec.hostname = Some(app.name.clone());
    spec.tmp_dir = Some(tmp.to_path_buf());
    spec.binds.push(Bind {
        source: cache.to_path_buf().into(),
        target: CACHE_DIR.to_string(),
        writable: true,
    });
    spec.binds.push(Bind {
        source: work.join(BUILD_LOCAL).into(),
        target: USR_LOCAL.to_string(),
        writable: true,
    });
    // Dependencies and the build flavor first, then the hook, in the same sandbox:
    // (what, script, whether it is the hook).
    let mut steps: Vec<(String, String, bool)> = before_hook
        .into_iter()
        .map(|c| (c.what, c.script, false))
        .collect();
    if let Some(hook) = &app.hooks.build {
        steps.push(("Running the build hook".to_string(), hook.clone(), true));
    }
    for (what, script, is_hook) in steps {
        log.line(format!("  {what}"));
        spec.command = script;
        let started = Instant::now();
        let mut on_line = |line: &str| log.line(format!("    {line}"));
        let outcome = grove_runtime::run_command_until(
            &spec,
            platform.settings.build_timeout,
            log.cancelled(),
            &mut on_line,
        )
        .await
        .map_err(|e| format!("app `{}`: the build could not run: {e}", app.name))?;
        let (done, failed) = if is_hook {
            (
                "Build hook finished".to_string(),
                "the build hook failed".to_string(),
            )
        } else {
            ("Finished".to_string(), format!("\"{what}\" failed"))
        };
        log.line(format!(
            "  {done} in {:.3}s",
            started.elapsed().as_secs_f64()
        ));
        if !outcome.success() {
            return Err(format!(
                "app `{}`: {failed} ({outcome}); the environment keeps its previous deployment",
                app.name
            ));
        }
    }
    Ok(())
}

/// How an app runs in this deployment: its build, variables and mounts. The instance
/// and the runtime hooks get the same sandbox.
struct AppSandbox<'a> {
    app: &'a App,
    /// The runtime image whose system directories the app sees, if any.
    image: Option<PathBuf>,
    build_dir: PathBuf,
    env: Vec<(String, String)>,
    binds: Vec<Bind>,
    /// `/etc/hosts` with the relationships' host names.
    hosts: PathBuf,
    /// The build has a `.environment` file.
    environment_file: bool,
    /// The environment's network namespace.
    network: grove_runtime::Network,
    /// The environment's cgroup.
    cgroup: Option<grove_runtime::CgroupJoin>,
}

impl AppSandbox<'_> {
    /// How commands run in this app's runtime sandbox (start commands, hooks, crons,
    /// SSH sessions).
    fn commands(&self) -> AppCommands {
        let mut spec = SandboxSpec::new(&self.build_dir, "");
        spec.image = self.image.clone();
        spec.env = self.env.clone();
        spec.binds = self.binds.clone();
        spec.etc_hosts = Some(self.hosts.clone());
        spec.hostname = Some(self.app.name.clone());
        spec.network = self.network.clone();
        spec.cgroup = self.cgroup.clone();
        AppCommands {
            sandbox: spec,
            environment_file: self.environment_file,
        }
    }

    /// A sandbox running `command` (start commands, hooks, crons: the runtime).
    fn spec(&self, command: &str) -> SandboxSpec {
        self.commands().spec(command)
    }

    /// Runs a command that must succeed (`post_start`).
    async fn run_check(&self, name: &str, command: &str, log: &ActivityLog) -> Outcome {
        let app = &self.app.name;
        log.line(format!("  Running {name} of app `{app}`"));
        let spec = self.spec(command);
        let mut on_line = |line: &str| log.line(format!("    {line}"));
        let run =
            grove_runtime::run_command_until(&spec, HOOK_TIMEOUT, log.cancelled(), &mut on_line);
        match run.await {
            Ok(outcome) if outcome.success() => Ok(()),
            Ok(outcome) => Err(format!(
                "app `{app}`: {name} failed ({outcome}): the new instance is not ready, the previous deployment keeps serving"
            )),
            Err(error) => Err(format!("app `{app}`: {name} could not run: {error}")),
        }
    }

    /// Runs `deploy` or `post_deploy`; a failure is reported, not fatal (Platform.sh).
    async fn run_hook(&self, name: &str, hook: Option<&str>, log: &ActivityLog) {
        let Some(hook) = hook else { return };
        let app = &self.app.name;
        log.line(format!("  Running the {name} hook of app `{app}`"));
        let spec = self.spec(hook);
        let mut on_line = |line: &str| log.line(format!("    {line}"));
        let run =
            grove_runtime::run_command_until(&spec, HOOK_TIMEOUT, log.cancelled(), &mut on_line);
        match run.await {
            Ok(outcome) if outcome.success() => {}
            Ok(outcome) => log.line(format!(
                "W: the {name} hook of app `{app}` failed ({outcome}); the deployment goes on, as on Platform.sh"
            )),
            Err(error) => log.line(format!("W: the {name} hook of app `{app}` could not run: {error}")),
        }
    }
}

/// The writable mounts of an app in an environment, as binds over its read-only build.
/// `local`/`storage`/`instance`/`service` mounts live in the environment's volumes and
/// persist across deploys; `tmp` mounts in scratch space that a deploy may wipe.
/// Everything in a volume was written by the apps: a source is a directory beneath the
/// volume, resolved (and created) without following symlinks, here for a clear error
/// and again, race-free, each time a sandbox starts (`Bind::beneath`).
async fn mount_binds(
    platform: &Platform,
    project: &ProjectRow,
    env: &EnvironmentRow,
    app: &App,
) -> std::result::Result<Vec<Bind>, String> {
    let settings = &platform.settings;
    let mut binds = Vec::new();
    for (path, mount) in &app.mounts {
        let (root, dir) = match (&mount.source, &mount.service) {
            (MountSource::Service, Some(service)) => (
                settings.volume_dir(&project.id, &env.machine_name),
                Path::new("services").join(service),
            ),
            // Under `apps/`: the scratch space also holds the platform's own files
            // (`hosts/`, `services/`), which an app named after them must not get.
            (MountSource::Tmp, _) => (
                settings.scratch_dir(&project.id, &env.machine_name),
                Path::new("apps").join(&app.name),
            ),
            (source, _) => (
                settings.volume_dir(&project.id, &env.machine_name),
                Path::new("apps").join(&app.name).join(source.as_str()),
            ),
        };
        let source = dir.join(&mount.source_path);
        let resolved = {
            let (root, source) = (root.clone(), source.clone());
            tokio::task::spawn_blocking(move || grove_runtime::beneath::create_dir(&root, &source))
                .await
                .map_err(|e| e.to_string())?
        };
        if let Err(error) = resolved {
            // Named as the user knows it: relative to the mount's own directory.
            let refused = error
                .path
                .strip_prefix(&dir)
                .ok()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(&error.path);
            return Err(format!(
                "app `{}`: mount `{path}`: `{}` in the volume {}",
                app.name,
                refused.display(),
                error.refusal
            ));
        }
        binds.push(Bind::beneath(
            root,
            source,
            format!("{APP_DIR}/{path}"),
            true,
        ));
    }
    Ok(binds)
}

/// Mount points exist in the build (mounts are part of the build key), so that the
/// read-only build can be mounted over at runtime without being modified. The build
/// holds what the repository and the build hook made: mount points are created
/// without following symlinks and never outside it.
fn create_mount_points(app: &App, build: &Path) -> std::result::Result<(), String> {
    for path in app.mounts.keys() {
        grove_runtime::beneath::create_dir(build, Path::new(path)).map_err(|error| {
            format!(
                "app `{}`: mount `{path}`: `{}` in the build {}",
                app.name,
                error.path.display(),
                error.refusal
            )
        })?;
    }
    Ok(())
}

fn router_entries(
    routes: &grove_config::RouteTable,
    apps: &[RunningApp],
    log: &ActivityLog,
) -> Vec<RouteEntry> {
    let mut entries = Vec::new();
    for route in &routes.routes {
        let target = match &route.kind {
            RouteKind::Upstream { app } => {
                match apps
                    .iter()
                    .find(|a| &a.name == app)
                    .and_then(|a| a.upstream.clone())
                {
                    Some(upstream) => Target::Upstream(upstream),
                    None => continue,
                }
            }
            RouteKind::Redirect { to } => Target::Redirect {
                location: to.clone(),
                code: 301,
            },
            RouteKind::Proxy { to } => {
                log.line(format!(
                    "W: route {} proxies to {to}: proxy routes are not supported yet, skipped",
                    route.original_url
                ));
                continue;
            }
        };
        let entry = RouteEntry::new(route.host.clone(), route.path.clone(), target)
            .with_redirects(partial_redirects(route, log))
            .with_cache(route_cache(route, log));
        entries.push(entry);
    }
    entries
}

/// The route's `redirects.paths` for the router; a regex it cannot compile is said
/// in the log and left out.
fn partial_redirects(route: &grove_config::Route, log: &ActivityLog) -> Vec<Redirect> {
    grove_config::partial_redirects(&route.redirects)
        .into_iter()
        .filter_map(|r| {
            if !r.regexp {
                let (path, to) = (&r.path, &r.to);
                return Some(Redirect::path(
                    path,
                    r.prefix,
                    r.append_suffix,
                    to,
                    r.code,
                    r.expires,
                ));
            }
            Redirect::regex(&r.path, &r.to, r.code, r.expires)
                .map_err(|error| {
                    log.line(format!(
                        "W: route {}: redirect `{}` skipped: {error}",
                        route.original_url, r.path
                    ));
                })
                .ok()
        })
        .collect()
}

/// The route's HTTP cache for the router, `None` when disabled.
fn route_cache(route: &grove_config::Route, log: &ActivityLog) -> Option<CachePolicy> {
    let cache = grove_config::route_cache(&route.cache);
    if !cache.enabled {
        return None;
    }
    CachePolicy::new(cache.default_ttl, &cache.cookies, &cache.headers)
        .map_err(|error| {
            log.line(format!(
                "W: route {}: cache disabled: {error}",
                route.original_url
            ));
        })
        .ok()
}

async fn stop_all(apps: &[RunningApp]) {
    futures_util::future::join_all(apps.iter().map(|a| a.instance.stop(STOP_GRACE))).await;
}

/// `s` as one single-quoted shell word.
pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Sets a variable of a sandbox's environment, replacing one of the same name.
fn sandbox_vars_push(vars: &mut Vec<(String, String)>, name: &str, value: &str) {
    vars.retain(|(n, _)| n != name);
    vars.push((name.to_string(), value.to_string()));
}

/// An empty directory at `dir`, whatever was there.
async fn recreate_dir(dir: &Path) -> std::io::Result<()> {
    match tokio::fs::remove_dir_all(dir).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    tokio::fs::create_dir_all(dir).await
}

async fn write_file(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    tokio::fs::write(path, contents).await
}

/// A loopback port nothing listens on right now, for an app instance. Chosen below the
/// kernel's ephemeral range (32768 and up), so that an outgoing connection cannot take
/// it as its source port between this check and the app's own bind.
fn free_port() -> std::io::Result<u16> {
    const FIRST: u16 = 20_000;
    const SPAN: u16 = 12_000;
    let mut seed = [0u8; 2];
    let start = match getrandom::fill(&mut seed) {
        Ok(()) => u16::from_le_bytes(seed) % SPAN,
        Err(_) => 0,
    };
    for offset in 0..SPAN {
        let port = FIRST + (start + offset) % SPAN;
        if let Ok(listener) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            return Ok(listener.local_addr()?.port());
        }
    }
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// The user variables an environment's builds and apps see: the project's and those of
/// the environment and its ancestors (nearest first), with Platform.sh's precedence.
pub(crate) fn user_variables(
    platform: &Platform,
    project: &str,
    env: &str,
) -> std::result::Result<grove_deployment::Resolved, String> {
    let store = &platform.store;
    let definitions = |environment: Option<&str>| {
        store
            .variables(project, environment)
            .map(|rows| rows.iter().map(variable_definition).collect::<Vec<_>>())
            .map_err(|e| format!("could not read the variables: {e}"))
    };
    let project_level = definitions(None)?;
    let mut levels = Vec::new();
    let mut next = Some(env.to_string());
    // The tree has no cycles; the bound only guards against a corrupt store.
    while let Some(name) = next.take()
        && levels.len() < 64
    {
        levels.push(definitions(Some(&name))?);
        next = store
            .environment(project, &name)
            .map_err(|e| e.to_string())?
            .and_then(|row| row.parent);
    }
    let levels: Vec<&[grove_deployment::Definition]> = levels.iter().map(Vec::as_slice).collect();
    Ok(grove_deployment::resolve(&project_level, &levels))
}

/// A stored variable as the resolution sees it: a JSON variable's value decoded (a value
/// that no longer parses is passed on as the text it is).
pub(crate) fn variable_definition(row: &grove_store::VariableRow) -> grove_deployment::Definition {
    let value = if row.is_json {
        serde_json::from_str(&row.value).unwrap_or_else(|_| row.value.clone().into())
    } else {
        row.value.clone().into()
    };
    grove_deployment::Definition {
        name: row.name.clone(),
        value,
        visible_build: row.visible_build,
        visible_runtime: row.visible_runtime,
        inheritable: row.is_inheritable,
        enabled: row.is_enabled,
    }
}
