//! The HTTP/1.1 reverse proxy that serves a [`RouteTable`].

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt::Display;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use crate::upstream::{Upstream, UpstreamConnector};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::access::Verdict;
use crate::access_log::{AccessLog, Requested};
use crate::cache::{self, Miss, RequestHead, X_PLATFORM_CACHE};
use crate::connections::{ConnectionLimits, ConnectionStats, serve_connections};
use crate::redirect::Answer;
use crate::request::{self, Form, Forwarded};
use crate::{Cacheable, InFlightGuard, RouteTable, Routed};

type Body = BoxBody<Bytes, hyper::Error>;
type UpstreamClient = Client<UpstreamConnector, Body>;

/// What a held request that waited too long is told to wait before trying again.
const RETRY_AFTER_SECONDS: &str = "5";
/// How much of a request body is read before the request goes to an app (nginx
/// buffers whole bodies, to disk past 8-16 KiB; this is the in-memory part of that).
/// Most bodies are smaller: the app then gets them whole or not at all, so a
/// malformed or truncated body is answered 400 by the router and never reaches the
/// app, a slow client does not tie up the app while it sends, and an idempotent
/// request can be sent again to a new upstream. Larger bodies stream from there on.
const READ_AHEAD: usize = 64 * 1024;
/// How long a request waits for another one fetching the same missing cache key
/// before it goes to the app itself.
const COALESCE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);
/// What `OPTIONS *` is told the router serves.
const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE";

/// Serves the table on `listener` until `shutdown` is cancelled, within the default
/// [`ConnectionLimits`].
pub async fn serve(listener: TcpListener, table: RouteTable, shutdown: CancellationToken) {
    serve_with(
        listener,
        table,
        ConnectionLimits::default(),
        ConnectionStats::default(),
        shutdown,
    )
    .await;
}

/// [`serve`] within `limits`, counting into `stats`.
pub async fn serve_with(
    listener: TcpListener,
    table: RouteTable,
    limits: ConnectionLimits,
    stats: ConnectionStats,
    shutdown: CancellationToken,
) {
    let client: UpstreamClient =
        Client::builder(TokioExecutor::new()).build(UpstreamConnector::new());
    let make_service = move |peer: SocketAddr| {
        let table = table.clone();
        let client = client.clone();
        hyper::service::service_fn(move |req| {
            let table = table.clone();
            let client = client.clone();
            async move { Ok::<_, Infallible>(handle(req, peer, &table, &client).await) }
        })
    };
    serve_connections(listener, limits, stats, make_service, shutdown).await;
}

/// Methods that mean the same when sent twice (RFC 9110 §9.2.2): these are held during
/// a deploy and may be sent again to the new upstream; POST and PATCH are neither.
fn is_idempotent(method: &Method) -> bool {
    [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::PUT,
        Method::DELETE,
        Method::TRACE,
    ]
    .contains(method)
}

/// Answers a request, and writes its line in the access log of the environment that
/// answered it (requests no environment serves have none).
async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
    table: &RouteTable,
    client: &UpstreamClient,
) -> Response<Body> {
    let started = std::time::Instant::now();
    let mut log = None;
    let response = answer(req, peer, table, client, started, &mut log).await;
    if let Some((log, requested)) = log {
        let bytes = response.body().size_hint().exact().or_else(|| {
            response
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok())
        });
        log.record(&requested, response.status(), bytes);
    }
    response
}

