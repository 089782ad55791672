//! The platform: the state every operation works on, and the operations themselves.
//!
//! Each operation is an activity that takes the environment's lock, so that one runs
//! at a time per environment, computes what the environment should run and gets it
//! there (see `deploy`).

use std::collections::BTreeMap;
use std::sync::Arc;

use grove_git::{PushOptions, Repository, ZERO_ID};
use grove_store::{EnvironmentRow, ProjectRow, timestamp_now};
use tokio::sync::mpsc;

use crate::activity::{self, ActivityKind, ActivityLog};
use crate::deploy::{self, DeployMode};
use crate::error::{Error, Result};
use crate::names;
use crate::running::{EnvironmentServices, RunningEnvironment};
use crate::services;
pub(crate) use crate::state::{
    ActivitySpec, ENVIRONMENT_TYPES, EnvKey, Platform, STOP_GRACE, short,
};

impl Platform {
    // --- projects ------------------------------------------------------------------------

    pub fn create_project(
        &self,
        name: &str,
        title: Option<&str>,
        plan: Option<&str>,
        integration_limit: Option<u32>,
        development_crons: bool,
    ) -> Result<ProjectRow> {
        let plan = plan.unwrap_or("development");
        if !crate::tree::PLANS.contains(&plan) {
            return Err(Error::Invalid(format!(
                "unknown plan `{plan}`: use one of {}",
                crate::tree::PLANS.join(", ")
            )));
        }
        if !names::valid_project_name(name) {
            return Err(Error::Invalid(format!(
                "invalid project name `{name}`: use lower-case letters, digits and dashes \
                 (at most 48 characters), e.g. `{}`",
                names::machine_name(name)
            )));
        }
        let row = ProjectRow {
            id: name.to_string(),
            title: title.unwrap_or(name).to_string(),
            default_branch: None,
            entropy: crate::auth::random_alnum(56),
            created_at: timestamp_now(),
            plan: plan.to_string(),
            integration_limit: integration_limit.unwrap_or(2),
            development_crons,
        };
        self.store.insert_project(&row)?;
        self.settings.repository(name).init()?;
        Ok(row)
    }

    // --- running state -------------------------------------------------------------------------

