//! Reading services.yaml (spec §3).

use crate::app::{is_valid_name, read_disk, read_relationships, read_size};
use crate::model::{Service, ServiceType, Size};
use crate::read::{KeyUse, Keys, Reader};
use crate::suggest::did_you_mean;
use crate::yaml::{Kind, Node};

use KeyUse::{NotSupportedYet as Later, Supported as Yes};

const SERVICE_KEYS: Keys = &[
    ("type", Yes),
    ("disk", Yes),
    ("configuration", Yes),
    ("relationships", Yes),
    ("size", Yes),
    ("resources", Later),
    ("container_profile", Later),
];

/// Service types of spec §3 with their default endpoint (`None`: no default endpoint,
/// so relationships must name one).
pub(crate) const SERVICE_TYPES: &[(&str, Option<&str>)] = &[
    ("mariadb", Some("mysql")),
    ("mysql", Some("mysql")),
    ("oracle-mysql", Some("mysql")),
    ("postgresql", Some("postgresql")),
    ("redis", Some("redis")),
    ("redis-persistent", Some("redis")),
    ("valkey", Some("valkey")),
    ("valkey-persistent", Some("valkey")),
    ("rabbitmq", Some("rabbitmq")),
    ("elasticsearch", Some("elasticsearch")),
    ("elasticsearch-enterprise", Some("elasticsearch")),
    ("opensearch", Some("opensearch")),
    ("solr", Some("solr")),
    ("memcached", Some("memcached")),
    ("kafka", Some("kafka")),
    ("varnish", Some("http+stats")),
    ("mongodb", Some("mongodb")),
    ("mongodb-enterprise", Some("mongodb")),
    ("chrome-headless", Some("http")),
    ("influxdb", Some("influxdb")),
    ("network-storage", None),
    ("vault-kms", Some("manage_keys")),
    ("gotenberg", Some("http")),
    ("mercure", Some("http")),
    ("clickhouse", Some("clickhouse")),
    ("activemq", Some("activemq")),
];

/// The default endpoint of a service type, if it has one.
pub fn default_endpoint(service_type: &str) -> Option<&'static str> {
    SERVICE_TYPES
        .iter()
        .find(|(t, _)| *t == service_type)
        .and_then(|(_, e)| *e)
}

/// Reads the services mapping (the whole services.yaml, or `services:` in Upsun).
pub(crate) fn read_services(r: &mut Reader<'_, '_>, node: &Node, out: &mut Vec<(Service, Node)>) {
    let Some(entries) = r.map_or_null(node, "services") else {
        return;
    };
    for (name_node, spec) in entries {
        if let Some(service) = read_service(r, name_node, spec) {
            out.push((service, name_node.clone()));
        }
    }
}

fn read_service(r: &mut Reader<'_, '_>, name_node: &Node, spec: &Node) -> Option<Service> {
    let name = name_node.scalar_text()?;
    if !is_valid_name(&name) {
        r.error(
            name_node,
            format!("invalid service name `{name}`"),
            Some("use lowercase letters, digits, `-` and `_`".into()),
        );
        return None;
    }
    let entries = r.map(spec, &name)?;
    r.check_keys(entries, SERVICE_KEYS, "");
    let Some(type_node) = spec.get("type") else {
        r.error(
            name_node,
            format!("service `{name}` has no `type`"),
            Some("e.g. `type: mariadb:11.8`".into()),
        );
        return None;
    };
    let service_type = read_service_type(r, type_node)?;
    if let Some(configuration) = spec.get("configuration") {
        check_configuration(r, &name, &service_type.name, configuration);
    }
    let disk = spec.get("disk").and_then(|d| read_disk(r, d, "disk"));
    let size = spec.get("size").map_or(Size::Auto, |s| read_size(r, s));
    let relationships = spec
        .get("relationships")
        .map(|rels| read_relationships(r, rels, "relationships"))
        .unwrap_or_default();
    Some(Service {
        name,
        service_type,
        disk,
        size,
        configuration: spec
            .get("configuration")
            .map_or_else(|| serde_json::json!({}), Node::to_json),
        relationships,
        config_file: r.file().to_owned(),
    })
}

