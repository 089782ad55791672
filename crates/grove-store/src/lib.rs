//! Grove's metadata store: one SQLite database in the data directory.
//!
//! The store knows rows and transactions, nothing about git, processes or HTTP. Every
//! method is a short synchronous transaction; callers on an async runtime call it
//! directly (the statements are sub-millisecond) and never hold a row across an await.
//!
//! A file store has two connections: every write goes through the writer, reads go
//! through a separate read-only connection so that, in WAL mode, they see the last
//! commit instead of waiting behind a write. Activity log lines, the bulk of the
//! writes, are best appended through a [`LogWriter`], which batches them on its own
//! thread.

mod access;
mod backups;
mod http_access;
mod logs;
mod migrations;
mod ssh_keys;
mod time;
mod variables;

use std::collections::HashMap;
use std::fs;
use std::io;
use std::ops::Deref;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};

pub use access::{
    AddedUser, EnvironmentRole, PLATFORM_ADMIN, PLATFORM_USER, ProjectAccessRow, ProjectRole,
    TokenRow,
};
pub use backups::BackupRow;
pub use http_access::HttpAccessRow;
pub use logs::LogWriter;
pub use ssh_keys::SshKeyRow;
pub use time::{format_unix_millis, timestamp_now};
pub use variables::VariableRow;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("metadata store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "metadata store at {path}: schema version {found} is newer than this grove ({known}); upgrade grove"
    )]
    TooNew {
        path: String,
        found: usize,
        known: usize,
    },
    #[error("{0} already exists")]
    Conflict(String),
    #[error("metadata store at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The activity was completed, but some of its log lines could not be stored (the
    /// transaction holding them failed, e.g. the disk was full).
    #[error("{lost} log line(s) of activity `{activity}` could not be stored: {reason}")]
    LogLinesLost {
        activity: String,
        lost: u64,
        reason: String,
    },
    #[error("could not start the activity log writer thread: {0}")]
    LogWriterStart(#[source] io::Error),
    /// The log writer's thread is gone, so nothing more can be written through it.
    #[error("the activity log writer has stopped")]
    LogWriterStopped,
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRow {
    pub id: String,
    pub title: String,
    pub default_branch: Option<String>,
    pub entropy: String,
    pub created_at: String,
    /// `development` (no limit), `starter` or `pro`.
    pub plan: String,
    /// Pro plans: how many integration environments may be active.
    pub integration_limit: u32,
    /// Whether crons run on development environments unless switched on per environment.
    pub development_crons: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentRow {
    pub project: String,
    pub name: String,
    pub machine_name: String,
    pub title: String,
    pub kind: String,
    pub status: String,
    pub parent: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Crons switched on or off for this environment; `None` follows the project.
    pub crons: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityRow {
    pub id: String,
    pub project: String,
    pub environment: Option<String>,
    pub kind: String,
    pub state: String,
    pub result: Option<String>,
    pub description: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRow {
    pub seq: u64,
    pub timestamp: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRow {
    pub key: String,
    pub project: String,
    pub app: String,
    pub tree_id: String,
    pub activity: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentRow {
    pub id: i64,
    pub project: String,
    pub environment: String,
    pub activity: String,
    pub commit_id: String,
    pub tree_id: String,
    pub successful: bool,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: i64,
    pub name: String,
    pub role: String,
}

pub struct Store {
    writer: Mutex<Writer>,
    /// `None` for an in-memory database, which a second connection could not see.
    reader: Option<Mutex<Connection>>,
}

/// The connection every write goes through, and what it knows about the log.
struct Writer {
    conn: Connection,
    last_seq: LastSeq,
}

/// The last sequence number stored per activity, so that appending a line does not
/// ask SQLite for `max(seq)`. Only valid while the writer lock is held and only for
/// committed rows: whoever rolls back a transaction that appended lines clears it.
#[derive(Default)]
struct LastSeq(HashMap<String, u64>);

impl LastSeq {
    /// A cache, not a registry: past this many activities it starts over rather than
    /// grow with every activity that ever logged without completing through the store.
    const MAX_ACTIVITIES: usize = 4096;

    fn get(&self, activity: &str) -> Option<u64> {
        self.0.get(activity).copied()
    }

    fn set(&mut self, activity: &str, seq: u64) {
        if let Some(last) = self.0.get_mut(activity) {
            *last = seq;
            return;
        }
        if self.0.len() >= Self::MAX_ACTIVITIES {
            self.0.clear();
        }
        self.0.insert(activity.to_string(), seq);
    }

    /// A complete activity rarely gets more lines; forget it.
    fn forget(&mut self, activity: &str) {
        self.0.remove(activity);
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// A read connection: the reader of a file store, the writer of an in-memory one.
enum ReadGuard<'a> {
    Reader(MutexGuard<'a, Connection>),
    Writer(MutexGuard<'a, Writer>),
}

impl Deref for ReadGuard<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        match self {
            ReadGuard::Reader(conn) => conn,
            ReadGuard::Writer(writer) => &writer.conn,
        }
    }
}

/// The database holds token hashes and environment details: only grove's user may
/// read it, whatever the umask.
const DATABASE_MODE: u32 = 0o600;

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Store> {
        restrict_database_file(path)?;
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; \
             PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000;",
        )?;
        let mut store = Store {
            writer: Mutex::new(Writer {
                conn,
                last_seq: LastSeq::default(),
            }),
            reader: None,
        };
        store.migrate(&path.display().to_string())?;
        // Opened after the migrations so it never sees a half-made schema, and
        // read-only so a read routed here by mistake fails instead of racing the writer.
        let reader = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        reader.execute_batch("PRAGMA busy_timeout=5000;")?;
        store.reader = Some(Mutex::new(reader));
        // SQLite gives the -wal and -shm files the database's mode when it creates
        // them, but ones left by an older grove may be wider.
        for suffix in ["-wal", "-shm"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            restrict_existing(Path::new(&side))?;
        }
        Ok(store)
    }

    /// An in-memory store, for tests.
    pub fn open_in_memory() -> Result<Store> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch("PRAGMA foreign_keys=ON;")?;
        let store = Store {
            writer: Mutex::new(Writer {
                conn,
                last_seq: LastSeq::default(),
            }),
            reader: None,
        };
        store.migrate(":memory:")?;
        Ok(store)
    }

    // A panic while holding either lock cannot leave SQLite inconsistent (transactions
    // roll back on drop, and `write_transaction` clears the sequence cache before its
    // error leaves), so a poisoned lock is safe to reuse.
    fn write(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> ReadGuard<'_> {
        match &self.reader {
            Some(reader) => ReadGuard::Reader(reader.lock().unwrap_or_else(|e| e.into_inner())),
            None => ReadGuard::Writer(self.write()),
        }
    }

    /// Runs `f` in one write transaction. If it fails, the rows it appended are rolled
    /// back, so the sequence numbers it cached are forgotten too.
    fn write_transaction<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>, &mut LastSeq) -> Result<T>,
    ) -> Result<T> {
        let mut writer = self.write();
        let Writer { conn, last_seq } = &mut *writer;
        let outcome = conn.transaction().map_err(StoreError::from).and_then(|tx| {
            let value = f(&tx, last_seq)?;
            tx.commit()?;
            Ok(value)
        });
        if outcome.is_err() {
            last_seq.clear();
        }
        outcome
    }

    fn migrate(&self, path: &str) -> Result<()> {
        let mut writer = self.write();
        let conn = &mut writer.conn;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let version = usize::try_from(version).unwrap_or(usize::MAX);
        let known = migrations::MIGRATIONS.len();
        if version > known {
            return Err(StoreError::TooNew {
                path: path.to_string(),
                found: version,
                known,
            });
        }
        for (index, sql) in migrations::MIGRATIONS.iter().enumerate().skip(version) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(
                None,
                "user_version",
                i64::try_from(index + 1).unwrap_or(i64::MAX),
            )?;
            tx.commit()?;
        }
        Ok(())
    }

    // --- projects -------------------------------------------------------------------

    pub fn insert_project(&self, row: &ProjectRow) -> Result<()> {
        let changed = self.write().conn.execute(
            "INSERT INTO projects (id, title, default_branch, entropy, created_at, plan, integration_limit, development_crons)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(id) DO NOTHING",
            params![
                row.id,
                row.title,
                row.default_branch,
                row.entropy,
                row.created_at,
                row.plan,
                row.integration_limit,
                row.development_crons
            ],
        )?;
        if changed == 0 {
            return Err(StoreError::Conflict(format!("project `{}`", row.id)));
        }
        Ok(())
    }

    pub fn project(&self, id: &str) -> Result<Option<ProjectRow>> {
        let conn = self.read();
        Ok(conn
            .query_row(
                "SELECT id, title, default_branch, entropy, created_at, plan, integration_limit, development_crons FROM projects WHERE id = ?1",
                [id],
                project_from_row,
            )
            .optional()?)
    }

    pub fn projects(&self) -> Result<Vec<ProjectRow>> {
        let conn = self.read();
        let mut stmt = conn.prepare(
            "SELECT id, title, default_branch, entropy, created_at, plan, integration_limit, development_crons FROM projects ORDER BY id",
        )?;
        let rows = stmt.query_map([], project_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn set_default_branch(&self, project: &str, branch: &str) -> Result<()> {
        self.write().conn.execute(
            "UPDATE projects SET default_branch = ?2 WHERE id = ?1",
            params![project, branch],
        )?;
        Ok(())
    }

    // --- environments -----------------------------------------------------------------

    pub fn insert_environment(&self, row: &EnvironmentRow) -> Result<()> {
        let changed = self.write().conn.execute(
            "INSERT INTO environments
                (project, name, machine_name, title, type, status, parent, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING",
            params![
                row.project,
                row.name,
                row.machine_name,
                row.title,
                row.kind,
                row.status,
                row.parent,
                row.created_at,
                row.updated_at
            ],
        )?;
        if changed == 0 {
            return Err(StoreError::Conflict(format!(
                "environment `{}` of project `{}`",
                row.name, row.project
            )));
        }
        Ok(())
    }

    pub fn environments(&self, project: &str) -> Result<Vec<EnvironmentRow>> {
        let conn = self.read();
        let mut stmt = conn.prepare(&format!(
            "SELECT {ENV_COLUMNS} FROM environments WHERE project = ?1 ORDER BY created_at, name"
        ))?;
        let rows = stmt.query_map([project], environment_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Finds an environment by branch name or machine name.
    pub fn environment(&self, project: &str, name: &str) -> Result<Option<EnvironmentRow>> {
        let conn = self.read();
        Ok(conn
            .query_row(
                &format!(
                    "SELECT {ENV_COLUMNS} FROM environments
                     WHERE project = ?1 AND (name = ?2 OR machine_name = ?2)
                     ORDER BY name = ?2 DESC LIMIT 1"
                ),
                params![project, name],
                environment_from_row,
            )
            .optional()?)
    }

    pub fn machine_name_taken(&self, project: &str, machine_name: &str) -> Result<bool> {
        let conn = self.read();
        let n: i64 = conn.query_row(
            "SELECT count(*) FROM environments WHERE project = ?1 AND machine_name = ?2",
            params![project, machine_name],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    pub fn set_environment_status(&self, project: &str, name: &str, status: &str) -> Result<()> {
        self.write().conn.execute(
            "UPDATE environments SET status = ?3, updated_at = ?4 WHERE project = ?1 AND name = ?2",
            params![project, name, status, timestamp_now()],
        )?;
        Ok(())
    }

    /// Changes an environment's type, title or parent (the ones given).
    pub fn update_environment(
        &self,
        project: &str,
        name: &str,
        kind: Option<&str>,
        title: Option<&str>,
        parent: Option<&str>,
    ) -> Result<()> {
        self.write().conn.execute(
            "UPDATE environments SET type = coalesce(?3, type), title = coalesce(?4, title),
                 parent = coalesce(?5, parent), updated_at = ?6
             WHERE project = ?1 AND name = ?2",
            params![project, name, kind, title, parent, timestamp_now()],
        )?;
        Ok(())
    }

    pub fn set_environment_crons(&self, project: &str, name: &str, crons: bool) -> Result<()> {
        self.write().conn.execute(
            "UPDATE environments SET crons = ?3, updated_at = ?4 WHERE project = ?1 AND name = ?2",
            params![project, name, crons, timestamp_now()],
        )?;
        Ok(())
    }

    pub fn delete_environment(&self, project: &str, name: &str) -> Result<()> {
        self.write_transaction(|tx, _| {
            tx.execute(
                "DELETE FROM environments WHERE project = ?1 AND name = ?2",
                params![project, name],
            )?;
            tx.execute(
                "DELETE FROM variables WHERE project = ?1 AND environment = ?2",
                params![project, name],
            )?;
            Ok(())
        })
    }

    // --- activities -------------------------------------------------------------------

    pub fn insert_activity(&self, row: &ActivityRow) -> Result<()> {
        self.write().conn.execute(
            "INSERT INTO activities
                (id, project, environment, type, state, result, description, created_at, started_at, completed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                row.id,
                row.project,
                row.environment,
                row.kind,
                row.state,
                row.result,
                row.description,
                row.created_at,
                row.started_at,
                row.completed_at
            ],
        )?;
        Ok(())
    }

    pub fn start_activity(&self, id: &str) -> Result<()> {
        self.write().conn.execute(
            "UPDATE activities SET state = 'in_progress', started_at = ?2 WHERE id = ?1",
            params![id, timestamp_now()],
        )?;
        Ok(())
    }

    pub fn complete_activity(&self, id: &str, result: &str) -> Result<()> {
        let mut writer = self.write();
        complete_activity_in(&writer.conn, id, result, &timestamp_now())?;
        writer.last_seq.forget(id);
        Ok(())
    }

    pub fn activity(&self, id: &str) -> Result<Option<ActivityRow>> {
        let conn = self.read();
        Ok(conn
            .query_row(
                &format!("SELECT {ACTIVITY_COLUMNS} FROM activities WHERE id = ?1"),
                [id],
                activity_from_row,
            )
            .optional()?)
    }

    /// The newest activities of a project first, optionally of one environment.
    pub fn activities(
        &self,
        project: &str,
        environment: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ActivityRow>> {
        let conn = self.read();
        let mut stmt = conn.prepare(&format!(
            "SELECT {ACTIVITY_COLUMNS} FROM activities
             WHERE project = ?1 AND (?2 IS NULL OR environment = ?2)
             ORDER BY created_at DESC, rowid DESC LIMIT ?3"
        ))?;
        let rows = stmt.query_map(params![project, environment, limit], activity_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Marks every activity that is not complete as failed, with `reason` as the last
    /// line of its log. Used at start-up: nothing can still be running then.
    pub fn fail_unfinished_activities(&self, reason: &str) -> Result<Vec<String>> {
        self.write_transaction(|tx, last_seq| {
            let ids: Vec<String> = {
                let mut stmt = tx.prepare(
                    "SELECT id FROM activities WHERE state IN ('pending', 'in_progress')",
                )?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let now = timestamp_now();
            for id in &ids {
                append_log_in(tx, last_seq, id, &now, reason)?;
                complete_activity_in(tx, id, "failure", &now)?;
                last_seq.forget(id);
            }
            Ok(ids)
        })
    }

    /// Appends a line to an activity's log and returns its sequence number.
    ///
    /// One transaction per line: a running activity should log through a
    /// [`LogWriter`] instead.
    pub fn append_log(&self, activity: &str, message: &str) -> Result<u64> {
        let mut writer = self.write();
        let Writer { conn, last_seq } = &mut *writer;
        append_log_in(conn, last_seq, activity, &timestamp_now(), message)
    }

    /// The log lines after `after` (0 = from the start).
    pub fn log_since(&self, activity: &str, after: u64) -> Result<Vec<LogRow>> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT seq, timestamp, message FROM activity_log
             WHERE activity = ?1 AND seq > ?2 ORDER BY seq",
        )?;
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![activity, after], |r| {
            Ok(LogRow {
                seq: r.get::<_, i64>(0)?.unsigned_abs(),
                timestamp: r.get(1)?,
                message: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    // --- builds and deployments -----------------------------------------------------------

    pub fn insert_build(&self, row: &BuildRow) -> Result<()> {
        self.write().conn.execute(
            "INSERT OR REPLACE INTO builds (key, project, app, tree_id, activity, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                row.key,
                row.project,
                row.app,
                row.tree_id,
                row.activity,
                row.created_at
            ],
        )?;
        Ok(())
    }

    pub fn build(&self, key: &str) -> Result<Option<BuildRow>> {
        let conn = self.read();
        Ok(conn
            .query_row(
                "SELECT key, project, app, tree_id, activity, created_at FROM builds WHERE key = ?1",
                [key],
                |r| {
                    Ok(BuildRow {
                        key: r.get(0)?,
                        project: r.get(1)?,
                        app: r.get(2)?,
                        tree_id: r.get(3)?,
                        activity: r.get(4)?,
                        created_at: r.get(5)?,
                    })
                },
            )
            .optional()?)
    }

    pub fn count_builds(&self, project: &str) -> Result<u64> {
        let conn = self.read();
        let n: i64 = conn.query_row(
            "SELECT count(*) FROM builds WHERE project = ?1",
            [project],
            |r| r.get(0),
        )?;
        Ok(n.unsigned_abs())
    }

    pub fn insert_deployment(&self, row: &DeploymentRow) -> Result<i64> {
        let w = self.write();
        let conn = &w.conn;
        conn.execute(
            "INSERT INTO deployments
                (project, environment, activity, commit_id, tree_id, successful, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                row.project,
                row.environment,
                row.activity,
                row.commit_id,
                row.tree_id,
                row.successful,
                row.created_at
            ],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// Records a deployment about to be applied: `desired` is what the environment is
    /// to run, as JSON. It counts once `complete_deployment` says it succeeded. Returns
    /// its id (the environment's generation).
    pub fn plan_deployment(&self, row: &DeploymentRow, desired: &str) -> Result<i64> {
        let w = self.write();
        let conn = &w.conn;
        conn.execute(
            "INSERT INTO deployments
                (project, environment, activity, commit_id, tree_id, successful, created_at,
                 desired)
             VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7)",
            params![
                row.project,
                row.environment,
                row.activity,
                row.commit_id,
                row.tree_id,
                row.created_at,
                desired
            ],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// Marks a planned deployment as applied (or failed).
    pub fn complete_deployment(&self, id: i64, successful: bool) -> Result<()> {
        self.write().conn.execute(
            "UPDATE deployments SET successful = ?2 WHERE id = ?1",
            params![id, successful],
        )?;
        Ok(())
    }

    /// What a deployment was to run, as JSON (`None` for deployments recorded before
    /// deployments were data).
    pub fn deployment_desired(&self, id: i64) -> Result<Option<String>> {
        Ok(self
            .read()
            .query_row(
                "SELECT desired FROM deployments WHERE id = ?1",
                params![id],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()?
            .flatten())
    }

    /// The environment's newest deployment, successful or not.
    pub fn last_deployment(
        &self,
        project: &str,
        environment: &str,
    ) -> Result<Option<DeploymentRow>> {
        self.deployment_where(project, environment, "1")
    }

    /// The environment's newest successful deployment: what it should be running.
    pub fn last_successful_deployment(
        &self,
        project: &str,
        environment: &str,
    ) -> Result<Option<DeploymentRow>> {
        // A deployment whose activity failed did not happen: the server died after
        // recording it (the push it belonged to was refused, the merge not finished).
        self.deployment_where(
            project,
            environment,
            "successful = 1 AND activity NOT IN \
             (SELECT id FROM activities WHERE result = 'failure')",
        )
    }

    fn deployment_where(
        &self,
        project: &str,
        environment: &str,
        condition: &str,
    ) -> Result<Option<DeploymentRow>> {
        let conn = self.read();
        Ok(conn
            .query_row(
                &format!(
                    "SELECT id, project, environment, activity, commit_id, tree_id, successful, created_at
                     FROM deployments WHERE project = ?1 AND environment = ?2 AND {condition}
                     ORDER BY id DESC LIMIT 1"
                ),
                params![project, environment],
                |r| {
                    Ok(DeploymentRow {
                        id: r.get(0)?,
                        project: r.get(1)?,
                        environment: r.get(2)?,
                        activity: r.get(3)?,
                        commit_id: r.get(4)?,
                        tree_id: r.get(5)?,
                        successful: r.get(6)?,
                        created_at: r.get(7)?,
                    })
                },
            )
            .optional()?)
    }

    pub fn delete_deployments(&self, project: &str, environment: &str) -> Result<()> {
        self.write().conn.execute(
            "DELETE FROM deployments WHERE project = ?1 AND environment = ?2",
            params![project, environment],
        )?;
        Ok(())
    }

    // --- users and tokens -----------------------------------------------------------------

    pub fn insert_user(&self, name: &str, role: &str) -> Result<i64> {
        let w = self.write();
        let conn = &w.conn;
        conn.execute(
            "INSERT INTO users (name, role, created_at) VALUES (?1, ?2, ?3)",
            params![name, role, timestamp_now()],
        )?;
        Ok(conn.last_insert_rowid())
    }

    pub fn user_count(&self) -> Result<u64> {
        let n: i64 = self
            .read()
            .query_row("SELECT count(*) FROM users", [], |r| r.get(0))?;
        Ok(n.unsigned_abs())
    }

    /// Stores the hash of a token; the token itself is never stored.
    pub fn insert_token(&self, user_id: i64, name: &str, hash: &str) -> Result<()> {
        self.write().conn.execute(
            "INSERT INTO api_tokens (hash, user_id, name, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![hash, user_id, name, timestamp_now()],
        )?;
        Ok(())
    }

    /// The user a token hash belongs to.
    pub fn user_by_token_hash(&self, hash: &str) -> Result<Option<UserRow>> {
        let conn = self.read();
        Ok(conn
            .query_row(
                "SELECT u.id, u.name, u.role FROM api_tokens t JOIN users u ON u.id = t.user_id
                 WHERE t.hash = ?1",
                [hash],
                |r| {
                    Ok(UserRow {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        role: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }
}

const ENV_COLUMNS: &str =
    "project, name, machine_name, title, type, status, parent, created_at, updated_at, crons";
const ACTIVITY_COLUMNS: &str = "id, project, environment, type, state, result, description, \
     created_at, started_at, completed_at";

/// Appends one line, numbered after the activity's last one. The cache is updated only
/// once the row is inserted; a caller inside a transaction that later fails must clear
/// it (`Store::write_transaction` does).
fn append_log_in(
    conn: &Connection,
    last_seq: &mut LastSeq,
    activity: &str,
    timestamp: &str,
    message: &str,
) -> Result<u64> {
    let last = match last_seq.get(activity) {
        Some(last) => last,
        None => conn
            .prepare_cached("SELECT coalesce(max(seq), 0) FROM activity_log WHERE activity = ?1")?
            .query_row([activity], |r| r.get::<_, i64>(0))?
            .unsigned_abs(),
    };
    let seq = last + 1;
    conn.prepare_cached(
        "INSERT INTO activity_log (activity, seq, timestamp, message) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        activity,
        i64::try_from(seq).unwrap_or(i64::MAX),
        timestamp,
        message
    ])?;
    last_seq.set(activity, seq);
    Ok(seq)
}

fn complete_activity_in(conn: &Connection, id: &str, result: &str, now: &str) -> Result<()> {
    conn.prepare_cached(
        "UPDATE activities SET state = 'complete', result = ?2, completed_at = ?3 WHERE id = ?1",
    )?
    .execute(params![id, result, now])?;
    Ok(())
}

/// Creates the database file with mode 0600 before SQLite does (SQLite would use the
/// umask), or narrows the mode of an existing one.
fn restrict_database_file(path: &Path) -> Result<()> {
    let io_error = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(DATABASE_MODE)
        .open(path)
        .map_err(io_error)?;
    fs::set_permissions(path, fs::Permissions::from_mode(DATABASE_MODE)).map_err(io_error)
}

fn restrict_existing(path: &Path) -> Result<()> {
    match fs::set_permissions(path, fs::Permissions::from_mode(DATABASE_MODE)) {
        Err(source) if source.kind() != io::ErrorKind::NotFound => Err(StoreError::Io {
            path: path.to_path_buf(),
            source,
        }),
        _ => Ok(()),
    }
}

fn project_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ProjectRow> {
    Ok(ProjectRow {
        id: r.get(0)?,
        title: r.get(1)?,
        default_branch: r.get(2)?,
        entropy: r.get(3)?,
        created_at: r.get(4)?,
        plan: r.get(5)?,
        integration_limit: r.get(6)?,
        development_crons: r.get(7)?,
    })
}

fn environment_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EnvironmentRow> {
    Ok(EnvironmentRow {
        project: r.get(0)?,
        name: r.get(1)?,
        machine_name: r.get(2)?,
        title: r.get(3)?,
        kind: r.get(4)?,
        status: r.get(5)?,
        parent: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
        crons: r.get(9)?,
    })
}

fn activity_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ActivityRow> {
    Ok(ActivityRow {
        id: r.get(0)?,
        project: r.get(1)?,
        environment: r.get(2)?,
        kind: r.get(3)?,
        state: r.get(4)?,
        result: r.get(5)?,
        description: r.get(6)?,
        created_at: r.get(7)?,
        started_at: r.get(8)?,
        completed_at: r.get(9)?,
    })
}

#[cfg(test)]
mod tests;
