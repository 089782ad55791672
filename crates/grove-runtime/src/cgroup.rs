//! Resource limits: one cgroup per environment (and per build), joined by every
//! sandbox started for it before `bwrap` runs.
//!
//! Both cgroup layouts exist on our hosts and are told apart at start
//! ([`Hierarchy::detect`]):
//!
//! - **v1**: one hierarchy per controller (`/sys/fs/cgroup/memory`, `cpu`,
//!   `pids`); a group is a directory in each. Memory: `memory.limit_in_bytes`
//!   and, where swap accounting is on, `memory.memsw.limit_in_bytes` (no swap
//!   beyond the limit); CPU: `cpu.cfs_quota_us` per `cpu.cfs_period_us`;
//!   processes: `pids.max`. A process joins by writing to `cgroup.procs` of each.
//! - **v2**: one tree (`cgroup.controllers` at its root); `memory.max`,
//!   `memory.swap.max`, `cpu.max`, `pids.max` in one directory, joined through
//!   its `cgroup.procs`. Controllers must be enabled in the parent's
//!   `cgroup.subtree_control`, which the kernel refuses in a non-root group that
//!   holds processes: the server's own group is used when that works, else the
//!   root of the tree.
//!
//! Every group of one server lives under `grove-<hash of its data dir>`, so the
//! servers sharing a host (tests run many) never touch each other's groups; the
//! groups a crashed server left behind are removed when it starts again.
//! Which files get which values is pure ([`Hierarchy::limit_writes`]) and tested
//! for both layouts.

use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The CFS period the CPU quota is expressed in (100 ms, the kernel's default).
const CPU_PERIOD_US: u64 = 100_000;
/// Controllers Grove limits.
const CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];

/// What one group may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Memory (RAM and swap together), in bytes; the kernel's OOM killer picks a
    /// process of the group past it.
    pub memory_bytes: u64,
    /// CPU time in thousandths of a core (1500 = one and a half cores); `None`
    /// for no quota.
    pub cpu_millis: Option<u64>,
    /// Processes and threads; `fork` fails with EAGAIN past it.
    pub pids: u64,
}

impl fmt::Display for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "memory {} MB", self.memory_bytes / (1024 * 1024))?;
        if let Some(cpu) = self.cpu_millis {
            write!(f, ", CPU {}.{:02}", cpu / 1000, (cpu % 1000) / 10)?;
        }
        write!(f, ", {} processes", self.pids)
    }
}

/// Where the server's groups live, per layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// cgroup v1: the directory of the server's groups in each controller's
    /// hierarchy (`.../memory/<own cgroup>/grove-<hash>`).
    V1 {
        memory: PathBuf,
        cpu: PathBuf,
        pids: PathBuf,
        /// `memory.memsw.*` exists (swap accounting is on).
        memsw: bool,
    },
    /// cgroup v2: the directory of the server's groups in the one tree.
    V2 { base: PathBuf },
}

/// What went wrong with a cgroup.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no usable cgroup hierarchy with the memory, cpu and pids controllers: {0}")]
    Unavailable(String),
    #[error("cgroup {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The cgroup files a sandbox writes its own PID into before it execs `bwrap`,
/// one per hierarchy. Cheap to clone; part of a [`crate::SandboxSpec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupJoin {
    pub procs_files: Vec<PathBuf>,
}

/// The `sh -c` script that joins the cgroups named by its first `files`
/// arguments (`cgroup.procs` files; `0` is the writing process) and then execs
/// the rest of its arguments. Exits 125 without running anything when a join
/// fails.
pub(crate) fn join_script(files: usize) -> String {
    let mut script = String::new();
    for i in 1..=files {
        script.push_str(&format!("echo 0 > \"${i}\" || exit 125; "));
    }
    script.push_str(&format!("shift {files}; exec \"$@\""));
    script
}

/// The entries of `/proc/self/cgroup`: hierarchy controllers (empty for v2) →
/// the process's path in it.
pub fn own_cgroups(proc_self_cgroup: &str) -> Vec<(Vec<String>, String)> {
    proc_self_cgroup
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            let controllers = controllers
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect();
            Some((controllers, path.to_owned()))
        })
        .collect()
}

