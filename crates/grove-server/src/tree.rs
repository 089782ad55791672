//! The environment tree: branching with a copy of the parent's data, activation,
//! synchronising code and data down, merging code up, types and plan limits.
//!
//! Every operation that fills an environment's data ends in the same two steps:
//! "fill its volume from that source" (`fill_from_parent`), then "deploy".

use std::sync::Arc;

use grove_deployment::DataSource;
use grove_store::{EnvironmentRow, ProjectRow, timestamp_now};

use crate::activity::{ActivityKind, ActivityLog};
use crate::deploy::{self, DeployMode};
use crate::error::{Error, Result};
use crate::services;
use crate::state::{ActivitySpec, ENVIRONMENT_TYPES, Platform, short};

/// Plans: how many environments may be active at once.
pub const PLANS: &[&str] = &["development", "starter", "pro"];
/// Starter: production included.
const STARTER_LIMIT: usize = 4;

/// What `environment:branch` asks for.
pub struct BranchRequest {
    pub name: String,
    pub parent: Option<String>,
    pub kind: Option<String>,
    pub title: Option<String>,
    pub clone_parent: bool,
}

/// What `environment:synchronize` asks for.
pub struct SyncRequest {
    pub code: bool,
    pub data: bool,
    pub rebase: bool,
}

impl Platform {
    /// The parent an operation works with (`what`: "merge into", ...).
    fn parent_of(&self, project: &str, env: &EnvironmentRow, what: &str) -> Result<EnvironmentRow> {
        let name = env.parent.as_deref().ok_or_else(|| {
            Error::Conflict(format!(
                "environment `{}` has no parent to {what}",
                env.name
            ))
        })?;
        self.environment(project, name)
    }

    /// Checks the plan's limit and makes the change it allows (`activate`: one more
    /// active environment of type `kind`) in one step: concurrent activations cannot
    /// both take the last slot. Reads the project and its environments afresh.
    pub(crate) fn within_plan<T>(
        &self,
        project: &str,
        kind: &str,
        changing: Option<&str>,
        activate: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let _plan = self.plan_lock.lock().unwrap_or_else(|e| e.into_inner());
        let project = self.project(project)?;
        self.check_plan(&project, kind, changing)?;
        activate()
    }

