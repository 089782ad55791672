//! Grove's HTTP router.
//!
//! A table of `(host, path prefix) -> target` entries, grouped by the environment that
//! owns them so that a deploy replaces an environment's routes in one step, and an
//! HTTP/1 reverse proxy that serves it. The table knows nothing about routes.yaml: the
//! server compiles each environment's expanded routes into entries.
//!
//! It also owns the loop that serves HTTP/1 connections within limits
//! ([`serve_connections`]), which the API uses too: both face the same clients.
//!
//! Every request is treated as hostile: its head is checked before anything is
//! routed (one valid `Host`, a target the router can forward; see `request`), and
//! what the router refuses (400) never reaches an app.

mod access;
mod access_log;
mod cache;
mod connections;
mod proxy;
mod redirect;
mod request;
mod upstream;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;

pub use access::{AddressRule, HttpAccess, Network};
pub use access_log::{AccessLog, dropped_lines};
pub use cache::{CachePolicy, DEFAULT_CAPACITY_BYTES, MAX_ENTRY_BYTES};
pub use connections::{ConnectionLimits, ConnectionStats, serve_connections};
/// Adapts a tower service (an axum `Router`) for [`serve_connections`].
pub use hyper_util::service::TowerToHyperService;
pub use proxy::{serve, serve_with};
pub use redirect::Redirect;
pub use upstream::Upstream;

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Proxied to an app instance listening on this address.
    Upstream(Upstream),
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
    /// Partial redirects, tried before the target (see [`RouteEntry::with_redirects`]).
    pub redirects: Vec<Redirect>,
    /// The route's HTTP cache; `None` when it is disabled.
    pub cache: Option<Arc<CachePolicy>>,
}

impl RouteEntry {
    /// An entry without partial redirects or cache.
    pub fn new(host: impl Into<String>, path: impl Into<String>, target: Target) -> RouteEntry {
        RouteEntry {
            host: host.into(),
            path: path.into(),
            target,
            redirects: Vec::new(),
            cache: None,
        }
    }

    /// With these partial redirects, ordered as they are tried: exact and prefix paths
    /// first (the longest first), then regexes in the order given (the server gives
    /// them sorted by pattern: the order of routes.yaml does not survive its JSON).
    pub fn with_redirects(mut self, mut redirects: Vec<Redirect>) -> RouteEntry {
        redirect::sort(&mut redirects);
        self.redirects = redirects;
        self
    }

    pub fn with_cache(mut self, cache: Option<CachePolicy>) -> RouteEntry {
        self.cache = cache.map(Arc::new);
        self
    }
}

/// A match: the target and the route's path prefix it matched under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    pub target: Target,
    pub prefix: String,
}

/// The routing table, shared between the server (which updates it) and the proxy.
///
/// Besides the entries it keeps what a zero-downtime deploy needs: the owners whose
/// idempotent requests are *held* while their `deploy` hook runs ([`RouteTable::hold`]),
/// and how many requests each upstream is serving right now, so that an old instance
/// is only stopped once it has *drained* ([`RouteTable::drained`]).
#[derive(Clone, Default)]
pub struct RouteTable {
    inner: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    tables: RwLock<Tables>,
    /// Requests in flight per upstream; an address is absent when none are. Updated
    /// while the tables' read lock is held by the lookup that picked the upstream, so
    /// once `set` has returned every request still bound for the old upstream is counted.
    in_flight: watch::Sender<HashMap<Upstream, usize>>,
    next_hold_id: AtomicU64,
    cache: cache::HttpCache,
}

#[derive(Default)]
struct Tables {
    by_owner: HashMap<String, Vec<RouteEntry>>,
    /// Derived from `by_owner`: host -> entries, longest prefix first.
    by_host: HashMap<String, Vec<OwnedEntry>>,
    /// Owners whose idempotent requests wait. Independent of `by_owner`: `set` and
    /// `remove` keep a hold.
    holds: HashMap<String, Hold>,
    /// The access control of owners that have one; independent of `by_owner` too.
    access: HashMap<String, Arc<HttpAccess>>,
    /// The access log of owners that have one.
    access_logs: HashMap<String, Arc<AccessLog>>,
}

struct OwnedEntry {
    owner: Arc<str>,
    entry: RouteEntry,
    /// The owner's, copied from `Tables::access` so that a request finds it at once.
    access: Option<Arc<HttpAccess>>,
    /// The owner's, copied from `Tables::access_logs`.
    log: Option<Arc<AccessLog>>,
}

struct Hold {
    id: u64,
    /// How long one request may wait.
    timeout: Duration,
    /// Waiters subscribe to it; a send (on `remove`) or dropping it (on `release`)
    /// wakes them all.
    wake: watch::Sender<()>,
}

