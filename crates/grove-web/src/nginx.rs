//! `web.locations` as nginx configuration.
//!
//! How a location maps to nginx (Platform.sh's semantics, spec §2.4):
//!
//! - Every location is a regex location `^<prefix>(?<grove_path>/.*|)$`, emitted longest
//!   prefix first, so the most specific prefix wins. `$grove_path` is the path below the
//!   prefix, looked up under the location's `root` (`try_files $grove_path`): a
//!   location's root stands for its prefix, as an `alias` would, without `alias`'s
//!   pitfalls with `try_files`. A prefix matches whole path segments (`/static` matches
//!   `/static` and `/static/...`, not `/staticfoo`).
//! - Inside it, one nested regex location per rule (file order, first match wins), then
//!   the location's own settings. Each of these *contexts* has the same shape: `.php`
//!   files (PHP apps), directory indexes, static files (`expires`, `headers`), and,
//!   for what none of them serves, the passthru.
//! - `expires` and `headers` are set only where nginx serves a file itself, never on a
//!   passthru response: the passthru runs in a named location or a block of its own.
//! - For PHP apps a `.php` file is executed only where `scripts` is true, and its
//!   source is never served: where scripts are off an existing `.php` file is 403.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use grove_config::{Passthru, RequestBuffering, Web, WebLocation};

use grove_config::parse_expires;

use crate::WebError;

/// Where a server listens, inside the sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    Tcp { host: String, port: u16 },
    Unix(String),
}

/// What the web server hands dynamic requests to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppUpstream {
    /// PHP-FPM on a unix socket: front controllers and scripts over FastCGI.
    FastCgi { socket: String },
    /// The app's own HTTP server (`web.commands.start`).
    Http(Listen),
}

/// One instance's web server. Every path is a path inside the app's sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSpec {
    pub listen: Listen,
    /// The app root (`/app`): `root`s are relative to it.
    pub app_root: String,
    /// A writable directory of this instance: pid file and request body buffers.
    pub runtime_dir: String,
    pub upstream: AppUpstream,
    /// nginx's `user` directive; only meaningful when nginx starts as root (workers
    /// would otherwise switch to `nobody`, who may not read the app).
    pub user: Option<String>,
}

/// The nginx configuration (a complete `nginx.conf`) serving `web` for one instance.
pub fn nginx_config(web: &Web, spec: &ServerSpec) -> Result<String, WebError> {
    let mut generator = Generator {
        web,
        spec,
        php: matches!(spec.upstream, AppUpstream::FastCgi { .. }),
        scripts: Vec::new(),
    };
    generator.render()
}

/// The settings in force in one context: a location, or a rule within it.
#[derive(Clone, Debug)]
struct Settings {
    allow: bool,
    scripts: bool,
    expires: Option<String>,
    headers: BTreeMap<String, String>,
    passthru: Passthru,
    /// The rule this context is for, if any: a passthru with `$1` is rewritten by
    /// matching it again, so that its numbered captures are the rule's.
    rule: Option<String>,
}

impl Settings {
    fn of(location: &WebLocation) -> Settings {
        Settings {
            allow: location.allow,
            // Platform.sh runs scripts unless told not to (its Drupal template turns
            // them off for single files with rules).
            scripts: location.scripts.unwrap_or(true),
            expires: location.expires.clone(),
            headers: location.headers.clone(),
            passthru: location.passthru.clone(),
            rule: None,
        }
    }

