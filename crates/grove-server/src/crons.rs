//! Crons: each active environment's `crons` run on schedule in their app's sandbox, with
//! the runtime variables, each run an `environment.cron` activity. A cron never overlaps
//! itself; a redeploy lets a running cron finish within its `shutdown_timeout`, then
//! kills it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use grove_config::Cron;
use grove_runtime::SandboxSpec;
use tokio_util::sync::CancellationToken;

use crate::activity::{self, ActivityKind};
use crate::running::EnvironmentCrons;
use crate::state::Platform;

/// One cron of one app, ready to run.
pub struct CronJob {
    pub app: String,
    pub name: String,
    pub cron: Cron,
    pub schedule: grove_cron::Schedule,
    /// The app's sandbox, running the cron's command.
    pub sandbox: SandboxSpec,
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
    let interrupt = Arc::new(Mutex::new(CancellationToken::new()));
    let tasks = jobs
        .into_iter()
        .map(|job| {
            let platform = platform.clone();
            let stops = Stops {
                schedule: cancel.clone(),
                run: interrupt.clone(),
            };
            let (project, env) = (project.to_string(), env.to_string());
            tokio::spawn(async move { schedule(platform, project, env, job, stops).await })
        })
        .collect();
    EnvironmentCrons {
        cancel,
        interrupt,
        tasks,
    }
}

/// What ends a cron's schedule, and what interrupts its run in progress.
struct Stops {
    schedule: CancellationToken,
    run: Arc<Mutex<CancellationToken>>,
}

impl Stops {
    /// A token cancelled when the schedule stops or the current run is interrupted.
    fn for_run(&self) -> CancellationToken {
        let run = self.run.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let either = self.schedule.child_token();
        let linked = either.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = run.cancelled() => linked.cancel(),
                () = linked.cancelled() => {}
            }
        });
        either
    }
}

async fn schedule(
    platform: Arc<Platform>,
    project: String,
    env: String,
    job: CronJob,
    stops: Stops,
) {
    let cancel = &stops.schedule;
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
        // A cron runs as an operation of its environment, owning it: while another
        // operation (a deploy, a data copy) owns it, this firing is skipped, as crons
        // pause during deploys on Platform.sh.
        let Some(_owned) = platform.owners.try_acquire((project.clone(), env.clone())) else {
            tracing::info!(%project, %env, cron = %job.name,
                "Skipped a cron firing: another operation owns the environment.");
            continue;
        };
        // Runs inline: the next firing is computed after this run ends, so a cron never
        // overlaps itself (a firing it misses while running is skipped, as cron does).
        let run_cancel = stops.for_run();
        run_once(&platform, &project, &env, &job, &run_cancel).await;
        // Ends the watcher task of this run's token.
        run_cancel.cancel();
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
        &platform.logs,
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
    let spec = job.sandbox.clone();
    let timeout = Duration::from_secs(job.cron.timeout);
    let mut on_line = |line: &str| log.line(format!("  {line}"));
    let run = grove_runtime::run_command(&spec, timeout, &mut on_line);
    tokio::pin!(run);
    let outcome = tokio::select! {
        outcome = &mut run => Some(outcome),
        () = cancel.cancelled() => {
            // Another operation wants the environment (a redeploy): the run may finish
            // within its shutdown timeout, then it is killed (dropping the run kills
            // its sandbox).
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
                "E: interrupted by another operation on the environment (a redeploy): killed after its shutdown timeout of {}s",
                job.cron.shutdown_timeout
            ));
            "failure"
        }
    };
    activity::complete(&platform.logs, &row.id, result).await;
}
