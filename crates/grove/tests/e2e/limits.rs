//! Resource limits: an environment's memory, processes and disk are capped, and an
//! app that hits a cap hurts only itself. Needs root (cgroups, a btrfs loop pool).

use std::process::Command;

use crate::support::{Server, Work, curl, curl_json};
use crate::{primary_url, started_project};

/// `GET /` answers its pid; `/alloc?mb=N` runs a child that touches N MB and answers
/// its exit status; `/spawn?n=N` starts up to N `sleep`s, stops at the first that
/// cannot start, kills them all by PID and answers how many ran; `/write?mb=N` writes
/// N MB into the mount `var` and answers how far it got and why it stopped.
const PROBE: &str = r#"
import json, os, subprocess, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

def alloc(mb):
    code = "b = bytearray(%d * 1024 * 1024); print('allocated')" % mb
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return {"returncode": done.returncode, "stdout": done.stdout.strip()}

def spawn(n):
    children, error = [], None
    try:
        for _ in range(n):
            children.append(subprocess.Popen(["sleep", "300"]))
    except OSError as e:
        error = e.strerror
    count = len(children)
    for child in children:
        child.kill()
        child.wait()
    return {"count": count, "error": error}

def write(mb):
    chunk, written, error = b"x" * (1024 * 1024), 0, None
    try:
        with open("var/big", "wb") as f:
            for _ in range(mb):
                f.write(chunk)
                written += 1
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        error = e.strerror
    try:
        os.remove("var/big")
    except OSError:
        pass
    return {"written_mb": written, "error": error}

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlparse(self.path)
        n = int(parse_qs(url.query).get("n", ["0"])[0])
        if url.path == "/alloc":
            body = alloc(n)
        elif url.path == "/spawn":
            body = spawn(n)
        elif url.path == "/write":
            body = write(n)
        else:
            body = {"pid": os.getpid()}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"#;

const CONFIG: &str = "name: app\ntype: python:3.11\nsize: S\ndisk: 256\n\
     mounts:\n  var:\n    source: local\n    source_path: var\n\
     web:\n  commands:\n    start: python3 probe.py\n";

/// Pushes the probe to `main` and to an active `other`; returns their URLs.
fn deploy_probe(server: &Server, work: &Work, url: &str) -> (String, String) {
    work.write("probe.py", PROBE);
    work.write(".platform.app.yaml", CONFIG);
    work.commit("the limits probe");
    let (ok, out) = work.push(url, &["-o", "environment.activate", "main", "main:other"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("Resources: `app` S (256 MB): memory 384 MB, CPU 0.50, 768 processes"),
        "the deploy says what the environment may use:\n{out}"
    );
    (primary_url(server, "main"), primary_url(server, "other"))
}

#[test]
fn an_app_past_its_memory_limit_is_killed_and_the_others_keep_answering() {
    let (server, work, url) = started_project();
    let (main, other) = deploy_probe(&server, &work, &url);
    let pid = curl_json(&main)["pid"].clone();

    // 2 GB against the environment's 384 MB: the kernel kills the child (SIGKILL).
    let result = curl_json(&format!("{main}alloc?n=2048"));
    assert_eq!(
        result["returncode"], -9,
        "killed by the OOM killer: {result}"
    );
    assert_eq!(result["stdout"], "", "{result}");

    // The app itself, the other environment and the API are untouched.
    assert_eq!(curl_json(&main)["pid"], pid);
    assert_eq!(curl(&other).0, 200);
    server.cli_ok(&["environment:list", "-p", "shop"]);
    // Well below the limit is fine.
    let small = curl_json(&format!("{main}alloc?n=32"));
    assert_eq!(small["returncode"], 0, "{small}");

    // The health watch says so in the environment's activities.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let list = server.cli_ok(&[
            "activity:list",
            "-p",
            "shop",
            "-e",
            "main",
            "-a",
            "--format",
            "json",
        ]);
        if list.contains("Out of memory: the kernel killed 1 process(es) of `main`, which was at its memory limit of 384 MB") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no out-of-memory activity:\n{list}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let list = server.cli_ok(&["activity:list", "-p", "shop", "-a", "--format", "json"]);
    let list: serde_json::Value = serde_json::from_str(&list).expect("json");
    let oom_elsewhere: Vec<&serde_json::Value> = list
        .as_array()
        .expect("list")
        .iter()
        .filter(|a| {
            a["environment"] != "main"
                && a["description"]
                    .as_str()
                    .is_some_and(|d| d.contains("Out of memory"))
        })
        .collect();
    assert!(oom_elsewhere.is_empty(), "{oom_elsewhere:?}");
}