    /// A rule's settings override its location's, key by key.
    fn with_rule(&self, regex: &str, rule: &serde_json::Value) -> Settings {
        let mut settings = self.clone();
        settings.rule = Some(regex.to_owned());
        if let Some(allow) = rule.get("allow").and_then(|v| v.as_bool()) {
            settings.allow = allow;
        }
        if let Some(scripts) = rule.get("scripts").and_then(|v| v.as_bool()) {
            settings.scripts = scripts;
        }
        match rule.get("expires") {
            Some(serde_json::Value::String(s)) => settings.expires = Some(s.clone()),
            Some(serde_json::Value::Number(n)) => settings.expires = Some(n.to_string()),
            _ => {}
        }
        if let Some(headers) = rule.get("headers").and_then(|v| v.as_object()) {
            for (name, value) in headers {
                if let Some(value) = value.as_str() {
                    settings.headers.insert(name.clone(), value.to_owned());
                }
            }
        }
        match rule.get("passthru") {
            Some(serde_json::Value::Bool(true)) => settings.passthru = Passthru::App,
            Some(serde_json::Value::Bool(false)) | Some(serde_json::Value::Null) => {
                settings.passthru = Passthru::Off;
            }
            Some(serde_json::Value::String(s)) if s.starts_with('/') => {
                settings.passthru = Passthru::Path(s.clone());
            }
            _ => {}
        }
        settings
    }
}

/// What answers a request no file serves.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Fallback {
    NotFound,
    /// The app's HTTP server, with the request as it came.
    Proxy,
    /// A front controller: the index into `Generator::scripts`.
    Script(usize),
    /// An internal redirect to `uri` (it may use the rule's captures), made by
    /// rewriting what `regex` matches.
    Redirect {
        uri: String,
        regex: String,
    },
}

/// A front controller, resolved to its file through the locations.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Script {
    uri: String,
    filename: String,
    document_root: String,
}

struct Generator<'a> {
    web: &'a Web,
    spec: &'a ServerSpec,
    php: bool,
    scripts: Vec<Script>,
}

/// Common MIME types, so that the config does not depend on the host's `/etc/nginx`.
const MIME_TYPES: &[(&str, &str)] = &[
    ("text/html", "html htm"),
    ("text/css", "css"),
    ("text/plain", "txt"),
    ("text/xml", "xml"),
    ("application/javascript", "js mjs"),
    ("application/json", "json map"),
    ("application/pdf", "pdf"),
    ("application/wasm", "wasm"),
    ("application/zip", "zip"),
    ("image/svg+xml", "svg svgz"),
    ("image/png", "png"),
    ("image/jpeg", "jpg jpeg"),
    ("image/gif", "gif"),
    ("image/webp", "webp"),
    ("image/avif", "avif"),
    ("image/x-icon", "ico"),
    ("font/woff", "woff"),
    ("font/woff2", "woff2"),
    ("font/ttf", "ttf"),
    ("font/otf", "otf"),
    ("application/vnd.ms-fontobject", "eot"),
    ("video/mp4", "mp4"),
    ("video/webm", "webm"),
    ("audio/mpeg", "mp3"),
];

