//! Backups of environments (`backup:create|list|get|delete|restore`), on the
//! `grove-backup` store (restic).
//!
//! A backup is an activity owning its environment: the environment's volume is
//! snapshotted at one instant (consistent: services flushed, then held — MariaDB's
//! commits blocked, Redis's writes paused — for the snapshot, or, where the storage
//! cannot snapshot, stopped while their data is copied; live: no pause), the services
//! run again, and only then is the snapshot written to the store with a manifest
//! (commit, build keys, checksums of every file). A backup that cannot be written is a
//! failed activity and a `failed` record with the reason, never a success.
//!
//! A restore is one activity too: the snapshot is restored into a fresh volume and
//! verified against its manifest before anything of the environment is touched; then
//! the environment is deployed with that backup as its data source
//! (`DataSource::Backup`), the same path as a branch or a synchronisation. Its own data
//! is kept aside until the deploy succeeded, and put back (with its previous
//! deployment) if anything fails.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use grove_backup::Policy;
use grove_backup::manifest::{
    CaptureMethod, Consistency, FileTree, MANIFEST_FILE, Manifest, MountData, ServiceData,
};
use grove_backup::retention::{Candidate, Trigger};
use grove_deployment::{DataSource, Deployment};
use grove_store::{BackupRow, EnvironmentRow, UserRow, timestamp_now};
use grove_volumes::VolumeId;

use crate::access::{self, Action};
use crate::activity::{ActivityKind, ActivityLog};
use crate::deploy::{self, DeployMode};
use crate::error::{Error, Result};
use crate::handlers::{ApiResult, JsonBody, activity_dto};
use crate::services;
use crate::state::{ActivitySpec, Platform};

/// How often retention prunes the data of forgotten snapshots from the repository.
const PRUNE_EVERY: Duration = Duration::from_secs(24 * 60 * 60);

/// Suffixes of the volumes a backup snapshots into and a restore restores into (`_`
/// never appears in machine names). The backup's is a stable path, so restic finds its
/// parent snapshot and skips unchanged files.
const SNAPSHOT_SUFFIX: &str = "_backup";
const RESTORE_SUFFIX: &str = "_restore";

fn volume(
    project: &str,
    machine_name: &str,
    suffix: &str,
) -> std::result::Result<VolumeId, String> {
    VolumeId::new(format!("{project}/{machine_name}{suffix}")).map_err(|e| e.to_string())
}

/// What the environment ran when it was backed up.
struct Running {
    commit: Option<String>,
    /// `(app, build key)`.
    builds: Vec<(String, String)>,
    /// `(service, type)`.
    services: Vec<(String, String)>,
}

impl Platform {
    fn backup_password_file(&self) -> PathBuf {
        self.settings.data_dir.join("backup-password")
    }

    /// Opens (or creates) the backup store. Blocking.
    fn open_backup_store(&self) -> std::result::Result<grove_backup::Store, String> {
        grove_backup::Store::open_or_init(&self.settings.backup_store, &self.backup_password_file())
            .map_err(|e| format!("the backup store is unavailable: {e}"))
    }