/// The response to a request; `log` is set to the access log of the environment
/// whose route it matched, with what its line says of the request (taken only then:
/// requests no log wants cost nothing more).
async fn answer(
    req: Request<Incoming>,
    peer: SocketAddr,
    table: &RouteTable,
    client: &UpstreamClient,
    started: std::time::Instant,
    log: &mut Option<(Arc<AccessLog>, Requested)>,
) -> Response<Body> {
    // Everything the routing depends on is checked before anything is routed or read.
    let checked = match request::check(req.method(), req.uri(), req.headers()) {
        Ok(checked) => checked,
        Err(refused) => return text(refused.status(), refused.message().into()),
    };
    if checked.form == Form::ServerOptions {
        return server_options();
    }
    let host = checked.host;
    let path = req.uri().path().to_string();
    let idempotent = is_idempotent(req.method());
    let (parts, body) = req.into_parts();
    let body = match ClientBody::read_start(body, READ_AHEAD).await {
        Ok(body) => body,
        Err(error) => return bad_body(&error),
    };
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let head = RequestHead {
        client: peer.ip(),
        method: &parts.method,
        host: &host,
        path_and_query,
        headers: &parts.headers,
    };
    let (mut routed, matched_log) = table.route_logged(&host, &path, idempotent, Some(&head));
    // What a line says of the request, taken only where a log will have it.
    let logged = |matched: Option<Arc<AccessLog>>| {
        matched.map(|l| {
            let requested = Requested::new(
                started,
                peer.ip(),
                &parts.method,
                &parts.uri,
                parts.version,
                &parts.headers,
            );
            (l, requested)
        })
    };
    *log = logged(matched_log);
    if let Routed::Held {
        mut released,
        timeout,
    } = routed
    {
        // Woken by a release (the sender is dropped: `Err`) or a `remove` (`Ok`); either
        // way the request is routed with the table as it is now.
        if tokio::time::timeout(timeout, released.changed())
            .await
            .is_err()
        {
            let mut response = text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("http://{host} is being deployed; try again in a few seconds\n"),
            );
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
            return response;
        }
        let matched_log;
        (routed, matched_log) = table.route_logged(&host, &path, false, Some(&head));
        *log = logged(matched_log);
    }
    match routed {
        Routed::NotFound | Routed::Held { .. } => text(
            StatusCode::NOT_FOUND,
            format!("No environment serves http://{host}{path}\n"),
        ),
        Routed::Redirect(answer) => redirect(&answer, parts.uri.query()),
        Routed::Denied(Verdict::Unauthorized) => {
            let mut response = text(StatusCode::UNAUTHORIZED, "Authentication required\n".into());
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Restricted\""),
            );
            response
        }
        Routed::Denied(_) => text(StatusCode::FORBIDDEN, "Access denied\n".into()),
        Routed::Cached(stored) => from_cache(&stored),
        Routed::Upstream(guard, cacheable) => {
            let request = Proxied {
                peer,
                host: &host,
                path: &path,
                idempotent,
            };
            if let Some(protocol) = request::upgrade_asked(&parts.headers) {
                return request
                    .upgrade(parts, body, guard, table, client, protocol)
                    .await;
            }
            match cacheable {
                None => request.send(parts, body, guard, table, client).await,
                Some(Cacheable::Bypass) => labelled(
                    request.send(parts, body, guard, table, client).await,
                    "BYPASS",
                ),
                Some(Cacheable::Miss { key, owner, policy }) => {
                    let miss = CacheMiss {
                        key,
                        owner: &owner,
                        policy: &policy,
                    };
                    request
                        .through_cache(miss, parts, body, guard, table, client)
                        .await
                }
            }
        }
    }
}

/// The answer to a redirect: `Location` with the request's query string.
fn redirect(answer: &Answer, query: Option<&str>) -> Response<Body> {
    let location = answer.location_with(query);
    let status = StatusCode::from_u16(answer.code).unwrap_or(StatusCode::MOVED_PERMANENTLY);
    let mut response = text(status, format!("Moved to {location}\n"));
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    answer.caching_headers(response.headers_mut(), std::time::SystemTime::now());
    response
}

/// A stored response (hyper leaves the body out for HEAD).
fn from_cache(stored: &cache::Stored) -> Response<Body> {
    let mut response = Response::new(
        Full::new(stored.body.clone())
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = stored.status;
    *response.headers_mut() = stored.headers.clone();
    labelled(response, "HIT")
}

fn labelled(mut response: Response<Body>, label: &'static str) -> Response<Body> {
    response
        .headers_mut()
        .insert(X_PLATFORM_CACHE, HeaderValue::from_static(label));
    response
}

/// A GET or HEAD the route's cache did not have.
struct CacheMiss<'a> {
    key: u128,
    owner: &'a str,
    policy: &'a cache::CachePolicy,
}

struct Proxied<'a> {
    peer: SocketAddr,
    /// The authority the request was routed on, sent to the app as `Host`.
    host: &'a str,
    path: &'a str,
    idempotent: bool,
}

