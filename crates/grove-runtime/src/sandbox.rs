//! What a sandboxed command sees, and the `bwrap` command line that produces it.
//!
//! The sandbox is a fresh mount namespace whose root is an empty tmpfs with
//! read-only binds of the host's system directories, the app at `/app`, a private
//! `/tmp`, a fresh `/proc` and a minimal `/dev`. It also gets its own PID, IPC and
//! UTS namespaces and no capabilities. Its network is the host's, none at all, or
//! a [`NetNs`] of ours (an environment's), joined with `nsenter --net` before
//! bwrap runs.

use std::ffi::OsString;
use std::fmt;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use command_fds::{CommandFdExt, FdMapping};

use crate::RuntimeError;
use crate::beneath;
use crate::cgroup::CgroupJoin;
use crate::netns::NetNs;

/// `PATH` inside the sandbox unless the caller sets one.
pub const DEFAULT_PATH: &str = "/app/.global/bin:/usr/local/bin:/usr/bin:/bin";
/// Where the app lives inside the sandbox.
pub const APP_DIR: &str = "/app";
/// The shell every command runs under (Platform.sh hook semantics).
pub const SHELL: &str = "/bin/dash";

/// What a sandboxed command sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSpec {
    /// Host directory mounted at `/app`.
    pub app_root: PathBuf,
    /// The root of a runtime image whose system directories (`/usr`, `/etc`, ...)
    /// the sandbox sees instead of the host's ([`HostLayout::image`]).
    pub image: Option<PathBuf>,
    /// `true` for the build hook; `false` at runtime, where writes under `/app`
    /// fail with EROFS (except in writable [`Bind`]s).
    pub app_writable: bool,
    /// Extra mounts (app mounts, the build cache dir, ...). Mounted parents first,
    /// so a bind at `/app/var/cache` may sit inside one at `/app/var`.
    pub binds: Vec<Bind>,
    /// The only environment the command gets, plus `PATH`, `HOME`, `TMPDIR` and
    /// `LANG` defaults when absent.
    pub env: Vec<(String, String)>,
    /// Run as `dash -c <command>`: only the last command's status counts unless
    /// the script says `set -e`.
    pub command: String,
    /// Working directory inside the sandbox, usually `/app`.
    pub workdir: String,
    /// Which network the sandbox is in.
    pub network: Network,
    /// Hostname inside the sandbox (e.g. the app name); `grove` when unset.
    pub hostname: Option<String>,
    /// Host directory to use as `/tmp` (the build hook needs more room than RAM);
    /// a private tmpfs when unset.
    pub tmp_dir: Option<PathBuf>,
    /// A host file shown read-only as `/etc/hosts` (relationship host names such as
    /// `database.internal`); the host's own when unset.
    pub etc_hosts: Option<PathBuf>,
    /// A niceness for the whole sandbox (builds: 10, so that a build hook never
    /// competes on equal terms with the apps serving requests on the same host).
    pub niceness: Option<u8>,
    /// The cgroup (an environment's, a build's) the sandbox runs in: the child
    /// joins it before it execs, so nothing it runs escapes the limits.
    pub cgroup: Option<CgroupJoin>,
    /// The command's stdin is a terminal that becomes its controlling terminal (an
    /// SSH session's): no new session of its own, so Ctrl-C, window resizes and job
    /// control reach it. Only for a terminal the user owns anyway (no TIOCSTI risk).
    pub terminal: bool,
}

/// The network a sandbox sees.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Network {
    /// The host's network namespace (builds: package registries).
    #[default]
    Host,
    /// A network namespace of its own with only a loopback interface: no
    /// network at all.
    None,
    /// A namespace shared with others (an environment's apps and services),
    /// joined before bwrap runs.
    Namespace(NetNs),
}

impl Network {
    /// A TCP connection to `addr` from this network (`None` has nothing to
    /// reach: the connection is refused).
    pub async fn connect_tcp(
        &self,
        addr: std::net::SocketAddr,
    ) -> std::io::Result<tokio::net::TcpStream> {
        match self {
            Network::Host => tokio::net::TcpStream::connect(addr).await,
            Network::None => Err(std::io::ErrorKind::ConnectionRefused.into()),
            Network::Namespace(netns) => netns.connect_tcp(addr).await,
        }
    }

    /// Runs `f` where its sockets belong to this network: on the namespace's
    /// thread, or here for the host's network (and for `None`).
    pub async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> std::io::Result<R> {
        match self {
            Network::Host | Network::None => Ok(f()),
            Network::Namespace(netns) => netns.run(f).await,
        }
    }
}

/// An extra mount: `source` on the host appears at `target` inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub source: BindSource,
    pub target: String,
    pub writable: bool,
}