    fn running_deployment(&self, project: &str, env: &str) -> Running {
        let last = self
            .store
            .last_successful_deployment(project, env)
            .ok()
            .flatten();
        let desired: Option<Deployment> = last
            .as_ref()
            .and_then(|d| self.store.deployment_desired(d.id).ok().flatten())
            .and_then(|text| serde_json::from_str(&text).ok());
        Running {
            commit: last.map(|d| d.commit_id),
            builds: desired
                .as_ref()
                .map(|d| {
                    d.apps
                        .iter()
                        .map(|a| (a.name.clone(), a.build_key.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            services: desired
                .map(|d| d.services.into_iter().map(|s| (s.name, s.kind)).collect())
                .unwrap_or_default(),
        }
    }

    /// `backup:create`: an activity that backs the environment up.
    pub fn create_backup(self: &Arc<Self>, project: &str, env: &str, live: bool) -> Result<String> {
        self.spawn_backup(project, env, live, false)
            .map(|(id, _)| id)
    }

    fn spawn_backup(
        self: &Arc<Self>,
        project: &str,
        env: &str,
        live: bool,
        automatic: bool,
    ) -> Result<(String, tokio::task::JoinHandle<bool>)> {
        let env = self.environment(project, env)?;
        if env.status != "active" {
            return Err(Error::Conflict(format!(
                "environment `{}` is inactive: it has no data to back up",
                env.name
            )));
        }
        let id = new_backup_id();
        let project_id = project.to_string();
        let kind = match (automatic, live) {
            (true, _) => "automatic",
            (false, true) => "live",
            (false, false) => "consistent",
        };
        self.spawn_activity(
            ActivitySpec::new(
                project,
                &env.name,
                ActivityKind::Backup,
                format!("Backup {id} of {} ({kind})", env.name),
            ),
            move |platform, log| async move {
                let mut row = BackupRow {
                    id: id.clone(),
                    project: project_id.clone(),
                    environment: env.name.clone(),
                    activity: log.id.clone(),
                    snapshot: None,
                    commit_id: None,
                    build_keys: String::new(),
                    consistent: !live,
                    automatic,
                    pause_ms: None,
                    status: "running".into(),
                    reason: None,
                    size: None,
                    created_at: timestamp_now(),
                    completed_at: None,
                };
                platform
                    .store
                    .insert_backup(&row)
                    .map_err(|e| format!("could not record the backup: {e}"))?;
                let outcome = platform.run_backup(&env, &mut row, &log).await;
                match &outcome {
                    Ok(()) => row.status = "completed".into(),
                    Err(reason) => {
                        row.status = "failed".into();
                        row.reason = Some(reason.clone());
                        log.line(format!("E: backup {id} failed: {reason}"));
                    }
                }
                if let Err(e) = platform.store.finish_backup(&row) {
                    return Err(format!("could not record the end of backup {id}: {e}"));
                }
                if outcome.is_ok() && automatic {
                    platform.prune_backups(&env, &log).await;
                }
                outcome
            },
        )
    }

    /// Backs up every active production environment whose last automatic backup is
    /// older than the interval (the schedule is the store's records, so it survives
    /// restarts without duplicate runs and catches up at most one missed run); a
    /// failed automatic backup is retried after at most five minutes.
    pub(crate) async fn schedule_backups(
        self: Arc<Self>,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let every = self.settings.automatic_backups_every;
        if every.is_zero() {
            return;
        }
        let tick = every.clamp(Duration::from_secs(1), Duration::from_secs(60));
        let mut running: HashMap<(String, String), tokio::task::JoinHandle<bool>> = HashMap::new();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(tick) => {}
            }
            running.retain(|_, handle| !handle.is_finished());
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or_default();
            let due_before = grove_store::format_unix_millis(now_ms - every.as_millis() as i64);
            let retry_before = grove_store::format_unix_millis(
                now_ms - every.min(Duration::from_secs(300)).as_millis() as i64,
            );
            for project in self.store.projects().unwrap_or_default() {
                let envs = self.store.environments(&project.id).unwrap_or_default();
                // Production always; another type when the project set a policy for
                // it that keeps automatic backups.
                for env in envs.into_iter().filter(|e| {
                    e.status == "active"
                        && (e.kind == "production" || {
                            let (policy, default) = self.backup_policy(&project.id, &e.kind);
                            !default && !policy.tiers().is_empty()
                        })
                }) {
                    let key = (project.id.clone(), env.name.clone());
                    if running.contains_key(&key) {
                        continue;
                    }
                    let rows = self
                        .store
                        .backups(&project.id, &env.name)
                        .unwrap_or_default();
                    let automatic = || rows.iter().filter(|b| b.automatic);
                    // Due an interval after the last automatic backup that worked; a
                    // failed one is retried after at most five minutes (and reported
                    // as a failed activity each time).
                    if automatic().any(|b| b.status != "failed" && b.created_at > due_before)
                        || automatic().any(|b| b.status == "failed" && b.created_at > retry_before)
                    {
                        continue;
                    }
                    match self.spawn_backup(&project.id, &env.name, false, true) {
                        Ok((_, handle)) => {
                            running.insert(key, handle);
                        }
                        Err(error) => tracing::error!(project = %project.id, env = %env.name,
                            %error, "Could not start an automatic backup."),
                    }
                }
            }
        }
    }

    /// The retention policy of a project's environments of `kind`: the project's own
    /// (`backup:policy`), else the default (production's table, or the preview one);
    /// and whether it is the default. A stored policy that no longer reads (it was
    /// checked when set) falls back to the default, with a warning.
    pub(crate) fn backup_policy(&self, project: &str, kind: &str) -> (Policy, bool) {
        let default = || {
            if kind == "production" {
                Policy::production()
            } else {
                Policy::preview()
            }
        };
        match self.store.backup_policy(project, kind) {
            Ok(Some(json)) => match serde_json::from_str::<Policy>(&json) {
                Ok(policy) => (policy, false),
                Err(error) => {
                    tracing::warn!(project, kind, %error, "A stored backup policy does not read; the default applies.");
                    (default(), true)
                }
            },
            Ok(None) => (default(), true),
            Err(error) => {
                tracing::warn!(project, kind, %error, "Could not read a backup policy; the default applies.");
                (default(), true)
            }
        }
    }

    /// Applies the retention policy of the environment's type to its completed
    /// backups: the snapshots it does not keep are forgotten and their records deleted.
    async fn prune_backups(self: &Arc<Self>, env: &EnvironmentRow, log: &ActivityLog) {
        let policy = self.backup_policy(&env.project, &env.kind).0;
        let rows: HashMap<String, BackupRow> = self
            .store
            .backups(&env.project, &env.name)
            .unwrap_or_default()
            .into_iter()
            .filter(|b| b.status == "completed")
            .map(|b| (b.id.clone(), b))
            .collect();
        let platform = self.clone();
        let (project, name) = (env.project.clone(), env.name.clone());
        let pruned = tokio::task::spawn_blocking(move || {
            let store = platform.open_backup_store()?;
            let snapshots = store
                .list(&[
                    ("project", project.as_str()),
                    ("environment", name.as_str()),
                ])
                .map_err(|e| e.to_string())?;
            let candidates: Vec<Candidate<String>> = snapshots
                .iter()
                .filter_map(|s| {
                    let row = rows.get(s.tags.get("backup")?)?;
                    Some(Candidate {
                        id: row.id.clone(),
                        created_at: s.created_at,
                        trigger: if row.automatic {
                            Trigger::Automatic
                        } else {
                            Trigger::Manual
                        },
                    })
                })
                .collect();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or_default();
            let kept = grove_backup::keep(&policy, &candidates, now);
            let forget: Vec<(String, grove_backup::SnapshotId)> = snapshots
                .into_iter()
                .filter_map(|s| {
                    let id = s.tags.get("backup")?.clone();
                    (rows.contains_key(&id) && !kept.contains(&id)).then_some((id, s.id))
                })
                .collect();
            let ids: Vec<_> = forget.iter().map(|(_, s)| s.clone()).collect();
            store.forget(&ids).map_err(|e| e.to_string())?;
            for (id, _) in &forget {
                platform
                    .store
                    .delete_backup(&project, id)
                    .map_err(|e| e.to_string())?;
            }
            // The data of forgotten snapshots is deleted by a prune at most once a
            // day (and by `backup:delete`): it reads and rewrites the repository
            // under its exclusive lock, which every other backup would wait for.
            let prune_due = {
                let mut last = platform
                    .last_backup_prune
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                let due =
                    !ids.is_empty() && last.is_none_or(|at: Instant| at.elapsed() >= PRUNE_EVERY);
                if due {
                    *last = Some(std::time::Instant::now());
                }
                due
            };
            let pruned_data = if prune_due {
                store.prune().map_err(|e| e.to_string())?;
                true
            } else {
                false
            };
            Ok::<_, String>((forget.len(), kept.len(), pruned_data))
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        match pruned {
            Ok((pruned, kept, pruned_data)) => log.line(format!(
                "Retention: kept {kept} backups of `{}`, pruned {pruned}{}",
                env.name,
                if pruned_data {
                    " (and deleted the data no backup uses)"
                } else {
                    ""
                }
            )),
            Err(e) => log.line(format!(
                "W: could not prune the backups of `{}`: {e}",
                env.name
            )),
        }
    }

    async fn run_backup(
        self: &Arc<Self>,
        env: &EnvironmentRow,
        row: &mut BackupRow,
        log: &ActivityLog,
    ) -> std::result::Result<(), String> {
        let project = row.project.clone();
        if !self.is_active(&project, &env.name) {
            return Err(format!("environment `{}` is no longer active", env.name));
        }
        let running = self.running_deployment(&project, &env.name);
        row.commit_id = running.commit.clone();
        row.build_keys = running
            .builds
            .iter()
            .map(|(app, key)| format!("{app}={key}"))
            .collect::<Vec<_>>()
            .join(",");
        self.ensure_volume(&project, env)
            .await
            .map_err(|e| e.to_string())?;
        let source =
            crate::lifecycle::env_volume(&project, &env.machine_name).map_err(|e| e.to_string())?;
        let snapshot = volume(&project, &env.machine_name, SNAPSHOT_SUFFIX)?;
        let volumes = self.volumes.clone();
        {
            let (volumes, snapshot) = (volumes.clone(), snapshot.clone());
            tokio::task::spawn_blocking(move || volumes.delete(&snapshot))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("could not clear the previous snapshot: {e}"))?;
        }
        let copy_on_write = volumes.kind().is_copy_on_write();
        let key = (project.clone(), env.name.clone());
        let clone = || {
            let (volumes, source, snapshot) = (volumes.clone(), source.clone(), snapshot.clone());
            async move {
                tokio::task::spawn_blocking(move || volumes.clone_volume(&source, &snapshot))
                    .await
                    .map_err(|e| e.to_string())?
                    .map(|_| ())
                    .map_err(|e| format!("could not snapshot the data: {e}"))
            }
        };
        // `(service, how it was held)` during a consistent backup's snapshot.
        let mut quiesced: Vec<(String, String)> = Vec::new();
        let consistency = if row.consistent {
            log.line(format!(
                "Consistent backup of `{}` ({}): quiescing its services",
                env.name,
                volumes.kind()
            ));
            let mut started = Instant::now();
            let snapshotted = if copy_on_write {
                // Dirty pages written out while the services keep serving (what a
                // branch does for its copy), then every service held at once, one
                // snapshot of the whole volume, and the services let go: the pause.
                let services: Vec<_> = self.with_services(&project, &env.name, |services| {
                    services.values().map(|e| e.running.clone()).collect()
                });
                let prepared =
                    futures_util::future::join_all(services.iter().map(|r| r.prepare_snapshot()))
                        .await;
                if let Some(error) = prepared.into_iter().find_map(|r| r.err()) {
                    return Err(format!("a service could not be quiesced: {error}"));
                }
                log.line(format!(
                    "  Flushed the services in {:.3}s (they kept serving)",
                    started.elapsed().as_secs_f64()
                ));
                started = Instant::now();
                let held =
                    futures_util::future::join_all(services.iter().map(|r| r.quiesce())).await;
                let mut holds = Vec::new();
                let mut refused = None;
                for (service, outcome) in services.iter().zip(held) {
                    match outcome {
                        Ok(hold) => holds.push((service.name().to_string(), hold)),
                        Err(error) => refused = Some(error.to_string()),
                    }
                }
                let snapshotted = match refused {
                    Some(error) => Err(format!("a service could not be quiesced: {error}")),
                    None => clone().await,
                };
                for (name, hold) in holds {
                    let how = hold.describe();
                    match hold.resume().await {
                        Ok(()) => {
                            log.line(format!("  `{name}`: {how}, resumed"));
                            quiesced.push((name, how.to_string()));
                        }
                        Err(error) => log.line(format!("W: `{name}`: {how}: {error}")),
                    }
                }
                snapshotted
            } else {
                // The storage cannot snapshot: the services stop while their data is
                // copied, and start again as they were.
                let paused = services::pause(self, &key).await;
                let copied = clone().await;
                let resumed = services::resume(self, key.clone(), paused).await;
                copied.and(resumed)
            };
            let pause = started.elapsed();
            let pause_ms = pause.as_millis() as u64;
            row.pause_ms = Some(pause_ms);
            log.line(format!(
                "  `{}` was paused for {:.3}s ({})",
                env.name,
                pause.as_secs_f64(),
                if copy_on_write {
                    "a snapshot of the whole volume at one instant"
                } else {
                    "services stopped, data copied, services started"
                }
            ));
            tracing::info!(project = %project, env = %env.name, pause_ms, "Backup pause.");
            snapshotted?;
            Consistency::Consistent { pause_ms }
        } else {
            log.line(format!(
                "Live backup of `{}` ({}): no pause, crash-consistent",
                env.name,
                volumes.kind()
            ));
            clone().await?;
            Consistency::Live
        };
        log.line("  The services run again; writing the backup to the store");
        let root = volumes.root().join(snapshot.as_str());
        let platform = self.clone();
        let (id, environment) = (row.id.clone(), env.name.clone());
        let build_key = (!row.build_keys.is_empty()).then(|| row.build_keys.clone());
        let uploaded = tokio::task::spawn_blocking(move || {
            let manifest = manifest_of(
                &root,
                &project,
                &environment,
                &running,
                build_key,
                consistency,
                &quiesced,
            )?;
            std::fs::write(root.join(MANIFEST_FILE), manifest.to_json())
                .map_err(|e| format!("could not write the manifest: {e}"))?;
            let store = platform.open_backup_store()?;
            let summary = store
                .backup(
                    &root,
                    &[
                        ("project", project.as_str()),
                        ("environment", environment.as_str()),
                        ("backup", id.as_str()),
                    ],
                )
                .map_err(|e| format!("the backup could not be written: {e}"))?;
            Ok::<_, String>((manifest, summary))
        })
        .await
        .map_err(|e| e.to_string());
        {
            let volumes = volumes.clone();
            let deleted = tokio::task::spawn_blocking(move || volumes.delete(&snapshot)).await;
            if let Ok(Err(e)) = deleted {
                log.line(format!("W: could not delete the snapshot: {e}"));
            }
        }
        let (manifest, summary) = uploaded??;
        row.snapshot = Some(summary.snapshot.id.as_str().to_string());
        row.size = Some(summary.bytes_total);
        log.line(format!(
            "  Stored as snapshot {} in {}: {} files, {} bytes ({} bytes new) in {:.3}s",
            summary.snapshot.id.short(),
            self.settings.backup_store,
            summary.files_total,
            summary.bytes_total,
            summary.bytes_added,
            summary.duration.as_secs_f64()
        ));
        log.line(format!(
            "Backup {} of `{}` completed: {} services, {} mounts",
            row.id,
            env.name,
            manifest.services.len(),
            manifest.mounts.len()
        ));
        Ok(())
    }

    /// `backup:restore`: an activity that restores a backup's data into `target` (the
    /// backup's own environment by default) and redeploys its current code.
    pub fn restore_backup(
        self: &Arc<Self>,
        project: &str,
        backup: &BackupRow,
        target: &str,
        code: bool,
    ) -> Result<String> {
        let env = self.environment(project, target)?;
        completed_snapshot(backup, "restored")?;
        if env.status != "active" {
            return Err(Error::Conflict(format!(
                "environment `{}` is inactive: activate it first",
                env.name
            )));
        }
        let project_id = project.to_string();
        let backup = backup.clone();
        let (id, _) = self.spawn_activity(
            ActivitySpec::new(
                project,
                &env.name,
                ActivityKind::Restore,
                format!(
                    "Restore backup {} of {} into {}",
                    backup.id, backup.environment, env.name
                ),
            ),
            move |platform, log| async move {
                platform
                    .run_restore(&project_id, &env, &backup, code, false, &log)
                    .await
            },
        )?;
        Ok(id)
    }

    /// `backup:restore --branch-from PARENT --target NEW`: one activity makes `NEW`, a
    /// branch of `PARENT`, filled from the backup instead of the parent's data; if
    /// anything fails, `NEW` and its branch are gone again.
    pub fn restore_backup_into_new(
        self: &Arc<Self>,
        project: &str,
        backup: &BackupRow,
        parent: &str,
        target: &str,
        code: bool,
    ) -> Result<String> {
        completed_snapshot(backup, "restored")?;
        let request = crate::tree::BranchRequest {
            name: target.to_string(),
            parent: Some(parent.to_string()),
            kind: None,
            title: None,
            clone_parent: false,
        };
        let (parent, env, _) = self.create_branch(project, &request)?;
        let project_id = project.to_string();
        let backup = backup.clone();
        let spawned = self.spawn_activity(
            ActivitySpec::new(
                project,
                &env.name,
                ActivityKind::Restore,
                format!(
                    "Restore backup {} of {} into new environment {} (branched from {})",
                    backup.id, backup.environment, env.name, parent.name
                ),
            ),
            move |platform, log| async move {
                let restored = platform
                    .run_restore(&project_id, &env, &backup, code, true, &log)
                    .await;
                if restored.is_err() {
                    platform.remove_failed_branch(&project_id, &env, &log).await;
                }
                restored
            },
        );
        match spawned {
            Ok((id, _)) => Ok(id),
            Err(e) => {
                let _ = self.store.delete_environment(project, target);
                let _ = self.settings.repository(project).delete_branch(target);
                Err(e)
            }
        }
    }

    async fn run_restore(
        self: &Arc<Self>,
        project: &str,
        env: &EnvironmentRow,
        backup: &BackupRow,
        code: bool,
        // A new environment: nothing to roll back to (the caller removes it).
        fresh: bool,
        log: &ActivityLog,
    ) -> std::result::Result<(), String> {
        if !self.is_active(project, &env.name) {
            return Err(format!("environment `{}` is no longer active", env.name));
        }
        let snapshot = completed_snapshot(backup, "restored").map_err(|e| e.to_string())?;
        let repo = self.settings.repository(project);
        let head = repo
            .branch_head(&env.name)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("`{}` has no commits", env.name))?;
        // The backup's code too, unless told otherwise: its commit deployed again (the
        // same tree, so the same build) and the branch moved back once it is live.
        let commit = match backup.commit_id.clone().filter(|c| code && *c != head) {
            Some(commit) => {
                repo.tree_id(&commit).map_err(|e| {
                    format!(
                        "the backup's commit {commit} is no longer in the repository \
                         ({e}): restore with --no-code to keep the current code"
                    )
                })?;
                commit
            }
            None => head.clone(),
        };
        // 1. The backup, restored into a fresh volume and verified, before anything of
        //    the environment is touched.
        let restored = volume(project, &env.machine_name, RESTORE_SUFFIX)?;
        let volumes = self.volumes.clone();
        let root = volumes.root().join(restored.as_str());
        log.line(format!(
            "Restoring snapshot {} from {}",
            snapshot.short(),
            self.settings.backup_store
        ));
        let started = Instant::now();
        let verified = {
            let (platform, volumes, restored) = (self.clone(), volumes.clone(), restored.clone());
            tokio::task::spawn_blocking(move || {
                volumes
                    .delete(&restored)
                    .and_then(|_| volumes.create(&restored))
                    .map_err(|e| format!("could not make a volume to restore into: {e}"))?;
                let store = platform.open_backup_store()?;
                let manifest = store
                    .restore_verified(&snapshot, &root)
                    .map_err(|e| format!("the backup could not be restored: {e}"))?;
                std::fs::remove_file(root.join(MANIFEST_FILE))
                    .map_err(|e| format!("could not remove the manifest: {e}"))?;
                Ok::<_, String>(manifest)
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r)
        };
        let manifest = match verified {
            Ok(manifest) => manifest,
            Err(error) => {
                self.delete_restored(&restored).await;
                return Err(error);
            }
        };
        log.line(format!(
            "  Restored and verified {} entries against the manifest in {:.3}s",
            manifest.files.entries.len(),
            started.elapsed().as_secs_f64()
        ));
        if commit != head {
            log.line(format!(
                "  The code goes back to {} (the backup's commit) from {}",
                &commit[..commit.len().min(12)],
                &head[..head.len().min(12)]
            ));
        } else if manifest.commit.as_deref().is_some_and(|c| c != head) {
            log.line(format!(
                "  The code stays at {} (the backup was taken at {}): only the data is restored",
                &head[..head.len().min(12)],
                manifest.commit.as_deref().unwrap_or_default()
            ));
        }
        // 2. The environment's own data aside, then a deploy with the backup as its data.
        let key = (project.to_string(), env.name.clone());
        let own = self.take_services(&key);
        services::stop_all(self, own, Some(log)).await;
        let kept = match self.keep_data(project, env).await {
            Ok(kept) => kept,
            Err(e) => {
                self.delete_restored(&restored).await;
                let _ = deploy::deploy(
                    self,
                    project,
                    &env.name,
                    &repo,
                    &head,
                    DeployMode::Restore,
                    log,
                )
                .await;
                return Err(format!(
                    "could not keep the data of `{}` aside to roll back to: {e}",
                    env.name
                ));
            }
        };
        let deployed = deploy::deploy_with_data(
            self,
            project,
            &env.name,
            &repo,
            &commit,
            DataSource::Backup {
                id: backup.id.clone(),
            },
            DeployMode::Deploy,
            log,
        )
        .await
        .and_then(|()| {
            // The branch moves only once its code is live, and only from where it was.
            if commit != head {
                repo.set_branch(&env.name, &commit, Some(&head))
                    .map_err(|e| format!("`{}` changed meanwhile: {e}", env.name))?;
                log.line(format!(
                    "Moved `{}` back to {}",
                    env.name,
                    &commit[..commit.len().min(12)]
                ));
            }
            Ok(())
        });
        if deployed.is_err() && !fresh {
            // Back to what it was: its own data and its previous deployment.
            let copied = self.take_services(&key);
            services::stop_all(self, copied, Some(log)).await;
            match self.restore_kept_data(project, env, &kept).await {
                Ok(()) => log.line(format!(
                    "`{}` has its own data back, as before the restore",
                    env.name
                )),
                Err(e) => log.line(format!(
                    "E: could not put the data of `{}` back: {e}",
                    env.name
                )),
            }
            if let Err(error) = deploy::deploy(
                self,
                project,
                &env.name,
                &repo,
                &head,
                DeployMode::Restore,
                log,
            )
            .await
            {
                log.line(format!("E: could not bring `{}` back: {error}", env.name));
            }
        } else if deployed.is_ok() {
            log.line(format!(
                "`{}` runs with the data of backup {} (taken {})",
                env.name, backup.id, backup.created_at
            ));
        }
        self.discard_kept_data(kept).await;
        self.delete_restored(&restored).await;
        deployed
    }

    /// `backup:verify`: an activity that restores the backup into a scratch directory
    /// and checks every file against its manifest, touching no environment.
    pub fn verify_backup(self: &Arc<Self>, backup: &BackupRow) -> Result<String> {
        let snapshot = completed_snapshot(backup, "verified")?;
        let id = backup.id.clone();
        let (activity, _) = self.spawn_activity(
            ActivitySpec::new(
                &backup.project,
                &backup.environment,
                ActivityKind::Backup,
                format!("Verify backup {id} of {}", backup.environment),
            ),
            move |platform, log| async move {
                let scratch = platform
                    .settings
                    .data_dir
                    .join("tmp")
                    .join(".verify")
                    .join(&id);
                let started = Instant::now();
                let verified = tokio::task::spawn_blocking(move || {
                    let _ = std::fs::remove_dir_all(&scratch);
                    let outcome = platform.open_backup_store().and_then(|store| {
                        store
                            .restore_verified(&snapshot, &scratch)
                            .map_err(|e| format!("backup {id} does not verify: {e}"))
                    });
                    let _ = std::fs::remove_dir_all(&scratch);
                    outcome
                })
                .await
                .map_err(|e| e.to_string())??;
                log.line(format!(
                    "Restored and verified {} entries against the manifest in {:.3}s",
                    verified.files.entries.len(),
                    started.elapsed().as_secs_f64()
                ));
                Ok(())
            },
        )?;
        Ok(activity)
    }

    /// `backup:delete`: an activity that forgets the backup's snapshot in the store
    /// (and prunes what no other snapshot uses), then deletes its record.
    pub fn delete_backup(self: &Arc<Self>, backup: &BackupRow) -> Result<String> {
        if backup.status == "running" {
            return Err(Error::Conflict(format!(
                "backup {} is still running",
                backup.id
            )));
        }
        let backup = backup.clone();
        let (activity, _) = self.spawn_activity(
            ActivitySpec::new(
                &backup.project,
                &backup.environment,
                ActivityKind::BackupDelete,
                format!("Delete backup {} of {}", backup.id, backup.environment),
            ),
            move |platform, log| async move {
                if let Some(snapshot) = backup.snapshot.clone() {
                    let store = platform.settings.backup_store.clone();
                    let forgot = {
                        let platform = platform.clone();
                        tokio::task::spawn_blocking(move || {
                            let snapshot = grove_backup::SnapshotId::parse(&snapshot)
                                .map_err(|e| e.to_string())?;
                            platform
                                .open_backup_store()?
                                .forget_and_prune(std::slice::from_ref(&snapshot))
                                .map_err(|e| e.to_string())?;
                            Ok::<_, String>(snapshot)
                        })
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| format!("could not delete backup {}: {e}", backup.id))?
                    };
                    log.line(format!(
                        "Forgot snapshot {} in {store} (and pruned what no other uses)",
                        forgot.short()
                    ));
                }
                platform
                    .store
                    .delete_backup(&backup.project, &backup.id)
                    .map_err(|e| format!("could not delete the record of {}: {e}", backup.id))?;
                log.line(format!("Deleted backup {}", backup.id));
                Ok(())
            },
        )?;
        Ok(activity)
    }

    /// Snapshots and restored trees left by backups and restores the server did not
    /// finish (those operations failed): deleted at start-up.
    pub(crate) async fn discard_backup_volumes(&self) {
        let volumes = self.volumes.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for id in volumes.list("") {
                let id_str = id.as_str();
                if (id_str.ends_with(SNAPSHOT_SUFFIX) || id_str.ends_with(RESTORE_SUFFIX))
                    && let Err(error) = volumes.delete(&id)
                {
                    tracing::warn!(volume = %id_str, %error, "Could not delete a backup's leftover volume.");
                }
            }
        })
        .await;
    }

