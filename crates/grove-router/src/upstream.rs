//! Where an app instance listens: a TCP address (`$PORT`) or a unix socket (`$SOCKET`,
//! `web.upstream.socket_family: unix`), possibly inside an environment's network
//! namespace, and the connector that reaches each.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use grove_runtime::NetNs;
use hyper::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;

/// An app instance's listening address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Upstream {
    /// A TCP address on the host's network.
    Tcp(SocketAddr),
    /// A TCP address inside a network namespace (an environment's): connected
    /// from inside it, so `127.0.0.1:$PORT` is that environment's.
    InNetNs(NetNs, SocketAddr),
    /// A unix socket, by its path on this host.
    Unix(PathBuf),
}

impl From<SocketAddr> for Upstream {
    fn from(addr: SocketAddr) -> Upstream {
        Upstream::Tcp(addr)
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Upstream::Tcp(addr) => write!(f, "{addr}"),
            Upstream::InNetNs(netns, addr) => write!(f, "{addr} ({netns})"),
            Upstream::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// The suffix of the authority that carries a unix socket's path through a `Uri`: the
/// client's connection pool keys on the authority, so each socket gets its own.
const UNIX_SUFFIX: &str = ".unix-socket";
/// The same for a TCP address in a network namespace (`<id>/<address>`): two
/// environments' `127.0.0.1:P` are different upstreams, pooled apart.
const NETNS_SUFFIX: &str = ".netns";
/// Hex characters per DNS-style label of that authority.
const LABEL: usize = 60;

impl Upstream {
    /// The authority a request to this upstream is sent to.
    pub(crate) fn authority(&self) -> String {
        match self {
            Upstream::Tcp(addr) => addr.to_string(),
            Upstream::InNetNs(netns, addr) => {
                format!(
                    "{}{NETNS_SUFFIX}",
                    hex_labels(format!("{}/{addr}", netns.id()).as_bytes())
                )
            }
            Upstream::Unix(path) => {
                format!(
                    "{}{UNIX_SUFFIX}",
                    hex_labels(path.as_os_str().as_encoded_bytes())
                )
            }
        }
    }
}

/// `bytes` in hex, as DNS-style labels.
fn hex_labels(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let labels: Vec<&str> = hex
        .as_bytes()
        .chunks(LABEL)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    labels.join(".")
}

/// What [`hex_labels`] encoded, as text, if `host` ends with `suffix`.
fn from_hex_labels(host: &str, suffix: &str) -> Option<String> {
    let hex: String = host.strip_suffix(suffix)?.replace('.', "");
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

/// The unix socket path an authority made by [`Upstream::authority`] carries.
fn unix_path(host: &str) -> Option<PathBuf> {
    from_hex_labels(host, UNIX_SUFFIX).map(PathBuf::from)
}

/// The namespace id and address an authority made by [`Upstream::authority`]
/// carries.
fn netns_addr(host: &str) -> Option<(u64, SocketAddr)> {
    let text = from_hex_labels(host, NETNS_SUFFIX)?;
    let (id, addr) = text.split_once('/')?;
    Some((id.parse().ok()?, addr.parse().ok()?))
}

/// Connects to TCP upstreams like hyper's `HttpConnector` and to unix-socket ones.
#[derive(Clone)]
pub(crate) struct UpstreamConnector {
    http: HttpConnector,
}

impl UpstreamConnector {
    pub(crate) fn new() -> UpstreamConnector {
        UpstreamConnector {
            http: HttpConnector::new(),
        }
    }
}

type Connecting = Pin<Box<dyn Future<Output = io::Result<UpstreamStream>> + Send>>;

impl tower_service::Service<Uri> for UpstreamConnector {
    type Response = UpstreamStream;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tower_service::Service::<Uri>::poll_ready(&mut self.http, cx).map_err(io::Error::other)
    }

    fn call(&mut self, uri: Uri) -> Connecting {
        if let Some(path) = uri.host().and_then(unix_path) {
            return Box::pin(async move { connect_unix(&path).await });
        }
        if let Some((id, addr)) = uri.host().and_then(netns_addr) {
            return Box::pin(async move { connect_in_netns(id, addr).await });
        }
        let connecting = tower_service::Service::<Uri>::call(&mut self.http, uri);
        Box::pin(async move {
            connecting
                .await
                .map(UpstreamStream::Tcp)
                .map_err(io::Error::other)
        })
    }
}

async fn connect_unix(path: &Path) -> io::Result<UpstreamStream> {
    let stream = tokio::net::UnixStream::connect(path).await?;
    Ok(UpstreamStream::Unix(TokioIo::new(stream)))
}

async fn connect_in_netns(id: u64, addr: SocketAddr) -> io::Result<UpstreamStream> {
    // The namespace ended with its environment: as if nothing listened.
    let netns = NetNs::by_id(id).ok_or(io::ErrorKind::ConnectionRefused)?;
    let stream = netns.connect_tcp(addr).await?;
    // As hyper's `HttpConnector` does by default.
    stream.set_nodelay(true)?;
    Ok(UpstreamStream::Tcp(TokioIo::new(stream)))
}

/// A connection to an upstream, over TCP or a unix socket.
pub(crate) enum UpstreamStream {
    Tcp(TokioIo<tokio::net::TcpStream>),
    Unix(TokioIo<tokio::net::UnixStream>),
}

impl Connection for UpstreamStream {
    fn connected(&self) -> Connected {
        match self {
            UpstreamStream::Tcp(stream) => stream.connected(),
            UpstreamStream::Unix(_) => Connected::new(),
        }
    }
}

impl Read for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamStream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl Write for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamStream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            UpstreamStream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamStream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_path_survives_the_authority() {
        for path in [
            "/run/app.sock",
            "/tmp/.tmpAbC123/data/tmp/shop/feature-x/run/app-41327/app.sock",
        ] {
            let upstream = Upstream::Unix(PathBuf::from(path));
            let authority = upstream.authority();
            let uri: Uri = format!("http://{authority}/a?b").parse().expect("a URI");
            assert_eq!(uri.host().and_then(unix_path), Some(PathBuf::from(path)));
        }
        assert_eq!(unix_path("127.0.0.1"), None);
    }

    #[test]
    fn a_namespaced_address_survives_the_authority() {
        let netns = NetNs::new().expect("a network namespace");
        let addr = SocketAddr::from(([127, 0, 0, 1], 20_001));
        let authority = Upstream::InNetNs(netns.clone(), addr).authority();
        let uri: Uri = format!("http://{authority}/a?b").parse().expect("a URI");
        assert_eq!(uri.host().and_then(netns_addr), Some((netns.id(), addr)));
        assert_eq!(uri.host().and_then(unix_path), None);
        assert_eq!(netns_addr("127.0.0.1"), None);
    }
}
