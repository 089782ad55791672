//! Starting, provisioning, checking and stopping one service instance.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use grove_runtime::{Bind, Instance, Network, SandboxSpec, procfs, run_command};
use serde::Serialize;

use crate::config::ServiceConfig;
use crate::kinds::{self, Layout, Plan};
use crate::userns::UidMapper;
use crate::{ResolvedService, Secrets, ServiceError, ServiceKind};

/// How long a health check or a provisioning command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stop waits for the server to shut down cleanly before killing it.
const STOP_GRACE: Duration = Duration::from_secs(30);
/// `PATH` inside a service sandbox: servers live in `sbin`.
const SERVICE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How much memory an instance is tuned for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemoryProfile {
    /// Development environments: as little as the server runs well with
    /// (MariaDB 16M buffer pool without performance_schema, PostgreSQL 16MB
    /// shared buffers, Redis 64mb, RabbitMQ paging early).
    #[default]
    Small,
    /// Production: the servers' usual sizes.
    Production,
}

/// One instance to run.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// The service's name in services.yaml.
    pub name: String,
    pub resolved: ResolvedService,
    /// services.yaml `configuration` (schemas, endpoints, databases,
    /// extensions, maxmemory_policy, vhosts, properties); `Null` for none.
    pub configuration: serde_json::Value,
    /// Persistent data, on the environment's volume; created if missing,
    /// initialised if empty.
    pub data_dir: PathBuf,
    /// Sockets, pid files and generated config; private to this instance.
    pub run_dir: PathBuf,
    pub log_file: PathBuf,
    /// The loopback address the server listens on, at its type's port.
    pub address: Ipv4Addr,
    /// The network it runs in (its environment's namespace): the address
    /// exists only there, and health checks connect from there.
    pub network: Network,
    /// Passwords by endpoint; missing ones are generated (see
    /// [`RunningService::secrets`]).
    pub secrets: Secrets,
    pub profile: MemoryProfile,
    /// The cgroup (its environment's) the server and its clients run in.
    pub cgroup: Option<grove_runtime::CgroupJoin>,
}

/// What an app's relationship to a service endpoint contains (Platform.sh's
/// endpoint object without the host, which the caller maps to `address`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// `mysql`, `admin`, `reporter`, `redis`, ...
    pub name: String,
    /// `mysql`, `pgsql`, `redis`, `amqp`, `memcached`.
    pub scheme: String,
    pub ip: Ipv4Addr,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The default schema / database (MariaDB, PostgreSQL) or vhost
    /// (RabbitMQ).
    pub path: Option<String>,
    pub query: serde_json::Value,
}

/// A started instance. Dropping it kills the server (no grace); call
/// [`RunningService::stop`] for a clean shutdown.
pub struct RunningService {
    name: String,
    kind: ServiceKind,
    address: Ipv4Addr,
    config: ServiceConfig,
    secrets: Secrets,
    sandbox: SandboxSpec,
    binary: PathBuf,
    /// The run directory on the host (the sandbox's `Layout::run`).
    run_dir: PathBuf,
    instance: Arc<Instance>,
}

impl std::fmt::Debug for RunningService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningService")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("address", &self.address)
            .field("pid", &self.pid())
            .finish_non_exhaustive()
    }
}