    async fn delete_restored(&self, restored: &VolumeId) {
        let volumes = self.volumes.clone();
        let restored = restored.clone();
        if let Ok(Err(error)) = tokio::task::spawn_blocking(move || volumes.delete(&restored)).await
        {
            tracing::warn!(%error, "Could not delete a restored backup's volume.");
        }
    }

    /// The deploy step of a restore: the environment's data replaced by the restored
    /// and verified backup (`DataSource::Backup`).
    pub(crate) async fn fill_from_backup(
        &self,
        project: &str,
        env: &EnvironmentRow,
        backup: &str,
        log: &ActivityLog,
    ) -> std::result::Result<(), String> {
        let row = self
            .store
            .backup(project, backup)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("there is no backup {backup}"))?;
        let restored = volume(project, &env.machine_name, RESTORE_SUFFIX)?;
        let target =
            crate::lifecycle::env_volume(project, &env.machine_name).map_err(|e| e.to_string())?;
        let volumes = self.volumes.clone();
        if !volumes.root().join(restored.as_str()).is_dir() {
            return Err(format!(
                "backup {backup} has not been restored for `{}`: run backup:restore",
                env.name
            ));
        }
        let copied = {
            let (volumes, restored, target) = (volumes.clone(), restored.clone(), target.clone());
            tokio::task::spawn_blocking(move || volumes.replace_with_clone(&restored, &target))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("could not put the backup's data in place: {e}"))?
        };
        log.line(format!("  Data of backup {backup} in place: {copied}"));
        if row.environment != env.name {
            // Every environment has its own credentials.
            let services_dir = volumes.root().join(target.as_str()).join("services");
            if let Ok(entries) = std::fs::read_dir(&services_dir) {
                for entry in entries.flatten() {
                    let _ = std::fs::remove_file(entry.path().join("secrets.json"));
                }
            }
        }
        Ok(())
    }
}

