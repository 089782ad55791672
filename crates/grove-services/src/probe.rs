//! One-line protocol health checks: Redis `PING`, memcached `version`.

use std::net::SocketAddr;
use std::time::Duration;

use grove_runtime::Network;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Sends `request` and returns the first line of the answer.
pub async fn request_line(
    network: &Network,
    addr: SocketAddr,
    request: &[u8],
    timeout: Duration,
) -> Result<String, String> {
    let exchange = async {
        let mut stream = network
            .connect_tcp(addr)
            .await
            .map_err(|e| format!("could not connect to {addr}: {e}"))?;
        stream
            .write_all(request)
            .await
            .map_err(|e| format!("could not write to {addr}: {e}"))?;
        let mut line = String::new();
        BufReader::new(stream)
            .read_line(&mut line)
            .await
            .map_err(|e| format!("could not read from {addr}: {e}"))?;
        Ok(line.trim_end().to_owned())
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer from {addr} within {timeout:?}")))
}

pub async fn redis_ping(
    network: &Network,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<(), String> {
    let line = request_line(network, addr, b"PING\r\n", timeout).await?;
    if line == "+PONG" {
        Ok(())
    } else {
        Err(format!("PING answered `{line}`"))
    }
}

pub async fn memcached_version(
    network: &Network,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<(), String> {
    let line = request_line(network, addr, b"version\r\n", timeout).await?;
    if line.starts_with("VERSION ") {
        Ok(())
    } else {
        Err(format!("`version` answered `{line}`"))
    }
}