#[test]
fn an_app_cannot_start_processes_past_its_pids_limit() {
    let (server, work, url) = started_project();
    let (main, other) = deploy_probe(&server, &work, &url);

    // A bounded loop (never an open-ended fork bomb): at most 5000 children.
    let result = curl_json(&format!("{main}spawn?n=5000"));
    let count = result["count"].as_u64().expect("count");
    println!("started {count} processes before the limit: {result}");
    assert!(
        count < 512,
        "the app may run 512 processes (its environment 768 in all): {result}"
    );
    assert_eq!(
        result["error"], "Resource temporarily unavailable",
        "fork failed with EAGAIN: {result}"
    );
    // The children are gone (killed by PID), and everything keeps answering.
    let again = curl_json(&format!("{main}spawn?n=10"));
    assert_eq!(again["count"], 10, "{again}");
    assert_eq!(curl(&other).0, 200);
    server.cli_ok(&["environment:list", "-p", "shop"]);
}

/// Unmounts the server's btrfs pool and frees its loop device when the test ends.
pub(crate) struct Pool(pub(crate) std::path::PathBuf);

impl Drop for Pool {
    fn drop(&mut self) {
        let volumes = self.0.join("volumes");
        let _ = Command::new("umount").arg(&volumes).status();
        if let Ok(out) = Command::new("losetup")
            .arg("-j")
            .arg(self.0.join("volumes.img"))
            .output()
        {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if let Some(device) = line.split(':').next() {
                    let _ = Command::new("losetup").args(["-d", device]).status();
                }
            }
        }
    }
}

#[test]
fn a_write_past_disk_fails_with_disk_quota_exceeded_and_the_environment_keeps_serving() {
    let mut server = Server::start_with(&[("GROVE_STORAGE", "btrfs-loop:1G")]);
    let pool = Pool(server.data_dir());
    server.cli_ok(&["project:create", "shop"]);
    let work = Work::example();
    let url = server.git_url("shop");
    work.write("probe.py", PROBE);
    work.write(".platform.app.yaml", CONFIG);
    work.commit("the limits probe");
    let (ok, out) = work.push(&url, &["main"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("Disk: the data of `main` is capped at 256 MB (app `app` 256 MB)"),
        "{out}"
    );
    let main = primary_url(&server, "main");

    let result = curl_json(&format!("{main}write?n=400"));
    println!("wrote {result}");
    assert_eq!(result["error"], "Disk quota exceeded", "{result}");
    assert!(
        result["written_mb"].as_u64().expect("written") <= 256,
        "{result}"
    );
    assert_eq!(curl(&main).0, 200, "the environment keeps serving");
    // Below the cap, writes work (the failed file was removed).
    let small = curl_json(&format!("{main}write?n=64"));
    assert_eq!(small["error"], serde_json::Value::Null, "{small}");

    // A child branched with its parent's data keeps the cap.
    server.cli_ok(&["environment:branch", "feature", "main", "-p", "shop"]);
    let feature = primary_url(&server, "feature");
    let result = curl_json(&format!("{feature}write?n=400"));
    assert_eq!(result["error"], "Disk quota exceeded", "{result}");
    assert_eq!(curl(&feature).0, 200);

    server.stop();
    drop(pool);
}