impl Proxied<'_> {
    /// Sends the request to the guard's upstream. When that fails before any response
    /// (the instance was stopped, refused or reset the connection) and the table now
    /// sends the request elsewhere (a deploy switched it), an idempotent request whose
    /// body was read in full is sent once more, to the new upstream. A failure of the
    /// client's own body is the client's: 400, never retried.
    async fn send(
        &self,
        mut parts: Parts,
        body: ClientBody,
        guard: InFlightGuard,
        table: &RouteTable,
        client: &UpstreamClient,
    ) -> Response<Body> {
        self.forward(&mut parts.headers);
        let retry = self
            .idempotent
            .then(|| body.replay().map(|body| (parts.clone(), body)))
            .flatten();
        let body_failed = body.failed.clone();
        let Some(first) = self.request(parts, body.boxed(), &guard.addr) else {
            return malformed();
        };
        let error = match client.request(first).await {
            Ok(response) => return tracked(response, guard),
            Err(error) => error,
        };
        if let Some(body_error) = body_failed.get() {
            return bad_body(body_error);
        }
        tracing::debug!(%error, upstream = %guard.addr, "Upstream request failed.");
        let owner = guard.owner.clone();
        if let Some((parts, body)) = retry
            && let Routed::Upstream(next, _) = table.route(self.host, self.path, false, None)
            && next.addr != guard.addr
        {
            drop(guard);
            let Some(second) = self.request(parts, body.boxed(), &next.addr) else {
                return malformed();
            };
            match client.request(second).await {
                Ok(response) => return tracked(response, next),
                Err(error) => {
                    tracing::debug!(%error, upstream = %next.addr, "Upstream request failed again.");
                }
            }
        }
        self.not_answering(&owner, table)
    }

    /// A request to switch protocols (a WebSocket): asked of the app as it came; when
    /// the app switches (101), the router answers 101 too and then copies bytes both
    /// ways between the two connections until both have ended. Any other answer of the
    /// app is passed on as usual. An upgraded connection is no longer a request in
    /// flight: a deploy does not wait for it to end (it ends when its app instance
    /// stops).
    async fn upgrade(
        &self,
        mut parts: Parts,
        body: ClientBody,
        guard: InFlightGuard,
        table: &RouteTable,
        client: &UpstreamClient,
        protocol: HeaderValue,
    ) -> Response<Body> {
        let Some(from_client) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
            return malformed();
        };
        self.forward(&mut parts.headers);
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(header::UPGRADE, protocol);
        let Some(upstream_request) = self.request(parts, body.boxed(), &guard.addr) else {
            return malformed();
        };
        let mut response = match client.request(upstream_request).await {
            Ok(response) => response,
            Err(error) => {
                tracing::debug!(%error, upstream = %guard.addr, "Upstream upgrade request failed.");
                return self.not_answering(&guard.owner, table);
            }
        };
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return tracked(response, guard);
        }
        let from_app = hyper::upgrade::on(&mut response);
        let switched_to = response.headers().get(header::UPGRADE).cloned();
        let (mut head, _) = response.into_parts();
        request::remove_hop_by_hop(&mut head.headers);
        if let Some(switched_to) = switched_to {
            head.headers.insert(header::UPGRADE, switched_to);
        }
        head.headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        drop(guard);
        tokio::spawn(async move {
            match tokio::try_join!(from_client, from_app) {
                Ok((client_io, app_io)) => {
                    let mut client_io = hyper_util::rt::TokioIo::new(client_io);
                    let mut app_io = hyper_util::rt::TokioIo::new(app_io);
                    if let Err(error) =
                        tokio::io::copy_bidirectional(&mut client_io, &mut app_io).await
                    {
                        tracing::debug!(%error, "Upgraded connection ended with an error.");
                    }
                }
                Err(error) => tracing::debug!(%error, "A connection could not be upgraded."),
            }
        });
        let empty = Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed();
        Response::from_parts(head, empty)
    }

    /// The app of `owner` gave no response: 503 with `Retry-After` while the
    /// environment is being deployed, else 502; either way naming the environment and
    /// its state, at once (the router never waits for an app that is down).
    fn not_answering(&self, owner: &str, table: &RouteTable) -> Response<Body> {
        let (project, env) = owner.split_once('/').unwrap_or(("", owner));
        let what = format!(
            "The app of environment {env} (project {project}) at http://{}",
            self.host
        );
        if table.is_held(owner) {
            let mut response = text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{what} is being deployed; try again in a few seconds\n"),
            );
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
            return response;
        }
        text(
            StatusCode::BAD_GATEWAY,
            format!("{what} is not answering: it is starting, restarting or failing\n"),
        )
    }

    /// A cache miss: one GET per key goes to the app, and its response is stored when
    /// it may be; other GETs of the key wait for it and are answered from the cache,
    /// or go to the app themselves when nothing was stored. A HEAD is passed on.
    async fn through_cache(
        &self,
        miss: CacheMiss<'_>,
        parts: Parts,
        body: ClientBody,
        guard: InFlightGuard,
        table: &RouteTable,
        client: &UpstreamClient,
    ) -> Response<Body> {
        if parts.method != Method::GET {
            return labelled(self.send(parts, body, guard, table, client).await, "MISS");
        }
        let cache = &table.inner.cache;
        let fetching = match cache.begin(miss.key) {
            Miss::Fetch(fetching) => fetching,
            Miss::Wait(mut done) => {
                let _ = tokio::time::timeout(COALESCE_WAIT, done.changed()).await;
                let now = tokio::time::Instant::now();
                if let Some(stored) = cache.get(miss.key, &parts.headers, now) {
                    return from_cache(&stored);
                }
                return labelled(self.send(parts, body, guard, table, client).await, "MISS");
            }
        };
        let request_headers = parts.headers.clone();
        let response = self.send(parts, body, guard, table, client).await;
        let (head, body) = response.into_parts();
        let now = std::time::SystemTime::now();
        let too_large = body
            .size_hint()
            .upper()
            .is_some_and(|n| n > cache::MAX_ENTRY_BYTES as u64);
        if too_large || !cache::may_store(head.status, &head.headers, miss.policy, now) {
            drop(fetching);
            return labelled(Response::from_parts(head, body), "MISS");
        }
        let response = match read_whole(body, cache::MAX_ENTRY_BYTES).await {
            Ok(Ok(bytes)) => {
                cache.store(
                    miss.owner,
                    miss.policy,
                    miss.key,
                    &request_headers,
                    head.status,
                    &head.headers,
                    bytes.clone(),
                    (tokio::time::Instant::now(), now),
                );
                let body = Full::new(bytes).map_err(|never| match never {}).boxed();
                Response::from_parts(head, body)
            }
            Ok(Err(body)) => Response::from_parts(head, body),
            Err(error) => {
                tracing::debug!(%error, "Upstream response body failed.");
                self.not_answering(miss.owner, table)
            }
        };
        drop(fetching);
        labelled(response, "MISS")
    }

    /// The request's headers as the app gets them: hop-by-hop ones removed, who it is
    /// forwarded for, and its `X-Request-Id`.
    fn forward(&self, headers: &mut hyper::HeaderMap) {
        request::upstream_headers(
            headers,
            &Forwarded {
                host: self.host,
                client: self.peer.ip(),
            },
        );
        headers.insert(request::X_REQUEST_ID, request::request_id());
    }

    fn request(&self, mut parts: Parts, body: Body, upstream: &Upstream) -> Option<Request<Body>> {
        let path_and_query = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        parts.uri = format!("http://{}{path_and_query}", upstream.authority())
            .parse::<Uri>()
            .ok()?;
        Some(Request::from_parts(parts, body))
    }
}