/// The cgroup mounts of `/proc/self/mountinfo`: (fstype, mount point, mount
/// root, super options).
fn cgroup_mounts(mountinfo: &str) -> Vec<(String, PathBuf, String, Vec<String>)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fields: Vec<&str> = left.split(' ').collect();
            let root = fields.get(3)?.to_string();
            let mount_point = PathBuf::from(fields.get(4)?);
            let mut right = right.split(' ');
            let fstype = right.next()?.to_owned();
            let _source = right.next()?;
            let options = right
                .next()
                .unwrap_or("")
                .split(',')
                .map(str::to_owned)
                .collect();
            (fstype == "cgroup" || fstype == "cgroup2").then_some((
                fstype,
                mount_point,
                root,
                options,
            ))
        })
        .collect()
}

/// `own` (a path in the hierarchy) as seen below a mount whose root is `root`.
fn below_mount(mount_point: &Path, root: &str, own: &str) -> PathBuf {
    let relative = own
        .strip_prefix(root.trim_end_matches('/'))
        .unwrap_or(own)
        .trim_start_matches('/');
    if relative.is_empty() {
        mount_point.to_owned()
    } else {
        mount_point.join(relative)
    }
}

/// The name of one server's directory of groups, from its data directory.
pub fn prefix_for(data_dir: &Path) -> String {
    // FNV-1a: stable across builds and releases (std's hasher is not).
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in data_dir.as_os_str().as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("grove-{:012x}", hash & 0xffff_ffff_ffff)
}

/// Where the layout puts the server's groups, before any check of the
/// filesystem beyond what is passed in. `v2_own_usable` says whether the
/// server's own v2 group can have controlled children (see the module docs).
pub fn layout(
    mountinfo: &str,
    proc_self_cgroup: &str,
    prefix: &str,
    v2_own_usable: impl Fn(&Path) -> bool,
) -> Result<Hierarchy, CgroupError> {
    let mounts = cgroup_mounts(mountinfo);
    let own = own_cgroups(proc_self_cgroup);
    let v1_dir = |controller: &str| {
        let (_, mount_point, root, _) = mounts.iter().find(|(fstype, _, _, options)| {
            fstype == "cgroup" && options.iter().any(|o| o == controller)
        })?;
        let path = own
            .iter()
            .find(|(controllers, _)| controllers.iter().any(|c| c == controller))
            .map(|(_, path)| path.as_str())
            .unwrap_or("/");
        Some(below_mount(mount_point, root, path).join(prefix))
    };
    if let (Some(memory), Some(cpu), Some(pids)) = (v1_dir("memory"), v1_dir("cpu"), v1_dir("pids"))
    {
        return Ok(Hierarchy::V1 {
            memory,
            cpu,
            pids,
            memsw: false,
        });
    }
    let Some((_, mount_point, root, _)) = mounts.iter().find(|(fstype, ..)| fstype == "cgroup2")
    else {
        return Err(CgroupError::Unavailable(
            "no cgroup v1 memory/cpu/pids hierarchies and no cgroup2 mount".to_owned(),
        ));
    };
    let own_path = own
        .iter()
        .find(|(controllers, _)| controllers.is_empty())
        .map(|(_, path)| path.as_str())
        .unwrap_or("/");
    let own_dir = below_mount(mount_point, root, own_path);
    let base = if own_dir != *mount_point && v2_own_usable(&own_dir) {
        own_dir
    } else {
        mount_point.clone()
    };
    Ok(Hierarchy::V2 {
        base: base.join(prefix),
    })
}

