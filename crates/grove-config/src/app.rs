//! Reading one application's configuration (spec §2).

use std::collections::BTreeMap;

use crate::model::{
    App, Cron, Hooks, Mount, MountSource, Passthru, Relationship, RequestBuffering, RuntimeType,
    Size, SocketFamily, Upstream, UpstreamProtocol, Web, WebCommands, WebLocation, Worker,
};
use crate::read::{KeyUse, Keys, Reader};
use crate::suggest::did_you_mean;
use crate::yaml::{Kind, Node};
use serde_json::json;

use KeyUse::{NotSupportedYet as Later, Supported as Yes};

const APP_KEYS: Keys = &[
    ("name", Yes),
    ("type", Yes),
    ("build", Yes),
    ("dependencies", Yes),
    ("hooks", Yes),
    ("web", Yes),
    ("variables", Yes),
    ("mounts", Yes),
    ("relationships", Yes),
    ("disk", Yes),
    ("crons", Yes),
    ("workers", Yes),
    ("source", Yes),
    ("access", Yes),
    ("timezone", Yes),
    ("stack", Later),
    ("runtime", Yes),
    ("firewall", Later),
    ("additional_hosts", Later),
    ("size", Yes),
    ("container_profile", Later),
    ("operations", Later),
    ("resources", Later),
    ("preflight", Later),
];

/// Runtimes of spec §2.1. Anything else is most likely a typo.
pub(crate) const RUNTIMES: &[&str] = &[
    "php",
    "python",
    "nodejs",
    "golang",
    "ruby",
    "java",
    "rust",
    "elixir",
    "dotnet",
    "lisp",
    "composable",
];

/// Where an app definition comes from, which decides how its name and root are found.
pub(crate) struct AppOrigin<'a> {
    /// The key naming the app in `applications.yaml` / `.upsun/config.yaml`.
    pub name_key: Option<&'a Node>,
    /// Root when `source.root` is absent or empty: the directory holding
    /// `.platform.app.yaml`, or the repository root for apps defined in
    /// `.platform/applications.yaml` and `.upsun/*.yaml`.
    pub default_root: &'a str,
}

/// Reads one app. Returns `None` when something essential (name, type) is unusable; the
/// reasons are in the sink.
pub(crate) fn read_app(r: &mut Reader<'_, '_>, node: &Node, origin: &AppOrigin<'_>) -> Option<App> {
    let entries = r.map(node, "application")?;
    r.check_keys(entries, APP_KEYS, "");

    let name = read_name(r, node, origin);
    let runtime = match node.get("type") {
        Some(t) => read_runtime(r, t),
        None => {
            r.error(
                node,
                "missing required key `type`",
                Some("set the runtime and version, e.g. `type: \"python:3.13\"`".into()),
            );
            None
        }
    };

    let source_root = read_source_root(r, node, origin);
    let mut app = App {
        name: name.clone().unwrap_or_default(),
        runtime: runtime.clone().unwrap_or(RuntimeType {
            language: String::new(),
            version: String::new(),
        }),
        source_root: source_root.unwrap_or_default(),
        config_file: r.file().to_owned(),
        hooks: Hooks::default(),
        web: Web::default(),
        variables: BTreeMap::new(),
        mounts: BTreeMap::new(),
        relationships: BTreeMap::new(),
        build_flavor: None,
        disk: None,
        size: Size::Auto,
        crons: BTreeMap::new(),
        workers: BTreeMap::new(),
        dependencies: BTreeMap::new(),
        ssh_access: None,
        timezone: None,
        json: serde_json::Value::Null,
    };

    for (key, value) in entries {
        let Some(k) = key.scalar_text() else { continue };
        match k.as_str() {
            "build" => app.build_flavor = read_build(r, value),
            "dependencies" => app.dependencies = read_dependencies(r, value),
            "hooks" => app.hooks = read_hooks(r, value),
            "web" => app.web = read_web(r, value),
            "variables" => app.variables = read_variables(r, value, "variables"),
            "mounts" => app.mounts = read_mounts(r, value, "mounts"),
            "relationships" => app.relationships = read_relationships(r, value, "relationships"),
            "disk" => app.disk = read_disk(r, value, "disk"),
            "size" => app.size = read_size(r, value),
            "crons" => app.crons = read_crons(r, value),
            "workers" => app.workers = read_workers(r, value),
            "access" => app.ssh_access = read_access(r, value, "access"),
            "timezone" => app.timezone = r.opt_string(value, "timezone"),
            "runtime" => check_runtime(r, value),
            _ => {}
        }
    }

    let language = app.runtime.language.as_str();
    app.web.upstream = read_upstream(r, node.get("web").and_then(|w| w.get("upstream")), language);
    let mut json = node.to_json();
    if let (Some(name), serde_json::Value::Object(map)) = (&name, &mut json) {
        map.insert("name".into(), serde_json::Value::String(name.clone()));
    }
    app.json = json;

    // Only a usable name and type make an app; the rest degrades to defaults above.
    name?;
    runtime?;
    if app.runtime.language != "php" && app.web.commands.start.is_none() && app.workers.is_empty() {
        r.warning(
            node.get("web").unwrap_or(node),
            format!(
                "app `{}` has no `web.commands.start`; it will not answer HTTP requests",
                app.name
            ),
            Some("only PHP apps have a default start command".into()),
        );
    }
    Some(app)
}

