//! An environment's data services: reconciling what `services.yaml` asks for with the
//! instances that run, addressing them, and watching their health.
//!
//! Each instance listens on a loopback address of its own at its type's standard port
//! (`127.64.0.0/10` is handed out one address per running service); inside an app's
//! sandbox, `/etc/hosts` maps every relationship name to it (`database.internal`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use grove_config::{EndpointAccess, Project as ProjectConfig};
use grove_services::{MemoryProfile, RunningService, Secrets, ServiceSpec};
use grove_store::{EnvironmentRow, ProjectRow};

use crate::activity::ActivityLog;
use crate::running::{EnvironmentServices, ServiceEntry, ServiceHealth};
use crate::state::{EnvKey, Platform};

/// Service types that need no server process (network-storage backs `service` mounts).
const PROCESS_LESS: &[&str] = &["network-storage"];
/// A record of which server wrote a service's data, to refuse silent version changes.
const TYPE_FILE: &str = "grove-service.json";

/// Refuses, before anything changes, services this host cannot run and service data
/// written by another server version than the one now asked for.
pub fn check_requested(
    platform: &Platform,
    project: &ProjectRow,
    env: &EnvironmentRow,
    config: &ProjectConfig,
) -> Result<(), String> {
    for service in config
        .services
        .iter()
        .filter(|s| !PROCESS_LESS.contains(&s.service_type.name.as_str()))
    {
        resolve(platform, project, env, service)?;
    }
    Ok(())
}

/// What the host runs for `service`, refusing a silent version change of its data.
fn resolve(
    platform: &Platform,
    project: &ProjectRow,
    env: &EnvironmentRow,
    service: &grove_config::Service,
) -> Result<grove_services::ResolvedService, String> {
    let requested = service.service_type.to_string();
    let r = platform
        .service_catalog
        .resolve(&service.name, &requested)
        .map_err(|e| e.to_string())?;
    let dir = service_dir(platform, project, env, &service.name);
    if let Ok(text) = std::fs::read_to_string(dir.join(TYPE_FILE)) {
        let written_by = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["provided"].as_str().map(str::to_string))
            .unwrap_or_default();
        if !written_by.is_empty() && written_by != r.provided {
            return Err(format!(
                "service `{}` ({}): its data was written by {written_by} and this deploy asks \
                 for {}; Grove cannot upgrade a service's data yet. Keep the version, or use a \
                 new service name (it starts empty)",
                service.name, service.config_file, r.provided
            ));
        }
    }
    Ok(r)
}

/// The running services of an environment and the signatures they were started with.
pub fn signatures(platform: &Platform, key: &EnvKey) -> BTreeMap<String, String> {
    platform.with_services(&key.0, &key.1, |services| {
        services
            .iter()
            .map(|(name, entry)| (name.clone(), entry.signature.clone()))
            .collect()
    })
}

/// Starts one service of the environment, healthy, with `signature` (its type,
/// configuration and size, from the deployment). A running instance with the same
/// signature is kept; one with another is stopped first (its data and passwords stay).
pub async fn start_one(
    platform: &Platform,
    project: &ProjectRow,
    env: &EnvironmentRow,
    service: &grove_config::Service,
    signature: &str,
    log: &ActivityLog,
) -> Result<(), String> {
    if PROCESS_LESS.contains(&service.service_type.name.as_str()) {
        return Ok(());
    }
    let key = (project.id.clone(), env.name.clone());
    let mut current = platform.take_services(&key);
    let result = start_into(
        platform,
        project,
        env,
        service,
        signature,
        &mut current,
        log,
    )
    .await;
    platform.put_services(key, current);
    result
}

