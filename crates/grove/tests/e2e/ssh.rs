//! The SSH gateway with the stock OpenSSH client: keys, commands and shells in an
//! environment's app sandbox, its MariaDB through the relationship, git over SSH,
//! roles, concurrent sessions, and sessions ending with their client.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::access::{add_user, cli_as, text};
use crate::support::{GROVE, Server, Work, descendants, free_port};

/// A server with its SSH gateway on a free port, and project `shop`.
struct Gateway {
    server: Server,
    port: u16,
    keys: tempfile::TempDir,
}

impl Gateway {
    fn start() -> Gateway {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let server = Server::start_with(&[("GROVE_SSH_LISTEN", &listen)]);
        server.cli_ok(&["project:create", "shop"]);
        Gateway {
            server,
            port,
            keys: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// A new ed25519 key pair; the private key's path.
    fn key(&self, name: &str) -> PathBuf {
        let path = self.keys.path().join(name);
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&path)
            .output()
            .expect("ssh-keygen");
        assert!(out.status.success(), "{out:?}");
        path
    }

    /// The stock client's options: this key only, no known_hosts, no agent.
    fn ssh_options(&self, key: &Path) -> Vec<String> {
        [
            "-i",
            &key.display().to_string(),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "BatchMode=yes",
            "-p",
            &self.port.to_string(),
        ]
        .map(String::from)
        .to_vec()
    }

    fn ssh_command(&self, key: &Path, login: &str, extra: &[&str]) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(self.ssh_options(key))
            .args(extra)
            .arg(format!("{login}@127.0.0.1"))
            .stdin(Stdio::null());
        cmd
    }

    /// `ssh login@127.0.0.1 -- command`.
    fn ssh(&self, key: &Path, login: &str, command: &str) -> Output {
        self.ssh_command(key, login, &[])
            .arg("--")
            .arg(command)
            .output()
            .expect("ssh runs")
    }

    /// `GIT_SSH_COMMAND` for this key.
    fn git_ssh(&self, key: &Path) -> String {
        format!("ssh {}", self.ssh_options(key).join(" "))
    }

    /// The CLI as the user of `token`, its ssh using `key`.
    fn grove_as(&self, token: &str, key: &Path, args: &[&str]) -> Output {
        let options = self.ssh_options(key);
        // Without `-p PORT`: the CLI adds the gateway's.
        let ssh = format!("ssh {}", options[..options.len() - 2].join(" "));
        Command::new(GROVE)
            .args(args)
            .env(
                "GROVE_URL",
                format!("http://127.0.0.1:{}", self.server.api_port),
            )
            .env("GROVE_TOKEN", token)
            .env("GROVE_SSH_COMMAND", ssh)
            .env_remove("GROVE_PROJECT")
            .stdin(Stdio::null())
            .output()
            .expect("grove runs")
    }

    fn git_url(&self) -> String {
        format!("ssh://git@127.0.0.1:{}/shop.git", self.port)
    }

    /// git in `dir` over SSH with `key`; (success, stdout and stderr).
    fn git(&self, key: &Path, dir: &Path, args: &[&str]) -> (bool, String) {
        let out = Command::new("git")
            .current_dir(dir)
            .args(args)
            .env("GIT_SSH_COMMAND", self.git_ssh(key))
            .env("GIT_AUTHOR_NAME", "Test")
            .env("GIT_AUTHOR_EMAIL", "test@example.com")
            .env("GIT_COMMITTER_NAME", "Test")
            .env("GIT_COMMITTER_EMAIL", "test@example.com")
            .stdin(Stdio::null())
            .output()
            .expect("git runs");
        (out.status.success(), text(&out))
    }
}

/// Runs SQL against the `database` relationship (read from `PLATFORM_RELATIONSHIPS`,
/// as an app would), printing rows without headers.
const DB_SCRIPT: &str = r#"set -e
eval "$(echo "$PLATFORM_RELATIONSHIPS" | base64 -d | python3 -c '
import json, shlex, sys
r = json.load(sys.stdin)["database"][0]
for var, key in (("H", "host"), ("P", "port"), ("U", "username"), ("W", "password"), ("D", "path")):
    print("%s=%s" % (var, shlex.quote(str(r[key]))))
