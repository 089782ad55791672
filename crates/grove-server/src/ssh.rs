//! The SSH gateway: OpenSSH's `sshd`, run by the server on `--ssh-listen` with its own
//! configuration, host key and logins in `DATA_DIR/ssh`, and this module behind it.
//!
//! - `sshd` knows a login only if `getpwnam` finds it, so it runs in a mount namespace
//!   of its own (`grove_runtime::host_command_with_files`) whose `/etc/passwd` is
//!   `DATA_DIR/ssh/passwd`: `git` and `<project>-<environment>[--<app>]` of every
//!   environment deployed since the start ([`Logins`]), all uid 0 with no password.
//! - It authenticates keys only through `AuthorizedKeysCommand`, `grove ssh-gate keys`,
//!   which asks this module over the Unix socket `DATA_DIR/ssh/gate.sock` (0600 in a
//!   0700 directory; peers of another uid are refused): a known key gets one
//!   `restrict,pty,command="grove ssh-gate session … <fingerprint>"` line, so that
//!   root logins are allowed only with that forced command
//!   (`PermitRootLogin forced-commands-only`) and no forwarding of any kind.
//! - `grove ssh-gate session` passes its stdin, stdout and stderr (the client's pipes
//!   or terminal) over the socket with the login and `SSH_ORIGINAL_COMMAND`; this module
//!   checks the key's user's role on the environment, then runs the command in the
//!   app's runtime sandbox with those descriptors ([`grove_runtime::run_attached`], the
//!   sandbox of its hooks and crons), or `git upload-pack`/`receive-pack` for the `git`
//!   login, with the hook environment of git over HTTP. The gate waits for the exit
//!   status and exits with it; when the client goes away first, the gate exits, the
//!   socket closes and the sandbox is killed.
//!
//! The login and the command are the client's: the login only selects an environment
//! through the store, the command is only ever an argument (`bash -c`) inside the
//! sandbox, a git path only names a project.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use grove_api::ssh_gate::{Reply, Request, Session};
use grove_runtime::SandboxSpec;
use grove_store::UserRow;
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use crate::access::{self, Action};
use crate::deploy::shell_quote;
use crate::error::Error;
use crate::platform::Platform;

/// OpenSSH's server, from Debian's `openssh-server`.
pub const SSHD: &str = "/usr/sbin/sshd";
/// The login of git over SSH: `ssh://git@<ssh-listen>/<project>.git`.
pub const GIT_LOGIN: &str = "git";
/// What `sshd` runs for the `sftp` subsystem: inside the sandbox, like any command.
pub const SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";
const DIR: &str = "ssh";
const SOCKET: &str = "gate.sock";
const PASSWD: &str = "passwd";
const HOST_KEY: &str = "host_ed25519_key";
const CONFIG: &str = "sshd_config";
/// Privilege separation directory compiled into Debian's sshd.
const PRIVSEP_DIR: &str = "/run/sshd";

/// The logins `sshd` can look up: the `/etc/passwd` it sees. Only ever appended to (a
/// line in one write), never replaced: `sshd`'s namespace binds this very file, and a
/// login that no longer exists is refused by the session, not by `sshd`.
pub struct Logins {
    path: PathBuf,
    known: Mutex<BTreeSet<String>>,
    /// The gateway runs.
    serving: AtomicBool,
}

impl Logins {
    pub fn new(data_dir: &Path) -> Logins {
        Logins {
            path: data_dir.join(DIR).join(PASSWD),
            known: Mutex::new(BTreeSet::new()),
            serving: AtomicBool::new(false),
        }
    }

    /// Whether the gateway runs.
    pub fn serving(&self) -> bool {
        self.serving.load(Ordering::Relaxed)
    }

    /// Writes the file afresh (before `sshd` starts): the host's `root` and `sshd`
    /// entries (`sshd` needs them), `git`, and what was registered before.
    fn reset(&self) -> io::Result<()> {
        let host = std::fs::read_to_string("/etc/passwd")?;
        let mut text: String = host
            .lines()
            .filter(|l| l.starts_with("root:") || l.starts_with("sshd:"))
            .map(|l| format!("{l}\n"))
            .collect();
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.insert(GIT_LOGIN.to_string());
        for login in known.iter() {
            text.push_str(&passwd_entry(login));
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&self.path)?
            .write_all(text.as_bytes())
    }

