//! The backup store: a restic repository (deduplicated, compressed, encrypted,
//! checkable; a local directory or any backend restic knows, `sftp:`, `s3:`, `rest:`).
//!
//! Every method runs `restic` to completion and blocks: the server calls them on a
//! blocking thread (`spawn_blocking`), never on the async runtime.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde::Deserialize;

use crate::manifest::{MANIFEST_FILE, Manifest, VerifyError};

/// The host name recorded in every snapshot, so snapshots do not depend on the
/// machine's name (a server moved to another host still finds its parents).
const HOST: &str = "grove";

/// Environment variables restic would read instead of the arguments we pass.
const RESTIC_VARIABLES: &[&str] = &[
    "RESTIC_REPOSITORY",
    "RESTIC_REPOSITORY_FILE",
    "RESTIC_PASSWORD",
    "RESTIC_PASSWORD_FILE",
    "RESTIC_PASSWORD_COMMAND",
    "RESTIC_KEY_HINT",
    "RESTIC_CACHE_DIR",
];

/// A restic repository with its password file.
#[derive(Clone, Debug)]
pub struct Store {
    repo: String,
    password_file: PathBuf,
    cache_dir: Option<PathBuf>,
}

/// Held by every restic run of this process: shared by most, alone by the operations
/// restic itself runs exclusively (`forget`, `prune`, `unlock`, `check`).
static REPOSITORY_LOCK: std::sync::RwLock<()> = std::sync::RwLock::new(());
/// How long a run that found the repository locked by another process is tried again.
const LOCKED_RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(120);
const LOCKED_RETRY_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// What restic was doing when it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Open,
    Init,
    Backup,
    List,
    Restore,
    Forget,
    Prune,
    Check,
    Dump,
    Unlock,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Open => "opening the repository",
            Operation::Init => "creating the repository",
            Operation::Backup => "backup",
            Operation::List => "listing snapshots",
            Operation::Restore => "restore",
            Operation::Forget => "forget",
            Operation::Prune => "prune",
            Operation::Check => "check",
            Operation::Dump => "reading a file",
            Operation::Unlock => "removing stale locks",
        })
    }
}

/// Who is to blame for an error, for the server's error classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The caller's input (a tag, an id, a target directory that is not empty).
    User,
    /// The store or the host (unwritable, unreachable, damaged, restic missing).
    Upstream,
    /// restic said something this crate does not understand.
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("restic cannot be run (Debian package `restic`): {0}")]
    ResticMissing(#[source] io::Error),
    #[error("backup store password file {}: {source}", .path.display())]
    PasswordFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "backup store {repo} exists but its password file {} did not: put the password file back (without it the backups cannot be read)",
        .path.display()
    )]
    PasswordLost { repo: String, path: PathBuf },
    #[error(
        "backup store password file {} can be read by others (mode {mode:04o}); it must be 0600",
        .path.display()
    )]
    PasswordFileMode { path: PathBuf, mode: u32 },
    /// restic failed; `reason` is the line of its output that says why, `stderr` all of it.
    #[error("backup store {repo}: {operation} failed: {reason}")]
    Restic {
        repo: String,
        operation: Operation,
        reason: String,
        stderr: String,
    },
    /// `restic check` found errors.
    #[error("backup store {repo} is damaged: {reason}")]
    Damaged {
        repo: String,
        reason: String,
        output: String,
    },
    #[error("backup store {repo}: unexpected output from restic ({operation}): {detail}")]
    Output {
        repo: String,
        operation: Operation,
        detail: String,
    },
    #[error("backup of {} is incomplete ({reason}); the partial snapshot was forgotten", .root.display())]
    Incomplete { root: PathBuf, reason: String },
    #[error("backup source {}: {source}", .path.display())]
    Source {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("restore target {}: {source}", .path.display())]
    Target {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("restore target {} is not empty", .path.display())]
    TargetNotEmpty { path: PathBuf },
    #[error("invalid backup tag `{key}={value}`: {why}")]
    InvalidTag {
        key: String,
        value: String,
        why: &'static str,
    },
    #[error("invalid snapshot id `{0}`: expected 64 hexadecimal digits")]
    InvalidSnapshotId(String),
    #[error("snapshot {id} has no readable manifest ({MANIFEST_FILE}): {reason}")]
    NoManifest { id: SnapshotId, reason: String },
    #[error("snapshot {id} restored into {}: {source}", .target.display())]
    Verify {
        id: SnapshotId,
        target: PathBuf,
        #[source]
        source: VerifyError,
    },
}

