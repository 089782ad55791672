//! The HTTP cache of routes (routes.yaml `cache`), shared by every environment of the
//! router and bounded in size.
//!
//! Only GET and HEAD are answered from it (HEAD from a stored GET). A request's key is
//! its environment, host, path and query, the values of the route's `headers`, and
//! the values of the cookies the route names (`cookies: ['*']`: any cookie bypasses
//! the cache; `[]`: cookies are ignored). What the app sends decides the rest:
//! `Cache-Control: private|no-store|no-cache` and `Set-Cookie` are never stored,
//! `s-maxage`, then `max-age`, then `Expires` give the time to live, else the route's
//! `default_ttl` (0 by default: nothing without caching headers is stored). A request
//! with `Authorization` bypasses, unless it is the credentials of the environment's
//! HTTP access control, which the router checked (RFC 9111 §3.5). A `Vary`
//! response is stored with the values of the headers it names and only answers
//! requests with the same values. Misses of one key wait for the one request that
//! went to the app (coalescing). An environment's entries go when it deploys.
//!
//! A hit takes the entries' read lock only, and allocates only the response it
//! answers with; recency is an atomic counter.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hyper::header::{self, HeaderMap, HeaderName};
use hyper::{Method, StatusCode};
use tokio::sync::watch;
use tokio::time::Instant;

/// Responses larger than this are passed through, never stored.
pub const MAX_ENTRY_BYTES: usize = 4 * 1024 * 1024;
/// The default bound on the bytes of all stored responses.
pub const DEFAULT_CAPACITY_BYTES: usize = 256 * 1024 * 1024;
/// `X-Platform-Cache`, as on Platform.sh.
pub(crate) const X_PLATFORM_CACHE: HeaderName = HeaderName::from_static("x-platform-cache");

/// A route's cache settings, compiled.
#[derive(Debug, Clone)]
pub struct CachePolicy {
    default_ttl: Duration,
    cookies: Cookies,
    headers: Vec<HeaderName>,
    /// As written, for equality.
    source: (Vec<String>, Vec<String>),
}

#[derive(Debug, Clone)]
enum Cookies {
    /// `['*']`: a request with any cookie bypasses the cache.
    Bypass,
    /// The values of these cookies are part of the key; others are ignored (`[]`:
    /// all are).
    Key(Vec<CookieName>),
}

#[derive(Debug, Clone)]
enum CookieName {
    Exact(String),
    /// `/regex/`.
    Pattern(regex::Regex),
}

impl PartialEq for CachePolicy {
    fn eq(&self, other: &CachePolicy) -> bool {
        self.default_ttl == other.default_ttl && self.source == other.source
    }
}

impl Eq for CachePolicy {}