    /// Makes `<project>-<machine name>` and `<project>-<machine name>--<app>` of each
    /// app known to `sshd` (a deploy calls this once its apps run).
    pub fn register<'a>(
        &self,
        project: &str,
        machine_name: &str,
        apps: impl Iterator<Item = &'a str>,
    ) {
        let base = format!("{project}-{machine_name}");
        let mut names = vec![base.clone()];
        names.extend(apps.map(|app| format!("{base}--{app}")));
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let new: String = names
            .into_iter()
            .filter(|name| valid_login(name) && known.insert(name.clone()))
            .map(|name| passwd_entry(&name))
            .collect();
        if new.is_empty() {
            return;
        }
        // No gateway (not created): the names are written by `reset` if one starts.
        let appended = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .and_then(|mut file| file.write_all(new.as_bytes()));
        if let Err(error) = appended
            && error.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(%error, "Could not add SSH logins.");
        }
    }
}

fn passwd_entry(login: &str) -> String {
    format!("{login}:x:0:0:grove:/:/bin/sh\n")
}

/// Logins are names of projects, environments and apps: nothing `/etc/passwd` or a
/// shell would read specially.
fn valid_login(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The running gateway: `sshd` is killed when this is dropped (and dies with us).
pub struct Gateway {
    pub address: SocketAddr,
    _sshd: tokio::process::Child,
}

/// Starts `sshd` on `listen` and serves its gate until `shutdown`.
pub async fn start(
    platform: Arc<Platform>,
    listen: SocketAddr,
    shutdown: CancellationToken,
) -> Result<Gateway, String> {
    if !Path::new(SSHD).is_file() {
        return Err(format!(
            "{SSHD} is not installed (Debian package `openssh-server`)"
        ));
    }
    let settings = &platform.settings;
    let dir = settings.data_dir.join(DIR);
    let at = |path: &Path| {
        let path = path.display().to_string();
        move |e: io::Error| format!("{path}: {e}")
    };
    std::fs::create_dir_all(&dir).map_err(at(&dir))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(at(&dir))?;
    std::fs::create_dir_all(PRIVSEP_DIR).map_err(at(Path::new(PRIVSEP_DIR)))?;
    let host_key = dir.join(HOST_KEY);
    if !host_key.exists() {
        let status = tokio::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "grove-host", "-f"])
            .arg(&host_key)
            .stdin(std::process::Stdio::null())
            .status()
            .await
            .map_err(|e| format!("ssh-keygen: {e}"))?;
        if !status.success() {
            return Err(format!("ssh-keygen could not make a host key ({status})"));
        }
    }
    platform.ssh_logins.reset().map_err(at(&dir.join(PASSWD)))?;
    let socket = dir.join(SOCKET);
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).map_err(at(&socket))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
        .map_err(at(&socket))?;
    let config = dir.join(CONFIG);
    let exe = gate_exe(&settings.grove_exe)?;
    let text = sshd_config(listen, &host_key, &exe, &socket)?;
    std::fs::write(&config, text).map_err(at(&config))?;

    let mut sshd = grove_runtime::host_command_with_files(
        Path::new(SSHD),
        &[(dir.join(PASSWD), "/etc/passwd")],
    )
    .map_err(|e| e.to_string())?;
    sshd.arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = sshd
        .spawn()
        .map_err(|e| format!("could not start sshd: {e}"))?;
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::info!(target: "sshd", "{line}");
            }
        });
    }
    tokio::spawn(serve(platform.clone(), listener, shutdown));
    // Ready once it accepts connections; an sshd that exits (its port taken) is an error.
    for _ in 0..200 {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("sshd exited ({status}); see its lines above"));
        }
        if tokio::net::TcpStream::connect(listen).await.is_ok() {
            platform.ssh_logins.serving.store(true, Ordering::Relaxed);
            return Ok(Gateway {
                address: listen,
                _sshd: child,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("sshd does not accept connections on {listen}"))
}

/// Where sshd finds the grove binary for `AuthorizedKeysCommand`. sshd runs it only
/// from a path whose every directory is root's and writable by root alone; a binary
/// elsewhere (a checkout under `/tmp`) is copied into [`GATE_DIR`]: one copy per
/// binary path, replaced when the binary is rebuilt.
fn gate_exe(exe: &Path) -> Result<PathBuf, String> {
    let exe = exe
        .canonicalize()
        .map_err(|e| format!("{}: {e}", exe.display()))?;
    let safe = exe
        .ancestors()
        .all(|path| std::fs::metadata(path).is_ok_and(|m| m.uid() == 0 && m.mode() & 0o022 == 0));
    if safe {
        return Ok(exe);
    }
    let meta = std::fs::metadata(&exe).map_err(|e| format!("{}: {e}", exe.display()))?;
    let dir = Path::new(GATE_DIR);
    std::fs::create_dir_all(dir).map_err(|e| format!("{GATE_DIR}: {e}"))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{GATE_DIR}: {e}"))?;
    // One copy per binary path, replaced when that binary is rebuilt.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&exe, &mut hasher);
    let target = dir.join(format!("grove-{:016x}", std::hash::Hasher::finish(&hasher)));
    let current = std::fs::metadata(&target).is_ok_and(|copy| {
        copy.len() == meta.len()
            && matches!((copy.modified(), meta.modified()), (Ok(c), Ok(m)) if c >= m)
    });
    if !current {
        let partial = dir.join(format!(".grove-{}", std::process::id()));
        std::fs::copy(&exe, &partial).map_err(|e| format!("{}: {e}", partial.display()))?;
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("{}: {e}", partial.display()))?;
        std::fs::rename(&partial, &target).map_err(|e| format!("{}: {e}", target.display()))?;
    }
    Ok(target)
}

