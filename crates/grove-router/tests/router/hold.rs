//! Holding idempotent requests while an environment deploys.

use std::time::Duration;

use grove_router::RouteTable;
use hyper::{Method, StatusCode};

use crate::support::*;

/// Long enough for a request to reach the router and start waiting.
const SETTLE: Duration = Duration::from_millis(200);

#[tokio::test]
async fn held_get_waits_and_is_routed_to_the_upstream_set_during_the_hold() {
    let old = Upstream::start("old").await;
    let new = Upstream::start("new").await;
    let table = RouteTable::new();
    table.set(OWNER, entries(old.addr));
    let router = Router::start(&table).await;
    let client = router.client();

    table.hold(OWNER, EVENTUALLY);
    assert!(table.is_held(OWNER));
    let held = tokio::spawn({
        let client = client.clone();
        async move { client.get("/held").await }
    });
    tokio::time::sleep(SETTLE).await;
    assert!(!held.is_finished(), "a GET of a held environment waits");

    let post = client
        .send(Method::POST, "/order", "{}")
        .await
        .expect("POST");
    assert_eq!((post.status, post.body.as_str()), (StatusCode::OK, "old"));

    table.set(OWNER, entries(new.addr));
    assert!(table.is_held(OWNER), "set keeps the hold");
    tokio::time::sleep(SETTLE).await;
    assert!(!held.is_finished(), "still held after set");

    table.release(OWNER);
    let reply = held.await.expect("held request task");
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "new"));
    assert!(!table.is_held(OWNER));
    assert_eq!(old.served(), 1, "only the POST went to the old upstream");
}

#[tokio::test]
async fn every_idempotent_method_is_held_and_patch_is_not() {
    let old = Upstream::start("old").await;
    let table = RouteTable::new();
    table.set(OWNER, entries(old.addr));
    let router = Router::start(&table).await;
    let client = router.client();

    table.hold(OWNER, EVENTUALLY);
    let held: Vec<_> = [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::PUT,
        Method::DELETE,
        Method::TRACE,
    ]
    .into_iter()
    .map(|method| {
        let client = client.clone();
        tokio::spawn(async move { client.send(method, "/", "").await })
    })
    .collect();
    let patch = client.send(Method::PATCH, "/", "{}").await.expect("PATCH");
    assert_eq!((patch.status, patch.body.as_str()), (StatusCode::OK, "old"));
    tokio::time::sleep(SETTLE).await;
    assert_eq!(old.served(), 1, "only PATCH got through");
    assert!(held.iter().all(|task| !task.is_finished()));

    table.release(OWNER);
    for task in held {
        let reply = task.await.expect("task").expect("held request");
        assert_eq!(reply.status, StatusCode::OK);
    }
    assert_eq!(old.served(), 7);
}

#[tokio::test]
async fn a_request_held_past_the_timeout_gets_503_with_retry_after() {
    let old = Upstream::start("old").await;
    let table = RouteTable::new();
    table.set(OWNER, entries(old.addr));
    let router = Router::start(&table).await;
    let client = router.client();

    table.hold(OWNER, Duration::from_millis(300));
    let reply = client.get("/").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.retry_after.as_deref(), Some("5"));
    assert!(reply.body.contains("being deployed"), "{}", reply.body);
    assert_eq!(old.served(), 0);

    // The hold outlives one request's wait: the next one waits too, until released.
    table.hold(OWNER, EVENTUALLY);
    let held = tokio::spawn({
        let client = client.clone();
        async move { client.get("/").await }
    });
    tokio::time::sleep(SETTLE).await;
    assert!(!held.is_finished());
    table.release(OWNER);
    assert_eq!(held.await.expect("task").status, StatusCode::OK);
}

#[tokio::test]
async fn release_without_a_new_upstream_leaves_the_old_one_serving() {
    let old = Upstream::start("old").await;
    let table = RouteTable::new();
    table.set(OWNER, entries(old.addr));
    let router = Router::start(&table).await;
    let client = router.client();

    let hold = table.hold_guard(OWNER, EVENTUALLY);
    let held = tokio::spawn({
        let client = client.clone();
        async move { client.get("/").await }
    });
    tokio::time::sleep(SETTLE).await;
    // The new instance failed its health check: the deploy gives up, dropping its hold.
    drop(hold);
    let reply = held.await.expect("task");
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "old"));
    assert!(!table.is_held(OWNER));
}

#[tokio::test]
async fn holding_one_environment_does_not_delay_another() {
    let main = Upstream::start("main").await;
    let dev = Upstream::start("dev").await;
    let table = RouteTable::new();
    table.set(OWNER, entries(main.addr));
    let mut dev_entries = entries(dev.addr);
    dev_entries[0].host = "dev.shop.localhost".into();
    table.set("shop/dev", dev_entries);
    let router = Router::start(&table).await;
    let client = router.client();

    table.hold(OWNER, EVENTUALLY);
    let held = tokio::spawn({
        let client = client.clone();
        async move { client.get("/").await }
    });
    tokio::time::sleep(SETTLE).await;

    let mut stream = router.connect().await;
    write(
        &mut stream,
        "GET / HTTP/1.1\r\nHost: dev.shop.localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    let mut response = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut response)
        .await
        .expect("read dev response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("dev"), "{response}");
    assert!(!held.is_finished());

    table.release(OWNER);
    assert_eq!(held.await.expect("task").body, "main");
}

#[tokio::test]
async fn remove_answers_held_requests_with_404() {
    let old = Upstream::start("old").await;
    let table = RouteTable::new();
    table.set(OWNER, entries(old.addr));
    let router = Router::start(&table).await;
    let client = router.client();

    table.hold(OWNER, EVENTUALLY);
    let held = tokio::spawn({
        let client = client.clone();
        async move { client.get("/").await }
    });
    tokio::time::sleep(SETTLE).await;
    table.remove(OWNER);
    assert_eq!(held.await.expect("task").status, StatusCode::NOT_FOUND);
    assert!(table.is_held(OWNER), "remove keeps the hold");

    // Entries set again under the hold are held until released.
    table.set(OWNER, entries(old.addr));
    let held = tokio::spawn({
        let client = client.clone();
        async move { client.get("/").await }
    });
    tokio::time::sleep(SETTLE).await;
    assert!(!held.is_finished());
    table.release(OWNER);
    assert_eq!(held.await.expect("task").body, "old");
}
