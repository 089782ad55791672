use std::net::Ipv4Addr;

use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_default_endpoint_writes_and_reads() {
    let mut db = start_service(
        "pg",
        "postgresql:15",
        json!(null),
        Ipv4Addr::new(127, 77, 2, 1),
    )
    .await;
    let endpoints = db.svc().endpoints();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0].name, "postgresql");
    assert_eq!(endpoints[0].scheme, "pgsql");
    assert_eq!(endpoints[0].path.as_deref(), Some("main"));
    psql(
        &db,
        "postgresql",
        "CREATE TABLE t (id INT PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'hello')",
    )
    .await
    .expect("write");
    assert_eq!(
        psql(&db, "postgresql", "SELECT v FROM t").await.as_deref(),
        Ok("hello")
    );
    // The server really runs as `postgres` in its namespace.
    assert_eq!(
        psql(&db, "postgresql", "SELECT current_user")
            .await
            .as_deref(),
        Ok("postgresql")
    );
    db.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_endpoints_privileges_and_extensions() {
    let mut db = start_service(
        "pg",
        "postgresql:15",
        json!({
            "databases": ["main"],
            "extensions": ["pg_trgm"],
            "endpoints": {
                "admin": {"default_database": "main", "privileges": {"main": "admin"}},
                "app": {"default_database": "main", "privileges": {"main": "rw"}},
                "reporter": {"default_database": "main", "privileges": {"main": "ro"}},
            },
        }),
        Ipv4Addr::new(127, 77, 2, 2),
    )
    .await;
    psql(
        &db,
        "admin",
        "CREATE TABLE t (id SERIAL PRIMARY KEY, v TEXT)",
    )
    .await
    .expect("admin: DDL");
    psql(&db, "app", "INSERT INTO t (v) VALUES ('a')")
        .await
        .expect("rw: insert");
    assert_eq!(
        psql(&db, "reporter", "SELECT v FROM t").await.as_deref(),
        Ok("a")
    );
    let denied = psql(&db, "reporter", "INSERT INTO t (v) VALUES ('b')").await;
    assert!(denied.expect_err("ro").contains("permission denied"));
    assert!(
        psql(&db, "app", "CREATE TABLE u (id INT)").await.is_err(),
        "rw: no DDL"
    );
    assert_eq!(
        psql(&db, "reporter", "SELECT similarity('abc', 'abc')")
            .await
            .as_deref(),
        Ok("1"),
        "pg_trgm is installed"
    );
    db.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_is_restarted_after_kill_9_with_committed_data() {
    let mut db = start_service(
        "pg",
        "postgresql:15",
        json!(null),
        Ipv4Addr::new(127, 77, 2, 3),
    )
    .await;
    psql(
        &db,
        "postgresql",
        "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (42)",
    )
    .await
    .expect("write");
    let took = db.kill_server_and_wait_healthy().await;
    eprintln!("postgresql healthy again {took:?} after kill -9");
    assert_eq!(
        psql(&db, "postgresql", "SELECT id FROM t").await.as_deref(),
        Ok("42")
    );
    db.stop().await;
}
