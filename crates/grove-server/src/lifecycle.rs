//! An environment's data and what runs on it: its volume (created, filled with a copy
//! of another environment's, kept aside and put back), and stopping all it runs.

use grove_store::EnvironmentRow;
use grove_volumes::VolumeId;

use crate::activity::ActivityLog;
use crate::error::{Error, Result};
use crate::services;
use crate::state::{Platform, STOP_GRACE, owner_key};

/// Suffix of the volume holding an environment's own data while an operation replaces
/// it (`_` never appears in machine names).
pub const KEPT_SUFFIX: &str = "_kept";

/// Where `keep_data` puts an environment's data aside.
pub fn kept_volume(project: &str, machine_name: &str) -> Result<VolumeId> {
    VolumeId::new(format!("{project}/{machine_name}{KEPT_SUFFIX}"))
        .map_err(|e| Error::Internal(format!("volume of {project}/{machine_name}: {e}")))
}

/// A full disk is not Grove's fault nor the user's: the operation may work later.
fn volume_error(e: grove_volumes::VolumeError) -> Error {
    match &e {
        grove_volumes::VolumeError::Io { source, .. }
            if crate::error::is_resource_exhausted(source) =>
        {
            Error::Unavailable(e.to_string())
        }
        _ => Error::Internal(e.to_string()),
    }
}

/// The volume holding an environment's data (service data and mounts).
pub fn env_volume(project: &str, machine_name: &str) -> Result<VolumeId> {
    VolumeId::new(format!("{project}/{machine_name}"))
        .map_err(|e| Error::Internal(format!("volume of {project}/{machine_name}: {e}")))
}

/// The memory of one build (its hook, dependencies and flavor).
pub(crate) const BUILD_MEMORY_MB: u64 = 4096;
/// The processes and threads of one build.
pub(crate) const BUILD_PIDS: u64 = 4096;

impl Platform {
    /// Creates the environment's volume if it has none yet.
    pub(crate) async fn ensure_volume(&self, project: &str, env: &EnvironmentRow) -> Result<()> {
        let id = env_volume(project, &env.machine_name)?;
        let volumes = self.volumes.clone();
        tokio::task::spawn_blocking(move || volumes.create(&id).map(|_| ()))
            .await?
            .map_err(|e| Error::Internal(e.to_string()))
    }

