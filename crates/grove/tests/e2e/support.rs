//! Test support: a real `grove server` on free loopback ports in a temp dir, the real
//! `git` client and `curl`. Everything started here is stopped by PID on drop.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const GROVE: &str = env!("CARGO_BIN_EXE_grove");

pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

pub struct Server {
    pub dir: tempfile::TempDir,
    pub api_port: u16,
    pub http_port: u16,
    child: Option<Child>,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Starts a server with extra environment variables (`GROVE_STORAGE`,
    /// `GROVE_IMAGES_DIR`, ...).
    pub fn start_with(env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = Server {
            dir,
            api_port: 0,
            http_port: 0,
            child: None,
        };
        // Tests run in parallel processes, each choosing free ports: another server
        // may take one between the choice and the bind. Then this one exits (its
        // bind failed) and starts again on other ports.
        for _ in 0..5 {
            server.api_port = free_port();
            server.http_port = free_port();
            server.spawn_process(env);
            if server.answers_as_itself() {
                return server;
            }
            server.crash();
        }
        panic!("grove server did not start: {}", server.log_tail());
    }

    /// Whether the API port is this server's: its process still runs and the port
    /// answers as an API (401 without a token), not as another server's router.
    fn answers_as_itself(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let exited = self
                .child
                .as_mut()
                .is_none_or(|child| child.try_wait().ok().flatten().is_some());
            if exited {
                return false;
            }
            if http_status(self.api_port, "/api/projects") == Some(401) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        false
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts (or restarts) the server process on the same data dir and ports.
    pub fn spawn(&mut self) {
        self.spawn_with(&[]);
    }

    /// Waits until the server process ends by itself (a failpoint killed it).
    pub fn wait_exit(&mut self, timeout: Duration) {
        if let Some(child) = self.child.take() {
            assert!(
                exited_within(child, timeout),
                "grove server did not stop at its failpoint within {timeout:?}"
            );
        }
    }

    /// Starts the server process with extra environment variables, without waiting.
    fn spawn_process(&mut self, env: &[(&str, &str)]) {
        assert!(self.child.is_none(), "server already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("server log");
        let child = Command::new(GROVE)
            .arg("server")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--api-listen")
            .arg(format!("127.0.0.1:{}", self.api_port))
            .arg("--http-listen")
            .arg(format!("127.0.0.1:{}", self.http_port))
            .arg("--app-start-timeout")
            .arg("5")
            .env("GROVE_LOG", "info,grove_server=debug")
            // No automatic backups unless a test asks for them: they would add
            // activities (and, on plain storage, service pauses) to every test.
            .env("GROVE_AUTOMATIC_BACKUPS_EVERY", "0")
            // No SSH gateway unless a test asks for one (on a port of its own).
            .env("GROVE_SSH_LISTEN", "off")
            .envs(env.iter().copied())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start grove server");
        self.child = Some(child);
    }

    /// Starts the server process with extra environment variables.
    pub fn spawn_with(&mut self, env: &[(&str, &str)]) {
        self.spawn_process(env);
        wait_for_port(self.api_port);
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGTERM and wait: the graceful path.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            signal(child.id(), "TERM");
            assert!(
                exited_within(child, Duration::from_secs(20)),
                "grove server did not stop within 20s of SIGTERM"
            );
        }
    }

    /// SIGKILL: a crash.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("admin-token"))
            .expect("admin token file")
            .trim()
            .to_string()
    }

    pub fn git_url(&self, project: &str) -> String {
        format!(
            "http://git:{}@127.0.0.1:{}/{project}.git",
            self.token(),
            self.api_port
        )
    }

    /// A CLI command against this server, to run.
    pub fn cli_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(GROVE);
        command
            .args(args)
            .env("GROVE_URL", format!("http://127.0.0.1:{}", self.api_port))
            .env("GROVE_TOKEN", self.token())
            .env_remove("GROVE_PROJECT")
            // Destructive commands ask first; tests answer for them.
            .env("GROVE_NO_INTERACTION", "1")
            // Outside any checkout: no project or branch is inferred from one.
            .current_dir(self.dir.path());
        command
    }

