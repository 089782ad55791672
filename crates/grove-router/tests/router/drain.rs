//! Counting requests in flight per upstream, and retrying on the new upstream when the
//! old one went away.

use std::sync::Arc;
use std::time::Duration;

use grove_router::RouteTable;
use hyper::{Method, StatusCode};
use tokio::io::AsyncReadExt;
use tokio::sync::Notify;

use crate::support::*;

/// An upstream that sends the head and half the body, then the rest once `finish` is
/// notified.
async fn slow_upstream(finish: Arc<Notify>) -> std::net::SocketAddr {
    raw_upstream(move |mut stream| {
        let finish = finish.clone();
        async move {
            write(
                &mut stream,
                "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\nhello",
            )
            .await;
            finish.notified().await;
            write(&mut stream, "world").await;
        }
    })
    .await
}

#[tokio::test]
async fn in_flight_counts_a_slow_response_until_its_body_ends() {
    let finish = Arc::new(Notify::new());
    let slow = slow_upstream(finish.clone()).await;
    let table = RouteTable::new();
    table.set(OWNER, entries(slow));
    let router = Router::start(&table).await;
    let client = router.client();
    assert_eq!(table.in_flight(slow), 0);
    assert!(table.drained(slow, Duration::ZERO).await, "idle upstream");

    let request = tokio::spawn(async move { client.get("/").await });
    eventually("the request is in flight", || table.in_flight(slow) == 1).await;
    assert!(
        !table.drained(slow, Duration::from_millis(200)).await,
        "half a body is still in flight"
    );
    assert_eq!(table.in_flight(slow), 1);

    let drained = tokio::spawn({
        let table = table.clone();
        async move { table.drained(slow, EVENTUALLY).await }
    });
    finish.notify_one();
    assert!(drained.await.expect("task"), "drained once the body ended");
    assert_eq!(table.in_flight(slow), 0);
    let reply = request.await.expect("task");
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (StatusCode::OK, "helloworld")
    );
}

#[tokio::test]
async fn in_flight_ends_when_the_client_goes_away_mid_body() {
    let finish = Arc::new(Notify::new());
    let slow = slow_upstream(finish.clone()).await;
    let table = RouteTable::new();
    table.set(OWNER, entries(slow));
    let router = Router::start(&table).await;

    let mut stream = router.connect().await;
    write(
        &mut stream,
        &format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n"),
    )
    .await;
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut hello = [0u8; 5];
    stream.read_exact(&mut hello).await.expect("first half");
    assert_eq!(table.in_flight(slow), 1);
    drop(stream);
    assert!(table.drained(slow, EVENTUALLY).await);
}

#[tokio::test]
async fn an_error_response_is_not_left_in_flight() {
    // Nothing listens there: connection refused, 502.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let table = RouteTable::new();
    table.set(OWNER, entries(closed));
    let router = Router::start(&table).await;
    let reply = router.client().get("/").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(table.in_flight(closed), 0);
}

/// An upstream that reads each request and closes the connection without answering,
/// after (like a deploy would) switching the table to `next`, when given.
async fn dying_upstream(
    table: &RouteTable,
    next: Option<std::net::SocketAddr>,
) -> std::net::SocketAddr {
    let table = table.clone();
    raw_upstream(move |stream| {
        if let Some(next) = next {
            table.set(OWNER, entries(next));
        }
        drop(stream);
        async {}
    })
    .await
}

#[tokio::test]
async fn idempotent_requests_read_whole_are_retried_on_the_new_upstream() {
    let new = Upstream::start("new").await;
    let table = RouteTable::new();
    let router = Router::start(&table).await;
    let client = router.client();
    // Past what the router reads before sending: streamed, so it cannot be sent again.
    let streamed = "x".repeat(200 * 1024);

    for (method, body, expected) in [
        (Method::GET, "", Some("new")),
        (Method::HEAD, "", Some("")),
        (Method::DELETE, "", Some("new")),
        (Method::PUT, "", Some("new")),
        (Method::PUT, "data", Some("new")),
        (Method::PUT, streamed.as_str(), None),
        (Method::POST, "", None),
        (Method::PATCH, "", None),
    ] {
        let dying = dying_upstream(&table, Some(new.addr)).await;
        table.set(OWNER, entries(dying));
        let reply = client.send(method.clone(), "/", body).await.expect("reply");
        match expected {
            Some(expected) => assert_eq!(
                (reply.status, reply.body.as_str()),
                (StatusCode::OK, expected),
                "{method} {}",
                body.len()
            ),
            None => assert_eq!(
                reply.status,
                StatusCode::BAD_GATEWAY,
                "{method} {}",
                body.len()
            ),
        }
        assert_eq!(table.in_flight(dying), 0);
        assert!(table.drained(new.addr, EVENTUALLY).await);
    }
}

#[tokio::test]
async fn a_failed_request_is_not_retried_on_the_same_upstream() {
    let table = RouteTable::new();
    let dying = dying_upstream(&table, None).await;
    table.set(OWNER, entries(dying));
    let router = Router::start(&table).await;
    let reply = router.client().get("/").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(table.in_flight(dying), 0);
}