/// See [`gate_exe`]: root's, on tmpfs, gone at reboot.
const GATE_DIR: &str = "/run/grove-ssh";

/// `sshd_config`: public keys only, through the gate; no forwarding, no user files.
fn sshd_config(
    listen: SocketAddr,
    host_key: &Path,
    grove_exe: &Path,
    socket: &Path,
) -> Result<String, String> {
    // sshd takes these paths as they are (a command must start with `/`): nothing in
    // them may read as a separator, a quote or a `%` token.
    let quoted = |path: &Path| -> Result<String, String> {
        match path.to_str() {
            Some(text)
                if path.is_absolute()
                    && !text.contains(|c: char| {
                        c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | '%')
                    }) =>
            {
                Ok(text.to_string())
            }
            _ => Err(format!(
                "the path {} cannot be written in sshd_config (spaces, quotes or `%`)",
                path.display()
            )),
        }
    };
    Ok(format!(
        "# Written by grove at each start: edits are lost.
ListenAddress {listen}
HostKey {host_key}
PidFile none
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthenticationMethods publickey
PermitRootLogin forced-commands-only
AuthorizedKeysFile none
AuthorizedKeysCommand {exe} ssh-gate keys {socket} %u %t %k
AuthorizedKeysCommandUser root
DenyUsers root sshd nobody
AllowTcpForwarding no
AllowStreamLocalForwarding no
AllowAgentForwarding no
X11Forwarding no
PermitTunnel no
PermitUserRC no
PermitUserEnvironment no
AcceptEnv GIT_PROTOCOL
PrintMotd no
PrintLastLog no
StrictModes yes
MaxStartups 64:30:256
Subsystem sftp {SFTP_SERVER}
",
        host_key = quoted(host_key)?,
        exe = quoted(grove_exe)?,
        socket = quoted(socket)?,
    ))
}

async fn serve(platform: Arc<Platform>, listener: UnixListener, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let platform = platform.clone();
                tokio::spawn(async move {
                    if let Err(error) = handle(platform, stream).await {
                        tracing::warn!(%error, "SSH gate request failed.");
                    }
                });
            }
            Err(error) => {
                tracing::warn!(%error, "SSH gate: accept failed.");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle(platform: Arc<Platform>, stream: UnixStream) -> io::Result<()> {
    // The socket is in a 0700 directory already; this is the second lock.
    if stream.peer_cred()?.uid() != rustix::process::getuid().as_raw() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "a process of another user",
        ));
    }
    let stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    let (request, fds, stream) = tokio::task::spawn_blocking(move || {
        receive(&stream).map(|(request, fds)| (request, fds, stream))
    })
    .await
    .map_err(io::Error::other)??;
    stream.set_nonblocking(true)?;
    let stream = UnixStream::from_std(stream)?;
    let (mut read, mut write) = stream.into_split();
    let reply = match request {
        Request::Keys {
            login,
            key_type,
            key_data,
        } => Reply {
            exit: 0,
            lines: authorized_keys(&platform, &login, &key_type, &key_data),
        },
        Request::Session(session) => {
            let stdio: [OwnedFd; 3] = fds.try_into().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a session needs three descriptors",
                )
            })?;
            // The gate sends nothing more: a read returns when it is gone.
            let gone = async move {
                let mut byte = [0u8; 1];
                let _ = read.read(&mut byte).await;
            };
            Reply {
                exit: run_session(&platform, session, stdio, gone).await,
                lines: Vec::new(),
            }
        }
    };
    let mut line = serde_json::to_vec(&reply).map_err(io::Error::other)?;
    line.push(b'\n');
    write.write_all(&line).await
}

