//! What the router accepts from a client, and which of its headers pass on: pure
//! functions over a request head, so that every hostile head is a table row in a test.
//!
//! hyper has already refused what breaks HTTP/1 framing (an unparseable head,
//! conflicting `Content-Length`s, a `Transfer-Encoding` that does not end in
//! `chunked`); what is left is what the router itself depends on to route: exactly
//! one valid `Host`, and a request-target it can forward.

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Uri};

/// A request head the router can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checked {
    /// The authority the request is for, `host[:port]` as the client wrote it: what
    /// the route is looked up with and the `Host` the app receives.
    pub host: String,
    pub form: Form,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// A path (origin-form, or absolute-form reduced to its path): route and forward.
    Path,
    /// `OPTIONS *`: a question about the server, which the router answers itself.
    ServerOptions,
}

/// Why a request is refused before anything is routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    NoHost,
    SeveralHosts,
    InvalidHost,
    /// `*` with a method other than OPTIONS (RFC 9112 §3.2.4).
    AsteriskForm,
    /// An absolute-form target with a scheme other than http(s).
    Scheme,
    /// authority-form (`CONNECT host:port`) or a target that is not a path.
    Target,
    /// CONNECT: the router is not a forward proxy.
    Connect,
}

impl Refused {
    pub(crate) fn status(self) -> hyper::StatusCode {
        match self {
            Refused::Connect => hyper::StatusCode::NOT_IMPLEMENTED,
            _ => hyper::StatusCode::BAD_REQUEST,
        }
    }

    pub(crate) fn message(self) -> &'static str {
        match self {
            Refused::NoHost => "A Host header is required\n",
            Refused::SeveralHosts => "More than one Host header\n",
            Refused::InvalidHost => "The Host is not a valid host[:port]\n",
            Refused::AsteriskForm => "Only OPTIONS may have the request-target *\n",
            Refused::Scheme => "Only http and https URLs are served\n",
            Refused::Target => "The request-target must be a path\n",
            Refused::Connect => "CONNECT is not supported: this is not a forward proxy\n",
        }
    }
}

/// Checks a request head (RFC 9112 §3.2). The `Host` header must be there exactly
/// once and valid, whatever the target's form: a request that could be read as being
/// for two hosts is refused rather than guessed at.
///
/// An absolute-form target (`GET http://a.example/ HTTP/1.1`) is for the target's
/// authority, whatever `Host` says: RFC 9112 §3.2.2 tells an origin server, which the
/// router is to its clients, to ignore `Host` then, and a proxy forwarding it to
/// replace `Host` with the target's authority. Refusing would also be allowed, but
/// the router forwards the authority it routed on as `Host`, so following the RFC
/// cannot route a request on one host and show the app another.
pub(crate) fn check(method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<Checked, Refused> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (None, _) => return Err(Refused::NoHost),
        (Some(_), Some(_)) => return Err(Refused::SeveralHosts),
        (Some(host), None) => host.to_str().map_err(|_| Refused::InvalidHost)?,
    };
    if !is_authority(host) {
        return Err(Refused::InvalidHost);
    }
    if method == Method::CONNECT {
        return Err(Refused::Connect);
    }
    if uri == "*" {
        return if method == Method::OPTIONS {
            Ok(Checked {
                host: host.to_string(),
                form: Form::ServerOptions,
            })
        } else {
            Err(Refused::AsteriskForm)
        };
    }
    match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => {
            if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
                return Err(Refused::Scheme);
            }
            // The authority may carry userinfo, which RFC 9110 §4.2.4 says to treat
            // as an error; `is_authority` refuses its `@`.
            if !is_authority(authority.as_str()) {
                return Err(Refused::InvalidHost);
            }
            Ok(Checked {
                host: authority.as_str().to_string(),
                form: Form::Path,
            })
        }
        (None, None) if uri.path().starts_with('/') => Ok(Checked {
            host: host.to_string(),
            form: Form::Path,
        }),
        _ => Err(Refused::Target),
    }
}

