//! Running a server as a non-root user inside a sandbox that has no
//! capabilities.
//!
//! PostgreSQL refuses to run as uid 0, and `grove-runtime` sandboxes run as uid
//! 0 with every capability dropped, so `setpriv`/`runuser` can't switch user
//! there. What does work: the start script creates a user namespace
//! (`unshare --user`, allowed without capabilities) and waits until its uid map
//! is written; mapping the host's uid 0 needs `CAP_SETFCAP`, which only we
//! have, so [`UidMapper`] writes `<uid> 0 1` into that namespace's
//! `uid_map`/`gid_map` from the outside. Inside, the server is then `postgres`
//! and owns its data directory (host root's files show as its own); outside it
//! is still root's uid without capabilities, exactly as privileged as the
//! sandbox itself, and no file gets chowned.
//!
//! A restarted incarnation (after a crash) creates a new namespace, which the
//! mapper notices because the sandbox's pid changed.

use std::sync::{Arc, Weak};
use std::time::Duration;

use grove_runtime::procfs;
use grove_runtime::{Instance, InstanceState};

/// The shell lines a start script begins with: wait until the map is written.
pub const WAIT_FOR_MAP: &str = "while [ -z \"$(cat /proc/self/uid_map)\" ]; do sleep 0.02; done\n";

/// Who the server becomes inside its user namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappedUser {
    pub uid: u32,
    pub gid: u32,
}

impl MappedUser {
    /// The host's account `name` from /etc/passwd (the sandbox sees the same
    /// file, so names resolve inside), or `fallback`.
    pub fn lookup(name: &str, fallback: u32) -> MappedUser {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        passwd
            .lines()
            .find_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                if fields.first() != Some(&name) {
                    return None;
                }
                Some(MappedUser {
                    uid: fields.get(2)?.parse().ok()?,
                    gid: fields.get(3)?.parse().ok()?,
                })
            })
            .unwrap_or(MappedUser {
                uid: fallback,
                gid: fallback,
            })
    }
}

/// Writes the uid/gid map of every unmapped user namespace created inside one
/// supervised instance, for as long as the instance exists.
pub struct UidMapper;

impl UidMapper {
    pub fn spawn(instance: &Arc<Instance>, user: MappedUser) {
        let weak: Weak<Instance> = Arc::downgrade(instance);
        tokio::spawn(async move {
            let mut mapped_pid: Option<u32> = None;
            loop {
                let Some(instance) = weak.upgrade() else {
                    return;
                };
                if instance.state() == InstanceState::Stopped {
                    return;
                }
                let pid = instance.pid();
                drop(instance);
                if let Some(pid) = pid
                    && mapped_pid != Some(pid)
                    && map_below(pid, user)
                {
                    mapped_pid = Some(pid);
                }
                let pause = if mapped_pid == pid { 200 } else { 20 };
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        });
    }
}

/// Maps the unmapped namespaces below `pid`; `true` once one was mapped.
fn map_below(pid: u32, user: MappedUser) -> bool {
    let mut mapped = false;
    for child in procfs::descendants(pid) {
        let uid_map = format!("/proc/{child}/uid_map");
        // Processes in our own namespace show the identity map; only a fresh,
        // unmapped namespace has an empty one.
        match std::fs::read_to_string(&uid_map) {
            Ok(text) if text.trim().is_empty() => {}
            _ => continue,
        }
        // Our uid/gid 0 in the parent namespace appears as the user inside.
        let gid_map = format!("/proc/{child}/gid_map");
        // gid first: the script inside waits for the uid map only.
        let written = std::fs::write(&gid_map, format!("{} 0 1\n", user.gid))
            .and_then(|()| std::fs::write(&uid_map, format!("{} 0 1\n", user.uid)));
        match written {
            Ok(()) => mapped = true,
            Err(e) => tracing::debug!(pid = child, error = %e, "could not map user namespace"),
        }
    }
    mapped
}
