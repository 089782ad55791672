//! Building and deploying one commit into one environment.
//!
//! The order follows Platform.sh (spec §2.5): read and validate the configuration,
//! build each app or reuse the build with the same key, bring the environment's
//! services up (healthy) and open the relationships, start the new instances and
//! wait until they accept connections, run the `deploy` hook, switch the router, stop
//! the previous instances, run `post_deploy`. Anything that fails before the switch
//! stops the new instances and leaves the previous deployment serving, untouched.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use grove_config::{App, MountSource, RouteKind, SourceTree};
use grove_git::Repository;
use grove_router::{RouteEntry, Target};
use grove_runtime::{Bind, Instance, SandboxSpec};
use grove_store::{BuildRow, DeploymentRow, EnvironmentRow, ProjectRow, timestamp_now};
use sha2::{Digest, Sha256};

use crate::activity::ActivityLog;
use crate::platform::{Platform, RunningApp, RunningEnvironment, STOP_GRACE, owner_key, short};

/// Bump when the build layout changes so that old builds are not reused.
const BUILD_FORMAT: &str = "grove-build-1";
const APP_DIR: &str = "/app";
const CACHE_DIR: &str = "/tmp/cache";
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

/// Everything a deploy needs about its environment, read once at its start.
struct DeployTarget {
    project: ProjectRow,
    env: EnvironmentRow,
}

pub async fn deploy(
    platform: &Arc<Platform>,
    project: &str,
    env: &str,
    repo: &Repository,
    commit: &str,
    mode: DeployMode,
    log: &ActivityLog,
) -> Outcome {
    let started = Instant::now();
    let target = DeployTarget {
        project: platform.project(project).map_err(|e| e.to_string())?,
        env: platform
            .environment(project, env)
            .map_err(|e| e.to_string())?,
    };
    let result = deploy_inner(platform, &target, repo, commit, mode, log).await;
    let successful = result.is_ok();
    let tree_id = result.clone().unwrap_or_default();
    if mode != DeployMode::Restore || !successful {
        let row = DeploymentRow {
            id: 0,
            project: project.to_string(),
            environment: target.env.name.clone(),
            activity: log.id.clone(),
            commit_id: commit.to_string(),
            tree_id,
            successful,
            created_at: timestamp_now(),
        };
        if let Err(error) = platform.store.insert_deployment(&row) {
            return Err(format!("could not record the deployment: {error}"));
        }
        if successful {
            failpoint(mode, "recorded");
        }
    }
    match result {
        Ok(_) => {
            log.line(format!(
                "Environment `{}` deployed {} in {:.2}s",
                target.env.name,
                short(commit),
                started.elapsed().as_secs_f64()
            ));
            Ok(())
        }
        Err(message) => Err(message),
    }
}

