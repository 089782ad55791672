//! Activities: every operation is one, with a state, a result and a log that is stored
//! line by line and can be followed while it grows.

use std::sync::Arc;

use grove_store::{ActivityRow, Store, timestamp_now};
use tokio::sync::{mpsc, watch};

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
        }
    }
}

/// Wakes followers of any activity log when a line is appended or an activity ends.
#[derive(Clone)]
pub struct LogBell {
    tx: Arc<watch::Sender<u64>>,
}

impl LogBell {
    pub fn new() -> LogBell {
        LogBell {
            tx: Arc::new(watch::channel(0).0),
        }
    }

    pub fn ring(&self) {
        self.tx.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }
}

impl Default for LogBell {
    fn default() -> Self {
        LogBell::new()
    }
}

/// The log of one running activity. Lines go to the store (for `activity:log` and
/// followers) and, when set, to a live tee (the `git push` that started it).
#[derive(Clone)]
pub struct ActivityLog {
    pub id: String,
    store: Arc<Store>,
    bell: LogBell,
    tee: Option<mpsc::UnboundedSender<String>>,
}

impl ActivityLog {
    pub fn line(&self, message: impl AsRef<str>) {
        let message = message.as_ref();
        for line in message.lines() {
            if let Err(error) = self.store.append_log(&self.id, line) {
                tracing::error!(activity = %self.id, %error, "Could not store an activity log line.");
            }
            if let Some(tee) = &self.tee {
                let _ = tee.send(line.to_string());
            }
        }
        self.bell.ring();
    }
}

/// Creates a pending activity.
pub fn create(
    store: &Arc<Store>,
    bell: &LogBell,
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
        store: store.clone(),
        bell: bell.clone(),
        tee,
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
