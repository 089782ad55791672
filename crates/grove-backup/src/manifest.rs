//! The manifest of one Grove backup: what it holds and the checksum of every file, so
//! a restored tree can be verified without trusting the store.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where the caller puts the manifest in the tree it backs up (at its root). It is the
/// one file the checksums leave out.
pub const MANIFEST_FILE: &str = "grove-backup.json";

/// The manifest's format; bumped on any change that old readers would misread.
pub const FORMAT: u32 = 1;

/// One Grove backup, written as JSON at the root of the backed-up tree
/// ([`MANIFEST_FILE`]) and kept by the server beside its record of the backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub project: String,
    pub environment: String,
    /// The commit the environment ran.
    pub commit: Option<String>,
    /// The build it ran (a build key): restoring the code deploys this build again.
    pub build_key: Option<String>,
    /// Seconds since the epoch (UTC), when the data was captured.
    pub created_at: i64,
    pub consistency: Consistency,
    pub services: Vec<ServiceData>,
    pub mounts: Vec<MountData>,
    pub files: FileTree,
}

/// How the data was captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Consistency {
    /// Services quiesced at one instant while the volume was snapshotted; `pause_ms`
    /// is how long requests and writes were held.
    Consistent { pause_ms: u64 },
    /// No pause: crash-consistent, as after a power cut.
    Live,
}

/// One service's data in the backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceData {
    /// The service's name in `services.yaml`.
    pub name: String,
    /// Its type and version, as configured (`mariadb:10.11`).
    #[serde(rename = "type")]
    pub service_type: String,
    pub method: CaptureMethod,
    /// How the service was held while its data was captured (`commits blocked
    /// (BACKUP STAGE BLOCK_COMMIT)`); none for a live backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiesced: Option<String>,
    /// Where it lies in the backed-up tree, relative to its root.
    pub path: String,
}

/// How a service's data was captured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CaptureMethod {
    /// Its data directory, from a snapshot of the volume (after `BACKUP STAGE`,
    /// `BGSAVE`, a checkpoint, ... for a consistent backup).
    VolumeSnapshot,
    /// A logical dump written by `tool` (`mariadb-dump --single-transaction`, `pg_dump`).
    Dump { tool: String },
}

/// One mount's files in the backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountData {
    pub app: String,
    /// The mount point, as in the app's configuration (`web/uploads`).
    pub mount: String,
    /// Where it lies in the backed-up tree, relative to its root.
    pub path: String,
}

/// Every file, directory and symlink of a tree, by path relative to its root, with a
/// digest of the whole. Sockets, FIFOs and devices are not data and are left out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileTree {
    /// sha256 of the sorted listing (path, kind, checksum or target), hex.
    pub digest: String,
    pub entries: BTreeMap<String, Entry>,
}

/// One entry of a [`FileTree`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    Dir,
    File { size: u64, sha256: String },
    Symlink { target: String },
}

/// A tree that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct ReadError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Why a restored tree does not match its manifest.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the restored tree cannot be read: {0}")]
    Read(#[from] ReadError),
    #[error("the restored tree differs from its manifest: {}", summary(.missing, .extra, .changed))]
    Mismatch {
        /// In the manifest, not in the tree.
        missing: Vec<String>,
        /// In the tree, not in the manifest.
        extra: Vec<String>,
        /// In both, with another kind, size, checksum or link target.
        changed: Vec<String>,
    },
}

fn summary(missing: &[String], extra: &[String], changed: &[String]) -> String {
    let mut parts = Vec::new();
    for (what, paths) in [("missing", missing), ("extra", extra), ("changed", changed)] {
        if paths.is_empty() {
            continue;
        }
        let shown: Vec<&str> = paths.iter().take(5).map(String::as_str).collect();
        let more = paths.len().saturating_sub(shown.len());
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        parts.push(format!(
            "{} {what} ({}{more})",
            paths.len(),
            shown.join(", ")
        ));
    }
    parts.join("; ")
}