impl StoreError {
    pub fn class(&self) -> ErrorClass {
        match self {
            StoreError::TargetNotEmpty { .. }
            | StoreError::InvalidTag { .. }
            | StoreError::InvalidSnapshotId(_) => ErrorClass::User,
            StoreError::Output { .. } => ErrorClass::Internal,
            // A snapshot whose files differ from its manifest is a damaged backup.
            _ => ErrorClass::Upstream,
        }
    }
}

/// A snapshot's full id (64 hex digits).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SnapshotId(String);

impl SnapshotId {
    pub fn parse(text: &str) -> Result<SnapshotId, StoreError> {
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(SnapshotId(text.to_ascii_lowercase()))
        } else {
            Err(StoreError::InvalidSnapshotId(text.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 8 digits, as restic shows them.
    pub fn short(&self) -> &str {
        &self.0[..8]
    }
}

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One snapshot in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub id: SnapshotId,
    /// Seconds since the epoch (UTC).
    pub created_at: i64,
    /// Its `key=value` tags (a tag without `=` has an empty value).
    pub tags: BTreeMap<String, String>,
    /// The directory that was backed up, as it was named then.
    pub paths: Vec<String>,
}

/// What a backup wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct BackupSummary {
    pub snapshot: Snapshot,
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unmodified: u64,
    /// Files in the backed-up tree.
    pub files_total: u64,
    /// Bytes in the backed-up tree.
    pub bytes_total: u64,
    /// Bytes added to the repository (after deduplication and compression).
    pub bytes_added: u64,
    pub duration: Duration,
}

/// How much `check` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckLevel {
    /// The repository's structure: indexes, snapshots, trees, that every pack exists.
    Structure,
    /// Also reads and verifies this percentage (1–100) of the pack files.
    ReadSubset { percent: u8 },
    /// Also reads and verifies every pack file.
    ReadAll,
}

#[derive(Deserialize)]
struct ResticSnapshot {
    id: String,
    time: String,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Deserialize)]
struct ResticSummary {
    files_new: u64,
    files_changed: u64,
    files_unmodified: u64,
    data_added: u64,
    total_files_processed: u64,
    total_bytes_processed: u64,
    total_duration: f64,
    snapshot_id: String,
}

impl Store {
    /// Opens the repository at `repo` (a directory, or `sftp:…`, `s3:…`, `rest:…`),
    /// creating it (format 2: compressed) if there is none. The password is read from
    /// `password_file`; if that file does not exist, it is created 0600 with a random
    /// password. A password file others can read is refused.
    ///
    /// Opening is one at a time within the process: two first backups at once would
    /// otherwise each write a password file or each `init` the repository, and two
    /// initialisations leave a key whose master key does not decrypt the config.
    pub fn open_or_init(repo: &str, password_file: &Path) -> Result<Store, StoreError> {
        static OPENING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = OPENING.lock().unwrap_or_else(|e| e.into_inner());
        let created = ensure_password_file(password_file)?;
        let store = Store {
            repo: repo.to_owned(),
            password_file: password_file.to_path_buf(),
            cache_dir: None,
        };
        let opened = store.command(["cat", "config"])?;
        if opened.status.success() {
            return Ok(store);
        }
        let stderr = String::from_utf8_lossy(&opened.stderr);
        if !stderr.contains("Is there a repository at the following location?") {
            if created && stderr.contains("wrong password or no key found") {
                // The repository is there but its password file was lost: a new random
                // password would only hide that.
                let _ = fs::remove_file(password_file);
                return Err(StoreError::PasswordLost {
                    repo: repo.to_owned(),
                    path: password_file.to_path_buf(),
                });
            }
            return Err(store.failure(Operation::Open, &opened));
        }
        store.run(Operation::Init, ["init", "--repository-version=2"])?;
        Ok(store)
    }