async fn start_into(
    platform: &Platform,
    project: &ProjectRow,
    env: &EnvironmentRow,
    service: &grove_config::Service,
    signature: &str,
    current: &mut EnvironmentServices,
    log: &ActivityLog,
) -> Result<(), String> {
    let r = resolve(platform, project, env, service)?;
    let requested = service.service_type.to_string();
    let profile = if env.kind == "production" {
        MemoryProfile::Production
    } else {
        MemoryProfile::Small
    };
    if let Some(entry) = current.get(&service.name) {
        if entry.signature == signature {
            return Ok(());
        }
        log.line(format!(
            "Restarting service `{}`: its configuration changed (data kept)",
            service.name
        ));
        if let Some(entry) = current.remove(&service.name) {
            entry.running.stop().await;
            platform.addresses.release(entry.address);
        }
    }
    let signature = signature.to_string();
    {
        let dir = service_dir(platform, project, env, &service.name);
        let secrets_file = dir.join("secrets.json");
        let secrets = if secrets_file.exists() {
            Secrets::load(&secrets_file).map_err(|e| e.to_string())?
        } else {
            Secrets::default()
        };
        let Some(address) = platform.addresses.allocate(&format!(
            "{}/{}/{}",
            project.id, env.machine_name, service.name
        )) else {
            return Err("no free loopback address for a service".into());
        };
        if let Some(runs_on) = substitute(&r) {
            log.line(format!("warning: service `{}`: {runs_on}", service.name));
        }
        log.line(format!(
            "Starting service `{}` ({requested}) on {address}",
            service.name
        ));
        let started = Instant::now();
        let network = platform
            .network(&(project.id.clone(), env.name.clone()))
            .map_err(|e| {
                platform.addresses.release(address);
                e.to_string()
            })?;
        let spec = ServiceSpec {
            name: service.name.clone(),
            resolved: r.clone(),
            configuration: service.configuration.clone(),
            data_dir: dir.join("data"),
            run_dir: platform
                .settings
                .scratch_dir(&project.id, &env.machine_name)
                .join("services")
                .join(&service.name),
            log_file: platform.settings.log_file(
                &project.id,
                &env.machine_name,
                &format!("service-{}", service.name),
            ),
            address,
            network: grove_runtime::Network::Namespace(network),
            secrets,
            profile,
            cgroup: platform.container_cgroup(
                &project.id,
                &env.machine_name,
                grove_deployment::resources::ContainerKind::Service,
                &service.name,
            ),
        };
        let running = match grove_services::start(spec.clone()).await {
            Ok(running) => running,
            Err(error) => {
                platform.addresses.release(address);
                return Err(format!("service `{}` did not start: {error}", service.name));
            }
        };
        let record = serde_json::json!({ "requested": requested, "provided": r.provided });
        let saved = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join(TYPE_FILE), record.to_string()))
            .map_err(|e| e.to_string())
            .and_then(|()| {
                running
                    .secrets()
                    .save(&secrets_file)
                    .map_err(|e| e.to_string())
            });
        if let Err(error) = saved {
            running.stop().await;
            platform.addresses.release(address);
            return Err(format!(
                "service `{}`: cannot save its state: {error}",
                service.name
            ));
        }
        log.line(format!(
            "  Service `{}` is healthy after {:.2}s",
            service.name,
            started.elapsed().as_secs_f64()
        ));
        let mut spec = spec;
        spec.secrets = running.secrets().clone();
        current.insert(
            service.name.clone(),
            ServiceEntry {
                running: Arc::new(running),
                address,
                requested,
                signature,
                spec,
            },
        );
    }
    Ok(())
}

fn service_dir(
    platform: &Platform,
    project: &ProjectRow,
    env: &EnvironmentRow,
    name: &str,
) -> PathBuf {
    platform
        .settings
        .volume_dir(&project.id, &env.machine_name)
        .join("services")
        .join(name)
}

/// Where an app's relationship to `service`/`endpoint` leads, if it runs.
pub fn endpoint_access(
    services: &EnvironmentServices,
    service: &str,
    endpoint: &str,
) -> Option<EndpointAccess> {
    let entry = services.get(service)?;
    let found = entry
        .running
        .endpoints()
        .into_iter()
        .find(|e| e.name == endpoint)?;
    Some(EndpointAccess {
        ip: found.ip.to_string(),
        port: Some(found.port),
        username: found.username,
        password: found.password,
        path: found.path,
        query: Some(found.query),
    })
}

