//! Reading routes.yaml (spec §4).

use serde_json::{Value, json};

use crate::model::{RouteKind, RouteSpec};
use crate::read::{KeyUse, Keys, Reader};
use crate::yaml::Node;

use KeyUse::{NotSupportedYet as Later, Supported as Yes};

const ROUTE_KEYS: Keys = &[
    ("type", Yes),
    ("upstream", Yes),
    ("to", Yes),
    ("id", Yes),
    ("primary", Yes),
    ("cache", Yes),
    ("ssi", Yes),
    ("attributes", Yes),
    ("redirects", Yes),
    ("tls", Later),
    ("sticky", Later),
];

/// A route key split into its parts: `https://www.{default}/shop/` ->
/// (`https`, `www.{default}`, `/shop/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RouteUrl {
    pub scheme: String,
    pub host: String,
    pub path: String,
}

/// Parses a route template (or an expanded URL). Errors say what is wrong.
pub(crate) fn parse_route_url(key: &str) -> Result<RouteUrl, String> {
    let Some((scheme, rest)) = key.split_once("://") else {
        return Err("a route must start with `http://` or `https://`".into());
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!("unsupported scheme `{scheme}`; use http or https"));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err("the host is empty".into());
    }
    let host = match authority.rsplit_once(':') {
        // A port: only the scheme's default ports are allowed (spec §4).
        Some((host, port)) if !port.contains('}') => match (scheme, port) {
            ("http", "80") | ("https", "443") => host,
            _ => {
                return Err(format!(
                    "port `{port}` is not allowed; routes use ports 80 and 443"
                ));
            }
        },
        _ => authority,
    };
    check_host_template(host)?;
    if path.contains(char::is_whitespace) || path.contains(['{', '}', '?', '#']) {
        return Err(format!("invalid path `{path}`"));
    }
    let mut path = path.to_owned();
    if !path.ends_with('/') {
        path.push('/');
    }
    Ok(RouteUrl {
        scheme: scheme.to_owned(),
        host: host.to_owned(),
        path,
    })
}

fn check_host_template(host: &str) -> Result<(), String> {
    let mut rest = host;
    // Placeholders must be whole: `{default}` or `{all}`.
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return Err(format!("unclosed `{{` in host `{host}`"));
        };
        let name = &rest[open + 1..open + close];
        if name != "default" && name != "all" {
            return Err(format!(
                "unknown placeholder `{{{name}}}`; use `{{default}}` or `{{all}}`"
            ));
        }
        rest = &rest[open + close + 1..];
    }
    if rest.contains('}') {
        return Err(format!("unbalanced `}}` in host `{host}`"));
    }
    let literal = host.replace("{default}", "x").replace("{all}", "x");
    let valid = literal.split('.').enumerate().all(|(i, label)| {
        (i == 0 && label == "*")
            || (!label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    });
    if !valid {
        return Err(format!("invalid host `{host}`"));
    }
    Ok(())
}

/// Reads the routes mapping (the whole routes.yaml, or `routes:` in Upsun).
pub(crate) fn read_routes(r: &mut Reader<'_, '_>, node: &Node, out: &mut Vec<(RouteSpec, Node)>) {
    let Some(entries) = r.map_or_null(node, "routes") else {
        return;
    };
    for (key, spec) in entries {
        if let Some(route) = read_route(r, key, spec) {
            out.push((route, key.clone()));
        }
    }
}