/// The upstream's response, counted in flight until its body has ended or is dropped
/// (hyper drops it once written, or with the connection when the client goes away).
fn tracked(response: Response<Incoming>, guard: InFlightGuard) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    request::remove_hop_by_hop(&mut parts.headers);
    let body = TrackedBody {
        inner: body.boxed(),
        guard: Some(guard),
    };
    Response::from_parts(parts, body.boxed())
}

struct TrackedBody {
    inner: Body,
    guard: Option<InFlightGuard>,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None | Some(Err(_))) => this.guard = None,
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.guard = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A client's request body, as the app receives it: what was read ahead, then the
/// rest as it arrives. A failure of the rest (a malformed chunk, the client gone
/// mid-body) is recorded in `failed`, so that the proxy can tell it from an upstream's.
/// The cache reads an app's response the same way (`B` is then the app's body).
struct ClientBody<B = Incoming> {
    read: VecDeque<Frame<Bytes>>,
    /// `None` once the body has ended.
    rest: Option<B>,
    failed: Arc<OnceLock<String>>,
}

impl<B> ClientBody<B>
where
    B: hyper::body::Body<Data = Bytes, Error = hyper::Error> + Unpin,
{
    /// Reads `body` until at least `limit` bytes were read or it ended; an error is
    /// the body's sender's.
    async fn read_start(body: B, limit: usize) -> Result<ClientBody<B>, hyper::Error> {
        let mut read = VecDeque::new();
        let mut size = 0;
        let mut rest = Some(body);
        while size < limit
            && let Some(incoming) = rest.as_mut()
        {
            if incoming.is_end_stream() {
                rest = None;
                break;
            }
            match incoming.frame().await {
                None => rest = None,
                Some(Ok(frame)) => {
                    size += frame.data_ref().map_or(0, Bytes::len);
                    read.push_back(frame);
                }
                Some(Err(error)) => return Err(error),
            }
        }
        Ok(ClientBody {
            read,
            rest,
            failed: Arc::default(),
        })
    }

    /// A copy to send again, when the whole body was read ahead.
    fn replay(&self) -> Option<ClientBody<B>> {
        if self.rest.is_some() {
            return None;
        }
        let read = self
            .read
            .iter()
            .filter_map(|frame| {
                frame
                    .data_ref()
                    .map(|data| Frame::data(data.clone()))
                    .or_else(|| frame.trailers_ref().map(|t| Frame::trailers(t.clone())))
            })
            .collect();
        Some(ClientBody {
            read,
            rest: None,
            failed: Arc::default(),
        })
    }
}