    /// Checks every running service every few seconds. A restarted service process and
    /// a service that stays unhealthy are reported as `environment.health` activities;
    /// after repeated failures `environment:info` shows the environment as degraded.
    pub async fn watch_health(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(services::CHECK_INTERVAL) => {}
            }
            let keys: Vec<EnvKey> = {
                let all = self.services.lock().unwrap_or_else(|e| e.into_inner());
                all.keys().cloned().collect()
            };
            for (project, env) in keys {
                // Health checks own the environment too: a deploy or a data copy in
                // progress changes its services, so this round skips it.
                let Some(_owned) = self.owners.try_acquire((project.clone(), env.clone())) else {
                    continue;
                };
                let before = self.service_health(&project, &env);
                let entries: Vec<services::ServiceEntryView> =
                    self.with_services(&project, &env, |services| {
                        services
                            .iter()
                            .map(|(n, e)| services::ServiceEntryView::of(n, e))
                            .collect()
                    });
                let mut after = BTreeMap::new();
                for entry in entries {
                    let name = entry.name.clone();
                    let now = services::check(&entry, before.get(&name)).await;
                    if let Some(message) = services::health_change(&name, before.get(&name), &now) {
                        self.report_health(
                            &project,
                            &env,
                            &message,
                            now.healthy && now.failures == 0,
                        )
                        .await;
                    }
                    after.insert(name, now);
                }
                // Only while the environment still runs services: a stop may have
                // happened during the checks.
                let running = self.with_services(&project, &env, |s| !s.is_empty());
                let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
                if running {
                    health.insert((project, env), after);
                } else {
                    health.remove(&(project, env));
                }
            }
            self.report_oom_kills().await;
        }
    }

    /// Says in an activity when the kernel killed a process of a running
    /// environment because the environment was at its memory limit.
    async fn report_oom_kills(&self) {
        if self.cgroups.is_none() {
            return;
        }
        let keys: Vec<EnvKey> = {
            let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            running.keys().cloned().collect()
        };
        for (project, env) in keys {
            let Ok(row) = self.environment(&project, &env) else {
                continue;
            };
            let group = crate::state::env_cgroup_name(&project, &row.machine_name);
            let kills = self.cgroup_oom_kills(&group);
            let reported = self
                .oom_reported
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert((project.clone(), env.clone()), kills)
                .unwrap_or(0);
            if kills > reported {
                let limit = self
                    .cgroups
                    .as_ref()
                    .and_then(|c| c.memory_limit(&group))
                    .map_or_else(String::new, |bytes| format!(" of {} MB", bytes >> 20));
                let message = format!(
                    "Out of memory: the kernel killed {} process(es) of `{env}`, which was at its \
                     memory limit{limit} (set by its apps' and services' `size`)",
                    kills - reported
                );
                self.report_health(&project, &env, &message, false).await;
            }
        }
    }

    async fn report_health(&self, project: &str, env: &str, message: &str, ok: bool) {
        match activity::create(
            &self.store,
            &self.logs,
            project,
            Some(env),
            ActivityKind::Health,
            message.lines().next().unwrap_or(message).to_string(),
            None,
        ) {
            Ok((row, log)) => {
                log.line(message);
                let _ = self.store.start_activity(&row.id);
                activity::complete(&self.logs, &row.id, if ok { "success" } else { "failure" })
                    .await;
            }
            Err(error) => tracing::error!(%error, "Could not record a health change."),
        }
        tracing::warn!(project, env, message, "Service health changed.");
    }

    /// Stops every instance: the server is shutting down.
    pub async fn shutdown(&self) {
        let all: Vec<RunningEnvironment> = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            running.drain().map(|(_, r)| r).collect()
        };
        let stops = all
            .iter()
            .flat_map(|env| env.apps.iter())
            .map(|app| app.instance.stop(STOP_GRACE));
        futures_util::future::join_all(stops).await;
        let crons: Vec<crate::running::EnvironmentCrons> = {
            let mut all = self.crons.lock().unwrap_or_else(|e| e.into_inner());
            all.drain().map(|(_, c)| c).collect()
        };
        for crons in crons {
            crons.stop().await;
        }
        let services: Vec<EnvironmentServices> = {
            let mut all = self.services.lock().unwrap_or_else(|e| e.into_inner());
            all.drain().map(|(_, s)| s).collect()
        };
        for env_services in services {
            services::stop_all(self, env_services, None).await;
        }
    }

    // --- activities ------------------------------------------------------------------------

    /// Runs a deploy of `commit` into the spec's environment as an activity.
    fn spawn_deploy(
        self: &Arc<Self>,
        spec: ActivitySpec,
        commit: String,
        mode: DeployMode,
    ) -> Result<(String, tokio::task::JoinHandle<bool>)> {
        let (project, env) = (spec.project.clone(), spec.env.clone());
        self.spawn_activity(spec, move |platform, log| async move {
            let repo = platform.settings.repository(&project);
            deploy::deploy(&platform, &project, &env, &repo, &commit, mode, &log).await
        })
    }

    // --- pushes ----------------------------------------------------------------------------

    /// Handles the ref updates of one `git push` (called by the pre-receive hook before
    /// git accepts them). Every line goes to `tee`; returns whether the push may land.
    pub async fn receive_push(
        self: &Arc<Self>,
        push: grove_api::PreReceive,
        tee: mpsc::UnboundedSender<String>,
    ) -> bool {
        let project = match self.project(&push.project) {
            Ok(p) => p,
            Err(e) => {
                let _ = tee.send(format!("E: {e}"));
                return false;
            }
        };
        let options = PushOptions::parse(&push.push_options);
        for unknown in &options.unknown {
            let _ = tee.send(format!("W: ignoring unknown push option `{unknown}`"));
        }
        if let Some(kind) = &options.kind
            && !ENVIRONMENT_TYPES.contains(&kind.as_str())
        {
            let _ = tee.send(format!(
                "E: invalid environment.type `{kind}`: use one of {}",
                ENVIRONMENT_TYPES.join(", ")
            ));
            return false;
        }
        // Git accepts all the refs of a push or none: updates go first, deletions (which
        // cannot be undone) only once every update is live, and when a ref fails the
        // environments this push already deployed go back to what they ran.
        let (deletions, updates): (Vec<_>, Vec<_>) =
            push.updates.iter().partition(|u| u.new == ZERO_ID);
        let mut landed: Vec<Landed> = Vec::new();
        for update in &updates {
            let Some(branch) = update.name.strip_prefix("refs/heads/") else {
                let _ = tee.send(format!("Accepted {} (not a branch)", update.name));
                continue;
            };
            let before = self.store.environment(&project.id, branch).ok().flatten();
            let previous = self
                .store
                .last_successful_deployment(&project.id, branch)
                .ok()
                .flatten()
                .map(|d| d.commit_id);
            if !self
                .push_update(&project, branch, update, &push, &options, &tee)
                .await
            {
                self.roll_back_push(&project.id, landed, &tee).await;
                return false;
            }
            landed.push(Landed {
                branch: branch.to_string(),
                created: before.is_none_or(|e| e.name != branch),
                previous,
            });
        }
        for update in &deletions {
            let Some(branch) = update.name.strip_prefix("refs/heads/") else {
                let _ = tee.send(format!("Accepted {} (not a branch)", update.name));
                continue;
            };
            if !self.push_delete(&project, branch, &tee).await {
                self.roll_back_push(&project.id, landed, &tee).await;
                return false;
            }
        }
        true
    }

    /// A ref of a push failed, so git keeps every ref where it was: the environments the
    /// push already deployed go back to their previous deployment (hooks do not run
    /// again), and those it created are removed, so that refs and deployments agree.
    async fn roll_back_push(
        self: &Arc<Self>,
        project: &str,
        landed: Vec<Landed>,
        tee: &mpsc::UnboundedSender<String>,
    ) {
        for landed in landed.into_iter().rev() {
            let env = match self.store.environment(project, &landed.branch) {
                Ok(Some(env)) => env,
                _ => continue,
            };
            if landed.created {
                let _ = tee.send(format!(
                    "Removing `{}`: this push created it, and the push is refused",
                    env.name
                ));
                self.run_delete(project, &env.name, Some(tee.clone()), false)
                    .await;
                continue;
            }
            let Some(previous) = landed.previous else {
                continue;
            };
            if env.status != "active" {
                continue;
            }
            let _ = tee.send(format!(
                "Rolling `{}` back to {}: a later ref of this push failed, so its branch does not move",
                env.name,
                short(&previous)
            ));
            let spawned = self.spawn_deploy(
                ActivitySpec::new(
                    project,
                    &env.name,
                    ActivityKind::Redeploy,
                    format!(
                        "Roll {} back: the push that deployed it was refused",
                        env.name
                    ),
                )
                .tee(Some(tee.clone())),
                previous,
                DeployMode::Rollback,
            );
            if let Ok((_, handle)) = spawned {
                let _ = handle.await;
            }
        }
    }

    async fn push_delete(
        self: &Arc<Self>,
        project: &ProjectRow,
        branch: &str,
        tee: &mpsc::UnboundedSender<String>,
    ) -> bool {
        let env = match self.store.environment(&project.id, branch) {
            Ok(Some(env)) if env.name == branch => env,
            Ok(_) => return true,
            Err(e) => {
                let _ = tee.send(format!("E: {e}"));
                return false;
            }
        };
        if env.kind == "production" {
            let _ = tee.send(format!(
                "E: `{branch}` is the production environment's branch and cannot be deleted"
            ));
            return false;
        }
        self.run_delete(&project.id, &env.name, Some(tee.clone()), false)
            .await
    }

    async fn push_update(
        self: &Arc<Self>,
        project: &ProjectRow,
        branch: &str,
        update: &grove_api::RefUpdate,
        push: &grove_api::PreReceive,
        options: &PushOptions,
        tee: &mpsc::UnboundedSender<String>,
    ) -> bool {
        let (env, created) = match self.ensure_environment(project, branch, options, tee) {
            Ok(found) => found,
            Err(e) => {
                let _ = tee.send(format!("E: {e}"));
                return false;
            }
        };
        if project.plan == "pro"
            && (env.kind == "production" || env.kind == "staging")
            && update.old != ZERO_ID
        {
            let _ = tee.send(format!(
                "E: in a pro project `{}` ({}) accepts code only by merge from its child, so that \
                 what ships is what was tested there: push to an integration environment and run \
                 `grove environment:merge`",
                env.name, env.kind
            ));
            return false;
        }
        let commit = update.new.clone();
        let old = update.old.clone();
        let git_env = quarantine_env(&self.settings.repository(&project.id), &push.git_env);
        let active = env.status == "active";
        let description = match &push.user {
            Some(user) => format!("{user} pushed to {}", env.name),
            None => format!("Push to {}", env.name),
        };
        let env_name = env.name.clone();
        let project_id = project.id.clone();
        let spawned = self.spawn_activity(
            ActivitySpec::new(&project.id, &env.name, ActivityKind::Push, description).tee(Some(tee.clone())),
            move |platform, log| async move {
                // Checked under the lock: another push, a merge or a synchronize may have
                // moved the branch while this push waited.
                let head = platform
                    .settings
                    .repository(&project_id)
                    .branch_head(&env_name)
                    .map_err(|e| e.to_string())?;
                let expected = (old != ZERO_ID).then_some(old.as_str());
                if head.as_deref() != expected {
                    return Err(format!(
                        "`{env_name}` moved while this push waited: fetch, then push again"
                    ));
                }
                log.line(format!("Pushed {} to branch `{env_name}`", short(&commit)));
                if !active {
                    log.line(format!(
                        "Environment `{env_name}` is inactive: the code is stored, nothing is \
                         deployed. Activate it with `grove environment:activate -p {project_id} -e {env_name}`."
                    ));
                    return Ok(());
                }
                let repo = platform.settings.repository(&project_id).with_env(git_env);
                let result = deploy::deploy(&platform, &project_id, &env_name, &repo, &commit, DeployMode::Deploy, &log).await;
                if result.is_err() && created {
                    // Git refuses the branch: the environment this push created goes too.
                    if let Ok(env) = platform.environment(&project_id, &env_name) {
                        let _ = platform.delete_locked(&project_id, &env, false, &log).await;
                    }
                }
                result
            },
        );
        match spawned {
            Ok((_, handle)) => handle.await.unwrap_or(false),
            Err(e) => {
                let _ = tee.send(format!("E: {e}"));
                false
            }
        }
    }

    /// The environment of a pushed branch, created on its first push.
    fn ensure_environment(
        &self,
        project: &ProjectRow,
        branch: &str,
        options: &PushOptions,
        tee: &mpsc::UnboundedSender<String>,
    ) -> Result<(EnvironmentRow, bool)> {
        if let Some(env) = self.store.environment(&project.id, branch)?
            && env.name == branch
        {
            return Ok((env, false));
        }
        // Read afresh: an earlier ref of the same push may have set it.
        let mut default_branch = self.project(&project.id)?.default_branch;
        if default_branch.is_none() && (branch == "main" || branch == "master") {
            self.store.set_default_branch(&project.id, branch)?;
            default_branch = Some(branch.to_string());
        }
        let is_production = default_branch.as_deref() == Some(branch);
        let parent = if is_production {
            None
        } else if let Some(parent) = &options.parent {
            Some(self.environment(&project.id, parent)?.name)
        } else {
            default_branch.clone()
        };
        let kind = if is_production {
            "production".to_string()
        } else {
            match options.kind.as_deref() {
                Some("production") => {
                    return Err(Error::Invalid(format!(
                        "only the default branch `{}` is production",
                        default_branch.unwrap_or_default()
                    )));
                }
                Some(kind) => kind.to_string(),
                None => "development".to_string(),
            }
        };
        // Activation by push option stays within the plan: past its limit the branch is
        // stored and its environment created inactive, saying why.
        let mut activate = is_production || options.activate;
        // Held until the row is stored: the check and the activation are one step.
        let _plan = activate.then(|| self.plan_lock.lock().unwrap_or_else(|e| e.into_inner()));
        if activate
            && !is_production
            && let Err(limit) = self.check_plan(&self.project(&project.id)?, &kind, None)
        {
            let _ = tee.send(format!("W: `{branch}` is not activated: {limit}"));
            activate = false;
        }
        let machine_name = self.unique_machine_name(&project.id, branch)?;
        let now = timestamp_now();
        let row = EnvironmentRow {
            project: project.id.clone(),
            name: branch.to_string(),
            machine_name: machine_name.clone(),
            title: options.title.clone().unwrap_or_else(|| branch.to_string()),
            kind,
            status: if activate {
                "active".into()
            } else {
                "inactive".into()
            },
            parent,
            created_at: now.clone(),
            updated_at: now,
            crons: None,
        };
        self.store.insert_environment(&row)?;
        let mapping = if machine_name != branch {
            format!(" (machine name `{machine_name}`)")
        } else {
            String::new()
        };
        let _ = tee.send(format!(
            "Created {} environment `{branch}`{mapping}, {}{}",
            row.kind,
            row.status,
            row.parent
                .as_ref()
                .map(|p| format!(", parent `{p}`"))
                .unwrap_or_default()
        ));
        Ok((row, true))
    }

    // --- environment operations ---------------------------------------------------------------

    pub fn deactivate(self: &Arc<Self>, project: &str, env: &str) -> Result<String> {
        let env = self.environment(project, env)?;
        if env.kind == "production" {
            return Err(Error::Conflict(format!(
                "`{}` is the production environment and cannot be deactivated",
                env.name
            )));
        }
        if env.status != "active" {
            return Err(Error::Conflict(format!(
                "environment `{}` is not active",
                env.name
            )));
        }
        let project = project.to_string();
        let (id, _) = self.spawn_activity(
            ActivitySpec::new(
                &project,
                &env.name,
                ActivityKind::Deactivate,
                format!("Deactivate {}", env.name),
            ),
            move |platform, log| async move {
                platform.stop_environment(&project, &env, &log).await;
                platform
                    .store
                    .set_environment_status(&project, &env.name, "inactive")
                    .map_err(|e| e.to_string())?;
                log.line(format!("Environment `{}` is inactive", env.name));
                Ok(())
            },
        )?;
        Ok(id)
    }

    pub fn redeploy(self: &Arc<Self>, project: &str, env: &str) -> Result<String> {
        let env = self.environment(project, env)?;
        if env.status != "active" {
            return Err(Error::Conflict(format!(
                "environment `{}` is not active: activate it first",
                env.name
            )));
        }
        let project_ref = project;
        let project = project.to_string();
        let name = env.name.clone();
        let (id, _) = self.spawn_activity(
            ActivitySpec::new(
                project_ref,
                &env.name,
                ActivityKind::Redeploy,
                format!("Redeploy {}", env.name),
            ),
            move |platform, log| async move {
                // Checked again under the lock: an activity queued before this one may
                // have deactivated the environment.
                if !platform.is_active(&project, &name) {
                    return Err(format!("environment `{name}` is no longer active"));
                }
                let repo = platform.settings.repository(&project);
                let commit = match platform.store.last_successful_deployment(&project, &name) {
                    Ok(Some(d)) => d.commit_id,
                    _ => repo
                        .branch_head(&name)
                        .map_err(|e| e.to_string())?
                        .ok_or_else(|| format!("branch `{name}` has no commits"))?,
                };
                deploy::deploy(
                    &platform,
                    &project,
                    &name,
                    &repo,
                    &commit,
                    DeployMode::Deploy,
                    &log,
                )
                .await
            },
        )?;
        Ok(id)
    }

    pub fn delete(
        self: &Arc<Self>,
        project: &str,
        env: &str,
        delete_branch: bool,
    ) -> Result<String> {
        let env = self.environment(project, env)?;
        if env.kind == "production" {
            return Err(Error::Conflict(format!(
                "`{}` is the production environment and cannot be deleted",
                env.name
            )));
        }
        let project = project.to_string();
        let (id, _) = self.spawn_activity(
            ActivitySpec::new(
                &project,
                &env.name,
                ActivityKind::Delete,
                format!("Delete {}", env.name),
            ),
            move |platform, log| async move {
                platform
                    .delete_locked(&project, &env, delete_branch, &log)
                    .await
            },
        )?;
        Ok(id)
    }

    async fn run_delete(
        self: &Arc<Self>,
        project: &str,
        env_name: &str,
        tee: Option<mpsc::UnboundedSender<String>>,
        delete_branch: bool,
    ) -> bool {
        let env = match self.environment(project, env_name) {
            Ok(env) => env,
            Err(_) => return true,
        };
        let spawned = self.spawn_activity(
            ActivitySpec::new(
                project,
                env_name,
                ActivityKind::Delete,
                format!("Delete {env_name}"),
            )
            .tee(tee),
            {
                let project = project.to_string();
                move |platform, log| async move {
                    platform
                        .delete_locked(&project, &env, delete_branch, &log)
                        .await
                }
            },
        );
        match spawned {
            Ok((_, handle)) => handle.await.unwrap_or(false),
            Err(_) => false,
        }
    }

    async fn delete_locked(
        &self,
        project: &str,
        env: &EnvironmentRow,
        delete_branch: bool,
        log: &ActivityLog,
    ) -> std::result::Result<(), String> {
        self.stop_environment(project, env, log).await;
        self.store
            .delete_deployments(project, &env.name)
            .map_err(|e| e.to_string())?;
        self.store
            .delete_environment(project, &env.name)
            .map_err(|e| e.to_string())?;
        if delete_branch {
            let repo = self.settings.repository(project);
            let name = env.name.clone();
            tokio::task::spawn_blocking(move || repo.delete_branch(&name))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            log.line(format!("Deleted branch `{}`", env.name));
        }
        log.line(format!("Deleted environment `{}`", env.name));
        Ok(())
    }

    // --- start-up -------------------------------------------------------------------------------

    /// Brings every active environment back to its last successful deployment: the same
    /// path as a deploy, from an empty observed state, without re-running hooks.
    pub async fn recover(self: &Arc<Self>) {
        let failed = self.store.fail_unfinished_activities(
            "E: the grove server stopped while this activity was running",
        );
        match failed {
            Ok(ids) if !ids.is_empty() => {
                tracing::warn!(
                    count = ids.len(),
                    "Marked interrupted activities as failed."
                );
            }
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "Could not mark interrupted activities."),
        }
        self.restore_kept_volumes().await;
        self.discard_backup_volumes().await;
        if let Ok(count @ 1..) = self
            .store
            .fail_running_backups("the server stopped while the backup ran")
        {
            tracing::warn!(count, "Marked interrupted backups as failed.");
        }
        let projects = match self.store.projects() {
            Ok(p) => p,
            Err(error) => {
                tracing::error!(%error, "Could not list projects to recover.");
                return;
            }
        };
        for project in projects {
            if let Err(error) = self.settings.repository(&project.id).init() {
                tracing::error!(project = %project.id, %error, "Could not refresh the repository.");
            }
            let envs = self.store.environments(&project.id).unwrap_or_default();
            for env in envs.into_iter().filter(|e| e.status == "active") {
                let Ok(Some(deployment)) = self
                    .store
                    .last_successful_deployment(&project.id, &env.name)
                else {
                    // Marked active by an activation or a branch that the stop cut
                    // short: it runs nothing, so it must not hold a plan slot.
                    tracing::warn!(project = %project.id, env = %env.name,
                        "An active environment was never deployed: marking it inactive.");
                    let _ = self
                        .store
                        .set_environment_status(&project.id, &env.name, "inactive");
                    continue;
                };
                let spawned = self.spawn_deploy(
                    ActivitySpec::new(
                        &project.id,
                        &env.name,
                        ActivityKind::Redeploy,
                        format!("Restart {} after a server restart", env.name),
                    ),
                    deployment.commit_id,
                    DeployMode::Restore,
                );
                if let Err(error) = spawned {
                    tracing::error!(project = %project.id, env = %env.name, %error, "Could not restore an environment.");
                }
            }
        }
    }
}