    /// Runs a CLI command against this server.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_command(args).output().expect("run grove")
    }

    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "grove {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// Whether the process ends within `timeout`; it is killed if not.
fn exited_within(mut child: Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

/// The status of a GET on loopback, if anything answered.
fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("nothing listens on 127.0.0.1:{port} after 30s");
}

/// A git work tree with the example app, on branch `main`.
pub struct Work {
    pub dir: tempfile::TempDir,
}

impl Work {
    pub fn example() -> Work {
        let dir = tempfile::tempdir().expect("tempdir");
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/python-app");
        for entry in std::fs::read_dir(&example).expect("example app") {
            let entry = entry.expect("entry");
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy");
        }
        let work = Work { dir };
        work.git(&["init", "-q", "-b", "main"]);
        work.commit("example app");
        work
    }

    /// A work tree with the fixture app `tests/e2e/fixtures/<name>`, committed.
    pub fn fixture(name: &str) -> Work {
        let dir = tempfile::tempdir().expect("tempdir");
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        copy_tree(&manifest.join("tests/e2e/fixtures").join(name), dir.path());
        let work = Work { dir };
        work.git(&["init", "-q", "-b", "main"]);
        work.commit(name);
        work
    }

    /// A work tree with the services fixture app and the official `platformshconfig`
    /// library copied in (installed by scripts/test.sh into target/python).
    pub fn services_app() -> Work {
        let dir = tempfile::tempdir().expect("tempdir");
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        copy_tree(
            &manifest.join("tests/e2e/fixtures/services-app"),
            dir.path(),
        );
        let python = std::env::var("GROVE_PYTHONPATH")
            .map(PathBuf::from)
            .unwrap_or_else(|_| manifest.join("../../target/python"));
        let library = python.join("platformshconfig");
        assert!(
            library.is_dir(),
            "platformshconfig is not installed at {}: run `python3 -m pip install --break-system-packages \
             --target target/python platformshconfig` (scripts/test.sh does)",
            library.display()
        );
        copy_tree(&library, &dir.path().join("platformshconfig"));
        let work = Work { dir };
        work.git(&["init", "-q", "-b", "main"]);
        work.commit("services app");
        work
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, path: &str, contents: &str) {
        let full = self.dir.path().join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(full, contents).expect("write");
    }

    pub fn commit(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
    }

    pub fn git(&self, args: &[&str]) -> Output {
        let out = self.git_raw(args);
        assert!(out.status.success(), "git {args:?}: {out:?}");
        out
    }

    pub fn git_raw(&self, args: &[&str]) -> Output {
        Command::new("git")
            .current_dir(self.dir.path())
            .args(args)
            .env("GIT_AUTHOR_NAME", "Test")
            .env("GIT_AUTHOR_EMAIL", "test@example.com")
            .env("GIT_COMMITTER_NAME", "Test")
            .env("GIT_COMMITTER_EMAIL", "test@example.com")
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(Stdio::null())
            .output()
            .expect("git runs")
    }

    /// `git push` with extra arguments; returns (success, combined output).
    pub fn push(&self, url: &str, args: &[&str]) -> (bool, String) {
        let mut all = vec!["push", url];
        all.extend_from_slice(args);
        let out = self.git_raw(&all);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            if entry.file_name() != "__pycache__" {
                copy_tree(&entry.path(), &target);
            }
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// GET a URL with curl, as a user would; returns (HTTP status, body).
/// GET with curl; (status, lower-cased response head, body).
pub fn get(url: &str) -> (u16, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-D", "-", url])
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_owned())
}

pub fn curl(url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-w", "\n%{http_code}", url])
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

pub fn curl_json(url: &str) -> serde_json::Value {
    let (status, body) = curl(url);
    assert_eq!(status, 200, "GET {url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {body}"))
}

/// Every process below `pid`, found through /proc.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            // The ppid is the second field after the parenthesised command name.
            if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r)
                && let Some(ppid) = rest.split_whitespace().nth(1).and_then(|v| v.parse().ok())
            {
                parents.push((p, ppid));
            }
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}
