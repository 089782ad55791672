//! `cargo xtask bench router`: Grove's router against nginx (the Debian package) as a
//! plain reverse proxy and as a caching one, in one run, in front of the same upstream
//! program: an nginx answering a small cacheable response. In Grove the upstream is the
//! app of an environment (in its sandbox and network namespace); for nginx by hand an
//! identical copy listens on the host's loopback. `wrk -c 64` loads each in turn;
//! rounds alternate so that drift of the machine hits both alike. Both write an access
//! line per request (nginx its `combined` log, Grove the environment's access log).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

use super::{
    BenchServer, Guard, free_port, git, host_and_port, median, spawn_nginx, wait_for_200,
    wait_for_port,
};

const ROUNDS: usize = 3;
const CONNECTIONS: &str = "64";
const SECONDS: &str = "10s";

/// The upstream's configuration; `PORT` and `DIR` are filled in where it runs.
const UPSTREAM_CONF: &str = "daemon off;\nmaster_process on;\nworker_processes 1;\nuser root;\n\
    pid DIR/up.pid;\nerror_log stderr;\nevents { worker_connections 4096; }\n\
    http {\n  access_log off;\n  client_body_temp_path DIR/b;\n  proxy_temp_path DIR/p;\n  \
    fastcgi_temp_path DIR/f;\n  uwsgi_temp_path DIR/u;\n  scgi_temp_path DIR/s;\n  \
    keepalive_requests 1000000;\n  server {\n    listen 127.0.0.1:PORT;\n    location / {\n      \
    add_header Cache-Control \"public, max-age=3600\";\n      \
    return 200 \"hello from the upstream\\n\";\n    }\n  }\n}\n";

/// One wrk run: requests per second and the 99th percentile latency in ms.
struct Load {
    rps: f64,
    p99_ms: f64,
}

