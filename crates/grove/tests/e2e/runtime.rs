//! The runtime as on Platform.sh: what an app's processes see.

use crate::support::curl_json;
use crate::{primary_url, started_project};

#[test]
fn an_environment_file_is_sourced_for_start_commands_and_hooks_but_not_builds() {
    let (server, work, url) = started_project();
    let config = std::fs::read_to_string(work.path().join(".platform.app.yaml"))
        .expect("app config")
        .replace(
            "hooks:\n  build: |\n    set -e\n",
            "hooks:\n  deploy: |\n    echo \"deploy sees greeting: $GREETING, derived: $DERIVED\"\n  \
             build: |\n    set -e\n    echo \"build sees greeting: $GREETING\"\n",
        );
    work.write(".platform.app.yaml", &config);
    // Bash syntax, as Platform.sh sources it with bash; it sees the runtime variables.
    work.write(
        ".environment",
        "if [[ -n \"$PLATFORM_BRANCH\" ]]; then\n  export GREETING=\"sourced on $PLATFORM_BRANCH\"\nfi\nexport DERIVED=\"${GREETING} (derived)\"\n",
    );
    work.commit("an .environment file");
    let (ok, out) = work.push(&url, &["main"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("build sees greeting: hello from grove"),
        "the build does not source it: {out}"
    );
    assert!(
        out.contains("deploy sees greeting: sourced on main, derived: sourced on main (derived)"),
        "the deploy hook does: {out}"
    );
    let served = curl_json(&primary_url(&server, "main"));
    assert_eq!(
        served["variables"]["GREETING"], "sourced on main",
        "the start command does: {served}"
    );
}

#[test]
fn pip_installs_in_the_build_hook_as_on_platform_sh() {
    let server = crate::support::Server::start();
    server.cli_ok(&["project:create", "shop"]);
    let work = crate::support::Work::example();
    // A Flask-style build: `pip install -r requirements.txt` into the system Python
    // (the app's own /usr/local here), `python` and `pip` as commands.
    work.write("requirements.txt", "pyjokes==0.6.0\n");
    work.write(
        ".platform.app.yaml",
        "name: app\ntype: python:3.11\nhooks:\n  build: |\n    set -e\n    \
         python --version\n    pip --version\n    pip install -r requirements.txt\n    \
         echo \"build ran for tree $PLATFORM_TREE_ID\" > build-info.txt\n\
         mounts:\n  var: {source: local, source_path: var}\n\
         web:\n  commands:\n    \
         start: python -c 'import pyjokes, runpy; print(\"pyjokes\", pyjokes.__version__); runpy.run_path(\"server.py\", run_name=\"__main__\")'\n",
    );
    work.commit("pip");
    let (ok, out) = work.push(&server.git_url("shop"), &["main"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("Successfully installed pyjokes-0.6.0"),
        "{out}"
    );
    // It serves: the start command imported what the build installed.
    let served = curl_json(&primary_url(&server, "main"));
    assert_eq!(served["app_dir"], "Read-only file system", "{served}");
    let log = std::fs::read_to_string(server.data_dir().join("logs/shop/main/app.log"))
        .unwrap_or_default();
    assert!(log.contains("pyjokes 0.6.0"), "the app imported it: {log}");
}

#[test]
fn dependencies_and_the_default_flavor_build_a_node_app_unchanged() {
    let server = crate::support::Server::start();
    server.cli_ok(&["project:create", "shop"]);
    let work = crate::support::Work::example();
    std::fs::remove_file(work.path().join("server.py")).expect("no python here");
    // An Express-style app: `npm install` by the default flavor, a global tool from
    // `dependencies` on PATH at build time.
    work.write(
        "package.json",
        "{\"name\": \"shop\", \"version\": \"1.0.0\", \"private\": true,\n \"dependencies\": {\"ms\": \"2.1.3\"}}\n",
    );
    work.write(
        "server.js",
        "const http = require('http');\nconst ms = require('ms');\n\
         http.createServer((req, res) => {\n  \
         res.setHeader('Content-Type', 'application/json');\n  \
         res.end(JSON.stringify({ms: ms('2 days'), tree: process.env.PLATFORM_TREE_ID}));\n\
         }).listen(process.env.PORT, '127.0.0.1');\n",
    );
    work.write(
        ".platform.app.yaml",
        "name: app\ntype: nodejs:20\n\
         dependencies:\n  nodejs:\n    semver: '7.5.4'\n\
         hooks:\n  build: |\n    set -e\n    semver 1.2.3\n    test -d node_modules/ms\n\
         web:\n  commands:\n    start: node server.js\n",
    );
    work.commit("node app");
    let (ok, out) = work.push(&server.git_url("shop"), &["main"]);
    assert!(ok, "{out}");
    assert!(out.contains("Installing the nodejs dependencies"), "{out}");
    assert!(out.contains("Running the `default` build flavor"), "{out}");
    let served = curl_json(&primary_url(&server, "main"));
    assert_eq!(served["ms"], 172_800_000, "{served}");
}

#[test]
fn an_app_on_a_unix_socket_is_served() {
    let server = crate::support::Server::start();
    server.cli_ok(&["project:create", "shop"]);
    let work = crate::support::Work::example();
    // A gunicorn-style app: `socket_family: unix`, listening on `$SOCKET`.
    work.write(
        "app.py",
        "import json, os, socketserver\nfrom http.server import BaseHTTPRequestHandler\n\n\
         class Handler(BaseHTTPRequestHandler):\n    \
         def do_GET(self):\n        \
         body = json.dumps({'socket': os.environ['SOCKET'], 'path': self.path}).encode()\n        \
         self.send_response(200)\n        \
         self.send_header('Content-Type', 'application/json')\n        \
         self.send_header('Content-Length', str(len(body)))\n        \
         self.end_headers()\n        \
         self.wfile.write(body)\n\n    \
         def log_message(self, *args):\n        \
         pass\n\n\
         class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):\n    \
         pass\n\n\
         Server(os.environ['SOCKET'], Handler).serve_forever()\n",
    );
    work.write(
        ".platform.app.yaml",
        "name: app\ntype: python:3.11\nweb:\n  upstream:\n    socket_family: unix\n  \
         commands:\n    start: python3 app.py\n",
    );
    work.commit("unix socket");
    let (ok, out) = work.push(&server.git_url("shop"), &["main"]);
    assert!(ok, "{out}");
    let url = primary_url(&server, "main");
    let served = curl_json(&format!("{url}hello?x=1"));
    assert_eq!(served["path"], "/hello?x=1", "{served}");
    assert!(
        served["socket"]
            .as_str()
            .is_some_and(|s| s.ends_with(".sock")),
        "{served}"
    );
    // A redeploy moves it to a new socket without a gap.
    server.cli_ok(&["environment:redeploy", "-p", "shop", "-e", "main"]);
    assert_eq!(curl_json(&url)["path"], "/");
}

/// Pushes a fixture app unchanged to a new server and returns what it answers.
fn deploy_fixture(name: &str) -> (String, serde_json::Value) {
    let server = crate::support::Server::start();
    server.cli_ok(&["project:create", "shop"]);
    let work = crate::support::Work::fixture(name);
    let (ok, out) = work.push(&server.git_url("shop"), &["main"]);
    assert!(ok, "{out}");
    let served = curl_json(&primary_url(&server, "main"));
    (out, served)
}

#[test]
fn a_pipenv_app_deploys_unchanged() {
    let (out, served) = deploy_fixture("pipenv-app");
    assert!(out.contains("Installing the python3 dependencies"), "{out}");
    assert_eq!(served["pyjokes"], "0.6.0", "{served}");
    // `pipenv run` runs the virtualenv the build made inside the app (HOME=/app).
    assert!(
        served["prefix"]
            .as_str()
            .is_some_and(|p| p.starts_with("/app/.local/share/virtualenvs/")),
        "{served}"
    );
}

#[test]
fn a_poetry_app_deploys_unchanged() {
    let (out, served) = deploy_fixture("poetry-app");
    assert!(out.contains("Installing the python3 dependencies"), "{out}");
    assert_eq!(served["pyjokes"], "0.6.0", "{served}");
    assert_eq!(served["prefix"], "/app/.venv", "{served}");
}

#[test]
fn a_yarn_app_builds_and_starts_with_yarn_from_dependencies() {
    let server = crate::support::Server::start();
    server.cli_ok(&["project:create", "shop"]);
    let work = crate::support::Work::example();
    std::fs::remove_file(work.path().join("server.py")).expect("no python here");
    // A Next.js-style app: yarn from `dependencies`, `flavor: none`, a build script
    // that renders pages at build time, `yarn start` at runtime.
    work.write(
        "package.json",
        "{\"name\": \"pages\", \"version\": \"1.0.0\", \"private\": true,\n \
         \"scripts\": {\"build\": \"node build.js\", \"start\": \"node server.js\"},\n \
         \"dependencies\": {\"ms\": \"2.1.3\"}}\n",
    );
    work.write(
        "build.js",
        "const fs = require('fs');\nconst ms = require('ms');\n\
         fs.mkdirSync('out', {recursive: true});\n\
         fs.writeFileSync('out/index.json', JSON.stringify({rendered: ms(60000), at: 'build'}));\n",
    );
    work.write(
        "server.js",
        "const fs = require('fs');\nconst http = require('http');\n\
         const page = fs.readFileSync('out/index.json');\n\
         http.createServer((req, res) => {\n  \
         res.setHeader('Content-Type', 'application/json');\n  res.end(page);\n\
         }).listen(process.env.PORT, '127.0.0.1');\n",
    );
    work.write(
        ".platform.app.yaml",
        "name: app\ntype: nodejs:20\nbuild:\n  flavor: none\n\
         dependencies:\n  nodejs:\n    yarn: '^1.22.0'\n\
         hooks:\n  build: |\n    set -e\n    yarn\n    yarn build\n\
         web:\n  commands:\n    start: yarn start\n",
    );
    work.commit("yarn app");
    let (ok, out) = work.push(&server.git_url("shop"), &["main"]);
    assert!(ok, "{out}");
    assert!(out.contains("Installing the nodejs dependencies"), "{out}");
    assert!(!out.contains("Running the `default` build flavor"), "{out}");
    let served = curl_json(&primary_url(&server, "main"));
    assert_eq!(served["rendered"], "1m", "{served}");
}

#[test]
fn workers_run_the_apps_build_with_their_own_command_and_are_restarted() {
    let (server, work, url) = crate::started_project();
    // A queue-consumer-style worker: the app's build, mounts and variables, its own
    // command and variables; each start leaves a file in the shared `var` mount.
    let config = std::fs::read_to_string(work.path().join(".platform.app.yaml"))
        .expect("app config")
        + "workers:\n  queue:\n    commands:\n      start: |\n        \
           n=$(ls var | grep -c '^worker-')\n        \
           touch \"var/worker-$n-$ROLE-$GREETING\"\n        \
           exec sleep 1000\n    variables:\n      env:\n        ROLE: consumer\n";
    work.write(".platform.app.yaml", &config);
    work.commit("a worker");
    let (ok, out) = work.push(&url, &["main"]);
    assert!(ok, "{out}");
    assert!(out.contains("Started worker `app--queue`"), "{out}");
    let app_url = crate::primary_url(&server, "main");
    let files = |url: &str| -> Vec<String> {
        curl_json(url)["mount_files"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f.as_str().map(str::to_string))
                    .filter(|f| f.starts_with("worker-"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let wait_for = |n: usize| -> Vec<String> {
        for _ in 0..300 {
            let now = files(&app_url);
            if now.len() >= n {
                return now;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        files(&app_url)
    };
    let first = wait_for(1);
    assert_eq!(first, ["worker-0-consumer-hello from grove"], "{first:?}");
    let sleeps = crate::server_processes(&server, "sleep");
    assert_eq!(sleeps.len(), 1, "one worker process: {sleeps:?}");

    // Killed, it is restarted by the supervisor.
    std::process::Command::new("kill")
        .args(["-9", &sleeps[0].to_string()])
        .status()
        .expect("kill");
    assert_eq!(wait_for(2).len(), 2);
    let restarted = crate::server_processes(&server, "sleep");

    // A redeploy replaces it: one worker process again, started anew.
    server.cli_ok(&["environment:redeploy", "-p", "shop", "-e", "main"]);
    assert_eq!(wait_for(3).len(), 3);
    let mut after = Vec::new();
    for _ in 0..100 {
        after = crate::server_processes(&server, "sleep");
        if after.len() == 1 && after != restarted {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(after.len(), 1, "the previous worker stopped: {after:?}");
    assert_ne!(after, restarted, "a new worker process");
}

#[test]
fn a_django_style_app_on_gunicorn_over_its_socket_deploys_unchanged() {
    let server = crate::support::Server::start();
    server.cli_ok(&["project:create", "shop"]);
    let work = crate::support::Work::fixture("django-app");
    let (ok, out) = work.push(&server.git_url("shop"), &["main"]);
    assert!(ok, "{out}");
    for said in [
        "W: app `app`: python:3.10 is not available",
        "Collected static files into static/",
        "Applied migrations",
    ] {
        assert!(out.contains(said), "`{said}` missing from:\n{out}");
    }
    let url = primary_url(&server, "main");
    let served = curl_json(&format!("{url}shop/"));
    assert_eq!(served["path"], "/shop/", "{served}");
    assert_eq!(served["visits"], 1, "{served}");
    // `.environment` was sourced for gunicorn: the settings and the database URL.
    assert_eq!(served["settings"], "myapp.settings", "{served}");
    assert!(
        served["server"]
            .as_str()
            .is_some_and(|s| s.starts_with("gunicorn")),
        "{served}"
    );
    assert!(
        served["socket"]
            .as_str()
            .is_some_and(|s| s.ends_with(".sock")),
        "{served}"
    );
    // `collectstatic`'s output is served by the web server, not by gunicorn.
    let (status, body) = crate::support::curl(&format!("{url}static/site.css"));
    assert_eq!(
        (status, body.as_str()),
        (200, "body { font-family: sans-serif; }\n")
    );
    assert_eq!(
        crate::support::curl(&format!("{url}static/missing.css")).0,
        404
    );
    assert_eq!(curl_json(&url)["visits"], 2);
}
