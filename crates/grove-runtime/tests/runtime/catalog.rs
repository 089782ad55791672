//! RuntimeCatalog: resolving config runtime types, aliases, probing this host.

use std::collections::BTreeMap;
use std::fmt::Write;

use grove_runtime::{InstalledRuntime, RuntimeCatalog};

fn installed(language: &str, version: &str, binary: &str) -> InstalledRuntime {
    InstalledRuntime {
        language: language.into(),
        version: version.into(),
        full_version: format!("{version}.1"),
        binary: binary.into(),
    }
}

fn catalog() -> RuntimeCatalog {
    let aliases = BTreeMap::from([
        ("python:3.9".to_owned(), "python:3.11".to_owned()),
        ("php:7.4".to_owned(), "php:8.1".to_owned()),
    ]);
    RuntimeCatalog::from_parts(
        vec![
            installed("python", "3.11", "/usr/bin/python3"),
            installed("nodejs", "20", "/usr/bin/node"),
            installed("php", "8.2", "/usr/bin/php8.2"),
            installed("python", "3.12", "/usr/bin/python3.12"),
        ],
        aliases,
    )
    .with_aliases_file("/etc/grove/runtimes.yaml")
}

#[test]
fn resolve_table() {
    let catalog = catalog();
    let mut out = String::new();
    for requested in [
        "python:3.11",
        "python:3.12",
        "python:3.11.4",
        "nodejs:20",
        "nodejs:20.1",
        "php:8.2",
        "python:3.9",
        "python:3.10",
        "python:3",
        "nodejs:18",
        "php:7.4",
        "ruby:3.3",
        "golang:1.22",
        "node:20",
        "go:1.22",
        "cobol:1",
        "python",
    ] {
        let result = match catalog.resolve_type(requested) {
            Ok(resolved) => format!("ok: {resolved} [{}]", resolved.binary.display()),
            Err(e) => format!("error: {e}"),
        };
        writeln!(out, "{requested}\n  {result}").expect("write");
    }
    insta::assert_snapshot!(out);
}

#[test]
fn installed_runtimes_are_listed_in_order() {
    let names: Vec<String> = catalog()
        .installed()
        .iter()
        .map(InstalledRuntime::type_name)
        .collect();
    assert_eq!(
        names,
        ["nodejs:20", "php:8.2", "python:3.11", "python:3.12"]
    );
}

#[test]
fn an_empty_host_says_so() {
    let catalog = RuntimeCatalog::from_parts(vec![], BTreeMap::new());
    let err = catalog
        .resolve("python", "3.11")
        .expect_err("nothing installed");
    insta::assert_snapshot!(err.to_string(), @"runtime `python:3.11` is not installed on this host (installed: none); no python runtime is installed: install python 3.11 on the host");
}

#[test]
fn aliases_file_is_parsed() {
    let text = "aliases:\n  \"python:3.9\": \"python:3.11\"\n  nodejs:18: nodejs:20\n";
    let aliases = RuntimeCatalog::load_aliases(text).expect("valid");
    assert_eq!(
        aliases,
        BTreeMap::from([
            ("nodejs:18".to_owned(), "nodejs:20".to_owned()),
            ("python:3.9".to_owned(), "python:3.11".to_owned()),
        ])
    );
    assert_eq!(
        RuntimeCatalog::load_aliases("").expect("empty"),
        BTreeMap::new()
    );
    assert_eq!(
        RuntimeCatalog::load_aliases("aliases:\n").expect("null"),
        BTreeMap::new()
    );
}

#[test]
fn bad_aliases_files_are_rejected() {
    let mut out = String::new();
    for text in [
        "aliases:\n  python:3.9: [python:3.11\n",
        "aliasses:\n  python:3.9: python:3.11\n",
        "aliases:\n  python:3.9: nodejs:20\n",
        "aliases:\n  python3.9: python:3.11\n",
        "aliases:\n  node:18: node:20\n",
    ] {
        let err = RuntimeCatalog::load_aliases(text).expect_err("invalid");
        writeln!(out, "---\n{text}=> {err}").expect("write");
    }
    insta::assert_snapshot!(out);
}

#[test]
fn missing_aliases_file_means_no_aliases() {
    let dir = tempfile::tempdir().expect("tempdir");
    let aliases = RuntimeCatalog::load_aliases_file(&dir.path().join("runtimes.yaml"))
        .expect("missing is fine");
    assert!(aliases.is_empty());
}