')"
mariadb -h "$H" -P "$P" -u "$U" -p"$W" "$D" -N -e "$1"
"#;

/// The example app with a MariaDB service whose deploy hook writes a row, and an
/// `.environment` file.
fn app_with_database() -> Work {
    let work = Work::example();
    work.write("db.sh", DB_SCRIPT);
    work.write(
        ".environment",
        "export FROM_ENVIRONMENT_FILE=\"sourced on $PLATFORM_BRANCH\"\n",
    );
    work.write(
        ".platform/services.yaml",
        "db:\n  type: mariadb:10.11\n  disk: 256\n",
    );
    let config = std::fs::read_to_string(work.path().join(".platform.app.yaml")).expect("config");
    let config = config.replace(
        "hooks:\n",
        "hooks:\n  deploy: |\n    sh db.sh \"CREATE TABLE IF NOT EXISTS notes (v TEXT); INSERT INTO notes VALUES ('written by the deploy hook')\"\n",
    );
    work.write(
        ".platform.app.yaml",
        &format!("{config}\nrelationships:\n  database: \"db:mysql\"\n"),
    );
    work.commit("a database");
    work
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn ssh_sessions_run_in_the_app_sandbox_and_git_over_ssh_deploys() {
    let gw = Gateway::start();
    let server = &gw.server;

    // Keys: added from a .pub file, listed with ssh-keygen's fingerprint; weak or
    // malformed keys refused with the reason.
    let key = gw.key("dev");
    let pub_file = format!("{}.pub", key.display());
    let added = server.cli_ok(&["ssh-key:add", &pub_file]);
    assert!(added.contains("ssh-ed25519"), "{added}");
    let fingerprint = String::from_utf8_lossy(
        &Command::new("ssh-keygen")
            .args(["-l", "-f", &pub_file])
            .output()
            .expect("ssh-keygen -l")
            .stdout,
    )
    .split_whitespace()
    .nth(1)
    .expect("fingerprint")
    .to_string();
    let listed = server.cli_ok(&["ssh-key:list"]);
    assert!(listed.contains(&fingerprint), "{listed}\n{fingerprint}");
    let weak = gw.keys.path().join("weak");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "1024", "-N", "", "-f"])
        .arg(&weak)
        .output()
        .expect("ssh-keygen");
    assert!(out.status.success(), "{out:?}");
    let refused = server.cli(&["ssh-key:add", &format!("{}.pub", weak.display())]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("RSA keys need at least 2048 bits; this one has 1024"),
        "{}",
        text(&refused)
    );
    let refused = server.cli(&["ssh-key:add", &key.display().to_string()]);
    assert!(
        text(&refused).contains("a private key"),
        "{}",
        text(&refused)
    );
    let again = server.cli(&["ssh-key:add", &pub_file]);
    assert!(!again.status.success(), "a key belongs to one user only");

    // The first push, over SSH: the deploy log streams back, the push succeeds.
    let work = app_with_database();
    let (ok, out) = gw.git(&key, work.path(), &["push", &gw.git_url(), "main"]);
    assert!(ok, "{out}\n{}", server.log());
    assert!(
        out.contains("remote: ") && out.contains("Building on tree"),
        "{out}"
    );

    // A command in the app's sandbox: runtime variables, read-only /app, status back.
    let out = gw.ssh(
        &key,
        "shop-main--app",
        "echo branch=$PLATFORM_BRANCH; echo $FROM_ENVIRONMENT_FILE; ls /app; touch /app/x",
    );
    let (so, se) = (stdout(&out), String::from_utf8_lossy(&out.stderr));
    assert!(so.contains("branch=main"), "{so}\n{se}");
    assert!(
        so.contains("sourced on main"),
        ".environment is sourced: {so}"
    );
    assert!(so.contains("server.py") && so.contains("db.sh"), "{so}");
    assert!(se.contains("Read-only file system"), "{se}");
    assert_eq!(
        out.status.code(),
        Some(1),
        "touch failed, and so did the session"
    );
    // The default app, and the mount is writable.
    let out = gw.ssh(
        &key,
        "shop-main",
        "echo hi > /app/var/note && cat /app/var/note; exit 7",
    );
    assert_eq!(stdout(&out), "hi\n", "{out:?}");
    assert_eq!(out.status.code(), Some(7));
    // The relationship's MariaDB, with the row the deploy hook wrote.
    let out = gw.ssh(&key, "shop-main--app", "sh db.sh 'SELECT v FROM notes'");
    assert!(
        stdout(&out).contains("written by the deploy hook"),
        "{out:?}"
    );
    // No such environment or app: sshd knows no such login.
    let out = gw.ssh(&key, "shop-nope", "true");
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{out:?}"
    );
    let out = gw.ssh(&key, "shop-main--other", "true");
    assert_eq!(out.status.code(), Some(255), "{out:?}");

    // An interactive shell on a terminal.
    let mut shell = gw
        .ssh_command(&key, "shop-main--app", &["-tt"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ssh -tt");
    shell
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"test -t 0 && echo on-a-terminal-$PLATFORM_BRANCH\nexit 3\n")
        .expect("type");
    let out = shell.wait_with_output().expect("shell ends");
    assert!(stdout(&out).contains("on-a-terminal-main"), "{out:?}");
    assert!(
        stdout(&out).contains("This is environment main of project shop, app app."),
        "{out:?}"
    );
    assert!(
        stdout(&out).contains("@shop-main--app:"),
        "the prompt: {out:?}"
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");

    // `grove ssh` builds the same command; `environment:relationships` reads the
    // decoded relationships through it.
    let token = server.token();
    let out = gw.grove_as(
        &token,
        &key,
        &[
            "ssh",
            "-p",
            "shop",
            "-e",
            "main",
            "--",
            "echo",
            "via-cli-$PLATFORM_PROJECT",
        ],
    );
    assert_eq!(stdout(&out), "via-cli-shop\n", "{out:?}");
    let relationships_of_main = "environment:relationships -p shop -e main --format json";
    let args: Vec<&str> = relationships_of_main.split(' ').collect();
    let out = gw.grove_as(&token, &key, &args);
    let relationships: serde_json::Value =
        serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(
        relationships["database"][0]["port"], 3306,
        "{relationships}"
    );
    assert_eq!(
        relationships["database"][0]["scheme"], "mysql",
        "{relationships}"
    );

    let out = gw.grove_as(
        &token,
        &key,
        &[
            "mount:list",
            "-p",
            "shop",
            "-e",
            "main",
            "--format",
            "tsv",
            "--no-header",
        ],
    );
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.trim_start_matches('/').starts_with("var\tlocal")),
        "{out:?}"
    );

    let routes = server.cli_ok(&["route:list", "-p", "shop", "-e", "main"]);
    assert!(
        routes.contains("http://main.shop.localhost:") && routes.contains("true"),
        "{routes}"
    );

    // scp (over sftp, OpenSSH's default) into a mount, run in the sandbox too.
    let local = gw.keys.path().join("upload.txt");
    std::fs::write(&local, "copied with scp\n").expect("write");
    let options = gw.ssh_options(&key);
    let out = Command::new("scp")
        .args(&options[..options.len() - 2])
        .args(["-P", &gw.port.to_string()])
        .arg(&local)
        .arg("shop-main--app@127.0.0.1:/app/var/upload.txt")
        .stdin(Stdio::null())
        .output()
        .expect("scp");
    assert!(out.status.success(), "{out:?}");
    let out = gw.ssh(&key, "shop-main--app", "cat /app/var/upload.txt");
    assert_eq!(stdout(&out), "copied with scp\n", "{out:?}");

    // Clone over SSH, push a change over SSH: it deploys.
    let clone = tempfile::tempdir().expect("tempdir");
    let (ok, out) = gw.git(
        &key,
        clone.path(),
        &["clone", "-q", &gw.git_url(), "checkout"],
    );
    assert!(ok, "{out}");
    let checkout = clone.path().join("checkout");
    std::fs::write(checkout.join("NEWS"), "pushed over ssh\n").expect("write");
    assert!(gw.git(&key, &checkout, &["add", "NEWS"]).0);
    assert!(gw.git(&key, &checkout, &["commit", "-q", "-m", "news"]).0);
    let (ok, out) = gw.git(&key, &checkout, &["push", "origin", "main"]);
    assert!(ok, "{out}");
    assert!(out.contains("remote: "), "{out}");
    let out = gw.ssh(&key, "shop-main--app", "cat /app/NEWS");
    assert_eq!(stdout(&out), "pushed over ssh\n", "{out:?}");
    // Push options over SSH: a new environment, activated, reachable by its login.
    let (ok, out) = gw.git(
        &key,
        &checkout,
        &[
            "push",
            "-o",
            "environment.activate",
            "origin",
            "main:feature-x",
        ],
    );
    assert!(ok, "{out}");
    let out = gw.ssh(
        &key,
        "shop-feature-x--app",
        "echo $PLATFORM_BRANCH; cat /app/NEWS",
    );
    assert_eq!(stdout(&out), "feature-x\npushed over ssh\n", "{out:?}");

    // A deleted key stops working at once.
    let keys: serde_json::Value =
        serde_json::from_str(&server.cli_ok(&["ssh-key:list", "--format", "json"])).expect("json");
    let id = keys[0]["id"].to_string();
    server.cli_ok(&["ssh-key:delete", &id]);
    let out = gw.ssh(&key, "shop-main--app", "true");
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{out:?}"
    );
}