    /// Caps the environment's volume at `disk_mb` (`None`: no cap). `false` where
    /// the storage cannot cap.
    pub(crate) async fn cap_volume(
        &self,
        project: &str,
        env: &EnvironmentRow,
        disk_mb: Option<u64>,
    ) -> std::result::Result<bool, String> {
        let id = env_volume(project, &env.machine_name).map_err(|e| e.to_string())?;
        let volumes = self.volumes.clone();
        tokio::task::spawn_blocking(move || volumes.set_cap(&id, disk_mb.map(|mb| mb << 20)))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("could not cap the data of `{}`: {e}", env.name))
    }

    /// Creates the environment's cgroup, or updates its limits, from what its
    /// deployment needs; logged in the activity.
    pub(crate) async fn apply_env_limits(
        &self,
        project: &str,
        env: &EnvironmentRow,
        resources: &grove_deployment::resources::Resources,
        log: &ActivityLog,
    ) -> std::result::Result<(), String> {
        let Some(cgroups) = self.cgroups.clone() else {
            return Ok(());
        };
        let limits = grove_runtime::Limits {
            memory_bytes: resources.memory_mb << 20,
            cpu_millis: Some(resources.cpu_millis),
            pids: resources.pids,
        };
        let name = crate::state::env_cgroup_name(project, &env.machine_name);
        // The environment's group caps the sum; each app's and service's own group
        // inside it caps the memory and processes that one may take. CPU is capped
        // for the environment only: its apps and services share the sum, so that a
        // server starting (RabbitMQ's Erlang VM) may use what the others leave.
        let containers: Vec<(String, grove_runtime::Limits)> = resources
            .containers
            .iter()
            .map(|c| {
                (
                    format!("{name}/{}", c.group()),
                    grove_runtime::Limits {
                        memory_bytes: c.memory_mb << 20,
                        cpu_millis: None,
                        pids: grove_deployment::resources::PIDS_PER_CONTAINER,
                    },
                )
            })
            .collect();
        tokio::task::spawn_blocking(move || {
            cgroups.apply(&name, &limits)?;
            for (group, limits) in &containers {
                cgroups.apply(group, limits)?;
            }
            Ok::<(), grove_runtime::CgroupError>(())
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("could not set the resource limits of `{}`: {e}", env.name))?;
        log.line(format!("  Resources: {resources}"));
        Ok(())
    }

    /// Creates the cgroup of one build (memory and processes; its CPU yields
    /// through its niceness).
    pub(crate) async fn apply_build_limits(
        &self,
        name: &str,
    ) -> std::result::Result<Option<grove_runtime::CgroupJoin>, String> {
        let Some(cgroups) = self.cgroups.clone() else {
            return Ok(None);
        };
        let limits = grove_runtime::Limits {
            memory_bytes: BUILD_MEMORY_MB << 20,
            cpu_millis: None,
            pids: BUILD_PIDS,
        };
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || cgroups.apply(&name, &limits))
            .await
            .map_err(|e| e.to_string())?
            .map(Some)
            .map_err(|e| format!("could not set the resource limits of the build: {e}"))
    }

    /// How many processes of the cgroup `name` the kernel killed for lack of memory.
    pub(crate) fn cgroup_oom_kills(&self, name: &str) -> u64 {
        self.cgroups.as_ref().map_or(0, |c| c.oom_kills(name))
    }

    /// Removes the cgroup `name` once nothing runs in it.
    pub(crate) async fn remove_cgroup(&self, name: &str) {
        let Some(cgroups) = self.cgroups.clone() else {
            return;
        };
        let group = name.to_owned();
        let removed = tokio::task::spawn_blocking(move || cgroups.remove(&group)).await;
        if let Ok(Err(error)) = removed {
            tracing::warn!(group = name, %error, "could not remove a cgroup");
        }
    }

    /// Removes the environment's cgroup once nothing runs in it.
    pub(crate) async fn remove_env_cgroup(&self, project: &str, env: &EnvironmentRow) {
        let Some(cgroups) = self.cgroups.clone() else {
            return;
        };
        self.oom_reported
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(project.to_string(), env.name.clone()));
        let name = crate::state::env_cgroup_name(project, &env.machine_name);
        let removed = tokio::task::spawn_blocking(move || cgroups.remove(&name)).await;
        if let Ok(Err(error)) = removed {
            tracing::warn!(env = %env.name, %error, "could not remove the environment's cgroup");
        }
    }

    /// Keeps a copy of an environment's data aside (a snapshot on btrfs), so that an
    /// operation that replaces it can put it back if it fails. A copy left by an
    /// operation the server did not finish is put back at start-up.
    pub(crate) async fn keep_data(&self, project: &str, env: &EnvironmentRow) -> Result<VolumeId> {
        self.ensure_volume(project, env).await?;
        let source = env_volume(project, &env.machine_name)?;
        let kept = kept_volume(project, &env.machine_name)?;
        let volumes = self.volumes.clone();
        let id = kept.clone();
        tokio::task::spawn_blocking(move || {
            volumes.delete(&id)?;
            volumes.clone_volume(&source, &id).map(|_| ())
        })
        .await?
        .map_err(volume_error)?;
        Ok(kept)
    }

    /// Replaces an environment's data with the copy `keep_data` made.
    pub(crate) async fn restore_kept_data(
        &self,
        project: &str,
        env: &EnvironmentRow,
        kept: &VolumeId,
    ) -> Result<()> {
        let target = env_volume(project, &env.machine_name)?;
        let volumes = self.volumes.clone();
        let kept = kept.clone();
        tokio::task::spawn_blocking(move || volumes.replace_with_clone(&kept, &target))
            .await?
            .map(|_| ())
            .map_err(volume_error)
    }

    pub(crate) async fn discard_kept_data(&self, kept: VolumeId) {
        let volumes = self.volumes.clone();
        let deleted = tokio::task::spawn_blocking(move || volumes.delete(&kept)).await;
        if let Ok(Err(error)) = deleted {
            tracing::warn!(%error, "Could not delete a copy of data kept for a rollback.");
        }
    }

    /// Deletes the environment's volume (its services must be stopped).
    pub(crate) async fn delete_volume(&self, project: &str, env: &EnvironmentRow) -> Result<()> {
        let id = env_volume(project, &env.machine_name)?;
        let volumes = self.volumes.clone();
        tokio::task::spawn_blocking(move || volumes.delete(&id))
            .await?
            .map_err(|e| Error::Internal(e.to_string()))
    }

    /// Replaces `child`'s data with a copy of `parent`'s, taken at one point in time:
    /// a copy-on-write snapshot of the running parent (crash-consistent, like a power
    /// cut, which every service recovers from), or, where the storage cannot snapshot,
    /// a copy made while the parent's services are paused. The child's service
    /// passwords are then renewed. On failure the child's previous data is untouched.
    pub(crate) async fn fill_from_parent(
        &self,
        project: &str,
        parent: &EnvironmentRow,
        child: &EnvironmentRow,
        log: &ActivityLog,
    ) -> std::result::Result<(), String> {
        // The activity owns the parent too (see `owners`): no deploy of the parent
        // changes its services or data during the copy. The tree may have changed while
        // the activity waited for them.
        let parent = &self
            .environment(project, &parent.name)
            .map_err(|e| e.to_string())?;
        let current = self
            .environment(project, &child.name)
            .map_err(|e| e.to_string())?;
        if current.parent.as_deref() != Some(parent.name.as_str()) {
            return Err(format!(
                "the parent of `{}` changed from `{}` to `{}` while this activity waited: \
                 run it again",
                child.name,
                parent.name,
                current.parent.as_deref().unwrap_or("none")
            ));
        }
        if parent.status != "active" {
            return Err(format!(
                "the parent `{}` is inactive and has no data to copy: activate it first, \
                 or create the environment without the parent's data",
                parent.name
            ));
        }
        let source = env_volume(project, &parent.machine_name).map_err(|e| e.to_string())?;
        let target = env_volume(project, &child.machine_name).map_err(|e| e.to_string())?;
        let volumes = self.volumes.clone();
        let copy_on_write = volumes.kind().is_copy_on_write();
        log.line(format!(
            "Copying the data of `{}` ({})",
            parent.name,
            volumes.kind()
        ));
        let parent_key = (project.to_string(), parent.name.clone());
        let paused = if copy_on_write {
            // The parent keeps running; writing its dirty pages out first keeps the
            // copy's crash recovery short.
            let running: Vec<_> = self.with_services(project, &parent.name, |services| {
                services.values().map(|e| e.running.clone()).collect()
            });
            let flushing = std::time::Instant::now();
            let prepared =
                futures_util::future::join_all(running.iter().map(|r| r.prepare_snapshot())).await;
            for error in prepared.into_iter().filter_map(|r| r.err()) {
                log.line(format!(
                    "W: {error}: the copy will recover on its first start"
                ));
            }
            if !running.is_empty() {
                log.line(format!(
                    "  Flushed the services of `{}` in {:.3}s (they kept serving)",
                    parent.name,
                    flushing.elapsed().as_secs_f64()
                ));
            }
            None
        } else {
            log.line(format!(
                "  The storage cannot snapshot: the services of `{}` pause while their data is copied",
                parent.name
            ));
            Some(services::pause(self, &parent_key).await)
        };
        let started = std::time::Instant::now();
        let copied = {
            let volumes = volumes.clone();
            let (source, target) = (source.clone(), target.clone());
            tokio::task::spawn_blocking(move || volumes.replace_with_clone(&source, &target))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
        };
        let pause = started.elapsed();
        if let Some(paused) = paused {
            let resumed = services::resume(self, parent_key, paused).await;
            log.line(format!(
                "  `{}` was paused for {:.3}s",
                parent.name,
                pause.as_secs_f64()
            ));
            resumed?;
        } else {
            log.line(format!(
                "  `{}` was not paused: {:.3}s for a snapshot of all its data at one instant",
                parent.name,
                pause.as_secs_f64()
            ));
        }
        let report = copied?;
        log.line(format!("  Copied: {report}"));
        // Every environment has its own credentials: the copy gets new ones, which the
        // services apply when they start.
        let services_dir = volumes.root().join(target.as_str()).join("services");
        if let Ok(entries) = std::fs::read_dir(&services_dir) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path().join("secrets.json"));
            }
        }
        Ok(())
    }

    /// Stops an environment's instances, removes its routes and deletes its data (as
    /// Platform.sh does on deactivation and deletion; the branch stays).
    pub(crate) async fn stop_environment(
        &self,
        project: &str,
        env: &EnvironmentRow,
        log: &ActivityLog,
    ) {
        self.replace_crons(&(project.to_string(), env.name.clone()), None)
            .await;
        self.router.remove(&owner_key(project, &env.name));
        if let Some(old) = self.swap_running(project, &env.name, None) {
            for app in old.apps {
                log.line(format!("  Stopping app `{}`", app.name));
                app.instance.stop(STOP_GRACE).await;
            }
        }
        let key = (project.to_string(), env.name.clone());
        services::stop_all(self, self.take_services(&key), Some(log)).await;
        self.drop_network(&key);
        self.remove_env_cgroup(project, env).await;
        self.health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        if self
            .settings
            .volume_dir(project, &env.machine_name)
            .exists()
        {
            match self.delete_volume(project, env).await {
                Ok(()) => log.line(format!("  Deleted the data of `{}`", env.name)),
                Err(e) => log.line(format!(
                    "W: could not delete the data of `{}`: {e}",
                    env.name
                )),
            }
        }
        let scratch = self.settings.scratch_dir(project, &env.machine_name);
        if scratch.exists()
            && let Err(e) = tokio::fs::remove_dir_all(&scratch).await
        {
            log.line(format!("W: could not delete {}: {e}", scratch.display()));
        }
    }
}
