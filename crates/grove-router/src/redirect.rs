//! Redirects answered by the router: a route's partial redirects (routes.yaml
//! `redirects.paths`) and whole-route redirects (`type: redirect`). Pure: a request
//! path in, a `Location` out.

use std::time::{Duration, SystemTime};

use hyper::header::{self, HeaderMap, HeaderValue};

/// One partial redirect of a route.
#[derive(Debug, Clone)]
pub struct Redirect {
    pattern: Pattern,
    to: String,
    code: u16,
    /// How long clients may cache it, in seconds; negative: not at all; `None`: no
    /// caching headers are sent.
    expires: Option<i64>,
}

#[derive(Debug, Clone)]
enum Pattern {
    /// `prefix`: the path and everything below it; `append_suffix`: what follows the
    /// path is appended to `to`.
    Path {
        path: String,
        prefix: bool,
        append_suffix: bool,
    },
    /// Matched anywhere in the path (anchor it with `^`/`$`); `$1`… in `to` are its
    /// captures.
    Regex(regex::Regex),
}

impl PartialEq for Redirect {
    fn eq(&self, other: &Redirect) -> bool {
        let pattern_eq = match (&self.pattern, &other.pattern) {
            (Pattern::Regex(a), Pattern::Regex(b)) => a.as_str() == b.as_str(),
            (
                Pattern::Path {
                    path,
                    prefix,
                    append_suffix,
                },
                Pattern::Path {
                    path: path_b,
                    prefix: prefix_b,
                    append_suffix: append_b,
                },
            ) => path == path_b && prefix == prefix_b && append_suffix == append_b,
            _ => false,
        };
        pattern_eq
            && self.to == other.to
            && self.code == other.code
            && self.expires == other.expires
    }
}

impl Eq for Redirect {}

impl Redirect {
    /// A redirect of `path` (and, with `prefix`, of the paths below it).
    pub fn path(
        path: &str,
        prefix: bool,
        append_suffix: bool,
        to: &str,
        code: u16,
        expires: Option<i64>,
    ) -> Redirect {
        Redirect {
            pattern: Pattern::Path {
                path: path.to_string(),
                prefix,
                append_suffix: prefix && append_suffix,
            },
            to: to.to_string(),
            code,
            expires,
        }
    }

    /// A redirect of the paths `regex` matches.
    pub fn regex(
        regex: &str,
        to: &str,
        code: u16,
        expires: Option<i64>,
    ) -> Result<Redirect, regex::Error> {
        Ok(Redirect {
            pattern: Pattern::Regex(regex::Regex::new(regex)?),
            to: to.to_string(),
            code,
            expires,
        })
    }

    /// The target for `path`, when this redirect applies to it.
    fn location(&self, path: &str) -> Option<String> {
        match &self.pattern {
            Pattern::Path {
                path: from,
                prefix,
                append_suffix,
            } => {
                let suffix = if path == from {
                    ""
                } else if *prefix && below(path, from) {
                    &path[from.len()..]
                } else {
                    return None;
                };
                if *append_suffix {
                    Some(join(&self.to, suffix))
                } else {
                    Some(self.to.clone())
                }
            }
            Pattern::Regex(regex) => {
                let captures = regex.captures(path)?;
                Some(expand_captures(&self.to, &captures))
            }
        }
    }
}

/// Orders a route's partial redirects the way they are tried: exact and prefix paths
/// first, the longest first, then regexes in the order given.
pub(crate) fn sort(redirects: &mut [Redirect]) {
    redirects.sort_by_key(|r| match &r.pattern {
        Pattern::Path { path, .. } => (0, usize::MAX - path.len()),
        Pattern::Regex(_) => (1, 0),
    });
}

/// A redirect the router answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    /// Without the request's query string.
    pub location: String,
    pub code: u16,
    pub expires: Option<i64>,
}

/// The first of `redirects` (sorted) that applies to `path`.
pub(crate) fn find(redirects: &[Redirect], path: &str) -> Option<Answer> {
    redirects.iter().find_map(|r| {
        r.location(path).map(|location| Answer {
            location,
            code: r.code,
            expires: r.expires,
        })
    })
}

/// A whole-route redirect: what follows the route's prefix is appended to its target.
pub(crate) fn whole_route(to: &str, code: u16, prefix: &str, path: &str) -> Answer {
    let rest = path.strip_prefix(prefix).unwrap_or("");
    Answer {
        location: format!("{to}{rest}"),
        code,
        expires: None,
    }
}

impl Answer {
    /// The `Location` with the request's query string (appended to one the target
    /// already has).
    pub(crate) fn location_with(&self, query: Option<&str>) -> String {
        match query {
            None | Some("") => self.location.clone(),
            Some(query) if self.location.contains('?') => format!("{}&{query}", self.location),
            Some(query) => format!("{}?{query}", self.location),
        }
    }

    /// `Cache-Control` and `Expires` as nginx's `expires` sets them: a negative time
    /// means "do not cache".
    pub(crate) fn caching_headers(&self, headers: &mut HeaderMap, now: SystemTime) {
        let Some(expires) = self.expires else {
            return;
        };
        let (cache_control, at) = if expires < 0 {
            (
                "no-cache".to_string(),
                now.checked_sub(Duration::from_secs(1)),
            )
        } else {
            let seconds = expires.unsigned_abs();
            (
                format!("max-age={seconds}"),
                now.checked_add(Duration::from_secs(seconds)),
            )
        };
        if let Ok(value) = HeaderValue::from_str(&cache_control) {
            headers.insert(header::CACHE_CONTROL, value);
        }
        if let Some(at) = at
            && let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(at))
        {
            headers.insert(header::EXPIRES, value);
        }
    }
}

