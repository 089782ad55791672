//! `cargo xtask bench backup [MIB [RUNS]]`: a consistent `backup:create` (its pause and
//! its time) and a `backup:restore` of an environment holding MIB MiB of MariaDB data
//! (default 1024, or `GROVE_BENCH_BACKUP_MIB`), on btrfs, against the baseline in the
//! same process: `mariadb-dump --single-transaction` of the same data (`db:dump`, the
//! tool run in the service's sandbox) and its import into a scratch MariaDB started
//! here. Times are medians of RUNS (default 3); nothing is asserted.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};

use super::{
    BenchServer, Guard, MARIADB_APP, debug_grove, detach_pool, median, push_new_repository,
    seconds_after, target_dir, wait_for_200,
};

/// An app with a MariaDB relationship that fills it with incompressible rows.
const APP: &str = r#"
import base64, json, os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import pymysql

def db():
    r = json.loads(base64.b64decode(os.environ["PLATFORM_RELATIONSHIPS"]))["database"][0]
    return pymysql.connect(host=r["host"], port=r["port"], user=r["username"],
                           password=r["password"], database=r["path"], autocommit=True)

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            conn = db()
            with conn.cursor() as c:
                c.execute("CREATE TABLE IF NOT EXISTS filler "
                          "(id INT AUTO_INCREMENT PRIMARY KEY, data LONGBLOB) ENGINE=InnoDB")
                if self.path.startswith("/fill/"):
                    for _ in range(int(self.path[len("/fill/"):])):
                        c.execute("INSERT INTO filler (data) VALUES (%s)", (os.urandom(1 << 20),))
                c.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(data)), 0) FROM filler")
                rows, size = c.fetchone()
            conn.close()
            body, status = json.dumps({"rows": rows, "bytes": int(size)}).encode(), 200
        except Exception as e:
            body, status = f"ERROR {type(e).__name__}: {e}".encode(), 500
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
"#;

pub fn bench_backup(mib: Option<u32>, runs: usize) -> anyhow::Result<()> {
    let mib = match mib {
        Some(mib) => mib,
        None => std::env::var("GROVE_BENCH_BACKUP_MIB")
            .ok()
            .map(|v| v.parse())
            .transpose()?
            .unwrap_or(1024),
    };
    // The heavy work is restic's, btrfs's and MariaDB's: a debug grove (its
    // dependencies optimised) is as good here, and much quicker to build.
    let grove = debug_grove()?;
    // The pool image lives beside the build: /tmp may be small.
    let tmp = target_dir().join(format!("bench-backup-{}", std::process::id()));
    let pool = format!("btrfs-loop:{}G", 4 + 4 * mib.div_ceil(1024));
    let mut server = BenchServer::start_with(
        grove,
        tmp.clone(),
        &["--storage", &pool, "--automatic-backups-every", "0"],
    )?;
    let result = backup_runs(&server, mib, runs);
    server.stop();
    detach_pool(&tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn backup_runs(server: &BenchServer, mib: u32, runs: usize) -> anyhow::Result<()> {
    let cli = |args: &[&str]| server.cli(args);
    let work = server.dir.join("work");
    std::fs::create_dir_all(work.join(".platform"))?;
    std::fs::write(work.join("app.py"), APP)?;
    std::fs::write(work.join(".platform.app.yaml"), MARIADB_APP)?;
    std::fs::write(
        work.join(".platform/services.yaml"),
        // XL: the memory of a production database (a small one ran out while filled).
        format!(
            "db:\n  type: mariadb:10.11\n  disk: {}\n  size: XL\n",
            2048 + 2 * mib
        ),
    )?;
    push_new_repository(&work, &server.git_url(), "backup bench")?;
    let url = server.url("main")?;
    wait_for_200(&url)?;
    let started = Instant::now();
    let mut left = mib;
    while left > 0 {
        // Small requests: each well within the router's and the app's time limits.
        let chunk = left.min(16);
        curl(&format!("{url}fill/{chunk}"))?;
        left -= chunk;
    }
    let filled = curl(&url)?;
    println!(
        "filled MariaDB with {mib} MiB in {:.1}s: {filled}",
        started.elapsed().as_secs_f64()
    );

    let env = ["-p", "bench", "-e", "main"];
    let (mut pauses, mut backups, mut restores) = (Vec::new(), Vec::new(), Vec::new());
    let (mut dumps, mut imports) = (Vec::new(), Vec::new());
    let scratch = ScratchMariaDb::start(&server.dir.join("scratch-mariadb"))?;
    for run in 0..runs {
        // Backup: the first uploads everything, later ones what changed (restic's
        // parent snapshot); a few new rows each time so there is something.
        curl(&format!("{url}fill/1"))?;
        let started = Instant::now();
        let (_, log) = cli(&[&["backup:create"], &env[..]].concat())?;
        let backup = started.elapsed().as_secs_f64();
        let pause = seconds_after(&log, "was paused for ")?;
        let (out, _) = cli(&[&["backup:list", "--format", "json"], &env[..]].concat())?;
        // The newest comes first: its `"id": "…"`.
        let id = out
            .split("\"id\"")
            .nth(1)
            .and_then(|rest| rest.split('"').nth(1))
            .with_context(|| format!("no backup in backup:list: {out}"))?
            .to_string();
        let started = Instant::now();
        cli(&["backup:restore", &id, "-p", "bench", "--no-code"])?;
        let restore = started.elapsed().as_secs_f64();
        // Baseline: the same data dumped by mariadb-dump, and imported.
        let dump = server.dir.join("dump.sql");
        let started = Instant::now();
        cli(&[
            &["db:dump", "--file", dump.to_str().context("utf-8 path")?],
            &env[..],
        ]
        .concat())?;
        let dumped = started.elapsed().as_secs_f64();
        let imported = scratch.import(&dump)?;
        let _ = std::fs::remove_file(&dump);
        println!(
            "run {}: backup {backup:.3}s (pause {pause:.3}s), restore {restore:.3}s | \
             mariadb-dump {dumped:.3}s, import {imported:.3}s",
            run + 1
        );
        pauses.push(pause);
        backups.push(backup);
        restores.push(restore);
        dumps.push(dumped);
        imports.push(imported);
    }
    let (backup, restore) = (median(&mut backups), median(&mut restores));
    let (dump, import) = (median(&mut dumps), median(&mut imports));
    println!("backup of {mib} MiB of MariaDB on btrfs, median of {runs}:");
    println!(
        "  consistent backup pause   {:.3}s (goal < 1s)",
        median(&mut pauses)
    );
    println!("  backup:create             {backup:.3}s   mariadb-dump {dump:.3}s");
    println!("  backup:restore            {restore:.3}s   import       {import:.3}s");
    println!(
        "  ratio backup+restore / dump+import: {:.2}",
        (backup + restore) / (dump + import)
    );
    Ok(())
}

fn curl(url: &str) -> anyhow::Result<String> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "900", "-w", "\n%{http_code}"])
        .arg(url)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    match text.rsplit_once('\n') {
        Some((body, "200")) if out.status.success() => Ok(body.to_string()),
        _ => bail!("{url}: {text} {}", String::from_utf8_lossy(&out.stderr)),
    }
}