#[test]
fn ssh_needs_the_contributor_role_and_git_over_ssh_the_rules_of_http() {
    let gw = Gateway::start();
    let server = &gw.server;
    let work = Work::example();
    assert!(work.push(&server.git_url("shop"), &["main"]).0);
    server.cli_ok(&["project:create", "other"]);

    let users = [
        ("viewer@example.com", "shop", "production:viewer"),
        ("dev@example.com", "shop", "production:contributor"),
        ("stranger@example.com", "other", "admin"),
    ];
    let (mut keys, mut tokens) = (Vec::new(), Vec::new());
    for (email, project, role) in users {
        let token = add_user(server, project, email, &[role]);
        let key = gw.key(email);
        let out = cli_as(
            server,
            &token,
            &["ssh-key:add", &format!("{}.pub", key.display())],
        );
        assert!(out.status.success(), "{}", text(&out));
        keys.push(key);
        tokens.push(token);
    }
    let [viewer, contributor, stranger] = [&keys[0], &keys[1], &keys[2]];

    // Sessions: the contributor only; a project the user has no role in does not exist.
    let out = gw.ssh(contributor, "shop-main--app", "echo $PLATFORM_BRANCH");
    assert_eq!(stdout(&out), "main\n", "{out:?}");
    let out = gw.ssh(viewer, "shop-main--app", "echo $PLATFORM_BRANCH");
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs the `contributor` role"),
        "{out:?}"
    );
    let out = gw.ssh(stranger, "shop-main--app", "echo $PLATFORM_BRANCH");
    assert!(stdout(&out).is_empty(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no environment `shop-main--app`"),
        "{out:?}"
    );

    // Git: the viewer clones and cannot push; the stranger cannot even clone.
    let dir = tempfile::tempdir().expect("tempdir");
    let (ok, out) = gw.git(viewer, dir.path(), &["clone", "-q", &gw.git_url(), "v"]);
    assert!(ok, "{out}");
    let checkout = dir.path().join("v");
    std::fs::write(checkout.join("NEWS"), "from a viewer\n").expect("write");
    assert!(gw.git(viewer, &checkout, &["add", "NEWS"]).0);
    assert!(gw.git(viewer, &checkout, &["commit", "-q", "-m", "news"]).0);
    let (ok, out) = gw.git(viewer, &checkout, &["push", "origin", "main"]);
    assert!(!ok, "{out}");
    assert!(out.contains("needs the `contributor` role"), "{out}");
    let (ok, out) = gw.git(stranger, dir.path(), &["clone", "-q", &gw.git_url(), "s"]);
    assert!(!ok, "{out}");
    assert!(out.contains("no project `shop`"), "{out}");
    // The contributor's push of the same commit deploys.
    let (ok, out) = gw.git(contributor, &checkout, &["push", &gw.git_url(), "main"]);
    assert!(ok, "{out}");
    let out = gw.ssh(contributor, "shop-main--app", "cat /app/NEWS");
    assert_eq!(stdout(&out), "from a viewer\n", "{out:?}");

    // Mounts: an upload then a download round-trip a tree byte for byte; the viewer's
    // upload is refused.
    let tree = tempfile::tempdir().expect("tempdir");
    let bytes: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    std::fs::create_dir_all(tree.path().join("sub/deeper")).expect("mkdir");
    std::fs::write(tree.path().join("a.txt"), "one\n").expect("write");
    std::fs::write(tree.path().join("sub/b.bin"), &bytes).expect("write");
    std::fs::write(tree.path().join("sub/deeper/c d.txt"), "with a space\n").expect("write");
    let source = tree.path().display().to_string();
    let back = tempfile::tempdir().expect("tempdir");
    let copy = back.path().join("copy").display().to_string();
    let mount = |verb: &str, flag: &str, dir: &str| -> Vec<String> {
        [
            verb, "-p", "shop", "-e", "main", "--mount", "var", flag, dir,
        ]
        .map(String::from)
        .to_vec()
    };
    let upload = mount("mount:upload", "--source", &source);
    let upload: Vec<&str> = upload.iter().map(String::as_str).collect();
    let out = gw.grove_as(&tokens[1], contributor, &upload);
    assert!(out.status.success(), "{}", text(&out));
    let download = mount("mount:download", "--target", &copy);
    let download: Vec<&str> = download.iter().map(String::as_str).collect();
    let out = gw.grove_as(&tokens[1], contributor, &download);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(files(tree.path()), files(&back.path().join("copy")));
    let out = gw.grove_as(&tokens[0], viewer, &upload);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("needs the `contributor` role"),
        "{}",
        text(&out)
    );

    // Neither a host user nor the git login opens a shell.
    let out = gw.ssh(contributor, "root", "id");
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    let out = gw.ssh(contributor, "git", "id");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is for git"),
        "{out:?}"
    );
}

