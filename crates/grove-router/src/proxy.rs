//! The HTTP/1.1 reverse proxy that serves a [`RouteTable`].

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{Matched, RouteTable, Target};

type Body = BoxBody<Bytes, hyper::Error>;
type UpstreamClient = Client<HttpConnector, Incoming>;

/// Serves the table on `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, table: RouteTable, shutdown: CancellationToken) {
    let client: UpstreamClient = Client::builder(TokioExecutor::new()).build_http();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(error) => {
                    tracing::warn!(%error, "Router accept failed.");
                    continue;
                }
            },
        };
        let table = table.clone();
        let client = client.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let table = table.clone();
                let client = client.clone();
                async move { Ok::<_, Infallible>(handle(req, peer, &table, &client).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "Router connection ended with an error.");
                    }
                }
                () = shutdown.cancelled() => conn.as_mut().graceful_shutdown(),
            }
        });
    }
}

async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
    table: &RouteTable,
    client: &UpstreamClient,
) -> Response<Body> {
    let host = request_host(&req);
    let path = req.uri().path().to_string();
    let Some(Matched { target, prefix }) = table.lookup(&host, &path) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("No environment serves http://{host}{path}\n"),
        );
    };
    match target {
        Target::Redirect { location, code } => {
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
        Target::Upstream(addr) => proxy(req, peer, addr, &host, client).await,
    }
}

async fn proxy(
    mut req: Request<Incoming>,
    peer: SocketAddr,
    upstream: SocketAddr,
    host: &str,
    client: &UpstreamClient,
) -> Response<Body> {
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let uri: Uri = match format!("http://{upstream}{path_and_query}").parse() {
        Ok(uri) => uri,
        Err(_) => return text(StatusCode::BAD_REQUEST, "Malformed request path\n".into()),
    };
    *req.uri_mut() = uri;
    let headers = req.headers_mut();
    remove_hop_by_hop(headers);
    let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(previous) => format!("{previous}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    for (name, value) in [
        ("x-forwarded-for", forwarded_for),
        ("x-forwarded-proto", "http".to_string()),
        ("x-forwarded-host", host.to_string()),
        ("x-client-ip", peer.ip().to_string()),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    match client.request(req).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            remove_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, body.boxed())
        }
        Err(error) => {
            tracing::debug!(%error, %upstream, "Upstream request failed.");
            text(
                StatusCode::BAD_GATEWAY,
                format!("The app behind http://{host} is not answering\n"),
            )
        }
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