/// One JSON line and the descriptors sent with it.
fn receive(stream: &std::os::unix::net::UnixStream) -> io::Result<(Request, Vec<OwnedFd>)> {
    let mut data = Vec::new();
    let mut fds = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let received = rustix::net::recvmsg(
            stream,
            &mut [io::IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )?;
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(received) = message {
                fds.extend(received);
            }
        }
        if received.bytes == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        data.extend_from_slice(&buf[..received.bytes]);
        if let Some(end) = data.iter().position(|&b| b == b'\n') {
            let request = serde_json::from_slice(&data[..end]).map_err(io::Error::other)?;
            return Ok((request, fds));
        }
        if data.len() > 256 * 1024 || fds.len() > 3 {
            return Err(io::ErrorKind::InvalidData.into());
        }
    }
}

/// The `authorized_keys` line for a key of a Grove user offered for one of Grove's
/// logins; none otherwise.
fn authorized_keys(
    platform: &Platform,
    login: &str,
    key_type: &str,
    key_data: &str,
) -> Vec<String> {
    if !valid_login(login) {
        return Vec::new();
    }
    let Ok(key) = crate::ssh_keys::parse_public_key(&format!("{key_type} {key_data}")) else {
        return Vec::new();
    };
    match platform.store.user_by_ssh_key(&key.fingerprint) {
        Ok(Some(_)) => {}
        Ok(None) => return Vec::new(),
        Err(error) => {
            tracing::error!(%error, "SSH: could not look a key up.");
            return Vec::new();
        }
    }
    let settings = &platform.settings;
    let command = format!(
        "{} ssh-gate session {} {}",
        shell_quote(&settings.grove_exe.to_string_lossy()),
        shell_quote(&settings.data_dir.join(DIR).join(SOCKET).to_string_lossy()),
        shell_quote(&key.fingerprint),
    );
    vec![format!(
        "restrict,pty,command=\"{}\" {} {}",
        command.replace('\\', "\\\\").replace('"', "\\\""),
        key.key_type,
        key.data
    )]
}

/// Runs a session to its end and returns its exit status; a refusal is said on the
/// session's stderr (exit status 1).
async fn run_session(
    platform: &Arc<Platform>,
    session: Session,
    stdio: [OwnedFd; 3],
    gone: impl std::future::Future<Output = ()>,
) -> i32 {
    let target = resolve(platform, &session);
    let target = match target {
        Ok(target) => target,
        Err(error) => {
            if let Ok(stderr) = stdio[2].try_clone() {
                let _ =
                    std::fs::File::from(stderr).write_all(format!("grove: {error}\n").as_bytes());
            }
            tracing::info!(login = %session.login, %error, "SSH session refused.");
            return 1;
        }
    };
    match target {
        Target::Sandbox(spec) => {
            tracing::info!(login = %session.login, command = ?session.command, "SSH session.");
            match grove_runtime::run_attached(&spec, stdio, gone).await {
                Ok(outcome) => outcome
                    .exit_code
                    .or(outcome.signal.map(|s| 128 + s))
                    .unwrap_or(255),
                Err(error) => {
                    tracing::error!(%error, "SSH session could not run.");
                    255
                }
            }
        }
        Target::Git {
            service,
            project,
            user,
        } => run_git(platform, service, &project, &user, &session, stdio, gone).await,
    }
}

enum Target {
    Sandbox(SandboxSpec),
    Git {
        service: &'static str,
        project: String,
        user: UserRow,
    },
}

fn resolve(platform: &Platform, session: &Session) -> Result<Target, Error> {
    let (_, user) = platform
        .store
        .user_by_ssh_key(&session.key)?
        .ok_or_else(|| Error::Forbidden("this SSH key was deleted".into()))?;
    if session.login == GIT_LOGIN {
        return git_target(platform, user, session.command.as_deref());
    }
    environment_target(platform, &user, session).map(Target::Sandbox)
}

