//! The generated configuration run by the real nginx (and PHP-FPM), on loopback, in a
//! temp dir, without root. Needs the Debian packages `nginx` and `php8.2-fpm`
//! (`scripts/deps.sh`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use grove_web::{AppUpstream, FpmSpec, Listen, ServerSpec, fpm_config, nginx_config};

const PHP_FPM: &str = "php-fpm8.2";

const APP_YAML: &str = r#"name: shop
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

fn start() -> Site {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    let app_root = root.join("app");
    let pub_dir = app_root.join("pub");
    let front = |name: &str| {
        format!(
            "<?php header('Content-Type: application/json'); echo json_encode(['script' => '{name}', 'uri' => $_SERVER['REQUEST_URI'], 'memory_limit' => ini_get('memory_limit')]);\n"
        )
    };
    write(&pub_dir.join("index.php"), &front("index"));
    write(&pub_dir.join("get.php"), &front("get"));
    write(&pub_dir.join("front-static.php"), &front("front-static"));
    write(&pub_dir.join("style.css"), "body { color: red }\n");
    write(&pub_dir.join("notes.txt"), "PRIVATE NOTES\n");
    write(&pub_dir.join("static/app.css"), "h1 { color: blue }\n");
    write(&pub_dir.join("media/photo.txt"), "a photo\n");
    write(
        &pub_dir.join("media/secret.php"),
        "<?php echo 'EXECUTED'; // SECRET SOURCE\n",
    );
    let run = root.join("run");
    std::fs::create_dir_all(&run).expect("run dir");
    let tree = grove_config::MemoryTree::new([(".platform.app.yaml", APP_YAML)]);
    let project = grove_config::load(&tree).expect("config");
    let app = &project.apps[0];
    let socket = run.join("php.sock").display().to_string();
    let fpm = fpm_config(
        app,
        &FpmSpec {
            socket: socket.clone(),
            runtime_dir: run.display().to_string(),
            max_children: 2,
        },
    )
    .expect("fpm config");
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
            upstream: AppUpstream::FastCgi {
                socket: socket.clone(),
            },
            user: is_root().then(|| "root".to_owned()),
        },
    )
    .expect("nginx config");
    write(&run.join("php-fpm.conf"), &fpm);
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

    let mut running = Running(Vec::new());
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
    while !(PathBuf::from(&socket).exists() && TcpStream::connect(("127.0.0.1", port)).is_ok()) {
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

fn get(site: &Site, path: &str) -> Response {
    let mut stream = TcpStream::connect(("127.0.0.1", site.port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n"
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

#[test]
fn magento_like_locations_are_served_as_configured() {
    let site = start();

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