fn read_name(r: &mut Reader<'_, '_>, node: &Node, origin: &AppOrigin<'_>) -> Option<String> {
    let inner = node.get("name");
    let (name_node, name) = match (origin.name_key, inner) {
        (Some(key), Some(inner)) => {
            let from_key = key.scalar_text();
            let from_inner = r.string(inner, "name");
            if from_key.is_some() && from_inner.is_some() && from_key != from_inner {
                r.error(
                    inner,
                    format!(
                        "`name: {}` differs from the key `{}` this app is defined under",
                        from_inner.as_deref().unwrap_or_default(),
                        from_key.as_deref().unwrap_or_default()
                    ),
                    Some("remove `name:`; the key names the app".into()),
                );
                return None;
            }
            (key, from_key)
        }
        (Some(key), None) => (key, key.scalar_text()),
        (None, Some(inner)) => (inner, r.string(inner, "name")),
        (None, None) => {
            r.error(
                node,
                "missing required key `name`",
                Some("every app needs a unique lowercase name, e.g. `name: app`".into()),
            );
            return None;
        }
    };
    let name = name?;
    if !is_valid_name(&name) {
        r.error(
            name_node,
            format!("invalid app name `{name}`"),
            Some(
                "use lowercase letters, digits, `-` and `_`, starting with a letter or digit"
                    .into(),
            ),
        );
        return None;
    }
    Some(name)
}

/// App and service names: lowercase alphanumerics plus `-`/`_`, at most 64 characters.
pub(crate) fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Parses `language:version`, reporting what is wrong with it.
pub(crate) fn read_runtime(r: &mut Reader<'_, '_>, node: &Node) -> Option<RuntimeType> {
    let text = r.string(node, "type")?;
    let example = "e.g. `type: \"python:3.13\"`";
    let Some((language, version)) = text.split_once(':') else {
        let hint = if RUNTIMES.contains(&text.as_str()) {
            format!("add a version, e.g. `type: \"{text}:<version>\"`")
        } else {
            format!("the type is `<runtime>:<version>`, {example}")
        };
        r.error(node, format!("`type: {text}` has no version"), Some(hint));
        return None;
    };
    let language_ok = !language.is_empty()
        && language
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    let version_ok = !version.is_empty()
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !language_ok || !version_ok {
        r.error(
            node,
            format!("malformed `type: {text}`"),
            Some(format!(
                "the type is `<runtime>:<version>` in lowercase letters, digits and dots, {example}"
            )),
        );
        return None;
    }
    if !RUNTIMES.contains(&language) {
        let hint = match did_you_mean(language, RUNTIMES.iter().copied()) {
            Some(s) => format!("did you mean `{s}:{version}`?"),
            None => format!("known runtimes: {}", RUNTIMES.join(", ")),
        };
        r.error(node, format!("unknown runtime `{language}`"), Some(hint));
        return None;
    }
    Some(RuntimeType {
        language: language.to_owned(),
        version: version.to_owned(),
    })
}

fn read_source_root(r: &mut Reader<'_, '_>, node: &Node, origin: &AppOrigin<'_>) -> Option<String> {
    const SOURCE_KEYS: Keys = &[("root", Yes), ("operations", Later)];
    let root_node = match node.get("source") {
        Some(source) => {
            let entries = r.map_or_null(source, "source")?;
            r.check_keys(entries, SOURCE_KEYS, "source.");
            source.get("root")
        }
        None => None,
    };
    // `root:` left empty (`source: {root: }`, as in templates that list the key for
    // reference) means the default, like an absent key.
    let Some(root_node) = root_node.filter(|n| !n.is_null()) else {
        return Some(origin.default_root.to_owned());
    };
    let root = r.string(root_node, "source.root")?;
    match normalize_relative_dir(&root) {
        Some(root) => Some(root),
        None => {
            r.error(
                root_node,
                format!("`source.root: {root}` leaves the repository"),
                Some("use a directory inside the repository, relative to its root".into()),
            );
            None
        }
    }
}

/// `/app/`, `./app`, `app` -> `app`; `/` and `.` -> ``; `None` if it contains `..`.
pub(crate) fn normalize_relative_dir(path: &str) -> Option<String> {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            other => parts.push(other),
        }
    }
    Some(parts.join("/"))
}

fn read_build(r: &mut Reader<'_, '_>, node: &Node) -> Option<String> {
    const BUILD_KEYS: Keys = &[("flavor", Yes), ("caches", Later)];
    let entries = r.map_or_null(node, "build")?;
    r.check_keys(entries, BUILD_KEYS, "build.");
    node.get("flavor")
        .and_then(|f| r.opt_string(f, "build.flavor"))
}

fn read_dependencies(
    r: &mut Reader<'_, '_>,
    node: &Node,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let Some(entries) = r.map_or_null(node, "dependencies") else {
        return out;
    };
    for (manager, packages) in entries {
        let Some(manager) = manager.scalar_text() else {
            continue;
        };
        let what = format!("dependencies.{manager}");
        let Some(pkgs) = r.map_or_null(packages, &what) else {
            continue;
        };
        let mut m = BTreeMap::new();
        for (pkg, constraint) in pkgs {
            let (Some(pkg), Some(c)) = (pkg.scalar_text(), r.string(constraint, &what)) else {
                continue;
            };
            m.insert(pkg, c);
        }
        out.insert(manager, m);
    }
    out
}