/// What a [`Bind`] shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindSource {
    /// A host path that only the platform writes to (the build cache, a service's
    /// data directory), bound as it is.
    Host(PathBuf),
    /// The directory `path` beneath `root`, created when missing. Everything below
    /// `root` is hostile (an environment's volume, written by its apps): `path` is
    /// resolved without following any symlink and never outside `root`, and bwrap
    /// binds the opened directory (`--bind-fd`), not its path, so the directory
    /// cannot be swapped for a link between the check and the mount. Resolved anew
    /// each time the sandbox starts.
    Beneath { root: PathBuf, path: PathBuf },
}

impl From<PathBuf> for BindSource {
    fn from(path: PathBuf) -> BindSource {
        BindSource::Host(path)
    }
}

impl From<&Path> for BindSource {
    fn from(path: &Path) -> BindSource {
        BindSource::Host(path.to_owned())
    }
}

impl fmt::Display for BindSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindSource::Host(path) => write!(f, "{}", path.display()),
            BindSource::Beneath { root, path } => {
                write!(f, "`{}` beneath {}", path.display(), root.display())
            }
        }
    }
}

impl Bind {
    /// Binds a host path the platform owns (see [`BindSource::Host`]).
    pub fn host(source: impl Into<PathBuf>, target: impl Into<String>, writable: bool) -> Bind {
        Bind {
            source: BindSource::Host(source.into()),
            target: target.into(),
            writable,
        }
    }

    /// Binds the directory `path` beneath `root`, created when missing (see
    /// [`BindSource::Beneath`]).
    pub fn beneath(
        root: impl Into<PathBuf>,
        path: impl Into<PathBuf>,
        target: impl Into<String>,
        writable: bool,
    ) -> Bind {
        Bind {
            source: BindSource::Beneath {
                root: root.into(),
                path: path.into(),
            },
            target: target.into(),
            writable,
        }
    }
}

/// The descriptor number of the first [`BindSource::Beneath`] bind in bwrap; the
/// next ones follow in mount order.
const FIRST_BIND_FD: RawFd = 3;

impl SandboxSpec {
    /// A runtime sandbox (read-only `/app`, host network, `/app` as workdir) with
    /// an empty environment.
    pub fn new(app_root: impl Into<PathBuf>, command: impl Into<String>) -> SandboxSpec {
        SandboxSpec {
            app_root: app_root.into(),
            image: None,
            app_writable: false,
            binds: Vec::new(),
            env: Vec::new(),
            command: command.into(),
            workdir: APP_DIR.to_owned(),
            network: Network::Host,
            hostname: None,
            tmp_dir: None,
            etc_hosts: None,
            niceness: None,
            cgroup: None,
            terminal: false,
        }
    }