fn read_service_type(r: &mut Reader<'_, '_>, node: &Node) -> Option<ServiceType> {
    let text = r.string(node, "type")?;
    let Some((name, version)) = text
        .split_once(':')
        .filter(|(n, v)| !n.is_empty() && !v.is_empty())
    else {
        r.error(
            node,
            format!("`type: {text}` must be `<service>:<version>`"),
            Some(if SERVICE_TYPES.iter().any(|(t, _)| *t == text) {
                format!("add a version, e.g. `type: \"{text}:<version>\"`")
            } else {
                "e.g. `type: \"mariadb:11.8\"`".to_owned()
            }),
        );
        return None;
    };
    if !SERVICE_TYPES.iter().any(|(t, _)| *t == name) {
        let hint = match did_you_mean(name, SERVICE_TYPES.iter().map(|(t, _)| *t)) {
            Some(s) => format!("did you mean `{s}:{version}`?"),
            None => format!(
                "known service types: {}",
                SERVICE_TYPES
                    .iter()
                    .map(|(t, _)| *t)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        r.error(node, format!("unknown service type `{name}`"), Some(hint));
        return None;
    }
    Some(ServiceType {
        name: name.to_owned(),
        version: version.to_owned(),
    })
}

/// Privileges an endpoint may have on a schema or database (spec §3).
const PRIVILEGES: &[&str] = &["ro", "rw", "admin", "replication", "replication-admin"];

/// Redis `maxmemory_policy` values.
const MAXMEMORY_POLICIES: &[&str] = &[
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
    "noeviction",
];

/// Checks the parts of `configuration` that other parts refer to: database endpoints
/// and the schemas they name, Solr endpoints and their cores, lists and enumerations.
/// Keys this crate does not know (`properties`, `plugins`, ...) are left alone: they are
/// the service's business.
fn check_configuration(r: &mut Reader<'_, '_>, service: &str, service_type: &str, node: &Node) {
    if node.is_null() {
        return;
    }
    if r.map(node, "configuration").is_none() {
        return;
    }
    match service_type {
        "mariadb" | "mysql" | "oracle-mysql" => {
            check_database_endpoints(r, service, node, "schemas", "default_schema");
        }
        "postgresql" => {
            check_database_endpoints(r, service, node, "databases", "default_database");
            if let Some(extensions) = node.get("extensions") {
                check_string_list(r, extensions, "configuration.extensions");
            }
        }
        "solr" => check_solr(r, service, node),
        "rabbitmq" => {
            if let Some(vhosts) = node.get("vhosts") {
                check_string_list(r, vhosts, "configuration.vhosts");
            }
        }
        "redis" | "redis-persistent" | "valkey" | "valkey-persistent" => {
            if let Some(policy) = node.get("maxmemory_policy")
                && let Some(text) = r.string(policy, "configuration.maxmemory_policy")
                && !MAXMEMORY_POLICIES.contains(&text.as_str())
            {
                let hint = match did_you_mean(&text, MAXMEMORY_POLICIES.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("use one of {}", MAXMEMORY_POLICIES.join(", ")),
                };
                r.error(
                    policy,
                    format!("unknown `maxmemory_policy: {text}`"),
                    Some(hint),
                );
            }
        }
        _ => {}
    }
}

/// A list of strings; reports anything else and returns the strings with their nodes.
fn check_string_list<'n>(
    r: &mut Reader<'_, '_>,
    node: &'n Node,
    what: &str,
) -> Vec<(String, &'n Node)> {
    match &node.kind {
        Kind::Seq(items) => items
            .iter()
            .filter_map(|item| r.string(item, what).map(|s| (s, item)))
            .collect(),
        Kind::Null => Vec::new(),
        _ => {
            r.error(
                node,
                format!("`{what}` must be a list, found {}", node.type_name()),
                Some(match what.rsplit('.').next().unwrap_or(what) {
                    "extensions" => "e.g. `extensions: [pg_trgm]`".to_owned(),
                    key => format!("e.g. `{key}: [main]`"),
                }),
            );
            Vec::new()
        }
    }
}

/// MariaDB/MySQL `schemas` + `endpoints.<name>.{default_schema, privileges}`, and
/// PostgreSQL `databases` + `endpoints.<name>.{default_database, privileges}`: every
/// endpoint may only name schemas the service creates (`main` when none are listed).
fn check_database_endpoints(
    r: &mut Reader<'_, '_>,
    service: &str,
    node: &Node,
    list_key: &str,
    default_key: &'static str,
) {
    let endpoint_keys: &'static [(&'static str, KeyUse)] = if default_key == "default_schema" {
        &[("default_schema", Yes), ("privileges", Yes)]
    } else {
        &[("default_database", Yes), ("privileges", Yes)]
    };
    let declared: Vec<String> = match node.get(list_key) {
        Some(list) => check_string_list(r, list, &format!("configuration.{list_key}"))
            .into_iter()
            .map(|(s, _)| s)
            .collect(),
        None => vec!["main".to_owned()],
    };
    let Some(endpoints_node) = node.get("endpoints") else {
        return;
    };
    let Some(endpoints) = r.map_or_null(endpoints_node, "configuration.endpoints") else {
        return;
    };
    let unknown = |r: &mut Reader<'_, '_>, at: &Node, endpoint: &str, name: &str| {
        let hint = match did_you_mean(name, declared.iter().map(String::as_str)) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!(
                "add it to `configuration.{list_key}` (now: {})",
                declared.join(", ")
            ),
        };
        r.error(
            at,
            format!(
                "endpoint `{endpoint}` of service `{service}` names `{name}`, which is not in `{list_key}`"
            ),
            Some(hint),
        );
    };
    for (name_node, spec) in endpoints {
        let Some(endpoint) = name_node.scalar_text() else {
            continue;
        };
        let ctx = format!("configuration.endpoints.{endpoint}");
        let Some(fields) = r.map_or_null(spec, &ctx) else {
            continue;
        };
        r.check_keys(fields, endpoint_keys, &format!("{ctx}."));
        if let Some(default) = spec.get(default_key)
            && !default.is_null()
            && let Some(text) = r.string(default, &format!("{ctx}.{default_key}"))
            && !declared.contains(&text)
        {
            unknown(r, default, &endpoint, &text);
        }
        let Some(privileges) = spec.get("privileges") else {
            continue;
        };
        let Some(entries) = r.map_or_null(privileges, &format!("{ctx}.privileges")) else {
            continue;
        };
        for (schema_node, privilege) in entries {
            let Some(schema) = schema_node.scalar_text() else {
                continue;
            };
            if !declared.contains(&schema) {
                unknown(r, schema_node, &endpoint, &schema);
            }
            let Some(level) = r.string(privilege, &format!("{ctx}.privileges.{schema}")) else {
                continue;
            };
            if !PRIVILEGES.contains(&level.as_str()) {
                let hint = match did_you_mean(&level, PRIVILEGES.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("use one of {}", PRIVILEGES.join(", ")),
                };
                r.error(
                    privilege,
                    format!("unknown privilege `{level}` for `{schema}` in endpoint `{endpoint}`"),
                    Some(hint),
                );
            }
        }
    }
}