fn read_hooks(r: &mut Reader<'_, '_>, node: &Node) -> Hooks {
    const HOOK_KEYS: Keys = &[("build", Yes), ("deploy", Yes), ("post_deploy", Yes)];
    let mut hooks = Hooks::default();
    let Some(entries) = r.map_or_null(node, "hooks") else {
        return hooks;
    };
    r.check_keys(entries, HOOK_KEYS, "hooks.");
    for (key, value) in entries {
        match key.scalar_text().as_deref() {
            Some("build") => hooks.build = r.opt_string(value, "hooks.build"),
            Some("deploy") => hooks.deploy = r.opt_string(value, "hooks.deploy"),
            Some("post_deploy") => hooks.post_deploy = r.opt_string(value, "hooks.post_deploy"),
            _ => {}
        }
    }
    hooks
}

/// `runtime`: PHP's extensions are honoured (`grove-web`), the rest is read only.
fn check_runtime(r: &mut Reader<'_, '_>, node: &Node) {
    const RUNTIME_KEYS: Keys = &[
        ("extensions", Yes),
        ("disabled_extensions", Yes),
        ("request_terminate_timeout", Later),
        ("sizing_hints", Later),
        ("xdebug", Later),
        ("quicklisp", Later),
    ];
    if let Some(entries) = r.map_or_null(node, "runtime") {
        r.check_keys(entries, RUNTIME_KEYS, "runtime.");
    }
}

fn read_web(r: &mut Reader<'_, '_>, node: &Node) -> Web {
    const WEB_KEYS: Keys = &[
        ("commands", Yes),
        ("upstream", Yes),
        ("locations", Yes),
        // Deprecated pre-`locations` form (spec §2.4).
        ("document_root", Yes),
        ("passthru", Yes),
        ("index_files", Yes),
        ("expires", Yes),
        ("whitelist", Yes),
        ("blacklist", Yes),
        ("move_to_root", Later),
    ];
    const COMMAND_KEYS: Keys = &[("start", Yes), ("pre_start", Yes), ("post_start", Yes)];
    let mut web = Web::default();
    let Some(entries) = r.map_or_null(node, "web") else {
        return web;
    };
    r.check_keys(entries, WEB_KEYS, "web.");
    if let Some(commands) = node.get("commands")
        && let Some(cmds) = r.map_or_null(commands, "web.commands")
    {
        r.check_keys(cmds, COMMAND_KEYS, "web.commands.");
        web.commands = WebCommands {
            start: commands
                .get("start")
                .and_then(|n| r.opt_string(n, "web.commands.start")),
            pre_start: commands
                .get("pre_start")
                .and_then(|n| r.opt_string(n, "web.commands.pre_start")),
            post_start: commands
                .get("post_start")
                .and_then(|n| r.opt_string(n, "web.commands.post_start")),
        };
    }
    if let Some(locations) = node.get("locations")
        && let Some(locs) = r.map_or_null(locations, "web.locations")
    {
        for (path, loc) in locs {
            let Some(path_text) = path.scalar_text() else {
                continue;
            };
            if !path_text.starts_with('/') {
                r.error(
                    path,
                    format!("location `{path_text}` must start with `/`"),
                    Some(format!("write `/{path_text}`")),
                );
                continue;
            }
            if let Some(location) = read_location(r, loc, &path_text) {
                web.locations.insert(path_text, location);
            }
        }
    }
    // The deprecated top-level form describes the `/` location.
    let legacy_root = node
        .get("document_root")
        .and_then(|n| r.opt_string(n, "web.document_root"));
    if legacy_root.is_some() && !web.locations.contains_key("/") {
        let mut location = WebLocation {
            root: legacy_root
                .as_deref()
                .map(|s| s.trim_start_matches('/').to_owned()),
            allow: true,
            scripts: Some(true),
            ..WebLocation::default()
        };
        if let Some(p) = node.get("passthru") {
            location.passthru = read_passthru(r, p, "web.passthru");
        }
        if let Some(index) = node.get("index_files") {
            location.index = r.strings(index, "web.index_files");
        }
        if let Some(expires) = node.get("expires") {
            location.expires = read_expires(r, expires, "web.expires");
        }
        // `blacklist`: files never executed (static files are unaffected);
        // `whitelist`: the only static files served. Blacklist rules come first, so a
        // file on both lists is still never executed.
        for (key, settings) in [
            ("blacklist", json!({"scripts": false})),
            ("whitelist", json!({"allow": true})),
        ] {
            let Some(list) = node.get(key) else { continue };
            let regexes = r.strings(list, &format!("web.{key}"));
            if key == "whitelist" && !regexes.is_empty() {
                location.allow = false;
            }
            for regex in regexes {
                check_regex_node(r, list, &regex);
                location.rules.push((regex, settings.clone()));
            }
        }
        web.locations.insert("/".into(), location);
    } else {
        for key in ["whitelist", "blacklist"] {
            if let Some(list) = node.get(key) {
                r.warning(
                    list,
                    format!("`web.{key}` has no effect without `web.document_root`"),
                    Some("describe the files in `web.locations` with `rules`".into()),
                );
            }
        }
    }
    web.document_root = web
        .locations
        .get("/")
        .and_then(|l| l.root.clone())
        .map(|root| root.trim_matches('/').to_owned());
    web
}

