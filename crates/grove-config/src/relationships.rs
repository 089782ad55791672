//! `PLATFORM_RELATIONSHIPS` (spec §5.2) and Upsun's flattened `<REL>_<FIELD>` variables.
//!
//! The services layer knows where a service instance runs and its credentials; this
//! module knows the shape the platform gives that information, per service type.

use serde_json::{Map, Value, json};

use crate::model::{App, Project};
use crate::services::default_endpoint;

/// What the services layer knows about one running endpoint of a service.
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointAccess {
    /// The instance's IP address.
    pub ip: String,
    /// The port; `None` uses the service type's standard port.
    pub port: Option<u16>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Database name, Solr core path, ...; `None` gives JSON null.
    pub path: Option<String>,
    /// `None` uses the type's default (`{"is_master": true}` for MySQL, `[]` for Redis...).
    pub query: Option<Value>,
}

/// Where the relationships are opened.
#[derive(Clone, Copy, Debug)]
pub struct RelationshipContext<'a> {
    pub project: &'a str,
    /// The environment's machine name.
    pub environment: &'a str,
}

/// The URL scheme and standard port of a service type (or of an app, `http`/80).
pub fn endpoint_scheme_and_port(service_type: &str) -> (&'static str, u16) {
    match service_type {
        "mariadb" | "mysql" | "oracle-mysql" => ("mysql", 3306),
        "postgresql" => ("pgsql", 5432),
        "redis" | "redis-persistent" | "valkey" | "valkey-persistent" => ("redis", 6379),
        "rabbitmq" => ("amqp", 5672),
        "activemq" => ("stomp", 61613),
        "elasticsearch" | "elasticsearch-enterprise" | "opensearch" => ("http", 9200),
        "solr" => ("solr", 8080),
        "memcached" => ("memcached", 11211),
        "kafka" => ("kafka", 9092),
        "mongodb" | "mongodb-enterprise" => ("mongodb", 27017),
        "influxdb" => ("http", 8086),
        "chrome-headless" => ("http", 9222),
        "clickhouse" => ("http", 8123),
        _ => ("http", 80),
    }
}

/// One endpoint object, as an app finds it under its relationship name.
pub fn relationship_endpoint(
    rel_name: &str,
    service: &str,
    service_type: &str,
    type_version: &str,
    endpoint: &str,
    access: &EndpointAccess,
    ctx: &RelationshipContext<'_>,
) -> Value {
    let (scheme, default_port) = endpoint_scheme_and_port(service_type);
    let port = access.port.unwrap_or(default_port);
    let host = format!("{rel_name}.internal");
    let hostname = format!(
        "{service}.{}.{}.service._.grove",
        ctx.environment, ctx.project
    );
    let cluster = format!("{}-{}", ctx.project, ctx.environment);
    let full_type = format!("{service_type}:{type_version}");
    // Memcached and Kafka carry only the addressing fields (spec §5.2).
    if matches!(service_type, "memcached" | "kafka") {
        return json!({
            "service": service, "ip": access.ip, "hostname": hostname, "cluster": cluster,
            "host": host, "rel": endpoint, "scheme": scheme, "type": full_type, "port": port,
        });
    }
    let default_query = match service_type {
        "mariadb" | "mysql" | "oracle-mysql" | "postgresql" => json!({"is_master": true}),
        "redis" | "redis-persistent" | "valkey" | "valkey-persistent" => json!([]),
        _ => json!({}),
    };
    json!({
        "username": access.username,
        "password": access.password,
        "scheme": scheme,
        "host": host,
        "port": port,
        "path": access.path,
        "query": access.query.clone().unwrap_or(default_query),
        "fragment": null,
        "service": service,
        "rel": endpoint,
        "ip": access.ip,
        "hostname": hostname,
        "cluster": cluster,
        "type": full_type,
        "public": false,
        "host_mapped": false,
        "epoch": 0,
        "instance_ips": [access.ip],
    })
}

/// The decoded `PLATFORM_RELATIONSHIPS` of `app`: relationship name -> `[endpoint]`.
/// `access(service, endpoint)` says where each endpoint runs; relationships it returns
/// `None` for are left out (their service is not running).
pub fn relationships_json(
    project: &Project,
    app: &App,
    ctx: &RelationshipContext<'_>,
    access: &dyn Fn(&str, &str) -> Option<EndpointAccess>,
) -> Value {
    let mut out = Map::new();
    for (rel_name, rel) in &app.relationships {
        let (service_type, version, endpoint) = if let Some(service) = project.service(&rel.service)
        {
            let endpoint = rel
                .endpoint
                .clone()
                .or_else(|| default_endpoint(&service.service_type.name).map(str::to_owned))
                .unwrap_or_default();
            (
                service.service_type.name.clone(),
                service.service_type.version.clone(),
                endpoint,
            )
        } else if let Some(other) = project.app(&rel.service) {
            (
                other.runtime.language.clone(),
                other.runtime.version.clone(),
                "http".to_owned(),
            )
        } else {
            continue;
        };
        let Some(found) = access(&rel.service, &endpoint) else {
            continue;
        };
        let object = relationship_endpoint(
            rel_name,
            &rel.service,
            &service_type,
            &version,
            &endpoint,
            &found,
            ctx,
        );
        out.insert(rel_name.clone(), Value::Array(vec![object]));
    }
    Value::Object(out)
}

/// Upsun's service variables: the first endpoint of every relationship flattened to
/// `<REL>_<FIELD>` (characters outside `[0-9A-Z_]` become `_`), plus `<REL>_URL`.
pub fn relationship_variables(relationships: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(rels) = relationships.as_object() else {
        return out;
    };
    for (name, endpoints) in rels {
        let Some(endpoint) = endpoints.get(0).and_then(Value::as_object) else {
            continue;
        };
        let prefix = env_name(name);
        out.push((format!("{prefix}_URL"), endpoint_url(endpoint)));
        let mut fields: Vec<(&String, &Value)> = endpoint.iter().collect();
        fields.sort_by(|a, b| a.0.cmp(b.0));
        for (field, value) in fields {
            let text = match value {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                Value::Array(items) if items.iter().all(Value::is_string) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            out.push((format!("{prefix}_{}", env_name(field)), text));
        }
    }
    out
}

fn env_name(name: &str) -> String {
    name.to_ascii_uppercase()
        .chars()
        .map(|c| {
            if c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `scheme://user:password@host:port/path`, leaving out what the endpoint does not have.
fn endpoint_url(endpoint: &Map<String, Value>) -> String {
    let field = |k: &str| {
        endpoint
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let mut url = format!("{}://", field("scheme").unwrap_or("http"));
    if let Some(user) = field("username") {
        url.push_str(user);
        if let Some(password) = field("password") {
            url.push(':');
            url.push_str(password);
        }
        url.push('@');
    }
    url.push_str(field("host").unwrap_or_default());
    if let Some(port) = endpoint.get("port").and_then(Value::as_u64) {
        url.push_str(&format!(":{port}"));
    }
    if let Some(path) = field("path") {
        url.push('/');
        url.push_str(path.trim_start_matches('/'));
    }
    url
}
