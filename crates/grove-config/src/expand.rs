//! Expanding route templates for one environment (spec §4, PRODUCT.md "URLs").

use serde_json::{Map, Value, json};

use crate::model::{Project, RouteKind, RouteSpec};
use crate::routes::{RouteUrl, parse_route_url};

/// Where an environment's routes live.
#[derive(Clone, Copy, Debug)]
pub struct RouteContext<'a> {
    pub project: &'a str,
    /// The environment's machine name.
    pub environment: &'a str,
    pub domain: &'a str,
    pub http_port: u16,
    /// `None` when Grove serves no HTTPS: https routes are then served over plain HTTP.
    pub https_port: Option<u16>,
}

impl RouteContext<'_> {
    /// `{default}` for this environment: `<env>.<project>.<domain>`.
    pub fn default_host(&self) -> String {
        format!("{}.{}.{}", self.environment, self.project, self.domain)
    }
}

/// One final route of an environment.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    /// Final URL, ending with the path, e.g. `http://main.shop.localhost:8080/`.
    pub url: String,
    /// The template it came from, e.g. `https://{default}/`.
    pub original_url: String,
    /// Host name without port.
    pub host: String,
    /// Starts and ends with `/`.
    pub path: String,
    /// `http` or `https`: how the URL is actually served.
    pub scheme: String,
    /// The port the URL is served on.
    pub port: u16,
    pub id: Option<String>,
    pub primary: bool,
    /// With `to` expanded.
    pub kind: RouteKind,
    pub cache: Value,
    pub ssi: Value,
    pub attributes: Value,
    /// Partial redirects, as in the route spec.
    pub redirects: Value,
}

/// All routes of an environment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteTable {
    pub routes: Vec<Route>,
}

impl RouteTable {
    /// The route marked primary, else the first upstream route.
    pub fn primary(&self) -> Option<&Route> {
        self.routes.iter().find(|r| r.primary).or_else(|| {
            self.routes
                .iter()
                .find(|r| matches!(r.kind, RouteKind::Upstream { .. }))
        })
    }

    /// The decoded `PLATFORM_ROUTES`: final URL -> route object.
    pub fn to_json(&self) -> Value {
        let primary_url = self.primary().map(|r| r.url.as_str());
        let mut out = Map::new();
        for route in &self.routes {
            let mut obj = Map::new();
            obj.insert(
                "primary".into(),
                json!(Some(route.url.as_str()) == primary_url),
            );
            obj.insert("id".into(), json!(route.id));
            obj.insert("attributes".into(), route.attributes.clone());
            obj.insert("type".into(), json!(route.kind.type_name()));
            match &route.kind {
                RouteKind::Upstream { app } => {
                    obj.insert("upstream".into(), json!(app));
                }
                RouteKind::Redirect { to } | RouteKind::Proxy { to } => {
                    obj.insert("to".into(), json!(to));
                }
            }
            obj.insert("original_url".into(), json!(route.original_url));
            obj.insert("cache".into(), route.cache.clone());
            obj.insert("ssi".into(), route.ssi.clone());
            if route.redirects.as_object().is_some_and(|m| !m.is_empty()) {
                obj.insert("redirects".into(), route.redirects.clone());
            }
            out.insert(route.url.clone(), Value::Object(obj));
        }
        Value::Object(out)
    }
}

/// The routes of one environment. With no routes file, the only app (or the first by
/// name) is served at `https://{default}/`.
pub fn expand_routes(project: &Project, ctx: &RouteContext<'_>) -> RouteTable {
    let default_specs;
    let specs: &[RouteSpec] = match &project.routes {
        Some(specs) => specs,
        None => {
            default_specs = project
                .apps
                .first()
                .map(|app| vec![default_route(&app.name)])
                .unwrap_or_default();
            &default_specs
        }
    };

    let https = ctx.https_port.is_some();
    let mut routes: Vec<Route> = Vec::new();
    // Routes written in the file first; automatic http twins only where nothing was written.
    for spec in specs {
        let Ok(template) = parse_route_url(&spec.template) else {
            continue;
        };
        let Some(route) = expand_one(spec, &template, ctx) else {
            continue;
        };
        if let Some(existing) = routes.iter().position(|r| r.url == route.url) {
            // Without HTTPS, `https://X` and `http://X` land on the same URL; the https
            // route is the real one (the http one usually redirects to it).
            // `{default}` wins a tie with `{all}` (both are the same host here).
            if !https
                && template.scheme == "https"
                && routes[existing].original_url.starts_with("http://")
            {
                routes[existing] = route;
            }
            continue;
        }
        routes.push(route);
    }
    if https {
        let mut twins = Vec::new();
        for route in &routes {
            if route.scheme != "https" {
                continue;
            }
            let url = join_url("http", &route.host, ctx.http_port, &route.path);
            if routes.iter().any(|r| r.url == url) || twins.iter().any(|r: &Route| r.url == url) {
                continue;
            }
            twins.push(Route {
                url,
                original_url: route.original_url.replacen("https://", "http://", 1),
                host: route.host.clone(),
                path: route.path.clone(),
                scheme: "http".into(),
                port: ctx.http_port,
                id: None,
                primary: false,
                kind: RouteKind::Redirect {
                    to: route.url.clone(),
                },
                cache: route.cache.clone(),
                ssi: route.ssi.clone(),
                attributes: json!({}),
                redirects: json!({}),
            });
        }
        routes.extend(twins);
    }

    // Exactly one primary: the first marked `primary: true`, else the first upstream.
    let primary_idx = specs
        .iter()
        .filter(|s| s.primary == Some(true))
        .find_map(|s| routes.iter().position(|r| r.original_url == s.template))
        .or_else(|| {
            routes
                .iter()
                .position(|r| matches!(r.kind, RouteKind::Upstream { .. }))
        });
    for (i, route) in routes.iter_mut().enumerate() {
        route.primary = Some(i) == primary_idx;
    }
    RouteTable { routes }
}

