//! Crons: each active environment's `crons` run on schedule in their app's sandbox, with
//! the runtime variables, each run an `environment.cron` activity. A cron never overlaps
//! itself; a redeploy lets a running cron finish within its `shutdown_timeout`, then
//! kills it.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use grove_config::Cron;
use grove_runtime::SandboxSpec;
use tokio_util::sync::CancellationToken;

use crate::activity::{self, ActivityKind};
use crate::platform::Platform;

/// One cron of one app, ready to run.
pub struct CronJob {
    pub app: String,
    pub name: String,
    pub cron: Cron,
    pub schedule: grove_cron::Schedule,
    /// The app's sandbox, without a command.
    pub sandbox: SandboxSpec,
}

/// The schedulers of one environment; cancelled when it is redeployed or stopped.
pub struct EnvironmentCrons {
    cancel: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl EnvironmentCrons {
    /// Stops scheduling; running crons get their `shutdown_timeout`.
    pub async fn stop(self) {
        self.cancel.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Starts one scheduler task per cron.
pub fn start(
    platform: &Arc<Platform>,
    project: &str,
    env: &str,
    jobs: Vec<CronJob>,
) -> EnvironmentCrons {
    let cancel = CancellationToken::new();
    let tasks = jobs
        .into_iter()
        .map(|job| {
            let platform = platform.clone();
            let cancel = cancel.clone();
            let (project, env) = (project.to_string(), env.to_string());
            tokio::spawn(async move { schedule(platform, project, env, job, cancel).await })
        })
        .collect();
    EnvironmentCrons { cancel, tasks }
}

async fn schedule(
    platform: Arc<Platform>,
    project: String,
    env: String,
    job: CronJob,
    cancel: CancellationToken,
) {
    loop {
        let now = now_secs();
        let Some(next) = job.schedule.next_after(now) else {
            tracing::warn!(%project, %env, cron = %job.name, "The cron never fires again.");
            return;
        };
        let wait = Duration::from_secs(u64::try_from(next - now).unwrap_or(0));
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        if !platform.crons_enabled(&project, &env) {
            continue;
        }
        // Runs inline: the next firing is computed after this run ends, so a cron never
        // overlaps itself (a firing it misses while running is skipped, as cron does).
        run_once(&platform, &project, &env, &job, &cancel).await;
    }
}

async fn run_once(
    platform: &Arc<Platform>,
    project: &str,
    env: &str,
    job: &CronJob,
    cancel: &CancellationToken,
) {
    let created = activity::create(
        &platform.store,
        &platform.bell,
        project,
        Some(env),
        ActivityKind::Cron,
        format!("Cron `{}` of app `{}`", job.name, job.app),
        None,
    );
    let (row, log) = match created {
        Ok(created) => created,
        Err(error) => {
            tracing::error!(%error, "Could not record a cron run.");
            return;
        }
    };
    let _ = platform.store.start_activity(&row.id);
    log.line(format!("Running `{}`", job.cron.command));
    let mut spec = job.sandbox.clone();
    spec.command = job.cron.command.clone();
    let timeout = Duration::from_secs(job.cron.timeout);
    let mut on_line = |line: &str| log.line(format!("  {line}"));
    let run = grove_runtime::run_command(&spec, timeout, &mut on_line);
    tokio::pin!(run);
    let outcome = tokio::select! {
        outcome = &mut run => Some(outcome),
        () = cancel.cancelled() => {
            // A redeploy: the run may finish within its shutdown timeout, then it is
            // killed (dropping the run kills its sandbox).
            let grace = Duration::from_secs(job.cron.shutdown_timeout);
            tokio::time::timeout(grace, &mut run).await.ok()
        }
    };
    let result = match outcome {
        Some(Ok(outcome)) if outcome.success() => {
            log.line("The cron succeeded");
            "success"
        }
        Some(Ok(outcome)) => {
            log.line(format!("E: the cron failed ({outcome})"));
            "failure"
        }
        Some(Err(error)) => {
            log.line(format!("E: the cron could not run: {error}"));
            "failure"
        }
        None => {
            log.line(format!(
                "E: cancelled by a redeploy: killed after its shutdown timeout of {}s",
                job.cron.shutdown_timeout
            ));
            "failure"
        }
    };
    let _ = platform.store.complete_activity(&row.id, result);
    platform.bell.ring();
}
