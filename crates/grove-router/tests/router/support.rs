//! Upstreams, the router and a client, all on 127.0.0.1.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use grove_router::{ConnectionLimits, ConnectionStats, RouteEntry, RouteTable, Target};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub const OWNER: &str = "shop/main";
pub const HOST: &str = "main.shop.localhost";
/// Generous bound for things that should happen "soon"; never a performance claim.
pub const EVENTUALLY: Duration = Duration::from_secs(30);

pub fn entries(addr: SocketAddr) -> Vec<RouteEntry> {
    vec![RouteEntry::new(HOST, "/", Target::Upstream(addr.into()))]
}

/// An app instance: answers every request with its name (after reading the request
/// body and taking `latency`), keeps connections alive, and counts what it served.
/// Stopping it is abrupt, like its process being killed: connections are closed, with
/// whatever request they were serving.
pub struct Upstream {
    pub name: String,
    pub addr: SocketAddr,
    served: Arc<AtomicUsize>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Upstream {
    pub async fn start(name: &str) -> Upstream {
        Upstream::with_latency(name, Duration::ZERO).await
    }

    pub async fn with_latency(name: &str, latency: Duration) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("upstream address");
        let served = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let (name_, served_, stop_, tasks_) = (
            name.to_string(),
            served.clone(),
            stop.clone(),
            tasks.clone(),
        );
        tasks.spawn(async move {
            loop {
                let stream = tokio::select! {
                    () = stop_.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                };
                let (name, served, stop) = (name_.clone(), served_.clone(), stop_.clone());
                tasks_.spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let (name, served) = (name.clone(), served.clone());
                            async move {
                                let _ = req.into_body().collect().await;
                                tokio::time::sleep(latency).await;
                                served.fetch_add(1, Ordering::SeqCst);
                                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(name))))
                            }
                        });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = conn => {}
                        () = stop.cancelled() => {}
                    }
                });
            }
        });
        Upstream {
            name: name.to_string(),
            addr,
            served,
            stop,
            tasks,
        }
    }

    pub fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }

    /// Stops accepting and closes every connection, answered or not.
    pub async fn stop(&self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// An upstream speaking raw HTTP/1.1 over TCP, one connection after another, each
/// handled by `answer` once the request head has been read.
pub async fn raw_upstream<F, Fut>(answer: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("upstream address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            read_head(&mut stream).await;
            tokio::spawn(answer(stream));
        }
    });
    addr
}

/// Reads up to the end of a request's or response's head, returning it.
pub async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// The real router on a loopback port, stopped when dropped.
pub struct Router {
    pub addr: SocketAddr,
    pub stats: ConnectionStats,
    shutdown: CancellationToken,
}

impl Router {
    pub async fn start(table: &RouteTable) -> Router {
        Router::with_limits(table, ConnectionLimits::default()).await
    }

    pub async fn with_limits(table: &RouteTable, limits: ConnectionLimits) -> Router {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind router");
        let addr = listener.local_addr().expect("router address");
        let shutdown = CancellationToken::new();
        let stats = ConnectionStats::default();
        tokio::spawn(grove_router::serve_with(
            listener,
            table.clone(),
            limits,
            stats.clone(),
            shutdown.clone(),
        ));
        Router {
            addr,
            stats,
            shutdown,
        }
    }

    pub fn client(&self) -> HttpClient {
        HttpClient {
            client: Client::builder(TokioExecutor::new()).build_http(),
            router: self.addr,
        }
    }

    /// A raw connection to the router, for clients that go away mid-response.
    pub async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr)
            .await
            .expect("connect to router")
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub retry_after: Option<String>,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpConnector, Full<Bytes>>,
    router: SocketAddr,
}

impl HttpClient {
    /// One request to `HOST` through the router; `Err` when no complete response came.
    pub async fn send(&self, method: Method, path: &str, body: &str) -> Result<Reply, String> {
        self.request(method, path, &[], body).await
    }

    /// A GET or other bodiless request with these headers.
    pub async fn send_with(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.request(method, path, headers, "")
            .await
            .expect("request through the router")
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Reply, String> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.router))
            .header(header::HOST, HOST);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| e.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| format!("request: {e:?}"))?;
        let status = response.status();
        let headers = response.headers().clone();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e:?}"))?
            .to_bytes();
        Ok(Reply {
            status,
            retry_after,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, "")
            .await
            .expect("GET through the router")
    }
}

/// Waits until `condition` holds, polling; panics after [`EVENTUALLY`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + EVENTUALLY;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Writes all of `bytes`, ignoring a peer that went away.
pub async fn write(stream: &mut TcpStream, bytes: &str) {
    let _ = stream.write_all(bytes.as_bytes()).await;
}