fn default_route(app: &str) -> RouteSpec {
    RouteSpec {
        template: "https://{default}/".into(),
        kind: RouteKind::Upstream {
            app: app.to_owned(),
        },
        id: None,
        primary: None,
        cache: json!({"enabled": true, "default_ttl": 0, "cookies": ["*"], "headers": ["Accept", "Accept-Language"]}),
        ssi: json!({"enabled": false}),
        attributes: json!({}),
        redirects: json!({}),
        tls: json!({}),
        sticky: false,
    }
}

fn expand_one(spec: &RouteSpec, template: &RouteUrl, ctx: &RouteContext<'_>) -> Option<Route> {
    let host = expand_host(&template.host, ctx);
    let (scheme, port) = served_as(&template.scheme, ctx);
    let url = join_url(scheme, &host, port, &template.path);
    let kind = match &spec.kind {
        RouteKind::Upstream { app } => RouteKind::Upstream { app: app.clone() },
        RouteKind::Redirect { to } => RouteKind::Redirect {
            to: expand_target(to, ctx),
        },
        RouteKind::Proxy { to } => RouteKind::Proxy {
            to: expand_target(to, ctx),
        },
    };
    Some(Route {
        url,
        original_url: spec.template.clone(),
        host,
        path: template.path.clone(),
        scheme: scheme.to_owned(),
        port,
        id: spec.id.clone(),
        primary: false,
        kind,
        cache: spec.cache.clone(),
        ssi: spec.ssi.clone(),
        attributes: spec.attributes.clone(),
        redirects: crate::routes::expand_redirect_targets(&spec.redirects, |to| {
            expand_target(to, ctx)
        }),
    })
}

/// The scheme and port a template scheme is served with in this context.
fn served_as(scheme: &str, ctx: &RouteContext<'_>) -> (&'static str, u16) {
    match (scheme, ctx.https_port) {
        ("https", Some(port)) => ("https", port),
        _ => ("http", ctx.http_port),
    }
}

/// `{default}` / `{all}` -> the environment host; an absolute host is prefixed to it.
fn expand_host(template: &str, ctx: &RouteContext<'_>) -> String {
    let default = ctx.default_host();
    if template.contains("{default}") || template.contains("{all}") {
        template
            .replace("{default}", &default)
            .replace("{all}", &default)
    } else {
        format!("{template}.{default}")
    }
}

/// A redirect or proxy target: templates with placeholders are expanded like routes;
/// anything else (an outside URL, a relative path) is left alone.
fn expand_target(to: &str, ctx: &RouteContext<'_>) -> String {
    if !to.contains("{default}") && !to.contains("{all}") {
        return to.to_owned();
    }
    match parse_route_url(to) {
        Ok(target) => {
            let host = expand_host(&target.host, ctx);
            let (scheme, port) = served_as(&target.scheme, ctx);
            // Keep the path exactly as written (no trailing-slash normalisation).
            let path = to
                .split_once("://")
                .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
                .unwrap_or("/");
            join_url(scheme, &host, port, path)
        }
        Err(_) => to.to_owned(),
    }
}

fn join_url(scheme: &str, host: &str, port: u16, path: &str) -> String {
    let default_port = if scheme == "https" { 443 } else { 80 };
    if port == default_port {
        format!("{scheme}://{host}{path}")
    } else {
        format!("{scheme}://{host}:{port}{path}")
    }
}
