//! Which service types this host really runs, and how `services.yaml` types
//! (`mariadb:10.11`, `redis-persistent:7.0`, ...) map onto them.
//!
//! Never pretend: a type the host can't run is an error naming what is
//! installed, unless an operator mapped it explicitly (`mariadb:10.4` →
//! `mariadb:10.11`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{ServiceError, ServiceKind};

/// One server found on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledService {
    /// Platform.sh type family: `mariadb`, `postgresql`, `redis`, `rabbitmq`,
    /// `memcached`.
    pub family: String,
    /// What a type's version is matched against: major.minor (`10.11`, `7.0`,
    /// `1.6`, `3.10`), major only for PostgreSQL (`15`).
    pub version: String,
    /// The full version the server reported (`10.11.19`).
    pub full_version: String,
    /// The server binary (for PostgreSQL the versioned `bin` directory holds
    /// `postgres`, `initdb`, ...).
    pub binary: PathBuf,
}

impl InstalledService {
    pub fn type_name(&self) -> String {
        format!("{}:{}", self.family, self.version)
    }
}

/// A `services.yaml` type resolved to an installed server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedService {
    pub kind: ServiceKind,
    /// What the config asked for, e.g. `mysql:10.4`.
    pub requested: String,
    /// What runs it, e.g. `mariadb:10.11`.
    pub provided: String,
    /// How `provided` was chosen for `requested`.
    pub matched: Match,
    pub full_version: String,
    pub binary: PathBuf,
}

impl fmt::Display for ResolvedService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} runs on the installed {}",
            self.requested, self.provided
        )?;
        match self.matched {
            Match::Exact => Ok(()),
            Match::OperatorAlias => f.write_str(" (operator mapping)"),
            Match::NearestNewer => f.write_str(" (the nearest newer version installed)"),
        }
    }
}

/// How a requested version was matched to an installed server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// The version asked for (major.minor; major for PostgreSQL).
    Exact,
    /// An operator's explicit mapping in `services.yaml` aliases.
    OperatorAlias,
    /// Not installed: the nearest newer version of the same server, which speaks
    /// the same protocol to the app (a new service's data starts empty, and data
    /// written by another version is refused, see the server's `resolve`).
    NearestNewer,
}

/// Whether a version the host lacks may run on the nearest newer one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VersionPolicy {
    /// Platform.sh-like convenience: the nearest newer version, said in the log.
    #[default]
    NearestNewer,
    /// Only the version asked for (or an operator's alias).
    Exact,
}

/// The servers of this host plus the operator's explicit aliases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCatalog {
    installed: Vec<InstalledService>,
    aliases: BTreeMap<String, String>,
    policy: VersionPolicy,
}

impl ServiceCatalog {
    /// Probes the host's servers (blocking: runs each one's `--version`; call
    /// through `spawn_blocking`).
    pub fn probe(aliases: BTreeMap<String, String>) -> ServiceCatalog {
        let mut installed = Vec::new();
        installed.extend(probe_mariadb());
        installed.extend(probe_postgresql());
        installed.extend(probe_simple(
            "redis",
            &["/usr/bin/redis-server"],
            &["--version"],
            parse_redis,
        ));
        installed.extend(probe_rabbitmq());
        installed.extend(probe_simple(
            "memcached",
            &["/usr/bin/memcached"],
            &["-V"],
            parse_memcached,
        ));
        ServiceCatalog::from_parts(installed, aliases)
    }

    pub fn from_parts(
        mut installed: Vec<InstalledService>,
        aliases: BTreeMap<String, String>,
    ) -> ServiceCatalog {
        installed.sort_by_key(InstalledService::type_name);
        installed.dedup_by(|a, b| a.type_name() == b.type_name());
        ServiceCatalog {
            installed,
            aliases,
            policy: VersionPolicy::default(),
        }
    }

    /// The same catalog under another [`VersionPolicy`].
    pub fn with_policy(mut self, policy: VersionPolicy) -> ServiceCatalog {
        self.policy = policy;
        self
    }

    pub fn installed(&self) -> &[InstalledService] {
        &self.installed
    }

    /// What a config may ask for, as Platform.sh types (`redis` also offers
    /// `redis-persistent`).
    pub fn installed_types(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for s in &self.installed {
            names.push(s.type_name());
            if s.family == "redis" {
                names.push(format!("redis-persistent:{}", s.version));
            }
        }
        names.sort();
        names
    }