/// What a child writes to stdout, chunk by chunk, read on a thread of its own.
struct TerminalOutput {
    chunks: std::sync::mpsc::Receiver<Vec<u8>>,
    seen: String,
}

impl TerminalOutput {
    fn of(child: &mut Child) -> TerminalOutput {
        let mut stdout = child.stdout.take().expect("piped stdout");
        let (tx, chunks) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut stdout, &mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        TerminalOutput {
            chunks,
            seen: String::new(),
        }
    }

    /// Waits until the output (since the last call) contains `needle`.
    fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.seen.contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(chunk) => self.seen.push_str(&String::from_utf8_lossy(&chunk)),
                Err(_) => panic!("`{needle}` never came; the output was:\n{}", self.seen),
            }
        }
        self.seen.clear();
    }
}

/// Every file below `root` with its contents, by relative path.
fn files(root: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut found = std::collections::BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let path = entry.path();
            if entry.file_type().expect("type").is_dir() {
                dirs.push(path);
            } else {
                let relative = path.strip_prefix(root).expect("below root").to_path_buf();
                found.insert(relative, std::fs::read(&path).expect("read"));
            }
        }
    }
    found
}

/// The processes below the server whose command line is `marker`.
fn sandboxed(server: &Server, marker: &str) -> Vec<u32> {
    descendants(server.pid())
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim() == marker)
                .unwrap_or(false)
        })
        .collect()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ssh_sessions_run_concurrently_end_with_their_client_and_survive_a_restart() {
    let mut gw = Gateway::start();
    let server = &gw.server;
    let key = gw.key("dev");
    server.cli_ok(&["ssh-key:add", &format!("{}.pub", key.display())]);
    assert!(Work::example().push(&server.git_url("shop"), &["main"]).0);

    // Ten sessions at once, each seeing the environment.
    let sessions: Vec<Child> = (0..10)
        .map(|i| {
            gw.ssh_command(&key, "shop-main--app", &[])
                .arg("--")
                .arg(format!("sleep 1; echo session-{i}-$PLATFORM_BRANCH"))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("ssh")
        })
        .collect();
    for (i, session) in sessions.into_iter().enumerate() {
        let out = session.wait_with_output().expect("session ends");
        assert_eq!(stdout(&out), format!("session-{i}-main\n"), "{out:?}");
        assert!(out.status.success());
    }

    // On a terminal, Ctrl-C interrupts the foreground command, not the shell.
    let mut shell = gw
        .ssh_command(&key, "shop-main--app", &["-tt"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ssh -tt");
    let mut output = TerminalOutput::of(&mut shell);
    let mut input = shell.stdin.take().expect("stdin");
    // `$((40+2))`: the echo of the typed line does not contain what it prints. The
    // foreground job prints it itself, so Ctrl-C comes once it runs.
    input
        .write_all(b"bash -c 'echo sleeping-$((40+2)); exec sleep 1000'\n")
        .expect("type");
    output.wait_for("sleeping-42");
    input.write_all(b"\x03").expect("Ctrl-C");
    // The shell is still there, and saw its job killed by SIGINT.
    input.write_all(b"echo status-$?-after\n").expect("type");
    output.wait_for("status-130-after");
    input.write_all(b"exit 4\n").expect("type");
    assert_eq!(shell.wait().expect("shell ends").code(), Some(4));

    // Closing the client (killed: no goodbye) ends what its session runs, with and
    // without a terminal.
    for (marker, extra) in [("31337", &[][..]), ("31338", &["-tt"][..])] {
        let mut client = gw
            .ssh_command(&key, "shop-main--app", extra)
            .arg("--")
            .arg(format!("echo started; sleep {marker}; echo never"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh");
        let mut first = [0u8; 7];
        std::io::Read::read_exact(client.stdout.as_mut().expect("stdout"), &mut first)
            .expect("the session started");
        assert_eq!(&first, b"started");
        let sleeping = format!("sleep {marker}");
        // `started` comes just before the shell starts the sleep.
        wait_until(&format!("`{sleeping}` never ran"), || {
            sandboxed(server, &sleeping).len() == 1
        });
        client.kill().expect("kill the client");
        let _ = client.wait();
        wait_until(&format!("`{sleeping}` outlived its client"), || {
            sandboxed(server, &sleeping).is_empty()
        });
    }
    // After a restart, the same host key and logins: the environment's login works
    // again once it is restored.
    let host_key =
        std::fs::read(gw.server.data_dir().join("ssh/host_ed25519_key.pub")).expect("host key");
    gw.server.stop();
    let listen = format!("127.0.0.1:{}", gw.port);
    gw.server.spawn_with(&[("GROVE_SSH_LISTEN", &listen)]);
    wait_until("the environment's login never worked again", || {
        stdout(&gw.ssh(&key, "shop-main--app", "echo $PLATFORM_BRANCH")) == "main\n"
    });
    let again =
        std::fs::read(gw.server.data_dir().join("ssh/host_ed25519_key.pub")).expect("host key");
    assert_eq!(host_key, again, "the host key is kept");
}