/// Releases its owner's hold when dropped (see [`RouteTable::hold_guard`]).
#[must_use = "the hold is released when the guard is dropped"]
pub struct HoldGuard {
    table: RouteTable,
    owner: String,
    id: u64,
}

impl HoldGuard {
    /// Releases the hold now.
    pub fn release(self) {}
}

impl Drop for HoldGuard {
    fn drop(&mut self) {
        self.table.release_if(&self.owner, Some(self.id));
    }
}

/// What the proxy does with a request (see [`RouteTable::route`]).
pub(crate) enum Routed {
    NotFound,
    /// The owner's access control refused the request.
    Denied(access::Verdict),
    /// The owner is held: wait for `released` to change (or close), at most `timeout`.
    Held {
        released: watch::Receiver<()>,
        timeout: Duration,
    },
    Redirect(redirect::Answer),
    /// Answered from the cache, without the app.
    Cached(Arc<cache::Stored>),
    /// Counted as in flight on `guard.addr` until the guard is dropped. `cache` is
    /// what the route's cache said, when it has one.
    Upstream(InFlightGuard, Option<Cacheable>),
}

/// A request on a route with a cache that was not answered from it.
pub(crate) enum Cacheable {
    Bypass,
    Miss {
        key: u128,
        owner: Arc<str>,
        policy: Arc<CachePolicy>,
    },
}

/// One request counted in [`RouteTable::in_flight`] while it lives.
pub(crate) struct InFlightGuard {
    shared: Arc<Shared>,
    pub(crate) addr: Upstream,
    /// The environment the request is for, to name it when its app does not answer.
    pub(crate) owner: Arc<str>,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let addr = &self.addr;
        self.shared.in_flight.send_if_modified(|counts| {
            let Some(count) = counts.get_mut(addr) else {
                return false;
            };
            *count -= 1;
            if *count == 0 {
                counts.remove(addr);
                return true;
            }
            false
        });
    }
}

impl RouteTable {
    pub fn new() -> RouteTable {
        RouteTable::default()
    }

    /// A table whose HTTP cache holds at most `bytes` of responses.
    pub fn with_cache_capacity(bytes: usize) -> RouteTable {
        RouteTable {
            inner: Arc::new(Shared {
                cache: cache::HttpCache::with_capacity(bytes),
                ..Shared::default()
            }),
        }
    }

    /// Replaces every entry of `owner` (an environment) at once, and empties its HTTP
    /// cache (what it stored came from the code it ran before). A hold on the owner
    /// stays: requests it holds are routed to the new entries when it is released.
    pub fn set(&self, owner: &str, entries: Vec<RouteEntry>) {
        let mut tables = self.write();
        tables.by_owner.insert(owner.to_string(), entries);
        tables.reindex();
        self.inner.cache.purge(owner);
    }

    /// Sets (or, with `None`, lifts) the access control of `owner`: from now on every
    /// request to its routes is checked.
    pub fn set_access(&self, owner: &str, access: Option<HttpAccess>) {
        let mut tables = self.write();
        match access {
            Some(access) => tables.access.insert(owner.to_string(), Arc::new(access)),
            None => tables.access.remove(owner),
        };
        tables.reindex();
    }

    /// Sets (or, with `None`, stops) the access log of `owner`: every request its
    /// routes answer from now on has a line in the file.
    pub fn set_access_log(&self, owner: &str, path: Option<std::path::PathBuf>) {
        let mut tables = self.write();
        if tables.access_logs.get(owner).map(|l| l.path()) == path.as_deref() {
            return;
        }
        match path {
            Some(path) => tables
                .access_logs
                .insert(owner.to_string(), Arc::new(AccessLog::new(path))),
            None => tables.access_logs.remove(owner),
        };
        tables.reindex();
    }

    /// Empties the HTTP cache of `owner`; how many responses it dropped.
    pub fn clear_cache(&self, owner: &str) -> usize {
        self.inner.cache.purge(owner)
    }

    /// How many responses the HTTP cache holds, all environments together.
    pub fn cached_responses(&self) -> usize {
        self.inner.cache.len()
    }

    /// Drops every entry of `owner`, and its access log. Requests it holds are woken
    /// and answered with what the table says now (404 when nothing else serves their
    /// host); the hold itself stays until released.
    pub fn remove(&self, owner: &str) {
        let mut tables = self.write();
        let logged = tables.access_logs.remove(owner).is_some();
        if tables.by_owner.remove(owner).is_some() || logged {
            tables.reindex();
        }
        self.inner.cache.purge(owner);
        if let Some(hold) = tables.holds.get(owner) {
            hold.wake.send_replace(());
        }
    }

