//! The HTTP cache and redirects, through the real proxy in front of an app that says
//! how often it was asked.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use grove_router::{CachePolicy, Redirect, RouteEntry, RouteTable, Target};
use http_body_util::Full;
use hyper::header::HeaderMap;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::support::*;

/// An app whose answer to a path depends on it: `/max-age` may be stored for a
/// minute, `/private` and `/no-store` never, `/plain` says nothing, `/slow` takes a
/// while and may be stored. Every answer says how often that path was asked.
struct App {
    addr: SocketAddr,
    asked: Arc<Mutex<HashMap<String, usize>>>,
}

impl App {
    async fn start() -> App {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind app");
        let addr = listener.local_addr().expect("app address");
        let asked = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
        let counts = asked.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counts = counts.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let counts = counts.clone();
                            async move { Ok::<_, Infallible>(answer(&req, &counts).await) }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        App { addr, asked }
    }

    fn asked(&self, path: &str) -> usize {
        self.asked
            .lock()
            .expect("counts")
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

async fn answer(
    req: &Request<hyper::body::Incoming>,
    counts: &Mutex<HashMap<String, usize>>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let n = {
        let mut counts = counts.lock().expect("counts");
        let n = counts.entry(path.clone()).or_default();
        *n += 1;
        *n
    };
    let cache_control = match path.as_str() {
        "/max-age" | "/slow" => Some("max-age=60"),
        "/private" => Some("private, max-age=60"),
        "/no-store" => Some("no-store"),
        _ => None,
    };
    if path == "/slow" {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut response = Response::new(Full::new(Bytes::from(format!("{path} #{n}"))));
    if let Some(cc) = cache_control {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, header::HeaderValue::from_static(cc));
    }
    response
}

struct Got {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Got {
    fn cache(&self) -> &str {
        self.headers
            .get("x-platform-cache")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
    }

    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
    }
}

async fn ask(router: &Router, method: Method, path: &str, headers: &[(&str, &str)]) -> Got {
    let reply = router.client().send_with(method, path, headers).await;
    Got {
        status: reply.status,
        headers: reply.headers,
        body: reply.body,
    }
}

fn cached_entries(app: &App, cookies: &[&str]) -> Vec<RouteEntry> {
    let cookies: Vec<String> = cookies.iter().map(|c| c.to_string()).collect();
    let headers = vec!["Accept".to_string(), "Accept-Language".to_string()];
    let policy = CachePolicy::new(0, &cookies, &headers).expect("policy");
    vec![RouteEntry::new(HOST, "/", Target::Upstream(app.addr.into())).with_cache(Some(policy))]
}

async fn cached_router(cookies: &[&str]) -> (App, RouteTable, Router) {
    let app = App::start().await;
    let table = RouteTable::new();
    table.set(OWNER, cached_entries(&app, cookies));
    let router = Router::start(&table).await;
    (app, table, router)
}

#[tokio::test]
async fn hits_misses_and_bypasses_through_the_router() {
    let (app, _table, router) = cached_router(&["*"]).await;
    let check = |got: &Got, label: &str, body: &str| {
        assert_eq!((got.cache(), got.body.as_str()), (label, body));
    };
    let get = Method::GET;
    check(
        &ask(&router, get.clone(), "/max-age", &[]).await,
        "MISS",
        "/max-age #1",
    );
    check(
        &ask(&router, get.clone(), "/max-age", &[]).await,
        "HIT",
        "/max-age #1",
    );
    let head = ask(&router, Method::HEAD, "/max-age", &[]).await;
    assert_eq!((head.cache(), head.body.as_str()), ("HIT", ""));
    // A cookie bypasses (`cookies: ['*']`); a header of the key is another entry.
    let cookie = [("cookie", "session=1")];
    check(
        &ask(&router, get.clone(), "/max-age", &cookie).await,
        "BYPASS",
        "/max-age #2",
    );
    let json = [("accept", "application/json")];
    check(
        &ask(&router, get.clone(), "/max-age", &json).await,
        "MISS",
        "/max-age #3",
    );
    check(
        &ask(&router, get.clone(), "/max-age", &json).await,
        "HIT",
        "/max-age #3",
    );
    // POST is never answered from the cache, nor stored.
    check(
        &ask(&router, Method::POST, "/max-age", &[]).await,
        "BYPASS",
        "/max-age #4",
    );
    check(
        &ask(&router, get.clone(), "/max-age", &[]).await,
        "HIT",
        "/max-age #1",
    );
    // private, no-store and no caching headers at all (default_ttl 0): never stored.
    for path in ["/private", "/no-store", "/plain"] {
        check(
            &ask(&router, get.clone(), path, &[]).await,
            "MISS",
            &format!("{path} #1"),
        );
        check(
            &ask(&router, get.clone(), path, &[]).await,
            "MISS",
            &format!("{path} #2"),
        );
    }
    assert_eq!(app.asked("/max-age"), 4);
}

#[tokio::test]
async fn cookies_named_by_the_route_are_part_of_the_key() {
    let (app, _table, router) = cached_router(&["lang"]).await;
    let fr = [("cookie", "lang=fr; tracking=1")];
    let de = [("cookie", "lang=de")];
    assert_eq!(
        ask(&router, Method::GET, "/max-age", &fr).await.cache(),
        "MISS"
    );
    let again = ask(
        &router,
        Method::GET,
        "/max-age",
        &[("cookie", "tracking=2; lang=fr")],
    )
    .await;
    assert_eq!((again.cache(), again.body.as_str()), ("HIT", "/max-age #1"));
    assert_eq!(
        ask(&router, Method::GET, "/max-age", &de).await.cache(),
        "MISS"
    );
    assert_eq!(app.asked("/max-age"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_misses_of_one_key_reach_the_app_once() {
    let (app, _table, router) = cached_router(&["*"]).await;
    let router = Arc::new(router);
    let asking: Vec<_> = (0..20)
        .map(|_| {
            let router = router.clone();
            tokio::spawn(async move { ask(&router, Method::GET, "/slow", &[]).await })
        })
        .collect();
    for asked in asking {
        let got = asked.await.expect("request");
        assert_eq!(
            (got.status, got.body.as_str()),
            (StatusCode::OK, "/slow #1")
        );
    }
    assert_eq!(app.asked("/slow"), 1);
}

#[tokio::test]
async fn a_deploy_purges_the_environments_cache() {
    let (app, table, router) = cached_router(&["*"]).await;
    assert_eq!(
        ask(&router, Method::GET, "/max-age", &[]).await.cache(),
        "MISS"
    );
    assert_eq!(
        ask(&router, Method::GET, "/max-age", &[]).await.cache(),
        "HIT"
    );
    // A deploy sets the environment's routes again.
    table.set(OWNER, cached_entries(&app, &["*"]));
    let got = ask(&router, Method::GET, "/max-age", &[]).await;
    assert_eq!((got.cache(), got.body.as_str()), ("MISS", "/max-age #2"));
    assert_eq!(
        ask(&router, Method::GET, "/max-age", &[]).await.cache(),
        "HIT"
    );
    // So does `cache:clear`.
    assert_eq!(table.clear_cache(OWNER), 1);
    assert_eq!(
        ask(&router, Method::GET, "/max-age", &[]).await.cache(),
        "MISS"
    );
}

#[tokio::test]
async fn a_route_without_cache_says_nothing_and_stores_nothing() {
    let app = App::start().await;
    let table = RouteTable::new();
    table.set(OWNER, entries(app.addr));
    let router = Router::start(&table).await;
    for n in 1..=2 {
        let got = ask(&router, Method::GET, "/max-age", &[]).await;
        assert_eq!(
            (got.cache(), got.body.as_str()),
            ("-", format!("/max-age #{n}").as_str())
        );
    }
}

#[tokio::test]
async fn redirects_are_answered_by_the_router() {
    let app = App::start().await;
    let table = RouteTable::new();
    let redirects = vec![
        Redirect::path("/old", true, true, "/new", 302, None),
        Redirect::path(
            "/moved",
            false,
            true,
            "https://example.com/",
            301,
            Some(3600),
        ),
        Redirect::regex("^/p/(\\d+)$", "/product?id=$1", 307, None).expect("regex"),
        Redirect::path("/perm", true, false, "/permanent", 308, None),
    ];
    table.set(
        OWNER,
        vec![
            RouteEntry::new(HOST, "/", Target::Upstream(app.addr.into())).with_redirects(redirects),
            RouteEntry::new(
                HOST,
                "/www/",
                Target::Redirect {
                    location: "https://www.example.com/".into(),
                    code: 301,
                },
            ),
        ],
    );
    let router = Router::start(&table).await;
    let check = |got: Got, code: u16, location: &str| {
        assert_eq!((got.status.as_u16(), got.location()), (code, location));
    };
    check(
        ask(&router, Method::GET, "/old/a/b?x=1", &[]).await,
        302,
        "/new/a/b?x=1",
    );
    let moved = ask(&router, Method::GET, "/moved", &[]).await;
    assert_eq!(
        moved
            .headers
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok()),
        Some("max-age=3600")
    );
    check(moved, 301, "https://example.com/");
    check(
        ask(&router, Method::POST, "/p/42?y=2", &[]).await,
        307,
        "/product?id=42&y=2",
    );
    check(
        ask(&router, Method::GET, "/perm/x", &[]).await,
        308,
        "/permanent",
    );
    check(
        ask(&router, Method::GET, "/www/a?b", &[]).await,
        301,
        "https://www.example.com/a?b",
    );
    // Paths no rule matches reach the app.
    let got = ask(&router, Method::GET, "/moved/child", &[]).await;
    assert_eq!(
        (got.status, got.body.as_str()),
        (StatusCode::OK, "/moved/child #1")
    );
    assert_eq!(app.asked("/old/a/b"), 0);
}

#[tokio::test]
async fn the_environments_own_credentials_do_not_bypass_the_cache() {
    let (app, table, router) = cached_router(&["*"]).await;
    let users = vec![("alice".to_string(), "secret".to_string())];
    let alice = [("authorization", "Basic YWxpY2U6c2VjcmV0")];
    // An app's own credentials bypass (RFC 9111 §3.5)…
    assert_eq!(
        ask(&router, Method::GET, "/max-age", &alice).await.cache(),
        "BYPASS"
    );
    // …the environment's access control's do not: the router checked them.
    table.set_access(OWNER, Some(grove_router::HttpAccess::new(&users, vec![])));
    assert_eq!(
        ask(&router, Method::GET, "/max-age", &alice).await.cache(),
        "MISS"
    );
    assert_eq!(
        ask(&router, Method::GET, "/max-age", &alice).await.cache(),
        "HIT"
    );
    // Never without them.
    assert_eq!(
        ask(&router, Method::GET, "/max-age", &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.asked("/max-age"), 2);
}