/// The manifest of a snapshot of an environment's volume. Blocking.
fn manifest_of(
    root: &std::path::Path,
    project: &str,
    environment: &str,
    running: &Running,
    build_key: Option<String>,
    consistency: Consistency,
    quiesced: &[(String, String)],
) -> std::result::Result<Manifest, String> {
    let names = |dir: PathBuf| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    let services = names(root.join("services"))
        .into_iter()
        .map(|name| ServiceData {
            service_type: running
                .services
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, kind)| kind.clone())
                .unwrap_or_default(),
            method: CaptureMethod::VolumeSnapshot,
            quiesced: quiesced
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, how)| how.clone()),
            path: format!("services/{name}"),
            name,
        })
        .collect();
    let mut mounts = Vec::new();
    for app in names(root.join("apps")) {
        for mount in names(root.join("apps").join(&app)) {
            mounts.push(MountData {
                path: format!("apps/{app}/{mount}"),
                app: app.clone(),
                mount,
            });
        }
    }
    let files = FileTree::compute(root).map_err(|e| format!("could not read the snapshot: {e}"))?;
    Ok(Manifest {
        format: 1,
        project: project.to_string(),
        environment: environment.to_string(),
        commit: running.commit.clone(),
        build_key,
        created_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default(),
        consistency,
        services,
        mounts,
        files,
    })
}

