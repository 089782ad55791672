//! Reading services.yaml (spec §3).

use crate::app::{is_valid_name, read_disk, read_relationships};
use crate::model::{Service, ServiceType};
use crate::read::{KeyUse, Keys, Reader};
use crate::suggest::did_you_mean;
use crate::yaml::Node;

use KeyUse::{NotSupportedYet as Later, Supported as Yes};

const SERVICE_KEYS: Keys = &[
    ("type", Yes),
    ("disk", Yes),
    ("configuration", Yes),
    ("relationships", Yes),
    ("size", Later),
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
    let disk = spec.get("disk").and_then(|d| read_disk(r, d, "disk"));
    let relationships = spec
        .get("relationships")
        .map(|rels| read_relationships(r, rels, "relationships"))
        .unwrap_or_default();
    Some(Service {
        name,
        service_type,
        disk,
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
