//! Directories beneath a root that apps and repositories write to (an environment's
//! volume, a build), opened without following symbolic links and never outside it.
//!
//! Paths from users are hostile: an app can turn any directory of its mounts into a
//! symlink, and a repository can commit one. Checking a path and then handing the
//! path to bwrap is a race (the previous instance of the app keeps running during a
//! deploy and can swap a directory for a link in between), so what leaves this
//! module is an open descriptor of the directory: [`open_dir`] walks the path one
//! component at a time with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`,
//! creating what is missing with `mkdirat` and opening it again, and bwrap binds the
//! descriptor (`--bind-fd`). bwrap 0.8 mounts the path it reads back from
//! `/proc/self/fd/N` and then checks that the mounted directory is the descriptor's
//! (device and inode), stopping otherwise: a link swapped in after the check makes
//! the sandbox fail to start, it never gets the link's target. That mount happens
//! in the sandbox's own mount namespace, so the host sees nothing of it.
//!
//! Descriptors are `O_PATH | O_CLOEXEC`: they grant no read or write access by
//! themselves, and never leak into a process spawned by another thread.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// A path beneath a root that was refused, and why.
#[derive(Debug, thiserror::Error)]
#[error("`{}` {refusal}", path.display())]
pub struct BeneathError {
    /// The part of the path that was refused, relative to the root (up to and
    /// including the offending component); the root itself when it could not be
    /// opened.
    pub path: PathBuf,
    pub refusal: Refusal,
}

#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("is a symbolic link; refusing to follow it")]
    Symlink,
    #[error("is not a directory")]
    NotADirectory,
    #[error("is not a relative path of plain names (no `..`, `.` or leading `/`)")]
    NotBeneath,
    #[error("could not be opened or created: {0}")]
    Io(#[source] std::io::Error),
}

const DIR_FLAGS: OFlags = OFlags::PATH.union(OFlags::DIRECTORY).union(OFlags::CLOEXEC);
/// No symlink anywhere, not even a trailing one, and nothing outside the directory
/// the walk starts from (absolute paths and `..` escaping it fail with EXDEV).
const RESOLVE: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_SYMLINKS);
const DIR_MODE: u32 = 0o755;

/// Opens `root` itself (an `O_PATH` descriptor). The root is the platform's own path
/// (its data directory), so symlinks in it are followed.
pub fn open_root(root: &Path) -> Result<OwnedFd, BeneathError> {
    rustix::fs::open(root, DIR_FLAGS, Mode::empty()).map_err(|errno| BeneathError {
        path: root.to_owned(),
        refusal: Refusal::Io(errno.into()),
    })
}

/// The directory `path` beneath `root`, as an `O_PATH` descriptor; missing
/// directories are created (0755) when `create` is set. Refused: a symlink at any
/// depth, a component that is not a directory, and any path that is not a relative
/// path of plain names.
pub fn open_dir(root: &Path, path: &Path, create: bool) -> Result<OwnedFd, BeneathError> {
    check_relative(path)?;
    let root = open_root(root)?;
    open_dir_at(root.as_fd(), path, create)
}

/// [`open_dir`] with `create` set, for callers that only need the directory to exist.
pub fn create_dir(root: &Path, path: &Path) -> Result<(), BeneathError> {
    open_dir(root, path, true).map(drop)
}

/// [`open_dir`] from an open directory.
pub fn open_dir_at(
    root: BorrowedFd<'_>,
    path: &Path,
    create: bool,
) -> Result<OwnedFd, BeneathError> {
    check_relative(path)?;
    let refused = |path: &Path, errno: Errno| BeneathError {
        path: path.to_owned(),
        refusal: refusal(errno),
    };
    let mut current = rustix::fs::openat2(root, ".", DIR_FLAGS, Mode::empty(), RESOLVE)
        .map_err(|errno| refused(Path::new("."), errno))?;
    let mut so_far = PathBuf::new();
    for name in path.iter() {
        so_far.push(name);
        let next = match open_child(current.as_fd(), name) {
            Err(Errno::NOENT) if create => {
                // Whatever appears between the mkdirat and the open (a link the app
                // made meanwhile) is refused by the open like any other.
                match rustix::fs::mkdirat(current.as_fd(), name, Mode::from_raw_mode(DIR_MODE)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(errno) => return Err(refused(&so_far, errno)),
                }
                open_child(current.as_fd(), name)
            }
            other => other,
        };
        current = next.map_err(|errno| refused(&so_far, errno))?;
    }
    Ok(current)
}

/// Makes sure the regular file `path` exists beneath `root` (a mount point for a file
/// bind), creating it and its directories without following symlinks.
pub fn create_file_at(root: BorrowedFd<'_>, path: &Path) -> Result<(), BeneathError> {
    check_relative(path)?;
    let (parent, name) = match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => (parent, name),
        _ => {
            return Err(BeneathError {
                path: path.to_owned(),
                refusal: Refusal::NotBeneath,
            });
        }
    };
    let dir = open_dir_at(root, parent, true)?;
    rustix::fs::openat2(
        dir.as_fd(),
        name,
        OFlags::CREATE | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
        RESOLVE,
    )
    .map(drop)
    .map_err(|errno| BeneathError {
        path: path.to_owned(),
        refusal: refusal(errno),
    })
}

fn open_child(dir: BorrowedFd<'_>, name: &std::ffi::OsStr) -> Result<OwnedFd, Errno> {
    rustix::fs::openat2(dir, name, DIR_FLAGS, Mode::empty(), RESOLVE)
}

fn refusal(errno: Errno) -> Refusal {
    match errno {
        // RESOLVE_NO_SYMLINKS, and O_NOFOLLOW on a trailing link.
        Errno::LOOP => Refusal::Symlink,
        Errno::NOTDIR => Refusal::NotADirectory,
        // RESOLVE_BENEATH: the path would have left its root.
        Errno::XDEV => Refusal::NotBeneath,
        other => Refusal::Io(other.into()),
    }
}

fn check_relative(path: &Path) -> Result<(), BeneathError> {
    if path.components().all(|c| matches!(c, Component::Normal(_))) {
        Ok(())
    } else {
        Err(BeneathError {
            path: path.to_owned(),
            refusal: Refusal::NotBeneath,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_names_pass() {
        for ok in ["", "a", "a/b", "a/b/"] {
            assert!(check_relative(Path::new(ok)).is_ok(), "{ok}");
        }
        for bad in ["/a", "a/../b", "..", "./a", "a/./b"] {
            // `Path::components` drops inner `.`; only a leading one is kept.
            let refused = check_relative(Path::new(bad)).is_err();
            assert_eq!(refused, bad != "a/./b", "{bad}");
        }
    }
}