#[test]
fn probe_finds_the_hosts_python_and_only_what_the_sandbox_sees() {
    let catalog = RuntimeCatalog::probe(BTreeMap::new());
    let python = catalog
        .installed()
        .iter()
        .find(|r| r.language == "python")
        .expect("python3 is installed on the test machines");
    assert!(python.version.starts_with("3."), "{python:?}");
    assert!(
        python.full_version.starts_with(&python.version),
        "{python:?}"
    );
    for runtime in catalog.installed() {
        let dir = runtime.binary.parent().expect("a dir");
        assert!(
            ["/usr/bin", "/usr/local/bin", "/bin"].contains(&dir.to_str().expect("utf-8")),
            "{runtime:?}"
        );
    }
    let resolved = catalog
        .resolve("python", &python.version)
        .expect("the probed version resolves");
    assert!(!resolved.via_alias);
}

/// The host of the test machines (Debian 12 with a newer Node.js) plus the images.
fn catalog_with_images(policy: grove_runtime::VersionPolicy) -> RuntimeCatalog {
    RuntimeCatalog::from_parts(
        vec![
            installed("python", "3.11", "/usr/bin/python3"),
            installed("nodejs", "20", "/usr/bin/node"),
            installed("php", "8.2", "/usr/bin/php8.2"),
        ],
        BTreeMap::from([("php:8.1".to_owned(), "php:8.2".to_owned())]),
    )
    .with_aliases_file("/data/runtimes.yaml")
    .with_images(grove_runtime::IMAGES)
    .with_policy(policy)
}

fn resolutions(catalog: &RuntimeCatalog, types: &[&str]) -> String {
    let mut out = String::new();
    for requested in types {
        let result = match catalog.resolve_type(requested) {
            Ok(resolved) => format!(
                "ok: {resolved} [{}{}]",
                resolved.binary.display(),
                resolved
                    .image()
                    .map(|i| format!(" in {}", i.name()))
                    .unwrap_or_default()
            ),
            Err(e) => format!("error: {e}"),
        };
        writeln!(out, "{requested}\n  {result}").expect("write");
    }
    out
}

#[test]
fn version_policy_nearest_newer_minor() {
    let catalog = catalog_with_images(grove_runtime::VersionPolicy::NearestNewerMinor);
    insta::assert_snapshot!(resolutions(
        &catalog,
        &[
            // Exact, from the host first.
            "python:3.11",
            "nodejs:20",
            // Exact, from an image.
            "nodejs:18",
            "python:3.9",
            "php:8.4",
            "golang:1.19",
            // The operator's mapping wins over the policy.
            "php:8.1",
            // Nearest newer minor: the host's, then an image's.
            "python:3.10",
            "python:3.12",
            "php:8.3",
            "golang:1.22",
            // Nothing newer with the same major.
            "python:3.14",
            "nodejs:16",
            "php:5.6",
            // A bare major has no minor to be near to.
            "python:3",
            // Unknown types.
            "cobol:1",
            "node:18",
        ]
    ));
}

#[test]
fn version_policy_exact_only_refuses_with_what_is_installable() {
    let catalog = catalog_with_images(grove_runtime::VersionPolicy::Exact);
    insta::assert_snapshot!(resolutions(
        &catalog,
        &[
            "python:3.11",
            "nodejs:18",
            "php:8.1",
            "python:3.10",
            "golang:1.22"
        ]
    ));
}

#[test]
fn entries_list_the_host_and_the_images_it_lacks() {
    let catalog = catalog_with_images(grove_runtime::VersionPolicy::default());
    let names: Vec<String> = catalog
        .entries()
        .iter()
        .map(|e| match &e.source {
            grove_runtime::RuntimeSource::Host => format!("{}:{} host", e.language, e.version),
            grove_runtime::RuntimeSource::Image(r) => {
                format!("{}:{} {}", e.language, e.version, r.release)
            }
        })
        .collect();
    assert_eq!(
        names,
        [
            "golang:1.15 bullseye",
            "golang:1.19 bookworm",
            "golang:1.24 trixie",
            "nodejs:12 bullseye",
            "nodejs:18 bookworm",
            "nodejs:20 host",
            "php:7.4 bullseye",
            "php:8.2 host",
            "php:8.4 trixie",
            "python:3.9 bullseye",
            "python:3.11 host",
            "python:3.13 trixie",
        ]
    );
}

#[test]
fn runtimes_file_sets_the_version_policy() {
    let (aliases, policy) =
        RuntimeCatalog::load_config("versions: exact\naliases:\n  php:8.1: php:8.2\n")
            .expect("valid");
    assert_eq!(policy, grove_runtime::VersionPolicy::Exact);
    assert_eq!(aliases.len(), 1);
    let (_, policy) =
        RuntimeCatalog::load_config("versions: nearest-newer-minor\n").expect("valid");
    assert_eq!(policy, grove_runtime::VersionPolicy::NearestNewerMinor);
    let (_, policy) = RuntimeCatalog::load_config("").expect("empty");
    assert_eq!(policy, grove_runtime::VersionPolicy::NearestNewerMinor);
    assert!(RuntimeCatalog::load_config("versions: newest\n").is_err());
}