/// `host[:port]` (RFC 3986 §3.2.2), narrowed to what can name a route: a DNS-like
/// name (letters, digits, `-`, `.`, `_`, `~`), an IPv4 address or a bracketed IPv6
/// literal, and an optional port of 1 to 5 digits up to 65535. Percent-encoding, the
/// sub-delimiters (`,` `;` `'` ...), userinfo and whitespace name no route and are
/// what header smuggling is made of, so they are refused.
fn is_authority(value: &str) -> bool {
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let Some((literal, after)) = rest.split_once(']') else {
            return false;
        };
        if literal.is_empty()
            || !literal.contains(':')
            || !literal
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return false;
        }
        match after {
            "" => ("ipv6", None),
            _ => match after.strip_prefix(':') {
                Some(port) => ("ipv6", Some(port)),
                None => return false,
            },
        }
    } else {
        match value.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (value, None),
        }
    };
    let host_ok = !host.is_empty()
        && host.len() <= 255
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'));
    let port_ok = port.is_none_or(|port| {
        (1..=5).contains(&port.len())
            && port.chars().all(|c| c.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|p| p <= 65_535)
    });
    host_ok && port_ok
}

/// Headers about one connection, not the message (RFC 9110 §7.6.1), removed in both
/// directions. `Upgrade` is among them: an upgrade the client asks for
/// ([`upgrade_asked`]) is asked of the app again by the proxy; the proxy headers because the router
/// is no forward proxy: a client's proxy credentials are not the app's business, and
/// an app's challenge for them means nothing to the client.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
];

/// What a `Connection` header may not name away. It lists the sender's hop-by-hop
/// headers, and RFC 9110 says to remove what it names, but `Host` and
/// `Content-Length` are the message's routing and framing: `Connection: close, Host`
/// would otherwise deliver the request to the app without the host it was routed on.
/// (The forwarding headers are set after the removal, so they cannot be named away
/// either.)
const NOT_CONNECTION_OPTIONS: [HeaderName; 2] = [header::HOST, header::CONTENT_LENGTH];

/// Removes the hop-by-hop headers of a message and those its `Connection` names.
/// Returns whether a request's `TE` accepted trailers, which the next hop needs to
/// hear again for trailers to reach the client.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) -> bool {
    let trailers = headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let name = coding.split(';').next().unwrap_or_default();
            name.trim().eq_ignore_ascii_case("trailers")
        });
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .filter(|name| !NOT_CONNECTION_OPTIONS.contains(name))
        .collect();
    for name in named.iter().chain(&HOP_BY_HOP) {
        headers.remove(name);
    }
    trailers
}

/// The protocol a request asks to switch its connection to (`Connection: upgrade` with
/// `Upgrade: websocket`, RFC 9110 §7.8), if it asks.
pub(crate) fn upgrade_asked(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|option| option.trim().eq_ignore_ascii_case("upgrade"));
    asks.then(|| headers.get(header::UPGRADE).cloned())
        .flatten()
}

/// Who the router forwards a request for, as the app sees it.
pub(crate) struct Forwarded<'a> {
    /// The authority the request was routed on.
    pub host: &'a str,
    /// The client's address.
    pub client: std::net::IpAddr,
}

/// The headers of a request as it goes to the app: hop-by-hop headers removed, the
/// routed host as `Host`, and the forwarding headers. A client's own
/// `X-Forwarded-For` is kept and the client's address appended (the app trusts only
/// the last entry, the one the router wrote); the other forwarding headers are the
/// router's alone and replace whatever the client sent.
pub(crate) fn upstream_headers(headers: &mut HeaderMap, forwarded: &Forwarded<'_>) {
    let trailers = remove_hop_by_hop(headers);
    // The router answered `Expect: 100-continue` itself when it read the body.
    headers.remove(header::EXPECT);
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        // RFC 9110 §10.1.4: a sender of TE also sends the TE connection option.
        headers.insert(header::CONNECTION, HeaderValue::from_static("te"));
    }
    let client = forwarded.client.to_string();
    let mut chain: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    chain.push(&client);
    let forwarded_for = chain.join(", ");
    for (name, value) in [
        (header::HOST, forwarded.host),
        (HeaderName::from_static("x-forwarded-for"), &forwarded_for),
        (HeaderName::from_static("x-forwarded-proto"), "http"),
        (HeaderName::from_static("x-forwarded-host"), forwarded.host),
        (HeaderName::from_static("x-client-ip"), &client),
    ] {
        match HeaderValue::from_str(value) {
            Ok(value) => {
                headers.insert(name, value);
            }
            // Only a client's X-Forwarded-For can be invalid here (the host was
            // checked): drop the client's chain, keep the router's word.
            Err(_) => {
                if let Ok(value) = HeaderValue::from_str(&client) {
                    headers.insert(name, value);
                }
            }
        }
    }
}

