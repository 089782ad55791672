//! The grove server: wires the store, git, the runtime, the router and the HTTP API
//! together and runs them until shut down.

mod access;
mod activity;
mod api;
mod auth;
mod backups;
mod crons;
mod deploy;
mod dumps;
mod env_logs;
mod error;
mod failpoint;
mod git_http;
mod handlers;
mod http_access;
mod http_cache;
mod lifecycle;
mod names;
mod ndjson;
mod owners;
mod platform;
mod running;
mod runtimes;
mod services;
mod ssh;
mod ssh_keys;
mod state;
mod tree;
mod users;
mod variables;
mod web_server;

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use grove_runtime::RuntimeCatalog;
use grove_services::ServiceCatalog;
use grove_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use error::Error;
pub use grove_deployment::build_key;
pub use grove_runtime::images::DEFAULT_MIRROR as DEFAULT_IMAGE_MIRROR;
pub use names::machine_name;
pub use state::{Settings, connectable};

/// The operator's runtime mappings, e.g. `aliases: {"python:3.9": "python:3.11"}`,
/// and version policy (`versions: exact`).
pub const RUNTIMES_FILE: &str = "runtimes.yaml";
/// The operator's service mappings, e.g. `aliases: {"mariadb:10.4": "mariadb:10.11"}`.
pub const SERVICE_CATALOG_FILE: &str = "service-catalog.yaml";
/// The first admin's API token, written on first start (mode 0600).
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] grove_store::StoreError),
    #[error("{0}")]
    Runtimes(String),
    #[error("storage: {0}")]
    Storage(String),
    #[error("cannot listen on {addr} ({what}): {source}")]
    Listen {
        what: &'static str,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Runs the platform until `shutdown` is cancelled, then stops every app instance.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> Result<(), StartError> {
    let data_dir = settings.data_dir.clone();
    prepare_data_dir(&data_dir).map_err(|(path, source)| StartError::DataDir {
        path: path.display().to_string(),
        source,
    })?;
    let store = Arc::new(Store::open(&data_dir.join("grove.db"))?);
    let logs = grove_store::LogWriter::start(store.clone())?;
    bootstrap_admin(&store, &data_dir)?;

    let aliases_file = data_dir.join(RUNTIMES_FILE);
    let catalog = tokio::task::spawn_blocking(move || -> Result<RuntimeCatalog, StartError> {
        let (aliases, policy) = RuntimeCatalog::load_config_file(&aliases_file)
            .map_err(|e| StartError::Runtimes(e.to_string()))?;
        Ok(RuntimeCatalog::probe(aliases)
            .with_aliases_file(aliases_file)
            .with_images(grove_runtime::IMAGES)
            .with_policy(policy))
    })
    .await
    .map_err(|e| StartError::Runtimes(e.to_string()))??;
    let installed: Vec<String> = catalog.installed().iter().map(|r| r.type_name()).collect();
    tracing::info!(runtimes = %installed.join(", "), "Probed the host's runtimes.");
    let service_aliases_file = data_dir.join(SERVICE_CATALOG_FILE);
    let service_catalog =
        tokio::task::spawn_blocking(move || -> Result<ServiceCatalog, StartError> {
            let aliases = load_service_aliases(&service_aliases_file)?;
            Ok(ServiceCatalog::probe(aliases))
        })
        .await
        .map_err(|e| StartError::Runtimes(e.to_string()))??;
    tracing::info!(
        services = %service_catalog.installed_types().join(", "),
        "Probed the host's service servers."
    );

    let volumes_root = data_dir.join("volumes");
    let storage = settings.storage;
    let volumes = tokio::task::spawn_blocking(move || {
        grove_volumes::VolumeStore::open(&volumes_root, storage)
    })
    .await
    .map_err(|e| StartError::Storage(e.to_string()))?
    .map_err(|e| StartError::Storage(e.to_string()))?;
    tracing::info!(storage = %volumes.kind(), "Opened the volume store.");
    let volumes = Arc::new(volumes);

    let cgroups = if settings.resource_limits {
        let data_dir = data_dir.clone();
        match tokio::task::spawn_blocking(move || grove_runtime::Cgroups::open(&data_dir)).await {
            Ok(Ok(cgroups)) => {
                tracing::info!(hierarchy = ?cgroups.hierarchy(), "Resource limits on: one cgroup per environment and build.");
                Some(cgroups)
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "Resource limits are off: no usable cgroups on this host.");
                None
            }
            Err(error) => {
                tracing::warn!(%error, "Resource limits are off.");
                None
            }
        }
    } else {
        tracing::warn!("Resource limits are off (--no-resource-limits).");
        None
    };

    let api_listener = bind(settings.api_listen, "API").await?;
    let http_listener = bind(settings.http_listen, "HTTP").await?;
    let router = grove_router::RouteTable::new();
    let platform = Arc::new(
        platform::Platform::new(
            settings.clone(),
            store,
            catalog,
            service_catalog,
            volumes,
            router.clone(),
            logs.clone(),
        )
        .with_cgroups(cgroups),
    );
    tracing::info!(
        api = %settings.api_listen,
        http = %settings.http_listen,
        data_dir = %data_dir.display(),
        "Grove is running."
    );

    // Before `recover`: its deploys register their logins with the gateway's file.
    let ssh_gateway = match settings.ssh_listen {
        Some(listen) => match ssh::start(platform.clone(), listen, shutdown.clone()).await {
            Ok(gateway) => {
                tracing::info!(ssh = %gateway.address, "SSH gateway is running.");
                Some(gateway)
            }
            Err(error) => {
                tracing::error!(%error, ssh = %listen, "No SSH gateway.");
                None
            }
        },
        None => None,
    };
    platform.recover().await;
    tokio::spawn(platform.clone().watch_health(shutdown.clone()));
    tokio::spawn(platform.clone().schedule_backups(shutdown.clone()));
    let router_task = tokio::spawn(grove_router::serve(http_listener, router, shutdown.clone()));
    let app = api::router(platform.clone());
    let api_shutdown = shutdown.clone();
    let api_task = tokio::spawn(async move {
        // The same connection limits as the router: the API faces the same clients.
        grove_router::serve_connections(
            api_listener,
            grove_router::ConnectionLimits::default(),
            grove_router::ConnectionStats::default(),
            move |_peer| grove_router::TowerToHyperService::new(app.clone()),
            api_shutdown,
        )
        .await;
    });
    shutdown.cancelled().await;
    drop(ssh_gateway);
    tracing::info!("Shutting down: stopping app instances.");
    platform.shutdown().await;
    if let Some(cgroups) = platform.cgroups.clone() {
        let _ = tokio::task::spawn_blocking(move || cgroups.close()).await;
    }
    if let Err(error) = logs.flush().await {
        tracing::error!(%error, "Could not store the last activity log lines.");
    }
    // Open streams (a follower of a long log) must not hold the exit up.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), api_task).await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), router_task).await;
    Ok(())
}