impl Platform {
    /// Data kept aside by an operation the server did not finish (a synchronisation
    /// cut short) goes back into its environment: that operation failed.
    async fn restore_kept_volumes(&self) {
        let volumes = self.volumes.clone();
        let restored = tokio::task::spawn_blocking(move || {
            let mut restored = Vec::new();
            for kept in volumes.list("") {
                let Some(own) = kept.as_str().strip_suffix(crate::lifecycle::KEPT_SUFFIX) else {
                    continue;
                };
                let outcome = grove_volumes::VolumeId::new(own)
                    .and_then(|own| volumes.replace_with_clone(&kept, &own))
                    .and_then(|_| volumes.delete(&kept));
                restored.push((kept.to_string(), outcome.map_err(|e| e.to_string())));
            }
            restored
        })
        .await
        .unwrap_or_default();
        for (kept, outcome) in restored {
            match outcome {
                Ok(()) => tracing::warn!(volume = %kept,
                    "Put back the data an interrupted operation had kept aside."),
                Err(error) => tracing::error!(volume = %kept, %error,
                    "Could not put back the data an interrupted operation kept aside."),
            }
        }
    }
}

/// A ref of a push that was deployed, and what its environment ran before.
struct Landed {
    branch: String,
    /// The push created the environment.
    created: bool,
    /// The commit of its last successful deployment before the push.
    previous: Option<String>,
}

/// The quarantine variables of a push in progress, and nothing else: only git's object
/// directories, and only inside the project's repository.
fn quarantine_env(repo: &Repository, env: &[(String, String)]) -> Vec<(String, String)> {
    const ALLOWED: &[&str] = &[
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_QUARANTINE_PATH",
    ];
    env.iter()
        .filter(|(name, value)| {
            ALLOWED.contains(&name.as_str())
                && value.split(':').all(|p| {
                    let path = std::path::Path::new(p);
                    path.is_absolute()
                        && path.starts_with(repo.path())
                        && !path
                            .components()
                            .any(|c| c == std::path::Component::ParentDir)
                })
        })
        .cloned()
        .collect()
}
