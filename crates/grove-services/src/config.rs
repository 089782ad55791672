//! A service's `configuration` (from services.yaml) as the desired state of the
//! instance: schemas or databases, endpoints with their privileges, extensions,
//! eviction policy, vhosts, server properties. Pure: no IO.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::{ServiceError, ServiceKind, default_endpoint};

/// What an endpoint may do on a schema (MariaDB) or database (PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Privilege {
    /// Read only: `SELECT`.
    Ro,
    /// Read and write data, not the schema.
    Rw,
    /// Everything on the schema, including DDL.
    Admin,
}

impl Privilege {
    fn parse(text: &str) -> Option<Privilege> {
        Some(match text {
            "ro" => Privilege::Ro,
            "rw" => Privilege::Rw,
            "admin" => Privilege::Admin,
            _ => return None,
        })
    }
}

/// One endpoint: a user and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointConfig {
    pub name: String,
    /// The relationship's `path`: the schema/database the endpoint lands in.
    pub default_schema: Option<String>,
    pub privileges: BTreeMap<String, Privilege>,
}

/// The desired state of a service instance.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceConfig {
    /// MariaDB schemas / PostgreSQL databases.
    pub schemas: Vec<String>,
    /// Endpoints in name order; never empty.
    pub endpoints: Vec<EndpointConfig>,
    /// PostgreSQL extensions, created in every database.
    pub extensions: Vec<String>,
    /// MariaDB server properties as `my.cnf` lines (`max_allowed_packet=64M`).
    pub properties: Vec<(String, String)>,
    /// Redis eviction policy.
    pub maxmemory_policy: Option<String>,
    /// RabbitMQ virtual hosts.
    pub vhosts: Vec<String>,
}

impl ServiceConfig {
    /// Validates `configuration` for a service of `kind` named `service`.
    pub fn parse(
        service: &str,
        kind: ServiceKind,
        configuration: &Value,
    ) -> Result<ServiceConfig, ServiceError> {
        let fail = |message: String| ServiceError::Configuration {
            service: service.to_owned(),
            message,
        };
        let empty = serde_json::Map::new();
        let map = match configuration {
            Value::Null => &empty,
            Value::Object(map) => map,
            other => {
                return Err(fail(format!(
                    "expected a mapping, found {}",
                    kind_of(other)
                )));
            }
        };
        let mut config = ServiceConfig::default();
        match kind {
            ServiceKind::MariaDb | ServiceKind::PostgreSql => {
                let (list_key, default_key) = if kind == ServiceKind::MariaDb {
                    ("schemas", "default_schema")
                } else {
                    ("databases", "default_database")
                };
                config.schemas = string_list(map, list_key).map_err(&fail)?;
                for schema in &config.schemas {
                    check_identifier(schema).map_err(|m| fail(format!("{list_key}: {m}")))?;
                }
                if config.schemas.is_empty() {
                    config.schemas.push("main".to_owned());
                }
                config.endpoints =
                    endpoints(map, &config.schemas, list_key, default_key).map_err(&fail)?;
                if config.endpoints.is_empty() {
                    config.endpoints.push(EndpointConfig {
                        name: default_endpoint(kind).to_owned(),
                        default_schema: config.schemas.first().cloned(),
                        privileges: config
                            .schemas
                            .iter()
                            .map(|s| (s.clone(), Privilege::Admin))
                            .collect(),
                    });
                }
                if kind == ServiceKind::PostgreSql {
                    config.extensions = string_list(map, "extensions").map_err(&fail)?;
                    for ext in &config.extensions {
                        check_extension(ext).map_err(|m| fail(format!("extensions: {m}")))?;
                    }
                } else {
                    config.properties = mariadb_properties(map).map_err(&fail)?;
                }
            }
            ServiceKind::Redis { persistent } => {
                config.maxmemory_policy = Some(match map.get("maxmemory_policy") {
                    None | Some(Value::Null) => if persistent {
                        "noeviction"
                    } else {
                        "allkeys-lru"
                    }
                    .to_owned(),
                    Some(Value::String(p)) if REDIS_POLICIES.contains(&p.as_str()) => p.clone(),
                    Some(other) => {
                        return Err(fail(format!(
                            "maxmemory_policy: {} is not one of {}",
                            render_value(other),
                            REDIS_POLICIES.join(", ")
                        )));
                    }
                });
                config.endpoints.push(simple_endpoint(kind));
            }
            ServiceKind::RabbitMq => {
                config.vhosts = string_list(map, "vhosts").map_err(&fail)?;
                for vhost in &config.vhosts {
                    if vhost.is_empty()
                        || vhost.len() > 255
                        || vhost
                            .chars()
                            .any(|c| c.is_control() || c == '"' || c == '\\')
                    {
                        return Err(fail(format!("vhosts: invalid vhost name `{vhost}`")));
                    }
                }
                if config.vhosts.is_empty() {
                    config.vhosts.push("/".to_owned());
                }
                config.endpoints.push(simple_endpoint(kind));
            }
            ServiceKind::Memcached => config.endpoints.push(simple_endpoint(kind)),
        }
        Ok(config)
    }