fn read_location(r: &mut Reader<'_, '_>, node: &Node, path: &str) -> Option<WebLocation> {
    const LOCATION_KEYS: Keys = &[
        ("root", Yes),
        ("passthru", Yes),
        ("index", Yes),
        ("expires", Yes),
        ("allow", Yes),
        ("scripts", Yes),
        ("headers", Yes),
        ("rules", Yes),
        ("request_buffering", Yes),
    ];
    let ctx = format!("web.locations.\"{path}\".");
    let entries = r.map_or_null(node, &format!("web.locations.\"{path}\""))?;
    r.check_keys(entries, LOCATION_KEYS, &ctx);
    let mut loc = WebLocation {
        allow: true,
        ..WebLocation::default()
    };
    for (key, value) in entries {
        let Some(k) = key.scalar_text() else { continue };
        let what = format!("{ctx}{k}");
        match k.as_str() {
            "root" => {
                loc.root = r
                    .opt_string(value, &what)
                    .map(|s| s.trim_start_matches('/').to_owned());
            }
            "passthru" => loc.passthru = read_passthru(r, value, &what),
            "index" => loc.index = r.strings(value, &what),
            "expires" => loc.expires = read_expires(r, value, &what),
            "allow" => loc.allow = r.bool(value, &what).unwrap_or(true),
            "scripts" => loc.scripts = r.bool(value, &what),
            "headers" => {
                if let Some(headers) = r.map_or_null(value, &what) {
                    for (name, v) in headers {
                        if let (Some(name), Some(v)) = (name.scalar_text(), r.string(v, &what)) {
                            loc.headers.insert(name, v);
                        }
                    }
                }
            }
            "rules" => {
                if let Some(rules) = r.map_or_null(value, &what) {
                    for (regex_node, settings) in rules {
                        let Some(regex) = regex_node.scalar_text() else {
                            continue;
                        };
                        check_regex_node(r, regex_node, &regex);
                        if let Some(fields) =
                            r.map_or_null(settings, &format!("{what}.\"{regex}\""))
                        {
                            r.check_keys(fields, RULE_KEYS, &format!("{what}.\"{regex}\"."));
                            if let Some(expires) = settings.get("expires") {
                                read_expires(r, expires, "expires");
                            }
                            if let Some(passthru) = settings.get("passthru") {
                                read_passthru(r, passthru, "passthru");
                            }
                        }
                        loc.rules.push((regex, settings.to_json()));
                    }
                }
            }
            "request_buffering" => loc.request_buffering = read_request_buffering(r, value, &what),
            _ => {}
        }
    }
    Some(loc)
}

/// `request_buffering: {enabled, max_request_size}`; what is missing keeps its default.
fn read_request_buffering(r: &mut Reader<'_, '_>, node: &Node, what: &str) -> RequestBuffering {
    const KEYS: Keys = &[("enabled", Yes), ("max_request_size", Yes)];
    let mut buffering = RequestBuffering::default();
    let Some(entries) = r.map_or_null(node, what) else {
        return buffering;
    };
    r.check_keys(entries, KEYS, &format!("{what}."));
    if let Some(enabled) = node
        .get("enabled")
        .and_then(|n| r.bool(n, &format!("{what}.enabled")))
    {
        buffering.enabled = enabled;
    }
    if let Some(size) = node.get("max_request_size") {
        let text = match &size.kind {
            Kind::Number(n) => Some(n.to_string()),
            Kind::Str(s) => Some(s.clone()),
            _ => None,
        };
        match text.as_deref().and_then(parse_size) {
            Some(bytes) => buffering.max_request_size = bytes,
            None => r.error(
                size,
                format!("`{what}.max_request_size` must be a size such as `250m`"),
                Some("a number of bytes, or a number with `k`, `m` or `g`".into()),
            ),
        }
    }
    buffering
}

/// A size as nginx writes it: bytes, or a number with `k`, `m` or `g` (either case).
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&text[..i], c.to_ascii_lowercase()),
        _ => (text, 'b'),
    };
    let number: u64 = digits.parse().ok()?;
    let factor = match unit {
        'b' => 1,
        'k' => 1 << 10,
        'm' => 1 << 20,
        'g' => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor)
}

const RULE_KEYS: Keys = &[
    ("allow", Yes),
    ("passthru", Yes),
    ("expires", Yes),
    ("scripts", Yes),
    ("headers", Yes),
];

/// Reports a regex the router could not use.
pub(crate) fn check_regex_node(r: &mut Reader<'_, '_>, node: &Node, regex: &str) {
    use crate::validate::{RegexCheck, check_regex};
    match check_regex(regex) {
        RegexCheck::Valid => {}
        RegexCheck::Unsupported(why) => r.warning(
            node,
            format!("Grove cannot evaluate the regex `{regex}`: {why}"),
            Some(
                "look-around and backreferences are not supported; this rule will never match"
                    .into(),
            ),
        ),
        RegexCheck::Invalid(why) => r.error(node, format!("invalid regex `{regex}`: {why}"), None),
    }
}