/// `<project>-<environment>[--<app>]`: the app's runtime sandbox running the session.
fn environment_target(
    platform: &Platform,
    user: &UserRow,
    session: &Session,
) -> Result<SandboxSpec, Error> {
    let login = &session.login;
    let unknown = || {
        Error::NotFound(format!(
            "no environment `{login}`: log in as <project>-<environment machine name>[--<app>], as `grove environment:info` names it"
        ))
    };
    let (prefix, app) = match login.split_once("--") {
        Some((prefix, app)) => (prefix, Some(app)),
        None => (login.as_str(), None),
    };
    let mut found = None;
    for (project, machine_name) in login_candidates(prefix) {
        if let Some(env) = platform
            .store
            .environment(project, machine_name)?
            .filter(|env| env.machine_name == machine_name)
        {
            found = Some((project.to_string(), env));
            break;
        }
    }
    let (project, env) = found.ok_or_else(unknown)?;
    // No role in the project: as if it did not exist.
    let access = access::project(platform, user, &project).map_err(|_| unknown())?;
    access.allow(&env.kind, Action::Ssh)?;
    let shells = {
        let running = platform.running.lock().unwrap_or_else(|e| e.into_inner());
        running
            .get(&(project.clone(), env.name.clone()))
            .map(|r| r.shells.clone())
    };
    let shells = shells.filter(|s| !s.is_empty()).ok_or_else(|| {
        Error::Conflict(format!(
            "environment `{}` runs no app (it is {}): SSH opens a session in a running app",
            env.name, env.status
        ))
    })?;
    let names = || shells.keys().cloned().collect::<Vec<_>>().join(", ");
    let (app, shell) = match app {
        Some(app) => shells.get_key_value(app).ok_or_else(|| {
            Error::NotFound(format!(
                "environment `{}` has no app `{app}` (it has: {})",
                env.name,
                names()
            ))
        })?,
        None if shells.len() == 1 => shells.iter().next().ok_or_else(unknown)?,
        None => {
            return Err(Error::Invalid(format!(
                "environment `{}` runs several apps ({}): log in as {login}--<app>",
                env.name,
                names()
            )));
        }
    };
    let mut command = session_command(session.command.as_deref(), session.tty);
    if session.command.is_none() && session.tty {
        // Platform.sh greets an interactive login with where it landed.
        let welcome = format!(
            "Welcome to Grove.\n\nThis is environment {} of project {project}, app {app}.\n",
            env.name
        );
        command = format!("printf '%s\\n' {}; {command}", shell_quote(&welcome));
    }
    let mut spec = shell.spec(&command);
    spec.terminal = session.tty;
    // The prompt names the login, as on Platform.sh (`web@<project>-<env>--<app>`).
    spec.hostname = Some(format!("{project}-{}--{app}", env.machine_name));
    if let Some(term) = session.term.as_deref().filter(|t| valid_login(t)) {
        spec.env.push(("TERM".to_string(), term.to_string()));
    }
    Ok(spec)
}

/// `project-name-feature-x` is project `project-name`, environment `feature-x`, or
/// project `project`, environment `name-feature-x`, ...: every split, shortest project
/// first (the store decides which exists).
fn login_candidates(prefix: &str) -> Vec<(&str, &str)> {
    prefix
        .match_indices('-')
        .map(|(i, _)| (&prefix[..i], &prefix[i + 1..]))
        .filter(|(project, env)| !project.is_empty() && !env.is_empty())
        .collect()
}

/// What runs in the sandbox: the client's command under bash (the login shell of
/// Platform.sh's app containers), or an interactive bash.
fn session_command(command: Option<&str>, tty: bool) -> String {
    match command {
        Some(command) => format!("exec bash -c {}", shell_quote(command)),
        None if tty => "exec bash -i".to_string(),
        None => "exec bash".to_string(),
    }
}

/// `git-upload-pack '/<project>.git'` or `git-receive-pack '…'` from the `git` login.
fn git_target(platform: &Platform, user: UserRow, command: Option<&str>) -> Result<Target, Error> {
    let usage = || {
        Error::Invalid(format!(
            "`{GIT_LOGIN}@` is for git: clone ssh://{GIT_LOGIN}@<host>:<port>/<project>.git"
        ))
    };
    let (program, path) = command.and_then(|c| c.split_once(' ')).ok_or_else(usage)?;
    let service = match program {
        "git-upload-pack" => "upload-pack",
        "git-receive-pack" => "receive-pack",
        _ => return Err(usage()),
    };
    let project = git_project(path)
        .ok_or_else(|| Error::NotFound(format!("no repository at {path}: use /<project>.git")))?;
    let access = access::project(platform, &user, &project)?;
    if service == "receive-pack" && !access.may_push_somewhere() {
        return Err(Error::Forbidden(format!(
            "pushing to project `{project}` needs the `contributor` role on an environment type; `{}` has none",
            user.name
        )));
    }
    Ok(Target::Git {
        service,
        project,
        user,
    })
}