pub fn bench_router() -> anyhow::Result<()> {
    if Command::new("wrk").arg("--version").output().is_err() {
        bail!("wrk is not installed: apt-get install wrk");
    }
    let tmp = std::env::temp_dir().join(format!("grove-bench-router-{}", std::process::id()));
    let mut server = BenchServer::start(tmp.clone(), &[])?;
    let result = (|| -> anyhow::Result<()> {
        let work = tmp.join("work");
        std::fs::create_dir_all(work.join(".platform"))?;
        std::fs::write(work.join("upstream.conf.in"), UPSTREAM_CONF)?;
        std::fs::write(
            work.join(".platform.app.yaml"),
            "name: app\ntype: python:3.11\nsize: XL\nbuild:\n  flavor: none\nweb:\n  commands:\n    \
             start: |\n      mkdir -p /tmp/up\n      \
             sed -e \"s/PORT/$PORT/g\" -e \"s|DIR|/tmp/up|g\" upstream.conf.in > /tmp/up/nginx.conf\n      \
             exec /usr/sbin/nginx -e stderr -p /tmp/up -c /tmp/up/nginx.conf\n",
        )?;
        // The same app twice: plainly proxied, and cached by the router.
        std::fs::write(
            work.join(".platform/routes.yaml"),
            "\"http://{default}/\":\n  type: upstream\n  upstream: \"app:http\"\n  cache:\n    enabled: false\n\
             \"http://cached.{default}/\":\n  type: upstream\n  upstream: \"app:http\"\n  cache:\n    enabled: true\n",
        )?;
        git(&work, &["init", "-q", "-b", "main"])?;
        git(&work, &["add", "-A"])?;
        git(&work, &["commit", "-q", "-m", "an nginx upstream"])?;
        git(&work, &["push", "-q", &server.git_url(), "main"])?;
        let url = server.url("main")?;
        wait_for_200(&url)?;
        let (host, port) = host_and_port(&url)?;
        let grove = format!("http://127.0.0.1:{port}/");
        let cached_host = format!("cached.{host}");

        let by_hand = tmp.join("by-hand");
        let (_upstream, _nginx, plain_port, cache_port, nginx_pid) = start_by_hand(&by_hand)?;
        let plain = format!("http://127.0.0.1:{plain_port}/");
        let caching = format!("http://127.0.0.1:{cache_port}/");

        let grove_caches =
            header_of(&grove, Some(&cached_host), "x-platform-cache")?.as_deref() == Some("HIT");
        let nginx_caches = header_of(&caching, None, "x-cache")?.as_deref() == Some("HIT");

        // Warm-up: connections, and the caches filled.
        wrk(&grove, Some(&host), "2s")?;
        wrk(&plain, None, "2s")?;
        wrk(&grove, Some(&cached_host), "2s")?;
        wrk(&caching, None, "2s")?;
        let mut runs: [Vec<Load>; 4] = Default::default();
        for _ in 0..ROUNDS {
            runs[0].push(wrk(&plain, None, SECONDS)?);
            runs[1].push(wrk(&grove, Some(&host), SECONDS)?);
            runs[2].push(wrk(&caching, None, SECONDS)?);
            runs[3].push(wrk(&grove, Some(&cached_host), SECONDS)?);
        }
        let summary = |loads: &mut Vec<Load>| -> (f64, f64) {
            let mut rps: Vec<f64> = loads.iter().map(|l| l.rps).collect();
            let mut p99: Vec<f64> = loads.iter().map(|l| l.p99_ms).collect();
            (median(&mut rps), median(&mut p99))
        };
        let [hand, grove_plain, hand_cache, grove_cache] = &mut runs;
        let (hand_rps, hand_p99) = summary(hand);
        let (grove_rps, grove_p99) = summary(grove_plain);
        let (hand_cache_rps, hand_cache_p99) = summary(hand_cache);
        let (grove_cache_rps, grove_cache_p99) = summary(grove_cache);
        let grove_rss = rss_kib(&[server.pid()]);
        let nginx_rss = rss_kib(&process_tree(nginx_pid));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        println!(
            "bench router: {CONNECTIONS} connections, {ROUNDS} rounds of {SECONDS} (median), \
             {cores} cores, the same upstream program (nginx returning 24 bytes)"
        );
        println!("  plain reverse proxy:");
        println!("    nginx:  {hand_rps:>9.0} requests/s   p99 {hand_p99:>6.2} ms");
        println!("    grove:  {grove_rps:>9.0} requests/s   p99 {grove_p99:>6.2} ms");
        println!(
            "    ratio (grove / nginx): {:.3} requests/s, {:.3} p99 (target >= 1.0 requests/s)",
            grove_rps / hand_rps,
            grove_p99 / hand_p99
        );
        println!("  cache hits (nginx proxy_cache; grove route cache):");
        println!(
            "    nginx:  {hand_cache_rps:>9.0} requests/s   p99 {hand_cache_p99:>6.2} ms{}",
            if nginx_caches {
                ""
            } else {
                "   (no HIT seen!)"
            }
        );
        if grove_caches {
            println!(
                "    grove:  {grove_cache_rps:>9.0} requests/s   p99 {grove_cache_p99:>6.2} ms"
            );
            println!(
                "    ratio (grove / nginx): {:.3} requests/s (target >= 1.0)",
                grove_cache_rps / hand_cache_rps
            );
        } else {
            println!(
                "    grove:  no X-Platform-Cache: HIT from the cached route: the router does not \
                 cache ({grove_cache_rps:.0} requests/s proxied)"
            );
        }
        println!(
            "  memory after the runs: grove server {} MiB RSS (router, API and all); nginx proxy \
             {} MiB RSS (master and workers)",
            grove_rss / 1024,
            nginx_rss / 1024
        );
        Ok(())
    })();
    server.stop();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

type ByHand = (Guard, Guard, u16, u16, u32);

/// The upstream copy on the host, and nginx as a plain and as a caching reverse proxy
/// in front of it (two ports of one nginx, one worker per core).
fn start_by_hand(dir: &Path) -> anyhow::Result<ByHand> {
    let d = dir.display().to_string();
    std::fs::create_dir_all(dir.join("up"))?;
    let up_port = free_port()?;
    std::fs::write(
        dir.join("up/nginx.conf"),
        UPSTREAM_CONF
            .replace("PORT", &up_port.to_string())
            .replace("DIR", &format!("{d}/up")),
    )?;
    let upstream = spawn_nginx(&dir.join("up"))?;
    wait_for_port(up_port)?;
    let (plain, cache) = (free_port()?, free_port()?);
    let proxy = "proxy_pass http://app;\n      proxy_http_version 1.1;\n      \
                 proxy_set_header Connection \"\";\n      proxy_set_header Host $host;";
    std::fs::write(
        dir.join("nginx.conf"),
        format!(
            "daemon off;\nmaster_process on;\nworker_processes auto;\nuser root;\npid {d}/nginx.pid;\n\
             error_log {d}/nginx.log;\nevents {{ worker_connections 4096; }}\n\
             http {{\n  access_log {d}/access.log combined;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
             keepalive_requests 1000000;\n  \
             proxy_cache_path {d}/cache levels=1:2 keys_zone=grove_bench:10m max_size=100m;\n  \
             upstream app {{\n    server 127.0.0.1:{up_port};\n    keepalive 64;\n  }}\n  \
             server {{\n    listen 127.0.0.1:{plain};\n    location / {{\n      {proxy}\n    }}\n  }}\n  \
             server {{\n    listen 127.0.0.1:{cache};\n    location / {{\n      {proxy}\n      \
             proxy_cache grove_bench;\n      add_header X-Cache $upstream_cache_status;\n    }}\n  }}\n}}\n"
        ),
    )?;
    let nginx = spawn_nginx(dir)?;
    wait_for_port(plain)?;
    wait_for_port(cache)?;
    let pid = nginx.0.id();
    Ok((upstream, nginx, plain, cache, pid))
}

