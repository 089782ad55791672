use std::net::Ipv4Addr;

use serde_json::json;

use crate::support::*;

fn shop_config() -> serde_json::Value {
    json!({
        "schemas": ["main"],
        "endpoints": {
            "admin": {"default_schema": "main", "privileges": {"main": "admin"}},
            "ro": {"default_schema": "main", "privileges": {"main": "ro"}},
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_default_endpoint_writes_and_reads() {
    let mut db = start_service(
        "db",
        "mysql:10.11",
        json!(null),
        Ipv4Addr::new(127, 77, 1, 1),
    )
    .await;
    let endpoints = db.svc().endpoints();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0].name, "mysql");
    assert_eq!(endpoints[0].scheme, "mysql");
    assert_eq!(endpoints[0].port, 3306);
    assert_eq!(endpoints[0].path.as_deref(), Some("main"));
    mariadb(
        &db,
        "mysql",
        "CREATE TABLE t (id INT PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'hello')",
    )
    .await
    .expect("write");
    assert_eq!(
        mariadb(&db, "mysql", "SELECT v FROM t").await.as_deref(),
        Ok("hello")
    );
    db.svc().health().await.expect("healthy");
    db.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_admin_endpoint_writes_and_ro_endpoint_only_reads() {
    let mut db = start_service(
        "db",
        "mariadb:10.11",
        shop_config(),
        Ipv4Addr::new(127, 77, 1, 2),
    )
    .await;
    mariadb(
        &db,
        "admin",
        "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2)",
    )
    .await
    .expect("admin can create and write");
    assert_eq!(
        mariadb(&db, "ro", "SELECT COUNT(*) FROM t")
            .await
            .as_deref(),
        Ok("2")
    );
    let denied = mariadb(&db, "ro", "INSERT INTO t VALUES (3)").await;
    let error = denied.expect_err("ro must not write");
    assert!(error.contains("INSERT command denied"), "{error}");
    assert!(mariadb(&db, "ro", "CREATE TABLE u (id INT)").await.is_err());
    assert_ne!(db.password("admin"), db.password("ro"));
    db.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_new_schema_and_endpoint_apply_on_restart_keeping_data() {
    let mut db = start_service(
        "db",
        "mariadb:10.11",
        shop_config(),
        Ipv4Addr::new(127, 77, 1, 3),
    )
    .await;
    mariadb(
        &db,
        "admin",
        "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (7)",
    )
    .await
    .expect("write");
    let admin_password = db.password("admin");
    db.restart_with(json!({
        "schemas": ["main", "reports"],
        "endpoints": {
            "admin": {"default_schema": "main", "privileges": {"main": "admin", "reports": "admin"}},
            "ro": {"default_schema": "main", "privileges": {"main": "ro"}},
            "reporter": {"default_schema": "reports", "privileges": {"reports": "rw", "main": "ro"}},
        },
    }))
    .await;
    assert_eq!(db.password("admin"), admin_password, "secrets are stable");
    assert_eq!(
        mariadb(&db, "admin", "SELECT id FROM t").await.as_deref(),
        Ok("7")
    );
    mariadb(&db, "admin", "CREATE TABLE reports.r (n INT)")
        .await
        .expect("admin on the new schema");
    mariadb(&db, "reporter", "INSERT INTO r VALUES (1)")
        .await
        .expect("rw writes");
    assert_eq!(
        mariadb(&db, "reporter", "SELECT id FROM main.t")
            .await
            .as_deref(),
        Ok("7")
    );
    assert!(
        mariadb(&db, "reporter", "DELETE FROM main.t")
            .await
            .is_err()
    );
    db.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_is_restarted_after_kill_9_with_committed_data() {
    let mut db = start_service(
        "db",
        "mariadb:10.11",
        json!(null),
        Ipv4Addr::new(127, 77, 1, 4),
    )
    .await;
    mariadb(
        &db,
        "mysql",
        "CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO t VALUES (42)",
    )
    .await
    .expect("write");
    let took = db.kill_server_and_wait_healthy().await;
    eprintln!("mariadb healthy again {took:?} after kill -9");
    assert_eq!(
        mariadb(&db, "mysql", "SELECT id FROM t").await.as_deref(),
        Ok("42")
    );
    assert_eq!(db.svc().restarts(), 1);
    db.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiesced_mariadb_blocks_commits_until_resumed_and_serves_reads() {
    let mut db = start_service(
        "db",
        "mysql:10.11",
        json!(null),
        Ipv4Addr::new(127, 77, 1, 9),
    )
    .await;
    mariadb(
        &db,
        "mysql",
        "CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB",
    )
    .await
    .expect("create");
    let held = db.svc().quiesce().await.expect("quiesce");
    assert_eq!(
        held.describe(),
        "commits blocked (BACKUP STAGE BLOCK_COMMIT)"
    );
    // Polled only here, the insert's client keeps waiting on its own meanwhile.
    let insert = mariadb(&db, "mysql", "INSERT INTO t VALUES (1)");
    let mut insert = Box::pin(insert);
    let during = tokio::time::timeout(std::time::Duration::from_secs(2), &mut insert).await;
    assert!(
        during.is_err(),
        "a commit went through while quiesced: {during:?}"
    );
    assert_eq!(
        mariadb(&db, "mysql", "SELECT COUNT(*) FROM t")
            .await
            .as_deref(),
        Ok("0"),
        "reads go on, the held commit is not visible"
    );
    held.resume().await.expect("resume");
    insert.await.expect("the insert after the resume");
    assert_eq!(
        mariadb(&db, "mysql", "SELECT COUNT(*) FROM t")
            .await
            .as_deref(),
        Ok("1")
    );
    db.stop().await;
}
