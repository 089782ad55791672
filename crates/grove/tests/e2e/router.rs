//! The router's partial redirects, whole-route redirects and HTTP cache, configured by
//! a pushed routes.yaml and observed with curl.

use crate::support::get;
use crate::{primary_url, started_project};

/// An app that counts the requests it serves: `/cached` may be stored for a minute,
/// `/private` may not.
const COUNTER_APP: &str = r#"
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

served = 0


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        global served
        served += 1
        body = f"{self.path} #{served}".encode()
        self.send_response(200)
        if self.path == "/cached":
            self.send_header("Cache-Control", "max-age=60")
        if self.path == "/private":
            self.send_header("Cache-Control", "private, max-age=60")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"#;

const ROUTES: &str = r#"
"https://{default}/":
  type: upstream
  upstream: "app:http"
  cache:
    enabled: true
    cookies: ["*"]
  redirects:
    expires: 1h
    paths:
      "/old":
        to: "https://{default}/new"
        code: 301
      "/exact":
        to: "/target"
        prefix: false
      "/flat":
        to: "/landing"
        append_suffix: false
        code: 307
      '^/p/(\d+)$':
        to: "/product/$1"
        regexp: true
        code: 308
"https://www.{default}/":
  type: redirect
  to: "https://{default}/"
"#;

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        (n.trim() == name).then(|| v.trim())
    })
}

#[test]
fn redirects_and_the_http_cache_follow_routes_yaml() {
    let (server, work, url) = started_project();
    work.write("server.py", COUNTER_APP);
    work.write(".platform/routes.yaml", ROUTES);
    work.commit("counter app with redirects and a cache");
    let (ok, out) = work.push(&url, &["main"]);
    assert!(ok, "push failed:\n{out}");
    let base = primary_url(&server, "main");
    let base = base.trim_end_matches('/');
    let (scheme, authority) = base.split_once("://").expect("a URL");

    // Partial redirects: each form and code; the query string is kept.
    let redirect = |path: &str| {
        let (status, head, _) = get(&format!("{base}{path}"));
        (status, header(&head, "location").unwrap_or("-").to_string())
    };
    assert_eq!(redirect("/old/a?x=1"), (301, format!("{base}/new/a?x=1")));
    assert_eq!(redirect("/exact"), (302, "/target".into()));
    assert_eq!(redirect("/flat/deep/er"), (307, "/landing".into()));
    assert_eq!(redirect("/p/42"), (308, "/product/42".into()));
    let (_, head, _) = get(&format!("{base}/old"));
    assert_eq!(header(&head, "cache-control"), Some("max-age=3600"));
    // Not matched: the app answers.
    let (status, _, body) = get(&format!("{base}/exact/child"));
    assert_eq!((status, body.as_str()), (200, "/exact/child #1"));
    // A whole-route redirect is a 301 that keeps the path.
    let (status, head, _) = get(&format!("{scheme}://www.{authority}/some/page"));
    assert_eq!(
        (status, header(&head, "location")),
        (301, Some(format!("{base}/some/page").as_str()))
    );

    // The cache: stored for max-age, never for private; cookies bypass.
    let cache = |path: &str| {
        let (status, head, body) = get(&format!("{base}{path}"));
        assert_eq!(status, 200, "{path}");
        let label = header(&head, "x-platform-cache")
            .unwrap_or("-")
            .to_ascii_uppercase();
        (label, body)
    };
    let first = cache("/cached");
    assert_eq!(first.0, "MISS");
    assert_eq!(cache("/cached"), ("HIT".to_string(), first.1.clone()));
    let private = cache("/private");
    assert_eq!(private.0, "MISS");
    assert_ne!(cache("/private").1, private.1, "private is never stored");
    let out = std::process::Command::new("curl")
        .args(["-sS", "-D", "-", "-H", "Cookie: session=1"])
        .arg(format!("{base}/cached"))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert_eq!(header(&text, "x-platform-cache"), Some("bypass"), "{text}");

    // `grove cache:clear` empties it.
    server.cli_ok(&["cache:clear", "-p", "shop", "-e", "main"]);
    let after_clear = cache("/cached");
    assert_eq!(after_clear.0, "MISS");
    assert_ne!(after_clear.1, first.1);
    assert_eq!(cache("/cached").0, "HIT");

    // A deploy purges it.
    server.cli_ok(&["environment:redeploy", "-p", "shop", "-e", "main"]);
    assert_eq!(cache("/cached").0, "MISS", "purged by the deploy");
}

/// `curl` with Basic credentials (or none); the HTTP status.
fn status_as(url: &str, user: Option<&str>) -> (u16, String) {
    let mut command = std::process::Command::new("curl");
    command.args(["-sS", "--max-time", "30", "-D", "-", "-o", "/dev/null"]);
    if let Some(user) = user {
        command.args(["-u", user]);
    }
    let out = command.arg(url).output().expect("curl runs");
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head)
}

#[test]
fn http_access_is_enforced_and_inherited_by_a_branched_child() {
    let (server, work, url) = started_project();
    let (ok, out) = work.push(&url, &["main"]);
    assert!(ok, "push failed:\n{out}");
    let main = primary_url(&server, "main");

    // Basic auth: 401 with a challenge without credentials, 200 with them.
    let http_access = |env: &str, args: &[&str]| {
        let mut all = vec!["environment:http-access", "-p", "shop", "-e", env];
        all.extend_from_slice(args);
        server.cli_ok(&all)
    };
    http_access("main", &["--auth", "alice:s3cret", "--enabled", "1"]);
    let (status, head) = status_as(&main, None);
    assert_eq!(status, 401, "{head}");
    assert!(head.contains("www-authenticate: basic"), "{head}");
    assert_eq!(status_as(&main, Some("alice:wrong")).0, 401);
    assert_eq!(status_as(&main, Some("alice:s3cret")).0, 200);

    // Address rules: curl comes from 127.0.0.1. Denied is 403 without credentials
    // configured; with them, credentials still let through (as on Platform.sh).
    let out = http_access(
        "main",
        &["--access", "allow:10.0.0.0/8", "--access", "deny:0.0.0.0/0"],
    );
    assert!(out.contains("10.0.0.0/8"), "{out}");
    assert_eq!(status_as(&main, None).0, 401);
    assert_eq!(status_as(&main, Some("alice:s3cret")).0, 200);

    // A branched child inherits the parent's settings.
    server.cli_ok(&["environment:branch", "dev", "main", "-p", "shop"]);
    let dev = crate::primary_url_when_ready(&server, "dev");
    assert_eq!(status_as(&dev, None).0, 401, "the child inherits");
    assert_eq!(status_as(&dev, Some("alice:s3cret")).0, 200);
    let shown = http_access("dev", &[]);
    assert!(shown.contains("\"inherited_from\": \"main\""), "{shown}");

    // Its own settings replace the inherited ones; the parent keeps its own.
    http_access("dev", &["--enabled", "0"]);
    assert_eq!(status_as(&dev, None).0, 200);
    assert_eq!(status_as(&main, None).0, 401);
    // Only address rules of its own: 403 for a denied address.
    http_access("dev", &["--enabled", "1", "--access", "deny:127.0.0.0/8"]);
    assert_eq!(status_as(&dev, None).0, 403);
    assert_eq!(status_as(&main, Some("alice:s3cret")).0, 200);
}
