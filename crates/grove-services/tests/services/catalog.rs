use std::collections::BTreeMap;

use grove_services::{InstalledService, ServiceCatalog};

fn installed(family: &str, full: &str) -> InstalledService {
    InstalledService {
        family: family.to_owned(),
        version: grove_services::catalog::matching_version(family, full),
        full_version: full.to_owned(),
        binary: format!("/usr/bin/{family}").into(),
    }
}

/// What Debian 12 has.
fn debian12(aliases: &[(&str, &str)]) -> ServiceCatalog {
    ServiceCatalog::from_parts(
        vec![
            installed("mariadb", "10.11.19"),
            installed("postgresql", "15.14"),
            installed("redis", "7.0.15"),
            installed("rabbitmq", "3.10.8"),
            installed("memcached", "1.6.18"),
        ],
        aliases
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect::<BTreeMap<_, _>>(),
    )
}

#[test]
fn types_resolve_to_what_is_installed_or_say_why_not() {
    let catalog = debian12(&[
        ("mariadb:10.4", "mariadb:10.11"),
        ("redis:6.2", "postgresql:15"),
    ]);
    let cases = [
        ("db", "mariadb:10.11"),
        ("db", "mysql:10.11"),
        ("db", "mariadb:10.11.5"),
        ("db", "mariadb:10.4"),
        ("db", "mysql:10.4"),
        ("pg", "postgresql:15"),
        ("pg", "postgresql:15.3"),
        ("cache", "redis:7.0"),
        ("sessions", "redis-persistent:7.0"),
        ("queue", "rabbitmq:3.10"),
        ("mc", "memcached:1.6"),
        ("search", "opensearch:2"),
        ("es", "elasticsearch:7.10"),
        ("solr", "solr:9.6"),
        ("kafka", "kafka:3.7"),
        ("oracle", "oracle-mysql:8.4"),
        ("db", "mariadb:99"),
        ("db", "mariadb:11.8"),
        ("pg", "postgresql:16"),
        ("cache", "redis:6.2"),
        ("db", "mariadb"),
    ];
    let table: Vec<String> = cases
        .iter()
        .map(|(name, type_)| match catalog.resolve(name, type_) {
            Ok(resolved) => format!("{name} {type_} -> {resolved} [{:?}]", resolved.kind),
            Err(e) => format!("{name} {type_} -> error: {e}"),
        })
        .collect();
    insta::assert_snapshot!(table.join("\n"));
}

#[test]
fn the_host_has_the_debian_servers() {
    let catalog = crate::support::catalog();
    let types = catalog.installed_types();
    for family in [
        "mariadb:",
        "postgresql:",
        "redis:",
        "redis-persistent:",
        "rabbitmq:",
        "memcached:",
    ] {
        assert!(
            types.iter().any(|t| t.starts_with(family)),
            "{family} missing from {types:?}"
        );
    }
}