fn new_backup_id() -> String {
    let mut bytes = [0u8; 6];
    // Without randomness the clock's nanoseconds still tell backups apart.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes.copy_from_slice(&nanos.to_le_bytes()[..6]);
    }
    hex::encode(bytes)
}

pub(crate) fn backup_dto(row: &BackupRow) -> grove_api::Backup {
    grove_api::Backup {
        id: row.id.clone(),
        project: row.project.clone(),
        environment: row.environment.clone(),
        activity: row.activity.clone(),
        status: row.status.clone(),
        reason: row.reason.clone(),
        consistency: if row.consistent { "consistent" } else { "live" }.into(),
        pause_ms: row.pause_ms,
        commit: row.commit_id.clone(),
        build_keys: row
            .build_keys
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        snapshot: row.snapshot.clone(),
        size: row.size,
        automatic: row.automatic,
        created_at: row.created_at.clone(),
        completed_at: row.completed_at.clone(),
    }
}

fn accepted(p: &Platform, id: &str) -> ApiResult<(StatusCode, Json<grove_api::Activity>)> {
    let row = p
        .store
        .activity(id)?
        .ok_or_else(|| Error::Internal(format!("activity {id} vanished")))?;
    Ok((StatusCode::ACCEPTED, Json(activity_dto(&row))))
}

