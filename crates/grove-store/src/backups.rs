//! Records of environment backups (`backup:create`); the data is in the backup store
//! (restic), linked by its snapshot id.

use rusqlite::{OptionalExtension, params};

use crate::{Result, Store, timestamp_now};

/// A backup as stored. `status` is `running`, `completed` or `failed` (with `reason`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupRow {
    pub id: String,
    pub project: String,
    pub environment: String,
    pub activity: String,
    pub snapshot: Option<String>,
    pub commit_id: Option<String>,
    /// `app=key` pairs, comma-separated.
    pub build_keys: String,
    pub consistent: bool,
    pub automatic: bool,
    pub pause_ms: Option<u64>,
    pub status: String,
    pub reason: Option<String>,
    pub size: Option<u64>,
    pub created_at: String,
    pub completed_at: Option<String>,
}

const COLUMNS: &str = "id, project, environment, activity, snapshot, commit_id, build_keys, \
     consistent, automatic, pause_ms, status, reason, size, created_at, completed_at";

fn backup_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<BackupRow> {
    Ok(BackupRow {
        id: row.get(0)?,
        project: row.get(1)?,
        environment: row.get(2)?,
        activity: row.get(3)?,
        snapshot: row.get(4)?,
        commit_id: row.get(5)?,
        build_keys: row.get(6)?,
        consistent: row.get(7)?,
        automatic: row.get(8)?,
        pause_ms: row.get::<_, Option<i64>>(9)?.map(|v| v.max(0) as u64),
        status: row.get(10)?,
        reason: row.get(11)?,
        size: row.get::<_, Option<i64>>(12)?.map(|v| v.max(0) as u64),
        created_at: row.get(13)?,
        completed_at: row.get(14)?,
    })
}

impl Store {
    /// Records a backup that has started (`status` `running`).
    pub fn insert_backup(&self, row: &BackupRow) -> Result<()> {
        self.write().conn.execute(
            &format!(
                "INSERT INTO backups ({COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
            ),
            params![
                row.id,
                row.project,
                row.environment,
                row.activity,
                row.snapshot,
                row.commit_id,
                row.build_keys,
                row.consistent,
                row.automatic,
                row.pause_ms.map(|v| v as i64),
                row.status,
                row.reason,
                row.size.map(|v| v as i64),
                row.created_at,
                row.completed_at,
            ],
        )?;
        Ok(())
    }

    /// Ends a backup: `completed` with its snapshot, or `failed` with the reason.
    pub fn finish_backup(&self, row: &BackupRow) -> Result<()> {
        self.write().conn.execute(
            "UPDATE backups SET snapshot = ?2, commit_id = ?3, build_keys = ?4, pause_ms = ?5,
                 status = ?6, reason = ?7, size = ?8, completed_at = ?9
             WHERE id = ?1",
            params![
                row.id,
                row.snapshot,
                row.commit_id,
                row.build_keys,
                row.pause_ms.map(|v| v as i64),
                row.status,
                row.reason,
                row.size.map(|v| v as i64),
                timestamp_now(),
            ],
        )?;
        Ok(())
    }

    /// Backups left `running` by a server that stopped: failed, with the reason.
    pub fn fail_running_backups(&self, reason: &str) -> Result<usize> {
        Ok(self.write().conn.execute(
            "UPDATE backups SET status = 'failed', reason = ?1, completed_at = ?2
             WHERE status = 'running'",
            params![reason, timestamp_now()],
        )?)
    }

    /// The backups of an environment, newest first.
    pub fn backups(&self, project: &str, environment: &str) -> Result<Vec<BackupRow>> {
        let conn = self.read();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM backups WHERE project = ?1 AND environment = ?2
             ORDER BY created_at DESC, rowid DESC"
        ))?;
        let rows = stmt.query_map(params![project, environment], backup_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn backup(&self, project: &str, id: &str) -> Result<Option<BackupRow>> {
        let conn = self.read();
        Ok(conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM backups WHERE project = ?1 AND id = ?2"),
                params![project, id],
                backup_from_row,
            )
            .optional()?)
    }

    /// A project's own retention policy for an environment type (its JSON), if set.
    pub fn backup_policy(&self, project: &str, environment_type: &str) -> Result<Option<String>> {
        Ok(self
            .read()
            .query_row(
                "SELECT policy FROM backup_policies WHERE project = ?1 AND environment_type = ?2",
                params![project, environment_type],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Sets (`Some`) or removes (`None`: the default applies again) a project's
    /// retention policy for an environment type.
    pub fn set_backup_policy(
        &self,
        project: &str,
        environment_type: &str,
        policy: Option<&str>,
    ) -> Result<()> {
        let writer = self.write();
        match policy {
            Some(policy) => writer.conn.execute(
                "INSERT INTO backup_policies (project, environment_type, policy, updated_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (project, environment_type)
                 DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at",
                params![project, environment_type, policy, timestamp_now()],
            )?,
            None => writer.conn.execute(
                "DELETE FROM backup_policies WHERE project = ?1 AND environment_type = ?2",
                params![project, environment_type],
            )?,
        };
        Ok(())
    }

    /// Deletes a backup's record; false when there is none.
    pub fn delete_backup(&self, project: &str, id: &str) -> Result<bool> {
        let changed = self.write().conn.execute(
            "DELETE FROM backups WHERE project = ?1 AND id = ?2",
            params![project, id],
        )?;
        Ok(changed > 0)
    }
}