fn read_passthru(r: &mut Reader<'_, '_>, node: &Node, what: &str) -> Passthru {
    match &node.kind {
        Kind::Bool(true) => Passthru::App,
        Kind::Bool(false) | Kind::Null => Passthru::Off,
        Kind::Str(s) if s.starts_with('/') => Passthru::Path(s.clone()),
        _ => {
            r.error(
                node,
                format!("`{what}` must be true, false or a path starting with `/`"),
                Some("e.g. `passthru: \"/index.php\"`".into()),
            );
            Passthru::Off
        }
    }
}

/// `expires`: `-1`, a number of seconds, or a number with a unit (`ms s m h d w M y`).
fn read_expires(r: &mut Reader<'_, '_>, node: &Node, what: &str) -> Option<String> {
    let text = match &node.kind {
        Kind::Null => return None,
        Kind::Number(n) => n.to_string(),
        Kind::Str(s) => s.clone(),
        _ => {
            r.error(
                node,
                format!("`{what}` must be a duration such as `1d`"),
                None,
            );
            return None;
        }
    };
    if crate::validate::parse_expires(&text).is_none() {
        r.error(
            node,
            format!("invalid `{what}: {text}`"),
            Some("use -1 (no caching), seconds, or a number with a unit: ms, s, m, h, d, w, M, y (e.g. `1y`)".into()),
        );
        return None;
    }
    Some(text)
}

fn read_upstream(r: &mut Reader<'_, '_>, node: Option<&Node>, language: &str) -> Upstream {
    const UPSTREAM_KEYS: Keys = &[("socket_family", Yes), ("protocol", Yes)];
    // PHP-FPM listens on a unix socket and speaks FastCGI; everything else HTTP over TCP.
    let mut upstream = if language == "php" {
        Upstream {
            socket_family: SocketFamily::Unix,
            protocol: UpstreamProtocol::Fastcgi,
        }
    } else {
        Upstream::default()
    };
    let Some(node) = node else { return upstream };
    let Some(entries) = r.map_or_null(node, "web.upstream") else {
        return upstream;
    };
    r.check_keys(entries, UPSTREAM_KEYS, "web.upstream.");
    if let Some(family) = node.get("socket_family") {
        match r.string(family, "web.upstream.socket_family").as_deref() {
            Some("tcp") => upstream.socket_family = SocketFamily::Tcp,
            Some("unix") => upstream.socket_family = SocketFamily::Unix,
            Some(other) => r.error(
                family,
                format!("unknown `web.upstream.socket_family: {other}`"),
                Some("use `tcp` or `unix`".into()),
            ),
            None => {}
        }
    }
    if let Some(protocol) = node.get("protocol") {
        match r.string(protocol, "web.upstream.protocol").as_deref() {
            Some("http") => upstream.protocol = UpstreamProtocol::Http,
            Some("fastcgi") => upstream.protocol = UpstreamProtocol::Fastcgi,
            Some(other) => r.error(
                protocol,
                format!("unknown `web.upstream.protocol: {other}`"),
                Some("use `http` or `fastcgi`".into()),
            ),
            None => {}
        }
    }
    upstream
}

pub(crate) fn read_variables(
    r: &mut Reader<'_, '_>,
    node: &Node,
    what: &str,
) -> BTreeMap<String, BTreeMap<String, serde_json::Value>> {
    let mut out: BTreeMap<String, BTreeMap<String, serde_json::Value>> = BTreeMap::new();
    let Some(entries) = r.map_or_null(node, what) else {
        return out;
    };
    for (prefix_node, values) in entries {
        let Some(prefix) = prefix_node.scalar_text() else {
            continue;
        };
        match &values.kind {
            // An empty group (or one whose `!include` failed and was reported).
            Kind::Null => {
                out.entry(prefix.clone()).or_default();
            }
            Kind::Map(vars) => {
                let slot = out.entry(prefix.clone()).or_default();
                for (name, value) in vars {
                    if let Some(name) = name.scalar_text() {
                        slot.insert(name, value.to_json());
                    }
                }
            }
            // The flat `"env:NAME": value` spelling.
            _ if prefix.contains(':') => {
                if let Some((p, name)) = prefix.split_once(':') {
                    out.entry(p.to_owned())
                        .or_default()
                        .insert(name.to_owned(), values.to_json());
                }
            }
            _ => r.error(
                prefix_node,
                format!("variable `{prefix}` has no prefix"),
                Some(format!(
                    "group variables under a prefix, e.g. `{what}: {{env: {{{prefix}: ...}}}}`"
                )),
            ),
        }
    }
    out
}