/// Stops every service of an environment (their data stays where it is).
pub async fn stop_all(
    platform: &Platform,
    services: EnvironmentServices,
    log: Option<&ActivityLog>,
) {
    for (name, entry) in services {
        if let Some(log) = log {
            log.line(format!("  Stopping service `{name}`"));
        }
        entry.running.stop().await;
        platform.addresses.release(entry.address);
    }
}

/// Stops the services a deployment no longer asks for, once it is live (their data
/// stays in the volume).
pub async fn retire(
    platform: &Platform,
    key: &(String, String),
    names: &[String],
    log: &ActivityLog,
) {
    for name in names {
        if let Some(entry) = platform.remove_service(key, name) {
            log.line(format!(
                "Stopping service `{name}`: no longer in services.yaml (its data is kept)"
            ));
            entry.running.stop().await;
            platform.addresses.release(entry.address);
        }
    }
}

/// Services stopped for a moment (a plain copy of their data), to start again.
pub struct Paused(Vec<(String, ServiceEntry)>);

/// Stops an environment's services, keeping their addresses, for a copy of their data
/// that must not change while it is made.
pub async fn pause(platform: &Platform, key: &(String, String)) -> Paused {
    let services = platform.take_services(key);
    for entry in services.values() {
        entry.running.stop().await;
    }
    Paused(services.into_iter().collect())
}

/// Starts paused services again, as they were.
pub async fn resume(
    platform: &Platform,
    key: (String, String),
    paused: Paused,
) -> Result<(), String> {
    let mut services = EnvironmentServices::new();
    let mut failure = None;
    for (name, entry) in paused.0 {
        match grove_services::start(entry.spec.clone()).await {
            Ok(running) => {
                services.insert(
                    name,
                    ServiceEntry {
                        running: Arc::new(running),
                        ..entry
                    },
                );
            }
            Err(error) => {
                platform.addresses.release(entry.address);
                failure = Some(format!("service `{name}` did not start again: {error}"));
            }
        }
    }
    platform.put_services(key, services);
    failure.map_or(Ok(()), Err)
}

/// Consecutive failed checks (5 s apart) after which an environment is degraded.
pub const DEGRADED_AFTER: u32 = 6;
pub const CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// What a health check needs of a running service (taken out of the shared map so
/// that no lock is held while checking).
pub struct ServiceEntryView {
    pub name: String,
    pub running: Arc<RunningService>,
    pub address: Ipv4Addr,
    pub requested: String,
    pub runs_on: Option<String>,
}

impl ServiceEntryView {
    pub fn of(name: &str, entry: &ServiceEntry) -> ServiceEntryView {
        ServiceEntryView {
            name: name.to_string(),
            running: entry.running.clone(),
            address: entry.address,
            requested: entry.requested.clone(),
            runs_on: substitute(&entry.spec.resolved),
        }
    }
}

/// What runs a service instead of the version it asked for, said wherever the
/// service is shown; `None` for an exact match.
pub fn substitute(resolved: &grove_services::ResolvedService) -> Option<String> {
    (resolved.matched != grove_services::Match::Exact).then(|| resolved.to_string())
}

/// Runs one health check of a service and returns its new state.
pub async fn check(entry: &ServiceEntryView, previous: Option<&ServiceHealth>) -> ServiceHealth {
    let result = tokio::time::timeout(Duration::from_secs(10), entry.running.health()).await;
    let error = match result {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("the health check timed out after 10s".to_string()),
    };
    let failures = match (&error, previous) {
        (None, _) => 0,
        (Some(_), Some(p)) => p.failures + 1,
        (Some(_), None) => 1,
    };
    ServiceHealth {
        kind: entry.requested.to_string(),
        runs_on: entry.runs_on.clone(),
        address: entry.address.to_string(),
        healthy: error.is_none(),
        restarts: entry.running.restarts(),
        failures,
        last_error: error.or_else(|| previous.and_then(|p| p.last_error.clone())),
    }
}

