//! What an app or a repository writes cannot reach outside its sandbox: regression
//! tests of the security findings, each the exact attack, through a real push.

use std::path::Path;

use crate::support::{curl, curl_json};
use crate::{primary_url, started_project};

/// Answers `GET /read?path=P` with `read:<contents>` or `error:<reason>`, and
/// `GET /` with its pid.
const PROBE: &str = r#"
import json, os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/read":
            path = parse_qs(url.query).get("path", [""])[0]
            try:
                with open(path) as f:
                    body = "read:" + f.read()
            except OSError as error:
                body = "error:" + error.strerror
        else:
            body = json.dumps({"pid": os.getpid()})
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"#;

/// Finding 1: two mounts whose sources nest (`a` and `a/b` of the same volume). The
/// running app replaces `a/b`, which it sees in its mount `a`, by a link climbing to
/// the host's `/` (`../` as many times as the volume is deep); the next deploy used to bind the host's root, writable, as mount
/// `b`. Now the deploy fails naming the mount and the link, the previous deployment
/// keeps serving, and the server's files stay out of reach.
#[test]
fn a_mount_symlink_cannot_escape_the_volume() {
    let (server, work, url) = started_project();
    // Exactly as deep as the directory holding the link: from there, `/` of the host
    // (bwrap resolves a source path below the host's root, so a longer climb would
    // stop at the root of bwrap's own namespace instead).
    let data = std::fs::canonicalize(server.data_dir()).expect("data dir");
    let depth = data
        .join("volumes/shop/main/apps/app/local/a")
        .components()
        .count()
        - 1;
    let climb = "../".repeat(depth);
    work.write("probe.py", PROBE);
    work.write(
        ".platform.app.yaml",
        &format!(
            "name: app\ntype: python:3.11\n\
             mounts:\n  a:\n    source: local\n    source_path: a\n  b:\n    source: local\n    source_path: a/b\n\
             web:\n  commands:\n    start: rm -rf a/b && ln -s {climb} a/b && exec python3 probe.py\n"
        ),
    );
    work.commit("an app that swaps its mount for a link to /");
    let (ok, out) = work.push(&url, &["main"]);
    assert!(ok, "{out}");
    let main_url = primary_url(&server, "main");
    let before = curl_json(&main_url)["pid"].clone();
    let volume_link = server
        .data_dir()
        .join("volumes/shop/main/apps/app/local/a/b");
    assert!(volume_link.is_symlink(), "the app made its link");

    let redeploy = server.cli(&["environment:redeploy", "-p", "shop", "-e", "main"]);
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&redeploy.stdout),
        String::from_utf8_lossy(&redeploy.stderr)
    );
    assert!(!redeploy.status.success(), "the redeploy must fail:\n{log}");
    assert!(
        log.contains(
            "app `app`: mount `b`: `a/b` in the volume is a symbolic link; refusing to follow it"
        ),
        "{log}"
    );
    assert_eq!(
        curl_json(&main_url)["pid"],
        before,
        "the previous deployment keeps serving"
    );

    // Neither through the mount nor through the link: the server's own files.
    let token = data.join("admin-token");
    for path in [
        format!("/app/b{}", token.display()),
        format!("/app/a/b{}", token.display()),
        token.display().to_string(),
    ] {
        let (status, body) = curl(&format!("{main_url}read?path={path}"));
        assert_eq!(status, 200, "{body}");
        assert!(body.starts_with("error:"), "{path} is readable: {body}");
    }
}

/// Finding 2: a link committed in the repository (`m -> <a host directory>`) with a
/// mount `m/x` made the build create `x` in that host directory. The same link made by
/// the build hook is refused too. The push fails naming the mount and the link, and
/// nothing appears on the host.
#[test]
fn a_repository_symlink_cannot_place_mount_points_on_the_host() {
    let (server, work, url) = started_project();
    let host = tempfile::tempdir().expect("tempdir");
    let config = |hook: &str| {
        format!(
            "name: app\ntype: python:3.11\n{hook}\
             mounts:\n  var:\n    source: local\n    source_path: var\n  m/x:\n    source: local\n    source_path: x\n\
             web:\n  commands:\n    start: python3 server.py\n"
        )
    };
    std::os::unix::fs::symlink(host.path(), work.path().join("m")).expect("symlink");
    work.write(".platform.app.yaml", &config(""));
    work.commit("a link to the host and a mount through it");
    let (ok, out) = work.push(&url, &["main"]);
    assert!(!ok, "the push must fail:\n{out}");
    assert!(
        out.contains(
            "app `app`: mount `m/x`: `m` in the build is a symbolic link; refusing to follow it"
        ),
        "{out}"
    );
    assert_no_entries(host.path());

    // The build hook makes the link instead (a relative one, climbing out).
    work.git(&["rm", "-q", "m"]);
    let climb = "../".repeat(40);
    let hook = format!(
        "hooks:\n  build: ln -s {climb}{} m\n",
        host.path().display().to_string().trim_start_matches('/')
    );
    work.write(".platform.app.yaml", &config(&hook));
    work.commit("the build hook links to the host");
    let (ok, out) = work.push(&url, &["main"]);
    assert!(!ok, "the push must fail:\n{out}");
    assert!(
        out.contains(
            "app `app`: mount `m/x`: `m` in the build is a symbolic link; refusing to follow it"
        ),
        "{out}"
    );
    assert_no_entries(host.path());

    // Without the link, the same app deploys.
    work.write(
        ".platform.app.yaml",
        &config("hooks:\n  build: echo built > build-info.txt\n"),
    );
    work.commit("no link");
    let (ok, out) = work.push(&url, &["main"]);
    assert!(ok, "{out}");
    curl_json(&primary_url(&server, "main"));
    assert_no_entries(host.path());
}

fn assert_no_entries(dir: &Path) {
    let entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(entries.is_empty(), "created on the host: {entries:?}");
}