pub(crate) fn read_mounts(
    r: &mut Reader<'_, '_>,
    node: &Node,
    what: &str,
) -> BTreeMap<String, Mount> {
    const MOUNT_KEYS: Keys = &[("source", Yes), ("source_path", Yes), ("service", Yes)];
    let mut out = BTreeMap::new();
    // Where each mount is written, to point at it once all mounts are known.
    let mut nodes: BTreeMap<String, (&Node, &Node)> = BTreeMap::new();
    let Some(entries) = r.map_or_null(node, what) else {
        return out;
    };
    for (path_node, spec) in entries {
        let Some(raw_path) = path_node.scalar_text() else {
            continue;
        };
        let Some(path) = normalize_relative_dir(&raw_path).filter(|p| !p.is_empty()) else {
            r.error(
                path_node,
                format!("mount path `{raw_path}` must be a directory inside the app"),
                Some("mount paths are relative to the app root and may not contain `..`".into()),
            );
            continue;
        };
        let default_source_path = path.clone();
        let mount = match &spec.kind {
            // Old syntax: "shared:files/<subpath>".
            Kind::Str(s) => {
                let Some(rest) = s.strip_prefix("shared:files") else {
                    r.error(
                        spec,
                        format!("unknown mount `{s}`"),
                        Some("use `{source: local, source_path: <dir>}` or the old `shared:files/<dir>`".into()),
                    );
                    continue;
                };
                if rest.split('/').any(|c| c == "..") {
                    r.error(
                        spec,
                        format!(
                            "mount `{s}` may not contain `..`: a mount stays inside its volume"
                        ),
                        None,
                    );
                    continue;
                }
                Mount {
                    source: MountSource::Local,
                    source_path: rest.trim_matches('/').to_owned(),
                    service: None,
                }
            }
            Kind::Map(fields) => {
                r.check_keys(fields, MOUNT_KEYS, "");
                let source = match spec.get("source") {
                    Some(s) => match r.string(s, "source").as_deref() {
                        Some("local") => MountSource::Local,
                        Some("tmp") => MountSource::Tmp,
                        Some("service") => MountSource::Service,
                        Some("storage") => MountSource::Storage,
                        Some("instance") => MountSource::Instance,
                        Some(other) => {
                            r.error(
                                s,
                                format!("unknown mount source `{other}`"),
                                Some("use one of local, tmp, service, storage, instance".into()),
                            );
                            continue;
                        }
                        None => continue,
                    },
                    None => {
                        r.error(
                            path_node,
                            format!("mount `{raw_path}` has no `source`"),
                            Some("add `source: local`".into()),
                        );
                        continue;
                    }
                };
                let source_path = match spec.get("source_path") {
                    Some(p) => match r.opt_string(p, "source_path") {
                        Some(p) if p.split('/').any(|c| c == "..") => {
                            r.error(
                                p_node_or(spec, "source_path"),
                                format!("`source_path: {p}` may not contain `..`"),
                                None,
                            );
                            continue;
                        }
                        Some(p) => p.trim_matches('/').to_owned(),
                        None => default_source_path.clone(),
                    },
                    None => default_source_path.clone(),
                };
                let service = spec.get("service").and_then(|s| r.opt_string(s, "service"));
                if source == MountSource::Service && service.is_none() {
                    r.error(
                        path_node,
                        format!("mount `{raw_path}` has `source: service` but no `service`"),
                        Some("name the network-storage service: `service: files`".into()),
                    );
                    continue;
                }
                Mount {
                    source,
                    source_path,
                    service,
                }
            }
            _ => {
                r.error(
                    spec,
                    format!(
                        "mount `{raw_path}` must be a mapping, found {}",
                        spec.type_name()
                    ),
                    Some("e.g. `{source: local, source_path: uploads}`".into()),
                );
                continue;
            }
        };
        if out.insert(path.clone(), mount).is_some() {
            r.error(path_node, format!("mount `{path}` is defined twice"), None);
            continue;
        }
        nodes.insert(path, (path_node, spec));
    }
    check_nesting(r, &out, &nodes);
    out
}

/// Mounts may be nested, also when they are of different kinds (the official templates
/// nest `var/file_storage/jobs` (service) in `var` (local), and `var/log` (instance) and
/// `var/report` (tmp) in `var` (storage)): the outer mount is mounted first and the inner
/// mount point is created inside it. That order is the order of the map, see
/// [`crate::App::mounts`].
///
/// Refused: a mount nested in a mount of the same volume whose data holds the directory
/// it is mounted on, so that it would appear inside itself. Warned about: a
/// per-instance mount inside a shared one, which the platforms' documentation calls an
/// error although their templates do it.
fn check_nesting(
    r: &mut Reader<'_, '_>,
    mounts: &BTreeMap<String, Mount>,
    nodes: &BTreeMap<String, (&Node, &Node)>,
) {
    for (path, inner) in mounts {
        let Some((outer_path, outer)) = enclosing_mount(mounts, path) else {
            continue;
        };
        let Some(&(path_node, spec)) = nodes.get(path) else {
            continue;
        };
        let same_volume = inner.source == outer.source && inner.service == outer.service;
        if same_volume {
            // Where the inner mount point lies in the volume the two mounts share.
            let relative = &path[outer_path.len() + 1..];
            let point = if outer.source_path.is_empty() {
                relative.to_owned()
            } else {
                format!("{}/{relative}", outer.source_path)
            };
            let data = &inner.source_path;
            if data.is_empty() || point.starts_with(&format!("{data}/")) {
                // The default `source_path` (the mount path) unless it has the same flaw.
                let suggestion = if point.starts_with(&format!("{path}/")) {
                    &point
                } else {
                    path
                };
                r.error(
                    spec.get("source_path").unwrap_or(path_node),
                    format!(
                        "mount `{path}` would contain itself: inside mount `{outer_path}` it is mounted on `{point}` of the {} volume, and its `source_path: \"{data}\"` holds that directory",
                        inner.source
                    ),
                    Some(format!(
                        "a mount nested in a mount of the same kind needs a `source_path` that does not hold its own mount point, e.g. `source_path: \"{suggestion}\"`"
                    )),
                );
            }
        } else if is_shared(outer.source) && !is_shared(inner.source) {
            r.warning(
                path_node,
                format!(
                    "mount `{path}` ({}) is nested in shared mount `{outer_path}` ({})",
                    inner.source, outer.source
                ),
                Some(format!(
                    "documented as refused by Platform.sh/Upsun, though their templates do it; Grove mounts `{outer_path}` first, then `{path}` inside it, one per instance"
                )),
            );
        }
    }
}