fn read_route(r: &mut Reader<'_, '_>, key: &Node, spec: &Node) -> Option<RouteSpec> {
    let template = key.scalar_text()?;
    if let Err(why) = parse_route_url(&template) {
        r.error(
            key,
            format!("invalid route `{template}`: {why}"),
            Some("routes look like `https://{default}/` or `https://www.{default}/path/`".into()),
        );
        return None;
    }
    let entries = r.map(spec, &template)?;
    r.check_keys(entries, ROUTE_KEYS, "");
    let type_node = spec.get("type");
    let route_type = match type_node {
        Some(t) => r.string(t, "type")?,
        None => {
            r.error(
                key,
                format!("route `{template}` has no `type`"),
                Some("use `type: upstream` with `upstream: \"app:http\"`, or `type: redirect` with `to:`".into()),
            );
            return None;
        }
    };
    let kind = match route_type.as_str() {
        "upstream" => {
            let Some(upstream) = spec.get("upstream") else {
                r.error(
                    key,
                    format!("upstream route `{template}` has no `upstream`"),
                    Some("add `upstream: \"app:http\"`".into()),
                );
                return None;
            };
            let text = r.string(upstream, "upstream")?;
            match text.split_once(':') {
                Some((app, "http")) if !app.is_empty() => RouteKind::Upstream {
                    app: app.to_owned(),
                },
                Some((app, endpoint)) if !app.is_empty() => {
                    r.warning(
                        upstream,
                        format!("upstream endpoint `{endpoint}` is treated as `http`"),
                        Some(format!("write `upstream: \"{app}:http\"`")),
                    );
                    RouteKind::Upstream {
                        app: app.to_owned(),
                    }
                }
                _ => {
                    r.error(
                        upstream,
                        format!("`upstream: {text}` must be `<app>:http`"),
                        Some(format!("write `upstream: \"{text}:http\"`")),
                    );
                    return None;
                }
            }
        }
        "redirect" | "proxy" => {
            let Some(to_node) = spec.get("to") else {
                r.error(
                    key,
                    format!("{route_type} route `{template}` has no `to`"),
                    Some("add `to: \"https://{default}/\"`".into()),
                );
                return None;
            };
            let to = r.string(to_node, "to")?;
            if route_type == "redirect" {
                RouteKind::Redirect { to }
            } else {
                if parse_route_url(&to).is_err() {
                    r.error(
                        to_node,
                        format!("proxy target `{to}` is not an http(s) URL"),
                        None,
                    );
                    return None;
                }
                RouteKind::Proxy { to }
            }
        }
        other => {
            r.error(
                type_node.unwrap_or(key),
                format!("unknown route type `{other}`"),
                Some("use upstream, redirect or proxy".into()),
            );
            return None;
        }
    };
    let id = spec.get("id").and_then(|n| r.opt_string(n, "id"));
    let primary = spec.get("primary").and_then(|n| r.bool(n, "primary"));
    let sticky = spec
        .get("sticky")
        .and_then(|n| r.bool(n, "sticky"))
        .unwrap_or(false);
    if let Some(cache) = spec.get("cache") {
        check_cache(r, cache);
    }
    let cache = with_defaults(
        json!({"enabled": true, "default_ttl": 0, "cookies": ["*"], "headers": ["Accept", "Accept-Language"]}),
        spec.get("cache"),
        r,
        "cache",
    );
    let ssi = with_defaults(json!({"enabled": false}), spec.get("ssi"), r, "ssi");
    let attributes = with_defaults(json!({}), spec.get("attributes"), r, "attributes");
    if let Some(redirects) = spec.get("redirects") {
        check_redirects(r, redirects);
    }
    let redirects = with_defaults(json!({}), spec.get("redirects"), r, "redirects");
    let tls = with_defaults(json!({}), spec.get("tls"), r, "tls");
    Some(RouteSpec {
        template,
        kind,
        id,
        primary,
        cache,
        ssi,
        attributes,
        redirects,
        tls,
        sticky,
    })
}

/// `redirects: {expires, paths: {<path or regex>: {to, regexp, prefix, append_suffix, code, expires}}}`.
fn check_redirects(r: &mut Reader<'_, '_>, node: &Node) {
    const REDIRECTS_KEYS: Keys = &[("expires", Yes), ("paths", Yes)];
    const PATH_KEYS: Keys = &[
        ("to", Yes),
        ("regexp", Yes),
        ("prefix", Yes),
        ("append_suffix", Yes),
        ("code", Yes),
        ("expires", Yes),
    ];
    let Some(entries) = r.map_or_null(node, "redirects") else {
        return;
    };
    r.check_keys(entries, REDIRECTS_KEYS, "redirects.");
    if let Some(expires) = node.get("expires") {
        check_expires(r, expires, "redirects.expires");
    }
    let Some(paths) = node.get("paths") else {
        return;
    };
    let Some(paths) = r.map_or_null(paths, "redirects.paths") else {
        return;
    };
    for (path_node, spec) in paths {
        let Some(path) = path_node.scalar_text() else {
            continue;
        };
        let Some(fields) = r.map(spec, &format!("redirects.paths.\"{path}\"")) else {
            continue;
        };
        r.check_keys(fields, PATH_KEYS, "");
        let regexp = spec
            .get("regexp")
            .and_then(|n| r.bool(n, "regexp"))
            .unwrap_or(false);
        if regexp {
            crate::app::check_regex_node(r, path_node, &path);
            for conflicting in ["prefix", "append_suffix"] {
                if let Some(n) = spec.get(conflicting) {
                    r.error(
                        n,
                        format!("`{conflicting}` cannot be combined with `regexp: true`"),
                        None,
                    );
                }
            }
        } else if !path.starts_with('/') {
            r.error(
                path_node,
                format!("redirect path `{path}` must start with `/`"),
                Some("set `regexp: true` for a regex".into()),
            );
        }
        if spec.get("to").is_none() {
            r.error(path_node, format!("redirect `{path}` has no `to`"), None);
        }
        if let Some(code) = spec.get("code")
            && let Some(c) = r.u64(code, "code")
            && ![301, 302, 307, 308].contains(&c)
        {
            r.error(
                code,
                format!("redirect code {c} is not allowed"),
                Some("use 301, 302, 307 or 308".into()),
            );
        }
        if let Some(expires) = spec.get("expires") {
            check_expires(r, expires, "expires");
        }
    }
}