/// A response header of one GET (after a first GET, so that a cache holds it).
fn header_of(url: &str, host: Option<&str>, name: &str) -> anyhow::Result<Option<String>> {
    let mut value = None;
    for _ in 0..2 {
        let mut command = Command::new("curl");
        command.args(["-s", "-o", "/dev/null", "-D", "-", url]);
        if let Some(host) = host {
            command.args(["-H", &format!("Host: {host}")]);
        }
        let out = command.output()?;
        value = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|line| {
                let (n, v) = line.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            });
    }
    Ok(value)
}

/// One `wrk` run (every response must be a 2xx).
fn wrk(url: &str, host: Option<&str>, duration: &str) -> anyhow::Result<Load> {
    let mut command = Command::new("wrk");
    command.args(["-t", "2", "-c", CONNECTIONS, "-d", duration, "--latency"]);
    if let Some(host) = host {
        command.args(["-H", &format!("Host: {host}")]);
    }
    let out = command.arg(url).output().context("wrk")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        bail!("wrk saw errors from {url}:\n{text}");
    }
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output:\n{text}"))?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .and_then(|v| parse_ms(v.trim()))
        .with_context(|| format!("no 99% latency in wrk's output:\n{text}"))?;
    Ok(Load { rps, p99_ms: p99 })
}

/// wrk's `3.70ms`, `812.00us`, `1.02s`.
fn parse_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        _ => return None,
    })
}

/// A process and its descendants.
fn process_tree(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", all[i]))
            .unwrap_or_default();
        all.extend(
            children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
        i += 1;
    }
    all
}

/// The summed resident memory of processes, in KiB.
fn rss_kib(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::parse_ms;

    #[test]
    fn wrk_latencies() {
        assert_eq!(parse_ms("3.70ms"), Some(3.7));
        assert_eq!(parse_ms("812.00us"), Some(0.812));
        assert_eq!(parse_ms("1.02s"), Some(1020.0));
        assert_eq!(parse_ms("12"), None);
    }
}