impl Hierarchy {
    /// The layout of this host, with the server's groups under `prefix`
    /// (see [`prefix_for`]).
    pub fn detect(prefix: &str) -> Result<Hierarchy, CgroupError> {
        let read = |path: &str| {
            std::fs::read_to_string(path).map_err(|e| CgroupError::Io {
                path: PathBuf::from(path),
                source: e,
            })
        };
        let mountinfo = read("/proc/self/mountinfo")?;
        let own = read("/proc/self/cgroup")?;
        let hierarchy = layout(&mountinfo, &own, prefix, |own_dir| {
            enable_controllers(own_dir).is_ok()
        })?;
        Ok(match hierarchy {
            Hierarchy::V1 {
                memory, cpu, pids, ..
            } => {
                let parent = memory.parent().unwrap_or(&memory);
                let memsw = parent.join("memory.memsw.limit_in_bytes").exists();
                Hierarchy::V1 {
                    memory,
                    cpu,
                    pids,
                    memsw,
                }
            }
            v2 => v2,
        })
    }

    /// The directories of the group `name`, one per hierarchy.
    pub fn dirs(&self, name: &str) -> Vec<PathBuf> {
        match self {
            Hierarchy::V1 {
                memory, cpu, pids, ..
            } => {
                let mut dirs = vec![memory.join(name), cpu.join(name), pids.join(name)];
                dirs.dedup();
                dirs
            }
            Hierarchy::V2 { base } => vec![base.join(name)],
        }
    }

    /// The server's own directories (the parents of every group).
    fn bases(&self) -> Vec<PathBuf> {
        match self {
            Hierarchy::V1 {
                memory, cpu, pids, ..
            } => {
                let mut dirs = vec![memory.clone(), cpu.clone(), pids.clone()];
                dirs.dedup();
                dirs
            }
            Hierarchy::V2 { base } => vec![base.clone()],
        }
    }

    /// Which file of the group `name` gets which value, in the order written.
    /// v1's memory+swap limit must stay at or above the memory limit at every
    /// step: [`Cgroup::apply`] retries in the reverse order when lowering.
    pub fn limit_writes(&self, name: &str, limits: &Limits) -> Vec<(PathBuf, String)> {
        let memory = limits.memory_bytes.to_string();
        let quota = limits
            .cpu_millis
            .map(|m| (m * CPU_PERIOD_US / 1000).max(1000));
        match self {
            Hierarchy::V1 {
                memory: m,
                cpu,
                pids,
                memsw,
            } => {
                let (m, cpu, pids) = (m.join(name), cpu.join(name), pids.join(name));
                let mut writes = vec![(m.join("memory.limit_in_bytes"), memory.clone())];
                if *memsw {
                    writes.push((m.join("memory.memsw.limit_in_bytes"), memory));
                }
                writes.push((cpu.join("cpu.cfs_period_us"), CPU_PERIOD_US.to_string()));
                writes.push((
                    cpu.join("cpu.cfs_quota_us"),
                    quota.map_or("-1".to_owned(), |q| q.to_string()),
                ));
                writes.push((pids.join("pids.max"), limits.pids.to_string()));
                writes
            }
            Hierarchy::V2 { base } => {
                let dir = base.join(name);
                vec![
                    (dir.join("memory.max"), memory),
                    (dir.join("memory.swap.max"), "0".to_owned()),
                    (
                        dir.join("cpu.max"),
                        match quota {
                            Some(q) => format!("{q} {CPU_PERIOD_US}"),
                            None => format!("max {CPU_PERIOD_US}"),
                        },
                    ),
                    (dir.join("pids.max"), limits.pids.to_string()),
                ]
            }
        }
    }

    /// The files a process writes its PID to, to join the group `name`.
    pub fn join_of(&self, name: &str) -> CgroupJoin {
        CgroupJoin {
            procs_files: self
                .dirs(name)
                .into_iter()
                .map(|d| d.join("cgroup.procs"))
                .collect(),
        }
    }
}

/// `+memory +cpu +pids` in `dir`'s `cgroup.subtree_control` (v2).
fn enable_controllers(dir: &Path) -> Result<(), CgroupError> {
    let control = dir.join("cgroup.subtree_control");
    let enabled = std::fs::read_to_string(&control).map_err(io(&control))?;
    for controller in CONTROLLERS {
        if !enabled.split_whitespace().any(|c| c == controller) {
            std::fs::write(&control, format!("+{controller}")).map_err(io(&control))?;
        }
    }
    Ok(())
}

