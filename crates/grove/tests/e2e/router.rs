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
