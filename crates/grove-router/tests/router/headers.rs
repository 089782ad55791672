//! Hostile request heads and bodies, sent raw: what the router refuses itself (400,
//! never 502, never reaching an app), and the headers an app receives.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use grove_router::{RouteEntry, RouteTable, Target};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use crate::support::*;

const OTHER: &str = "other.shop.localhost";

/// An app that answers with what it received: the request line, then one
/// `name: value` line per header (as received, in order), then `body: <bytes read>`
/// or `body error`.
struct Echo {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
}

impl Echo {
    async fn start() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
        let addr = listener.local_addr().expect("echo address");
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counted = counted.clone();
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        counted.fetch_add(1, Ordering::SeqCst);
                        async move {
                            let mut text = format!("{} {}\n", req.method(), req.uri());
                            for (name, value) in req.headers() {
                                let value = String::from_utf8_lossy(value.as_bytes());
                                text.push_str(&format!("{name}: {value}\n"));
                            }
                            match req.into_body().collect().await {
                                Ok(body) => {
                                    text.push_str(&format!("body: {}\n", body.to_bytes().len()));
                                }
                                Err(_) => text.push_str("body error\n"),
                            }
                            Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(text))))
                        }
                    });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Echo { addr, requests }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// The router in front of an echo app for `HOST` and another for `OTHER`.
async fn router() -> (RouteTable, Router, Echo, Echo) {
    let (main, other) = (Echo::start().await, Echo::start().await);
    let table = RouteTable::new();
    table.set(OWNER, entries(main.addr));
    table.set(
        "shop/other",
        vec![RouteEntry::new(
            OTHER,
            "/",
            Target::Upstream(other.addr.into()),
        )],
    );
    let router = Router::start(&table).await;
    (table, router, main, other)
}

#[derive(Debug)]
struct Raw {
    status: u16,
    head: String,
    body: String,
}

impl Raw {
    /// The value of a header line the echo app received, lower-cased name.
    fn received(&self, name: &str) -> Vec<&str> {
        self.body
            .lines()
            .filter_map(|line| line.strip_prefix(name)?.strip_prefix(": "))
            .collect()
    }
}