    pub fn endpoint_names(&self) -> Vec<String> {
        self.endpoints.iter().map(|e| e.name.clone()).collect()
    }
}

/// Endpoints whose names the secrets file needs: the configured ones of a
/// service, so that a caller can generate passwords before [`crate::start`].
pub fn endpoint_names(
    service: &str,
    kind: ServiceKind,
    configuration: &Value,
) -> Result<Vec<String>, ServiceError> {
    Ok(ServiceConfig::parse(service, kind, configuration)?.endpoint_names())
}

const REDIS_POLICIES: &[&str] = &[
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
];

fn simple_endpoint(kind: ServiceKind) -> EndpointConfig {
    EndpointConfig {
        name: default_endpoint(kind).to_owned(),
        default_schema: None,
        privileges: BTreeMap::new(),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn render_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("`{s}`"),
        other => kind_of(other).to_owned(),
    }
}

fn string_list(map: &serde_json::Map<String, Value>, key: &str) -> Result<Vec<String>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => {
            let mut out: Vec<String> = Vec::new();
            for item in items {
                match item {
                    Value::String(s) if !out.contains(s) => out.push(s.clone()),
                    Value::String(_) => {}
                    other => {
                        return Err(format!(
                            "{key}: expected a list of names, found {} in it",
                            kind_of(other)
                        ));
                    }
                }
            }
            Ok(out)
        }
        Some(other) => Err(format!("{key}: expected a list, found {}", kind_of(other))),
    }
}

/// Names we put in SQL (quoted, but also kept boring so that they mean the
/// same in MariaDB, PostgreSQL, URLs and file names).
fn check_identifier(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid name `{name}`: use up to 63 letters, digits, `_` and `-`"
        ))
    }
}

fn check_extension(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!("invalid extension name `{name}`"))
    }
}

fn endpoints(
    map: &serde_json::Map<String, Value>,
    schemas: &[String],
    list_key: &str,
    default_key: &str,
) -> Result<Vec<EndpointConfig>, String> {
    let raw = match map.get("endpoints") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(raw)) => raw,
        Some(other) => {
            return Err(format!(
                "endpoints: expected a mapping, found {}",
                kind_of(other)
            ));
        }
    };
    let mut out = Vec::new();
    for (name, value) in raw {
        check_identifier(name).map_err(|m| format!("endpoints: {m}"))?;
        let empty = serde_json::Map::new();
        let fields = match value {
            Value::Object(fields) => fields,
            Value::Null => &empty,
            other => {
                return Err(format!(
                    "endpoints.{name}: expected a mapping, found {}",
                    kind_of(other)
                ));
            }
        };
        let default_schema = match fields.get(default_key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if schemas.contains(s) => Some(s.clone()),
            Some(Value::String(s)) => {
                return Err(format!(
                    "endpoints.{name}.{default_key}: `{s}` is not in `{list_key}` ({})",
                    schemas.join(", ")
                ));
            }
            Some(other) => {
                return Err(format!(
                    "endpoints.{name}.{default_key}: expected a name, found {}",
                    kind_of(other)
                ));
            }
        };
        let mut privileges = BTreeMap::new();
        match fields.get("privileges") {
            None | Some(Value::Null) => {}
            Some(Value::Object(raw)) => {
                for (schema, privilege) in raw {
                    if !schemas.contains(schema) {
                        return Err(format!(
                            "endpoints.{name}.privileges: `{schema}` is not in `{list_key}` ({})",
                            schemas.join(", ")
                        ));
                    }
                    let parsed = privilege.as_str().and_then(Privilege::parse).ok_or_else(|| {
                        let hint = match privilege.as_str() {
                            Some(p) if p.starts_with("replication") => {
                                " (replication endpoints are not supported)"
                            }
                            _ => "",
                        };
                        format!(
                            "endpoints.{name}.privileges.{schema}: {} is not one of ro, rw, admin{hint}",
                            render_value(privilege)
                        )
                    })?;
                    privileges.insert(schema.clone(), parsed);
                }
            }
            Some(other) => {
                return Err(format!(
                    "endpoints.{name}.privileges: expected a mapping, found {}",
                    kind_of(other)
                ));
            }
        }
        out.push(EndpointConfig {
            name: name.clone(),
            default_schema,
            privileges,
        });
    }
    Ok(out)
}