    /// Keeps restic's cache in `dir` (by default there is none, which is slower on
    /// remote repositories).
    pub fn with_cache_dir(mut self, dir: &Path) -> Store {
        self.cache_dir = Some(dir.to_path_buf());
        self
    }

    pub fn repo(&self) -> &str {
        &self.repo
    }

    /// Backs up the tree beneath `root` (its contents become the snapshot's root:
    /// restoring it fills a directory with them), tagged `key=value`. A tree restic
    /// could not read completely is an error, never a snapshot: the partial snapshot
    /// is forgotten.
    ///
    /// restic skips re-reading files unchanged since the previous snapshot of the same
    /// path: back up from a stable path (say `tmp/<project>/<env>/backup`, where the
    /// volume's snapshot is mounted or cloned each time), not a new directory per run.
    /// A repository that cannot be written fails after restic's own retries (about 45 s
    /// for a local directory).
    pub fn backup(&self, root: &Path, tags: &[(&str, &str)]) -> Result<BackupSummary, StoreError> {
        let meta = fs::metadata(root).map_err(|source| StoreError::Source {
            path: root.to_path_buf(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(StoreError::Source {
                path: root.to_path_buf(),
                source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
            });
        }
        let mut args: Vec<OsString> = vec![
            "backup".into(),
            "--json".into(),
            "--quiet".into(),
            format!("--host={HOST}").into(),
        ];
        for (key, value) in tags {
            args.push(format!("--tag={}", tag(key, value)?).into());
        }
        // Backing up `.` from inside the tree stores its contents at the snapshot's root.
        args.push(".".into());
        let output = spawn(self.base(&args).current_dir(root))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let summary = stdout
            .lines()
            .filter(|line| line.contains("\"message_type\":\"summary\""))
            .filter_map(|line| serde_json::from_str::<ResticSummary>(line).ok())
            .next_back();
        // restic's exit status 3: a snapshot was written but some files could not be read.
        if output.status.code() == Some(3) {
            if let Some(summary) = &summary
                && let Ok(snapshot) = self.find(&summary.snapshot_id)
            {
                // Best effort: the error below is what matters.
                let _ = self.run(
                    Operation::Forget,
                    ["forget".to_owned(), "--".to_owned(), snapshot.id.0],
                );
            }
            return Err(StoreError::Incomplete {
                root: root.to_path_buf(),
                reason: reason(&String::from_utf8_lossy(&output.stderr)),
            });
        }
        if !output.status.success() {
            return Err(self.failure(Operation::Backup, &output));
        }
        let summary = summary.ok_or_else(|| StoreError::Output {
            repo: self.repo.clone(),
            operation: Operation::Backup,
            detail: format!("no summary in {}", stdout.trim()),
        })?;
        let snapshot = self.find(&summary.snapshot_id)?;
        Ok(BackupSummary {
            snapshot,
            files_new: summary.files_new,
            files_changed: summary.files_changed,
            files_unmodified: summary.files_unmodified,
            files_total: summary.total_files_processed,
            bytes_total: summary.total_bytes_processed,
            bytes_added: summary.data_added,
            duration: Duration::try_from_secs_f64(summary.total_duration).unwrap_or_default(),
        })
    }

    /// The snapshots that have all of `tags` (all snapshots if none), oldest first.
    pub fn list(&self, tags: &[(&str, &str)]) -> Result<Vec<Snapshot>, StoreError> {
        let mut args = vec!["snapshots".to_owned(), "--json".to_owned()];
        if !tags.is_empty() {
            let all: Result<Vec<String>, StoreError> =
                tags.iter().map(|(key, value)| tag(key, value)).collect();
            args.push(format!("--tag={}", all?.join(",")));
        }
        self.snapshots(args)
    }

    /// Restores snapshot `id` into `target`, which must be an empty directory or not
    /// exist yet (it is then created). The caller swaps it in once it is complete (and
    /// verified): a failed restore leaves a partial `target` to remove, never a
    /// half-restored environment.
    pub fn restore(&self, id: &SnapshotId, target: &Path) -> Result<(), StoreError> {
        let target_error = |source| StoreError::Target {
            path: target.to_path_buf(),
            source,
        };
        match fs::read_dir(target) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(StoreError::TargetNotEmpty {
                        path: target.to_path_buf(),
                    });
                }
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(target).map_err(target_error)?;
            }
            Err(error) => return Err(target_error(error)),
        }
        let mut target_arg = OsString::from("--target=");
        target_arg.push(target.as_os_str());
        let args: Vec<OsString> = vec![
            "restore".into(),
            target_arg,
            "--".into(),
            id.as_str().into(),
        ];
        let output = spawn(&mut self.base(&args))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(self.failure(Operation::Restore, &output))
        }
    }

    /// Restores snapshot `id` into `target` (as [`Store::restore`]), then reads the
    /// manifest at its root and verifies every file against it: what `backup:restore`
    /// does before swapping `target` in, and `backup:verify` into a scratch directory.
    pub fn restore_verified(&self, id: &SnapshotId, target: &Path) -> Result<Manifest, StoreError> {
        self.restore(id, target)?;
        let no_manifest = |reason: String| StoreError::NoManifest {
            id: id.clone(),
            reason,
        };
        let text = fs::read(target.join(MANIFEST_FILE)).map_err(|e| no_manifest(e.to_string()))?;
        let manifest = Manifest::from_json(&text).map_err(|e| no_manifest(e.to_string()))?;
        crate::manifest::verify(target, &manifest).map_err(|source| StoreError::Verify {
            id: id.clone(),
            target: target.to_path_buf(),
            source,
        })?;
        Ok(manifest)
    }

    /// Removes these snapshots; the data only they used stays in the repository
    /// until the next [`Store::prune`]. Takes the repository's exclusive lock briefly.
    pub fn forget(&self, ids: &[SnapshotId]) -> Result<(), StoreError> {
        self.forget_with(ids, false)
    }

    /// Removes these snapshots and prunes the data no other snapshot uses.
    pub fn forget_and_prune(&self, ids: &[SnapshotId]) -> Result<(), StoreError> {
        self.forget_with(ids, true)
    }

    fn forget_with(&self, ids: &[SnapshotId], prune: bool) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut args = vec!["forget".to_owned()];
        if prune {
            args.push("--prune".to_owned());
        }
        args.push("--".to_owned());
        args.extend(ids.iter().map(|id| id.0.clone()));
        self.run(Operation::Forget, args).map(drop)
    }

    /// Deletes the data no snapshot uses any more (it reads and rewrites part of the
    /// repository, under its exclusive lock: the expensive half of retention).
    pub fn prune(&self) -> Result<(), StoreError> {
        self.run(Operation::Prune, ["prune"]).map(drop)
    }

    /// Checks the repository; an error names what is damaged.
    pub fn check(&self, level: CheckLevel) -> Result<(), StoreError> {
        let mut args = vec!["check".to_owned()];
        match level {
            CheckLevel::Structure => {}
            CheckLevel::ReadSubset { percent } => {
                args.push(format!("--read-data-subset={}%", percent.clamp(1, 100)));
            }
            CheckLevel::ReadAll => args.push("--read-data".to_owned()),
        }
        let output = self.command(args)?;
        if output.status.success() {
            return Ok(());
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let all = format!("{stdout}{stderr}");
        // restic ends every check that found damage with this line; any other failure
        // (an unreachable repository, a wrong password) is not a verdict on the data.
        if !all.contains("repository contains errors") {
            return Err(self.failure(Operation::Check, &output));
        }
        Err(StoreError::Damaged {
            repo: self.repo.clone(),
            reason: check_reason(&all),
            output: all,
        })
    }

    /// The contents of one file of a snapshot (`path` relative to its root), such as
    /// its manifest, without restoring it.
    pub fn read_file(&self, id: &SnapshotId, path: &str) -> Result<Vec<u8>, StoreError> {
        let inside = format!("/{}", path.trim_start_matches('/'));
        let output = self.run(
            Operation::Dump,
            ["dump".to_owned(), "--".to_owned(), id.0.clone(), inside],
        )?;
        Ok(output.stdout)
    }

    /// Removes locks left by restic processes that died (after a crash of the server).
    pub fn unlock(&self) -> Result<(), StoreError> {
        self.run(Operation::Unlock, ["unlock"]).map(drop)
    }

    fn find(&self, id: &str) -> Result<Snapshot, StoreError> {
        let mut found = self.snapshots(vec![
            "snapshots".to_owned(),
            "--json".to_owned(),
            "--".to_owned(),
            id.to_owned(),
        ])?;
        match found.len() {
            1 => Ok(found.remove(0)),
            n => Err(StoreError::Output {
                repo: self.repo.clone(),
                operation: Operation::List,
                detail: format!("{n} snapshots match the new snapshot's id {id}"),
            }),
        }
    }

    fn snapshots(&self, args: Vec<String>) -> Result<Vec<Snapshot>, StoreError> {
        let output = self.run(Operation::List, args)?;
        let bad = |detail: String| StoreError::Output {
            repo: self.repo.clone(),
            operation: Operation::List,
            detail,
        };
        let raw: Vec<ResticSnapshot> =
            serde_json::from_slice(&output.stdout).map_err(|e| bad(e.to_string()))?;
        let mut snapshots = Vec::with_capacity(raw.len());
        for snapshot in raw {
            let created_at = crate::time::parse_rfc3339(&snapshot.time)
                .ok_or_else(|| bad(format!("snapshot time `{}`", snapshot.time)))?;
            let tags = snapshot
                .tags
                .iter()
                .map(|tag| match tag.split_once('=') {
                    Some((key, value)) => (key.to_owned(), value.to_owned()),
                    None => (tag.clone(), String::new()),
                })
                .collect();
            snapshots.push(Snapshot {
                id: SnapshotId::parse(&snapshot.id).map_err(|e| bad(e.to_string()))?,
                created_at,
                tags,
                paths: snapshot.paths,
            });
        }
        snapshots.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(snapshots)
    }

    /// `restic` with the repository, password and cache arguments, and no variable
    /// of the caller's environment that would override them.
    fn base<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut command = Command::new("restic");
        for variable in RESTIC_VARIABLES {
            command.env_remove(variable);
        }
        command.arg(format!("--repo={}", self.repo));
        let mut password = OsString::from("--password-file=");
        password.push(self.password_file.as_os_str());
        command.arg(password);
        match &self.cache_dir {
            Some(dir) => {
                let mut cache = OsString::from("--cache-dir=");
                cache.push(dir.as_os_str());
                command.arg(cache);
            }
            None => {
                command.arg("--no-cache");
            }
        }
        command.args(args).stdin(Stdio::null());
        command
    }

    /// Runs restic; its output whatever its exit status.
    fn command<I, S>(&self, args: I) -> Result<Output, StoreError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let args: Vec<std::ffi::OsString> =
            args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        // restic's exclusive operations fail at once while another restic holds the
        // repository (two environments backed up at the same time): within this
        // process they wait for the others instead, and the others for them.
        let exclusive = args.first().is_some_and(|a| {
            ["forget", "prune", "unlock", "check"]
                .iter()
                .any(|e| a == e)
        });
        // A restic of another process (an operator's, or one left running by a server
        // that was killed) can hold a lock too: restic gives up at once, so the run
        // is tried again for a while, as restic's later `--retry-lock` would.
        let started = std::time::Instant::now();
        loop {
            let output = if exclusive {
                let _alone = REPOSITORY_LOCK.write().unwrap_or_else(|e| e.into_inner());
                spawn(&mut self.base(&args))?
            } else {
                let _shared = REPOSITORY_LOCK.read().unwrap_or_else(|e| e.into_inner());
                spawn(&mut self.base(&args))?
            };
            let locked = !output.status.success()
                && String::from_utf8_lossy(&output.stderr).contains("already locked");
            if !locked || started.elapsed() >= LOCKED_RETRY_FOR {
                return Ok(output);
            }
            std::thread::sleep(LOCKED_RETRY_EVERY);
        }
    }

    /// Runs restic; an error unless it succeeds.
    fn run<I, S>(&self, operation: Operation, args: I) -> Result<Output, StoreError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let output = self.command(args)?;
        if output.status.success() {
            Ok(output)
        } else {
            Err(self.failure(operation, &output))
        }
    }

    fn failure(&self, operation: Operation, output: &Output) -> StoreError {
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        StoreError::Restic {
            repo: self.repo.clone(),
            operation,
            reason: reason(&stderr),
            stderr,
        }
    }
}