/// The innermost other mount that `path` lies in.
fn enclosing_mount<'m>(
    mounts: &'m BTreeMap<String, Mount>,
    path: &str,
) -> Option<(&'m str, &'m Mount)> {
    let mut prefix = path;
    while let Some((parent, _)) = prefix.rsplit_once('/') {
        if let Some((outer_path, outer)) = mounts.get_key_value(parent) {
            return Some((outer_path.as_str(), outer));
        }
        prefix = parent;
    }
    None
}

/// Mounts whose data all instances of an app (or several apps) see.
fn is_shared(source: MountSource) -> bool {
    matches!(source, MountSource::Service | MountSource::Storage)
}

fn p_node_or<'n>(spec: &'n Node, key: &str) -> &'n Node {
    spec.get(key).unwrap_or(spec)
}

pub(crate) fn read_relationships(
    r: &mut Reader<'_, '_>,
    node: &Node,
    what: &str,
) -> BTreeMap<String, Relationship> {
    const REL_KEYS: Keys = &[("service", Yes), ("endpoint", Yes)];
    let mut out = BTreeMap::new();
    let Some(entries) = r.map_or_null(node, what) else {
        return out;
    };
    for (name_node, spec) in entries {
        let Some(name) = name_node.scalar_text() else {
            continue;
        };
        let rel = match &spec.kind {
            // New default syntax: the relationship is named after the service.
            Kind::Null => Relationship {
                service: name.clone(),
                endpoint: None,
            },
            // Legacy "<service>:<endpoint>".
            Kind::Str(s) => match s.split_once(':') {
                Some((service, endpoint)) if !service.is_empty() && !endpoint.is_empty() => {
                    Relationship {
                        service: service.to_owned(),
                        endpoint: Some(endpoint.to_owned()),
                    }
                }
                _ => {
                    r.error(
                        spec,
                        format!("relationship `{name}: {s}` must be `<service>:<endpoint>`"),
                        Some(format!(
                            "e.g. `{name}: \"{s}:mysql\"`, or `{name}: {{service: {s}}}`"
                        )),
                    );
                    continue;
                }
            },
            Kind::Map(fields) => {
                r.check_keys(fields, REL_KEYS, "");
                let service = match spec.get("service") {
                    Some(s) => r.string(s, "service"),
                    None => Some(name.clone()),
                };
                let endpoint = spec
                    .get("endpoint")
                    .and_then(|e| r.opt_string(e, "endpoint"));
                let Some(service) = service else { continue };
                Relationship { service, endpoint }
            }
            _ => {
                r.error(
                    spec,
                    format!(
                        "relationship `{name}` must be a string or a mapping, found {}",
                        spec.type_name()
                    ),
                    Some(
                        "use `\"<service>:<endpoint>\"` or `{service: <name>, endpoint: <name>}`"
                            .into(),
                    ),
                );
                continue;
            }
        };
        out.insert(name, rel);
    }
    out
}

/// `size: S` (case-insensitive, as Platform.sh accepts it).
pub(crate) fn read_size(r: &mut Reader<'_, '_>, node: &Node) -> Size {
    let Some(text) = r.opt_string(node, "size") else {
        return Size::Auto;
    };
    match Size::NAMES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(text.trim()))
    {
        Some((_, size)) => *size,
        None => {
            let names: Vec<&str> = Size::NAMES.iter().map(|(n, _)| *n).collect();
            r.error(
                node,
                format!("unknown size `{text}`"),
                Some(format!("use one of {}", names.join(", "))),
            );
            Size::Auto
        }
    }
}

pub(crate) fn read_disk(r: &mut Reader<'_, '_>, node: &Node, what: &str) -> Option<u64> {
    if node.is_null() {
        return None;
    }
    if !matches!(node.kind, Kind::Number(_)) {
        r.error(
            node,
            format!(
                "`{what}` must be a number of MB, found {}",
                node.type_name()
            ),
            Some(format!(
                "write the size in MB without a unit, e.g. `{what}: 2048`"
            )),
        );
        return None;
    }
    let disk = r.u64(node, what)?;
    if disk < 128 {
        r.error(
            node,
            format!("`{what}: {disk}` is too small"),
            Some("disk sizes are in MB; the minimum is 128".into()),
        );
        return None;
    }
    Some(disk)
}