/// What to report when a service's health changed: a restart of its process, the
/// moment it becomes degraded, its recovery.
pub fn health_change(
    name: &str,
    before: Option<&ServiceHealth>,
    now: &ServiceHealth,
) -> Option<String> {
    let was_degraded = before.is_some_and(|b| b.failures >= DEGRADED_AFTER);
    if now.failures == DEGRADED_AFTER {
        return Some(format!(
            "Service `{name}` ({}) is degraded: {} health checks failed in a row\nlast error: {}",
            now.kind,
            now.failures,
            now.last_error.as_deref().unwrap_or("unknown")
        ));
    }
    if was_degraded && now.healthy {
        return Some(format!("Service `{name}` ({}) recovered", now.kind));
    }
    let restarts_before = before.map(|b| b.restarts).unwrap_or(0);
    if now.restarts > restarts_before {
        return Some(format!(
            "Service `{name}` ({}) was restarted after its server process exited (restart {} since it was started){}",
            now.kind,
            now.restarts,
            if now.healthy {
                "; it is healthy again"
            } else {
                ""
            }
        ));
    }
    None
}

/// The `/etc/hosts` of an app: `<relationship>.internal` for each relationship.
pub fn hosts_file(relationships: &serde_json::Value) -> String {
    let mut out = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    if let Some(map) = relationships.as_object() {
        for endpoints in map.values() {
            if let Some(first) = endpoints.get(0)
                && let (Some(ip), Some(host)) = (first["ip"].as_str(), first["host"].as_str())
            {
                out.push_str(&format!("{ip}\t{host}\n"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::running::Addresses;

    fn health(failures: u32, restarts: u32) -> ServiceHealth {
        ServiceHealth {
            runs_on: None,
            kind: "mariadb:10.11".into(),
            address: "127.64.0.1".into(),
            healthy: failures == 0,
            restarts,
            failures,
            last_error: (failures > 0).then(|| "connection refused".into()),
        }
    }

    #[test]
    fn health_changes_worth_reporting() {
        let check = |before: Option<ServiceHealth>, now: ServiceHealth, expected: Option<&str>| {
            let got = health_change("db", before.as_ref(), &now);
            match (got, expected) {
                (None, None) => {}
                (Some(got), Some(expected)) => assert!(got.contains(expected), "{got}"),
                (got, expected) => panic!("got {got:?}, expected {expected:?}"),
            }
        };
        check(None, health(0, 0), None);
        check(Some(health(0, 0)), health(0, 0), None);
        check(Some(health(0, 0)), health(0, 1), Some("was restarted"));
        check(Some(health(1, 0)), health(2, 0), None);
        check(
            Some(health(DEGRADED_AFTER - 1, 3)),
            health(DEGRADED_AFTER, 3),
            Some("is degraded: 6 health checks failed in a row"),
        );
        check(
            Some(health(DEGRADED_AFTER + 3, 3)),
            health(DEGRADED_AFTER + 4, 3),
            None,
        );
        check(
            Some(health(DEGRADED_AFTER + 3, 3)),
            health(0, 3),
            Some("recovered"),
        );
    }

    #[test]
    fn addresses_are_unique_loopback_and_reusable() {
        let addresses = Addresses::default();
        let a = addresses.allocate("shop/main/db").expect("a");
        let b = addresses.allocate("shop/main/db").expect("b");
        assert_ne!(a, b, "the same key twice while both run");
        for address in [a, b] {
            let o = address.octets();
            assert_eq!(o[0], 127);
            assert!((64..128).contains(&o[1]), "{address}");
            assert!(o[3] != 0 && o[3] != 255, "{address}");
        }
        addresses.release(a);
        assert_eq!(
            addresses.allocate("shop/main/db"),
            Some(a),
            "stable once free"
        );
    }

    #[test]
    fn hosts_file_maps_relationship_hosts() {
        let rels = serde_json::json!({
            "database": [{"host": "database.internal", "ip": "127.64.0.9"}],
            "redis": [{"host": "redis.internal", "ip": "127.64.1.2"}],
        });
        let hosts = hosts_file(&rels);
        assert!(hosts.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(hosts.contains("127.64.0.9\tdatabase.internal\n"));
        assert!(hosts.contains("127.64.1.2\tredis.internal\n"));
    }
}