    /// Resolves the `type:` of the service called `service_name`.
    pub fn resolve(
        &self,
        service_name: &str,
        type_: &str,
    ) -> Result<ResolvedService, ServiceError> {
        let unavailable = |reason: Option<String>| ServiceError::Unavailable {
            service: service_name.to_owned(),
            requested: type_.to_owned(),
            installed: self.installed_types(),
            reason,
        };
        let (name, version) = type_.split_once(':').unwrap_or((type_, ""));
        let Some((family, kind)) = family_of(name) else {
            return Err(unavailable(None));
        };
        if version.is_empty() {
            return Err(unavailable(Some(format!(
                "the type has no version: write `{name}:<version>`"
            ))));
        }
        let key = matching_version(family, version);
        if let Some(found) = self.find(family, &key) {
            return Ok(resolved(kind, type_, found, Match::Exact));
        }
        // `mysql:10.4` is `mariadb:10.4` for the operator's aliases too.
        let alias = [
            type_.to_owned(),
            format!("{name}:{key}"),
            format!("{family}:{key}"),
        ]
        .iter()
        .find_map(|candidate| self.aliases.get(candidate));
        if let Some(target) = alias {
            let (target_name, target_version) = target.split_once(':').unwrap_or((target, ""));
            let found = family_of(target_name)
                .filter(|(target_family, _)| *target_family == family)
                .and_then(|(f, _)| self.find(f, &matching_version(f, target_version)));
            return match found {
                Some(found) => Ok(resolved(kind, type_, found, Match::OperatorAlias)),
                None => Err(unavailable(Some(format!(
                    "the operator maps it to `{target}`, which is not installed or not the same kind of service"
                )))),
            };
        }
        if self.policy == VersionPolicy::NearestNewer
            && let Some(found) = self.nearest_newer(family, &key)
        {
            return Ok(resolved(kind, type_, found, Match::NearestNewer));
        }
        Err(unavailable(None))
    }

    /// The lowest installed version of `family` above `version`, compared number
    /// by number (`10.11` > `10.6`).
    fn nearest_newer(&self, family: &str, version: &str) -> Option<&InstalledService> {
        let wanted = version_numbers(version)?;
        self.installed
            .iter()
            .filter(|s| s.family == family)
            .filter_map(|s| Some((version_numbers(&s.version)?, s)))
            .filter(|(numbers, _)| *numbers > wanted)
            .min_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, s)| s)
    }

    fn find(&self, family: &str, version: &str) -> Option<&InstalledService> {
        self.installed
            .iter()
            .find(|s| s.family == family && s.version == version)
    }
}

fn resolved(
    kind: ServiceKind,
    requested: &str,
    found: &InstalledService,
    matched: Match,
) -> ResolvedService {
    let provided = match kind {
        ServiceKind::Redis { persistent: true } => format!("redis-persistent:{}", found.version),
        _ => found.type_name(),
    };
    ResolvedService {
        kind,
        requested: requested.to_owned(),
        provided,
        matched,
        full_version: found.full_version.clone(),
        binary: found.binary.clone(),
    }
}

/// The `services.yaml` types Grove runs: servers of these families, and
/// `network-storage` (a volume shared by an environment's apps, no process).
pub const SUPPORTED_TYPES: &[&str] = &[
    "mariadb",
    "mysql",
    "postgresql",
    "redis",
    "redis-persistent",
    "rabbitmq",
    "memcached",
    "network-storage",
];

/// Why Grove cannot run a service of type `name` (`opensearch`, `solr`, …) on any
/// host; `None` for the [`SUPPORTED_TYPES`]. For `config-validate`, which has no
/// server to ask which versions are installed.
pub fn unsupported(name: &str) -> Option<String> {
    (!SUPPORTED_TYPES.contains(&name)).then(|| {
        format!(
            "Grove cannot run `{name}` services yet (it runs {}): a push with this service fails",
            SUPPORTED_TYPES.join(", ")
        )
    })
}

/// The installed family that runs a type name, and the kind it starts as.
/// `mysql` is Platform.sh's alias of `mariadb`; `oracle-mysql` is a different
/// server that we don't have.
fn family_of(name: &str) -> Option<(&'static str, ServiceKind)> {
    Some(match name {
        "mariadb" | "mysql" => ("mariadb", ServiceKind::MariaDb),
        "postgresql" => ("postgresql", ServiceKind::PostgreSql),
        "redis" => ("redis", ServiceKind::Redis { persistent: false }),
        "redis-persistent" => ("redis", ServiceKind::Redis { persistent: true }),
        "rabbitmq" => ("rabbitmq", ServiceKind::RabbitMq),
        "memcached" => ("memcached", ServiceKind::Memcached),
        _ => return None,
    })
}

/// `10.11` as `[10, 11]`; `None` unless every part is a number.
fn version_numbers(version: &str) -> Option<Vec<u64>> {
    version.split('.').map(|part| part.parse().ok()).collect()
}

/// The part of a version that must match: major for PostgreSQL (`15`),
/// major.minor otherwise (`10.11`, `7.0`).
pub fn matching_version(family: &str, version: &str) -> String {
    let parts: Vec<&str> = version.split('.').collect();
    let take = if family == "postgresql" { 1 } else { 2 };
    parts
        .iter()
        .take(take)
        .copied()
        .collect::<Vec<_>>()
        .join(".")
}