    pub fn entries(&self, owner: &str) -> Vec<RouteEntry> {
        self.read().by_owner.get(owner).cloned().unwrap_or_default()
    }

    /// The entry for a request's host (port ignored, case-insensitive) and path: the
    /// longest path prefix wins.
    pub fn lookup(&self, host: &str, path: &str) -> Option<Matched> {
        let host = normalize_host(host);
        let tables = self.read();
        tables.find(&host, path).map(|e| Matched {
            target: e.entry.target.clone(),
            prefix: e.entry.path.clone(),
        })
    }

    /// Holds the idempotent requests (GET, HEAD, OPTIONS, PUT, DELETE, TRACE) that match
    /// `owner`'s entries until [`release`](Self::release): they are then routed with
    /// the table as it is at that moment. Each request waits at most `timeout`, then is
    /// answered `503 Service Unavailable` with `Retry-After`. Other requests (POST,
    /// PATCH) go to the current target at once. Holding an owner that is already held
    /// only changes the timeout of requests that arrive from now on.
    pub fn hold(&self, owner: &str, timeout: Duration) {
        self.hold_inner(owner, timeout);
    }

    /// [`hold`](Self::hold), released when the returned guard is dropped, so that every
    /// way out of a deploy (including an error) releases. A guard does not release a
    /// later hold of the same owner made after its own was released.
    pub fn hold_guard(&self, owner: &str, timeout: Duration) -> HoldGuard {
        let id = self.hold_inner(owner, timeout);
        HoldGuard {
            table: self.clone(),
            owner: owner.to_string(),
            id,
        }
    }

    /// Ends the hold of `owner` (if any) and lets the requests it held through.
    pub fn release(&self, owner: &str) {
        self.release_if(owner, None);
    }

    pub fn is_held(&self, owner: &str) -> bool {
        self.read().holds.contains_key(owner)
    }

    /// How many proxied requests `addr` is serving now: counted from the moment the
    /// request is routed to it until its response body has been sent in full or the
    /// client went away.
    pub fn in_flight(&self, addr: impl Into<Upstream>) -> usize {
        self.inner
            .in_flight
            .borrow()
            .get(&addr.into())
            .copied()
            .unwrap_or(0)
    }

    /// Waits until no request is in flight on `addr`, at most `timeout`; true when it
    /// got there. Called after the entries that pointed at `addr` were replaced: no new
    /// request can be routed to it then, so the count only goes down.
    pub async fn drained(&self, addr: impl Into<Upstream>, timeout: Duration) -> bool {
        let addr = addr.into();
        let mut counts = self.inner.in_flight.subscribe();
        let idle = async move {
            // The `Ref` handed back is dropped at once: it holds the channel's lock.
            counts
                .wait_for(|counts| !counts.contains_key(&addr))
                .await
                .is_ok()
        };
        tokio::time::timeout(timeout, idle).await.unwrap_or(false)
    }

    /// Where a request goes. `may_hold` is whether the request can be held (it is
    /// idempotent and was not held already). `head` is checked against the owner's
    /// access control and the route's cache (a retry, without it, was checked
    /// already); a request the cache answers is not counted; an upstream is counted in
    /// flight before the table's lock is released.
    pub(crate) fn route(
        &self,
        host: &str,
        path: &str,
        may_hold: bool,
        head: Option<&cache::RequestHead<'_>>,
    ) -> Routed {
        self.route_logged(host, path, may_hold, head).0
    }

    /// [`RouteTable::route`], and the access log of the environment that answers.
    pub(crate) fn route_logged(
        &self,
        host: &str,
        path: &str,
        may_hold: bool,
        head: Option<&cache::RequestHead<'_>>,
    ) -> (Routed, Option<Arc<AccessLog>>) {
        let host = normalize_host(host);
        let tables = self.read();
        let Some(found) = tables.find(&host, path) else {
            return (Routed::NotFound, None);
        };
        (
            self.route_found(found, path, may_hold, head, &tables),
            found.log.clone(),
        )
    }