/// Starts an instance: data directory initialised if empty, config written,
/// server spawned under supervision, waited for, provisioned, checked.
pub async fn start(spec: ServiceSpec) -> Result<RunningService, ServiceError> {
    let name = spec.name.clone();
    let kind = spec.resolved.kind;
    let config = ServiceConfig::parse(&name, kind, &spec.configuration)?;
    let mut secrets = spec.secrets.clone();
    secrets.ensure(&config.endpoint_names());

    let io = |what: &'static str, path: &Path| {
        let service = name.clone();
        let path = path.to_owned();
        move |source| ServiceError::Io {
            service,
            what,
            path,
            source,
        }
    };
    create_private_dir(&spec.data_dir)
        .map_err(io("could not create data directory", &spec.data_dir))?;
    create_private_dir(&spec.run_dir)
        .map_err(io("could not create run directory", &spec.run_dir))?;
    let empty_root = spec.run_dir.join("root");
    std::fs::create_dir_all(&empty_root).map_err(io("could not create", &empty_root))?;

    let listen = SocketAddr::V4(SocketAddrV4::new(spec.address, kind.port()));
    let free = spec.network.run(move || check_free(listen)).await;
    ensure_free(&name, listen, free)?;

    let plan = kinds::plan(&kinds::Context {
        kind,
        address: spec.address,
        profile: spec.profile,
        config: &config,
        secrets: &secrets,
        binary: &spec.resolved.binary,
        salt: random_salt(),
    });
    for (file, content) in &plan.files {
        let path = spec.run_dir.join(file);
        write_private(&path, content).map_err(io("could not write", &path))?;
    }
    // World-readable: servers that drop to their own user read it too.
    let hosts = spec.run_dir.join("hosts");
    std::fs::write(&hosts, hosts_file(spec.address)).map_err(io("could not write", &hosts))?;

    let layout = kinds::layout(kind);
    let sandbox = sandbox_spec(&name, layout, &spec, &empty_root, &plan.command);
    let instance = Instance::spawn(sandbox.clone(), spec.log_file.clone()).map_err(|source| {
        ServiceError::Runtime {
            service: name.clone(),
            source,
        }
    })?;
    let instance = Arc::new(instance);
    if let Some(user) = plan.user {
        UidMapper::spawn(&instance, user);
    }
    let running = RunningService {
        name: name.clone(),
        kind,
        address: spec.address,
        config,
        secrets,
        sandbox,
        binary: spec.resolved.binary.clone(),
        run_dir: spec.run_dir.clone(),
        instance,
    };
    running.wait_started(listen, &plan).await?;
    running.provision(&plan, &spec.run_dir).await?;
    running.health().await?;
    tracing::info!(service = %name, %listen, "service started");
    Ok(running)
}

impl RunningService {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> ServiceKind {
        self.kind
    }