fn run_version(binary: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

fn installed(family: &str, full: &str, binary: PathBuf) -> InstalledService {
    InstalledService {
        family: family.to_owned(),
        version: matching_version(family, full),
        full_version: full.to_owned(),
        binary,
    }
}

fn probe_simple(
    family: &str,
    candidates: &[&str],
    args: &[&str],
    parse: fn(&str) -> Option<String>,
) -> Option<InstalledService> {
    candidates.iter().find_map(|candidate| {
        let binary = PathBuf::from(candidate);
        let full = parse(&run_version(&binary, args)?)?;
        Some(installed(family, &full, binary))
    })
}

fn probe_mariadb() -> Option<InstalledService> {
    probe_simple(
        "mariadb",
        &["/usr/sbin/mariadbd", "/usr/bin/mariadbd"],
        &["--version"],
        parse_mariadb,
    )
}

/// Every `/usr/lib/postgresql/<major>/bin/postgres`.
fn probe_postgresql() -> Vec<InstalledService> {
    let Ok(dir) = std::fs::read_dir("/usr/lib/postgresql") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in dir.flatten() {
        let binary = entry.path().join("bin/postgres");
        if let Some(full) =
            run_version(&binary, &["--version"]).and_then(|out| parse_postgresql(&out))
        {
            found.push(installed("postgresql", &full, binary));
        }
    }
    found
}

/// RabbitMQ has no cheap `--version` (the CLI boots an Erlang VM): ask dpkg.
fn probe_rabbitmq() -> Option<InstalledService> {
    let server = ["/usr/lib/rabbitmq/bin/rabbitmq-server"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())?;
    let out = run_version(
        Path::new("/usr/bin/dpkg-query"),
        &["-W", "-f", "${Version}", "rabbitmq-server"],
    )?;
    let full = parse_rabbitmq_dpkg(&out)?;
    Some(installed("rabbitmq", &full, server))
}

/// The first run of digits and dots with at least one dot.
fn first_version(text: &str) -> Option<String> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map(|s| s.trim_matches('.'))
        .find(|s| s.contains('.') && s.starts_with(|c: char| c.is_ascii_digit()))
        .map(str::to_owned)
}

/// `mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64`
pub fn parse_mariadb(output: &str) -> Option<String> {
    let rest = output.split_once(" Ver ")?.1;
    first_version(rest)
}

/// `postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)`
pub fn parse_postgresql(output: &str) -> Option<String> {
    let rest = output.split_once("(PostgreSQL)")?.1;
    first_version(rest)
}

/// `Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 ...`
pub fn parse_redis(output: &str) -> Option<String> {
    let rest = output.split_once("v=")?.1;
    first_version(rest)
}

/// `memcached 1.6.18`
pub fn parse_memcached(output: &str) -> Option<String> {
    let rest = output.strip_prefix("memcached ")?;
    first_version(rest)
}

/// `3.10.8-1.1+deb12u1`
pub fn parse_rabbitmq_dpkg(output: &str) -> Option<String> {
    let upstream = output.trim().split('-').next()?;
    let upstream = upstream.split_once(':').map_or(upstream, |(_, v)| v);
    first_version(upstream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_type_is_a_family_or_a_volume() {
        for name in SUPPORTED_TYPES {
            assert!(
                family_of(name).is_some() || *name == "network-storage",
                "{name}"
            );
            assert_eq!(unsupported(name), None);
        }
        let reason = unsupported("opensearch").expect("not run");
        assert!(reason.contains("`opensearch`"), "{reason}");
    }

    #[test]
    fn version_outputs_parse() {
        let check = |parse: fn(&str) -> Option<String>, out: &str, expected: Option<&str>| {
            assert_eq!(parse(out).as_deref(), expected, "{out}");
        };
        check(
            parse_mariadb,
            "mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64 (Debian 12)",
            Some("10.11.19"),
        );
        check(
            parse_postgresql,
            "postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)\n",
            Some("15.14"),
        );
        check(
            parse_redis,
            "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64",
            Some("7.0.15"),
        );
        check(parse_memcached, "memcached 1.6.18\n", Some("1.6.18"));
        check(parse_rabbitmq_dpkg, "3.10.8-1.1+deb12u1", Some("3.10.8"));
        check(parse_rabbitmq_dpkg, "1:4.0.5-1", Some("4.0.5"));
        check(parse_mariadb, "garbage", None);
    }

    #[test]
    fn matching_versions() {
        assert_eq!(matching_version("postgresql", "15.14"), "15");
        assert_eq!(matching_version("postgresql", "15"), "15");
        assert_eq!(matching_version("mariadb", "10.11.19"), "10.11");
        assert_eq!(matching_version("redis", "7.0"), "7.0");
        assert_eq!(matching_version("redis", "7"), "7");
    }
}