    /// The environment the command gets: `env` plus defaults for what it lacks.
    pub fn effective_env(&self) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        for (name, value) in [
            ("PATH", DEFAULT_PATH),
            ("HOME", APP_DIR),
            ("TMPDIR", "/tmp"),
            ("LANG", "C.UTF-8"),
        ] {
            if !env.iter().any(|(n, _)| n == name) {
                env.push((name.to_owned(), value.to_owned()));
            }
        }
        env
    }

    /// Checks what `bwrap` would otherwise reject with a less helpful message, or
    /// what would let a sandbox reach outside of what it was given.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        let invalid = |msg: String| Err(RuntimeError::InvalidSpec(msg));
        if !self.app_root.is_absolute() {
            return invalid(format!(
                "app root {} is not an absolute path",
                self.app_root.display()
            ));
        }
        if let Some(tmp) = &self.tmp_dir
            && !tmp.is_absolute()
        {
            return invalid(format!("tmp dir {} is not an absolute path", tmp.display()));
        }
        if let Some(image) = &self.image
            && !image.is_absolute()
        {
            return invalid(format!("image {} is not an absolute path", image.display()));
        }
        if let Some(hosts) = &self.etc_hosts
            && !hosts.is_absolute()
        {
            return invalid(format!(
                "hosts file {} is not an absolute path",
                hosts.display()
            ));
        }
        if !is_clean_absolute(&self.workdir) {
            return invalid(format!(
                "working directory `{}` must be an absolute path without `..`",
                self.workdir
            ));
        }
        for bind in &self.binds {
            match &bind.source {
                BindSource::Host(source) if !source.is_absolute() => {
                    return invalid(format!(
                        "mount source {} is not an absolute path",
                        source.display()
                    ));
                }
                BindSource::Beneath { root, .. } if !root.is_absolute() => {
                    return invalid(format!(
                        "mount root {} is not an absolute path",
                        root.display()
                    ));
                }
                BindSource::Beneath { root, path }
                    if !path.components().all(|c| matches!(c, Component::Normal(_))) =>
                {
                    return invalid(format!(
                        "mount source `{}` beneath {} must be a relative path without `..`",
                        path.display(),
                        root.display()
                    ));
                }
                _ => {}
            }
            if !is_clean_absolute(&bind.target) || bind.target.trim_end_matches('/').is_empty() {
                return invalid(format!(
                    "mount target `{}` must be an absolute path below / without `..`",
                    bind.target
                ));
            }
            if bind.target.trim_end_matches('/') == APP_DIR {
                return invalid(format!(
                    "mount target `{}` would hide the app itself",
                    bind.target
                ));
            }
            // `/usr/local` is the app's own (what its build installs globally, as in a
            // Platform.sh image): a bind there hides the host's, it changes nothing of it.
            if let Some(reserved) = RESERVED_TARGETS.iter().find(|r| {
                is_same_or_below(&bind.target, r) && !is_same_or_below(&bind.target, "/usr/local")
            }) {
                return invalid(format!(
                    "mount target `{}` is inside {reserved}, which the sandbox provides itself",
                    bind.target
                ));
            }
        }
        for (name, value) in &self.env {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                return invalid(format!("invalid environment variable name `{name}`"));
            }
            if value.contains('\0') {
                return invalid(format!("environment variable `{name}` contains a NUL byte"));
            }
        }
        if self.command.contains('\0') {
            return invalid("the command contains a NUL byte".to_owned());
        }
        Ok(())
    }

    /// The arguments to `bwrap` (everything after the program name).
    pub fn bwrap_args(&self, host: &HostLayout) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |items: &[&dyn AsRef<std::ffi::OsStr>]| {
            args.extend(items.iter().map(|s| s.as_ref().to_owned()));
        };
        push(&[&"--die-with-parent"]);
        if !self.terminal {
            // A new session: the command can't reach our terminal (TIOCSTI), and
            // terminal signals (Ctrl-C on a foreground daemon) don't hit it; it is
            // stopped only through `Instance::stop` or a timeout.
            push(&[&"--new-session"]);
        }
        push(&[
            &"--unshare-pid",
            &"--unshare-ipc",
            &"--unshare-uts",
            &"--cap-drop",
            &"ALL",
            &"--hostname",
            &sanitize_hostname(self.hostname.as_deref()),
        ]);
        // In a `Namespace`, `nsenter` has already moved bwrap there (see `command`).
        if self.network == Network::None {
            push(&[&"--unshare-net"]);
        }
        for (path, kind) in &host.system_dirs {
            match kind {
                HostEntry::Dir => push(&[&"--ro-bind", path, path]),
                HostEntry::Image(source) => push(&[&"--ro-bind", source, path]),
                HostEntry::Symlink(target) => push(&[&"--symlink", target, path]),
            }
        }
        for dir in &host.extra_ro_dirs {
            push(&[&"--ro-bind", dir, dir]);
        }
        for (source, target) in &host.host_files {
            push(&[&"--ro-bind", source, target]);
        }
        // Commands run as uid 0 (without capabilities), which still owns
        // root-only files such as /etc/shadow: hide what an unprivileged host user
        // couldn't read either.
        for file in &host.masked_files {
            push(&[&"--ro-bind", &"/dev/null", file]);
        }
        for dir in &host.masked_dirs {
            push(&[&"--tmpfs", dir, &"--remount-ro", dir]);
        }
        if let Some(hosts) = &self.etc_hosts {
            push(&[&"--ro-bind", hosts, &"/etc/hosts"]);
        }
        push(&[&"--proc", &"/proc", &"--dev", &"/dev"]);
        match &self.tmp_dir {
            Some(dir) => push(&[&"--bind", dir, &"/tmp"]),
            None => push(&[&"--tmpfs", &"/tmp"]),
        }
        let app_flag = if self.app_writable {
            "--bind"
        } else {
            "--ro-bind"
        };
        push(&[&app_flag, &self.app_root, &APP_DIR]);
        let mut next_fd = FIRST_BIND_FD;
        for bind in self.binds_parents_first() {
            match &bind.source {
                BindSource::Host(source) => {
                    let flag = if bind.writable { "--bind" } else { "--ro-bind" };
                    push(&[&flag, source, &bind.target]);
                }
                BindSource::Beneath { .. } => {
                    let flag = if bind.writable {
                        "--bind-fd"
                    } else {
                        "--ro-bind-fd"
                    };
                    push(&[&flag, &next_fd.to_string(), &bind.target]);
                    next_fd += 1;
                }
            }
        }
        // Temp files go to one place, whichever backs /tmp.
        push(&[&"--symlink", &"../tmp", &"/var/tmp"]);
        // Nothing else may be created in the root: it would be an unaccounted
        // tmpfs in RAM, and Platform.sh apps see a read-only system anyway.
        push(&[&"--remount-ro", &"/"]);
        push(&[
            &"--chdir",
            &self.workdir,
            &"--",
            &SHELL,
            &"-c",
            &self.command,
        ]);
        args
    }

    fn binds_parents_first(&self) -> Vec<&Bind> {
        let mut binds: Vec<&Bind> = self.binds.iter().collect();
        binds.sort_by_key(|b| Path::new(&b.target).components().count());
        binds
    }

    /// Host-side preparation: sources must exist (directories beneath a root are
    /// opened, and created when missing), and mount points must exist beforehand
    /// where bwrap can't or mustn't create them: under a read-only `/app`, and
    /// inside another bind (a directory the app writes to, where bwrap would
    /// follow the app's symlinks). Both are created without following symlinks.
    /// Returns the descriptors of the [`BindSource::Beneath`] binds, in mount
    /// order.
    fn prepare_host(&self) -> Result<Vec<OwnedFd>, RuntimeError> {
        let io = |what: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source| RuntimeError::Io { what, path, source }
        };
        std::fs::metadata(&self.app_root)
            .map_err(io("app root not accessible:", &self.app_root))?;
        if let Some(tmp) = &self.tmp_dir {
            std::fs::create_dir_all(tmp).map_err(io("could not create tmp dir", tmp))?;
        }
        let binds = self.binds_parents_first();
        // The directory each bind shows (opened for Beneath binds only), for the
        // mount points of the binds nested in it.
        let mut opened: Vec<Option<OwnedFd>> = Vec::with_capacity(binds.len());
        for (i, bind) in binds.iter().enumerate() {
            let is_dir = match &bind.source {
                BindSource::Host(source) => {
                    let meta = std::fs::metadata(source)
                        .map_err(io("mount source not accessible:", source))?;
                    opened.push(None);
                    meta.is_dir()
                }
                BindSource::Beneath { root, path } => {
                    let fd = beneath::open_dir(root, path, true).map_err(|error| {
                        RuntimeError::MountSource {
                            target: bind.target.clone(),
                            root: root.clone(),
                            error,
                        }
                    })?;
                    opened.push(Some(fd));
                    true
                }
            };
            // The deepest bind this one is nested in (parents come first).
            let parent = binds[..i]
                .iter()
                .rposition(|p| below(&bind.target, &p.target).is_some());
            let fresh_root;
            let (root, rel) = match parent {
                Some(j) => {
                    let rel = below(&bind.target, &binds[j].target).unwrap_or(Path::new(""));
                    let root = match (&opened[j], &binds[j].source) {
                        (Some(fd), _) => fd.as_fd(),
                        (None, BindSource::Host(source)) => {
                            fresh_root = beneath::open_root(source).map_err(|error| {
                                RuntimeError::MountPoint {
                                    target: bind.target.clone(),
                                    error,
                                }
                            })?;
                            fresh_root.as_fd()
                        }
                        (None, BindSource::Beneath { .. }) => continue,
                    };
                    (root, rel)
                }
                None => {
                    let Some(rel) = below(&bind.target, APP_DIR) else {
                        continue;
                    };
                    fresh_root = beneath::open_root(&self.app_root).map_err(|error| {
                        RuntimeError::MountPoint {
                            target: bind.target.clone(),
                            error,
                        }
                    })?;
                    (fresh_root.as_fd(), rel)
                }
            };
            let created = if is_dir {
                beneath::open_dir_at(root, rel, true).map(drop)
            } else {
                beneath::create_file_at(root, rel)
            };
            created.map_err(|error| RuntimeError::MountPoint {
                target: bind.target.clone(),
                error,
            })?;
        }
        Ok(opened.into_iter().flatten().collect())
    }

    /// A `bwrap` command ready to spawn: environment cleared and set (through
    /// the environment, not argv, so secrets don't show in `ps`), stdin from
    /// /dev/null, its own process group, killed when dropped. The caller sets
    /// stdout/stderr.
    pub(crate) fn command(&self) -> Result<tokio::process::Command, RuntimeError> {
        self.validate()?;
        let fds = self.prepare_host()?;
        let bwrap = bwrap_path()?;
        // Each wrapper execs the next (`sh` for the cgroup, `nice`, `nsenter`): one
        // process, group and set of descriptors, so bwrap stays our child
        // (`--die-with-parent`).
        let mut argv: Vec<OsString> = Vec::new();
        if self.terminal {
            // A session of its own whose controlling terminal is stdin (taken from
            // the session that had it: we are root), then exec: still one process.
            argv.extend(["setsid", "--ctty"].map(OsString::from));
        }
        if let Some(join) = &self.cgroup {
            // The process joins its cgroup before bwrap runs, so nothing the
            // sandbox starts escapes the limits. (A shell rather than a pre_exec
            // hook: our crates deny unsafe code.)
            argv.extend(["/bin/sh", "-c"].map(OsString::from));
            argv.push(crate::cgroup::join_script(join.procs_files.len()).into());
            argv.push("grove-cgroup-join".into());
            argv.extend(join.procs_files.iter().map(|p| p.as_os_str().to_owned()));
        }
        if let Some(niceness) = self.niceness {
            argv.extend(["nice", "-n"].map(OsString::from));
            argv.push(niceness.to_string().into());
        }
        if let Network::Namespace(netns) = &self.network {
            // The namespace is opened through our own descriptor, which stays
            // open while `self` (and so the handle) lives: nothing of it is
            // passed down to bwrap or the app.
            let mut net = OsString::from("--net=");
            net.push(netns.path());
            argv.extend([nsenter_path()?.into(), net, "--".into()]);
        }
        argv.push(bwrap.as_os_str().to_owned());
        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        let layout = match &self.image {
            Some(root) => HostLayout::image(root),
            None => HostLayout::current(),
        };
        cmd.args(self.bwrap_args(&layout))
            .env_clear()
            .envs(self.effective_env())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if !self.terminal {
            cmd.process_group(0);
        }
        if !fds.is_empty() {
            // Our descriptors are close-on-exec: only this child gets them, as the
            // numbers `bwrap_args` gave them (bwrap closes each once mounted).
            let mappings = fds
                .into_iter()
                .zip(FIRST_BIND_FD..)
                .map(|(parent_fd, child_fd)| FdMapping {
                    parent_fd,
                    child_fd,
                })
                .collect();
            cmd.fd_mappings(mappings)
                .map_err(|e| RuntimeError::InvalidSpec(e.to_string()))?;
        }
        Ok(cmd)
    }
}