fn spawn(command: &mut Command) -> Result<Output, StoreError> {
    command.output().map_err(StoreError::ResticMissing)
}

/// The line of restic's stderr that says why it failed: its `Fatal:` line (without the
/// prefix), else the last line that is not blank.
fn reason(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if let Some(fatal) = lines.iter().rev().find_map(|l| l.strip_prefix("Fatal: ")) {
        return fatal.to_owned();
    }
    if let Some(error) = lines.iter().rev().find(|l| l.contains("error")) {
        return (*error).to_owned();
    }
    lines.last().map_or_else(
        || "restic failed without a message".to_owned(),
        |l| (*l).to_owned(),
    )
}

/// What `restic check` found: the lines naming errors, without its progress lines
/// and its closing verdict.
fn check_reason(output: &str) -> String {
    let found: Vec<&str> = output
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .filter(|line| !line.starts_with("Fatal: repository contains errors"))
        .filter(|line| {
            line.contains("error")
                || line.contains("not exist")
                || line.contains("not found")
                || line.contains("does not match")
                || line.contains("Pack ID")
                || line.starts_with("pack ")
        })
        .collect();
    if found.is_empty() {
        "restic check found errors".to_owned()
    } else {
        found.join("; ")
    }
}

/// A `key=value` tag as restic stores it. Commas separate tags on restic's command
/// line, and `=` separates key from value, so neither may appear where it would be
/// misread.
fn tag(key: &str, value: &str) -> Result<String, StoreError> {
    let invalid = |why| StoreError::InvalidTag {
        key: key.to_owned(),
        value: value.to_owned(),
        why,
    };
    if key.is_empty() {
        return Err(invalid("the key is empty"));
    }
    if key.contains('=') {
        return Err(invalid("the key contains `=`"));
    }
    if key.contains(',') || value.contains(',') {
        return Err(invalid("a tag cannot contain `,`"));
    }
    if key.chars().chain(value.chars()).any(char::is_control) {
        return Err(invalid("a tag cannot contain control characters"));
    }
    Ok(format!("{key}={value}"))
}

/// Creates the password file (0600, 32 random bytes in hex) if it is missing (then
/// `true`); refuses one that others can read.
fn ensure_password_file(path: &Path) -> Result<bool, StoreError> {
    let error = |source| StoreError::PasswordFile {
        path: path.to_path_buf(),
        source,
    };
    match fs::metadata(path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(StoreError::PasswordFileMode {
                    path: path.to_path_buf(),
                    mode,
                });
            }
            if meta.len() == 0 {
                return Err(error(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the file is empty",
                )));
            }
            Ok(false)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).map_err(|e| error(io::Error::other(e.to_string())))?;
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(error)?;
            file.write_all(hex::encode(secret).as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(error)?;
            Ok(true)
        }
        Err(e) => Err(error(e)),
    }
}