/// A MariaDB server of the host's package in a directory of its own, on a socket only:
/// where the baseline imports its dumps.
struct ScratchMariaDb {
    _server: Guard,
    socket: String,
}

impl ScratchMariaDb {
    fn start(dir: &Path) -> anyhow::Result<ScratchMariaDb> {
        let data = dir.join("data");
        std::fs::create_dir_all(&data)?;
        let status = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--user=root", "--auth-root-authentication-method=normal"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("mariadb-install-db")?;
        if !status.success() {
            bail!("mariadb-install-db failed");
        }
        let socket = dir.join("mysqld.sock").display().to_string();
        let server = Guard(
            Command::new("/usr/sbin/mariadbd")
                .arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .arg(format!("--socket={socket}"))
                .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
                .args([
                    "--user=root",
                    "--skip-networking",
                    "--innodb-buffer-pool-size=256M",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("mariadbd")?,
        );
        let scratch = ScratchMariaDb {
            _server: server,
            socket,
        };
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        while scratch.sql("SELECT 1").is_err() {
            if Instant::now() > deadline {
                bail!("the scratch MariaDB did not start");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Ok(scratch)
    }

    fn client(&self) -> Command {
        let mut command = Command::new("mariadb");
        command.args(["--no-defaults", "-u", "root", "-S", &self.socket]);
        command
    }

    fn sql(&self, sql: &str) -> anyhow::Result<()> {
        let out = self.client().args(["-e", sql]).output()?;
        if !out.status.success() {
            bail!("{sql}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    /// Imports `dump` into a fresh schema; how long the import took.
    fn import(&self, dump: &Path) -> anyhow::Result<f64> {
        self.sql("DROP DATABASE IF EXISTS restored; CREATE DATABASE restored")?;
        let started = Instant::now();
        let status = self
            .client()
            .arg("restored")
            .stdin(std::fs::File::open(dump)?)
            .status()?;
        if !status.success() {
            bail!("the import of {} failed", dump.display());
        }
        Ok(started.elapsed().as_secs_f64())
    }
}