/// Sends `request` as it is on a new connection and reads one response: its head,
/// then `Content-Length` bytes, or up to the end of the connection without one.
async fn exchange(router: &Router, request: &str) -> Raw {
    let mut stream = router.connect().await;
    write(&mut stream, request).await;
    let response = tokio::time::timeout(EVENTUALLY, async {
        let head = read_head(&mut stream).await;
        let length = head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        });
        let mut body = Vec::new();
        match length {
            Some(length) => {
                body.resize(length, 0);
                let _ = stream.read_exact(&mut body).await;
            }
            None => {
                let _ = stream.read_to_end(&mut body).await;
            }
        }
        (head, body)
    })
    .await;
    let (head, body) = response.expect("the router answers");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    Raw {
        status,
        head,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_close_host_does_not_strip_the_host_header() {
    let (_table, router, main, _other) = router().await;
    let reply = exchange(
        &router,
        &format!(
            "GET /x HTTP/1.1\r\nHost: {HOST}\r\nConnection: close, Host, X-Forwarded-For, Content-Length\r\n\
             Keep-Alive: timeout=5\r\nX-Forwarded-For: 10.1.1.1\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(main.requests(), 1);
    assert_eq!(reply.received("host"), [HOST], "{reply:?}");
    assert_eq!(reply.received("content-length"), [] as [&str; 0]);
    assert_eq!(reply.received("x-forwarded-host"), [HOST], "{reply:?}");
    // The client's chain went with its Connection header; the router's entry did not.
    assert_eq!(
        reply.received("x-forwarded-for"),
        ["127.0.0.1"],
        "{reply:?}"
    );
    assert!(reply.received("connection").is_empty(), "{reply:?}");
    assert!(reply.received("keep-alive").is_empty(), "{reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_named_headers_and_hop_by_hop_headers_do_not_reach_the_app() {
    let (_table, router, _main, _other) = router().await;
    let reply = exchange(
        &router,
        &format!(
            "GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: X-Secret\r\nX-Secret: 1\r\n\
             Proxy-Authorization: Basic eDp5\r\nProxy-Connection: keep-alive\r\nUpgrade: websocket\r\n\
             TE: trailers\r\nX-Client-IP: 10.9.9.9\r\nX-Forwarded-Proto: https\r\nX-Kept: yes\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    for gone in [
        "x-secret",
        "proxy-authorization",
        "proxy-connection",
        "upgrade",
    ] {
        assert!(reply.received(gone).is_empty(), "{gone}: {reply:?}");
    }
    assert_eq!(reply.received("x-kept"), ["yes"]);
    assert_eq!(reply.received("te"), ["trailers"]);
    assert_eq!(reply.received("connection"), ["te"]);
    assert_eq!(reply.received("x-client-ip"), ["127.0.0.1"]);
    assert_eq!(reply.received("x-forwarded-proto"), ["http"]);
    assert_eq!(reply.received("x-forwarded-for"), ["127.0.0.1"]);
    let id = reply.received("x-request-id");
    assert!(id.len() == 1 && id[0].len() == 32, "{reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_host_headers_are_refused_with_400_not_routed_on_the_first() {
    let (_table, router, main, other) = router().await;
    for hosts in [
        format!("Host: {HOST}\r\nHost: {OTHER}\r\n"),
        format!("Host: {HOST}\r\nHost: {HOST}\r\n"),
        format!("Host: {HOST}, {OTHER}\r\n"),
    ] {
        let reply = exchange(&router, &format!("GET / HTTP/1.1\r\n{hosts}\r\n")).await;
        assert_eq!(reply.status, 400, "{hosts:?}: {reply:?}");
    }
    assert_eq!((main.requests(), other.requests()), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_or_missing_hosts_are_refused_with_400() {
    let (_table, router, main, _other) = router().await;
    for host in [
        "Host: \r\n".to_string(),
        format!("Host: {HOST}:http\r\n"),
        format!("Host: user@{HOST}\r\n"),
        format!("Host: {HOST};x\r\n"),
        format!("Host: {HOST}:99999\r\n"),
        String::new(),
    ] {
        let reply = exchange(&router, &format!("GET / HTTP/1.1\r\n{host}\r\n")).await;
        assert_eq!(reply.status, 400, "{host:?}: {reply:?}");
    }
    let reply = exchange(&router, "GET / HTTP/1.0\r\n\r\n").await;
    assert_eq!(reply.status, 400, "HTTP/1.0 without Host: {reply:?}");
    assert_eq!(main.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absolute_form_target_is_routed_on_its_authority_and_sent_with_it_as_host() {
    let (_table, router, main, other) = router().await;
    let reply = exchange(
        &router,
        &format!("GET http://{OTHER}:8080/p?q HTTP/1.1\r\nHost: {HOST}\r\n\r\n"),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!((main.requests(), other.requests()), (0, 1));
    assert!(reply.body.starts_with("GET /p?q\n"), "{reply:?}");
    assert_eq!(reply.received("host"), [format!("{OTHER}:8080").as_str()]);
    assert_eq!(
        reply.received("x-forwarded-host"),
        [format!("{OTHER}:8080").as_str()]
    );
    for refused in [
        format!("GET ftp://{OTHER}/ HTTP/1.1\r\nHost: {HOST}\r\n\r\n"),
        format!("GET http://u:p@{OTHER}/ HTTP/1.1\r\nHost: {HOST}\r\n\r\n"),
        format!("GET {OTHER}:80 HTTP/1.1\r\nHost: {HOST}\r\n\r\n"),
    ] {
        let reply = exchange(&router, &refused).await;
        assert_eq!(reply.status, 400, "{refused:?}: {reply:?}");
    }
    let reply = exchange(
        &router,
        &format!("CONNECT {OTHER}:443 HTTP/1.1\r\nHost: {OTHER}:443\r\n\r\n"),
    )
    .await;
    assert_eq!(reply.status, 501, "{reply:?}");
    assert_eq!((main.requests(), other.requests()), (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asterisk_target_gets_400_unless_options_which_the_router_answers() {
    let (_table, router, main, _other) = router().await;
    for method in ["GET", "POST", "DELETE"] {
        let reply = exchange(
            &router,
            &format!("{method} * HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 0\r\n\r\n"),
        )
        .await;
        assert_eq!(reply.status, 400, "{method} *: {reply:?}");
    }
    let reply = exchange(
        &router,
        &format!("OPTIONS * HTTP/1.1\r\nHost: {HOST}\r\n\r\n"),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        reply
            .head
            .to_ascii_lowercase()
            .contains("\r\nallow: get, head"),
        "{reply:?}"
    );
    assert_eq!(main.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_chunked_body_gets_400_not_502() {
    let (_table, router, main, _other) = router().await;
    let chunked = |chunks: &str| {
        format!("POST / HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n{chunks}")
    };
    for chunks in [
        "zz\r\nhello\r\n0\r\n\r\n",    // not a chunk size
        "-5\r\nhello\r\n0\r\n\r\n",    // nor this
        "5\r\nhelloXX0\r\n\r\n",       // no CRLF after the data
        "ffffffffffffffffff\r\nx\r\n", // a size that overflows
        "5 5\r\nhello\r\n0\r\n\r\n",   // two sizes
    ] {
        let reply = exchange(&router, &chunked(chunks)).await;
        assert_eq!(reply.status, 400, "{chunks:?}: {reply:?}");
    }
    assert_eq!(main.requests(), 0, "small bodies are read before the app");

    // Past the read-ahead, a bad chunk arrives while the body streams to the app:
    // still the client's fault.
    let big = "x".repeat(100 * 1024);
    let reply = exchange(
        &router,
        &chunked(&format!("{:x}\r\n{big}\r\nzz\r\n", big.len())),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.head);

    // A good chunked body arrives whole, with a length.
    let reply = exchange(&router, &chunked("5\r\nhello\r\n3\r\n!!!\r\n0\r\n\r\n")).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.body.contains("body: 8\n"), "{reply:?}");
    assert_eq!(reply.received("content-length"), ["8"]);
    assert!(reply.received("transfer-encoding").is_empty(), "{reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_cut_short_gets_400() {
    let (_table, router, main, _other) = router().await;
    let mut stream = router.connect().await;
    write(
        &mut stream,
        &format!("PUT / HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 10\r\n\r\nshort"),
    )
    .await;
    let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
    let head = tokio::time::timeout(EVENTUALLY, read_head(&mut stream))
        .await
        .expect("an answer");
    assert!(head.starts_with("HTTP/1.1 400"), "{head:?}");
    assert_eq!(main.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_content_lengths_get_400() {
    let (_table, router, main, _other) = router().await;
    for lengths in [
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Content-Length: 5, 6\r\n",
        "Content-Length: -5\r\n",
        "Content-Length: 5\r\nTransfer-Encoding: gzip\r\n",
    ] {
        let reply = exchange(
            &router,
            &format!("POST / HTTP/1.1\r\nHost: {HOST}\r\n{lengths}\r\nhello!"),
        )
        .await;
        assert_eq!(reply.status, 400, "{lengths:?}: {reply:?}");
    }
    assert_eq!(main.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_is_gone_is_still_502_with_a_body() {
    let gone = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("address")
    };
    let table = RouteTable::new();
    table.set(OWNER, entries(gone));
    let router = Router::start(&table).await;
    let reply = exchange(
        &router,
        &format!("POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 5\r\n\r\nhello"),
    )
    .await;
    assert_eq!(reply.status, 502, "{reply:?}");
    assert!(
        reply.body.contains(
            "environment main (project shop) at http://main.shop.localhost is not answering"
        ),
        "names the environment: {reply:?}"
    );
    // While the environment is being deployed: 503, to be retried.
    table.hold(OWNER, std::time::Duration::from_secs(60));
    let reply = exchange(
        &router,
        &format!("POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 5\r\n\r\nhello"),
    )
    .await;
    assert_eq!(reply.status, 503, "{reply:?}");
    assert!(reply.body.contains("is being deployed"), "{reply:?}");
}