/// `path` lies below `from`: `/from/x` below `/from`, `/from/x` below `/from/`.
fn below(path: &str, from: &str) -> bool {
    path.starts_with(from) && (from.ends_with('/') || path[from.len()..].starts_with('/'))
}

/// `to` followed by `suffix`, with one slash between them.
fn join(to: &str, suffix: &str) -> String {
    match (to.ends_with('/'), suffix.strip_prefix('/')) {
        (true, Some(rest)) => format!("{to}{rest}"),
        _ => format!("{to}{suffix}"),
    }
}

/// `$1`…`$99` replaced by the captures (empty when a group did not take part).
fn expand_captures(to: &str, captures: &regex::Captures<'_>) -> String {
    let mut out = String::with_capacity(to.len());
    let mut rest = to;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        let digits = after.bytes().take(2).take_while(u8::is_ascii_digit).count();
        match after[..digits].parse::<usize>() {
            Ok(group) => {
                out.push_str(captures.get(group).map_or("", |m| m.as_str()));
                rest = &after[digits..];
            }
            Err(_) => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Vec<Redirect> {
        let mut rules = vec![
            Redirect::path("/from", true, true, "/to", 302, None),
            Redirect::path("/exact", false, true, "/exact-new", 301, None),
            Redirect::path(
                "/nosuffix",
                true,
                false,
                "https://example.com/",
                307,
                Some(86400),
            ),
            Redirect::path(
                "/from/deeper",
                true,
                true,
                "https://example.com/deep/",
                308,
                None,
            ),
            Redirect::regex("^/a/(.*)/b$", "https://example.com/$1", 301, None).expect("regex"),
            Redirect::regex("^/year/(\\d+)/(\\d+)", "/archive/$2/$1/$3x", 302, Some(-1))
                .expect("regex"),
        ];
        sort(&mut rules);
        rules
    }

    fn check(path: &str, expected: Option<(&str, u16)>) {
        let got = find(&rules(), path);
        assert_eq!(
            got.as_ref().map(|a| (a.location.as_str(), a.code)),
            expected,
            "{path}"
        );
    }

    #[test]
    fn partial_redirects_each_form_and_code() {
        // prefix (default) with append_suffix (default), code 302 (default).
        check("/from", Some(("/to", 302)));
        check("/from/another/path", Some(("/to/another/path", 302)));
        check("/from/", Some(("/to/", 302)));
        check("/fromage", None);
        // The longest path wins over a shorter prefix.
        check("/from/deeper/x", Some(("https://example.com/deep/x", 308)));
        // prefix: false is the path itself only.
        check("/exact", Some(("/exact-new", 301)));
        check("/exact/child", None);
        // append_suffix: false drops what follows.
        check("/nosuffix/a/b", Some(("https://example.com/", 307)));
        // regexp with captures; unmatched groups are empty, `$` without digits stays.
        check("/a/x/y/b", Some(("https://example.com/x/y", 301)));
        check("/a/x/y/bc", None);
        check("/year/2024/05/post", Some(("/archive/05/2024/x", 302)));
        check("/elsewhere", None);
    }

    #[test]
    fn whole_route_redirect_keeps_the_rest_of_the_path() {
        let answer = whole_route("https://www.example.com/", 301, "/", "/a/b");
        assert_eq!(answer.location, "https://www.example.com/a/b");
        assert_eq!(answer.code, 301);
        let answer = whole_route("https://x/", 301, "/shop/", "/shop/cart");
        assert_eq!(answer.location, "https://x/cart");
    }

    #[test]
    fn the_query_string_is_kept() {
        let answer = find(&rules(), "/from/x").expect("redirect");
        assert_eq!(answer.location_with(Some("a=1")), "/to/x?a=1");
        assert_eq!(answer.location_with(None), "/to/x");
        let with_query = Answer {
            location: "/to?b=2".into(),
            code: 302,
            expires: None,
        };
        assert_eq!(with_query.location_with(Some("a=1")), "/to?b=2&a=1");
    }

    #[test]
    fn expires_sets_caching_headers_like_nginx() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let check = |expires: Option<i64>, expected: Option<(&str, &str)>| {
            let mut headers = HeaderMap::new();
            let answer = Answer {
                location: "/".into(),
                code: 301,
                expires,
            };
            answer.caching_headers(&mut headers, now);
            let got = headers.get(header::CACHE_CONTROL).map(|cc| {
                (
                    cc.to_str().unwrap_or_default().to_string(),
                    headers
                        .get(header::EXPIRES)
                        .and_then(|e| e.to_str().ok())
                        .unwrap_or_default()
                        .to_string(),
                )
            });
            assert_eq!(
                got,
                expected.map(|(a, b)| (a.to_string(), b.to_string())),
                "{expires:?}"
            );
        };
        check(None, None);
        check(
            Some(86400),
            Some(("max-age=86400", "Wed, 15 Nov 2023 22:13:20 GMT")),
        );
        check(
            Some(0),
            Some(("max-age=0", "Tue, 14 Nov 2023 22:13:20 GMT")),
        );
        check(
            Some(-1),
            Some(("no-cache", "Tue, 14 Nov 2023 22:13:19 GMT")),
        );
    }
}