/// Returns the deployed tree id.
async fn deploy_inner(
    platform: &Arc<Platform>,
    target: &DeployTarget,
    repo: &Repository,
    commit: &str,
    mode: DeployMode,
    log: &ActivityLog,
) -> std::result::Result<String, String> {
    let settings = &platform.settings;
    let env = &target.env;
    let project = &target.project;

    // 1. Configuration, read from the commit's tree (pure).
    let (tree_id, config) = {
        let repo = repo.clone();
        let commit = commit.to_string();
        tokio::task::spawn_blocking(move || -> std::result::Result<_, String> {
            let tree = repo.tree_id(&commit).map_err(|e| e.to_string())?;
            let paths = repo.list_files(&tree).map_err(|e| e.to_string())?;
            let source = GitTree {
                repo: repo.clone(),
                tree: tree.clone(),
                paths,
            };
            Ok((tree, grove_config::load(&source)))
        })
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
    failpoint(mode, "configured");

    // 2. Runtimes: only what this host really has.
    for app in &config.apps {
        match platform
            .catalog
            .resolve(&app.runtime.language, &app.runtime.version)
        {
            Ok(resolved) if resolved.via_alias => {
                log.line(format!("  App `{}`: {resolved}", app.name))
            }
            Ok(_) => {}
            Err(error) => return Err(format!("app `{}`: {error}", app.name)),
        }
        if app.web.commands.start.is_none() {
            return Err(format!(
                "app `{}` ({}): `web.commands.start` is required: grove runs the command that \
                 serves the app on $PORT",
                app.name, app.config_file
            ));
        }
    }

    // 3. Builds, reused by key.
    let mut builds = Vec::new();
    for app in &config.apps {
        let key = build_key(&tree_id, app);
        let dir = settings.builds_dir().join(&key);
        let exists = platform
            .store
            .build(&key)
            .map_err(|e| e.to_string())?
            .is_some()
            && dir.is_dir();
        if exists {
            log.line(format!(
                "Reusing build {} of app `{}` (tree {}): no build needed",
                short(&key),
                app.name,
                short(&tree_id)
            ));
        } else {
            build_app(platform, project, app, repo, &tree_id, &key, log).await?;
        }
        builds.push((app, dir));
    }
    failpoint(mode, "built");

    // 4. Routes of this environment.
    let routes = grove_config::expand_routes(
        &config,
        &grove_config::RouteContext {
            project: &project.id,
            environment: &env.machine_name,
            domain: &settings.domain,
            http_port: settings.http_listen.port(),
            https_port: None,
        },
    );
    // 5. The environment's volume, then its services, up and healthy before any app
    // starts or any hook runs.
    platform
        .ensure_volume(&project.id, env)
        .await
        .map_err(|e| format!("the data volume of `{}`: {e}", env.name))?;
    let retired = crate::services::reconcile(platform, project, env, &config, log).await?;
    failpoint(mode, "services-ready");

    // 6. The new instances. Ports are chosen first so that apps can find each other
    // through app-to-app relationships.
    let mut ports = BTreeMap::new();
    for (app, _) in &builds {
        let port = free_port().map_err(|e| format!("no free port for app `{}`: {e}", app.name))?;
        ports.insert(app.name.clone(), port);
    }
    let rel_ctx = grove_config::RelationshipContext {
        project: &project.id,
        environment: &env.machine_name,
    };
    let mut started: Vec<RunningApp> = Vec::new();
    let mut sandboxes: Vec<AppSandbox> = Vec::new();
    for (app, dir) in &builds {
        let port = ports[&app.name];
        let relationships = platform.with_services(&project.id, &env.name, |services| {
            grove_config::relationships_json(&config, app, &rel_ctx, &|service, endpoint| {
                crate::services::endpoint_access(services, service, endpoint).or_else(|| {
                    ports.get(service).map(|port| grove_config::EndpointAccess {
                        ip: Ipv4Addr::LOCALHOST.to_string(),
                        port: Some(*port),
                        username: None,
                        password: None,
                        path: None,
                        query: None,
                    })
                })
            })
        });
        let mut vars = grove_config::runtime_environment(&grove_config::RuntimeContext {
            project: &project.id,
            app,
            tree_id: &tree_id,
            project_entropy: &project.entropy,
            app_dir: APP_DIR,
            branch: &env.name,
            environment: &env.machine_name,
            environment_type: &env.kind,
            routes: &routes,
            relationships: &relationships,
            port,
        });
        // Upsun's flattened `<REL>_<FIELD>` variables, never over what the platform set.
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
        let sandbox = AppSandbox {
            app,
            build_dir: dir.clone(),
            env: vars,
            binds,
            hosts,
        };
        let spec = sandbox.spec(app.web.commands.start.as_deref().unwrap_or_default());
        let log_file = settings.log_file(&project.id, &env.machine_name, &app.name);
        log.line(format!("Starting app `{}` on port {port}", app.name));
        let instance = match Instance::spawn(spec, log_file) {
            Ok(instance) => Arc::new(instance),
            Err(error) => {
                stop_all(&started).await;
                return Err(format!("app `{}` could not start: {error}", app.name));
            }
        };
        let waiting = Instant::now();
        let ready = instance
            .wait_ready(
                SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                settings.app_start_timeout,
            )
            .await;
        if ready.is_ok() {
            log.line(format!(
                "  App `{}` accepted connections after {:.3}s",
                app.name,
                waiting.elapsed().as_secs_f64()
            ));
        }
        started.push(RunningApp {
            name: app.name.clone(),
            port,
            instance,
        });
        if let Err(error) = ready {
            stop_all(&started).await;
            return Err(format!("app `{}`: {error}", app.name));
        }
        // `post_start` is the app's own readiness check: the router only switches to an
        // instance it passed.
        if let Some(post_start) = app.web.commands.post_start.as_deref()
            && let Err(error) = sandbox.run_check("post_start", post_start, log).await
        {
            stop_all(&started).await;
            return Err(error);
        }
        sandboxes.push(sandbox);
    }

    failpoint(mode, "instances-started");

    // 7. The deploy hook (its failure does not stop the deploy, as on Platform.sh).
    // Meanwhile idempotent requests are held, not answered by the old code against
    // data the hook may be migrating; they go to the new instances at the switch.
    let owner = owner_key(&project.id, &env.name);
    let hold = platform.router.hold_guard(&owner, HOLD_TIMEOUT);
    if mode == DeployMode::Deploy {
        for sandbox in &sandboxes {
            sandbox
                .run_hook("deploy", sandbox.app.hooks.deploy.as_deref(), log)
                .await;
        }
    }

    failpoint(mode, "deploy-hook-done");

    // 8. The previous crons stop (a running one gets its shutdown timeout); then switch
    // the router, release the held requests, let the old instances finish what they
    // are answering, and stop them.
    let key = (project.id.clone(), env.name.clone());
    platform.replace_crons(&key, None).await;
    let entries = router_entries(&routes, &started, log);
    platform.router.set(&owner, entries);
    drop(hold);
    if let Some(primary) = routes.primary() {
        log.line(format!("Serving {}", primary.url));
    }
    failpoint(mode, "routes-switched");
    let previous = platform.swap_running(
        &project.id,
        &env.name,
        Some(RunningEnvironment {
            commit: commit.to_string(),
            routes: routes.clone(),
            apps: started,
        }),
    );
    if let Some(previous) = previous {
        for app in &previous.apps {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, app.port));
            if !platform.router.drained(addr, DRAIN_TIMEOUT).await {
                log.line(format!(
                    "W: the previous instance of `{}` still had requests in flight after {}s",
                    app.name,
                    DRAIN_TIMEOUT.as_secs()
                ));
            }
        }
        log.line(format!(
            "Stopping the previous deployment ({})",
            short(&previous.commit)
        ));
        stop_all(&previous.apps).await;
    }
    crate::services::retire(platform, &key, &retired, log).await;
    failpoint(mode, "previous-stopped");

    // 9. post_deploy, with traffic flowing.
    if mode == DeployMode::Deploy {
        for sandbox in &sandboxes {
            sandbox
                .run_hook("post_deploy", sandbox.app.hooks.post_deploy.as_deref(), log)
                .await;
        }
    }

    failpoint(mode, "post-deploy-done");

    // 10. The crons of the new deployment.
    let mut jobs = Vec::new();
    for sandbox in &sandboxes {
        for (name, cron) in &sandbox.app.crons {
            match grove_cron::Schedule::parse_with_seed(&cron.spec, name) {
                Ok(schedule) => jobs.push(crate::crons::CronJob {
                    app: sandbox.app.name.clone(),
                    name: name.clone(),
                    cron: cron.clone(),
                    schedule,
                    sandbox: sandbox.spec(""),
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
        platform.replace_crons(&key, Some(crons)).await;
    }
    Ok(tree_id)
}

/// The failpoints of a deploy (see `failpoint`): only deploys that run hooks (pushes,
/// merges, redeploys), not the restore at start-up, which would otherwise die again.
fn failpoint(mode: DeployMode, step: &str) {
    if mode == DeployMode::Deploy {
        crate::failpoint::hit(step);
    }
}

/// The build key: the tree, the app's build-relevant configuration and the variables a
/// build can see. The same key always means the same build.
pub fn build_key(tree_id: &str, app: &App) -> String {
    let mut hasher = Sha256::new();
    for part in [BUILD_FORMAT, tree_id, &app.name, &app.build_fingerprint()] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

async fn build_app(
    platform: &Arc<Platform>,
    project: &ProjectRow,
    app: &App,
    repo: &Repository,
    tree_id: &str,
    key: &str,
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
        let tree = tree_id.to_string();
        let root = app.source_root.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            for dir in [&work, &tmp] {
                if dir.exists() {
                    std::fs::remove_dir_all(dir)?;
                }
                std::fs::create_dir_all(dir)?;
            }
            std::fs::create_dir_all(&cache)?;
            repo.export(&tree, &root, &work)
                .map_err(std::io::Error::other)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("could not check out app `{}`: {e}", app.name))?;
    }
    let result = run_build_hook(platform, project, app, tree_id, &work, &cache, &tmp, log)
        .await
        .and_then(|()| create_mount_points(app, &work));
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
    tree_id: &str,
    work: &Path,
    cache: &Path,
    tmp: &Path,
    log: &ActivityLog,
) -> Outcome {
    let Some(hook) = app.hooks.build.as_deref() else {
        log.line("  No build hook");
        return Ok(());
    };
    let vars = grove_config::build_environment(&grove_config::BuildContext {
        project: &project.id,
        app,
        tree_id,
        project_entropy: &project.entropy,
        app_dir: APP_DIR,
        cache_dir: CACHE_DIR,
        output_dir: APP_DIR,
        vendor: "grove",
    });
    let mut spec = SandboxSpec::new(work, hook);
    spec.app_writable = true;
    spec.env = vars;
    spec.hostname = Some(app.name.clone());
    spec.tmp_dir = Some(tmp.to_path_buf());
    spec.binds.push(Bind {
        source: cache.to_path_buf().into(),
        target: CACHE_DIR.to_string(),
        writable: true,
    });
    log.line("  Running the build hook");
    let started = Instant::now();
    let mut on_line = |line: &str| log.line(format!("    {line}"));
    let outcome = grove_runtime::run_command(&spec, platform.settings.build_timeout, &mut on_line)
        .await
        .map_err(|e| format!("app `{}`: the build hook could not run: {e}", app.name))?;
    log.line(format!(
        "  Build hook finished in {:.3}s",
        started.elapsed().as_secs_f64()
    ));
    if outcome.success() {
        Ok(())
    } else {
        Err(format!(
            "app `{}`: the build hook failed ({outcome}); the environment keeps its previous deployment",
            app.name
        ))
    }
}

/// How an app runs in this deployment: its build, variables and mounts. The instance
/// and the runtime hooks get the same sandbox.
struct AppSandbox<'a> {
    app: &'a App,
    build_dir: PathBuf,
    env: Vec<(String, String)>,
    binds: Vec<Bind>,
    /// `/etc/hosts` with the relationships' host names.
    hosts: PathBuf,
}

impl AppSandbox<'_> {
    fn spec(&self, command: &str) -> SandboxSpec {
        let mut spec = SandboxSpec::new(&self.build_dir, command);
        spec.env = self.env.clone();
        spec.binds = self.binds.clone();
        spec.etc_hosts = Some(self.hosts.clone());
        spec.hostname = Some(self.app.name.clone());
        spec
    }

    /// Runs a command that must succeed (`post_start`).
    async fn run_check(&self, name: &str, command: &str, log: &ActivityLog) -> Outcome {
        let app = &self.app.name;
        log.line(format!("  Running {name} of app `{app}`"));
        let spec = self.spec(command);
        let mut on_line = |line: &str| log.line(format!("    {line}"));
        match grove_runtime::run_command(&spec, HOOK_TIMEOUT, &mut on_line).await {
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
        match grove_runtime::run_command(&spec, HOOK_TIMEOUT, &mut on_line).await {
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
            RouteKind::Upstream { app } => match apps.iter().find(|a| &a.name == app) {
                Some(running) => {
                    Target::Upstream(SocketAddr::from((Ipv4Addr::LOCALHOST, running.port)))
                }
                None => continue,
            },
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
        entries.push(RouteEntry {
            host: route.host.clone(),
            path: route.path.clone(),
            target,
        });
    }
    entries
}

async fn stop_all(apps: &[RunningApp]) {
    futures_util::future::join_all(apps.iter().map(|a| a.instance.stop(STOP_GRACE))).await;
}

async fn write_file(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    tokio::fs::write(path, contents).await
}

/// A loopback port nothing listens on right now.
fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}