/// `X-Request-Id`: a new id for each request the router forwards, 32 hex digits as
/// nginx's `$request_id`, so that an app's log lines and the router's can be matched.
/// A client's own is replaced: the app can trust it is the router's. Unique within
/// the process (a counter), unguessable across processes (keyed by a random seed).
pub(crate) fn request_id() -> HeaderValue {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEED: OnceLock<(RandomState, u64)> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let (keys, prefix) = SEED.get_or_init(|| {
        let keys = RandomState::new();
        let prefix = keys.hash_one(std::process::id());
        (keys, prefix)
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    // The high half keyed and varying, the low half the counter under a keyed mask:
    // two requests of one process never share an id.
    let high = keys.hash_one(n);
    let low = n ^ prefix;
    let mut hex = [0u8; 32];
    for (i, byte) in high
        .to_be_bytes()
        .iter()
        .chain(&low.to_be_bytes())
        .enumerate()
    {
        hex[2 * i] = HEX[usize::from(byte >> 4)];
        hex[2 * i + 1] = HEX[usize::from(byte & 0xf)];
    }
    HeaderValue::from_bytes(&hex).unwrap_or(HeaderValue::from_static("0"))
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `X-Request-Id`.
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[cfg(test)]
mod tests {
    use super::*;

    fn head(method: &str, target: &str, headers: &[(&str, &str)]) -> (Method, Uri, HeaderMap) {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        (
            Method::from_bytes(method.as_bytes()).expect("method"),
            target.parse().expect("target"),
            map,
        )
    }

    #[test]
    fn request_heads() {
        let check = |method: &str,
                     target: &str,
                     headers: &[(&str, &str)],
                     expected: Result<(&str, Form), Refused>| {
            let (method, uri, map) = head(method, target, headers);
            let got = super::check(&method, &uri, &map);
            let expected = expected.map(|(host, form)| Checked {
                host: host.to_string(),
                form,
            });
            assert_eq!(got, expected, "{method} {target} {headers:?}");
        };
        use Form::*;
        use Refused::*;
        let h = "main.shop.localhost";
        check("GET", "/", &[("host", h)], Ok((h, Path)));
        check(
            "GET",
            "/x?y",
            &[("host", "Main.Shop.localhost:8080")],
            Ok(("Main.Shop.localhost:8080", Path)),
        );
        check(
            "GET",
            "/",
            &[("host", "127.0.0.1:80")],
            Ok(("127.0.0.1:80", Path)),
        );
        check(
            "GET",
            "/",
            &[("host", "[::1]:8080")],
            Ok(("[::1]:8080", Path)),
        );
        check("GET", "/", &[("host", "[::1]")], Ok(("[::1]", Path)));
        check("GET", "/", &[], Err(NoHost));
        check("GET", "/", &[("host", h), ("host", h)], Err(SeveralHosts));
        check(
            "GET",
            "/",
            &[("host", h), ("host", "other.localhost")],
            Err(SeveralHosts),
        );
        for bad in [
            "",
            ":80",
            "a b",
            "a,b",
            "a.localhost, b.localhost",
            "user@a.localhost",
            "a.localhost:",
            "a.localhost:http",
            "a.localhost:65536",
            "a.localhost:123456",
            "a.localhost:80:80",
            "a%2elocalhost",
            "a;b",
            "[::1",
            "[]",
            "[::1]x",
            "[fe80::1%25eth0]",
        ] {
            check("GET", "/", &[("host", bad)], Err(InvalidHost));
        }
        // Absolute-form: the target's authority, whatever Host says; Host still counts.
        check(
            "GET",
            "http://other.localhost:81/x",
            &[("host", h)],
            Ok(("other.localhost:81", Path)),
        );
        check(
            "GET",
            "https://other.localhost/",
            &[("host", h)],
            Ok(("other.localhost", Path)),
        );
        check(
            "GET",
            "http://other.localhost/",
            &[("host", h), ("host", h)],
            Err(SeveralHosts),
        );
        check("GET", "http://other.localhost/", &[], Err(NoHost));
        check(
            "GET",
            "http://user:pw@other.localhost/",
            &[("host", h)],
            Err(InvalidHost),
        );
        check("GET", "ftp://other.localhost/", &[("host", h)], Err(Scheme));
        // Asterisk-form is for OPTIONS only.
        check("OPTIONS", "*", &[("host", h)], Ok((h, ServerOptions)));
        for method in ["GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "PATCH"] {
            check(method, "*", &[("host", h)], Err(AsteriskForm));
        }
        check("OPTIONS", "*", &[("host", "a b")], Err(InvalidHost));
        // Authority-form: CONNECT is not served, and nothing else may use it.
        check(
            "CONNECT",
            "other.localhost:443",
            &[("host", h)],
            Err(Connect),
        );
        check("GET", "other.localhost:443", &[("host", h)], Err(Target));
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        head("GET", "/", pairs).2
    }

    fn pairs(map: &HeaderMap) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = map
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    v.to_str().unwrap_or("<opaque>").to_string(),
                )
            })
            .collect();
        pairs.sort();
        pairs
    }

    #[test]
    fn hop_by_hop_headers() {
        let check = |before: &[(&str, &str)], after: &[(&str, &str)], trailers: bool| {
            let mut map = headers(before);
            assert_eq!(remove_hop_by_hop(&mut map), trailers, "{before:?}");
            assert_eq!(pairs(&map), pairs(&headers(after)), "{before:?}");
        };
        let h = ("host", "main.shop.localhost");
        check(
            &[
                h,
                ("connection", "keep-alive, X-Secret"),
                ("keep-alive", "timeout=5"),
                ("x-secret", "1"),
                ("proxy-connection", "keep-alive"),
                ("upgrade", "websocket"),
                ("proxy-authorization", "Basic eDp5"),
                ("accept", "*/*"),
            ],
            &[h, ("accept", "*/*")],
            false,
        );
        // Several Connection lines, odd spacing and case.
        check(
            &[
                h,
                ("connection", "close"),
                ("Connection", " X-A ,x-b"),
                ("x-a", "1"),
                ("x-b", "2"),
                ("x-c", "3"),
            ],
            &[h, ("x-c", "3")],
            false,
        );
        // TE goes, its trailers are reported.
        check(&[h, ("te", "gzip;q=0.5, trailers")], &[h], true);
        check(&[h, ("te", "gzip")], &[h], false);
        // Trailer is end-to-end: it announces the trailers that follow.
        check(
            &[h, ("trailer", "x-digest")],
            &[h, ("trailer", "x-digest")],
            false,
        );
    }

    #[test]
    fn connection_close_host_keeps_the_host() {
        let mut map = headers(&[
            ("host", "main.shop.localhost"),
            ("content-length", "3"),
            ("connection", "close, Host, Content-Length, X-Forwarded-For"),
            ("x-forwarded-for", "10.0.0.1"),
        ]);
        upstream_headers(
            &mut map,
            &Forwarded {
                host: "main.shop.localhost",
                client: [127, 0, 0, 2].into(),
            },
        );
        assert_eq!(
            pairs(&map),
            pairs(&headers(&[
                ("host", "main.shop.localhost"),
                ("content-length", "3"),
                ("x-forwarded-for", "127.0.0.2"),
                ("x-forwarded-proto", "http"),
                ("x-forwarded-host", "main.shop.localhost"),
                ("x-client-ip", "127.0.0.2"),
            ]))
        );
    }

    #[test]
    fn request_ids_are_32_hex_digits_and_never_repeat() {
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| request_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in ids.iter().take(10) {
            let text = id.to_str().expect("ascii");
            assert_eq!(text.len(), 32, "{text}");
            assert!(text.bytes().all(|b| HEX.contains(&b)), "{text}");
        }
    }

    #[test]
    fn forwarding_headers() {
        let check = |before: &[(&str, &str)], after: &[(&str, &str)]| {
            let mut map = headers(before);
            upstream_headers(
                &mut map,
                &Forwarded {
                    host: "other.localhost:81",
                    client: [127, 0, 0, 2].into(),
                },
            );
            assert_eq!(pairs(&map), pairs(&headers(after)), "{before:?}");
        };
        let ours = |xff: &'static str| {
            [
                ("host", "other.localhost:81"),
                ("x-forwarded-for", xff),
                ("x-forwarded-proto", "http"),
                ("x-forwarded-host", "other.localhost:81"),
                ("x-client-ip", "127.0.0.2"),
            ]
        };
        // The routed host replaces the Host header (absolute-form).
        check(&[("host", "main.shop.localhost")], &ours("127.0.0.2"));
        // A client's chain is kept, every line of it, and ours appended; its other
        // forwarding headers are replaced.
        check(
            &[
                ("host", "main.shop.localhost"),
                ("x-forwarded-for", "10.0.0.1"),
                ("x-forwarded-for", "10.0.0.2, 10.0.0.3"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "bank.example"),
                ("x-client-ip", "10.9.9.9"),
                ("expect", "100-continue"),
            ],
            &ours("10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.2"),
        );
        // Trailers accepted by the client are asked for on the next hop too.
        let mut with_te = ours("127.0.0.2").to_vec();
        with_te.extend([("te", "trailers"), ("connection", "te")]);
        check(
            &[("host", "main.shop.localhost"), ("te", "trailers")],
            &with_te,
        );
    }
}
