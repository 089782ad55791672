use std::io;
use std::path::PathBuf;

use crate::VolumeId;

/// What failed, on which volume (or on the store itself), and in the
/// `action` text what we were doing: `cloning volume shop/main/db to shop/feature/db`.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// The caller's input: a name that can't be a volume id.
    #[error("invalid volume id {id:?}: {reason}")]
    InvalidId { id: String, reason: &'static str },

    #[error("volume {id} does not exist")]
    NotFound { id: VolumeId },

    #[error("volume {id} already exists")]
    AlreadyExists { id: VolumeId },

    /// The id collides with the layout: a volume inside another volume, or a
    /// name that is already a directory of other volumes.
    #[error("volume {id} is not possible: {reason}")]
    Conflict { id: VolumeId, reason: String },

    /// Something is mounted inside the volume: unmount it (stop what uses
    /// the volume) first.
    #[error("volume {id} is in use: {} is mounted inside it", mount_point.display())]
    Busy { id: VolumeId, mount_point: PathBuf },

    /// The filesystem (or loop pool) is full. Whatever the action had begun
    /// was removed again.
    #[error("{action}: no space left on device ({detail})")]
    NoSpace { action: String, detail: String },

    #[error("{action}: {}: {source}", path.display())]
    Io {
        action: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// One of the tools we drive (`btrfs`, `cp`, `losetup`, `mount`...) failed.
    #[error("{action}: `{command}` failed ({status}): {stderr}")]
    Command {
        action: String,
        command: String,
        status: String,
        stderr: String,
    },

    #[error("{action}: `{program}` is not installed (Debian package {package})")]
    ToolMissing {
        action: String,
        program: String,
        package: &'static str,
    },

    /// `--storage btrfs` on a root that is not on btrfs.
    #[error(
        "volume store at {}: the filesystem is {filesystem}, not btrfs \
         (use --storage btrfs-loop:<size> for a loop-backed pool, or plain)",
        root.display()
    )]
    NotBtrfs { root: PathBuf, filesystem: String },

    /// The loop-backed pool can't be set up or taken down.
    #[error("btrfs loop pool {}: {reason}", image.display())]
    Pool { image: PathBuf, reason: String },

    /// Another store (in this or another process) has the root open.
    #[error("volume store at {} is already open in process {holder}", root.display())]
    InUse { root: PathBuf, holder: String },
}

impl VolumeError {
    /// The disk (or pool) is full: the operator has to make room or grow the pool.
    pub fn is_no_space(&self) -> bool {
        matches!(self, VolumeError::NoSpace { .. })
    }

    /// The request was wrong (bad id, missing or existing volume), not the
    /// machine: retrying the same request fails the same way.
    pub fn is_caller_error(&self) -> bool {
        matches!(
            self,
            VolumeError::InvalidId { .. }
                | VolumeError::NotFound { .. }
                | VolumeError::AlreadyExists { .. }
                | VolumeError::Conflict { .. }
        )
    }

    pub(crate) fn io(
        action: impl Into<String>,
        path: impl Into<PathBuf>,
        source: io::Error,
    ) -> Self {
        let action = action.into();
        let path = path.into();
        if source.kind() == io::ErrorKind::StorageFull {
            VolumeError::NoSpace {
                action,
                detail: path.display().to_string(),
            }
        } else {
            VolumeError::Io {
                action,
                path,
                source,
            }
        }
    }
}
