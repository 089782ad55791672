//! HTTP access control of an environment (`environment:http-access`), checked before
//! anything of the environment is served.
//!
//! As on Platform.sh (nginx's `satisfy any`): an address an `allow` rule matches
//! (the first matching rule decides) passes; otherwise, when the environment has
//! credentials, valid Basic credentials pass and anything else is answered 401 with
//! `WWW-Authenticate`; without credentials, an address a `deny` rule matches is
//! answered 403 and one no rule matches passes.
//!
//! The check allocates nothing: credentials are kept as the `Authorization` values
//! they are sent as and compared in constant time.

use std::net::IpAddr;

use base64::Engine;
use hyper::header::{self, HeaderMap};
use subtle::ConstantTimeEq;

/// One address rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressRule {
    pub allow: bool,
    pub network: Network,
}

/// An address and prefix length (`192.0.2.0/24`, `2001:db8::/32`, `198.51.100.7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Network, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{text}` is not an IP address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}`: the prefix length must be 0 to {max}"))?,
        };
        Ok(Network { addr, prefix })
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Network {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// An environment's access control, when enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAccess {
    /// `Basic <base64(user:password)>` of each user.
    credentials: Vec<Vec<u8>>,
    rules: Vec<AddressRule>,
}

/// What the check says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Pass,
    /// 401: credentials are needed.
    Unauthorized,
    /// 403: the address is denied.
    Forbidden,
}

impl HttpAccess {
    pub fn new(users: &[(String, String)], rules: Vec<AddressRule>) -> HttpAccess {
        let engine = base64::engine::general_purpose::STANDARD;
        let credentials = users
            .iter()
            .map(|(user, password)| {
                format!("Basic {}", engine.encode(format!("{user}:{password}"))).into_bytes()
            })
            .collect();
        HttpAccess { credentials, rules }
    }

    pub(crate) fn check(&self, client: IpAddr, headers: &HeaderMap) -> Verdict {
        let matched = self.rules.iter().find(|r| r.network.contains(client));
        if matched.is_some_and(|r| r.allow) {
            return Verdict::Pass;
        }
        if !self.credentials.is_empty() {
            return if self.authorized(headers) {
                Verdict::Pass
            } else {
                Verdict::Unauthorized
            };
        }
        if matched.is_some() {
            Verdict::Forbidden
        } else {
            Verdict::Pass
        }
    }

    /// Whether the request's `Authorization` is one of the environment's own
    /// credentials (the cache may then answer it: it is no user's of the app).
    pub(crate) fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(sent) = headers.get(header::AUTHORIZATION) else {
            return false;
        };
        let sent = sent.as_bytes();
        // The scheme is case-insensitive (RFC 9110 §11.1); "Basic " is 6 bytes.
        let scheme_ok = sent.len() > 6 && sent[..6].eq_ignore_ascii_case(b"Basic ");
        let mut any = subtle::Choice::from(0);
        for expected in &self.credentials {
            if expected.len() == sent.len() {
                any |= expected[6..].ct_eq(&sent[6..]);
            }
        }
        scheme_ok && bool::from(any)
    }
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderValue;

    use super::*;

    fn rule(allow: bool, network: &str) -> AddressRule {
        AddressRule {
            allow,
            network: network.parse().expect("network"),
        }
    }

    fn check(access: &HttpAccess, client: &str, authorization: Option<&str>, expected: Verdict) {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(value).expect("value"),
            );
        }
        let ip: IpAddr = client.parse().expect("ip");
        assert_eq!(
            access.check(ip, &headers),
            expected,
            "{client} {authorization:?}"
        );
    }

    // base64("alice:secret") and base64("alice:wrong").
    const ALICE: &str = "Basic YWxpY2U6c2VjcmV0";
    const WRONG: &str = "Basic YWxpY2U6d3Jvbmc=";

    #[test]
    fn networks() {
        let net: Network = "192.0.2.0/24".parse().expect("network");
        assert!(net.contains("192.0.2.77".parse().expect("ip")));
        assert!(net.contains("::ffff:192.0.2.1".parse().expect("ip")));
        assert!(!net.contains("192.0.3.1".parse().expect("ip")));
        let all: Network = "0.0.0.0/0".parse().expect("network");
        assert!(all.contains("203.0.113.9".parse().expect("ip")));
        let one: Network = "127.0.0.1".parse().expect("network");
        assert_eq!(one.to_string(), "127.0.0.1/32");
        assert!(!one.contains("127.0.0.2".parse().expect("ip")));
        let v6: Network = "2001:db8::/32".parse().expect("network");
        assert!(v6.contains("2001:db8:1::1".parse().expect("ip")));
        assert!("10.0.0.0/33".parse::<Network>().is_err());
        assert!("nonsense".parse::<Network>().is_err());
    }

    #[test]
    fn basic_auth_and_address_rules() {
        use Verdict::*;
        let users = vec![("alice".to_string(), "secret".to_string())];
        let auth_only = HttpAccess::new(&users, vec![]);
        check(&auth_only, "127.0.0.1", None, Unauthorized);
        check(&auth_only, "127.0.0.1", Some(WRONG), Unauthorized);
        check(&auth_only, "127.0.0.1", Some(ALICE), Pass);
        check(
            &auth_only,
            "127.0.0.1",
            Some("basic YWxpY2U6c2VjcmV0"),
            Pass,
        );
        check(
            &auth_only,
            "127.0.0.1",
            Some("Bearer YWxpY2U6c2VjcmV0"),
            Unauthorized,
        );

        let rules = vec![rule(true, "127.0.0.2/32"), rule(false, "0.0.0.0/0")];
        let ips_only = HttpAccess::new(&[], rules.clone());
        check(&ips_only, "127.0.0.2", None, Pass);
        check(&ips_only, "127.0.0.1", None, Forbidden);
        check(&ips_only, "127.0.0.1", Some(ALICE), Forbidden);

        // Basic auth lets through what the address rules deny.
        let both = HttpAccess::new(&users, rules);
        check(&both, "127.0.0.2", None, Pass);
        check(&both, "127.0.0.1", None, Unauthorized);
        check(&both, "127.0.0.1", Some(ALICE), Pass);

        // No rule matches: passes without credentials configured, not with them.
        let deny_one = HttpAccess::new(&[], vec![rule(false, "10.0.0.0/8")]);
        check(&deny_one, "127.0.0.1", None, Pass);
        check(&deny_one, "10.1.2.3", None, Forbidden);
        let deny_one_auth = HttpAccess::new(&users, vec![rule(false, "10.0.0.0/8")]);
        check(&deny_one_auth, "127.0.0.1", None, Unauthorized);
    }
}