/// Sandbox targets that the sandbox provides itself and that binds may not cover.
const RESERVED_TARGETS: &[&str] = &[
    "/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc", "/proc", "/dev",
];

/// The host's system directories as the sandbox should reproduce them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLayout {
    /// `/usr`, `/bin`, `/lib`, `/lib64`, `/sbin`, `/etc` when present on the host.
    pub system_dirs: Vec<(PathBuf, HostEntry)>,
    /// Directories outside those that the host's `/etc` points into and that must
    /// be visible too (e.g. `/run/systemd/resolve` for a symlinked resolv.conf).
    pub extra_ro_dirs: Vec<PathBuf>,
    /// Files under `/etc` that are not world-readable (`/etc/shadow`, ssh host
    /// keys, ...): covered with `/dev/null`.
    pub masked_files: Vec<PathBuf>,
    /// Directories under `/etc` that are not world-searchable
    /// (`/etc/ssl/private`): covered with an empty read-only tmpfs.
    pub masked_dirs: Vec<PathBuf>,
    /// Host files shown over an image's (`/etc/resolv.conf`, `/etc/hosts`):
    /// (host path, path in the sandbox).
    pub host_files: Vec<(PathBuf, PathBuf)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEntry {
    Dir,
    /// A directory of a runtime image, shown read-only at the host's path.
    Image(PathBuf),
    /// A merged-/usr symlink such as `/bin -> usr/bin`, recreated as is.
    Symlink(PathBuf),
}

