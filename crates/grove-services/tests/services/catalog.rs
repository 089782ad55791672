use std::collections::BTreeMap;

use grove_services::{InstalledService, Match, ServiceCatalog, VersionPolicy};

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
        ("cache", "redis:5.0"),
        ("db", "mariadb:10.6"),
        ("db", "mysql:10.5"),
        ("pg", "postgresql:11"),
        ("mc", "memcached:1.4"),
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
fn the_exact_policy_refuses_what_the_nearest_policy_substitutes() {
    let nearest = debian12(&[]);
    let exact = debian12(&[]).with_policy(VersionPolicy::Exact);
    let substituted = nearest
        .resolve("cache", "redis:6.0")
        .expect("nearest newer");
    assert_eq!(substituted.provided, "redis:7.0");
    assert_eq!(substituted.matched, Match::NearestNewer);
    let refused = exact.resolve("cache", "redis:6.0").expect_err("exact only");
    assert!(refused.to_string().contains("redis:7.0"), "{refused}");
    // Older is never a substitute, whatever the policy.
    assert!(nearest.resolve("pg", "postgresql:16").is_err());
    assert_eq!(
        exact.resolve("cache", "redis:7.0").expect("exact").matched,
        Match::Exact
    );
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