fn check_expires(r: &mut Reader<'_, '_>, node: &Node, what: &str) {
    let text = node.scalar_text().unwrap_or_default();
    if crate::validate::parse_expires(&text).is_none() {
        r.error(
            node,
            format!("invalid `{what}: {text}`"),
            Some("use -1, seconds, or a number with a unit: ms, s, m, h, d, w, M, y".into()),
        );
    }
}

/// One partial redirect of a route (`redirects.paths`), with the platform's defaults:
/// `prefix` and `append_suffix` true (false with `regexp`), code 302, `expires` from
/// the rule, else from `redirects.expires`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartialRedirect {
    /// The request path it matches, or a regex when `regexp`.
    pub path: String,
    pub regexp: bool,
    pub prefix: bool,
    pub append_suffix: bool,
    pub to: String,
    pub code: u16,
    /// How long clients may cache the redirect, in seconds (negative: not at all);
    /// `None` when the file does not say.
    pub expires: Option<i64>,
}

/// The partial redirects of a route's (validated) `redirects` value. Rules the
/// validation refused are left out.
pub fn partial_redirects(redirects: &Value) -> Vec<PartialRedirect> {
    let expires_of = |v: Option<&Value>| {
        v.and_then(|v| match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => crate::validate::parse_expires(s),
            _ => None,
        })
    };
    let default_expires = expires_of(redirects.get("expires"));
    let Some(paths) = redirects.get("paths").and_then(Value::as_object) else {
        return Vec::new();
    };
    paths
        .iter()
        .filter_map(|(path, rule)| {
            let to = rule.get("to")?.as_str()?.to_owned();
            let flag = |key: &str, default: bool| {
                rule.get(key).and_then(Value::as_bool).unwrap_or(default)
            };
            let regexp = flag("regexp", false);
            let code = match rule.get("code").and_then(Value::as_u64) {
                None => 302,
                Some(code @ (301 | 302 | 307 | 308)) => code as u16,
                Some(_) => return None,
            };
            Some(PartialRedirect {
                path: path.clone(),
                regexp,
                prefix: !regexp && flag("prefix", true),
                append_suffix: !regexp && flag("append_suffix", true),
                to,
                code,
                expires: expires_of(rule.get("expires")).or(default_expires),
            })
        })
        .collect()
}

/// `redirects` with every `to` passed through `expand` (placeholders of the
/// environment).
pub(crate) fn expand_redirect_targets(redirects: &Value, expand: impl Fn(&str) -> String) -> Value {
    let mut expanded = redirects.clone();
    if let Some(paths) = expanded.get_mut("paths").and_then(Value::as_object_mut) {
        for rule in paths.values_mut() {
            if let Some(to) = rule.get_mut("to")
                && let Some(text) = to.as_str()
            {
                *to = Value::String(expand(text));
            }
        }
    }
    expanded
}

/// A route's HTTP cache settings (`cache`), with the platform's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteCache {
    pub enabled: bool,
    /// Seconds a response without caching headers of its own is kept.
    pub default_ttl: u64,
    /// `["*"]`: any cookie bypasses the cache; `[]`: cookies are ignored; otherwise
    /// the names (or `/regex/`) of the cookies that are part of the key.
    pub cookies: Vec<String>,
    /// Request headers whose values are part of the key.
    pub headers: Vec<String>,
}

