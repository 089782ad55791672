//! The HTTP/1.1 reverse proxy that serves a [`RouteTable`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::connections::{ConnectionLimits, ConnectionStats, serve_connections};
use crate::{InFlightGuard, RouteTable, Routed};

type Body = BoxBody<Bytes, hyper::Error>;
type UpstreamClient = Client<HttpConnector, Body>;

/// What a held request that waited too long is told to wait before trying again.
const RETRY_AFTER_SECONDS: &str = "5";

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
    let client: UpstreamClient = Client::builder(TokioExecutor::new()).build_http();
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

async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
    table: &RouteTable,
    client: &UpstreamClient,
) -> Response<Body> {
    let host = request_host(&req);
    let path = req.uri().path().to_string();
    let idempotent = is_idempotent(req.method());
    let mut routed = table.route(&host, &path, idempotent);
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
        routed = table.route(&host, &path, false);
    }
    match routed {
        Routed::NotFound | Routed::Held { .. } => text(
            StatusCode::NOT_FOUND,
            format!("No environment serves http://{host}{path}\n"),
        ),
        Routed::Redirect {
            location,
            code,
            prefix,
        } => {
            let rest = path.strip_prefix(prefix.as_str()).unwrap_or("");
            let mut location = format!("{location}{rest}");
            if let Some(query) = req.uri().query() {
                location.push('?');
                location.push_str(query);
            }
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::MOVED_PERMANENTLY);
            let mut response = text(status, format!("Moved to {location}\n"));
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
        }
        Routed::Upstream(guard) => {
            let request = Proxied {
                peer,
                host: &host,
                path: &path,
                idempotent,
            };
            request.send(req, guard, table, client).await
        }
    }
}

struct Proxied<'a> {
    peer: SocketAddr,
    host: &'a str,
    path: &'a str,
    idempotent: bool,
}

impl Proxied<'_> {
    /// Sends the request to the guard's upstream. When that fails before any response
    /// (the instance was stopped, refused or reset the connection) and the table now
    /// sends the request elsewhere (a deploy switched it), an idempotent request without
    /// a body is sent once more, to the new upstream.
    async fn send(
        &self,
        req: Request<Incoming>,
        guard: InFlightGuard,
        table: &RouteTable,
        client: &UpstreamClient,
    ) -> Response<Body> {
        let (mut parts, body) = req.into_parts();
        self.prepare_headers(&mut parts.headers);
        let retry = (self.idempotent && body.is_end_stream()).then(|| parts.clone());
        let Some(first) = self.request(parts, body.boxed(), guard.addr) else {
            return malformed();
        };
        let error = match client.request(first).await {
            Ok(response) => return tracked(response, guard),
            Err(error) => error,
        };
        tracing::debug!(%error, upstream = %guard.addr, "Upstream request failed.");
        if let Some(parts) = retry
            && let Routed::Upstream(next) = table.route(self.host, self.path, false)
            && next.addr != guard.addr
        {
            drop(guard);
            let empty = Empty::new().map_err(|never| match never {}).boxed();
            let Some(second) = self.request(parts, empty, next.addr) else {
                return malformed();
            };
            match client.request(second).await {
                Ok(response) => return tracked(response, next),
                Err(error) => {
                    tracing::debug!(%error, upstream = %next.addr, "Upstream request failed again.");
                }
            }
        }
        text(
            StatusCode::BAD_GATEWAY,
            format!("The app behind http://{} is not answering\n", self.host),
        )
    }

    fn request(&self, mut parts: Parts, body: Body, upstream: SocketAddr) -> Option<Request<Body>> {
        let path_and_query = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        parts.uri = format!("http://{upstream}{path_and_query}")
            .parse::<Uri>()
            .ok()?;
        Some(Request::from_parts(parts, body))
    }

    fn prepare_headers(&self, headers: &mut HeaderMap) {
        remove_hop_by_hop(headers);
        let peer = self.peer.ip().to_string();
        let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(previous) => format!("{previous}, {peer}"),
            None => peer.clone(),
        };
        for (name, value) in [
            ("x-forwarded-for", forwarded_for),
            ("x-forwarded-proto", "http".to_string()),
            ("x-forwarded-host", self.host.to_string()),
            ("x-client-ip", peer),
        ] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
    }
}

/// The upstream's response, counted in flight until its body has ended or is dropped
/// (hyper drops it once written, or with the connection when the client goes away).
fn tracked(response: Response<Incoming>, guard: InFlightGuard) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    remove_hop_by_hop(&mut parts.headers);
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

fn request_host(req: &Request<Incoming>) -> String {
    req.headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().host().map(str::to_string))
        .unwrap_or_default()
}

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1).
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
    }
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