    /// Refuses to make one more environment of type `kind` active past the project's
    /// plan; `changing` is an active environment that changes type (it does not count).
    pub(crate) fn check_plan(
        &self,
        project: &ProjectRow,
        kind: &str,
        changing: Option<&str>,
    ) -> Result<()> {
        let envs = self.store.environments(&project.id)?;
        let active: Vec<&EnvironmentRow> = envs
            .iter()
            .filter(|e| e.status == "active" && Some(e.name.as_str()) != changing)
            .collect();
        let free_a_slot = "deactivate or delete an environment to free a slot \
                           (`grove environment:deactivate -e NAME`)";
        match project.plan.as_str() {
            "starter" if active.len() >= STARTER_LIMIT => Err(Error::Conflict(format!(
                "the starter plan of `{}` allows {STARTER_LIMIT} active environments, production \
                 included, and {} are active ({}): {free_a_slot}",
                project.id,
                active.len(),
                active
                    .iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            "pro" => {
                let same: Vec<&&EnvironmentRow> =
                    active.iter().filter(|e| e.kind == kind).collect();
                let limit = match kind {
                    "production" | "staging" => 1,
                    _ => project.integration_limit as usize,
                };
                if same.len() >= limit {
                    return Err(Error::Conflict(format!(
                        "the pro plan of `{}` allows {limit} active {kind} environment(s) and \
                         {} is active ({}): {free_a_slot}",
                        project.id,
                        same.len(),
                        same.iter()
                            .map(|e| e.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// `environment:branch`: a new branch from the parent's head and an active child
    /// environment with a copy of the parent's data, running the parent's build.
    pub fn branch(self: &Arc<Self>, project: &str, request: BranchRequest) -> Result<String> {
        let (parent, child, head) = self.create_branch(project, &request)?;
        let repo = self.settings.repository(project);
        let project_id = project.to_string();
        let clone_parent = request.clone_parent;
        let spawned = self.spawn_activity(
            ActivitySpec::new(
                project,
                &child.name,
                ActivityKind::Branch,
                format!("Branch {} from {}", child.name, parent.name),
            )
            .also(&parent.name),
            move |platform, log| async move {
                log.line(format!(
                    "Created branch `{}` at {} from `{}`",
                    child.name,
                    short(&head),
                    parent.name
                ));
                let result = platform
                    .populate_and_deploy(&project_id, &parent, &child, &head, clone_parent, &log)
                    .await;
                if result.is_err() {
                    platform
                        .remove_failed_branch(&project_id, &child, &log)
                        .await;
                }
                result
            },
        );
        match spawned {
            Ok((id, _)) => Ok(id),
            Err(e) => {
                let _ = self.store.delete_environment(project, &request.name);
                let _ = repo.delete_branch(&request.name);
                Err(e)
            }
        }
    }

    /// A failed new environment goes with its branch: nothing half-made stays, the
    /// parent is untouched.
    pub(crate) async fn remove_failed_branch(
        &self,
        project: &str,
        child: &EnvironmentRow,
        log: &ActivityLog,
    ) {
        self.stop_environment(project, child, log).await;
        let _ = self.store.delete_deployments(project, &child.name);
        let _ = self.store.delete_environment(project, &child.name);
        let _ = self.settings.repository(project).delete_branch(&child.name);
        log.line(format!(
            "Removed the failed environment `{}` and its branch",
            child.name
        ));
    }

    /// The checks of a new environment branched from a parent, its record and its
    /// branch at the parent's head: `(parent, child, head)`. Nothing is deployed yet.
    pub(crate) fn create_branch(
        self: &Arc<Self>,
        project: &str,
        request: &BranchRequest,
    ) -> Result<(EnvironmentRow, EnvironmentRow, String)> {
        let project_row = self.project(project)?;
        let default_parent = project_row.default_branch.clone().ok_or_else(|| {
            Error::Conflict(format!(
                "project `{project}` has no environments yet: push its default branch first"
            ))
        })?;
        let parent = self.environment(
            project,
            request.parent.as_deref().unwrap_or(&default_parent),
        )?;
        let kind = request.kind.clone().unwrap_or_else(|| "development".into());
        if !ENVIRONMENT_TYPES.contains(&kind.as_str()) || kind == "production" {
            return Err(Error::Invalid(format!(
                "invalid type `{kind}` for a new environment: use staging or development \
                 (production is the default branch's)"
            )));
        }
        if project_row.plan == "pro" && parent.kind == "production" && kind != "staging" {
            return Err(Error::Conflict(format!(
                "in a pro project nothing branches from production `{}` but its staging \
                 environment: branch from staging or from an integration environment",
                parent.name
            )));
        }
        if !grove_git::valid_branch_name(&request.name) {
            return Err(Error::Invalid(format!(
                "`{}` is not a valid branch name (see `git check-ref-format`)",
                request.name
            )));
        }
        if self.store.environment(project, &request.name)?.is_some() {
            return Err(Error::Conflict(format!(
                "environment `{}` already exists",
                request.name
            )));
        }
        let repo = self.settings.repository(project);
        if repo.branch_head(&request.name)?.is_some() {
            return Err(Error::Conflict(format!(
                "branch `{}` already exists: push to it, or activate its environment",
                request.name
            )));
        }
        if request.clone_parent && parent.status != "active" {
            return Err(Error::Conflict(format!(
                "the parent `{}` is inactive and has no data to copy: activate it, or branch \
                 with --no-clone-parent",
                parent.name
            )));
        }
        self.check_plan(&project_row, &kind, None)?;
        let head = repo.branch_head(&parent.name)?.ok_or_else(|| {
            Error::Conflict(format!("the parent `{}` has no commits", parent.name))
        })?;
        let machine_name = self.unique_machine_name(project, &request.name)?;
        let now = timestamp_now();
        let child = EnvironmentRow {
            project: project.to_string(),
            name: request.name.clone(),
            machine_name,
            title: request
                .title
                .clone()
                .unwrap_or_else(|| request.name.clone()),
            kind,
            status: "active".into(),
            parent: Some(parent.name.clone()),
            created_at: now.clone(),
            updated_at: now,
            crons: None,
        };
        self.within_plan(project, &child.kind, None, || {
            Ok(self.store.insert_environment(&child)?)
        })?;
        if let Err(e) = repo.set_branch(&child.name, &head, None) {
            let _ = self.store.delete_environment(project, &child.name);
            return Err(e.into());
        }
        Ok((parent, child, head))
    }

    /// Fills a new or newly activated environment's data (a copy of its parent's, or
    /// empty) and deploys its branch.
    async fn populate_and_deploy(
        self: &Arc<Self>,
        project: &str,
        parent: &EnvironmentRow,
        child: &EnvironmentRow,
        head: &str,
        clone_parent: bool,
        log: &ActivityLog,
    ) -> std::result::Result<(), String> {
        let data = if clone_parent {
            DataSource::CopyOf {
                environment: parent.name.clone(),
            }
        } else {
            log.line("Starting with empty services and mounts (not copied from the parent)");
            DataSource::Keep
        };
        let repo = self.settings.repository(project);
        deploy::deploy_with_data(
            self,
            project,
            &child.name,
            &repo,
            head,
            data,
            DeployMode::Deploy,
            log,
        )
        .await
    }

    /// `environment:activate`: an inactive environment gets a copy of its parent's data
    /// (when the parent is active) and is deployed.
    pub fn activate(self: &Arc<Self>, project: &str, env: &str) -> Result<String> {
        let project_row = self.project(project)?;
        let env = self.environment(project, env)?;
        if env.status == "active" {
            return Err(Error::Conflict(format!(
                "environment `{}` is already active",
                env.name
            )));
        }
        self.check_plan(&project_row, &env.kind, None)?;
        let parent = match &env.parent {
            Some(p) => self.store.environment(project, p)?,
            None => None,
        };
        let project_id = project.to_string();
        let (id, _) = self.spawn_activity(
            {
                let spec = ActivitySpec::new(
                    project,
                    &env.name,
                    ActivityKind::Activate,
                    format!("Activate {}", env.name),
                );
                match &parent {
                    Some(parent) => spec.also(&parent.name),
                    None => spec,
                }
            },
            move |platform, log| async move {
                // Checked again under the lock: two activations may have been queued.
                if platform.is_active(&project_id, &env.name) {
                    return Err(format!("environment `{}` is already active", env.name));
                }
                let repo = platform.settings.repository(&project_id);
                let head = repo
                    .branch_head(&env.name)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("branch `{}` has no commits", env.name))?;
                // The plan's limit, checked again with the activation in one step.
                let kind = platform
                    .environment(&project_id, &env.name)
                    .map_err(|e| e.to_string())?
                    .kind;
                platform
                    .within_plan(&project_id, &kind, None, || {
                        Ok(platform.store.set_environment_status(
                            &project_id,
                            &env.name,
                            "active",
                        )?)
                    })
                    .map_err(|e| e.to_string())?;
                let result = match &parent {
                    Some(parent) if parent.status == "active" => {
                        platform
                            .populate_and_deploy(&project_id, parent, &env, &head, true, &log)
                            .await
                    }
                    _ => {
                        log.line(
                            "No active parent to copy data from: starting with empty services",
                        );
                        deploy::deploy(
                            &platform,
                            &project_id,
                            &env.name,
                            &repo,
                            &head,
                            DeployMode::Deploy,
                            &log,
                        )
                        .await
                    }
                };
                if result.is_err() {
                    platform.stop_environment(&project_id, &env, &log).await;
                    let _ =
                        platform
                            .store
                            .set_environment_status(&project_id, &env.name, "inactive");
                }
                result
            },
        )?;
        Ok(id)
    }

    /// `environment:synchronize`: code (fast-forward, or `--rebase`) and/or data (a new
    /// copy of the parent's) from the parent, then a redeploy.
    pub fn synchronize(
        self: &Arc<Self>,
        project: &str,
        env: &str,
        request: SyncRequest,
    ) -> Result<String> {
        let env = self.environment(project, env)?;
        if !request.code && !request.data {
            return Err(Error::Invalid(
                "synchronize what? Say `code`, `data` or both".into(),
            ));
        }
        if env.kind == "production" {
            return Err(Error::Conflict(format!(
                "`{}` is production: nothing is synchronized into production; merge into it instead",
                env.name
            )));
        }
        let parent = self.parent_of(project, &env, "synchronize from")?;
        if env.status != "active" {
            return Err(Error::Conflict(format!(
                "environment `{}` is inactive: activate it (which copies the parent's data)",
                env.name
            )));
        }
        if request.data && parent.status != "active" {
            return Err(Error::Conflict(format!(
                "the parent `{}` is inactive and has no data to copy",
                parent.name
            )));
        }
        let repo = self.settings.repository(project);
        let parent_head = repo.branch_head(&parent.name)?.ok_or_else(|| {
            Error::Conflict(format!("the parent `{}` has no commits", parent.name))
        })?;
        let child_head = repo
            .branch_head(&env.name)?
            .ok_or_else(|| Error::Conflict(format!("`{}` has no commits", env.name)))?;
        let mut new_head = child_head.clone();
        if request.code && !repo.is_ancestor(&parent_head, &child_head)? {
            if repo.is_ancestor(&child_head, &parent_head)? {
                new_head = parent_head.clone();
            } else if !request.rebase {
                let (ahead, behind) = repo.ahead_behind(&child_head, &parent_head)?;
                return Err(Error::Conflict(format!(
                    "`{}` cannot be fast-forwarded to `{}`: it has {ahead} commit(s) of its own \
                     and lacks {behind} of the parent's. Use --rebase to replay its commits on \
                     the parent's, or merge the parent into the branch and push",
                    env.name, parent.name
                )));
            }
        }
        let project_id = project.to_string();
        let what = match (request.code, request.data) {
            (true, true) => "code and data",
            (true, false) => "code",
            _ => "data",
        };
        let (id, _) = self.spawn_activity(
            ActivitySpec::new(
                project,
                &env.name,
                ActivityKind::Synchronize,
                format!("Synchronize {what} of {} from {}", env.name, parent.name),
            )
            .also(&parent.name),
            move |platform, log| async move {
                if !platform.is_active(&project_id, &env.name) {
                    return Err(format!("environment `{}` is no longer active", env.name));
                }
                let repo = platform.settings.repository(&project_id);
                if request.code {
                    if request.rebase
                        && new_head == child_head
                        && !repo
                            .is_ancestor(&parent_head, &child_head)
                            .map_err(|e| e.to_string())?
                    {
                        let scratch = platform
                            .settings
                            .data_dir
                            .join("tmp")
                            .join(".rebase")
                            .join(&project_id);
                        std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
                        let repo2 = repo.clone();
                        let (c, p) = (child_head.clone(), parent_head.clone());
                        new_head =
                            tokio::task::spawn_blocking(move || repo2.rebase(&c, &p, &scratch))
                                .await
                                .map_err(|e| e.to_string())?
                                .map_err(|e| {
                                    format!(
                                        "rebasing `{}` on `{}` failed: {e}",
                                        env.name, parent.name
                                    )
                                })?;
                        log.line(format!(
                            "Rebased `{}` on `{}`: now at {}",
                            env.name,
                            parent.name,
                            short(&new_head)
                        ));
                    }
                    if new_head == child_head {
                        log.line(format!(
                            "`{}` already has the code of `{}`",
                            env.name, parent.name
                        ));
                    } else if repo.branch_head(&env.name).map_err(|e| e.to_string())?
                        != Some(child_head.clone())
                    {
                        return Err(format!(
                            "`{}` changed while this synchronisation waited: run it again",
                            env.name
                        ));
                    }
                }
                let mut kept = None;
                let key = (project_id.clone(), env.name.clone());
                let data = if request.data {
                    // The child's services stop while their data is replaced; its own
                    // data is kept aside until the synchronisation has succeeded.
                    let own = platform.take_services(&key);
                    services::stop_all(&platform, own, Some(&log)).await;
                    match platform.keep_data(&project_id, &env).await {
                        Ok(id) => {
                            kept = Some(id);
                            Ok(DataSource::CopyOf {
                                environment: parent.name.clone(),
                            })
                        }
                        Err(e) => Err(format!(
                            "could not keep the data of `{}` aside to roll back to: {e}",
                            env.name
                        )),
                    }
                } else {
                    Ok(DataSource::Keep)
                };
                // The branch moves only once its new code is live (as a push's does):
                // a crash in between leaves the branch and the deployment agreeing.
                let deployed = match data {
                    Ok(data) => deploy::deploy_with_data(
                        &platform,
                        &project_id,
                        &env.name,
                        &repo,
                        &new_head,
                        data,
                        DeployMode::Deploy,
                        &log,
                    )
                    .await
                    .and_then(|()| {
                        if new_head != child_head {
                            repo.set_branch(&env.name, &new_head, Some(&child_head))
                                .map_err(|e| format!("`{}` changed meanwhile: {e}", env.name))?;
                            log.line(format!("Moved `{}` to {}", env.name, short(&new_head)));
                        }
                        Ok(())
                    }),
                    Err(error) => Err(error),
                };
                if deployed.is_err() {
                    // Back to what it was: its branch where it was, its own data, its
                    // previous deployment.
                    if let Some(kept) = &kept {
                        let copied = platform.take_services(&key);
                        services::stop_all(&platform, copied, Some(&log)).await;
                        match platform.restore_kept_data(&project_id, &env, kept).await {
                            Ok(()) => log.line(format!(
                                "`{}` has its own data back, as before the synchronisation",
                                env.name
                            )),
                            Err(e) => log.line(format!(
                                "E: could not put the data of `{}` back: {e}",
                                env.name
                            )),
                        }
                    }
                    let restored = deploy::deploy(
                        &platform,
                        &project_id,
                        &env.name,
                        &repo,
                        &child_head,
                        DeployMode::Restore,
                        &log,
                    )
                    .await;
                    if let Err(error) = restored {
                        log.line(format!("E: could not bring `{}` back: {error}", env.name));
                    }
                }
                if let Some(kept) = kept {
                    platform.discard_kept_data(kept).await;
                }
                deployed
            },
        )?;
        Ok(id)
    }

    /// `environment:merge`: the child's code into its parent by fast-forward, then the
    /// parent is redeployed with the build the child tested (the same tree).
    pub fn merge(self: &Arc<Self>, project: &str, env: &str) -> Result<String> {
        let env = self.environment(project, env)?;
        let parent = self.parent_of(project, &env, "merge into")?;
        let repo = self.settings.repository(project);
        let child_head = repo
            .branch_head(&env.name)?
            .ok_or_else(|| Error::Conflict(format!("`{}` has no commits", env.name)))?;
        let parent_head = repo.branch_head(&parent.name)?.ok_or_else(|| {
            Error::Conflict(format!("the parent `{}` has no commits", parent.name))
        })?;
        if repo.is_ancestor(&child_head, &parent_head)? {
            return Err(Error::Conflict(format!(
                "nothing to merge: `{}` has no commits that `{}` lacks",
                env.name, parent.name
            )));
        }
        if !repo.is_ancestor(&parent_head, &child_head)? {
            let (_, behind) = repo.ahead_behind(&child_head, &parent_head)?;
            return Err(Error::Conflict(format!(
                "`{}` is behind `{}` by {behind} commit(s): synchronize its code first \
                 (`grove environment:synchronize code -e {}`), test it, then merge, so that \
                 what ships is what was tested",
                env.name, parent.name, env.name
            )));
        }
        let project_id = project.to_string();
        let (id, _) = self.spawn_activity(
            ActivitySpec::new(
                project,
                &parent.name,
                ActivityKind::Merge,
                format!("Merge {} into {}", env.name, parent.name),
            )
            .also(&env.name),
            move |platform, log| async move {
                // The parent deploys the child's code first and its branch moves only
                // once that is live (as a push's does): a crash in between leaves the
                // branch and the deployment agreeing on the old code.
                let repo = platform.settings.repository(&project_id);
                let moved = || {
                    repo.set_branch(&parent.name, &child_head, Some(&parent_head))
                        .map_err(|e| format!("`{}` changed meanwhile: {e}", parent.name))
                };
                if repo.branch_head(&parent.name).map_err(|e| e.to_string())?
                    != Some(parent_head.clone())
                {
                    return Err(format!(
                        "`{}` changed while this merge waited: run it again",
                        parent.name
                    ));
                }
                let fast_forwarded = || {
                    log.line(format!(
                        "Fast-forwarded `{}` from {} to {} (the code of `{}`)",
                        parent.name,
                        short(&parent_head),
                        short(&child_head),
                        env.name
                    ))
                };
                if !platform.is_active(&project_id, &parent.name) {
                    moved()?;
                    fast_forwarded();
                    log.line(format!("`{}` is inactive: nothing to deploy", parent.name));
                    return Ok(());
                }
                deploy::deploy(
                    &platform,
                    &project_id,
                    &parent.name,
                    &repo,
                    &child_head,
                    DeployMode::Deploy,
                    &log,
                )
                .await?;
                if let Err(error) = moved() {
                    log.line(format!(
                        "E: {error}: `{}` goes back to {}",
                        parent.name,
                        short(&parent_head)
                    ));
                    deploy::deploy(
                        &platform,
                        &project_id,
                        &parent.name,
                        &repo,
                        &parent_head,
                        DeployMode::Rollback,
                        &log,
                    )
                    .await?;
                    return Err(error);
                }
                fast_forwarded();
                Ok(())
            },
        )?;
        Ok(id)
    }

    /// `environment:info -e X type staging` and friends.
    pub fn set_environment_property(
        &self,
        project: &str,
        env: &str,
        property: &str,
        value: &str,
    ) -> Result<EnvironmentRow> {
        let project_row = self.project(project)?;
        let env = self.environment(project, env)?;
        match property {
            "type" => {
                if !ENVIRONMENT_TYPES.contains(&value) {
                    return Err(Error::Invalid(format!(
                        "invalid type `{value}`: use one of {}",
                        ENVIRONMENT_TYPES.join(", ")
                    )));
                }
                if env.kind == "production" || value == "production" {
                    return Err(Error::Conflict(format!(
                        "exactly one environment is production, the default branch `{}`'s; its type does not change",
                        project_row.default_branch.unwrap_or_default()
                    )));
                }
                let change = || {
                    Ok(self.store.update_environment(
                        project,
                        &env.name,
                        Some(value),
                        None,
                        None,
                    )?)
                };
                if env.status == "active" && value != env.kind {
                    self.within_plan(project, value, Some(&env.name), change)?;
                } else {
                    change()?;
                }
            }
            "title" => {
                self.store
                    .update_environment(project, &env.name, None, Some(value), None)?
            }
            "crons" => {
                let on = match value {
                    "true" | "1" | "on" | "yes" => true,
                    "false" | "0" | "off" | "no" => false,
                    other => {
                        return Err(Error::Invalid(format!(
                            "crons: `{other}` is not true or false"
                        )));
                    }
                };
                self.store.set_environment_crons(project, &env.name, on)?;
            }
            "parent" => {
                if env.kind == "production" {
                    return Err(Error::Conflict("production has no parent".into()));
                }
                let parent = self.environment(project, value)?;
                // Parents form a tree: no environment may become its own ancestor.
                let mut ancestor = Some(parent.name.clone());
                while let Some(name) = ancestor {
                    if name == env.name {
                        return Err(Error::Invalid(format!(
                            "`{}` cannot have `{}` as parent: it would be its own ancestor",
                            env.name, parent.name
                        )));
                    }
                    ancestor = self
                        .store
                        .environment(project, &name)?
                        .and_then(|e| e.parent);
                }
                self.store.update_environment(
                    project,
                    &env.name,
                    None,
                    None,
                    Some(&parent.name),
                )?;
            }
            other => {
                return Err(Error::Invalid(format!(
                    "environments have no settable property `{other}` (settable: type, title, parent, crons)"
                )));
            }
        }
        self.environment(project, &env.name)
    }
}
