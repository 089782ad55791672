use std::net::Ipv4Addr;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcached_sets_and_gets() {
    let mut cache = start_service(
        "mc",
        "memcached:1.6",
        json!(null),
        Ipv4Addr::new(127, 77, 4, 1),
    )
    .await;
    let ep = &cache.svc().endpoints()[0];
    assert_eq!(
        (ep.name.as_str(), ep.scheme.as_str(), ep.port),
        ("memcached", "memcached", 11211)
    );
    let stream = tokio::net::TcpStream::connect((ep.ip, ep.port))
        .await
        .expect("connect");
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write
        .write_all(b"set k 0 0 5\r\nhello\r\n")
        .await
        .expect("set");
    assert_eq!(
        lines.next_line().await.expect("read").as_deref(),
        Some("STORED")
    );
    write.write_all(b"get k\r\n").await.expect("get");
    assert_eq!(
        lines.next_line().await.expect("read").as_deref(),
        Some("VALUE k 0 5")
    );
    assert_eq!(
        lines.next_line().await.expect("read").as_deref(),
        Some("hello")
    );
    cache.svc().health().await.expect("healthy");
    cache.stop().await;
}