/// The cache settings of a route's (validated, defaults filled in) `cache` value.
pub fn route_cache(cache: &Value) -> RouteCache {
    let strings = |key: &str, default: &[&str]| match cache.get(key).and_then(Value::as_array) {
        Some(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        None => default.iter().map(|s| (*s).to_owned()).collect(),
    };
    RouteCache {
        enabled: cache
            .get("enabled")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        default_ttl: cache
            .get("default_ttl")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        cookies: strings("cookies", &["*"]),
        headers: strings("headers", &["Accept", "Accept-Language"]),
    }
}

/// `cache: {enabled, default_ttl, cookies, headers}`.
fn check_cache(r: &mut Reader<'_, '_>, node: &Node) {
    const CACHE_KEYS: Keys = &[
        ("enabled", Yes),
        ("default_ttl", Yes),
        ("cookies", Yes),
        ("headers", Yes),
    ];
    let Some(entries) = r.map_or_null(node, "cache") else {
        return;
    };
    r.check_keys(entries, CACHE_KEYS, "cache.");
    if let Some(enabled) = node.get("enabled") {
        r.bool(enabled, "cache.enabled");
    }
    if let Some(ttl) = node.get("default_ttl") {
        r.u64(ttl, "cache.default_ttl");
    }
    for key in ["cookies", "headers"] {
        let Some(list) = node.get(key) else { continue };
        let crate::yaml::Kind::Seq(items) = &list.kind else {
            r.error(list, format!("`cache.{key}` must be a list of names"), None);
            continue;
        };
        for item in items {
            let Some(name) = r.string(item, &format!("cache.{key}")) else {
                continue;
            };
            if key == "headers" && name.eq_ignore_ascii_case("cookie") {
                r.error(
                    item,
                    "`Cookie` cannot be a cache header",
                    Some("list the cookies that matter under `cache.cookies`".into()),
                );
            }
            if key == "cookies"
                && let Some(regex) = name
                    .strip_prefix('/')
                    .and_then(|rest| rest.strip_suffix('/'))
            {
                crate::app::check_regex_node(r, item, regex);
            }
        }
    }
}

/// The platform's defaults overlaid with what the file says.
fn with_defaults(
    defaults: Value,
    node: Option<&Node>,
    r: &mut Reader<'_, '_>,
    what: &str,
) -> Value {
    let Some(node) = node else { return defaults };
    if node.is_null() {
        return defaults;
    }
    if r.map(node, what).is_none() {
        return defaults;
    }
    let mut merged = defaults;
    if let (Value::Object(base), Value::Object(given)) = (&mut merged, node.to_json()) {
        for (k, v) in given {
            base.insert(k, v);
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<(&str, &str, &str), &str>) {
        let got = parse_route_url(input);
        match expected {
            Ok((scheme, host, path)) => {
                let got = got.unwrap_or_else(|e| panic!("{input}: {e}"));
                assert_eq!(
                    (got.scheme.as_str(), got.host.as_str(), got.path.as_str()),
                    (scheme, host, path),
                    "{input}"
                );
            }
            Err(fragment) => {
                let err = got.err().unwrap_or_else(|| panic!("{input} should fail"));
                assert!(err.contains(fragment), "{input}: {err}");
            }
        }
    }

    #[test]
    fn route_keys() {
        check("https://{default}/", Ok(("https", "{default}", "/")));
        check(
            "http://www.{default}/shop",
            Ok(("http", "www.{default}", "/shop/")),
        );
        check("https://{all}/", Ok(("https", "{all}", "/")));
        check("https://*.{default}/", Ok(("https", "*.{default}", "/")));
        check("https://example.com/", Ok(("https", "example.com", "/")));
        check("https://{default}:443/", Ok(("https", "{default}", "/")));
        check("https://{default}", Ok(("https", "{default}", "/")));
        check("{default}/", Err("must start with"));
        check("ftp://{default}/", Err("unsupported scheme"));
        check("https:///", Err("host is empty"));
        check("https://{defualt}/", Err("unknown placeholder"));
        check("https://{default/", Err("unclosed"));
        check("https://{default}:8080/", Err("port `8080`"));
        check("https://exa mple.com/", Err("invalid host"));
        check("https://{default}/a b/", Err("invalid path"));
    }
}