    /// The secrets in use, including passwords generated for endpoints that
    /// had none: the caller saves them when they differ from what it passed.
    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// Every endpoint the configuration defines, with its credentials.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.config
            .endpoints
            .iter()
            .map(|e| {
                let password = self.secrets.password(&e.name).map(str::to_owned);
                let (username, password, path, query) = match self.kind {
                    ServiceKind::MariaDb | ServiceKind::PostgreSql => (
                        Some(e.name.clone()),
                        password,
                        e.default_schema.clone(),
                        serde_json::json!({"is_master": true}),
                    ),
                    ServiceKind::RabbitMq => (
                        Some(e.name.clone()),
                        password,
                        self.config.vhosts.first().cloned(),
                        serde_json::json!([]),
                    ),
                    ServiceKind::Redis { .. } | ServiceKind::Memcached => {
                        (None, None, None, serde_json::json!([]))
                    }
                };
                Endpoint {
                    name: e.name.clone(),
                    scheme: self.kind.scheme().to_owned(),
                    ip: self.address,
                    port: self.kind.port(),
                    username,
                    password,
                    path,
                    query,
                }
            })
            .collect()
    }

    /// A real check: `SELECT 1` (MariaDB, PostgreSQL), `PING` (Redis), an
    /// AMQP connection and channel (RabbitMQ), `version` (memcached).
    pub async fn health(&self) -> Result<(), ServiceError> {
        self.check()
            .await
            .map_err(|message| ServiceError::Unhealthy {
                service: self.name.clone(),
                message,
            })
    }

    async fn check(&self) -> Result<(), String> {
        let addr = self.listen();
        if let Some(command) = kinds::health_command(self.kind, &self.binary) {
            // Through the socket as the superuser, plus the TCP port apps use.
            tokio::time::timeout(CHECK_TIMEOUT, self.sandbox.network.connect_tcp(addr))
                .await
                .map_err(|_| format!("{addr} did not accept a connection in time"))?
                .map_err(|e| format!("could not connect to {addr}: {e}"))?;
            let (ok, output) = self.run(&command, CHECK_TIMEOUT).await?;
            return if ok && output.iter().any(|l| l.trim() == "1") {
                Ok(())
            } else {
                Err(format!("`SELECT 1` failed: {}", output.join(" / ")))
            };
        }
        match self.kind {
            ServiceKind::Redis { .. } => {
                crate::probe::redis_ping(&self.sandbox.network, addr, CHECK_TIMEOUT).await
            }
            ServiceKind::Memcached => {
                crate::probe::memcached_version(&self.sandbox.network, addr, CHECK_TIMEOUT).await
            }
            ServiceKind::RabbitMq => {
                let endpoint = crate::default_endpoint(self.kind);
                let password = self.secrets.password(endpoint).unwrap_or_default();
                let vhost = self.config.vhosts.first().map_or("/", String::as_str);
                let network = &self.sandbox.network;
                crate::amqp::check(network, addr, endpoint, password, vhost, CHECK_TIMEOUT).await
            }
            ServiceKind::MariaDb | ServiceKind::PostgreSql => Ok(()),
        }
    }

    /// Prepares the data directory for a copy-on-write snapshot taken while the server
    /// runs: the snapshot is crash-consistent anyway, and this makes the copy's crash
    /// recovery short by writing dirty pages out first (MariaDB flushes its buffer pool,
    /// PostgreSQL checkpoints). The server keeps serving throughout; a server that does
    /// not finish in time leaves more recovery to the copy, nothing worse.
    pub async fn prepare_snapshot(&self) -> Result<(), ServiceError> {
        let command = match self.kind {
            ServiceKind::MariaDb => {
                let sql = "mariadb --no-defaults -S /run/mysqld/mysqld.sock -u root -N -B -e";
                format!(
                    "{sql} 'SET GLOBAL innodb_max_dirty_pages_pct_lwm = 0.001; \
                     SET GLOBAL innodb_max_dirty_pages_pct = 0.001'; \
                     i=0; while [ $i -lt 200 ]; do \
                       dirty=$({sql} \"SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
                         WHERE VARIABLE_NAME = 'INNODB_BUFFER_POOL_PAGES_DIRTY'\"); \
                       [ \"${{dirty:-0}}\" -le 8 ] && break; sleep 0.05; i=$((i+1)); done; \
                     {sql} 'SET GLOBAL innodb_max_dirty_pages_pct = 90; \
                     SET GLOBAL innodb_max_dirty_pages_pct_lwm = 0'; echo 1"
                )
            }
            ServiceKind::PostgreSql => format!(
                "{}/psql -X -h /run/postgresql -U postgres -d postgres -tA -c 'CHECKPOINT' && echo 1",
                std::path::Path::new(&self.binary)
                    .parent()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "/usr/bin".to_owned())
            ),
            _ => return Ok(()),
        };
        let (ok, output) =
            self.run(&command, Duration::from_secs(30))
                .await
                .map_err(|message| ServiceError::Unhealthy {
                    service: self.name.clone(),
                    message,
                })?;
        if ok {
            Ok(())
        } else {
            Err(ServiceError::Unhealthy {
                service: self.name.clone(),
                message: format!("preparing a snapshot failed: {}", output.join(" / ")),
            })
        }
    }

    /// Holds the service still at one instant for a snapshot of its data, until
    /// [`Quiesced::resume`]: MariaDB's commits are blocked by a session that holds
    /// `BACKUP STAGE BLOCK_COMMIT`, Redis's writes by `CLIENT PAUSE … WRITE` (its
    /// append-only file is in the kernel's hands before each reply), PostgreSQL
    /// checkpoints (its snapshot needs nothing more than crash recovery). Reads go on.
    /// A hold the server never releases ends on its own: the MariaDB session is
    /// killed after [`HOLD_LIMIT`], Redis's pause expires.
    pub async fn quiesce(&self) -> Result<Quiesced, ServiceError> {
        let unhealthy = |message: String| ServiceError::Unhealthy {
            service: self.name.clone(),
            message: format!("could not quiesce it: {message}"),
        };
        let hold = match self.kind {
            ServiceKind::MariaDb => self.hold_commits().await.map_err(unhealthy)?,
            ServiceKind::Redis { persistent: true } => {
                let limit = HOLD_LIMIT.as_millis();
                let answer = crate::probe::request_line(
                    &self.sandbox.network,
                    self.listen(),
                    format!("CLIENT PAUSE {limit} WRITE\r\n").as_bytes(),
                    CHECK_TIMEOUT,
                )
                .await
                .map_err(unhealthy)?;
                if answer != "+OK" {
                    return Err(unhealthy(format!("CLIENT PAUSE answered `{answer}`")));
                }
                Hold::RedisWrites {
                    network: self.sandbox.network.clone(),
                    addr: self.listen(),
                }
            }
            ServiceKind::PostgreSql => {
                self.prepare_snapshot().await?;
                Hold::Checkpointed
            }
            _ => Hold::Nothing,
        };
        Ok(Quiesced {
            service: self.name.clone(),
            hold,
        })
    }

    /// The MariaDB session of [`RunningService::quiesce`]: a client in the server's
    /// sandbox that reaches `BLOCK_COMMIT`, says so, and waits for a file in the run
    /// directory before `BACKUP STAGE END`.
    async fn hold_commits(&self) -> Result<Hold, String> {
        const HELD: &str = "grove-commits-blocked";
        const RELEASED: &str = "grove-commits-resumed";
        let layout = kinds::layout(self.kind);
        let resume_file = self.run_dir.join(RESUME_FILE);
        let _ = std::fs::remove_file(&resume_file);
        let inner = format!("{}/{RESUME_FILE}", layout.run);
        let script = format!(
            "{{ echo \"BACKUP STAGE START; BACKUP STAGE BLOCK_COMMIT; SELECT '{HELD}';\"; \
             while [ ! -e {inner} ]; do sleep 0.01; done; \
             echo \"BACKUP STAGE END; SELECT '{RELEASED}';\"; }} | \
             mariadb --no-defaults -S {}/mysqld.sock -u root -N -B --unbuffered",
            layout.run
        );
        let spec = self.sandbox_for(&script);
        let (held_tx, held_rx) = tokio::sync::oneshot::channel();
        let session = tokio::spawn(async move {
            let mut held = Some(held_tx);
            let mut released = false;
            let mut output = Vec::new();
            let mut on_line = |line: &str| match line.trim() {
                HELD => {
                    if let Some(tx) = held.take() {
                        let _ = tx.send(());
                    }
                }
                RELEASED => released = true,
                other if output.len() < 20 => output.push(other.to_owned()),
                _ => {}
            };
            let outcome = run_command(&spec, HOLD_LIMIT, &mut on_line)
                .await
                .map_err(|e| e.to_string())?;
            if outcome.success() && released {
                Ok(())
            } else {
                Err(format!("the session {outcome}: {}", output.join(" / ")))
            }
        });
        match tokio::time::timeout(CHECK_TIMEOUT, held_rx).await {
            Ok(Ok(())) => Ok(Hold::MariaDbCommits {
                resume_file,
                session,
            }),
            Ok(Err(_)) => Err(match session.await {
                Ok(Err(e)) => e,
                _ => "the session ended before BLOCK_COMMIT".to_owned(),
            }),
            Err(_) => {
                // Let it go (the client ends when it sees the file) and say why.
                let _ = std::fs::write(&resume_file, b"");
                Err(format!(
                    "BACKUP STAGE BLOCK_COMMIT took longer than {CHECK_TIMEOUT:?}"
                ))
            }
        }
    }

    /// A logical dump of one schema by the server's own tool, run in its sandbox
    /// against its socket: `mariadb-dump --single-transaction` (a consistent read
    /// that blocks no writer) or `pg_dump`; gzipped when asked. Returns the file, in
    /// the instance's run directory on the host: the caller reads and deletes it.
    pub async fn dump(&self, schema: &str, gzip: bool) -> Result<PathBuf, ServiceError> {
        let failed = |message: String| ServiceError::Unhealthy {
            service: self.name.clone(),
            message: format!("could not dump `{schema}`: {message}"),
        };
        // Never an option of the tool (`-A` is every database).
        if schema.starts_with('-')
            || schema.is_empty()
            || !schema
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(failed("not a schema name".to_owned()));
        }
        let layout = kinds::layout(self.kind);
        let tool = match self.kind {
            ServiceKind::MariaDb => format!(
                "mariadb-dump --no-defaults -S {}/mysqld.sock -u root --single-transaction \
                 --routines --triggers --events --hex-blob --skip-dump-date {schema}",
                layout.run
            ),
            ServiceKind::PostgreSql => format!(
                "{}/pg_dump -h {} -U postgres --no-owner {schema}",
                self.binary
                    .parent()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "/usr/bin".to_owned()),
                layout.run
            ),
            _ => return Err(failed(format!("{} has no dump tool", self.kind.scheme()))),
        };
        let mut salt = [0u8; 6];
        let _ = getrandom::fill(&mut salt);
        let name = format!(
            "grove-dump-{}.sql",
            salt.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        // The tool's errors go to the output we read; its data only to the file.
        let mut command = format!("{tool} > {}/{name}", layout.run);
        let mut file = self.run_dir.join(&name);
        if gzip {
            command.push_str(&format!(" && gzip -n {}/{name}", layout.run));
            file = self.run_dir.join(format!("{name}.gz"));
        }
        let (ok, output) = self.run(&command, DUMP_TIMEOUT).await.map_err(failed)?;
        if ok && file.is_file() {
            Ok(file)
        } else {
            let _ = std::fs::remove_file(self.run_dir.join(&name));
            let _ = std::fs::remove_file(&file);
            Err(failed(output.join(" / ")))
        }
    }

    /// Clean shutdown; returns once the server is gone. Idempotent.
    pub async fn stop(&self) {
        self.instance.stop(STOP_GRACE).await;
    }

    /// The sandbox's outer `bwrap` (the server is below it, see
    /// [`RunningService::server_pid`]).
    pub fn pid(&self) -> Option<u32> {
        self.instance.pid()
    }

    /// The server process itself: the first process below the sandbox that is
    /// not part of the sandbox or start script machinery.
    pub fn server_pid(&self) -> Option<u32> {
        let outer = self.pid()?;
        procfs::descendants(outer).into_iter().find(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            !matches!(
                comm.trim(),
                "bwrap"
                    | "sh"
                    | "dash"
                    | "unshare"
                    | "sleep"
                    | "cat"
                    | "epmd"
                    | "erl_child_setup"
                    | "inet_gethost"
                    | ""
            )
        })
    }

    /// How many times the server was restarted after dying.
    pub fn restarts(&self) -> u32 {
        self.instance.restarts()
    }

    /// Resident memory of every process in the sandbox, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let Some(outer) = self.pid() else {
            return 0;
        };
        std::iter::once(outer)
            .chain(procfs::descendants(outer))
            .filter_map(|pid| {
                let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    }

    /// A one-shot command in a sandbox laid out like the server's (same data
    /// and run directories): clients, dumps, checks.
    pub fn sandbox_for(&self, command: &str) -> SandboxSpec {
        let mut spec = self.sandbox.clone();
        spec.command = command.to_owned();
        spec
    }

    pub fn log_tail(&self) -> Vec<String> {
        self.instance.log_tail()
    }

    fn listen(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.address, self.kind.port()))
    }

    /// Runs `command` in a sandbox like the server's; `(success, output)`.
    async fn run(&self, command: &str, timeout: Duration) -> Result<(bool, Vec<String>), String> {
        let mut lines = Vec::new();
        let mut on_line = |line: &str| {
            if lines.len() < 200 {
                lines.push(line.to_owned());
            }
        };
        let outcome = run_command(&self.sandbox_for(command), timeout, &mut on_line)
            .await
            .map_err(|e| e.to_string())?;
        if !outcome.success() {
            lines.push(format!("({outcome})"));
        }
        Ok((outcome.success(), lines))
    }

    async fn wait_started(&self, listen: SocketAddr, plan: &Plan) -> Result<(), ServiceError> {
        let failed = |message: String, log_tail: Vec<String>| ServiceError::StartFailed {
            service: self.name.clone(),
            message,
            log_tail,
        };
        if let Err(e) = self.instance.wait_ready(listen, plan.ready_timeout).await {
            let message = match e {
                grove_runtime::RuntimeError::NotReady { message, .. } => message,
                other => other.to_string(),
            };
            self.instance.stop(Duration::from_secs(5)).await;
            return Err(failed(message, self.instance.log_tail()));
        }
        // Accepting connections is not serving yet (PostgreSQL answers "the
        // database system is starting up" during recovery).
        let deadline = tokio::time::Instant::now() + plan.ready_timeout;
        loop {
            match self.check().await {
                Ok(()) => return Ok(()),
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    self.instance.stop(Duration::from_secs(5)).await;
                    return Err(failed(
                        format!("it listens on {listen} but does not answer: {e}"),
                        self.instance.log_tail(),
                    ));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    async fn provision(&self, plan: &Plan, run_dir: &Path) -> Result<(), ServiceError> {
        let Some(command) = &plan.provision else {
            return Ok(());
        };
        let result = self.run(command, COMMAND_TIMEOUT).await;
        // The script holds passwords: don't leave it around.
        let _ = std::fs::remove_file(run_dir.join("provision.sql"));
        let (ok, output) = result.map_err(|message| ServiceError::Provision {
            service: self.name.clone(),
            step: "provision schemas and users".to_owned(),
            message,
            output: Vec::new(),
        })?;
        if ok {
            Ok(())
        } else {
            self.instance.stop(Duration::from_secs(5)).await;
            Err(ServiceError::Provision {
                service: self.name.clone(),
                step: "provision schemas and users".to_owned(),
                message: "the client failed".to_owned(),
                output: output.into_iter().rev().take(20).rev().collect(),
            })
        }
    }
}

/// The longest a dump may take.
const DUMP_TIMEOUT: Duration = Duration::from_secs(3600);
/// The longest a service is held by [`RunningService::quiesce`] when nobody resumes it.
const HOLD_LIMIT: Duration = Duration::from_secs(60);
/// In a MariaDB run directory: its presence ends the hold of commits.
const RESUME_FILE: &str = "grove-backup-resume";

/// A service held still by [`RunningService::quiesce`].
#[must_use = "a quiesced service stays held until resumed"]
pub struct Quiesced {
    service: String,
    hold: Hold,
}

enum Hold {
    Nothing,
    /// Nothing held: a snapshot of a running PostgreSQL is what it recovers from after
    /// a crash, and the checkpoint keeps that recovery short.
    Checkpointed,
    MariaDbCommits {
        resume_file: PathBuf,
        session: tokio::task::JoinHandle<Result<(), String>>,
    },
    RedisWrites {
        network: Network,
        addr: SocketAddr,
    },
}

impl Quiesced {
    /// What holds the service, for the activity log.
    pub fn describe(&self) -> &'static str {
        match self.hold {
            Hold::Nothing => "nothing held",
            Hold::Checkpointed => "checkpointed (CHECKPOINT)",
            Hold::MariaDbCommits { .. } => "commits blocked (BACKUP STAGE BLOCK_COMMIT)",
            Hold::RedisWrites { .. } => "writes paused (CLIENT PAUSE WRITE)",
        }
    }

    /// Lets the service go on; an error says the hold did not end as it should (the
    /// snapshot taken meanwhile is still consistent).
    pub async fn resume(self) -> Result<(), ServiceError> {
        let service = self.service;
        let failed = |message: String| ServiceError::Unhealthy {
            service: service.clone(),
            message: format!("could not resume it: {message}"),
        };
        match self.hold {
            Hold::Nothing | Hold::Checkpointed => Ok(()),
            Hold::MariaDbCommits {
                resume_file,
                session,
            } => {
                std::fs::write(&resume_file, b"")
                    .map_err(|e| failed(format!("{}: {e}", resume_file.display())))?;
                let ended = session.await.map_err(|e| failed(e.to_string()));
                let _ = std::fs::remove_file(&resume_file);
                ended?.map_err(failed)
            }
            Hold::RedisWrites { network, addr } => {
                let answer = crate::probe::request_line(
                    &network,
                    addr,
                    b"CLIENT UNPAUSE\r\n",
                    CHECK_TIMEOUT,
                )
                .await
                .map_err(&failed)?;
                if answer == "+OK" {
                    Ok(())
                } else {
                    Err(failed(format!("CLIENT UNPAUSE answered `{answer}`")))
                }
            }
        }
    }
}

fn sandbox_spec(
    name: &str,
    layout: Layout,
    spec: &ServiceSpec,
    empty_root: &Path,
    command: &str,
) -> SandboxSpec {
    let mut sandbox = SandboxSpec::new(empty_root, command);
    sandbox.binds = vec![
        Bind {
            source: spec.data_dir.clone().into(),
            target: layout.data.to_owned(),
            writable: true,
        },
        Bind {
            source: spec.run_dir.clone().into(),
            target: layout.run.to_owned(),
            writable: true,
        },
    ];
    sandbox.env = vec![
        ("PATH".to_owned(), SERVICE_PATH.to_owned()),
        ("HOME".to_owned(), layout.data.to_owned()),
        ("LANG".to_owned(), "C.UTF-8".to_owned()),
    ];
    sandbox.workdir = layout.data.to_owned();
    sandbox.hostname = Some(name.to_owned());
    sandbox.network = spec.network.clone();
    // Inside the sandbox, `grove-service` is the instance's own address: servers that
    // name themselves after a host (RabbitMQ's Erlang node) get a name that is the
    // same in every environment yet never reaches another instance.
    sandbox.etc_hosts = Some(spec.run_dir.join("hosts"));
    sandbox.cgroup = spec.cgroup.clone();
    sandbox
}

/// The `/etc/hosts` of a service's sandbox (see `sandbox_spec`).
pub(crate) fn hosts_file(address: std::net::Ipv4Addr) -> String {
    format!("127.0.0.1\tlocalhost\n::1\tlocalhost\n{address}\t{SERVICE_HOST}\n")
}

/// The host name a service instance knows itself by (see `hosts_file`).
pub(crate) const SERVICE_HOST: &str = "grove-service";

/// Fails when something already listens where the instance should: it would
/// otherwise look ready while the server itself can't bind.
fn ensure_free(
    service: &str,
    addr: SocketAddr,
    free: std::io::Result<std::io::Result<()>>,
) -> Result<(), ServiceError> {
    match free.and_then(|free| free) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(ServiceError::AddressInUse {
            service: service.to_owned(),
            address: addr,
        }),
        Err(e) => Err(ServiceError::StartFailed {
            service: service.to_owned(),
            message: format!("cannot listen on {addr}: {e}"),
            log_tail: Vec::new(),
        }),
    }
}

/// Binds `addr` and lets it go again (on the namespace's thread when in one).
fn check_free(addr: SocketAddr) -> std::io::Result<()> {
    std::net::TcpListener::bind(addr).map(drop)
}

fn random_salt() -> [u8; 4] {
    let mut salt = [0u8; 4];
    // A salt only needs to differ between files; zeros are still a valid hash.
    let _ = getrandom::fill(&mut salt);
    salt
}

fn create_private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(content.as_bytes())
}