impl<B> hyper::body::Body for ClientBody<B>
where
    B: hyper::body::Body<Data = Bytes, Error = hyper::Error> + Unpin,
{
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if let Some(frame) = this.read.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        let Some(rest) = this.rest.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(rest).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Err(error))) => {
                let _ = this.failed.set(error.to_string());
            }
            Poll::Ready(None) => this.rest = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.read.is_empty() && self.rest.as_ref().is_none_or(|rest| rest.is_end_stream())
    }

    /// Exact when the whole body was read ahead: the app then gets a
    /// `Content-Length` even when the client sent chunks.
    fn size_hint(&self) -> SizeHint {
        let read: u64 = self
            .read
            .iter()
            .filter_map(|frame| frame.data_ref())
            .map(|data| data.len() as u64)
            .sum();
        let trailers = self.read.iter().any(|frame| frame.is_trailers());
        let (lower, upper) = match &self.rest {
            None if !trailers => return SizeHint::with_exact(read),
            None => (read, None),
            Some(rest) => {
                let hint = rest.size_hint();
                (
                    hint.lower().saturating_add(read),
                    hint.upper().map(|upper| upper.saturating_add(read)),
                )
            }
        };
        let mut hint = SizeHint::new();
        hint.set_lower(lower);
        if let Some(upper) = upper {
            hint.set_upper(upper);
        }
        hint
    }
}

/// A response body read whole when it is not longer than `limit`; else what was
/// read, then the rest as it comes.
async fn read_whole(body: Body, limit: usize) -> Result<Result<Bytes, Body>, hyper::Error> {
    let read = ClientBody::read_start(body, limit + 1).await?;
    if read.rest.is_some() {
        return Ok(Err(read.boxed()));
    }
    let mut whole = Vec::new();
    for data in read.read.iter().filter_map(Frame::data_ref) {
        whole.extend_from_slice(data);
    }
    Ok(Ok(Bytes::from(whole)))
}

/// The answer to `OPTIONS *`: a question about the server, not about a resource of
/// an app (RFC 9110 §9.3.7), so the router answers it.
fn server_options() -> Response<Body> {
    let mut response = text(StatusCode::OK, String::new());
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
    response
}

/// A request body that could not be read: malformed chunks, fewer bytes than its
/// `Content-Length` before the client closed. The client's fault, logged at debug
/// only (hostile clients must not fill the log).
fn bad_body(reason: &dyn Display) -> Response<Body> {
    tracing::debug!(%reason, "Unreadable request body.");
    text(
        StatusCode::BAD_REQUEST,
        "Malformed or incomplete request body\n".into(),
    )
}

fn malformed() -> Response<Body> {
    text(StatusCode::BAD_REQUEST, "Malformed request path\n".into())
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
