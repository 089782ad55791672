use std::net::Ipv4Addr;

use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_ephemeral_writes_and_reads_with_its_policy() {
    let mut cache = start_service(
        "cache",
        "redis:7.0",
        json!({"maxmemory_policy": "allkeys-lfu"}),
        Ipv4Addr::new(127, 77, 3, 1),
    )
    .await;
    let endpoints = cache.svc().endpoints();
    assert_eq!(endpoints[0].name, "redis");
    assert_eq!(endpoints[0].username, None);
    assert_eq!(endpoints[0].password, None);
    assert_eq!(
        redis_cli(&cache, &["SET", "k", "v"]).await.as_deref(),
        Ok("OK")
    );
    assert_eq!(redis_cli(&cache, &["GET", "k"]).await.as_deref(), Ok("v"));
    let policy = redis_cli(&cache, &["CONFIG", "GET", "maxmemory-policy"])
        .await
        .expect("config");
    assert!(policy.ends_with("allkeys-lfu"), "{policy}");
    cache.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_persistent_keeps_writes_across_kill_9() {
    let mut cache = start_service(
        "sessions",
        "redis-persistent:7.0",
        json!(null),
        Ipv4Addr::new(127, 77, 3, 2),
    )
    .await;
    assert_eq!(
        redis_cli(&cache, &["SET", "session", "abc"])
            .await
            .as_deref(),
        Ok("OK")
    );
    let took = cache.kill_server_and_wait_healthy().await;
    eprintln!("redis healthy again {took:?} after kill -9");
    assert_eq!(
        redis_cli(&cache, &["GET", "session"]).await.as_deref(),
        Ok("abc")
    );
    cache.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiesced_persistent_redis_holds_writes_until_resumed_and_serves_reads() {
    let mut cache = start_service(
        "sessions",
        "redis-persistent:7.0",
        json!(null),
        Ipv4Addr::new(127, 77, 3, 9),
    )
    .await;
    assert_eq!(
        redis_cli(&cache, &["SET", "k", "before"]).await.as_deref(),
        Ok("OK")
    );
    let held = cache.svc().quiesce().await.expect("quiesce");
    assert_eq!(held.describe(), "writes paused (CLIENT PAUSE WRITE)");
    // Polled only here, the write's client keeps waiting on its own meanwhile.
    let mut write = Box::pin(redis_cli(&cache, &["SET", "k", "after"]));
    let during = tokio::time::timeout(std::time::Duration::from_secs(2), &mut write).await;
    assert!(
        during.is_err(),
        "a write went through while quiesced: {during:?}"
    );
    assert_eq!(
        redis_cli(&cache, &["GET", "k"]).await.as_deref(),
        Ok("before")
    );
    held.resume().await.expect("resume");
    assert_eq!(write.await.as_deref(), Ok("OK"));
    assert_eq!(
        redis_cli(&cache, &["GET", "k"]).await.as_deref(),
        Ok("after")
    );
    cache.stop().await;
}