fn backup_of(p: &Platform, project: &str, env: &str, id: &str) -> Result<BackupRow> {
    p.store
        .backup(project, id)?
        .filter(|b| b.environment == env)
        .ok_or_else(|| Error::NotFound(format!("environment `{env}` has no backup {id}")))
}

fn policy_dto(p: &Platform, project: &str, kind: &str) -> ApiResult<Json<grove_api::BackupPolicy>> {
    let (policy, default) = p.backup_policy(project, kind);
    Ok(Json(grove_api::BackupPolicy {
        environment_type: kind.to_owned(),
        policy: serde_json::to_value(&policy).map_err(|e| Error::Internal(e.to_string()))?,
        default,
    }))
}

fn known_type(kind: &str) -> Result<()> {
    if crate::platform::ENVIRONMENT_TYPES.contains(&kind) {
        Ok(())
    } else {
        Err(Error::NotFound(format!(
            "no environment type `{kind}`; the types are {}",
            crate::platform::ENVIRONMENT_TYPES.join(", ")
        )))
    }
}

/// A project's retention policy for an environment type (anyone in the project).
pub async fn get_policy(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, kind)): Path<(String, String)>,
) -> ApiResult<Json<grove_api::BackupPolicy>> {
    access::project(&p, &user, &project)?;
    known_type(&kind)?;
    policy_dto(&p, &project, &kind)
}

