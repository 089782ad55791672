//! Activities: every operation is one, with a state, a result and a log that is stored
//! line by line and can be followed while it grows.

use std::sync::Arc;

use grove_store::{ActivityRow, LogWriter, Store, timestamp_now};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::error::Result;

/// The activity types Grove records (Platform.sh's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivityKind {
    Push,
    Activate,
    Deactivate,
    Delete,
    Redeploy,
    Branch,
    Synchronize,
    Merge,
    Cron,
    /// A service of the environment crashed, recovered or stays unhealthy.
    Health,
    Backup,
    BackupDelete,
    Restore,
}

impl ActivityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityKind::Push => "environment.push",
            ActivityKind::Activate => "environment.activate",
            ActivityKind::Deactivate => "environment.deactivate",
            ActivityKind::Delete => "environment.delete",
            ActivityKind::Redeploy => "environment.redeploy",
            ActivityKind::Branch => "environment.branch",
            ActivityKind::Synchronize => "environment.synchronize",
            ActivityKind::Merge => "environment.merge",
            ActivityKind::Cron => "environment.cron",
            ActivityKind::Health => "environment.health",
            ActivityKind::Backup => "environment.backup",
            ActivityKind::BackupDelete => "environment.backup.delete",
            ActivityKind::Restore => "environment.restore",
        }
    }
}

/// The log of one running activity. Lines go to the store through its log writer
/// (batched on the writer's thread, so a hook printing fast never waits for SQLite; the
/// activity's followers are woken) and, when set, to a live tee (the `git push` that
/// started it).
#[derive(Clone)]
pub struct ActivityLog {
    pub id: String,
    logs: LogWriter,
    tee: Option<mpsc::UnboundedSender<String>>,
    /// Cancelled by `activity:cancel`: the commands the activity runs are stopped.
    cancel: CancellationToken,
}

impl ActivityLog {
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Completes when the activity is cancelled.
    pub fn cancelled(&self) -> WaitForCancellationFutureOwned {
        self.cancel.clone().cancelled_owned()
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    pub fn line(&self, message: impl AsRef<str>) {
        for line in message.as_ref().lines() {
            self.logs.append(&self.id, line);
            if let Some(tee) = &self.tee {
                let _ = tee.send(line.to_string());
            }
        }
    }
}

/// Completes an activity once every line logged before is stored.
pub async fn complete(logs: &LogWriter, id: &str, result: &str) {
    match logs.complete(id, result).await {
        Ok(()) => {}
        Err(grove_store::StoreError::LogLinesLost { lost, reason, .. }) => {
            tracing::warn!(activity = %id, lost, %reason, "Some log lines of the activity could not be stored.");
        }
        Err(error) => {
            tracing::error!(activity = %id, %error, "Could not complete the activity.");
        }
    }
}

/// Creates a pending activity.
pub fn create(
    store: &Arc<Store>,
    logs: &LogWriter,
    project: &str,
    environment: Option<&str>,
    kind: ActivityKind,
    description: String,
    tee: Option<mpsc::UnboundedSender<String>>,
) -> Result<(ActivityRow, ActivityLog)> {
    let row = ActivityRow {
        id: new_activity_id(),
        project: project.to_string(),
        environment: environment.map(str::to_string),
        kind: kind.as_str().to_string(),
        state: "pending".into(),
        result: None,
        description,
        created_at: timestamp_now(),
        started_at: None,
        completed_at: None,
    };
    store.insert_activity(&row)?;
    let log = ActivityLog {
        id: row.id.clone(),
        logs: logs.clone(),
        tee,
        cancel: CancellationToken::new(),
    };
    Ok((row, log))
}

fn new_activity_id() -> String {
    let mut bytes = [0u8; 8];
    // Activity ids only need to be unique, not secret; fall back to the clock if the
    // kernel's random source is unavailable.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes = (nanos as u64).to_be_bytes();
    }
    hex::encode(bytes)
}
