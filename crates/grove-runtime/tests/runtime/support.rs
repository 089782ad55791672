//! Shared helpers: sandbox specs over temp dirs, free ports, process checks.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use grove_runtime::{CommandOutcome, SandboxSpec, run_command};

/// A runtime (read-only app) sandbox over `app`.
pub fn spec(app: &Path, command: &str) -> SandboxSpec {
    SandboxSpec::new(app, command)
}

/// Runs `spec` with a generous timeout and returns its outcome and output lines.
pub async fn run(spec: &SandboxSpec) -> (CommandOutcome, Vec<String>) {
    run_with_timeout(spec, Duration::from_secs(120)).await
}

pub async fn run_with_timeout(
    spec: &SandboxSpec,
    timeout: Duration,
) -> (CommandOutcome, Vec<String>) {
    let mut lines = Vec::new();
    let outcome = run_command(spec, timeout, &mut |line: &str| lines.push(line.to_owned()))
        .await
        .expect("run_command");
    (outcome, lines)
}

/// A loopback address nothing listens on right now.
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr")
}

/// A value unique to this test run, to find a sandbox's processes by their
/// environment.
pub fn unique_marker() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "grove-test-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Live processes whose environment contains `GROVE_TEST_MARKER=<marker>`.
pub fn processes_with_marker(marker: &str) -> Vec<u32> {
    let needle = format!("GROVE_TEST_MARKER={marker}");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| grove_runtime::procfs::is_alive(*pid))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == needle.as_bytes()))
        })
        .collect()
}

/// Polls `condition` every 50 ms until it holds; panics after `limit` (a
/// generous bound for "eventually", never a performance assertion).
pub async fn eventually(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < limit, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A plain HTTP/1.0 GET; returns the status line.
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes())
        .await
        .expect("send request");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .expect("read response");
    String::from_utf8_lossy(&response)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}
