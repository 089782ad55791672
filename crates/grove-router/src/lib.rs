//! Grove's HTTP router.
//!
//! A table of `(host, path prefix) -> target` entries, grouped by the environment that
//! owns them so that a deploy replaces an environment's routes in one step, and an
//! HTTP/1 reverse proxy that serves it. The table knows nothing about routes.yaml: the
//! server compiles each environment's expanded routes into entries.

mod proxy;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

pub use proxy::serve;

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Proxied to an app instance listening on this address.
    Upstream(SocketAddr),
    /// Answered with a redirect. `location` is the target URL of the route; the rest of
    /// the request path below the route's prefix is appended to it.
    Redirect { location: String, code: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    /// Lower-case host name, without port.
    pub host: String,
    /// Path prefix, starting and ending with `/`.
    pub path: String,
    pub target: Target,
}

/// A match: the target and the route's path prefix it matched under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    pub target: Target,
    pub prefix: String,
}

/// The routing table, shared between the server (which updates it) and the proxy.
#[derive(Clone, Default)]
pub struct RouteTable {
    inner: Arc<RwLock<Tables>>,
}

#[derive(Default)]
struct Tables {
    by_owner: HashMap<String, Vec<RouteEntry>>,
    /// Derived from `by_owner`: host -> entries, longest prefix first.
    by_host: HashMap<String, Vec<RouteEntry>>,
}

impl RouteTable {
    pub fn new() -> RouteTable {
        RouteTable::default()
    }

    /// Replaces every entry of `owner` (an environment) at once.
    pub fn set(&self, owner: &str, entries: Vec<RouteEntry>) {
        let mut tables = self.inner.write().unwrap_or_else(|e| e.into_inner());
        tables.by_owner.insert(owner.to_string(), entries);
        tables.reindex();
    }

    pub fn remove(&self, owner: &str) {
        let mut tables = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if tables.by_owner.remove(owner).is_some() {
            tables.reindex();
        }
    }

    pub fn entries(&self, owner: &str) -> Vec<RouteEntry> {
        let tables = self.inner.read().unwrap_or_else(|e| e.into_inner());
        tables.by_owner.get(owner).cloned().unwrap_or_default()
    }

    /// The entry for a request's host (port ignored, case-insensitive) and path: the
    /// longest path prefix wins.
    pub fn lookup(&self, host: &str, path: &str) -> Option<Matched> {
        let host = normalize_host(host);
        let tables = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let entries = tables.by_host.get(&host)?;
        entries
            .iter()
            .find(|e| path_has_prefix(path, &e.path))
            .map(|e| Matched {
                target: e.target.clone(),
                prefix: e.path.clone(),
            })
    }
}

impl Tables {
    fn reindex(&mut self) {
        let mut by_host: HashMap<String, Vec<RouteEntry>> = HashMap::new();
        for entry in self.by_owner.values().flatten() {
            by_host
                .entry(normalize_host(&entry.host))
                .or_default()
                .push(entry.clone());
        }
        for entries in by_host.values_mut() {
            entries.sort_by(|a, b| b.path.len().cmp(&a.path.len()).then(a.path.cmp(&b.path)));
        }
        self.by_host = by_host;
    }
}

fn normalize_host(host: &str) -> String {
    let host = host.trim().trim_end_matches('.');
    let without_port = match host.rsplit_once(':') {
        Some((h, port)) if !h.ends_with(']') || host.starts_with('[') => {
            if port.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host
            }
        }
        _ => host,
    };
    without_port.to_ascii_lowercase()
}

/// `/a/` matches `/a/`, `/a/b` and `/a` (the prefix without its trailing slash).
fn path_has_prefix(path: &str, prefix: &str) -> bool {
    path.starts_with(prefix) || path == prefix.trim_end_matches('/') || prefix == "/"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(port: u16) -> Target {
        Target::Upstream(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    fn entry(host: &str, path: &str, port: u16) -> RouteEntry {
        RouteEntry {
            host: host.into(),
            path: path.into(),
            target: upstream(port),
        }
    }

    #[test]
    fn lookup_table() {
        let table = RouteTable::new();
        table.set(
            "shop/main",
            vec![
                entry("main.shop.localhost", "/", 1),
                entry("main.shop.localhost", "/api/", 2),
            ],
        );
        table.set("shop/dev", vec![entry("dev.shop.localhost", "/", 3)]);
        let check = |host: &str, path: &str, expected: Option<u16>| {
            let got = table.lookup(host, path).map(|m| m.target);
            assert_eq!(got, expected.map(upstream), "{host}{path}");
        };
        check("main.shop.localhost", "/", Some(1));
        check("MAIN.shop.localhost:8080", "/x", Some(1));
        check("main.shop.localhost", "/api/v1", Some(2));
        check("main.shop.localhost", "/api", Some(2));
        check("main.shop.localhost", "/apix", Some(1));
        check("dev.shop.localhost", "/", Some(3));
        check("other.localhost", "/", None);
    }

    #[test]
    fn set_replaces_and_remove_drops_an_owner() {
        let table = RouteTable::new();
        table.set("shop/main", vec![entry("main.shop.localhost", "/", 1)]);
        table.set("shop/main", vec![entry("main.shop.localhost", "/", 2)]);
        assert_eq!(
            table.lookup("main.shop.localhost", "/").map(|m| m.target),
            Some(upstream(2))
        );
        table.remove("shop/main");
        assert_eq!(table.lookup("main.shop.localhost", "/"), None);
    }
}
