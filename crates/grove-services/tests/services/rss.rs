use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::json;

use crate::support::*;

/// Not an assertion: prints what a small-profile instance costs when idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn print_idle_rss_of_small_profile_instances() {
    let (mut db, mut cache, mut pg) = tokio::join!(
        start_service(
            "db",
            "mariadb:10.11",
            json!(null),
            Ipv4Addr::new(127, 77, 7, 1)
        ),
        start_service(
            "cache",
            "redis:7.0",
            json!(null),
            Ipv4Addr::new(127, 77, 7, 2)
        ),
        start_service(
            "pg",
            "postgresql:15",
            json!(null),
            Ipv4Addr::new(127, 77, 7, 3)
        ),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    for svc in [&db, &cache, &pg] {
        eprintln!(
            "idle RSS of small {:?} sandbox: {} KiB (server process alone: {})",
            svc.svc().kind(),
            svc.svc().rss_kib(),
            svc.svc()
                .server_pid()
                .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
                .and_then(|s| s
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().to_owned())))
                .unwrap_or_default(),
        );
    }
    tokio::join!(db.stop(), cache.stop(), pg.stop());
}