/// MariaDB variables a service may set as they are.
const PASSTHROUGH_PROPERTIES: &[&str] = &[
    "optimizer_switch",
    "optimizer_use_condition_selectivity",
    "innodb_strict_mode",
    "table_definition_cache",
    "table_open_cache",
    "max_connections",
    "wait_timeout",
    "interactive_timeout",
    "lock_wait_timeout",
    "innodb_lock_wait_timeout",
    "tmp_table_size",
    "max_heap_table_size",
    "group_concat_max_len",
    "log_bin_trust_function_creators",
    "innodb_file_per_table",
    "innodb_buffer_pool_size",
    "innodb_log_file_size",
    "max_statement_time",
    "long_query_time",
    "slow_query_log",
];

/// Platform.sh's MariaDB `properties`, as my.cnf lines.
fn mariadb_properties(
    map: &serde_json::Map<String, Value>,
) -> Result<Vec<(String, String)>, String> {
    let raw = match map.get("properties") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(raw)) => raw,
        Some(other) => {
            return Err(format!(
                "properties: expected a mapping, found {}",
                kind_of(other)
            ));
        }
    };
    let mut out = Vec::new();
    for (key, value) in raw {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => if *b { "ON" } else { "OFF" }.to_owned(),
            other => {
                return Err(format!(
                    "properties.{key}: expected a value, found {}",
                    kind_of(other)
                ));
            }
        };
        if text.chars().any(|c| c.is_control()) {
            return Err(format!(
                "properties.{key}: the value contains a control character"
            ));
        }
        let simple = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-,=.".contains(c))
        };
        let line = match key.as_str() {
            // Platform.sh gives it in MB.
            "max_allowed_packet" => match value.as_u64() {
                Some(mb) if (1..=1024).contains(&mb) => {
                    ("max_allowed_packet".to_owned(), format!("{mb}M"))
                }
                _ => {
                    return Err(format!(
                        "properties.max_allowed_packet: expected a number of MB from 1 to 1024, found {}",
                        render_value(value)
                    ));
                }
            },
            "default_charset" if simple(&text) => ("character-set-server".to_owned(), text),
            "default_collation" if simple(&text) => ("collation-server".to_owned(), text),
            "sql_mode"
                if text
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_' || c == ',') =>
            {
                (key.clone(), text)
            }
            other if PASSTHROUGH_PROPERTIES.contains(&other) && simple(&text) => {
                (key.clone(), text)
            }
            _ => {
                return Err(format!(
                    "properties.{key}: not a supported MariaDB property, or an invalid value `{text}`"
                ));
            }
        };
        out.push(line);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(kind: ServiceKind, config: Value) -> Result<ServiceConfig, String> {
        ServiceConfig::parse("db", kind, &config).map_err(|e| e.to_string())
    }

    #[test]
    fn mariadb_defaults_to_main_schema_and_mysql_admin_endpoint() {
        let config = parse(ServiceKind::MariaDb, Value::Null).expect("valid");
        assert_eq!(config.schemas, vec!["main"]);
        assert_eq!(
            config.endpoints,
            vec![EndpointConfig {
                name: "mysql".into(),
                default_schema: Some("main".into()),
                privileges: [("main".to_owned(), Privilege::Admin)].into(),
            }]
        );
    }

    #[test]
    fn mariadb_endpoints_and_properties() {
        let config = parse(
            ServiceKind::MariaDb,
            json!({
                "schemas": ["main", "legacy"],
                "endpoints": {
                    "admin": {"default_schema": "main", "privileges": {"main": "admin", "legacy": "rw"}},
                    "reporter": {"privileges": {"main": "ro"}},
                },
                "properties": {"max_allowed_packet": 64, "default_charset": "utf8mb4"},
            }),
        )
        .expect("valid");
        assert_eq!(config.endpoint_names(), vec!["admin", "reporter"]);
        assert_eq!(config.endpoints[1].default_schema, None);
        assert_eq!(config.endpoints[0].privileges["legacy"], Privilege::Rw);
        assert_eq!(
            config.properties,
            vec![
                ("character-set-server".to_owned(), "utf8mb4".to_owned()),
                ("max_allowed_packet".to_owned(), "64M".to_owned()),
            ]
        );
    }

    #[test]
    fn postgresql_databases_and_extensions() {
        let config = parse(
            ServiceKind::PostgreSql,
            json!({"databases": ["main"], "extensions": ["pg_trgm", "hstore"]}),
        )
        .expect("valid");
        assert_eq!(config.endpoint_names(), vec!["postgresql"]);
        assert_eq!(config.extensions, vec!["pg_trgm", "hstore"]);
    }

    #[test]
    fn redis_policy_defaults_depend_on_persistence() {
        let ephemeral =
            parse(ServiceKind::Redis { persistent: false }, Value::Null).expect("valid");
        let persistent =
            parse(ServiceKind::Redis { persistent: true }, Value::Null).expect("valid");
        assert_eq!(ephemeral.maxmemory_policy.as_deref(), Some("allkeys-lru"));
        assert_eq!(persistent.maxmemory_policy.as_deref(), Some("noeviction"));
        let lfu = parse(
            ServiceKind::Redis { persistent: false },
            json!({"maxmemory_policy": "allkeys-lfu"}),
        )
        .expect("valid");
        assert_eq!(lfu.maxmemory_policy.as_deref(), Some("allkeys-lfu"));
    }

    #[test]
    fn invalid_configurations_say_what_is_wrong() {
        let errors: Vec<String> = [
            (ServiceKind::MariaDb, json!(["main"])),
            (ServiceKind::MariaDb, json!({"schemas": "main"})),
            (ServiceKind::MariaDb, json!({"schemas": ["a;drop"]})),
            (
                ServiceKind::MariaDb,
                json!({"endpoints": {"x": {"default_schema": "other"}}}),
            ),
            (
                ServiceKind::MariaDb,
                json!({"endpoints": {"x": {"privileges": {"main": "owner"}}}}),
            ),
            (
                ServiceKind::MariaDb,
                json!({"endpoints": {"x": {"privileges": {"main": "replication"}}}}),
            ),
            (
                ServiceKind::MariaDb,
                json!({"properties": {"max_allowed_packet": "big"}}),
            ),
            (
                ServiceKind::MariaDb,
                json!({"properties": {"datadir": "/etc"}}),
            ),
            (ServiceKind::PostgreSql, json!({"extensions": ["bad name"]})),
            (
                ServiceKind::Redis { persistent: true },
                json!({"maxmemory_policy": "sometimes"}),
            ),
            (ServiceKind::RabbitMq, json!({"vhosts": ["a\"b"]})),
        ]
        .into_iter()
        .map(|(kind, config)| {
            parse(kind, config)
                .err()
                .unwrap_or_else(|| "(accepted)".into())
        })
        .collect();
        insta::assert_snapshot!(errors.join("\n"));
    }
}