impl FileTree {
    /// Reads every entry beneath `root` without following symlinks, hashing each file.
    /// [`MANIFEST_FILE`] at the root is left out. Blocking: run it on a blocking thread.
    pub fn compute(root: &Path) -> Result<FileTree, ReadError> {
        let mut entries = BTreeMap::new();
        walk(root, root, &mut entries)?;
        Ok(FileTree::from_entries(entries))
    }

    /// The tree of these entries, with its digest.
    pub fn from_entries(entries: BTreeMap<String, Entry>) -> FileTree {
        let mut hasher = Sha256::new();
        for (path, entry) in &entries {
            hasher.update(path.as_bytes());
            hasher.update([0]);
            match entry {
                Entry::Dir => hasher.update(b"dir"),
                Entry::File { size, sha256 } => {
                    hasher.update(format!("file\0{size}\0{sha256}"));
                }
                Entry::Symlink { target } => {
                    hasher.update(b"symlink\0");
                    hasher.update(target.as_bytes());
                }
            }
            hasher.update(b"\n");
        }
        FileTree {
            digest: hex::encode(hasher.finalize()),
            entries,
        }
    }
}

impl Manifest {
    pub fn to_json(&self) -> String {
        // A struct of strings, numbers and maps with string keys always serialises.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    pub fn from_json(text: &[u8]) -> Result<Manifest, serde_json::Error> {
        serde_json::from_slice(text)
    }
}

/// Recomputes the checksums of `restored` and compares them with the manifest's.
pub fn verify(restored: &Path, manifest: &Manifest) -> Result<(), VerifyError> {
    let actual = FileTree::compute(restored)?;
    if actual.digest == manifest.files.digest && actual.entries == manifest.files.entries {
        return Ok(());
    }
    let expected = &manifest.files.entries;
    let missing = expected
        .keys()
        .filter(|path| !actual.entries.contains_key(*path))
        .cloned()
        .collect();
    let extra = actual
        .entries
        .keys()
        .filter(|path| !expected.contains_key(*path))
        .cloned()
        .collect();
    let changed = expected
        .iter()
        .filter(|(path, entry)| actual.entries.get(*path).is_some_and(|a| a != *entry))
        .map(|(path, _)| path.clone())
        .collect();
    Err(VerifyError::Mismatch {
        missing,
        extra,
        changed,
    })
}

fn walk(root: &Path, dir: &Path, entries: &mut BTreeMap<String, Entry>) -> Result<(), ReadError> {
    let read_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReadError { path, source }
    };
    let listing = fs::read_dir(dir).map_err(read_error(dir))?;
    for item in listing {
        let item = item.map_err(read_error(dir))?;
        let path = item.path();
        let relative = path.strip_prefix(root).unwrap_or(&path);
        if dir == root && relative == Path::new(MANIFEST_FILE) {
            continue;
        }
        let name = encode_path(relative);
        let meta = fs::symlink_metadata(&path).map_err(read_error(&path))?;
        let kind = meta.file_type();
        if kind.is_dir() {
            entries.insert(name, Entry::Dir);
            walk(root, &path, entries)?;
        } else if kind.is_symlink() {
            let target = fs::read_link(&path).map_err(read_error(&path))?;
            entries.insert(
                name,
                Entry::Symlink {
                    target: encode_path(&target),
                },
            );
        } else if kind.is_file() {
            let (size, sha256) = hash_file(&path).map_err(read_error(&path))?;
            entries.insert(name, Entry::File { size, sha256 });
        }
    }
    Ok(())
}

fn hash_file(path: &Path) -> io::Result<(u64, String)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        size += read as u64;
        hasher.update(&buffer[..read]);
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// A path as a JSON string, losslessly: UTF-8 as is, except `%`, which is written
/// `%25`, and bytes that are not UTF-8, written `%XX`. Apps name files as they like.
fn encode_path(path: &Path) -> String {
    let bytes = path.as_os_str().as_bytes();
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.contains('%') => text.to_owned(),
        _ => {
            let mut out = String::new();
            for chunk in bytes.utf8_chunks() {
                out.push_str(&chunk.valid().replace('%', "%25"));
                for byte in chunk.invalid() {
                    out.push_str(&format!("%{byte:02X}"));
                }
            }
            out
        }
    }
}