/// Solr `cores.<core>` and `endpoints.<name>.core`: endpoints must name a defined core.
fn check_solr(r: &mut Reader<'_, '_>, service: &str, node: &Node) {
    const ENDPOINT_KEYS: Keys = &[("core", Yes)];
    let cores: Vec<String> = node
        .get("cores")
        .and_then(|c| r.map_or_null(c, "configuration.cores"))
        .map(|entries| {
            entries
                .iter()
                .filter_map(|(k, _)| k.scalar_text())
                .collect()
        })
        .unwrap_or_default();
    let Some(endpoints_node) = node.get("endpoints") else {
        return;
    };
    let Some(endpoints) = r.map_or_null(endpoints_node, "configuration.endpoints") else {
        return;
    };
    for (name_node, spec) in endpoints {
        let Some(endpoint) = name_node.scalar_text() else {
            continue;
        };
        let ctx = format!("configuration.endpoints.{endpoint}");
        let Some(fields) = r.map_or_null(spec, &ctx) else {
            continue;
        };
        r.check_keys(fields, ENDPOINT_KEYS, &format!("{ctx}."));
        let Some(core_node) = spec.get("core") else {
            r.error(
                name_node,
                format!("Solr endpoint `{endpoint}` of service `{service}` has no `core`"),
                Some("name the core it serves: `core: <name of a core under cores>`".into()),
            );
            continue;
        };
        let Some(core) = r.string(core_node, &format!("{ctx}.core")) else {
            continue;
        };
        if !cores.contains(&core) {
            let hint = match did_you_mean(&core, cores.iter().map(String::as_str)) {
                Some(s) => format!("did you mean `{s}`?"),
                None if cores.is_empty() => "define it under `configuration.cores`".to_owned(),
                None => format!("cores of `{service}`: {}", cores.join(", ")),
            };
            r.error(
                core_node,
                format!("Solr endpoint `{endpoint}` of service `{service}` names core `{core}`, which is not defined"),
                Some(hint),
            );
        }
    }
}
