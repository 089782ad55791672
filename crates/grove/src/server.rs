//! `grove server`: flags and environment variables, logging, signals.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

#[derive(Args)]
pub struct ServerArgs {
    /// Where grove keeps its store, repositories, builds and logs.
    #[arg(long, env = "GROVE_DATA_DIR", default_value = "./grove-data")]
    data_dir: PathBuf,
    /// The API (and git) listen address.
    #[arg(long, env = "GROVE_API_LISTEN", default_value = "127.0.0.1:8022")]
    api_listen: SocketAddr,
    /// The router's HTTP listen address: where environments are served.
    #[arg(long, env = "GROVE_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    http_listen: SocketAddr,
    /// The router's HTTPS listen address (not served yet).
    #[arg(long, env = "GROVE_HTTPS_LISTEN")]
    https_listen: Option<SocketAddr>,
    /// The SSH gateway's listen address (OpenSSH's sshd run by grove): shells and
    /// commands in environments, git over SSH; `off` for none.
    #[arg(long, env = "GROVE_SSH_LISTEN", default_value = "127.0.0.1:2222")]
    ssh_listen: SshListen,
    /// `{default}` in routes expands to `<environment>.<project>.<domain>`.
    #[arg(long, env = "GROVE_DOMAIN", default_value = "localhost")]
    domain: String,
    /// Seconds a new app instance may take to accept connections.
    #[arg(long, env = "GROVE_APP_START_TIMEOUT", default_value_t = 30)]
    app_start_timeout: u64,
    /// Where environments' data lives: `auto` (btrfs snapshots where the data dir is on
    /// btrfs or a pool image exists, else copies), `plain`, `btrfs`, or `btrfs-loop:SIZE`
    /// (a btrfs pool in `DATA_DIR/volumes.img`, e.g. `btrfs-loop:20G`).
    #[arg(long, env = "GROVE_STORAGE", default_value = "auto")]
    storage: grove_volumes::StorageSpec,
    /// Where backups are stored: a restic repository, a directory or any restic
    /// backend (`sftp:…`, `s3:…`, `rest:…`); default `DATA_DIR/backups`. Its password is
    /// kept in `DATA_DIR/backup-password` (0600, created on first use).
    #[arg(long, env = "GROVE_BACKUP_STORE")]
    backup_store: Option<String>,
    /// Seconds between automatic backups of production environments, pruned after
    /// each by the retention policy (0: no automatic backups).
    #[arg(long, env = "GROVE_AUTOMATIC_BACKUPS_EVERY", default_value_t = 3600)]
    automatic_backups_every: u64,
    /// Seconds a build hook may run.
    #[arg(long, env = "GROVE_BUILD_TIMEOUT", default_value_t = 3600)]
    build_timeout: u64,
    /// Where runtime images are kept (default: DATA_DIR/images).
    #[arg(long, env = "GROVE_IMAGES_DIR")]
    images_dir: Option<PathBuf>,
    /// The Debian mirror runtime images are built from.
    #[arg(long, env = "GROVE_IMAGE_MIRROR", default_value = grove_server::DEFAULT_IMAGE_MIRROR)]
    image_mirror: String,
    /// Run environments and builds without cgroup limits on memory, CPU and
    /// processes (limits are on wherever the host has cgroups).
    #[arg(long, env = "GROVE_NO_RESOURCE_LIMITS")]
    no_resource_limits: bool,
}

/// `--ssh-listen`: an address, or `off`.
#[derive(Clone, Debug)]
struct SshListen(Option<SocketAddr>);

impl std::str::FromStr for SshListen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "off" {
            return Ok(SshListen(None));
        }
        s.parse()
            .map(|a| SshListen(Some(a)))
            .map_err(|e| format!("`{s}`: {e} (an address such as 127.0.0.1:2222, or `off`)"))
    }
}

pub async fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GROVE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    raise_open_files_limit();
    if args.https_listen.is_some() {
        tracing::warn!(
            flag = "--https-listen",
            "Accepted, not served yet: this listener comes in a later release."
        );
    }
    std::fs::create_dir_all(&args.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            args.data_dir.display()
        )
    })?;
    let data_dir = args
        .data_dir
        .canonicalize()
        .with_context(|| format!("data directory {}", args.data_dir.display()))?;
    let backup_store = args
        .backup_store
        .unwrap_or_else(|| data_dir.join("backups").to_string_lossy().into_owned());
    let settings = grove_server::Settings {
        data_dir,
        api_listen: args.api_listen,
        http_listen: args.http_listen,
        ssh_listen: args.ssh_listen.0,
        domain: args.domain,
        app_start_timeout: Duration::from_secs(args.app_start_timeout),
        build_timeout: Duration::from_secs(args.build_timeout),
        grove_exe: std::env::current_exe().context("cannot find the grove binary's own path")?,
        storage: args.storage,
        images_dir: args.images_dir,
        image_mirror: args.image_mirror,
        resource_limits: !args.no_resource_limits,
        backup_store,
        automatic_backups_every: Duration::from_secs(args.automatic_backups_every),
    };
    let shutdown = CancellationToken::new();
    let signals = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        signals.cancel();
    });
    grove_server::run(settings, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// Raises the soft open-files limit to the hard one. Every client connection, proxied
/// request and open file takes a descriptor, and the usual soft default (1024) is
/// what a flood of idle connections used up. The connection caps of the router and
/// the API are sized from the value set here, so it runs before they start.
fn raise_open_files_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let shown = |n: Option<u64>| n.map_or_else(|| "unlimited".to_string(), |n| n.to_string());
    if limit.current == limit.maximum {
        tracing::info!(open_files = %shown(limit.current), "Open-files limit.");
        return;
    }
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => tracing::info!(
            open_files = %shown(limit.maximum),
            was = %shown(limit.current),
            "Raised the open-files limit to the hard limit."
        ),
        Err(error) => tracing::warn!(
            %error,
            open_files = %shown(limit.current),
            hard_limit = %shown(limit.maximum),
            "Cannot raise the open-files limit; connection caps follow the current one."
        ),
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("Cannot listen for signals; stop the server with SIGKILL.");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