impl HostLayout {
    /// The host's layout, probed again when older than a minute (packages get
    /// installed and removed under a running daemon), with masks whose path has
    /// disappeared since left out: bwrap can't mount over a missing file.
    pub fn current() -> HostLayout {
        const MAX_AGE: Duration = Duration::from_secs(60);
        static CACHE: Mutex<Option<(Instant, HostLayout)>> = Mutex::new(None);
        let mut layout = {
            let mut cache = CACHE
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match &*cache {
                Some((at, layout)) if at.elapsed() < MAX_AGE => layout.clone(),
                _ => {
                    let layout = HostLayout::probe();
                    *cache = Some((Instant::now(), layout.clone()));
                    layout
                }
            }
        };
        layout
            .masked_files
            .retain(|p| std::fs::symlink_metadata(p).is_ok());
        layout
            .masked_dirs
            .retain(|p| std::fs::symlink_metadata(p).is_ok());
        layout
    }

    pub fn probe() -> HostLayout {
        let mut system_dirs = Vec::new();
        for dir in SYSTEM_DIRS {
            let path = PathBuf::from(dir);
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                if let Ok(target) = std::fs::read_link(&path) {
                    system_dirs.push((path, HostEntry::Symlink(target)));
                }
            } else if meta.is_dir() {
                system_dirs.push((path, HostEntry::Dir));
            }
        }
        let mut extra_ro_dirs = Vec::new();
        if let Ok(target) = std::fs::read_link("/etc/resolv.conf")
            && target.is_absolute()
            && !target.starts_with("/etc")
            && let Some(parent) = target.parent()
            && parent.starts_with("/run")
            && parent.is_dir()
        {
            extra_ro_dirs.push(parent.to_owned());
        }
        let mut masked_files = Vec::new();
        let mut masked_dirs = Vec::new();
        find_private_entries(Path::new("/etc"), 8, &mut masked_files, &mut masked_dirs);
        HostLayout {
            system_dirs,
            extra_ro_dirs,
            masked_files,
            masked_dirs,
            host_files: Vec::new(),
        }
    }

    /// The system directories of a runtime image instead of the host's: its `/usr`,
    /// `/etc` and merged-/usr links, its private `/etc` files masked as the host's
    /// are, and the host's name resolution (`/etc/resolv.conf`, `/etc/hosts`,
    /// which the image was built with mount points for) and CA bundle. Everything from the
    /// image is read-only.
    pub fn image(root: &Path) -> HostLayout {
        let mut system_dirs = Vec::new();
        for dir in SYSTEM_DIRS {
            let source = root.join(dir.trim_start_matches('/'));
            let Ok(meta) = std::fs::symlink_metadata(&source) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                if let Ok(target) = std::fs::read_link(&source) {
                    system_dirs.push((PathBuf::from(dir), HostEntry::Symlink(target)));
                }
            } else if meta.is_dir() {
                system_dirs.push((PathBuf::from(dir), HostEntry::Image(source)));
            }
        }
        let (mut files, mut dirs) = (Vec::new(), Vec::new());
        find_private_entries(&root.join("etc"), 8, &mut files, &mut dirs);
        let in_sandbox = |paths: Vec<PathBuf>| -> Vec<PathBuf> {
            paths
                .into_iter()
                .filter_map(|p| Some(Path::new("/").join(p.strip_prefix(root).ok()?)))
                .collect()
        };
        // The host's trust store too: package registries are reached through the
        // host's certificate authorities (an operator's TLS-inspecting proxy included).
        let host_files = [
            "/etc/resolv.conf",
            "/etc/hosts",
            "/etc/ssl/certs/ca-certificates.crt",
        ]
        .into_iter()
        .filter(|file| {
            Path::new(file).is_file() && root.join(file.trim_start_matches('/')).is_file()
        })
        .map(|file| (PathBuf::from(file), PathBuf::from(file)))
        .collect();
        HostLayout {
            system_dirs,
            extra_ro_dirs: Vec::new(),
            masked_files: in_sandbox(files),
            masked_dirs: in_sandbox(dirs),
            host_files,
        }
    }
}

