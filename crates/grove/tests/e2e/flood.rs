//! A flood of idle connections against the real `grove server`: tens of thousands of
//! TCP connections to the router that never send a byte, while another client keeps
//! using an app through the router and the API. Loopback only.
//!
//! The bounds are generous on purpose: they tell a starved listener (requests that
//! wait for the flood to end, or never get an answer) from a working one, and measure
//! nothing. The numbers are printed.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{primary_url, started_project};

/// How many idle connections the flood opens, when the open-files limit allows.
const FLOOD: usize = 20_000;
/// Descriptors this process keeps for everything else (the harness, probes, logs).
const SPARE_FILES: u64 = 500;
/// Threads opening the flood's connections.
const OPENERS: usize = 8;
/// How long one request may take before it counts as starved.
const ANSWERED_WITHIN: Duration = Duration::from_secs(30);
/// How large the server's log may grow during the flood.
const LOG_LIMIT: u64 = 1024 * 1024;

/// Raises this process's soft open-files limit to its hard limit (as `grove server`
/// does its own), and returns how many connections the flood can open within it.
fn flood_size() -> usize {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    let soft = match setrlimit(Resource::Nofile, raised) {
        Ok(()) => limit.maximum,
        Err(error) => {
            println!("cannot raise the open-files limit ({error}); staying at the soft limit");
            limit.current
        }
    };
    let allowed = soft.map_or(FLOOD as u64, |soft| soft.saturating_sub(SPARE_FILES));
    let size = usize::try_from(allowed).unwrap_or(FLOOD).min(FLOOD);
    if size < FLOOD {
        println!("the open-files limit ({soft:?}) allows {size} flood connections, not {FLOOD}");
    }
    size
}

/// One request on its own connection, answered in full within `ANSWERED_WITHIN`:
/// the status code and the body, or `None` when no complete answer came in time.
fn request(port: u16, head: &str) -> Option<(u16, String)> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, ANSWERED_WITHIN).ok()?;
    stream.set_read_timeout(Some(ANSWERED_WITHIN)).ok()?;
    stream.set_write_timeout(Some(ANSWERED_WITHIN)).ok()?;
    stream.write_all(head.as_bytes()).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// What the client that is not flooding does: one request to the app through the
/// router and one to the API, each answered within the bound, and how long they took.
struct Client {
    router_port: u16,
    api_port: u16,
    app_host: String,
    token: String,
}

impl Client {
    fn round(&self, when: &str) -> Duration {
        let started = Instant::now();
        let app = request(
            self.router_port,
            &format!(
                "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                self.app_host
            ),
        );
        assert!(
            matches!(&app, Some((200, body)) if body.contains("PLATFORM_BRANCH")),
            "{when}: the app did not answer through the router: {app:?}"
        );
        let api = request(
            self.api_port,
            &format!(
                "GET /api/projects HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
                 Connection: close\r\n\r\n",
                self.token
            ),
        );
        assert!(
            matches!(&api, Some((200, body)) if body.contains("shop")),
            "{when}: the API did not answer: {api:?}"
        );
        started.elapsed()
    }
}

/// Opens `n` connections to the router that send nothing, and keeps them open (those
/// the router closes to make room stay open on this side). A connect that fails is
/// tried again: the router accepts at its own pace past its cap.
fn open_idle(port: u16, n: usize) -> (Vec<TcpStream>, usize) {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut open = Vec::with_capacity(n);
    let mut failed = 0;
    while open.len() < n && failed < n {
        match TcpStream::connect_timeout(&address, Duration::from_secs(10)) {
            Ok(stream) => open.push(stream),
            Err(_) => failed += 1,
        }
    }
    (open, failed)
}

#[test]
fn twenty_thousand_idle_connections_starve_neither_apps_nor_the_api() {
    let flood = flood_size();
    let (server, work, url) = started_project();
    let (ok, out) = work.push(&url, &["main"]);
    assert!(ok, "{out}");
    let main_url = primary_url(&server, "main");
    let client = Client {
        router_port: server.http_port,
        api_port: server.api_port,
        app_host: main_url
            .trim_start_matches("http://")
            .split([':', '/'])
            .next()
            .unwrap_or_default()
            .to_string(),
        token: server.token(),
    };
    let before = client.round("before the flood");
    let log_before = std::fs::metadata(server.dir.path().join("server.log")).map_or(0, |m| m.len());

    // The flood, from several threads; the client keeps going meanwhile.
    let started = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let openers: Vec<_> = (0..OPENERS)
        .map(|i| {
            let share = flood / OPENERS + usize::from(i < flood % OPENERS);
            let port = server.http_port;
            std::thread::spawn(move || open_idle(port, share))
        })
        .collect();
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            for opener in &openers {
                while !opener.is_finished() {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            done.store(true, Ordering::SeqCst);
            openers
                .into_iter()
                .map(|opener| opener.join().expect("opener"))
                .collect::<Vec<_>>()
        })
    };
    let mut during = Vec::new();
    while !done.load(Ordering::SeqCst) {
        during.push(client.round("during the flood"));
        std::thread::sleep(Duration::from_millis(100));
    }
    let opened = watcher.join().expect("watcher");
    let flood_took = started.elapsed();
    let failed: usize = opened.iter().map(|(_, failed)| failed).sum();
    let idle: Vec<TcpStream> = opened.into_iter().flat_map(|(open, _)| open).collect();
    assert_eq!(
        idle.len(),
        flood,
        "every flood connection was established ({failed} connects failed)"
    );

    // Every flood connection is open on this side now; the client is still served.
    let mut after = Vec::new();
    for _ in 0..10 {
        after.push(client.round("with the flood's connections open"));
    }
    let log_after = std::fs::metadata(server.dir.path().join("server.log")).map_or(0, |m| m.len());
    let slowest = |rounds: &[Duration]| rounds.iter().max().copied().unwrap_or_default();
    println!(
        "flood: {} idle connections opened in {flood_took:?} ({failed} connects retried); \
         client rounds (app + API): before {before:?}, {} during (slowest {:?}), \
         {} after (slowest {:?}); server log grew {} bytes",
        idle.len(),
        during.len(),
        slowest(&during),
        after.len(),
        slowest(&after),
        log_after.saturating_sub(log_before),
    );
    assert!(
        log_after.saturating_sub(log_before) < LOG_LIMIT,
        "the flood filled the server's log:\n{}",
        server
            .log()
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    drop(idle);
    client.round("after the flood");
}