impl CachePolicy {
    /// An enabled cache: `cookies` and `headers` as routes.yaml has them.
    pub fn new(
        default_ttl_seconds: u64,
        cookies: &[String],
        headers: &[String],
    ) -> Result<CachePolicy, String> {
        let cookie_rule = if cookies.iter().any(|c| c == "*") {
            Cookies::Bypass
        } else {
            let names = cookies
                .iter()
                .map(
                    |name| match name.strip_prefix('/').and_then(|n| n.strip_suffix('/')) {
                        Some(pattern) => regex::Regex::new(pattern)
                            .map(CookieName::Pattern)
                            .map_err(|e| format!("cookie pattern `{name}`: {e}")),
                        None => Ok(CookieName::Exact(name.clone())),
                    },
                )
                .collect::<Result<Vec<_>, _>>()?;
            Cookies::Key(names)
        };
        let header_names = headers
            .iter()
            .map(|h| {
                HeaderName::from_bytes(h.as_bytes()).map_err(|_| format!("invalid header `{h}`"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CachePolicy {
            default_ttl: Duration::from_secs(default_ttl_seconds),
            cookies: cookie_rule,
            headers: header_names,
            source: (cookies.to_vec(), headers.to_vec()),
        })
    }
}

/// A request's head, as the router's checks and the cache see it.
pub(crate) struct RequestHead<'a> {
    /// The client's address.
    pub client: std::net::IpAddr,
    pub method: &'a Method,
    pub host: &'a str,
    pub path_and_query: &'a str,
    pub headers: &'a HeaderMap,
}

/// What the cache says about a request on a route with a cache.
pub(crate) enum Lookup {
    /// Not answered from the cache, nor stored: not GET/HEAD, a cookie the route
    /// bypasses on, or credentials.
    Bypass,
    /// Not stored (yet): `key` is where its response goes, when it may be stored.
    Miss {
        key: u128,
    },
    Hit(Arc<Stored>),
}

/// A stored response.
pub(crate) struct Stored {
    owner: Arc<str>,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    expires: Instant,
    /// The headers its `Vary` names, and the hash of the request's values of them.
    vary: Vec<HeaderName>,
    vary_hash: u64,
    last_used: AtomicU64,
}

impl Stored {
    fn size(&self) -> usize {
        self.body.len()
            + self
                .headers
                .iter()
                .map(|(n, v)| n.as_str().len() + v.len())
                .sum::<usize>()
    }
}

/// The store, and the misses being fetched.
pub(crate) struct HttpCache {
    entries: RwLock<HashMap<u128, Arc<Stored>>>,
    bytes: AtomicUsize,
    capacity: usize,
    tick: AtomicU64,
    /// Keys one request is fetching; the others wait for it to finish.
    fetching: Mutex<HashMap<u128, watch::Receiver<()>>>,
    keys: (RandomState, RandomState),
}

impl Default for HttpCache {
    fn default() -> HttpCache {
        HttpCache::with_capacity(DEFAULT_CAPACITY_BYTES)
    }
}

/// The one request fetching a key; its waiters go on when it is dropped.
pub(crate) struct Fetching<'a> {
    cache: &'a HttpCache,
    key: u128,
    _done: watch::Sender<()>,
}

impl Drop for Fetching<'_> {
    fn drop(&mut self) {
        lock(&self.cache.fetching).remove(&self.key);
    }
}

/// Whether this request fetches a missing key or waits for the one that does.
pub(crate) enum Miss<'a> {
    Fetch(Fetching<'a>),
    Wait(watch::Receiver<()>),
}

impl HttpCache {
    pub(crate) fn with_capacity(capacity: usize) -> HttpCache {
        HttpCache {
            entries: RwLock::default(),
            bytes: AtomicUsize::new(0),
            capacity,
            tick: AtomicU64::new(0),
            fetching: Mutex::default(),
            keys: (RandomState::new(), RandomState::new()),
        }
    }

    /// `router_credentials`: the request's `Authorization` is the environment's
    /// access control's, not the app's.
    pub(crate) fn lookup(
        &self,
        owner: &str,
        policy: &CachePolicy,
        request: &RequestHead<'_>,
        now: Instant,
        router_credentials: bool,
    ) -> Lookup {
        if (request.method != Method::GET && request.method != Method::HEAD)
            || (request.headers.contains_key(header::AUTHORIZATION) && !router_credentials)
        {
            return Lookup::Bypass;
        }
        let Some(key) = self.key(owner, policy, request) else {
            return Lookup::Bypass;
        };
        let entries = read(&self.entries);
        match entries.get(&key) {
            Some(stored)
                if stored.expires > now
                    && stored.vary_hash == self.vary_hash(&stored.vary, request.headers) =>
            {
                stored
                    .last_used
                    .store(self.tick.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
                Lookup::Hit(stored.clone())
            }
            _ => Lookup::Miss { key },
        }
    }

    /// A stored, fresh response under `key` for a request with these headers (for
    /// the waiters of a coalesced miss).
    pub(crate) fn get(&self, key: u128, headers: &HeaderMap, now: Instant) -> Option<Arc<Stored>> {
        read(&self.entries)
            .get(&key)
            .filter(|stored| {
                stored.expires > now && stored.vary_hash == self.vary_hash(&stored.vary, headers)
            })
            .cloned()
    }

    pub(crate) fn begin(&self, key: u128) -> Miss<'_> {
        let mut fetching = lock(&self.fetching);
        if let Some(done) = fetching.get(&key) {
            return Miss::Wait(done.clone());
        }
        let (done, waiting) = watch::channel(());
        fetching.insert(key, waiting);
        Miss::Fetch(Fetching {
            cache: self,
            key,
            _done: done,
        })
    }