/// Sets a project's retention policy for an environment type (project admins); the
/// policy is checked (`grove_backup::Policy`) and applies from the next automatic
/// backup's pruning on.
pub async fn set_policy(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, kind)): Path<(String, String)>,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> ApiResult<Json<grove_api::BackupPolicy>> {
    access::project(&p, &user, &project)?.allow_project_admin("set backup policies")?;
    known_type(&kind)?;
    let policy: Policy = serde_json::from_value(body)
        .map_err(|e| Error::Invalid(format!("invalid backup policy: {e}")))?;
    let json = serde_json::to_string(&policy).map_err(|e| Error::Internal(e.to_string()))?;
    p.store.set_backup_policy(&project, &kind, Some(&json))?;
    policy_dto(&p, &project, &kind)
}

/// Puts the default policy back (project admins).
pub async fn reset_policy(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, kind)): Path<(String, String)>,
) -> ApiResult<Json<grove_api::BackupPolicy>> {
    access::project(&p, &user, &project)?.allow_project_admin("set backup policies")?;
    known_type(&kind)?;
    p.store.set_backup_policy(&project, &kind, None)?;
    policy_dto(&p, &project, &kind)
}

pub async fn list(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, env)): Path<(String, String)>,
) -> ApiResult<Json<Vec<grove_api::Backup>>> {
    access::authorize_environment(&p, &user, &project, &env, Action::View)?;
    let rows = p.store.backups(&project, &env)?;
    Ok(Json(rows.iter().map(backup_dto).collect()))
}