/// The system directories a sandbox shows, from the host or an image.
const SYSTEM_DIRS: [&str; 6] = ["/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc"];

/// Collects what below `dir` an unprivileged user couldn't read: regular files
/// without o+r and directories without o+x (not descended into).
fn find_private_entries(dir: &Path, depth: u32, files: &mut Vec<PathBuf>, dirs: &mut Vec<PathBuf>) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
    entries.sort();
    for path in entries {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let mode = meta.permissions().mode();
        if meta.is_dir() {
            if mode & 0o001 == 0 {
                dirs.push(path);
            } else if depth > 0 {
                find_private_entries(&path, depth - 1, files, dirs);
            }
        } else if meta.is_file() && mode & 0o004 == 0 {
            files.push(path);
        }
    }
}

/// Where `nsenter` (util-linux) is on this host: how a sandbox joins a [`NetNs`].
pub fn nsenter_path() -> Result<&'static Path, RuntimeError> {
    static NSENTER: OnceLock<Option<PathBuf>> = OnceLock::new();
    NSENTER
        .get_or_init(|| {
            ["/usr/bin/nsenter", "/bin/nsenter", "/usr/local/bin/nsenter"]
                .map(PathBuf::from)
                .into_iter()
                .find(|candidate| candidate.is_file())
        })
        .as_deref()
        .ok_or(RuntimeError::NsenterNotFound)
}

/// `program` on the host, in a mount namespace of its own where each `(source,
/// target)` file is bound read-only over the host's `target`; everything else is the
/// host's, capabilities included (the SSH gateway: `sshd` with Grove's own
/// `/etc/passwd`). It dies with its parent and is killed when dropped.
pub fn host_command_with_files(
    program: &Path,
    files: &[(PathBuf, &str)],
) -> Result<tokio::process::Command, RuntimeError> {
    let mut cmd = tokio::process::Command::new(bwrap_path()?);
    cmd.args([
        "--die-with-parent",
        "--cap-add",
        "ALL",
        "--dev-bind",
        "/",
        "/",
    ]);
    for (source, target) in files {
        cmd.arg("--ro-bind").arg(source).arg(target);
    }
    cmd.arg("--").arg(program).kill_on_drop(true);
    Ok(cmd)
}

/// Where `bwrap` is on this host.
pub fn bwrap_path() -> Result<&'static Path, RuntimeError> {
    static BWRAP: OnceLock<Option<PathBuf>> = OnceLock::new();
    BWRAP
        .get_or_init(|| {
            let from_path = std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
                .unwrap_or_default();
            from_path
                .into_iter()
                .chain(["/usr/bin", "/usr/local/bin", "/bin"].map(PathBuf::from))
                .filter(|dir| dir.is_absolute())
                .map(|dir| dir.join("bwrap"))
                .find(|candidate| candidate.is_file())
        })
        .as_deref()
        .ok_or(RuntimeError::BwrapNotFound)
}

