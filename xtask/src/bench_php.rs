//! `cargo xtask bench php`: requests per second for a small PHP page through the whole
//! Grove stack (router → nginx → PHP-FPM in the app's sandbox) against nginx and
//! PHP-FPM configured by hand on the same machine with the same worker counts (one
//! nginx worker, a dynamic pool of at most 4 PHP children), loaded by `wrk`.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use super::{
    BenchServer, Guard, free_port, git, host_and_port, median, spawn_nginx, wait_for_200,
    wait_for_port,
};

const PAGE: &str =
    "<?php\nheader('Content-Type: text/plain');\necho 'hello from PHP ', PHP_VERSION, \"\\n\";\n";
/// Rounds per side, alternated so that drift of the machine hits both alike.
const ROUNDS: usize = 3;
const CONNECTIONS: &str = "16";
const SECONDS: &str = "5s";

/// The app, with a `size:` line or none.
fn app_yaml(size: &str) -> String {
    format!(
        "name: app\ntype: php:8.2\n{size}build:\n  flavor: none\nweb:\n  locations:\n    \"/\":\n      \
         root: public\n      passthru: /index.php\n      index: [index.php]\n"
    )
}

pub fn bench_php() -> anyhow::Result<()> {
    if Command::new("wrk").arg("--version").output().is_err() {
        bail!("wrk is not installed: apt-get install wrk");
    }
    let tmp = std::env::temp_dir().join(format!("grove-bench-php-{}", std::process::id()));
    let mut server = BenchServer::start(tmp.clone(), &[])?;
    let result = (|| -> anyhow::Result<()> {
        let work = tmp.join("work");
        std::fs::create_dir_all(work.join("public"))?;
        std::fs::write(work.join("public/index.php"), PAGE)?;
        let by_hand = tmp.join("by-hand");
        let (_fpm, _nginx, hand_port) = start_by_hand(&by_hand, &work.join("public"))?;
        let hand_target = (format!("http://127.0.0.1:{hand_port}/"), None);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

        // First as the plan sizes it (production's CPU share for one app), then with
        // `size: XL`, whose CPU share is at least this machine's: the same CPU as the
        // stack by hand.
        let mut lines = Vec::new();
        for (size, what) in [
            ("", "the plan's CPU share (size auto)"),
            ("size: XL\n", "size XL (not CPU-capped here)"),
        ] {
            std::fs::write(work.join(".platform.app.yaml"), app_yaml(size))?;
            if !work.join(".git").exists() {
                git(&work, &["init", "-q", "-b", "main"])?;
            }
            git(&work, &["add", "-A"])?;
            git(&work, &["commit", "-q", "-m", what])?;
            git(&work, &["push", "-q", &server.git_url(), "main"])?;
            let url = server.url("main")?;
            wait_for_200(&url)?;
            let (host, port) = host_and_port(&url)?;
            let grove_target = (format!("http://127.0.0.1:{port}/"), Some(host));

            let (mut grove, mut hand) = (Vec::new(), Vec::new());
            // A warm-up of each side first (PHP's opcache, FPM children, connections).
            wrk(&grove_target, "2s")?;
            wrk(&hand_target, "2s")?;
            for _ in 0..ROUNDS {
                hand.push(wrk(&hand_target, SECONDS)?);
                grove.push(wrk(&grove_target, SECONDS)?);
            }
            let (grove, hand) = (median(&mut grove), median(&mut hand));
            lines.push(format!(
                "  {what}:\n    nginx + php-fpm by hand:          {hand:>9.0} requests/s\n    \
                 through Grove (router+nginx+fpm): {grove:>9.0} requests/s\n    \
                 ratio (Grove / by hand): {:.3}",
                grove / hand
            ));
        }
        println!(
            "bench php: a small PHP page, {CONNECTIONS} connections, {ROUNDS} rounds of {SECONDS} \
             (median), {cores} cores; goal: ratio >= 0.9 at the same CPU"
        );
        for line in lines {
            println!("{line}");
        }
        Ok(())
    })();
    server.stop();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// nginx and PHP-FPM as an operator would configure them by hand for `root`.
fn start_by_hand(dir: &Path, root: &Path) -> anyhow::Result<(Guard, Guard, u16)> {
    std::fs::create_dir_all(dir)?;
    let d = dir.display();
    let socket = format!("{d}/fpm.sock");
    std::fs::write(
        dir.join("php-fpm.conf"),
        format!(
            "[global]\npid = {d}/fpm.pid\nerror_log = {d}/fpm.log\ndaemonize = no\n\n\
             [www]\nlisten = {socket}\nlisten.mode = 0666\npm = dynamic\npm.max_children = 4\n\
             pm.start_servers = 1\npm.min_spare_servers = 1\npm.max_spare_servers = 3\n"
        ),
    )?;
    let port = free_port()?;
    std::fs::write(
        dir.join("nginx.conf"),
        format!(
            "daemon off;\nmaster_process on;\nworker_processes 1;\nuser root;\npid {d}/nginx.pid;\n\
             error_log {d}/nginx.log;\nevents {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  fastcgi_temp_path {d}/fastcgi;\n  \
             proxy_temp_path {d}/proxy;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
             server {{\n    listen 127.0.0.1:{port};\n    root {root};\n    index index.php;\n    \
             location / {{ try_files $uri /index.php$is_args$args; }}\n    \
             location ~ \\.php$ {{\n      include /etc/nginx/fastcgi_params;\n      \
             fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;\n      \
             fastcgi_pass unix:{socket};\n    }}\n  }}\n}}\n",
            root = root.display()
        ),
    )?;
    let fpm = Guard(
        Command::new("/usr/sbin/php-fpm8.2")
            .args(["--nodaemonize", "--allow-to-run-as-root", "--fpm-config"])
            .arg(dir.join("php-fpm.conf"))
            .stderr(Stdio::null())
            .spawn()
            .context("php-fpm8.2")?,
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !Path::new(&socket).exists() {
        if std::time::Instant::now() > deadline {
            bail!("php-fpm did not create {socket}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let nginx = spawn_nginx(dir)?;
    wait_for_port(port)?;
    Ok((fpm, nginx, port))
}

/// One `wrk` run; its requests per second (every response must be a 2xx).
fn wrk((url, host): &(String, Option<String>), duration: &str) -> anyhow::Result<f64> {
    let mut command = Command::new("wrk");
    command.args(["-t", "2", "-c", CONNECTIONS, "-d", duration]);
    if let Some(host) = host {
        command.args(["-H", &format!("Host: {host}")]);
    }
    let out = command.arg(url).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("Non-2xx") {
        bail!("wrk saw errors from {url}:\n{text}");
    }
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output:\n{text}"))
}