pub async fn create(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, env)): Path<(String, String)>,
    JsonBody(body): JsonBody<grove_api::CreateBackup>,
) -> ApiResult<(StatusCode, Json<grove_api::Activity>)> {
    access::authorize_environment(&p, &user, &project, &env, Action::Backup)?;
    let id = p.create_backup(&project, &env, body.live)?;
    accepted(&p, &id)
}

pub async fn get(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, env, id)): Path<(String, String, String)>,
) -> ApiResult<Json<grove_api::Backup>> {
    access::authorize_environment(&p, &user, &project, &env, Action::View)?;
    Ok(Json(backup_dto(&backup_of(&p, &project, &env, &id)?)))
}

pub async fn delete(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, env, id)): Path<(String, String, String)>,
) -> ApiResult<(StatusCode, Json<grove_api::Activity>)> {
    access::authorize_environment(&p, &user, &project, &env, Action::DeleteBackup)?;
    let row = backup_of(&p, &project, &env, &id)?;
    let activity = p.delete_backup(&row)?;
    accepted(&p, &activity)
}

pub async fn verify(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, env, id)): Path<(String, String, String)>,
) -> ApiResult<(StatusCode, Json<grove_api::Activity>)> {
    access::authorize_environment(&p, &user, &project, &env, Action::Backup)?;
    let row = backup_of(&p, &project, &env, &id)?;
    let activity = p.verify_backup(&row)?;
    accepted(&p, &activity)
}

pub async fn restore(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<grove_api::RestoreBackup>,
) -> ApiResult<(StatusCode, Json<grove_api::Activity>)> {
    let access = access::project(&p, &user, &project)?;
    let backup = p
        .store
        .backup(&project, &id)?
        .ok_or_else(|| Error::NotFound(format!("there is no backup {id}")))?;
    // Reading the backup needs sight of its environment; writing it into the target
    // needs the right to restore there.
    access.allow(
        &p.environment(&project, &backup.environment)?.kind,
        Action::View,
    )?;
    let target = body
        .environment
        .unwrap_or_else(|| backup.environment.clone());
    let activity = match body.branch_from {
        Some(parent) => {
            // As `environment:branch` from the parent, of the default type.
            let (access, _) =
                access::authorize_environment(&p, &user, &project, &parent, Action::View)?;
            access.allow("development", Action::Branch)?;
            p.restore_backup_into_new(&project, &backup, &parent, &target, !body.no_code)?
        }
        None => {
            access::authorize_environment(&p, &user, &project, &target, Action::Restore)?;
            p.restore_backup(&project, &backup, &target, !body.no_code)?
        }
    };
    accepted(&p, &activity)
}

/// The status and time of the environment's newest backup (`environment:info`).
pub(crate) fn last_backup(p: &Platform, project: &str, env: &str) -> Option<BackupRow> {
    p.store
        .backups(project, env)
        .ok()
        .and_then(|rows| rows.into_iter().next())
}

/// The snapshot of a completed backup; any other backup cannot be `what` (restored,
/// verified).
fn completed_snapshot(backup: &BackupRow, what: &str) -> Result<grove_backup::SnapshotId> {
    let Some(snapshot) = backup
        .snapshot
        .as_deref()
        .filter(|_| backup.status == "completed")
    else {
        return Err(Error::Conflict(format!(
            "backup {} is {}: only a completed backup can be {what}",
            backup.id, backup.status
        )));
    };
    grove_backup::SnapshotId::parse(snapshot)
        .map_err(|e| Error::Internal(format!("backup {}: {e}", backup.id)))
}