fn sanitize_hostname(name: Option<&str>) -> String {
    let cleaned: String = name
        .unwrap_or("grove")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    let cleaned = cleaned.trim_matches('-');
    if cleaned.is_empty() {
        "grove".to_owned()
    } else {
        cleaned.to_owned()
    }
}

fn is_clean_absolute(path: &str) -> bool {
    let path = Path::new(path);
    path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

fn is_same_or_below(path: &str, dir: &str) -> bool {
    Path::new(path).starts_with(dir)
}

/// `path` relative to `dir` when it is strictly below it.
fn below<'a>(path: &'a str, dir: &str) -> Option<&'a Path> {
    Path::new(path)
        .strip_prefix(dir)
        .ok()
        .filter(|rel| !rel.as_os_str().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> HostLayout {
        HostLayout {
            system_dirs: vec![
                ("/usr".into(), HostEntry::Dir),
                ("/bin".into(), HostEntry::Symlink("usr/bin".into())),
                ("/etc".into(), HostEntry::Dir),
            ],
            extra_ro_dirs: vec![],
            masked_files: vec!["/etc/shadow".into()],
            masked_dirs: vec!["/etc/ssl/private".into()],
            host_files: vec![],
        }
    }

    fn args(spec: &SandboxSpec) -> String {
        spec.bwrap_args(&layout())
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn runtime_sandbox_command_line() {
        let mut spec = SandboxSpec::new("/srv/app", "python3 -m http.server $PORT");
        spec.hostname = Some("My App".into());
        spec.binds = vec![
            Bind::host("/data/var-cache", "/app/var/cache", true),
            Bind::host("/data/var", "/app/var", true),
            Bind::beneath("/volume", "apps/app/local/files", "/app/web/files", true),
            Bind::beneath("/volume", "apps/app/local/ro", "/app/ro", false),
        ];
        assert_eq!(
            args(&spec),
            "--die-with-parent --new-session --unshare-pid --unshare-ipc --unshare-uts \
             --cap-drop ALL --hostname my-app \
             --ro-bind /usr /usr --symlink usr/bin /bin --ro-bind /etc /etc \
             --ro-bind /dev/null /etc/shadow \
             --tmpfs /etc/ssl/private --remount-ro /etc/ssl/private \
             --proc /proc --dev /dev --tmpfs /tmp --ro-bind /srv/app /app \
             --bind /data/var /app/var --ro-bind-fd 3 /app/ro \
             --bind /data/var-cache /app/var/cache --bind-fd 4 /app/web/files \
             --symlink ../tmp /var/tmp --remount-ro / \
             --chdir /app -- /bin/dash -c python3 -m http.server $PORT"
        );
    }

    #[test]
    fn a_terminal_session_keeps_its_session_and_nothing_else() {
        let plain = SandboxSpec::new("/srv/app", "bash -i");
        let mut terminal = plain.clone();
        terminal.terminal = true;
        assert_eq!(
            args(&plain).replace("--new-session ", ""),
            args(&terminal),
            "only --new-session differs"
        );
        assert!(args(&plain).contains("--new-session"));
    }

    #[test]
    fn build_sandbox_has_writable_app_and_host_tmp_and_can_drop_network() {
        let mut spec = SandboxSpec::new("/srv/app", "true");
        spec.app_writable = true;
        spec.network = Network::None;
        spec.tmp_dir = Some("/srv/tmp".into());
        let args = args(&spec);
        assert!(args.contains("--bind /srv/tmp /tmp"), "{args}");
        assert!(args.contains("--bind /srv/app /app"), "{args}");
        assert!(args.contains("--unshare-net"), "{args}");
    }

    #[test]
    fn env_defaults_fill_only_what_is_missing() {
        let mut spec = SandboxSpec::new("/srv/app", "true");
        spec.env = vec![
            ("HOME".into(), "/home/web".into()),
            ("A".into(), "1".into()),
        ];
        assert_eq!(
            spec.effective_env(),
            vec![
                ("HOME".to_owned(), "/home/web".to_owned()),
                ("A".to_owned(), "1".to_owned()),
                ("PATH".to_owned(), DEFAULT_PATH.to_owned()),
                ("TMPDIR".to_owned(), "/tmp".to_owned()),
                ("LANG".to_owned(), "C.UTF-8".to_owned()),
            ]
        );
    }

    #[test]
    fn invalid_specs_are_rejected_with_a_reason() {
        let check = |edit: &dyn Fn(&mut SandboxSpec), expected: &str| {
            let mut spec = SandboxSpec::new("/srv/app", "true");
            edit(&mut spec);
            let err = spec.validate().err().map(|e| e.to_string());
            assert_eq!(err.as_deref(), Some(expected));
        };
        let bind = |target: &str| Bind::host("/data", target, true);
        check(
            &|s| s.app_root = "app".into(),
            "invalid sandbox: app root app is not an absolute path",
        );
        check(
            &|s| s.binds = vec![bind("/app/../etc")],
            "invalid sandbox: mount target `/app/../etc` must be an absolute path below / without `..`",
        );
        check(
            &|s| s.binds = vec![bind("/")],
            "invalid sandbox: mount target `/` must be an absolute path below / without `..`",
        );
        check(
            &|s| s.binds = vec![bind("/app/")],
            "invalid sandbox: mount target `/app/` would hide the app itself",
        );
        check(
            &|s| s.binds = vec![bind("/etc/ssl")],
            "invalid sandbox: mount target `/etc/ssl` is inside /etc, which the sandbox provides itself",
        );
        check(
            &|s| s.binds = vec![Bind::beneath("/v", "a/../../etc", "/app/a", true)],
            "invalid sandbox: mount source `a/../../etc` beneath /v must be a relative path without `..`",
        );
        check(
            &|s| s.binds = vec![Bind::beneath("v", "a", "/app/a", true)],
            "invalid sandbox: mount root v is not an absolute path",
        );
        check(
            &|s| s.env = vec![("A=B".into(), "x".into())],
            "invalid sandbox: invalid environment variable name `A=B`",
        );
        check(
            &|s| s.workdir = "app".into(),
            "invalid sandbox: working directory `app` must be an absolute path without `..`",
        );
    }

    #[test]
    fn image_layout_shows_the_images_system_directories_and_the_hosts_resolver() {
        use std::os::unix::fs::PermissionsExt;
        let image = tempfile::tempdir().expect("tempdir");
        let root = image.path();
        for dir in ["usr/bin", "usr/lib", "etc/ssl/private"] {
            std::fs::create_dir_all(root.join(dir)).expect("mkdir");
        }
        std::os::unix::fs::symlink("usr/bin", root.join("bin")).expect("symlink");
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).expect("symlink");
        std::fs::write(root.join("etc/resolv.conf"), "").expect("write");
        std::fs::write(root.join("etc/shadow"), "").expect("write");
        std::fs::set_permissions(
            root.join("etc/shadow"),
            std::fs::Permissions::from_mode(0o640),
        )
        .expect("chmod");
        std::fs::set_permissions(
            root.join("etc/ssl/private"),
            std::fs::Permissions::from_mode(0o700),
        )
        .expect("chmod");
        let layout = HostLayout::image(root);
        assert_eq!(
            layout.system_dirs,
            vec![
                ("/usr".into(), HostEntry::Image(root.join("usr"))),
                ("/bin".into(), HostEntry::Symlink("usr/bin".into())),
                ("/lib".into(), HostEntry::Symlink("usr/lib".into())),
                ("/etc".into(), HostEntry::Image(root.join("etc"))),
            ]
        );
        assert_eq!(layout.masked_files, vec![PathBuf::from("/etc/shadow")]);
        assert_eq!(layout.masked_dirs, vec![PathBuf::from("/etc/ssl/private")]);
        // The host's resolver, where the image has a mount point for it (it has no
        // /etc/hosts here, so the host's isn't shown).
        let expected: Vec<(PathBuf, PathBuf)> = if Path::new("/etc/resolv.conf").is_file() {
            vec![("/etc/resolv.conf".into(), "/etc/resolv.conf".into())]
        } else {
            vec![]
        };
        assert_eq!(layout.host_files, expected);

        let mut spec = SandboxSpec::new("/srv/app", "node server.js");
        spec.image = Some(root.to_owned());
        spec.binds = vec![Bind::host("/builds/k/local", "/usr/local", false)];
        let args = spec
            .bwrap_args(&layout)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let root = root.display();
        assert!(
            args.contains(&format!(
                "--ro-bind {root}/usr /usr --symlink usr/bin /bin --symlink usr/lib /lib \
                 --ro-bind {root}/etc /etc"
            )),
            "{args}"
        );
        assert!(
            args.contains("--ro-bind /dev/null /etc/shadow --tmpfs /etc/ssl/private"),
            "{args}"
        );
        // The app's own /usr/local still goes over the image's.
        assert!(
            args.contains("--ro-bind /builds/k/local /usr/local"),
            "{args}"
        );
        assert!(!args.contains("--ro-bind /usr /usr"), "{args}");
    }

    #[test]
    fn hostnames_are_sanitized() {
        assert_eq!(sanitize_hostname(None), "grove");
        assert_eq!(sanitize_hostname(Some("Shop_Front")), "shop-front");
        assert_eq!(sanitize_hostname(Some("__")), "grove");
    }
}