impl Generator<'_> {
    fn render(&mut self) -> Result<String, WebError> {
        let spec = self.spec;
        let rt = spec.runtime_dir.trim_end_matches('/');
        let mut out = String::new();
        out.push_str("# Generated by Grove from the app's `web` configuration.\n");
        out.push_str("daemon off;\nmaster_process on;\nworker_processes 1;\n");
        if let Some(user) = &spec.user {
            let _ = writeln!(out, "user {};", quote(user, "user", "")?);
        }
        let _ = writeln!(
            out,
            "pid {};",
            quote(&format!("{rt}/nginx.pid"), "pid", "")?
        );
        out.push_str("error_log stderr warn;\n");
        out.push_str("events {\n    worker_connections 1024;\n}\n");
        out.push_str("http {\n    types {\n");
        for (mime, exts) in MIME_TYPES {
            let _ = writeln!(out, "        {mime} {exts};");
        }
        out.push_str("    }\n    default_type application/octet-stream;\n");
        // The router in front logs requests; nginx would only log them twice.
        out.push_str("    access_log off;\n    server_tokens off;\n    sendfile on;\n");
        out.push_str("    absolute_redirect off;\n    port_in_redirect off;\n");
        let _ = writeln!(
            out,
            "    client_max_body_size {};",
            RequestBuffering::DEFAULT_MAX_REQUEST_SIZE
        );
        for temp in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            let _ = writeln!(
                out,
                "    {temp}_temp_path {};",
                quote(&format!("{rt}/{temp}"), "temp path", "")?
            );
        }
        out.push_str(
            "    map $http_x_forwarded_proto $grove_https {\n        default \"\";\n        https on;\n    }\n",
        );
        out.push_str("    server {\n");
        match &spec.listen {
            Listen::Tcp { host, port } => {
                let _ = writeln!(out, "        listen {host}:{port};");
            }
            Listen::Unix(path) => {
                let _ = writeln!(out, "        listen {};", quote_unix(path)?);
            }
        }
        out.push_str("        server_name _;\n");
        let mut prefixes: Vec<&String> = self.web.locations.keys().collect();
        // Longest prefix first: nginx takes the first regex location that matches.
        prefixes.sort_by(|a, b| {
            normal_prefix(b)
                .len()
                .cmp(&normal_prefix(a).len())
                .then(a.cmp(b))
        });
        for prefix in prefixes {
            let location = &self.web.locations[prefix];
            self.location(&mut out, prefix, location)?;
        }
        // Nothing matched (no `/` location): the app gets the request.
        out.push_str("        location / {\n");
        let fallback = self.fallback(&Settings {
            allow: false,
            scripts: false,
            expires: None,
            headers: BTreeMap::new(),
            passthru: Passthru::App,
            rule: None,
        })?;
        self.fallback_inline(&mut out, 3, &fallback)?;
        out.push_str("        }\n");
        self.named_locations(&mut out)?;
        out.push_str("    }\n}\n");
        Ok(out)
    }

    fn location(
        &mut self,
        out: &mut String,
        prefix: &str,
        location: &WebLocation,
    ) -> Result<(), WebError> {
        let normal = normal_prefix(prefix);
        let regex = if normal.is_empty() {
            "^(?<grove_path>/.*)$".to_owned()
        } else {
            format!("^{}(?<grove_path>/.*|)$", escape_regex(normal))
        };
        let _ = writeln!(
            out,
            "        location ~ {} {{",
            quote(&regex, "location", prefix)?
        );
        let root = match &location.root {
            Some(root) => Some(self.root_path(root, prefix)?),
            None => None,
        };
        if let Some(root) = &root {
            let _ = writeln!(out, "            root {};", quote(root, "root", prefix)?);
        }
        let buffering = location.request_buffering;
        let _ = writeln!(
            out,
            "            client_max_body_size {};",
            buffering.max_request_size
        );
        if !buffering.enabled {
            // Bodies stream to the app as they arrive. FastCGI needs a length, so nginx
            // still buffers chunked bodies for PHP.
            out.push_str("            proxy_request_buffering off;\n");
            out.push_str("            fastcgi_request_buffering off;\n");
        }
        let settings = Settings::of(location);
        for (rule, value) in &location.rules {
            let _ = writeln!(
                out,
                "            location ~ {} {{",
                quote(rule, "a rule", prefix)?
            );
            let rule_settings = settings.with_rule(rule, value);
            self.context(out, 4, prefix, normal, root.is_some(), &rule_settings)?;
            out.push_str("            }\n");
        }
        self.context(out, 3, prefix, normal, root.is_some(), &settings)?;
        out.push_str("        }\n");
        Ok(())
    }

    /// One context's nested locations and its fallback, at `depth` levels of indent.
    fn context(
        &mut self,
        out: &mut String,
        depth: usize,
        prefix: &str,
        normal: &str,
        has_root: bool,
        settings: &Settings,
    ) -> Result<(), WebError> {
        let pad = "    ".repeat(depth);
        let fallback = self.fallback(settings)?;
        let try_last = self.try_files_last(&fallback, prefix)?;
        if self.php {
            // Never serve a script's source, whatever `allow` says.
            let _ = writeln!(out, "{pad}location ~* \\.php$ {{");
            if has_root && settings.scripts {
                let _ = writeln!(out, "{pad}    try_files $grove_path {try_last};");
                self.fastcgi(
                    out,
                    depth + 1,
                    "$document_root$uri",
                    &format!("{normal}$uri"),
                    "$document_root",
                );
            } else {
                if has_root {
                    let _ = writeln!(
                        out,
                        "{pad}    if (-e $document_root$grove_path) {{\n{pad}        return 403;\n{pad}    }}"
                    );
                }
                self.fallback_inline(out, depth + 1, &fallback)?;
            }
            let _ = writeln!(out, "{pad}}}");
        }
        // An index script runs where scripts do; `allow` is about static files only.
        if has_root {
            let index = &self.web_index(prefix);
            let php_index: Vec<&String> = index.iter().filter(|i| is_php(i)).collect();
            let static_index: Vec<&String> = index.iter().filter(|i| !is_php(i)).collect();
            if self.php && settings.scripts && !php_index.is_empty() {
                let _ = writeln!(out, "{pad}location ~ /$ {{");
                let tries = index_tries(&php_index, prefix)?;
                let _ = writeln!(out, "{pad}    try_files {tries} {try_last};");
                self.fastcgi(
                    out,
                    depth + 1,
                    "$document_root$uri",
                    &format!("{normal}$uri"),
                    "$document_root",
                );
                let _ = writeln!(out, "{pad}}}");
            } else if settings.allow && !static_index.is_empty() {
                let _ = writeln!(out, "{pad}location ~ /$ {{");
                self.static_headers(out, depth + 1, prefix, settings)?;
                let tries = index_tries(&static_index, prefix)?;
                let _ = writeln!(out, "{pad}    try_files {tries} {try_last};");
                let _ = writeln!(out, "{pad}}}");
            }
        }
        if has_root && settings.allow {
            let _ = writeln!(out, "{pad}location ~ ^ {{");
            self.static_headers(out, depth + 1, prefix, settings)?;
            let _ = writeln!(out, "{pad}    try_files $grove_path {try_last};");
            let _ = writeln!(out, "{pad}}}");
        }
        // What no nested location took: files are not served here.
        self.fallback_inline(out, depth, &fallback)
    }

    fn web_index(&self, prefix: &str) -> Vec<String> {
        self.web
            .locations
            .get(prefix)
            .map(|l| l.index.clone())
            .unwrap_or_default()
    }

    fn static_headers(
        &self,
        out: &mut String,
        depth: usize,
        prefix: &str,
        settings: &Settings,
    ) -> Result<(), WebError> {
        let pad = "    ".repeat(depth);
        let cache_control_set = settings
            .headers
            .keys()
            .any(|name| name.eq_ignore_ascii_case("cache-control"));
        if let Some(expires) = &settings.expires {
            let seconds = parse_expires(expires).ok_or_else(|| WebError::Expires {
                location: prefix.to_owned(),
                value: expires.clone(),
            })?;
            // `-1` (the default) adds no caching headers; a `Cache-Control` header
            // of the app's own replaces what `expires` would say.
            if seconds >= 0 && !cache_control_set {
                let _ = writeln!(out, "{pad}expires {seconds}s;");
            }
        }
        for (name, value) in &settings.headers {
            check_header(prefix, name, value)?;
            let _ = writeln!(
                out,
                "{pad}add_header {} {};",
                quote(name, "header", prefix)?,
                quote(value, "header", prefix)?
            );
        }
        Ok(())
    }

    fn fallback(&mut self, settings: &Settings) -> Result<Fallback, WebError> {
        let redirect = |uri: &String| Fallback::Redirect {
            uri: uri.clone(),
            regex: settings.rule.clone().unwrap_or_else(|| "^".to_owned()),
        };
        Ok(match &settings.passthru {
            Passthru::Off => Fallback::NotFound,
            Passthru::App if self.php => self.script("/index.php")?,
            Passthru::App => Fallback::Proxy,
            Passthru::Path(uri) if uri.contains('$') => redirect(uri),
            Passthru::Path(uri) if self.php => {
                let path = uri.split('?').next().unwrap_or(uri);
                if is_php(path) {
                    self.script(path)?
                } else {
                    redirect(uri)
                }
            }
            // A non-PHP app gets the request as it came; the path names its handler.
            Passthru::Path(_) => Fallback::Proxy,
        })
    }

    /// The file a front controller's URI names, through the locations (the most
    /// specific location's root), as a request for it would find it.
    fn script(&mut self, uri: &str) -> Result<Fallback, WebError> {
        let app_root = self.spec.app_root.trim_end_matches('/');
        let best = self
            .web
            .locations
            .iter()
            .filter(|(prefix, _)| prefix_matches(normal_prefix(prefix), uri))
            .max_by_key(|(prefix, _)| normal_prefix(prefix).len());
        let (filename, document_root) = match best {
            Some((prefix, location)) => {
                let rest = &uri[normal_prefix(prefix).len()..];
                match &location.root {
                    Some(root) => {
                        let root = self.root_path(root, prefix)?;
                        (format!("{root}{rest}"), root)
                    }
                    None => (format!("{app_root}{uri}"), app_root.to_owned()),
                }
            }
            None => (format!("{app_root}{uri}"), app_root.to_owned()),
        };
        let script = Script {
            uri: uri.to_owned(),
            filename,
            document_root,
        };
        let index = match self.scripts.iter().position(|s| *s == script) {
            Some(index) => index,
            None => {
                self.scripts.push(script);
                self.scripts.len() - 1
            }
        };
        Ok(Fallback::Script(index))
    }

    fn try_files_last(&self, fallback: &Fallback, prefix: &str) -> Result<String, WebError> {
        Ok(match fallback {
            Fallback::NotFound => "=404".to_owned(),
            Fallback::Proxy => "@grove_app".to_owned(),
            Fallback::Script(i) => format!("@grove_script_{i}"),
            Fallback::Redirect { uri, .. } => {
                let uri = if uri.contains('?') {
                    uri.clone()
                } else {
                    format!("{uri}?$args")
                };
                quote(&uri, "passthru", prefix)?
            }
        })
    }

    fn fallback_inline(
        &self,
        out: &mut String,
        depth: usize,
        fallback: &Fallback,
    ) -> Result<(), WebError> {
        let pad = "    ".repeat(depth);
        match fallback {
            Fallback::NotFound => {
                let _ = writeln!(out, "{pad}return 404;");
            }
            Fallback::Proxy => self.proxy(out, depth),
            Fallback::Script(i) => {
                let script = &self.scripts[*i];
                self.fastcgi(
                    out,
                    depth,
                    &quote(&script.filename, "passthru", "")?,
                    &quote(&script.uri, "passthru", "")?,
                    &quote(&script.document_root, "passthru", "")?,
                );
            }
            Fallback::Redirect { uri, regex } => {
                let _ = writeln!(
                    out,
                    "{pad}rewrite {} {} last;",
                    quote(regex, "a rule", "")?,
                    quote(uri, "passthru", "")?
                );
            }
        }
        Ok(())
    }

    fn named_locations(&self, out: &mut String) -> Result<(), WebError> {
        if !self.php {
            out.push_str("        location @grove_app {\n");
            self.proxy(out, 3);
            out.push_str("        }\n");
        }
        for (i, _) in self.scripts.iter().enumerate() {
            let _ = writeln!(out, "        location @grove_script_{i} {{");
            self.fallback_inline(out, 3, &Fallback::Script(i))?;
            out.push_str("        }\n");
        }
        Ok(())
    }

    fn proxy(&self, out: &mut String, depth: usize) {
        let pad = "    ".repeat(depth);
        let target = match &self.spec.upstream {
            AppUpstream::Http(Listen::Tcp { host, port }) => format!("http://{host}:{port}"),
            AppUpstream::Http(Listen::Unix(path)) => format!("http://unix:{path}:"),
            // A PHP app has no HTTP server: `passthru: true` went to its front
            // controller. Unreachable through `fallback`.
            AppUpstream::FastCgi { .. } => {
                let _ = writeln!(out, "{pad}return 502;");
                return;
            }
        };
        let _ = writeln!(out, "{pad}proxy_pass {target};");
        let _ = writeln!(out, "{pad}proxy_http_version 1.1;");
        let _ = writeln!(out, "{pad}proxy_set_header Host $http_host;");
        let _ = writeln!(out, "{pad}proxy_set_header Connection \"\";");
        // Streamed responses stay streamed.
        let _ = writeln!(out, "{pad}proxy_buffering off;");
    }

    /// FastCGI to PHP-FPM. `fastcgi_param` is not inherited once a block sets one, so
    /// every block carries the whole list.
    fn fastcgi(
        &self,
        out: &mut String,
        depth: usize,
        filename: &str,
        script_name: &str,
        document_root: &str,
    ) {
        let pad = "    ".repeat(depth);
        let AppUpstream::FastCgi { socket } = &self.spec.upstream else {
            let _ = writeln!(out, "{pad}return 502;");
            return;
        };
        let socket = quote_unix(socket).unwrap_or_else(|_| "\"\"".into());
        let _ = writeln!(out, "{pad}fastcgi_pass {socket};");
        for (name, value) in [
            ("SCRIPT_FILENAME", filename),
            ("SCRIPT_NAME", script_name),
            ("DOCUMENT_ROOT", document_root),
            ("QUERY_STRING", "$query_string"),
            ("REQUEST_METHOD", "$request_method"),
            ("CONTENT_TYPE", "$content_type"),
            ("CONTENT_LENGTH", "$content_length"),
            ("REQUEST_URI", "$request_uri"),
            ("DOCUMENT_URI", "$document_uri"),
            ("SERVER_PROTOCOL", "$server_protocol"),
            ("REQUEST_SCHEME", "$scheme"),
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("SERVER_SOFTWARE", "grove"),
            ("REMOTE_ADDR", "$remote_addr"),
            ("REMOTE_PORT", "$remote_port"),
            ("SERVER_ADDR", "$server_addr"),
            ("SERVER_PORT", "$server_port"),
            ("SERVER_NAME", "$host"),
            ("REDIRECT_STATUS", "200"),
        ] {
            let _ = writeln!(out, "{pad}fastcgi_param {name} {value};");
        }
        let _ = writeln!(out, "{pad}fastcgi_param HTTPS $grove_https if_not_empty;");
    }

    /// A location's `root` inside the sandbox. `..` could leave the app.
    fn root_path(&self, root: &str, prefix: &str) -> Result<String, WebError> {
        let root = root.trim_matches('/');
        if root.split('/').any(|segment| segment == "..") {
            return Err(WebError::Unquotable {
                location: prefix.to_owned(),
                what: "root".into(),
                why: "`..` leaves the app",
            });
        }
        if root.contains('$') {
            return Err(WebError::Unquotable {
                location: prefix.to_owned(),
                what: "root".into(),
                why: "`$` would be read as an nginx variable",
            });
        }
        let app_root = self.spec.app_root.trim_end_matches('/');
        Ok(if root.is_empty() || root == "." {
            app_root.to_owned()
        } else {
            format!("{app_root}/{root}")
        })
    }
}

