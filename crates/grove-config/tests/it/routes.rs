//! Route expansion for an environment.

use grove_config::{RouteContext, RouteKind, expand_routes};

use crate::project;

const APP: &str = "name: app\ntype: python:3.12\nweb: {commands: {start: x}}\n";

fn ctx(https_port: Option<u16>) -> RouteContext<'static> {
    RouteContext {
        project: "shop",
        environment: "main",
        domain: "localhost",
        http_port: 8080,
        https_port,
    }
}

/// Expands `routes_yaml` (None: no routes file) and compares `(url, type, target, primary)`.
fn check(
    routes_yaml: Option<&str>,
    https_port: Option<u16>,
    expected: &[(&str, &str, &str, bool)],
) {
    let mut files = vec![(".platform.app.yaml", APP)];
    if let Some(routes) = routes_yaml {
        files.push((".platform/routes.yaml", routes));
    }
    let table = expand_routes(&project(&files), &ctx(https_port));
    let got: Vec<(String, &str, String, bool)> = table
        .routes
        .iter()
        .map(|r| {
            let target = match &r.kind {
                RouteKind::Upstream { app } => app.clone(),
                RouteKind::Redirect { to } | RouteKind::Proxy { to } => to.clone(),
            };
            (r.url.clone(), r.kind.type_name(), target, r.primary)
        })
        .collect();
    let expected: Vec<(String, &str, String, bool)> = expected
        .iter()
        .map(|(u, t, to, p)| (u.to_string(), *t, to.to_string(), *p))
        .collect();
    assert_eq!(got, expected, "{routes_yaml:?} https={https_port:?}");
}

#[test]
fn default_route_without_file() {
    check(
        None,
        None,
        &[("http://main.shop.localhost:8080/", "upstream", "app", true)],
    );
    check(
        None,
        Some(8443),
        &[
            ("https://main.shop.localhost:8443/", "upstream", "app", true),
            (
                "http://main.shop.localhost:8080/",
                "redirect",
                "https://main.shop.localhost:8443/",
                false,
            ),
        ],
    );
    check(
        None,
        Some(443),
        &[
            ("https://main.shop.localhost/", "upstream", "app", true),
            (
                "http://main.shop.localhost:8080/",
                "redirect",
                "https://main.shop.localhost/",
                false,
            ),
        ],
    );
}

const TYPICAL: &str = "\
'https://{default}/':
  type: upstream
  upstream: 'app:http'
'https://www.{default}/':
  type: redirect
  to: 'https://{default}/'
'http://{default}/':
  type: redirect
  to: 'https://{default}/'
'https://example.com/blog':
  type: upstream
  upstream: 'app:http'
  primary: true
  id: blog
'https://{all}/':
  type: upstream
  upstream: 'app:http'
'https://ext.{default}/':
  type: proxy
  to: 'https://www.example.org/'
";

#[test]
fn typical_routes_without_https() {
    // No HTTPS: https routes are served over http on the http port; the explicit
    // http->https redirect collides with the downgraded route and loses.
    check(
        Some(TYPICAL),
        None,
        &[
            ("http://main.shop.localhost:8080/", "upstream", "app", false),
            (
                "http://www.main.shop.localhost:8080/",
                "redirect",
                "http://main.shop.localhost:8080/",
                false,
            ),
            (
                "http://example.com.main.shop.localhost:8080/blog/",
                "upstream",
                "app",
                true,
            ),
            (
                "http://ext.main.shop.localhost:8080/",
                "proxy",
                "https://www.example.org/",
                false,
            ),
        ],
    );
}

#[test]
fn typical_routes_with_https() {
    check(
        Some(TYPICAL),
        Some(443),
        &[
            ("https://main.shop.localhost/", "upstream", "app", false),
            (
                "https://www.main.shop.localhost/",
                "redirect",
                "https://main.shop.localhost/",
                false,
            ),
            (
                "http://main.shop.localhost:8080/",
                "redirect",
                "https://main.shop.localhost/",
                false,
            ),
            (
                "https://example.com.main.shop.localhost/blog/",
                "upstream",
                "app",
                true,
            ),
            (
                "https://ext.main.shop.localhost/",
                "proxy",
                "https://www.example.org/",
                false,
            ),
            (
                "http://www.main.shop.localhost:8080/",
                "redirect",
                "https://www.main.shop.localhost/",
                false,
            ),
            (
                "http://example.com.main.shop.localhost:8080/blog/",
                "redirect",
                "https://example.com.main.shop.localhost/blog/",
                false,
            ),
            (
                "http://ext.main.shop.localhost:8080/",
                "redirect",
                "https://ext.main.shop.localhost/",
                false,
            ),
        ],
    );
}

#[test]
fn primary_defaults_to_first_upstream() {
    check(
        Some(
            "'https://www.{default}/': {type: redirect, to: 'https://{default}/'}\n'https://{default}/': {type: upstream, upstream: 'app:http'}\n",
        ),
        None,
        &[
            (
                "http://www.main.shop.localhost:8080/",
                "redirect",
                "http://main.shop.localhost:8080/",
                false,
            ),
            ("http://main.shop.localhost:8080/", "upstream", "app", true),
        ],
    );
}

#[test]
fn platform_routes_json() {
    let p = project(&[
        (".platform.app.yaml", APP),
        (".platform/routes.yaml", TYPICAL),
    ]);
    let table = expand_routes(&p, &ctx(Some(8443)));
    assert_eq!(
        table.primary().map(|r| r.url.as_str()),
        Some("https://example.com.main.shop.localhost:8443/blog/")
    );
    insta::assert_json_snapshot!("platform_routes_https", table.to_json());
    let table = expand_routes(&p, &ctx(None));
    insta::assert_json_snapshot!("platform_routes_http_only", table.to_json());
}
