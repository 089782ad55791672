use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_have_their_own_credentials_and_cannot_see_each_other() {
    let (mut a, mut b) = tokio::join!(
        start_service(
            "db",
            "mariadb:10.11",
            json!(null),
            Ipv4Addr::new(127, 77, 6, 1)
        ),
        start_service(
            "db",
            "mariadb:10.11",
            json!(null),
            Ipv4Addr::new(127, 77, 6, 2)
        ),
    );
    assert_ne!(a.password("mysql"), b.password("mysql"));
    mariadb(&a, "mysql", "CREATE TABLE only_a (id INT)")
        .await
        .expect("write a");

    // A's credentials don't open B.
    let a_ep = &a.svc().endpoints()[0];
    let wrong = client(
        "mariadb",
        &[
            "--no-defaults",
            "-h",
            "127.77.6.2",
            "-u",
            "mysql",
            "-e",
            "SELECT 1",
        ],
        &[("MYSQL_PWD", a_ep.password.as_deref().expect("password"))],
    )
    .await;
    assert!(wrong.expect_err("denied").contains("Access denied"));
    assert!(mariadb(&b, "mysql", "SELECT * FROM only_a").await.is_err());

    // Inside A's sandbox only A's data directory exists: B's is neither at its
    // host path nor anywhere the sandbox maps.
    std::fs::write(b.spec.data_dir.join("marker-b"), "b").expect("marker");
    let script = format!(
        "test -e /var/lib/mysql/data/mysql && ! test -e /var/lib/mysql/marker-b && ! test -e '{}' && ! test -e '{}' && echo isolated",
        b.spec.data_dir.display(),
        b.dir.path().display(),
    );
    let mut out = Vec::new();
    let outcome = grove_runtime::run_command(
        &a.svc().sandbox_for(&script),
        Duration::from_secs(10),
        &mut |line: &str| out.push(line.to_owned()),
    )
    .await
    .expect("run");
    assert!(outcome.success(), "{outcome}: {out:?}");
    assert_eq!(out, vec!["isolated"]);
    tokio::join!(a.stop(), b.stop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_address_is_reported_not_mistaken_for_ready() {
    let listener = std::net::TcpListener::bind("127.77.6.3:6379").expect("bind");
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = spec_in(
        dir.path(),
        "cache",
        "redis:7.0",
        json!(null),
        Ipv4Addr::new(127, 77, 6, 3),
    );
    let err = grove_services::start(spec).await.expect_err("port taken");
    insta::assert_snapshot!(err.to_string(), @"service `cache` cannot listen on 127.77.6.3:6379: the address is already in use by another process");
    drop(listener);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_data_directory_fails_with_the_servers_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = spec_in(
        dir.path(),
        "sessions",
        "redis-persistent:7.0",
        json!(null),
        Ipv4Addr::new(127, 77, 6, 4),
    );
    std::fs::create_dir_all(spec.data_dir.join("appendonlydir")).expect("mkdir");
    std::fs::write(
        spec.data_dir.join("appendonlydir/appendonly.aof.manifest"),
        "garbage\n",
    )
    .expect("write");
    let err = grove_services::start(spec).await.expect_err("corrupt");
    let message = err.to_string();
    assert!(
        message.starts_with("service `sessions` failed to start:"),
        "{message}"
    );
    assert!(message.contains("manifest"), "{message}");
}

/// In its environment's network namespace a service is started, checked and
/// provisioned from inside it, and its address does not exist on the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_in_a_namespace_is_healthy_and_unreachable_from_outside() {
    let netns = grove_runtime::NetNs::new().expect("network namespace");
    let dir = tempfile::tempdir().expect("tempdir");
    let address = Ipv4Addr::new(127, 77, 7, 1);
    let mut spec = spec_in(dir.path(), "cache", "redis:7.0", json!(null), address);
    spec.network = grove_runtime::Network::Namespace(netns.clone());
    let running = grove_services::start(spec)
        .await
        .expect("started and healthy");
    running.health().await.expect("healthy");
    let addr = std::net::SocketAddr::from((address, 6379));

    let mut inside = netns.connect_tcp(addr).await.expect("reachable inside");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    inside.write_all(b"PING\r\n").await.expect("write");
    let mut answer = [0u8; 7];
    inside.read_exact(&mut answer).await.expect("read");
    assert_eq!(&answer, b"+PONG\r\n");

    let other = grove_runtime::NetNs::new().expect("another namespace");
    assert!(
        other.connect_tcp(addr).await.is_err(),
        "from another namespace"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "from the host"
    );
    running.stop().await;
}