/// The project of a git path: `'/shop.git'`, `'shop.git/'`, `'/shop'` (as git quotes
/// it); `None` for anything else.
fn git_project(path: &str) -> Option<String> {
    let path = path.strip_prefix('\'')?.strip_suffix('\'')?;
    let name = path.trim_start_matches('/').trim_end_matches('/');
    let name = name.strip_suffix(".git").unwrap_or(name);
    crate::names::valid_project_name(name).then(|| name.to_string())
}

async fn run_git(
    platform: &Platform,
    service: &str,
    project: &str,
    user: &UserRow,
    session: &Session,
    stdio: [OwnedFd; 3],
    gone: impl std::future::Future<Output = ()>,
) -> i32 {
    let [stdin, stdout, stderr] = stdio;
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg(service)
        .arg(platform.settings.repository(project).path())
        .env_clear()
        .env(
            "PATH",
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
        )
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .envs(crate::git_http::hook_env(platform, project, &user.name))
        .stdin(stdin)
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(true);
    if let Some(protocol) = session
        .git_protocol
        .as_deref()
        .filter(|p| p.starts_with("version="))
    {
        cmd.env("GIT_PROTOCOL", protocol);
    }
    tracing::info!(%project, user = %user.name, %service, "Git over SSH.");
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(error) => {
            tracing::error!(%error, "could not run git {service}");
            return 255;
        }
    };
    drop(cmd);
    tokio::pin!(gone);
    tokio::select! {
        status = child.wait() => status.ok().and_then(|s| s.code()).unwrap_or(255),
        () = &mut gone => {
            let _ = child.kill().await;
            255
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_split_into_every_project_and_environment() {
        assert_eq!(
            login_candidates("my-shop-feature-x"),
            vec![
                ("my", "shop-feature-x"),
                ("my-shop", "feature-x"),
                ("my-shop-feature", "x")
            ]
        );
        assert!(login_candidates("shop").is_empty());
        assert!(login_candidates("-shop").is_empty());
    }

    #[test]
    fn git_paths_name_a_project_or_nothing() {
        for (path, expected) in [
            ("'/shop.git'", Some("shop")),
            ("'shop.git/'", Some("shop")),
            ("'/my-shop'", Some("my-shop")),
            ("'/../../etc.git'", None),
            ("'/a/b.git'", None),
            ("/shop.git", None),
            ("'/shop.git'; rm -rf /'", None),
            ("''", None),
        ] {
            assert_eq!(git_project(path).as_deref(), expected, "{path}");
        }
    }

    #[test]
    fn sshd_takes_only_keys_through_the_gate_and_paths_it_cannot_misread() {
        let listen = SocketAddr::from(([127, 0, 0, 1], 2222));
        let config = sshd_config(
            listen,
            Path::new("/data/ssh/host_ed25519_key"),
            Path::new("/usr/bin/grove"),
            Path::new("/data/ssh/gate.sock"),
        )
        .expect("config");
        for line in [
            "ListenAddress 127.0.0.1:2222",
            "AuthorizedKeysFile none",
            "AuthorizedKeysCommand /usr/bin/grove ssh-gate keys /data/ssh/gate.sock %u %t %k",
            "PasswordAuthentication no",
            "PermitRootLogin forced-commands-only",
            "AllowTcpForwarding no",
            "PermitUserEnvironment no",
        ] {
            assert!(config.lines().any(|l| l == line), "{line}\n{config}");
        }
        for bad in [
            "/my data/gate.sock",
            "/data/%u.sock",
            "relative.sock",
            "/a\"b",
        ] {
            assert!(
                sshd_config(listen, Path::new("/k"), Path::new("/g"), Path::new(bad)).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn logins_are_plain_names() {
        assert!(valid_login("shop-main--web"));
        for bad in ["", "-o", "a:b", "a b", "a\nb", "a/b", "é"] {
            assert!(!valid_login(bad), "{bad:?}");
        }
    }

    #[test]
    fn commands_are_an_argument_of_bash_never_spliced() {
        assert_eq!(
            session_command(Some("echo $PLATFORM_BRANCH; ls '/app'"), false),
            "exec bash -c 'echo $PLATFORM_BRANCH; ls '\\''/app'\\'''"
        );
        assert_eq!(session_command(None, true), "exec bash -i");
    }
}