    /// Stores a response to `request` under `key` when it may be stored; true when it
    /// was.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn store(
        &self,
        owner: &str,
        policy: &CachePolicy,
        key: u128,
        request_headers: &HeaderMap,
        status: StatusCode,
        headers: &HeaderMap,
        body: Bytes,
        now: (Instant, SystemTime),
    ) -> bool {
        if body.len() > MAX_ENTRY_BYTES || body.len() > self.capacity {
            return false;
        }
        let Some(ttl) = time_to_live(status, headers, policy.default_ttl, now.1) else {
            return false;
        };
        let Some(vary) = vary(headers) else {
            return false;
        };
        let vary_hash = self.vary_hash(&vary, request_headers);
        let stored = Arc::new(Stored {
            owner: Arc::from(owner),
            status,
            headers: headers.clone(),
            body,
            expires: now.0 + ttl,
            vary,
            vary_hash,
            last_used: AtomicU64::new(self.tick.fetch_add(1, Ordering::Relaxed)),
        });
        let size = stored.size();
        let mut entries = write(&self.entries);
        if let Some(old) = entries.insert(key, stored) {
            self.bytes.fetch_sub(old.size(), Ordering::Relaxed);
        }
        let total = self.bytes.fetch_add(size, Ordering::Relaxed) + size;
        if total > self.capacity {
            self.evict(&mut entries, now.0);
        }
        true
    }

    /// Drops every entry of `owner` (it deployed, or was asked to clear).
    pub(crate) fn purge(&self, owner: &str) -> usize {
        let mut entries = write(&self.entries);
        let before = entries.len();
        entries.retain(|_, stored| {
            let keep = &*stored.owner != owner;
            if !keep {
                self.bytes.fetch_sub(stored.size(), Ordering::Relaxed);
            }
            keep
        });
        before - entries.len()
    }

    pub(crate) fn len(&self) -> usize {
        read(&self.entries).len()
    }

    /// Expired entries first, then the least recently used, until a tenth below the
    /// capacity (so that the next few stores do not evict again).
    fn evict(&self, entries: &mut HashMap<u128, Arc<Stored>>, now: Instant) {
        entries.retain(|_, stored| {
            let keep = stored.expires > now;
            if !keep {
                self.bytes.fetch_sub(stored.size(), Ordering::Relaxed);
            }
            keep
        });
        let target = self.capacity - self.capacity / 10;
        if self.bytes.load(Ordering::Relaxed) <= target {
            return;
        }
        let mut by_use: Vec<(u64, u128)> = entries
            .iter()
            .map(|(key, stored)| (stored.last_used.load(Ordering::Relaxed), *key))
            .collect();
        by_use.sort_unstable();
        for (_, key) in by_use {
            if self.bytes.load(Ordering::Relaxed) <= target {
                break;
            }
            if let Some(stored) = entries.remove(&key) {
                self.bytes.fetch_sub(stored.size(), Ordering::Relaxed);
            }
        }
    }

    /// The key of a cacheable request; `None` when a cookie makes it bypass.
    fn key(&self, owner: &str, policy: &CachePolicy, request: &RequestHead<'_>) -> Option<u128> {
        let mut first = self.keys.0.build_hasher();
        let mut second = self.keys.1.build_hasher();
        let mut feed = |bytes: &[u8]| {
            bytes.hash(&mut first);
            bytes.hash(&mut second);
        };
        feed(owner.as_bytes());
        feed(request.host.as_bytes());
        feed(request.path_and_query.as_bytes());
        for name in &policy.headers {
            feed(name.as_str().as_bytes());
            for value in request.headers.get_all(name) {
                feed(value.as_bytes());
            }
        }
        let cookie_headers = request.headers.get_all(header::COOKIE);
        // Cookies the key cannot read make the request bypass, as any cookie does
        // with `['*']`.
        if cookie_headers.iter().any(|v| v.to_str().is_err()) {
            return None;
        }
        match &policy.cookies {
            Cookies::Bypass if request.headers.contains_key(header::COOKIE) => return None,
            Cookies::Bypass => {}
            Cookies::Key(names) => {
                for name in names {
                    feed(b"\0cookie");
                    for (cookie, value) in cookies_of(request.headers) {
                        let matches = match name {
                            CookieName::Exact(exact) => exact == cookie,
                            CookieName::Pattern(pattern) => pattern.is_match(cookie),
                        };
                        if matches {
                            feed(cookie.as_bytes());
                            feed(value.as_bytes());
                        }
                    }
                }
            }
        }
        Some((u128::from(first.finish()) << 64) | u128::from(second.finish()))
    }

    fn vary_hash(&self, names: &[HeaderName], headers: &HeaderMap) -> u64 {
        if names.is_empty() {
            return 0;
        }
        let mut hasher = self.keys.0.build_hasher();
        for name in names {
            name.as_str().hash(&mut hasher);
            for value in headers.get_all(name) {
                value.as_bytes().hash(&mut hasher);
            }
            0xffu8.hash(&mut hasher);
        }
        hasher.finish()
    }
}