    fn route_found(
        &self,
        found: &OwnedEntry,
        path: &str,
        may_hold: bool,
        head: Option<&cache::RequestHead<'_>>,
        tables: &Tables,
    ) -> Routed {
        if let (Some(access), Some(request)) = (&found.access, head) {
            let verdict = access.check(request.client, request.headers);
            if verdict != access::Verdict::Pass {
                return Routed::Denied(verdict);
            }
        }
        if let Some(answer) = redirect::find(&found.entry.redirects, path) {
            return Routed::Redirect(answer);
        }
        if may_hold && let Some(hold) = tables.holds.get(&*found.owner) {
            return Routed::Held {
                released: hold.wake.subscribe(),
                timeout: hold.timeout,
            };
        }
        match &found.entry.target {
            Target::Redirect { location, code } => Routed::Redirect(redirect::whole_route(
                location,
                *code,
                &found.entry.path,
                path,
            )),
            Target::Upstream(addr) => {
                let cacheable = match (&found.entry.cache, head) {
                    (Some(policy), Some(request)) => {
                        let router_credentials = found
                            .access
                            .as_ref()
                            .is_some_and(|access| access.authorized(request.headers));
                        match self.inner.cache.lookup(
                            &found.owner,
                            policy,
                            request,
                            tokio::time::Instant::now(),
                            router_credentials,
                        ) {
                            cache::Lookup::Hit(stored) => return Routed::Cached(stored),
                            cache::Lookup::Bypass => Some(Cacheable::Bypass),
                            cache::Lookup::Miss { key } => Some(Cacheable::Miss {
                                key,
                                owner: found.owner.clone(),
                                policy: policy.clone(),
                            }),
                        }
                    }
                    (Some(_), None) => Some(Cacheable::Bypass),
                    (None, _) => None,
                };
                let addr = addr.clone();
                // No waiter cares about a count going up: `drained` waits for zero.
                self.inner.in_flight.send_if_modified(|counts| {
                    *counts.entry(addr.clone()).or_default() += 1;
                    false
                });
                Routed::Upstream(
                    InFlightGuard {
                        shared: self.inner.clone(),
                        addr,
                        owner: found.owner.clone(),
                    },
                    cacheable,
                )
            }
        }
    }

    fn hold_inner(&self, owner: &str, timeout: Duration) -> u64 {
        let mut tables = self.write();
        let hold = tables
            .holds
            .entry(owner.to_string())
            .or_insert_with(|| Hold {
                id: self.inner.next_hold_id.fetch_add(1, Ordering::Relaxed),
                timeout,
                wake: watch::Sender::new(()),
            });
        hold.timeout = timeout;
        hold.id
    }

    fn release_if(&self, owner: &str, id: Option<u64>) {
        let mut tables = self.write();
        if id.is_none_or(|id| tables.holds.get(owner).is_some_and(|h| h.id == id)) {
            // Dropping the sender wakes every waiter.
            tables.holds.remove(owner);
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Tables> {
        self.inner.tables.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Tables> {
        self.inner.tables.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Tables {
    fn find(&self, host: &str, path: &str) -> Option<&OwnedEntry> {
        self.by_host
            .get(host)?
            .iter()
            .find(|e| path_has_prefix(path, &e.entry.path))
    }

    fn reindex(&mut self) {
        let mut by_host: HashMap<String, Vec<OwnedEntry>> = HashMap::new();
        for (owner, entries) in &self.by_owner {
            let access = self.access.get(owner).cloned();
            let log = self.access_logs.get(owner).cloned();
            let owner: Arc<str> = Arc::from(owner.as_str());
            for entry in entries {
                by_host
                    .entry(normalize_host(&entry.host))
                    .or_default()
                    .push(OwnedEntry {
                        owner: owner.clone(),
                        entry: entry.clone(),
                        access: access.clone(),
                        log: log.clone(),
                    });
            }
        }
        for entries in by_host.values_mut() {
            entries.sort_by(|a, b| {
                let (a, b) = (&a.entry, &b.entry);
                b.path.len().cmp(&a.path.len()).then(a.path.cmp(&b.path))
            });
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
    use std::net::SocketAddr;

    use super::*;

    fn upstream(port: u16) -> Target {
        Target::Upstream(SocketAddr::from(([127, 0, 0, 1], port)).into())
    }

    fn entry(host: &str, path: &str, port: u16) -> RouteEntry {
        RouteEntry::new(host, path, upstream(port))
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

    #[test]
    fn a_hold_guard_releases_its_own_hold_only() {
        let table = RouteTable::new();
        let timeout = Duration::from_secs(1);
        let guard = table.hold_guard("shop/main", timeout);
        assert!(table.is_held("shop/main"));
        assert!(!table.is_held("shop/dev"));
        guard.release();
        assert!(!table.is_held("shop/main"));

        let stale = table.hold_guard("shop/main", timeout);
        table.release("shop/main");
        table.hold("shop/main", timeout);
        drop(stale);
        assert!(
            table.is_held("shop/main"),
            "a later hold outlives an old guard"
        );
        table.release("shop/main");
        assert!(!table.is_held("shop/main"));
    }
}
