//! Starting services in temp dirs, and talking to them with the servers' own
//! clients.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use grove_services::{MemoryProfile, RunningService, Secrets, ServiceCatalog, ServiceSpec, start};
use serde_json::Value;

pub fn catalog() -> &'static ServiceCatalog {
    static CATALOG: OnceLock<ServiceCatalog> = OnceLock::new();
    CATALOG.get_or_init(|| ServiceCatalog::probe(Default::default()))
}

/// A service whose directories live in a temp dir that goes away with it.
pub struct TestService {
    pub running: Option<RunningService>,
    pub spec: ServiceSpec,
    pub dir: tempfile::TempDir,
}

impl TestService {
    pub fn svc(&self) -> &RunningService {
        self.running.as_ref().expect("service is running")
    }

    pub fn password(&self, endpoint: &str) -> String {
        self.svc()
            .secrets()
            .password(endpoint)
            .expect("endpoint has a password")
            .to_owned()
    }

    /// Stops the server cleanly and starts it again with `configuration`, on
    /// the same data and secrets.
    pub async fn restart_with(&mut self, configuration: Value) {
        if let Some(running) = self.running.take() {
            running.stop().await;
            self.spec.secrets = running.secrets().clone();
        }
        self.spec.configuration = configuration;
        let running = start(self.spec.clone())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        self.running = Some(running);
    }

    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }

    /// kill -9 of the server process (found below the sandbox's pid), then
    /// waits until it was restarted and is healthy again.
    pub async fn kill_server_and_wait_healthy(&self) -> Duration {
        let svc = self.svc();
        let server = svc.server_pid().expect("server process");
        let restarts = svc.restarts();
        let status = std::process::Command::new("kill")
            .args(["-9", &server.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let killed = Instant::now();
        loop {
            // A bound on a hang, not a measure of speed: RabbitMQ's restart alone takes
            // several seconds on a busy 2-core machine.
            assert!(
                killed.elapsed() < Duration::from_secs(30),
                "not healthy again within 30 s; log:\n{}",
                svc.log_tail().join("\n")
            );
            if svc.restarts() > restarts && svc.health().await.is_ok() {
                return killed.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub fn spec_in(
    dir: &Path,
    name: &str,
    type_: &str,
    configuration: Value,
    address: Ipv4Addr,
) -> ServiceSpec {
    let resolved = catalog()
        .resolve(name, type_)
        .unwrap_or_else(|e| panic!("{e}"));
    ServiceSpec {
        name: name.to_owned(),
        resolved,
        configuration,
        data_dir: dir.join("data"),
        run_dir: dir.join("run"),
        log_file: dir.join("service.log"),
        address,
        // The host's loopback: the tests connect with their own clients.
        network: Default::default(),
        secrets: Secrets::default(),
        profile: MemoryProfile::Small,
        cgroup: None,
    }
}

pub async fn start_service(
    name: &str,
    type_: &str,
    configuration: Value,
    address: Ipv4Addr,
) -> TestService {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = spec_in(dir.path(), name, type_, configuration, address);
    let running = match start(spec.clone()).await {
        Ok(running) => running,
        Err(e) => {
            let log = std::fs::read_to_string(dir.path().join("service.log")).unwrap_or_default();
            panic!("{e}\nlog:\n{log}");
        }
    };
    TestService {
        running: Some(running),
        spec,
        dir,
    }
}

/// Runs a client on the host; `Ok(stdout)` or `Err(stderr)`.
pub async fn client(program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<String, String> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

pub async fn mariadb(svc: &TestService, endpoint: &str, sql: &str) -> Result<String, String> {
    let ep = svc
        .svc()
        .endpoints()
        .into_iter()
        .find(|e| e.name == endpoint)
        .expect("endpoint");
    let host = ep.ip.to_string();
    let port = ep.port.to_string();
    let user = ep.username.clone().expect("username");
    let password = ep.password.clone().expect("password");
    let mut args = vec![
        "--no-defaults",
        "-h",
        &host,
        "-P",
        &port,
        "-u",
        &user,
        "-N",
        "-B",
    ];
    if let Some(path) = &ep.path {
        args.push(path);
    }
    args.extend(["-e", sql]);
    client("mariadb", &args, &[("MYSQL_PWD", &password)]).await
}

pub async fn psql(svc: &TestService, endpoint: &str, sql: &str) -> Result<String, String> {
    let ep = svc
        .svc()
        .endpoints()
        .into_iter()
        .find(|e| e.name == endpoint)
        .expect("endpoint");
    let host = ep.ip.to_string();
    let user = ep.username.clone().expect("username");
    let password = ep.password.clone().expect("password");
    let db = ep.path.clone().expect("database");
    client(
        "psql",
        &[
            "-X",
            "-h",
            &host,
            "-p",
            "5432",
            "-U",
            &user,
            "-d",
            &db,
            "-tA",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ],
        &[("PGPASSWORD", &password)],
    )
    .await
}

pub async fn redis_cli(svc: &TestService, args: &[&str]) -> Result<String, String> {
    let host = svc.spec.address.to_string();
    let mut all = vec!["-h", &host, "-p", "6379"];
    all.extend_from_slice(args);
    client("redis-cli", &all, &[]).await
}
