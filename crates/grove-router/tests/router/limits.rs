//! Hostile clients: floods of idle connections, slow request heads, idle keep-alive
//! connections and clients that do not read. Timeouts are set far apart so that what
//! closed a connection within `EVENTUALLY` can only be the short one; nothing here
//! measures speed.

use std::time::Duration;

use grove_router::{ConnectionLimits, RouteTable};
use hyper::StatusCode;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::support::*;

const CAP: usize = 64;
/// Enough to see the short timeouts at work without slowing the tests down.
const SHORT: Duration = Duration::from_millis(300);
/// Longer than any test waits: a connection closed within `EVENTUALLY` was not closed
/// by a timeout set to this.
const NEVER: Duration = Duration::from_secs(600);

fn limits(header_read_timeout: Duration, idle_timeout: Duration) -> ConnectionLimits {
    ConnectionLimits {
        max_connections: CAP,
        header_read_timeout,
        idle_timeout,
        send_timeout: NEVER,
    }
}

async fn router_in_front_of(app: &Upstream, limits: ConnectionLimits) -> (RouteTable, Router) {
    let table = RouteTable::new();
    table.set(OWNER, entries(app.addr));
    let router = Router::with_limits(&table, limits).await;
    (table, router)
}

/// `n` connections that send nothing. Past the cap and the kernel's accept queue, a
/// connection is only established when the router accepts it.
async fn open_idle_connections(router: &Router, n: usize) -> Vec<TcpStream> {
    let mut idle = Vec::new();
    for _ in 0..n {
        let connected = tokio::time::timeout(EVENTUALLY, router.connect()).await;
        idle.push(connected.expect("the router keeps accepting connections"));
    }
    idle
}

/// Waits until the router closes `stream` (end of file or reset); panics after
/// `EVENTUALLY`. Whatever the router sent before is skipped.
async fn closed_by_the_router(stream: &mut TcpStream, what: &str) {
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(EVENTUALLY, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the router never closed {what}");
}

/// One keep-alive request on a raw connection, returning the response's status line
/// after reading the whole response (the app's bodies are short and sized).
async fn request(stream: &mut TcpStream) -> String {
    write(stream, &format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n")).await;
    let head = read_head(stream).await;
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no content-length in {head:?}"));
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.expect("response body");
    head.lines().next().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cannot_exhaust_the_router() {
    let app = Upstream::start("app").await;
    let (_table, router) = router_in_front_of(&app, limits(SHORT, SHORT)).await;

    let mut idle = open_idle_connections(&router, 4 * CAP).await;
    let reply = tokio::time::timeout(EVENTUALLY, router.client().get("/"))
        .await
        .expect("a real request is answered during the flood");
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "app"));

    for (n, stream) in idle.iter_mut().enumerate() {
        closed_by_the_router(stream, &format!("idle connection {n}")).await;
    }
    let stats = &router.stats;
    assert!(stats.peak_open() <= CAP, "{stats:?}");
    // Nothing spun: no accept failed, and each connection was accepted and closed once.
    assert_eq!(stats.accept_errors(), 0, "{stats:?}");
    assert!(stats.accepted() <= 4 * CAP as u64 + 2, "{stats:?}");
    assert!(
        stats.shed() + stats.timed_out() <= stats.accepted(),
        "{stats:?}"
    );
    eventually("every connection is closed", || stats.open() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_the_oldest_idle_connections_make_room_for_new_clients() {
    let app = Upstream::start("app").await;
    let (_table, router) = router_in_front_of(&app, limits(NEVER, NEVER)).await;

    let mut idle = open_idle_connections(&router, 4 * CAP).await;
    // No timeout can have freed a slot: only shedding lets this one in.
    let reply = tokio::time::timeout(EVENTUALLY, router.client().get("/"))
        .await
        .expect("a real request is answered at the cap");
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "app"));
    for (n, stream) in idle.iter_mut().take(3 * CAP).enumerate() {
        closed_by_the_router(stream, &format!("old idle connection {n}")).await;
    }
    let stats = &router.stats;
    assert!(stats.shed() >= 3 * CAP as u64, "{stats:?}");
    assert!(stats.peak_open() <= CAP, "{stats:?}");
    assert_eq!(stats.timed_out(), 0, "{stats:?}");
}

#[tokio::test]
async fn a_partial_request_head_is_closed_after_the_header_timeout() {
    let app = Upstream::start("app").await;
    let (_table, router) = router_in_front_of(&app, limits(SHORT, NEVER)).await;

    let mut first = router.connect().await;
    write(&mut first, &format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n")).await;
    closed_by_the_router(&mut first, "a connection with half a first head").await;

    // On a keep-alive connection the head is due from its first byte, even though
    // the idle timeout is long.
    let mut later = router.connect().await;
    assert_eq!(request(&mut later).await, "HTTP/1.1 200 OK");
    write(&mut later, "GET / HTTP/1.1\r\nHost: ").await;
    closed_by_the_router(&mut later, "a connection with half a second head").await;
    assert_eq!(router.stats.timed_out(), 2);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    // Slower than the idle timeout: a request in progress is not idle.
    let app = Upstream::with_latency("app", SHORT * 3).await;
    let (_table, router) = router_in_front_of(&app, limits(NEVER, SHORT)).await;

    let mut stream = router.connect().await;
    assert_eq!(request(&mut stream).await, "HTTP/1.1 200 OK");
    assert_eq!(request(&mut stream).await, "HTTP/1.1 200 OK");
    closed_by_the_router(&mut stream, "an idle keep-alive connection").await;
    assert_eq!(router.stats.timed_out(), 1);
}

#[tokio::test]
async fn a_client_that_does_not_read_is_closed_after_the_send_timeout() {
    // More than the socket buffers of both ends hold.
    const BODY: usize = 64 << 20;
    let app = raw_upstream(|mut stream| async move {
        write(
            &mut stream,
            &format!("HTTP/1.1 200 OK\r\nContent-Length: {BODY}\r\n\r\n"),
        )
        .await;
        let chunk = "x".repeat(1 << 20);
        for _ in 0..BODY >> 20 {
            write(&mut stream, &chunk).await;
        }
    })
    .await;
    let table = RouteTable::new();
    table.set(OWNER, entries(app));
    let router = Router::with_limits(
        &table,
        ConnectionLimits {
            send_timeout: SHORT,
            ..limits(NEVER, NEVER)
        },
    )
    .await;

    let mut stream = router.connect().await;
    write(
        &mut stream,
        &format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n"),
    )
    .await;
    eventually("the router gives up on the client", || {
        router.stats.timed_out() == 1
    })
    .await;
    eventually("the connection is closed", || router.stats.open() == 0).await;
    eventually("the upstream request is no longer in flight", || {
        table.in_flight(app) == 0
    })
    .await;
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_finishes_requests_in_flight() {
    let app = Upstream::with_latency("app", SHORT).await;
    let (table, router) = router_in_front_of(&app, limits(NEVER, NEVER)).await;
    let mut idle = router.connect().await;
    let client = router.client();
    let request = tokio::spawn(async move { client.get("/").await });
    eventually("the request is in flight", || {
        table.in_flight(app.addr) == 1
    })
    .await;
    eventually("both connections are accepted", || router.stats.open() == 2).await;

    drop(router);
    closed_by_the_router(&mut idle, "an idle connection at shutdown").await;
    let reply = request.await.expect("request task");
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "app"));
}
