//! Runtime images: apps asking for a language version the host lacks run on a root
//! filesystem built from Debian's archive that has it; a version nobody has exactly
//! runs on the nearest newer minor, said in the push log and `environment:info`.

use crate::primary_url;
use crate::support::{Server, Work, curl_json};

/// Images are shared by every server of the test run (as by every project of a
/// server): the first test that needs one builds it, in the target directory, so a
/// clean machine builds it once and later runs reuse it.
fn server() -> Server {
    let server = Server::start_with(&[("GROVE_IMAGES_DIR", &images_dir())]);
    server.cli_ok(&["project:create", "shop"]);
    server
}

pub(crate) fn images_dir() -> String {
    let images = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("images");
    images.to_str().expect("utf-8 path").to_string()
}

/// A work tree with nothing but what the test writes.
fn empty_work() -> Work {
    let work = Work {
        dir: tempfile::tempdir().expect("tempdir"),
    };
    work.git(&["init", "-q", "-b", "main"]);
    work
}

#[test]
fn an_express_app_on_nodejs_18_builds_and_runs_on_the_bookworm_image() {
    let mut server = server();
    let work = empty_work();
    work.write(
        "package.json",
        "{\n  \"name\": \"greeter\",\n  \"version\": \"0.1.0\",\n  \"private\": true,\n  \
         \"scripts\": {\"start\": \"node index.js\"},\n  \
         \"dependencies\": {\"express\": \"4.21.2\"}\n}\n",
    );
    work.write(
        "index.js",
        "const express = require('express');\n\
         const app = express();\n\
         app.get('/', (req, res) => {\n  \
         res.json({node: process.version, express: require('express/package.json').version,\n    \
         branch: process.env.PLATFORM_BRANCH});\n});\n\
         app.listen(Number(process.env.PORT), '127.0.0.1');\n",
    );
    work.write(
        ".platform.app.yaml",
        "name: greeter\ntype: nodejs:18\n\
         hooks:\n  build: |\n    set -e\n    node --version\n    npm --version\n\
         web:\n  commands:\n    start: node index.js\n",
    );
    work.commit("an express app on node 18");
    let (ok, out) = work.push(&server.git_url("shop"), &["main"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("nodejs:18 runs on image nodejs-18-bookworm (Debian bookworm)"),
        "{out}"
    );
    // The default flavor's `npm install` fetched express from the npm registry.
    assert!(out.contains("Running the `default` build flavor"), "{out}");
    assert!(out.contains("    v18."), "the build ran node 18: {out}");
    let served = curl_json(&primary_url(&server, "main"));
    assert!(
        served["node"]
            .as_str()
            .is_some_and(|v| v.starts_with("v18.")),
        "{served}"
    );
    assert_eq!(served["express"], "4.21.2", "{served}");
    assert_eq!(served["branch"], "main", "{served}");
    // Shared, read-only, complete: the image is there for the next push.
    let list = server.cli_ok(&["runtime:list"]);
    let node18 = list
        .lines()
        .find(|l| l.starts_with("nodejs:18 "))
        .unwrap_or_default();
    assert!(node18.contains("installed"), "{list}");
    assert!(node18.contains("image bookworm"), "{list}");
    // Installing it again is immediate; a version no image has exactly is refused.
    let again = server.cli_ok(&["runtime:install", "nodejs:18"]);
    assert!(
        again.contains("Runtime `nodejs:18` is installed."),
        "{again}"
    );
    let refused = server.cli(&["runtime:install", "python:3.10"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("no runtime image provides `python:3.10` exactly"),
        "{stderr}"
    );
    // After a restart the environment comes back on the same image, not rebuilt.
    let url = primary_url(&server, "main");
    server.stop();
    server.spawn_with(&[("GROVE_IMAGES_DIR", &images_dir())]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let restored = loop {
        let (status, body) = crate::support::curl(&url);
        if status == 200 || std::time::Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(restored.contains("\"node\":\"v18."), "{restored}");
}

/// A Flask-style app asking for Python 3.10, which neither the host (3.11) nor an
/// image (3.9, 3.11, 3.13) has: it runs on 3.11, with Flask installed by `pip`.
#[test]
fn python_3_10_runs_on_3_11_with_a_warning() {
    let server = server();
    let work = empty_work();
    work.write("requirements.txt", "flask==3.0.3\n");
    work.write(
        "app.py",
        "import os, sys\nfrom flask import Flask, jsonify\n\n\
         app = Flask(__name__)\n\n\
         @app.get('/')\n\
         def version():\n    \
         return jsonify(python='%d.%d' % sys.version_info[:2])\n\n\
         if __name__ == '__main__':\n    \
         app.run(host='127.0.0.1', port=int(os.environ['PORT']))\n",
    );
    work.write(
        ".platform.app.yaml",
        "name: app\ntype: python:3.10\n\
         hooks:\n  build: |\n    set -e\n    python3.10 -m pip --version\n    \
         pip install -r requirements.txt\n\
         web:\n  commands:\n    start: python3.10 app.py\n",
    );
    work.commit("python 3.10");
    let (ok, out) = work.push(&server.git_url("shop"), &["main"]);
    assert!(ok, "{out}");
    let warning = "app `app`: python:3.10 is not available: python:3.11 from the host runs \
                   instead (the nearest newer minor version)";
    assert!(out.contains(&format!("W: {warning}")), "{out}");
    assert!(out.contains("Successfully installed"), "{out}");
    // The version asked for still answers by name (the official templates call
    // `python3.10 -m pip install --upgrade pip`): it is the one that runs.
    assert!(
        out.contains("(python 3.11)"),
        "pip of 3.11 under `python3.10`: {out}"
    );
    assert_eq!(curl_json(&primary_url(&server, "main"))["python"], "3.11");
    let info = server.cli_ok(&[
        "environment:info",
        "-p",
        "shop",
        "-e",
        "main",
        "runtime_warnings",
    ]);
    assert!(info.contains(warning), "{info}");
}

#[test]
fn exact_versions_only_refuses_with_what_is_installable() {
    let images = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("images");
    let mut server = Server::start_with(&[("GROVE_IMAGES_DIR", images.to_str().expect("utf-8"))]);
    server.stop();
    std::fs::write(server.data_dir().join("runtimes.yaml"), "versions: exact\n")
        .expect("runtimes.yaml");
    server.spawn_with(&[("GROVE_IMAGES_DIR", images.to_str().expect("utf-8"))]);
    server.cli_ok(&["project:create", "shop"]);
    let work = empty_work();
    work.write(
        ".platform.app.yaml",
        "name: app\ntype: python:3.10\nweb:\n  commands:\n    start: python -m http.server $PORT\n",
    );
    work.commit("python 3.10");
    let (ok, out) = work.push(&server.git_url("shop"), &["main"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(
            "runtime `python:3.10` is not available in exactly that version, and this server \
             runs exact versions only"
        ),
        "{out}"
    );
    assert!(
        out.contains("python:3.9 (image, Debian bullseye), python:3.11 (host), python:3.13 (image, Debian trixie)"),
        "{out}"
    );
}

#[test]
fn runtime_list_shows_installed_and_installable_runtimes() {
    let server = server();
    let table = server.cli_ok(&["runtime:list"]);
    let header = table.lines().next().unwrap_or_default();
    for column in ["TYPE", "VERSION", "STATUS", "SOURCE"] {
        assert!(header.contains(column), "{table}");
    }
    let row = |kind: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(kind))
            .unwrap_or_else(|| panic!("no {kind} in:\n{table}"))
            .to_string()
    };
    // The host's Python 3.11 (Debian 12's), installed.
    let python = row("python:3.11");
    assert!(
        python.contains("installed") && python.ends_with("host"),
        "{table}"
    );
    // Trixie's PHP 8.4 and Go 1.24: not on this host, built on demand.
    for kind in ["php:8.4", "golang:1.24", "python:3.13"] {
        let line = row(kind);
        assert!(line.contains("image trixie"), "{table}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&server.cli_ok(&["runtime:list", "--format", "json"])).expect("json");
    let runtimes = json.as_array().expect("a list");
    assert!(
        runtimes.iter().any(|r| r["type"] == "python:3.9"
            && r["source"] == "image"
            && r["release"] == "bullseye"),
        "{json}"
    );
    assert!(
        runtimes
            .iter()
            .all(|r| r["status"] == "installed" || r["status"] == "installable"),
        "{json}"
    );
    assert!(
        runtimes.iter().any(|r| r["status"] == "installable"),
        "a clean machine has images to build: {json}"
    );
}

#[test]
fn a_php_8_3_app_runs_on_php_fpm_8_4_of_the_trixie_image_behind_nginx() {
    let server = server();
    let work = empty_work();
    work.write(
        "public/index.php",
        "<?php\nheader('Content-Type: application/json');\n\
         echo json_encode(['php' => PHP_VERSION, 'sapi' => PHP_SAPI,\n  \
         'uri' => $_SERVER['REQUEST_URI'], 'mbstring' => extension_loaded('mbstring')]);\n",
    );
    work.write("public/robots.txt", "User-agent: *\n");
    let app_yaml = |extensions: &str| {
        format!(
            "name: site\ntype: php:8.3\nbuild:\n  flavor: none\n\
             runtime:\n  extensions: [{extensions}]\n\
             hooks:\n  build: php --version\n\
             web:\n  locations:\n    \"/\":\n      root: public\n      passthru: /index.php\n      \
             allow: true\n      scripts: true\n"
        )
    };
    // The image's PHP is asked for its extensions: one it lacks fails the deploy,
    // named with the Debian package that adds it.
    work.write(".platform.app.yaml", &app_yaml("redis, mbstring, imagick"));
    work.commit("php 8.3 with imagick");
    let (ok, out) = work.push(&server.git_url("shop"), &["main"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(
            "runtime.extensions not available in the runtime image's PHP 8.4: \
             `imagick` (Debian package php8.4-imagick)"
        ),
        "{out}"
    );
    work.write(".platform.app.yaml", &app_yaml("redis, mbstring"));
    work.commit("php 8.3");
    let (ok, out) = work.push(&server.git_url("shop"), &["main"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(
            "W: app `site`: php:8.3 is not available: php:8.4 from image php-8.4-trixie \
             (Debian trixie) runs instead"
        ),
        "{out}"
    );
    assert!(out.contains("    PHP 8.4."), "the build ran PHP 8.4: {out}");
    let url = primary_url(&server, "main");
    let served = curl_json(&format!("{url}some/page"));
    assert!(
        served["php"]
            .as_str()
            .is_some_and(|v| v.starts_with("8.4.")),
        "{served}"
    );
    assert_eq!(served["sapi"], "fpm-fcgi", "{served}");
    assert_eq!(served["uri"], "/some/page", "{served}");
    assert_eq!(served["mbstring"], true, "{served}");
    // nginx (the image's) serves the static file itself.
    let (status, body) = crate::support::curl(&format!("{url}robots.txt"));
    assert_eq!((status, body.as_str()), (200, "User-agent: *\n"));
}

/// A Go module app (standard library only: this test must not depend on reaching
/// the Go module proxy).
#[test]
fn a_go_app_asking_for_1_22_builds_and_runs_on_go_1_24_of_the_trixie_image() {
    let server = server();
    let work = empty_work();
    work.write("go.mod", "module example.com/hello\n\ngo 1.22\n");
    work.write(
        "main.go",
        "package main\n\nimport (\n\t\"fmt\"\n\t\"net/http\"\n\t\"os\"\n\t\"runtime\"\n)\n\n\
         func main() {\n\thttp.HandleFunc(\"/\", func(w http.ResponseWriter, r *http.Request) {\n\t\t\
         fmt.Fprintf(w, \"{\\\"go\\\": %q, \\\"path\\\": %q}\", runtime.Version(), r.URL.Path)\n\t})\n\t\
         http.ListenAndServe(\"127.0.0.1:\"+os.Getenv(\"PORT\"), nil)\n}\n",
    );
    work.write(
        ".platform.app.yaml",
        "name: hello\ntype: golang:1.22\n\
         hooks:\n  build: |\n    set -e\n    go version\n    go build -o bin/hello .\n\
         web:\n  commands:\n    start: ./bin/hello\n",
    );
    work.commit("a go app");
    let (ok, out) = work.push(&server.git_url("shop"), &["main"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(
            "W: app `hello`: golang:1.22 is not available: golang:1.24 from image \
             golang-1.24-trixie (Debian trixie) runs instead"
        ),
        "{out}"
    );
    let url = primary_url(&server, "main");
    let served = curl_json(&format!("{url}hi"));
    assert!(
        served["go"]
            .as_str()
            .is_some_and(|v| v.starts_with("go1.24")),
        "{served}"
    );
    assert_eq!(served["path"], "/hi", "{served}");
}