/// Creates the data directory (0700: it holds tokens, secrets and every environment's
/// data) and removes what a crash left half-made: temporary builds and the quarantine
/// directories of pushes git never finished. Volumes clean up after themselves when
/// the volume store opens; data kept aside for a rollback is put back by `recover`.
fn prepare_data_dir(data_dir: &Path) -> Result<(), (std::path::PathBuf, std::io::Error)> {
    use std::os::unix::fs::PermissionsExt;
    let at = |path: &Path| {
        let path = path.to_path_buf();
        move |e| (path, e)
    };
    std::fs::create_dir_all(data_dir).map_err(at(data_dir))?;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
        .map_err(at(data_dir))?;
    for dir in ["git", "builds", "cache", "logs", "tmp"] {
        let path = data_dir.join(dir);
        std::fs::create_dir_all(&path).map_err(at(&path))?;
    }
    let mut leftovers = Vec::new();
    let builds = data_dir.join("builds");
    for entry in std::fs::read_dir(&builds).map_err(at(&builds))?.flatten() {
        if entry.file_name().to_string_lossy().starts_with(".tmp-") {
            leftovers.push(entry.path());
        }
    }
    let repositories = data_dir.join("git");
    for repo in std::fs::read_dir(&repositories)
        .map_err(at(&repositories))?
        .flatten()
    {
        let objects = repo.path().join("objects");
        for entry in std::fs::read_dir(&objects).into_iter().flatten().flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with("tmp_objdir-incoming-")
            {
                leftovers.push(entry.path());
            }
        }
    }
    for path in leftovers {
        // Never follow a link out of the data directory.
        let removed = match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&path),
            Ok(_) => std::fs::remove_file(&path),
            Err(e) => Err(e),
        };
        match removed {
            Ok(()) => {
                tracing::info!(path = %path.display(), "Removed what an interrupted operation left.")
            }
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "Could not remove a leftover.")
            }
        }
    }
    Ok(())
}

/// `aliases:` of the operator's service catalog file; no file means no aliases.
fn load_service_aliases(
    path: &Path,
) -> Result<std::collections::BTreeMap<String, String>, StartError> {
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(default)]
        aliases: std::collections::BTreeMap<String, String>,
    }
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(source) => {
            return Err(StartError::DataDir {
                path: path.display().to_string(),
                source,
            });
        }
    };
    serde_saphyr::from_str::<File>(&text)
        .map(|f| f.aliases)
        .map_err(|e| StartError::Runtimes(format!("{}: {e}", path.display())))
}

async fn bind(addr: std::net::SocketAddr, what: &'static str) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { what, addr, source })
}

/// On first start: an `admin` user and its token in `DIR/admin-token` (0600).
fn bootstrap_admin(store: &Store, data_dir: &Path) -> Result<(), StartError> {
    if store.user_count()? > 0 {
        return Ok(());
    }
    let token = auth::random_token("pat");
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        file.write_all(format!("{token}\n").as_bytes())
    };
    write().map_err(|source| StartError::DataDir {
        path: path.display().to_string(),
        source,
    })?;
    let user = store.insert_user("admin", "admin")?;
    store.insert_token(user, "first admin token", &auth::token_hash(&token))?;
    tracing::info!(path = %path.display(), "Created the admin user; its API token is in this file.");
    Ok(())
}