/// One server's groups: created, limited, removed.
#[derive(Debug, Clone)]
pub struct Cgroups {
    hierarchy: Hierarchy,
}

impl Cgroups {
    /// Finds the layout, makes the server's directory (with the controllers
    /// enabled below it on v2) and removes groups a previous run left behind.
    pub fn open(data_dir: &Path) -> Result<Cgroups, CgroupError> {
        let hierarchy = Hierarchy::detect(&prefix_for(data_dir))?;
        for base in hierarchy.bases() {
            std::fs::create_dir_all(&base).map_err(io(&base))?;
        }
        if let Hierarchy::V2 { base } = &hierarchy {
            if let Some(parent) = base.parent() {
                enable_controllers(parent)?;
            }
            enable_controllers(base)?;
        }
        let cgroups = Cgroups { hierarchy };
        cgroups.remove_stale();
        Ok(cgroups)
    }

    pub fn hierarchy(&self) -> &Hierarchy {
        &self.hierarchy
    }

    /// Creates the group `name` (a directory name: an environment's or a
    /// build's, or `<parent>/<child>` inside one applied before) when missing and sets its limits; the returned join goes into
    /// the sandboxes that run in it.
    pub fn apply(&self, name: &str, limits: &Limits) -> Result<CgroupJoin, CgroupError> {
        // A nested group (`shop.main/app-web`): on v2 its parent hands the
        // controllers down (the parent never holds processes itself).
        if let (Hierarchy::V2 { base }, Some((parent, _))) =
            (&self.hierarchy, name.rsplit_once('/'))
        {
            enable_controllers(&base.join(parent))?;
        }
        for dir in self.hierarchy.dirs(name) {
            match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io(&dir)(e)),
            }
        }
        let writes = self.hierarchy.limit_writes(name, limits);
        let write_all = |writes: &mut dyn Iterator<Item = &(PathBuf, String)>| {
            for (path, value) in writes {
                match std::fs::write(path, value) {
                    Ok(()) => {}
                    // No swap accounting on this kernel: RAM alone is limited.
                    Err(e)
                        if e.kind() == std::io::ErrorKind::NotFound
                            && path.ends_with("memory.swap.max") => {}
                    Err(e) => return Err(io(path)(e)),
                }
            }
            Ok::<(), CgroupError>(())
        };
        if write_all(&mut writes.iter()).is_err() {
            // Lowering v1's memory under memsw fails in one order, raising it in
            // the other.
            write_all(&mut writes.iter().rev())?;
        }
        Ok(self.hierarchy.join_of(name))
    }

    /// Removes the group `name` once its processes are gone (they may still be
    /// exiting: a few retries, for up to about a second). Blocking.
    pub fn remove(&self, name: &str) -> Result<(), CgroupError> {
        for dir in self.hierarchy.dirs(name) {
            remove_group(&dir)?;
        }
        Ok(())
    }

    /// Whether the group `name` had processes killed for lack of memory, its
    /// nested groups' included (`memory.oom_control`'s `oom_kill` on v1, which
    /// counts per group, `memory.events` on v2, which counts the subtree).
    pub fn oom_kills(&self, name: &str) -> u64 {
        match &self.hierarchy {
            Hierarchy::V1 { memory, .. } => {
                let dir = memory.join(name);
                let mut total = read_key(&dir.join("memory.oom_control"), "oom_kill");
                for child in subgroups(&dir) {
                    total += read_key(&child.join("memory.oom_control"), "oom_kill");
                }
                total
            }
            Hierarchy::V2 { base } => read_key(&base.join(name).join("memory.events"), "oom_kill"),
        }
    }
}

/// The group directories directly below `dir`.
fn subgroups(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Removes a group left by a previous run and its nested groups, without
/// waiting.
fn remove_stale_group(dir: &Path) -> std::io::Result<()> {
    for child in subgroups(dir) {
        remove_stale_group(&child)?;
    }
    std::fs::remove_dir(dir)
}

/// `key value` lines: the value of `key`, 0 when missing.
fn read_key(file: &Path, key: &str) -> u64 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let (k, v) = line.split_once(' ')?;
                (k == key).then(|| v.trim().parse().ok()).flatten()
            })
        })
        .unwrap_or(0)
}