/// The `name=value` pairs of the request's `Cookie` headers.
fn cookies_of(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = name.trim();
            (!name.is_empty()).then(|| (name, value.trim()))
        })
}

/// Whether a response with this head may be stored (its body's size aside).
pub(crate) fn may_store(
    status: StatusCode,
    headers: &HeaderMap,
    policy: &CachePolicy,
    now: SystemTime,
) -> bool {
    time_to_live(status, headers, policy.default_ttl, now).is_some() && vary(headers).is_some()
}

/// Statuses stored when the response allows it (RFC 9110 §15.1 heuristically
/// cacheable ones, and the redirects an app answers with).
fn storable_status(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 302 | 307 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// How long a response may be stored; `None` when it may not be.
fn time_to_live(
    status: StatusCode,
    headers: &HeaderMap,
    default_ttl: Duration,
    now: SystemTime,
) -> Option<Duration> {
    if !storable_status(status) || headers.contains_key(header::SET_COOKIE) {
        return None;
    }
    let mut max_age = None;
    let mut s_maxage = None;
    for value in headers.get_all(header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else {
            return None;
        };
        for directive in value.split(',') {
            let (name, argument) = directive.split_once('=').unwrap_or((directive, ""));
            let name = name.trim().to_ascii_lowercase();
            let seconds = || argument.trim().trim_matches('"').parse::<u64>().ok();
            match name.as_str() {
                "private" | "no-store" | "no-cache" => return None,
                "max-age" => max_age = Some(seconds().unwrap_or(0)),
                "s-maxage" => s_maxage = Some(seconds().unwrap_or(0)),
                _ => {}
            }
        }
    }
    let ttl = match (s_maxage, max_age) {
        (Some(seconds), _) | (None, Some(seconds)) => Duration::from_secs(seconds),
        (None, None) => match headers.get(header::EXPIRES) {
            Some(expires) => {
                // An invalid date means "already expired" (RFC 9111 §5.3).
                let at = expires
                    .to_str()
                    .ok()
                    .and_then(|e| httpdate::parse_http_date(e).ok())?;
                let date = headers
                    .get(header::DATE)
                    .and_then(|d| d.to_str().ok())
                    .and_then(|d| httpdate::parse_http_date(d).ok())
                    .unwrap_or(now);
                at.duration_since(date).ok()?
            }
            None => default_ttl,
        },
    };
    (!ttl.is_zero()).then_some(ttl)
}

/// The header names a response's `Vary` lists; `None` for `Vary: *` (never stored).
fn vary(headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names = Vec::new();
    for value in headers.get_all(header::VARY) {
        for name in value.to_str().ok()?.split(',') {
            let name = name.trim();
            if name == "*" {
                return None;
            }
            if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
                names.push(name);
            }
        }
    }
    Some(names)
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

fn lock<T>(lock: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    lock.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderValue;

    use super::*;

    const OWNER: &str = "shop/main";
    const LOOPBACK: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn policy(cookies: &[&str], headers: &[&str]) -> CachePolicy {
        let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        CachePolicy::new(0, &strings(cookies), &strings(headers)).expect("policy")
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        map
    }

    fn now() -> (Instant, SystemTime) {
        (
            Instant::now(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        )
    }

    /// What a request gets after a response with `response` headers was stored for
    /// a `stored_with` request: `HIT`, `MISS` or `BYPASS`.
    fn check(
        policy: &CachePolicy,
        stored_with: &[(&str, &str)],
        response: &[(&str, &str)],
        method: Method,
        asked_with: &[(&str, &str)],
        expected: &str,
    ) {
        let cache = HttpCache::default();
        let now = now();
        let request = |method: &Method, h: &HeaderMap| -> &'static str {
            let asked = RequestHead {
                client: LOOPBACK,
                method,
                host: "main.shop.localhost",
                path_and_query: "/page?x=1",
                headers: h,
            };
            match cache.lookup(OWNER, policy, &asked, now.0, false) {
                Lookup::Bypass => "BYPASS",
                Lookup::Miss { .. } => "MISS",
                Lookup::Hit(_) => "HIT",
            }
        };
        let first = headers(stored_with);
        let key = match cache.lookup(
            OWNER,
            policy,
            &RequestHead {
                client: LOOPBACK,
                method: &Method::GET,
                host: "main.shop.localhost",
                path_and_query: "/page?x=1",
                headers: &first,
            },
            now.0,
            false,
        ) {
            Lookup::Miss { key } => key,
            _ => panic!("the first request misses"),
        };
        cache.store(
            OWNER,
            policy,
            key,
            &first,
            StatusCode::OK,
            &headers(response),
            Bytes::from_static(b"page"),
            now,
        );
        let got = request(&method, &headers(asked_with));
        assert_eq!(
            got, expected,
            "stored with {stored_with:?} / {response:?}, asked {method} with {asked_with:?}"
        );
    }

    const CACHEABLE: &[(&str, &str)] = &[("cache-control", "max-age=60")];

    #[test]
    fn hit_miss_and_bypass_by_cookie_header_and_method() {
        let any_cookie = policy(&["*"], &["Accept", "Accept-Language"]);
        let no_cookies = policy(&[], &[]);
        let named = policy(&["lang", "/^sess_/"], &[]);
        let vary: &[(&str, &str)] = &[("cache-control", "max-age=60"), ("vary", "X-Device")];
        let vary_any: &[(&str, &str)] = &[("cache-control", "max-age=60"), ("vary", "*")];
        type Headers<'a> = &'a [(&'a str, &'a str)];
        // (route, stored for a request with, response, asked with, method, expected)
        #[rustfmt::skip]
        let table: &[(&CachePolicy, Headers, Headers, Headers, Method, &str)] = &[
            // Same request: a hit; HEAD is answered from the GET.
            (&any_cookie, &[], CACHEABLE, &[], Method::GET, "HIT"),
            (&any_cookie, &[], CACHEABLE, &[], Method::HEAD, "HIT"),
            // POST and other methods never use the cache.
            (&any_cookie, &[], CACHEABLE, &[], Method::POST, "BYPASS"),
            (&any_cookie, &[], CACHEABLE, &[], Method::PUT, "BYPASS"),
            // ['*']: any cookie bypasses; []: cookies are ignored.
            (&any_cookie, &[], CACHEABLE, &[("cookie", "a=1")], Method::GET, "BYPASS"),
            (&no_cookies, &[], CACHEABLE, &[("cookie", "a=1")], Method::GET, "HIT"),
            (&any_cookie, &[], CACHEABLE, &[("cookie", "")], Method::GET, "BYPASS"),
            // Named cookies and /regex/ are part of the key; others are ignored.
            (&named, &[("cookie", "lang=fr")], CACHEABLE, &[("cookie", "lang=fr; x=2")], Method::GET, "HIT"),
            (&named, &[("cookie", "lang=fr")], CACHEABLE, &[("cookie", "lang=de")], Method::GET, "MISS"),
            (&named, &[("cookie", "sess_a=1")], CACHEABLE, &[("cookie", "sess_a=2")], Method::GET, "MISS"),
            (&named, &[("cookie", "sess_a=1")], CACHEABLE, &[("cookie", "b=2; sess_a=1")], Method::GET, "HIT"),
            // Headers are part of the key.
            (&any_cookie, &[("accept", "text/html")], CACHEABLE, &[("accept", "text/html")], Method::GET, "HIT"),
            (&any_cookie, &[("accept", "text/html")], CACHEABLE, &[("accept", "text/json")], Method::GET, "MISS"),
            (&no_cookies, &[("accept", "text/html")], CACHEABLE, &[("accept", "text/json")], Method::GET, "HIT"),
            // Credentials bypass.
            (&no_cookies, &[], CACHEABLE, &[("authorization", "Basic eDp5")], Method::GET, "BYPASS"),
            // Vary: stored with the values of the headers it names; `*`: not stored.
            (&no_cookies, &[("x-device", "mobile")], vary, &[("x-device", "mobile")], Method::GET, "HIT"),
            (&no_cookies, &[("x-device", "mobile")], vary, &[("x-device", "desktop")], Method::GET, "MISS"),
            (&no_cookies, &[], vary_any, &[], Method::GET, "MISS"),
        ];
        for (policy, stored_with, response, asked_with, method, expected) in table {
            check(
                policy,
                stored_with,
                response,
                method.clone(),
                asked_with,
                expected,
            );
        }
    }

    #[test]
    fn what_the_app_sends_decides_the_time_to_live() {
        let now = now().1;
        let default = Duration::from_secs(30);
        let check =
            |status: u16, pairs: &[(&str, &str)], default: Duration, expected: Option<u64>| {
                let got = time_to_live(
                    StatusCode::from_u16(status).expect("status"),
                    &headers(pairs),
                    default,
                    now,
                );
                assert_eq!(got, expected.map(Duration::from_secs), "{status} {pairs:?}");
            };
        check(200, &[], default, Some(30));
        check(200, &[], Duration::ZERO, None);
        check(200, &[("cache-control", "max-age=60")], default, Some(60));
        check(
            200,
            &[("cache-control", "public, max-age=60, s-maxage=600")],
            default,
            Some(600),
        );
        check(200, &[("cache-control", "max-age=0")], default, None);
        check(
            200,
            &[("cache-control", "private, max-age=60")],
            default,
            None,
        );
        check(200, &[("cache-control", "no-store")], default, None);
        check(200, &[("cache-control", "No-Cache")], default, None);
        check(
            200,
            &[("set-cookie", "a=1"), ("cache-control", "max-age=60")],
            default,
            None,
        );
        check(
            200,
            &[
                ("date", "Tue, 14 Nov 2023 22:13:20 GMT"),
                ("expires", "Tue, 14 Nov 2023 22:15:20 GMT"),
            ],
            default,
            Some(120),
        );
        check(200, &[("expires", "0")], default, None);
        check(500, &[("cache-control", "max-age=60")], default, None);
        check(404, &[("cache-control", "max-age=60")], default, Some(60));
    }

    /// Stores `size` bytes under `key` for `owner`, for a minute.
    fn put(cache: &HttpCache, owner: &str, key: u128, size: usize) -> bool {
        let policy = policy(&[], &[]);
        let response = headers(&[("cache-control", "max-age=60")]);
        let body = Bytes::from(vec![b'x'; size]);
        let empty = HeaderMap::new();
        cache.store(
            owner,
            &policy,
            key,
            &empty,
            StatusCode::OK,
            &response,
            body,
            now(),
        )
    }

    /// The stored body of `/<n>`, or the key it misses under.
    fn get(cache: &HttpCache, owner: &str, n: usize, at: Instant) -> Result<Bytes, u128> {
        let path = format!("/{n}");
        let empty = HeaderMap::new();
        let request = RequestHead {
            client: LOOPBACK,
            method: &Method::GET,
            host: "h",
            path_and_query: &path,
            headers: &empty,
        };
        match cache.lookup(owner, &policy(&[], &[]), &request, at, false) {
            Lookup::Miss { key } => Err(key),
            Lookup::Hit(stored) => Ok(stored.body.clone()),
            Lookup::Bypass => panic!("bypass"),
        }
    }

    #[test]
    fn entries_expire_and_the_least_recently_used_go_first() {
        let cache = HttpCache::with_capacity(3000);
        let now = now().0;
        for n in 0..3 {
            let key = get(&cache, OWNER, n, now).expect_err("miss");
            assert!(put(&cache, OWNER, key, 900));
        }
        // 0 is used again, so 1 is the least recently used when 3 comes in.
        assert!(get(&cache, OWNER, 0, now).is_ok());
        let key = get(&cache, OWNER, 3, now).expect_err("miss");
        assert!(put(&cache, OWNER, key, 900));
        assert!(get(&cache, OWNER, 0, now).is_ok(), "recently used stays");
        assert!(
            get(&cache, OWNER, 1, now).is_err(),
            "least recently used went"
        );
        assert!(get(&cache, OWNER, 3, now).is_ok());
        // max-age honoured: a minute later, every entry is stale.
        let later = now + Duration::from_secs(61);
        assert!(get(&cache, OWNER, 0, later).is_err());
        // Larger than the whole cache: not stored.
        let key = get(&cache, OWNER, 9, now).expect_err("miss");
        assert!(!put(&cache, OWNER, key, 4000));
    }

    #[test]
    fn purge_drops_one_environment_only() {
        let cache = HttpCache::default();
        let now = now().0;
        for owner in ["shop/main", "shop/dev"] {
            let key = get(&cache, owner, 0, now).expect_err("miss");
            assert!(put(&cache, owner, key, 10));
        }
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.purge("shop/main"), 1);
        assert_eq!(cache.len(), 1);
        assert!(get(&cache, "shop/dev", 0, now).is_ok());
        assert_eq!(cache.purge("shop/main"), 0);
    }

    #[test]
    fn one_fetch_per_missing_key() {
        let cache = HttpCache::default();
        let Miss::Fetch(fetching) = cache.begin(7) else {
            panic!("the first miss fetches");
        };
        let Miss::Wait(waiting) = cache.begin(7) else {
            panic!("the second waits");
        };
        assert!(
            matches!(cache.begin(8), Miss::Fetch(_)),
            "another key fetches"
        );
        drop(fetching);
        assert!(
            waiting.has_changed().is_err(),
            "the waiter is woken when the fetch ends"
        );
        assert!(matches!(cache.begin(7), Miss::Fetch(_)));
    }
}