fn read_crons(r: &mut Reader<'_, '_>, node: &Node) -> BTreeMap<String, Cron> {
    const CRON_KEYS: Keys = &[
        ("spec", Yes),
        ("cmd", Yes),
        ("commands", Yes),
        ("shutdown_timeout", Yes),
        ("timeout", Yes),
    ];
    const CRON_COMMAND_KEYS: Keys = &[("start", Yes), ("stop", Yes)];
    let mut out = BTreeMap::new();
    let Some(entries) = r.map_or_null(node, "crons") else {
        return out;
    };
    for (name_node, spec) in entries {
        let Some(name) = name_node.scalar_text() else {
            continue;
        };
        let ctx = format!("crons.{name}.");
        let Some(fields) = r.map(spec, &format!("crons.{name}")) else {
            continue;
        };
        r.check_keys(fields, CRON_KEYS, &ctx);
        let schedule = match spec.get("spec") {
            Some(s) => r.string(s, &format!("{ctx}spec")).and_then(|text| {
                match crate::validate::check_cron_spec(&text) {
                    Ok(()) => Some(text),
                    Err(why) => {
                        r.error(
                            s,
                            format!("invalid cron spec `{text}`: {why}"),
                            Some("use five fields: minute hour day-of-month month day-of-week, e.g. `*/5 * * * *`".into()),
                        );
                        None
                    }
                }
            }),
            None => {
                r.error(name_node, format!("cron `{name}` has no `spec`"), Some("e.g. `spec: \"*/5 * * * *\"`".into()));
                None
            }
        };
        let mut command = spec
            .get("cmd")
            .and_then(|c| r.string(c, &format!("{ctx}cmd")));
        let mut stop = None;
        if let Some(commands) = spec.get("commands")
            && let Some(cmds) = r.map(commands, &format!("{ctx}commands"))
        {
            r.check_keys(cmds, CRON_COMMAND_KEYS, &format!("{ctx}commands."));
            if let Some(start) = commands.get("start") {
                command = r.string(start, &format!("{ctx}commands.start"));
            }
            stop = commands
                .get("stop")
                .and_then(|s| r.opt_string(s, &format!("{ctx}commands.stop")));
        }
        if command.is_none() && spec.get("cmd").is_none() && spec.get("commands").is_none() {
            r.error(
                name_node,
                format!("cron `{name}` has no command"),
                Some("add `commands: {start: \"...\"}`".into()),
            );
        }
        let shutdown_timeout = spec
            .get("shutdown_timeout")
            .and_then(|t| r.u64(t, &format!("{ctx}shutdown_timeout")))
            .unwrap_or(10);
        let timeout = spec
            .get("timeout")
            .and_then(|t| r.u64(t, &format!("{ctx}timeout")))
            .unwrap_or(86_400);
        if let (Some(spec), Some(command)) = (schedule, command) {
            out.insert(
                name,
                Cron {
                    spec,
                    command,
                    stop,
                    shutdown_timeout,
                    timeout,
                },
            );
        }
    }
    out
}

fn read_workers(r: &mut Reader<'_, '_>, node: &Node) -> BTreeMap<String, Worker> {
    const WORKER_KEYS: Keys = &[
        ("commands", Yes),
        ("mounts", Yes),
        ("relationships", Yes),
        ("variables", Yes),
        ("disk", Yes),
        ("access", Yes),
        ("size", Later),
        ("container_profile", Later),
        ("additional_hosts", Later),
        ("firewall", Later),
    ];
    let mut out = BTreeMap::new();
    let Some(entries) = r.map_or_null(node, "workers") else {
        return out;
    };
    for (name_node, spec) in entries {
        let Some(name) = name_node.scalar_text() else {
            continue;
        };
        let ctx = format!("workers.{name}.");
        let Some(fields) = r.map(spec, &format!("workers.{name}")) else {
            continue;
        };
        r.check_keys(fields, WORKER_KEYS, &ctx);
        let mut worker = Worker::default();
        for (key, value) in fields {
            let Some(k) = key.scalar_text() else { continue };
            let what = format!("{ctx}{k}");
            match k.as_str() {
                "commands" if r.map(value, &what).is_some() => {
                    worker.start = value
                        .get("start")
                        .and_then(|s| r.opt_string(s, &format!("{what}.start")));
                }
                "mounts" => worker.mounts = read_mounts(r, value, &what),
                "relationships" => worker.relationships = read_relationships(r, value, &what),
                "variables" => worker.variables = read_variables(r, value, &what),
                "disk" => worker.disk = read_disk(r, value, &what),
                "access" => {
                    read_access(r, value, &what);
                }
                _ => {}
            }
        }
        if worker.start.is_none() {
            r.error(
                name_node,
                format!("worker `{name}` has no `commands.start`"),
                Some("workers run a long-lived command: `commands: {start: \"...\"}`".into()),
            );
            continue;
        }
        out.insert(name, worker);
    }
    out
}

fn read_access(r: &mut Reader<'_, '_>, node: &Node, what: &str) -> Option<String> {
    const ACCESS_KEYS: Keys = &[("ssh", Yes)];
    let entries = r.map_or_null(node, what)?;
    r.check_keys(entries, ACCESS_KEYS, &format!("{what}."));
    let ssh = node.get("ssh")?;
    let role = r.string(ssh, &format!("{what}.ssh"))?;
    if !matches!(role.as_str(), "admin" | "contributor" | "viewer") {
        r.error(
            ssh,
            format!("unknown role `{role}` in `{what}.ssh`"),
            Some("use admin, contributor or viewer".into()),
        );
        return None;
    }
    Some(role)
}
