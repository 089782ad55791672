//! Grove's data services: every environment gets its own MariaDB, PostgreSQL,
//! Redis, RabbitMQ or Memcached, run by the servers from the host's Debian
//! packages, each in a supervised `grove-runtime` sandbox.
//!
//! # Shape
//!
//! - [`ServiceCatalog::probe`] finds what the host really has and
//!   [`ServiceCatalog::resolve`] maps a `services.yaml` type (`mysql:10.11`,
//!   `redis-persistent:7.0`) onto it; anything else (OpenSearch, Solr, a
//!   version we don't have) is an error naming the service, what it asked for
//!   and what is installed. Operator aliases (`mariadb:10.4` →
//!   `mariadb:10.11`) are explicit only.
//! - [`start`] takes a [`ServiceSpec`] (resolved type, the service's
//!   `configuration`, data and run directories, a loopback address, the
//!   endpoints' [`Secrets`] and a [`MemoryProfile`]) and returns a
//!   [`RunningService`]: data directory initialised when empty, config
//!   written, server spawned under supervision (restarted with backoff when it
//!   dies), waited for, then provisioned idempotently (schemas, databases,
//!   users per endpoint with their privileges, extensions, vhosts). A changed
//!   configuration applies on the next start, keeping the data.
//! - [`RunningService::endpoints`] is what the app's relationships are made of
//!   (Platform.sh's endpoint object minus the host, which the caller maps:
//!   `<relationship>.internal` → [`ServiceSpec::address`]).
//!
//! # Isolation
//!
//! Each instance's sandbox sees the host's system directories read-only, its
//! data directory at the path the server expects (`/var/lib/mysql`, ...) and
//! its run directory (sockets, pid files, generated config: `/run/mysqld`, ...)
//! writable, and nothing else of the host's filesystem. Servers listen on the
//! instance's own loopback address and the type's standard port (the whole of
//! `127.0.0.0/8` is routed to `lo`).
//!
//! Sandboxes run as uid 0 without capabilities. PostgreSQL refuses to run as
//! root, so it runs in a user namespace of its own where it is the `postgres`
//! user; because creating the mapping of uid 0 needs `CAP_SETFCAP`, which the
//! sandbox doesn't have, Grove writes that namespace's uid/gid map from the
//! outside (see `userns`).
//!
//! # What this crate doesn't know
//!
//! It never reads `services.yaml` (that is `grove-config`), never touches the
//! store and never decides addresses, directories or when to start: the
//! caller (the deploy code) does.

mod amqp;
pub mod catalog;
pub mod config;
mod kinds;
mod probe;
mod running;
pub mod secrets;
mod userns;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use catalog::{InstalledService, Match, ResolvedService, ServiceCatalog, VersionPolicy};
pub use config::{EndpointConfig, Privilege, ServiceConfig};
pub use running::{Endpoint, MemoryProfile, Quiesced, RunningService, ServiceSpec, start};
pub use secrets::Secrets;

/// What kind of server a service runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKind {
    /// `mariadb` and its alias `mysql`.
    MariaDb,
    PostgreSql,
    /// `redis` (ephemeral: nothing on disk) and `redis-persistent` (AOF).
    Redis {
        persistent: bool,
    },
    RabbitMq,
    Memcached,
}

impl ServiceKind {
    /// The port the type listens on everywhere (Platform.sh's ports).
    pub fn port(self) -> u16 {
        match self {
            ServiceKind::MariaDb => 3306,
            ServiceKind::PostgreSql => 5432,
            ServiceKind::Redis { .. } => 6379,
            ServiceKind::RabbitMq => 5672,
            ServiceKind::Memcached => 11211,
        }
    }

    /// The URL scheme of its endpoints.
    pub fn scheme(self) -> &'static str {
        match self {
            ServiceKind::MariaDb => "mysql",
            ServiceKind::PostgreSql => "pgsql",
            ServiceKind::Redis { .. } => "redis",
            ServiceKind::RabbitMq => "amqp",
            ServiceKind::Memcached => "memcached",
        }
    }
}

/// The endpoint a relationship gets when it names only the service
/// (`database: "db:mysql"` names it explicitly).
pub fn default_endpoint(kind: ServiceKind) -> &'static str {
    match kind {
        ServiceKind::MariaDb => "mysql",
        ServiceKind::PostgreSql => "postgresql",
        ServiceKind::Redis { .. } => "redis",
        ServiceKind::RabbitMq => "rabbitmq",
        ServiceKind::Memcached => "memcached",
    }
}

/// What went wrong with a service. Every variant names the service.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The user asked for a type or version this host can't run.
    #[error(
        "service `{service}` asks for `{requested}`, which this host cannot run (installed: {}){}",
        render_list(.installed),
        .reason.as_ref().map(|r| format!("; {r}")).unwrap_or_default()
    )]
    Unavailable {
        service: String,
        requested: String,
        installed: Vec<String>,
        reason: Option<String>,
    },
    /// The service's `configuration` in services.yaml is wrong (user input).
    #[error("service `{service}`: invalid configuration: {message}")]
    Configuration { service: String, message: String },
    /// A file or directory of the instance (ours or the host's fault).
    #[error("service `{service}`: {what} {}: {source}", .path.display())]
    Io {
        service: String,
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Another process already listens where the instance should.
    #[error(
        "service `{service}` cannot listen on {address}: the address is already in use by another process"
    )]
    AddressInUse {
        service: String,
        address: SocketAddr,
    },
    /// The sandbox could not be created.
    #[error("service `{service}`: {source}")]
    Runtime {
        service: String,
        #[source]
        source: grove_runtime::RuntimeError,
    },
    /// The server exited or never became ready (corrupt data directory, bad
    /// property, ...): the last lines of its log say why.
    #[error("service `{service}` failed to start: {message}{}", render_tail(.log_tail))]
    StartFailed {
        service: String,
        message: String,
        log_tail: Vec<String>,
    },
    /// The server runs but creating schemas, users or vhosts failed.
    #[error("service `{service}`: could not {step}: {message}{}", render_tail(.output))]
    Provision {
        service: String,
        step: String,
        message: String,
        output: Vec<String>,
    },
    /// A health check failed.
    #[error("service `{service}` is unhealthy: {message}")]
    Unhealthy { service: String, message: String },
    /// The endpoints' secrets file could not be read or written.
    #[error("secrets file {}: {message}", .path.display())]
    Secrets { path: PathBuf, message: String },
}

fn render_list(items: &[String]) -> String {
    if items.is_empty() {
        "nothing".to_owned()
    } else {
        items.join(", ")
    }
}

fn render_tail(lines: &[String]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nlast lines of output:");
    for line in lines {
        out.push_str("\n  ");
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_and_futures_can_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<RunningService>();
        send_sync::<ServiceCatalog>();
        send_sync::<ServiceError>();
        fn send<T: Send>(_: &T) {}
        let spec = ServiceSpec {
            name: "db".into(),
            resolved: ResolvedService {
                kind: ServiceKind::MariaDb,
                requested: "mariadb:10.11".into(),
                provided: "mariadb:10.11".into(),
                matched: Match::Exact,
                full_version: "10.11.0".into(),
                binary: "/usr/sbin/mariadbd".into(),
            },
            configuration: serde_json::Value::Null,
            data_dir: "/nonexistent".into(),
            run_dir: "/nonexistent".into(),
            log_file: "/nonexistent".into(),
            address: std::net::Ipv4Addr::LOCALHOST,
            network: grove_runtime::Network::Host,
            secrets: Secrets::default(),
            cgroup: None,
            profile: MemoryProfile::Small,
        };
        send(&start(spec));
    }
}
