//! The generated configuration run by the real nginx (and PHP-FPM, or a small HTTP app),
//! on loopback, in a temp dir. Needs the Debian packages `nginx` and `php8.2-fpm`
//! (`scripts/deps.sh`).
//!
//! `every_location_key_is_honoured` is the table of location and rule resolution: for
//! each app configuration, requests and what they must get.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use grove_web::{AppUpstream, FpmSpec, Listen, ServerSpec, fpm_config, nginx_config};

const PHP_FPM: &str = "php-fpm8.2";

struct Running(Vec<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        // SIGTERM, so that nginx and php-fpm take their workers down with them.
        for child in &mut self.0 {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

struct Site {
    _dir: tempfile::TempDir,
    port: u16,
    _running: Running,
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create dir");
    }
    std::fs::write(path, text).expect("write file");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A PHP file answering which script ran, for which URI, with which query and body.
fn front(name: &str) -> String {
    format!(
        "<?php header('Content-Type: application/json'); echo json_encode(['script' => '{name}', 'uri' => $_SERVER['REQUEST_URI'], 'query' => $_SERVER['QUERY_STRING'], 'body' => strlen(file_get_contents('php://input')), 'memory_limit' => ini_get('memory_limit')]);\n"
    )
}

/// The app behind a non-PHP app's nginx: answers `APP <method> <target> <body length>`.
fn http_app(listener: TcpListener) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { return };
        std::thread::spawn(move || {
            let mut reader = BufReader::new(&stream);
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                return;
            }
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let mut parts = request_line.split_whitespace();
            let text = format!(
                "APP {} {} {}",
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                body.len()
            );
            let _ = write!(
                &stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        });
    }
}

