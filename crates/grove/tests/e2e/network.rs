//! Each environment has a network of its own (issue 9, finding 3): an app reaches
//! its own environment's services and apps, and nothing of another's.

use crate::support::{Server, Work, curl, curl_json};

/// The services app, started through a wrapper that also answers
/// `GET /net/port` (its `$PORT`) and `GET /net/connect/<ip>:<port>` (`open`, or
/// `closed:<errno>`: what a TCP connect from inside the app's sandbox gets).
const NETPROBE: &str = r#"
import json, os, socket
from http.server import ThreadingHTTPServer

import app

class Handler(app.Handler):
    def do_GET(self):
        if self.path == "/net/port":
            body = os.environ["PORT"]
        elif self.path.startswith("/net/connect/"):
            host, port = self.path[len("/net/connect/"):].rsplit(":", 1)
            s = socket.socket()
            s.settimeout(5)
            try:
                code = s.connect_ex((host, int(port)))
            except OSError as error:
                code = error.errno
            finally:
                s.close()
            body = "open" if code == 0 else "closed:%s" % code
        else:
            return super().do_GET()
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"#;

/// The relationships every environment of the services app has, one per service.
const RELATIONSHIPS: &[&str] = &["database", "pg", "redis", "rabbitmq", "memcached"];

fn url_of(server: &Server, project: &str) -> String {
    server
        .cli_ok(&[
            "environment:url",
            "-p",
            project,
            "-e",
            "main",
            "--primary",
            "--pipe",
        ])
        .trim()
        .to_string()
}

/// What the environment's app listens on and connects to: `(what, ip:port)`.
fn addresses(url: &str) -> Vec<(String, String)> {
    let relationships = curl_json(url)["relationships"].clone();
    let mut out: Vec<(String, String)> = RELATIONSHIPS
        .iter()
        .map(|name| {
            let r = &relationships[name];
            let ip = r["ip"].as_str().unwrap_or_else(|| panic!("{name}: {r}"));
            (name.to_string(), format!("{ip}:{}", r["port"]))
        })
        .collect();
    let (status, port) = curl(&format!("{url}net/port"));
    assert_eq!(status, 200, "{port}");
    out.push(("app".to_string(), format!("127.0.0.1:{}", port.trim())));
    out
}

fn connect_from(url: &str, addr: &str) -> String {
    let (status, body) = curl(&format!("{url}net/connect/{addr}"));
    assert_eq!(status, 200, "{body}");
    body.trim().to_string()
}

/// Two environments (of two projects) run the app with all five services. From
/// A's app, each of A's services and A's own port answer; each of B's services
/// and B's app port are unreachable, although they run on the same host.
#[test]
fn reachability_matrix() {
    let server = Server::start();
    let work = Work::services_app();
    let config =
        std::fs::read_to_string(work.path().join(".platform.app.yaml")).expect("the app's config");
    work.write(
        ".platform.app.yaml",
        &config.replace("start: python3 app.py", "start: python3 netprobe.py"),
    );
    work.write("netprobe.py", NETPROBE);
    work.commit("an app that reports what it can connect to");
    for project in ["alpha", "beta"] {
        server.cli_ok(&["project:create", project]);
        let (ok, out) = work.push(&server.git_url(project), &["main"]);
        assert!(ok, "push to {project} failed:\n{out}\n{}", server.log());
    }
    let a = url_of(&server, "alpha");
    let b = url_of(&server, "beta");
    let ours = addresses(&a);
    let theirs = addresses(&b);
    println!("A: {ours:?}\nB: {theirs:?}");

    let mut matrix = Vec::new();
    for (what, addr) in &ours {
        matrix.push((
            format!("A -> A's {what} {addr}"),
            connect_from(&a, addr),
            true,
        ));
    }
    for (what, addr) in &theirs {
        // Both namespaces choose app ports independently: the same number would be
        // A's own app.
        if ours.iter().any(|(_, own)| own == addr) {
            println!("B's {what} {addr} is also A's: not a test of B");
            continue;
        }
        matrix.push((
            format!("A -> B's {what} {addr}"),
            connect_from(&a, addr),
            false,
        ));
    }
    // B's own are there, just not for A.
    for (what, addr) in &theirs {
        matrix.push((
            format!("B -> B's {what} {addr}"),
            connect_from(&b, addr),
            true,
        ));
    }
    let report: Vec<String> = matrix
        .iter()
        .map(|(what, got, _)| format!("{what}: {got}"))
        .collect();
    println!("{}", report.join("\n"));
    for (what, got, reachable) in &matrix {
        if *reachable {
            assert_eq!(got, "open", "{what}\n{}", report.join("\n"));
        } else {
            assert!(
                got.starts_with("closed:"),
                "{what}: {got}\n{}",
                report.join("\n")
            );
        }
    }
    assert!(
        matrix.iter().filter(|(_, _, reachable)| !reachable).count() >= RELATIONSHIPS.len(),
        "{}",
        report.join("\n")
    );
}

/// The namespaces the server holds: one thread named `grove-netns` each.
fn namespaces(server: &Server) -> usize {
    let tasks = std::fs::read_dir(format!("/proc/{}/task", server.pid())).expect("tasks");
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim() == "grove-netns")
        .count()
}

/// One namespace per active environment, whatever it runs and however often it is
/// redeployed; a deactivated environment's is gone, a reactivated one gets a new one.
#[test]
fn one_namespace_per_active_environment() {
    let (server, work, url) = crate::started_project();
    let (ok, out) = work.push(
        &url,
        &["-o", "environment.activate", "main", "main:feature"],
    );
    assert!(ok, "{out}");
    assert_eq!(namespaces(&server), 2);
    work.write("NEWS", "a new deploy\n");
    work.commit("news");
    let (ok, out) = work.push(&url, &["main"]);
    assert!(ok, "{out}");
    assert_eq!(namespaces(&server), 2, "a redeploy keeps its environment's");
    let (status, _) = curl(&crate::primary_url(&server, "main"));
    assert_eq!(status, 200);

    server.cli_ok(&["environment:deactivate", "-p", "shop", "-e", "feature"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while namespaces(&server) != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the deactivated environment's namespace is still held"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    server.cli_ok(&["environment:activate", "-p", "shop", "-e", "feature"]);
    assert_eq!(namespaces(&server), 2);
    let (status, _) = curl(&crate::primary_url(&server, "feature"));
    assert_eq!(status, 200);
}
