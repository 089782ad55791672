//! Grove's isolation layer and process supervision.
//!
//! Every command an app runs (build/deploy hooks, the web `start` command) goes
//! through this crate, and this crate is the only one that knows about
//! bubblewrap. The async daemon never forks into namespaces itself: it execs
//! `bwrap`, which creates the mount, PID, IPC and UTS namespaces, so nothing
//! here calls `fork` or `mount`. The one `unshare` is [`netns`]'s: a thread of
//! ours creates each environment's network namespace and stays in it, and
//! sandboxes join it through `nsenter --net` before bwrap.
//!
//! Processes are only ever signalled by PID, found by walking the process tree
//! below the `bwrap` child we spawned — never by name.
//!
//! - [`sandbox`]: what a sandboxed command sees ([`SandboxSpec`]) and the
//!   `bwrap` command line that produces it.
//! - [`beneath`]: directories beneath a root that apps write to (volumes,
//!   builds), opened without following symlinks, for `--bind-fd`.
//! - [`command`]: one-shot commands with streamed output and a timeout.
//! - [`instance`]: supervised long-running processes with restart backoff.
//! - [`netns`]: network namespaces of our own ([`NetNs`]), and connecting into them.
//! - [`cgroup`]: per-environment and per-build resource limits (cgroup v1
//!   and v2), joined by sandboxes before they exec.
//! - [`catalog`]: which language runtimes this host really has, which runtime
//!   images could provide, and which version runs for a config's `type:`.
//! - [`images`]: runtime images built from Debian's archive with `mmdebstrap`.

pub mod beneath;
pub mod catalog;
pub mod cgroup;
pub mod command;
pub mod images;
pub mod instance;
pub mod netns;
mod output;
pub mod procfs;
pub mod sandbox;

use std::path::PathBuf;

pub use beneath::BeneathError;
pub use catalog::{
    CatalogError, InstalledRuntime, ResolvedRuntime, RuntimeCatalog, RuntimeEntry, RuntimeSource,
    VersionPolicy,
};
pub use cgroup::{CgroupError, CgroupJoin, Cgroups, Limits};
pub use command::{CommandOutcome, run_attached, run_command, run_command_until};
pub use images::{IMAGES, ImageError, ImageRecipe, ImageStore};
pub use instance::{Instance, InstanceState, Listen};
pub use netns::NetNs;
pub use sandbox::{Bind, BindSource, Network, SandboxSpec, host_command_with_files};

/// What went wrong while running something in a sandbox.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("bwrap not found: install the `bubblewrap` package")]
    BwrapNotFound,
    #[error("nsenter not found: install the `util-linux` package")]
    NsenterNotFound,
    #[error("could not start bwrap ({bwrap}): {source}")]
    Spawn {
        bwrap: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("supervised processes must be started from within a tokio runtime")]
    NoTokioRuntime,
    #[error("invalid sandbox: {0}")]
    InvalidSpec(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("mount {target}: {error} (beneath {})", root.display())]
    MountSource {
        target: String,
        root: PathBuf,
        #[source]
        error: BeneathError,
    },
    #[error("mount point of {target}: {error}")]
    MountPoint {
        target: String,
        #[source]
        error: BeneathError,
    },
    #[error("could not read the output of the sandboxed command: {0}")]
    Output(#[source] std::io::Error),
    #[error("could not wait for the sandboxed command: {0}")]
    Wait(#[source] std::io::Error),
    #[error("{message}{}", render_tail(.log_tail))]
    NotReady {
        message: String,
        log_tail: Vec<String>,
    },
}

fn render_tail(lines: &[String]) -> String {
    if lines.is_empty() {
        return String::from("\n(no output)");
    }
    let mut out = String::from("\nlast lines of output:");
    for line in lines {
        out.push_str("\n  ");
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The daemon keeps instances in shared state and runs commands in spawned
    /// tasks.
    #[test]
    fn handles_and_futures_can_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>(_: &T) {}
        send_sync::<Instance>();
        send_sync::<RuntimeCatalog>();
        send_sync::<RuntimeError>();
        let spec = SandboxSpec::new("/srv/app", "true");
        let mut on_line = |_: &str| {};
        let future = run_command(&spec, std::time::Duration::from_secs(1), &mut on_line);
        send(&future);
    }
}