/// Removes a group directory and the groups nested in it, deepest first, once
/// their processes are gone (they may still be exiting: a few retries, for up
/// to about a second each).
fn remove_group(dir: &Path) -> Result<(), CgroupError> {
    for child in subgroups(dir) {
        remove_group(&child)?;
    }
    let mut tries = 0;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if tries < 20 => {
                tracing::debug!(dir = %dir.display(), error = %e, "cgroup busy");
                tries += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(io(dir)(e)),
        }
    }
}

impl Cgroups {
    /// The memory limit of the group `name` in bytes, as the kernel holds it.
    pub fn memory_limit(&self, name: &str) -> Option<u64> {
        let file = match &self.hierarchy {
            Hierarchy::V1 { memory, .. } => memory.join(name).join("memory.limit_in_bytes"),
            Hierarchy::V2 { base } => base.join(name).join("memory.max"),
        };
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    }

    /// Removes every group of this server that is left (at start: a previous run
    /// crashed; its sandboxes died with it).
    pub fn remove_stale(&self) {
        for base in self.hierarchy.bases() {
            let Ok(entries) = std::fs::read_dir(&base) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir())
                    && let Err(e) = remove_stale_group(&entry.path())
                {
                    tracing::warn!(group = %entry.path().display(), error = %e, "could not remove a stale cgroup");
                }
            }
        }
    }

    /// Removes every group and the server's directory (at a graceful stop, once
    /// the sandboxes were stopped: their last processes may still be exiting).
    /// Bounded (about a second in all), so that a stop never waits long on a
    /// group that stays busy; what is left goes at the next start on this data
    /// directory.
    pub fn close(&self) {
        for attempt in 0..10 {
            let left: Vec<PathBuf> = self
                .hierarchy
                .bases()
                .into_iter()
                .filter(|base| remove_stale_group(base).is_err() && base.exists())
                .collect();
            if left.is_empty() {
                return;
            }
            if attempt == 9 {
                tracing::warn!(groups = ?left, "could not remove this server's cgroups: still busy");
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const V1_OWN: &str = "\
8:pids:/
4:memory:/process_api/a5
1:cpu,cpuacct:/
0::/
";
    const V2_MOUNTINFO: &str = "\
30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate
";
    const V2_OWN: &str = "0::/system.slice/grove.service\n";

    fn limits() -> Limits {
        Limits {
            memory_bytes: 512 * 1024 * 1024,
            cpu_millis: Some(1500),
            pids: 768,
        }
    }

    fn check(hierarchy: &Hierarchy, expected: &[(&str, &str)]) {
        let writes = hierarchy.limit_writes("shop.main", &limits());
        let got: Vec<(String, String)> = writes
            .into_iter()
            .map(|(p, v)| (p.display().to_string(), v))
            .collect();
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(p, v)| (p.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn v1_groups_nest_in_the_servers_own_group_of_each_controller() {
        let h = layout(V1_MOUNTINFO, V1_OWN, "grove-abc", |_| panic!("v1")).expect("v1 layout");
        assert_eq!(
            h,
            Hierarchy::V1 {
                memory: "/sys/fs/cgroup/memory/process_api/a5/grove-abc".into(),
                cpu: "/sys/fs/cgroup/cpu,cpuacct/grove-abc".into(),
                pids: "/sys/fs/cgroup/pids/grove-abc".into(),
                memsw: false,
            }
        );
        assert_eq!(
            h.join_of("shop.main").procs_files,
            vec![
                PathBuf::from(
                    "/sys/fs/cgroup/memory/process_api/a5/grove-abc/shop.main/cgroup.procs"
                ),
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/grove-abc/shop.main/cgroup.procs"),
                PathBuf::from("/sys/fs/cgroup/pids/grove-abc/shop.main/cgroup.procs"),
            ]
        );
    }

    #[test]
    fn v1_limits_go_to_each_controllers_files() {
        let h = Hierarchy::V1 {
            memory: "/m/g".into(),
            cpu: "/c/g".into(),
            pids: "/p/g".into(),
            memsw: true,
        };
        check(
            &h,
            &[
                ("/m/g/shop.main/memory.limit_in_bytes", "536870912"),
                ("/m/g/shop.main/memory.memsw.limit_in_bytes", "536870912"),
                ("/c/g/shop.main/cpu.cfs_period_us", "100000"),
                ("/c/g/shop.main/cpu.cfs_quota_us", "150000"),
                ("/p/g/shop.main/pids.max", "768"),
            ],
        );
        let without_swap = Hierarchy::V1 {
            memory: "/m/g".into(),
            cpu: "/c/g".into(),
            pids: "/p/g".into(),
            memsw: false,
        };
        let writes = without_swap.limit_writes(
            "b",
            &Limits {
                cpu_millis: None,
                ..limits()
            },
        );
        assert!(
            !writes
                .iter()
                .any(|(p, _)| p.ends_with("memory.memsw.limit_in_bytes"))
        );
        assert!(writes.contains(&(PathBuf::from("/c/g/b/cpu.cfs_quota_us"), "-1".to_owned())));
    }

    #[test]
    fn v2_limits_go_to_one_directory() {
        let h = Hierarchy::V2 {
            base: "/sys/fs/cgroup/grove-abc".into(),
        };
        check(
            &h,
            &[
                ("/sys/fs/cgroup/grove-abc/shop.main/memory.max", "536870912"),
                ("/sys/fs/cgroup/grove-abc/shop.main/memory.swap.max", "0"),
                (
                    "/sys/fs/cgroup/grove-abc/shop.main/cpu.max",
                    "150000 100000",
                ),
                ("/sys/fs/cgroup/grove-abc/shop.main/pids.max", "768"),
            ],
        );
        let writes = h.limit_writes(
            "b",
            &Limits {
                cpu_millis: None,
                ..limits()
            },
        );
        assert!(writes.contains(&(
            PathBuf::from("/sys/fs/cgroup/grove-abc/b/cpu.max"),
            "max 100000".to_owned()
        )));
        assert_eq!(
            h.join_of("b").procs_files,
            vec![PathBuf::from("/sys/fs/cgroup/grove-abc/b/cgroup.procs")]
        );
    }

    #[test]
    fn v2_uses_the_servers_own_group_when_it_can_have_controlled_children() {
        let own = layout(V2_MOUNTINFO, V2_OWN, "grove-abc", |_| true).expect("v2 layout");
        assert_eq!(
            own,
            Hierarchy::V2 {
                base: "/sys/fs/cgroup/system.slice/grove.service/grove-abc".into()
            }
        );
        let root = layout(V2_MOUNTINFO, V2_OWN, "grove-abc", |_| false).expect("v2 layout");
        assert_eq!(
            root,
            Hierarchy::V2 {
                base: "/sys/fs/cgroup/grove-abc".into()
            }
        );
    }

    #[test]
    fn no_cgroup_mounts_is_an_error() {
        let err = layout(
            "31 23 0:28 / /tmp rw - tmpfs tmpfs rw\n",
            "0::/\n",
            "g",
            |_| true,
        );
        assert!(matches!(err, Err(CgroupError::Unavailable(_))));
    }

    #[test]
    fn prefixes_differ_per_data_dir_and_are_stable() {
        let a = prefix_for(Path::new("/srv/grove"));
        assert_eq!(a, prefix_for(Path::new("/srv/grove")));
        assert_ne!(a, prefix_for(Path::new("/srv/grove2")));
        assert!(
            a.starts_with("grove-") && a.len() == "grove-".len() + 12,
            "{a}"
        );
    }

    #[test]
    fn the_join_script_joins_each_file_then_execs_the_rest() {
        assert_eq!(
            join_script(2),
            "echo 0 > \"$1\" || exit 125; echo 0 > \"$2\" || exit 125; shift 2; exec \"$@\""
        );
    }

    #[test]
    fn limits_display_for_the_activity_log() {
        assert_eq!(
            limits().to_string(),
            "memory 512 MB, CPU 1.50, 768 processes"
        );
    }
}