/// nginx (and PHP-FPM for a PHP app, or [`http_app`] otherwise) serving `app_yaml`
/// over `files` (paths relative to the app root).
fn start(app_yaml: &str, files: &[(&str, &str)]) -> Site {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    let app_root = root.join("app");
    std::fs::create_dir_all(&app_root).expect("app dir");
    for (path, text) in files {
        write(&app_root.join(path), text);
    }
    let run = root.join("run");
    std::fs::create_dir_all(&run).expect("run dir");
    let tree = grove_config::MemoryTree::new([(".platform.app.yaml", app_yaml)]);
    let project = grove_config::load(&tree).expect("config");
    let app = &project.apps[0];
    let php = app.runtime.to_string().starts_with("php");
    let mut running = Running(Vec::new());
    let socket = run.join("php.sock").display().to_string();
    let upstream = if php {
        let fpm = fpm_config(
            app,
            &FpmSpec {
                socket: socket.clone(),
                runtime_dir: run.display().to_string(),
                max_children: 2,
            },
        )
        .expect("fpm config");
        write(&run.join("php-fpm.conf"), &fpm);
        let mut fpm_command = Command::new(PHP_FPM);
        fpm_command
            .arg("--nodaemonize")
            .arg("--fpm-config")
            .arg(run.join("php-fpm.conf"));
        if is_root() {
            fpm_command.arg("--allow-to-run-as-root");
        }
        running.0.push(
            fpm_command
                .stdout(Stdio::null())
                .spawn()
                .expect("php-fpm8.2 is installed (scripts/deps.sh)"),
        );
        AppUpstream::FastCgi {
            socket: socket.clone(),
        }
    } else {
        let listener = TcpListener::bind("127.0.0.1:0").expect("app port");
        let port = listener.local_addr().expect("app address").port();
        std::thread::spawn(move || http_app(listener));
        AppUpstream::Http(Listen::Tcp {
            host: "127.0.0.1".into(),
            port,
        })
    };
    let port = free_port();
    let nginx = nginx_config(
        &app.web,
        &ServerSpec {
            listen: Listen::Tcp {
                host: "127.0.0.1".into(),
                port,
            },
            app_root: app_root.display().to_string(),
            runtime_dir: run.display().to_string(),
            upstream,
            user: is_root().then(|| "root".to_owned()),
        },
    )
    .expect("nginx config");
    write(&run.join("nginx.conf"), &nginx);

    let test = Command::new("nginx")
        .arg("-t")
        .arg("-q")
        .args(["-e", "stderr", "-p"])
        .arg(&run)
        .arg("-c")
        .arg(run.join("nginx.conf"))
        .output()
        .expect("nginx is installed (scripts/deps.sh)");
    assert!(
        test.status.success(),
        "nginx -t: {}\n{nginx}",
        String::from_utf8_lossy(&test.stderr)
    );
    running.0.push(
        Command::new("nginx")
            .args(["-e", "stderr", "-p"])
            .arg(&run)
            .arg("-c")
            .arg(run.join("nginx.conf"))
            .spawn()
            .expect("nginx starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !((!php || PathBuf::from(&socket).exists())
        && TcpStream::connect(("127.0.0.1", port)).is_ok())
    {
        assert!(Instant::now() < deadline, "nginx and php-fpm did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Site {
        _dir: dir,
        port,
        _running: running,
    }
}

struct Response {
    status: u16,
    head: String,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

fn request(site: &Site, method: &str, path: &str, body: &str) -> Response {
    let mut stream = TcpStream::connect(("127.0.0.1", site.port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Response {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

fn get(site: &Site, path: &str) -> Response {
    request(site, "GET", path, "")
}

const MAGENTO_YAML: &str = r#"name: shop
type: php:8.2
variables:
  php:
    memory_limit: 123M
web:
  locations:
    "/":
      root: pub
      passthru: /index.php
      index: [index.php]
      scripts: true
      allow: false
      rules:
        \.(css|js)$:
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
fn magento_like_locations_are_served_as_configured() {
    let site = start(
        MAGENTO_YAML,
        &[
            ("pub/index.php", &front("index")),
            ("pub/get.php", &front("get")),
            ("pub/front-static.php", &front("front-static")),
            ("pub/style.css", "body { color: red }\n"),
            ("pub/notes.txt", "PRIVATE NOTES\n"),
            ("pub/static/app.css", "h1 { color: blue }\n"),
            ("pub/media/photo.txt", "a photo\n"),
            (
                "pub/media/secret.php",
                "<?php echo 'EXECUTED'; // SECRET SOURCE\n",
            ),
        ],
    );

    // A static file with `expires: 1y`.
    let css = get(&site, "/static/app.css");
    assert_eq!(css.status, 200, "{}", css.head);
    assert_eq!(css.body, "h1 { color: blue }\n");
    assert_eq!(
        css.header("Cache-Control").as_deref(),
        Some("max-age=31536000")
    );
    assert!(css.header("Expires").is_some());

    // A named capture into passthru: the versioned URL serves the same file.
    let versioned = get(&site, "/static/version1712/app.css");
    assert_eq!(versioned.status, 200, "{}", versioned.head);
    assert_eq!(versioned.body, "h1 { color: blue }\n");
    // ...and a missing one goes on to /static's front controller.
    let missing_static = get(&site, "/static/version1712/none.css");
    assert!(
        missing_static.body.contains(r#""script":"front-static""#),
        "{}",
        missing_static.body
    );

    // A missing file: the front controller, which sees the original URI.
    let missing = get(&site, "/catalog/item?id=3");
    assert_eq!(missing.status, 200, "{}", missing.head);
    assert!(
        missing.body.contains(r#""script":"index""#),
        "{}",
        missing.body
    );
    assert!(
        missing.body.contains(r#""uri":"\/catalog\/item?id=3""#),
        "{}",
        missing.body
    );
    assert!(
        missing.body.contains(r#""memory_limit":"123M""#),
        "{}",
        missing.body
    );
    assert_eq!(
        missing.header("Cache-Control"),
        None,
        "expires is for static files only"
    );

    // `allow: false` with a rule allowing CSS: the CSS is served, other files are not.
    let style = get(&site, "/style.css");
    assert_eq!(style.status, 200, "{}", style.head);
    assert_eq!(style.body, "body { color: red }\n");
    let notes = get(&site, "/notes.txt");
    assert!(!notes.body.contains("PRIVATE NOTES"), "{}", notes.body);
    assert!(notes.body.contains(r#""script":"index""#), "{}", notes.body);

    // `scripts: false`: a PHP file is neither executed nor shown.
    for path in [
        "/media/secret.php",
        "/media/SECRET.PHP",
        "/media/secret.php?x=1",
    ] {
        let secret = get(&site, path);
        assert!(
            !secret.body.contains("EXECUTED") && !secret.body.contains("SECRET SOURCE"),
            "{path}: {}",
            secret.body
        );
    }
    assert_eq!(get(&site, "/media/secret.php").status, 403);
    // Missing media: the media front controller.
    let media = get(&site, "/media/none.jpg");
    assert!(media.body.contains(r#""script":"get""#), "{}", media.body);
    let photo = get(&site, "/media/photo.txt");
    assert_eq!(photo.body, "a photo\n");
}

/// One request of the table and what its response must show.
struct Case {
    /// The location key (or keys) the case is about.
    key: &'static str,
    method: &'static str,
    path: &'static str,
    /// The request body's length in bytes (`x` repeated).
    body: usize,
    status: u16,
    /// Text the body must contain, and text it must not.
    has: &'static str,
    lacks: &'static str,
    /// A response header and its value (`None`: the header is absent).
    header: Option<(&'static str, Option<&'static str>)>,
}

const fn case(key: &'static str, path: &'static str, status: u16, has: &'static str) -> Case {
    Case {
        key,
        method: "GET",
        path,
        body: 0,
        status,
        has,
        lacks: "",
        header: None,
    }
}

impl Case {
    const fn lacks(mut self, text: &'static str) -> Case {
        self.lacks = text;
        self
    }

    const fn header(mut self, name: &'static str, value: Option<&'static str>) -> Case {
        self.header = Some((name, value));
        self
    }

    const fn post(mut self, body: usize) -> Case {
        self.method = "POST";
        self.body = body;
        self
    }
}

/// A PHP app using every key of a location and of a rule.
const PHP_YAML: &str = r#"name: site
type: php:8.2
web:
  locations:
    "/":
      root: public
      passthru: /index.php
      index: [index.html]
      expires: 1h
      allow: false
      headers:
        X-Site: main
      request_buffering:
        max_request_size: 1k
      rules:
        \.(css|png)$:
          allow: true
        ^/sub/:
          allow: true
          expires: 2h
          headers:
            X-Sub: "yes"
        ^/sites/settings\.php$:
          scripts: false
        ^/old/(\d+)$:
          passthru: /legacy.php?id=$1
        ^/img/(?<name>[a-z]+)$:
          passthru: /images/$name.png
        ^/closed/:
          passthru: false
    "/docs":
      root: docs
      allow: true
      scripts: false
      index: [index.html]
      expires: 1d
      headers:
        X-Docs: "1"
      passthru: false
    "/docs/api":
      root: api
      allow: true
      scripts: true
      passthru: /api.php
      request_buffering:
        enabled: false
        max_request_size: 4k
"#;

const PHP_CASES: &[Case] = &[
    // root + allow (via a rule) + expires + headers on a static file.
    case(
        "root, rules.allow, expires, headers",
        "/style.css",
        200,
        "body {}",
    )
    .header("Cache-Control", Some("max-age=3600")),
    case("headers", "/style.css", 200, "body {}").header("X-Site", Some("main")),
    // allow: false: a file no rule allows goes to the passthru, unshown.
    case("allow: false", "/notes.md", 200, r#""script":"index""#).lacks("PRIVATE"),
    // A missing file: the passthru, with the original URI; no static headers.
    case(
        "passthru (script)",
        "/shop/item?x=1",
        200,
        r#""uri":"\/shop\/item?x=1""#,
    )
    .header("X-Site", None),
    case(
        "passthru: no expires on the app",
        "/shop",
        200,
        r#""script":"index""#,
    )
    .header("Cache-Control", None),
    // scripts (default true): other PHP files run.
    case("scripts (default true)", "/tool.php", 200, "TOOL RAN").lacks("<?php"),
    // A rule turns scripts off for one file: neither run nor shown.
    case("rules.scripts: false", "/sites/settings.php", 403, "").lacks("DB_PASSWORD"),
    // index, in a rule that allows and overrides expires and headers.
    case("index", "/sub/", 200, "SUB INDEX").header("Cache-Control", Some("max-age=7200")),
    case("rules.headers", "/sub/page.txt", 200, "sub text").header("X-Sub", Some("yes")),
    case("rules: other keys kept", "/sub/page.txt", 200, "sub text").header("X-Site", Some("main")),
    // Rules are tried in file order: the first that matches decides.
    case("rules: first match wins", "/sub/page.css", 200, "sub css").header("X-Sub", None),
    // Numbered and named captures substituted into a rule's passthru.
    case(
        "rules: numbered capture",
        "/old/42",
        200,
        r#""query":"id=42""#,
    )
    .header("X-Site", None),
    case(
        "rules: numbered capture",
        "/old/42",
        200,
        r#""script":"legacy""#,
    ),
    case("rules: named capture", "/img/logo", 200, "PNG logo"),
    case(
        "rules: named capture, missing",
        "/img/none",
        200,
        r#""script":"index""#,
    ),
    case("rules.passthru: false", "/closed/x", 404, ""),
    // The most specific prefix wins; prefixes match whole segments.
    case("prefix /docs", "/docs/", 200, "DOCS INDEX")
        .header("Cache-Control", Some("max-age=86400")),
    case("prefix /docs: headers", "/docs/guide.txt", 200, "guide").header("X-Docs", Some("1")),
    case(
        "prefix /docs/api over /docs",
        "/docs/api/ping.txt",
        200,
        "pong",
    )
    .header("X-Docs", None),
    case(
        "prefix segments: /docsx is not /docs",
        "/docsx",
        200,
        r#""script":"index""#,
    ),
    // passthru: false: 404; scripts: false: an existing PHP file is 403, unrun.
    case("passthru: false", "/docs/none", 404, ""),
    case("scripts: false", "/docs/run.php", 403, "").lacks("RAN"),
    case("scripts: false, missing file", "/docs/none.php", 404, ""),
    // A passthru script runs even where scripts are off ("/docs/api" runs it).
    case(
        "passthru script",
        "/docs/api/none",
        200,
        r#""script":"api""#,
    ),
    // request_buffering.max_request_size: 1k on "/", 4k on "/docs/api".
    case("request_buffering.max_request_size", "/shop", 413, "").post(2000),
    case(
        "request_buffering.max_request_size",
        "/shop",
        200,
        r#""body":500"#,
    )
    .post(500),
    case(
        "request_buffering.enabled: false",
        "/docs/api/x",
        200,
        r#""body":3000"#,
    )
    .post(3000),
    case("request_buffering (4k)", "/docs/api/x", 413, "").post(5000),
];

const PHP_FILES: &[(&str, &str)] = &[
    ("public/style.css", "body {}\n"),
    ("public/notes.md", "PRIVATE\n"),
    ("public/tool.php", "<?php echo 'TOOL ' . 'RAN';\n"),
    (
        "public/sites/settings.php",
        "<?php $x = 'DB_PASSWORD'; echo 'SETTINGS RAN';\n",
    ),
    ("public/sub/index.html", "SUB INDEX\n"),
    ("public/sub/page.css", "sub css\n"),
    ("public/sub/page.txt", "sub text\n"),
    ("public/images/logo.png", "PNG logo\n"),
    ("public/closed/y.css", "closed\n"),
    ("docs/index.html", "DOCS INDEX\n"),
    ("docs/guide.txt", "guide\n"),
    ("docs/run.php", "<?php echo 'RAN';\n"),
    ("api/ping.txt", "pong\n"),
];

/// The deprecated form: `document_root`, `passthru`, `index_files`, `expires`,
/// `whitelist`, `blacklist`.
const LEGACY_YAML: &str = r#"name: legacy
type: php:8.2
web:
  document_root: /web
  passthru: /app.php
  index_files: [index.php]
  expires: 1d
  whitelist:
    - \.css$
  blacklist:
    - ^/config\.php$
"#;

const LEGACY_CASES: &[Case] = &[
    case("whitelist + expires", "/style.css", 200, "legacy css")
        .header("Cache-Control", Some("max-age=86400")),
    case(
        "whitelist: others unserved",
        "/secret.txt",
        200,
        r#""script":"app""#,
    )
    .lacks("SECRET"),
    case("blacklist", "/config.php", 403, "").lacks("CONFIG"),
    case("legacy scripts run", "/other.php", 200, "OTHER RAN"),
    case("index_files", "/", 200, "INDEX RAN"),
    case(
        "passthru",
        "/anything?q=1",
        200,
        r#""uri":"\/anything?q=1""#,
    ),
];

const LEGACY_FILES: &[(&str, &str)] = &[
    ("web/style.css", "legacy css\n"),
    ("web/secret.txt", "SECRET\n"),
    ("web/config.php", "<?php echo 'CONFIG';\n"),
    ("web/other.php", "<?php echo 'OTHER ' . 'RAN';\n"),
    ("web/index.php", "<?php echo 'INDEX ' . 'RAN';\n"),
];

/// An app with its own HTTP server: `passthru: true` hands requests to it.
const NODE_YAML: &str = r#"name: node
type: nodejs:20
web:
  commands:
    start: node server.js
  locations:
    "/":
      root: public
      passthru: true
      index: [index.html]
      request_buffering:
        max_request_size: 2k
    "/assets":
      root: assets
      expires: 2h
      passthru: false
      headers:
        Access-Control-Allow-Origin: "*"
      rules:
        \.map$:
          allow: false
"#;

const NODE_CASES: &[Case] = &[
    case("index", "/", 200, "NODE INDEX"),
    case(
        "passthru: true",
        "/api/items?x=1",
        200,
        "APP GET /api/items?x=1 0",
    ),
    case(
        "passthru: true, POST",
        "/api/items",
        200,
        "APP POST /api/items 1000",
    )
    .post(1000),
    case("max_request_size", "/api/items", 413, "").post(3000),
    case("expires + headers", "/assets/app.js", 200, "js")
        .header("Cache-Control", Some("max-age=7200")),
    case("headers", "/assets/app.js", 200, "js").header("Access-Control-Allow-Origin", Some("*")),
    case("rules.allow: false", "/assets/app.js.map", 404, "").lacks("SOURCE MAP"),
    case("passthru: false", "/assets/none.js", 404, ""),
];

const NODE_FILES: &[(&str, &str)] = &[
    ("public/index.html", "NODE INDEX\n"),
    ("assets/app.js", "js\n"),
    ("assets/app.js.map", "SOURCE MAP\n"),
];

fn check_table(site: &Site, cases: &[Case]) -> Vec<String> {
    let mut failures = Vec::new();
    for case in cases {
        let body = "x".repeat(case.body);
        let response = request(site, case.method, case.path, &body);
        let mut wrong = Vec::new();
        if response.status != case.status {
            wrong.push(format!("status {} (want {})", response.status, case.status));
        }
        if !response.body.contains(case.has) {
            wrong.push(format!("body lacks `{}`", case.has));
        }
        if !case.lacks.is_empty() && response.body.contains(case.lacks) {
            wrong.push(format!("body shows `{}`", case.lacks));
        }
        if let Some((name, value)) = case.header
            && response.header(name).as_deref() != value
        {
            wrong.push(format!(
                "header {name}: {:?} (want {value:?})",
                response.header(name)
            ));
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "[{}] {} {}: {}\n{}\n{}",
                case.key,
                case.method,
                case.path,
                wrong.join(", "),
                response.head,
                response.body.chars().take(300).collect::<String>()
            ));
        }
    }
    failures
}

#[test]
fn every_location_key_is_honoured() {
    let front_files = [
        ("public/index.php", front("index")),
        ("public/legacy.php", front("legacy")),
        ("public/api.php", front("api")),
        ("web/app.php", front("app")),
    ];
    let with_fronts = |files: &[(&'static str, &'static str)]| -> Vec<(String, String)> {
        files
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .chain(front_files.iter().map(|(p, t)| (p.to_string(), t.clone())))
            .collect()
    };
    let mut failures = Vec::new();
    for (yaml, files, cases) in [
        (PHP_YAML, PHP_FILES, PHP_CASES),
        (LEGACY_YAML, LEGACY_FILES, LEGACY_CASES),
        (NODE_YAML, NODE_FILES, NODE_CASES),
    ] {
        let files = with_fronts(files);
        let files: Vec<(&str, &str)> = files
            .iter()
            .map(|(p, t)| (p.as_str(), t.as_str()))
            .collect();
        let site = start(yaml, &files);
        failures.extend(check_table(&site, cases));
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