/// `/static/` and `/static` are the same location; `/` is the empty prefix.
fn normal_prefix(prefix: &str) -> &str {
    prefix.trim_end_matches('/')
}

fn prefix_matches(normal: &str, path: &str) -> bool {
    normal.is_empty()
        || path == normal
        || (path.starts_with(normal) && path[normal.len()..].starts_with('/'))
}

fn is_php(path: &str) -> bool {
    path.to_ascii_lowercase().ends_with(".php")
}

fn index_tries(index: &[&String], prefix: &str) -> Result<String, WebError> {
    let mut tries = Vec::new();
    for file in index {
        let file = file.trim_start_matches('/');
        if file.contains('$') {
            return Err(WebError::Unquotable {
                location: prefix.to_owned(),
                what: "index".into(),
                why: "`$` would be read as an nginx variable",
            });
        }
        tries.push(quote(&format!("${{grove_path}}{file}"), "index", prefix)?);
    }
    Ok(tries.join(" "))
}

/// A regex matching `text` literally (PCRE: a backslash before punctuation is literal).
fn escape_regex(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_punctuation() && c != '/' && c != '_' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An nginx string in double quotes. nginx unescapes `\\`, `\"`, and turns `\n`-like
/// pairs into control characters, so every backslash is doubled; control characters
/// cannot be written at all.
fn quote(text: &str, what: &str, location: &str) -> Result<String, WebError> {
    if text.chars().any(char::is_control) {
        return Err(WebError::Unquotable {
            location: location.to_owned(),
            what: what.to_owned(),
            why: "control characters (line breaks) cannot be written in nginx configuration",
        });
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if c == '\\' || c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Ok(out)
}

fn quote_unix(path: &str) -> Result<String, WebError> {
    quote(&format!("unix:{path}"), "socket", "")
}

fn check_header(location: &str, name: &str, value: &str) -> Result<(), WebError> {
    let error = |why| {
        Err(WebError::Header {
            location: location.to_owned(),
            name: name.to_owned(),
            why,
        })
    };
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        || name.contains('$')
    {
        return error("not a valid header name");
    }
    if value.contains('$') {
        return error("`$` would be read as an nginx variable");
    }
    if value.chars().any(char::is_control) {
        return error("control characters are not allowed in a header");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(web: &str, language: &str) -> grove_config::App {
        let yaml = format!("name: app\ntype: {language}\nweb:\n{web}");
        let tree = grove_config::MemoryTree::new([(".platform.app.yaml", yaml)]);
        match grove_config::load(&tree) {
            Ok(project) => project.apps[0].clone(),
            Err(e) => panic!("{e:?}"),
        }
    }

    fn spec(php: bool) -> ServerSpec {
        ServerSpec {
            listen: Listen::Tcp {
                host: "127.0.0.1".into(),
                port: 8080,
            },
            app_root: "/app".into(),
            runtime_dir: "/run/web".into(),
            upstream: if php {
                AppUpstream::FastCgi {
                    socket: "/run/web/php.sock".into(),
                }
            } else {
                AppUpstream::Http(Listen::Tcp {
                    host: "127.0.0.1".into(),
                    port: 8000,
                })
            },
            user: None,
        }
    }

    /// The generated config contains every line of `present` and none of `absent`
    /// (compared with leading whitespace removed).
    fn check(web: &str, language: &str, present: &[&str], absent: &[&str]) {
        let config = match nginx_config(&app(web, language).web, &spec(language.starts_with("php")))
        {
            Ok(config) => config,
            Err(e) => panic!("{web}: {e}"),
        };
        let lines: Vec<&str> = config.lines().map(str::trim).collect();
        for line in present {
            assert!(lines.contains(line), "missing `{line}` in\n{config}");
        }
        for line in absent {
            assert!(!lines.contains(line), "unexpected `{line}` in\n{config}");
        }
    }

    const MAGENTO: &str = r#"  locations:
    "/":
      root: pub
      passthru: /index.php
      index: [index.php]
      scripts: true
      allow: false
      rules:
        \.(css|js|map|hbs|gif|jpe?g|png|tiff|wbmp|ico|jng|bmp|svgz|midi?|mp?ga|mp2|mp3|m4a|ra|weba|3gpp?|mp4|mpe?g|mpe|ogv|mov|webm|flv|mng|asx|asf|wmv|avi|ogx|swf|jar|ttf|eot|woff|otf|html?)$:
          allow: true
    "/media":
      root: pub/media
      allow: true
      scripts: false
      expires: 1y
      passthru: /get.php
    "/static":
      root: pub/static
      allow: true
      scripts: false
      expires: 1y
      passthru: /front-static.php
      rules:
        ^/static/version\d+/(?<resource>.*)$:
          passthru: /static/$resource
"#;

    #[test]
    fn magento_locations() {
        check(
            MAGENTO,
            "php:8.2",
            &[
                r#"location ~ "^/static(?<grove_path>/.*|)$" {"#,
                r#"root "/app/pub/static";"#,
                r#"location ~ "^/static/version\\d+/(?<resource>.*)$" {"#,
                r#"try_files $grove_path "/static/$resource?$args";"#,
                "expires 31536000s;",
                "try_files $grove_path @grove_script_1;",
                r#"fastcgi_param SCRIPT_FILENAME "/app/pub/index.php";"#,
                r#"fastcgi_param SCRIPT_FILENAME "/app/pub/get.php";"#,
                r#"fastcgi_param SCRIPT_FILENAME "/app/pub/front-static.php";"#,
                "if (-e $document_root$grove_path) {",
                "return 403;",
            ],
            &["location @grove_app {"],
        );
    }

    #[test]
    fn most_specific_prefix_comes_first() {
        let config = nginx_config(&app(MAGENTO, "php:8.2").web, &spec(true)).unwrap_or_default();
        let position = |needle: &str| config.find(needle).unwrap_or(usize::MAX);
        assert!(position("^/static(") < position("^(?<grove_path>/.*)$"));
        assert!(position("^/media(") < position("^(?<grove_path>/.*)$"));
    }

    #[test]
    fn expires_and_headers() {
        for (web, present, absent) in [
            (
                "  locations:\n    /:\n      root: public\n      expires: 1h\n      passthru: true\n",
                vec!["expires 3600s;", "try_files $grove_path @grove_app;"],
                vec![],
            ),
            (
                "  locations:\n    /:\n      root: public\n      expires: -1\n",
                vec!["try_files $grove_path =404;"],
                vec!["expires -1s;"],
            ),
            (
                "  locations:\n    /:\n      root: public\n      expires: 1d\n      headers:\n        Cache-Control: no-store\n        X-Frame-Options: DENY\n",
                vec![
                    r#"add_header "Cache-Control" "no-store";"#,
                    r#"add_header "X-Frame-Options" "DENY";"#,
                ],
                vec!["expires 86400s;"],
            ),
        ] {
            check(web, "python:3.11", &present, &absent);
        }
    }

    #[test]
    fn passthru_of_apps_that_are_not_php() {
        check(
            "  locations:\n    /:\n      root: public\n      passthru: true\n",
            "nodejs:20",
            &["proxy_pass http://127.0.0.1:8000;", "location @grove_app {"],
            &["location ~* \\.php$ {"],
        );
    }

    #[test]
    fn deprecated_document_root() {
        check(
            "  document_root: /web\n  passthru: /index.php\n",
            "php:8.2",
            &[
                r#"root "/app/web";"#,
                r#"fastcgi_param SCRIPT_FILENAME "/app/web/index.php";"#,
            ],
            &[],
        );
    }

    #[test]
    fn no_locations_send_everything_to_the_app() {
        check(
            "  commands:\n    start: ./serve\n",
            "python:3.11",
            &["location / {", "proxy_pass http://127.0.0.1:8000;"],
            &[],
        );
    }

    #[test]
    fn what_nginx_cannot_carry_is_refused() {
        for (web, expected) in [
            (
                "  locations:\n    /:\n      root: public\n      headers:\n        X-A: \"$host\"\n",
                "header `X-A`",
            ),
            (
                "  locations:\n    /:\n      root: ../etc\n",
                "`..` leaves the app",
            ),
        ] {
            match nginx_config(&app(web, "php:8.2").web, &spec(true)) {
                Ok(config) => panic!("accepted {web}:\n{config}"),
                Err(e) => assert!(e.to_string().contains(expected), "{e}"),
            }
        }
    }

    #[test]
    fn quoting_doubles_backslashes() {
        assert_eq!(
            quote(r#"a\d"b"#, "x", "/").ok(),
            Some(r#""a\\d\"b""#.to_owned())
        );
        assert!(quote("a\nb", "x", "/").is_err());
        assert_eq!(escape_regex("/a.b-c"), "/a\\.b\\-c");
    }
}
