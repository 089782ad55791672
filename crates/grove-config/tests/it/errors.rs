//! Rendered diagnostics for invalid configurations, one snapshot per case.

use crate::load_files;

/// Loads `files`, which must fail, and snapshots the rendered errors and warnings.
fn check(name: &str, files: &[(&str, &str)]) {
    let rendered = match load_files(files) {
        Ok(project) => panic!(
            "{name}: expected errors, got a project with apps {:?}",
            project.apps.iter().map(|a| &a.name).collect::<Vec<_>>()
        ),
        Err(errors) => errors.to_string(),
    };
    insta::assert_snapshot!(name, rendered);
}

const APP: &str = "name: app\ntype: python:3.12\nweb:\n  commands:\n    start: python app.py\n";

#[test]
fn rendered_errors() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("no_config", &[("README.md", "hello")]),
        (
            "yaml_syntax",
            &[(".platform.app.yaml", "name: app\ntype: [python:3.12\n")],
        ),
        (
            "yaml_tab_indent",
            &[(
                ".platform.app.yaml",
                "name: app\ntype: python:3.12\nhooks:\n\tbuild: x\n",
            )],
        ),
        (
            "yaml_duplicate_key",
            &[(
                ".platform.app.yaml",
                "name: app\nname: other\ntype: python:3.12\n",
            )],
        ),
        (
            "missing_name",
            &[(".platform.app.yaml", "type: python:3.12\n")],
        ),
        ("missing_type", &[(".platform.app.yaml", "name: app\n")]),
        (
            "type_without_version",
            &[(".platform.app.yaml", "name: app\ntype: python\n")],
        ),
        (
            "type_malformed",
            &[(".platform.app.yaml", "name: app\ntype: 'py thon:3'\n")],
        ),
        (
            "type_unknown_runtime",
            &[(".platform.app.yaml", "name: app\ntype: pyhton:3.12\n")],
        ),
        (
            "invalid_name",
            &[(".platform.app.yaml", "name: My App\ntype: python:3.12\n")],
        ),
        (
            "unknown_key_suggestion",
            &[(
                ".platform.app.yaml",
                "name: app\ntype: php:8.3\nrelationship:\n  database: 'db:mysql'\n",
            )],
        ),
        (
            "unknown_key_no_suggestion",
            &[(
                ".platform.app.yaml",
                "name: app\ntype: php:8.3\nfrobnicate: true\n",
            )],
        ),
        (
            "nested_unknown_key",
            &[(
                ".platform.app.yaml",
                "name: app\ntype: php:8.3\nhooks:\n  biuld: make\n",
            )],
        ),
        (
            "wrong_value_types",
            &[(
                ".platform.app.yaml",
                "name: app\ntype: php:8.3\ndisk: lots\nhooks: [a, b]\nweb:\n  commands:\n    start: [python]\n",
            )],
        ),
        (
            "unknown_size",
            &[(
                ".platform.app.yaml",
                "name: app\ntype: php:8.3\nsize: XXL\n",
            )],
        ),
        (
            "disk_too_small",
            &[(".platform.app.yaml", "name: app\ntype: php:8.3\ndisk: 64\n")],
        ),
        (
            "duplicate_app_names",
            &[
                ("a/.platform.app.yaml", "name: app\ntype: php:8.3\n"),
                ("b/.platform.app.yaml", "name: app\ntype: php:8.3\n"),
            ],
        ),
        (
            "route_unknown_app",
            &[
                (".platform.app.yaml", APP),
                (
                    ".platform/routes.yaml",
                    "\"https://{default}/\":\n  type: upstream\n  upstream: \"ap:http\"\n",
                ),
            ],
        ),
        (
            "route_malformed_keys",
            &[
                (".platform.app.yaml", APP),
                (
                    ".platform/routes.yaml",
                    "\"{default}/\":\n  type: upstream\n  upstream: app:http\n\"https://{defualt}/\":\n  type: upstream\n  upstream: app:http\n\"https://{default}:8443/\":\n  type: upstream\n  upstream: app:http\n",
                ),
            ],
        ),
        (
            "route_missing_fields",
            &[
                (".platform.app.yaml", APP),
                (
                    ".platform/routes.yaml",
                    "\"https://{default}/\":\n  upstream: app:http\n\"https://www.{default}/\":\n  type: redirect\n\"https://api.{default}/\":\n  type: upstream\n  upstream: app\n\"https://x.{default}/\":\n  type: rewrite\n",
                ),
            ],
        ),
        (
            "relationship_unknown_service",
            &[
                (
                    ".platform.app.yaml",
                    "name: app\ntype: php:8.3\nrelationships:\n  database: 'mysqldb:mysql'\n  cache:\n",
                ),
                (
                    ".platform/services.yaml",
                    "mysqldb2:\n  type: mariadb:11.4\n  disk: 1024\n",
                ),
            ],
        ),
        (
            "service_errors",
            &[
                (".platform.app.yaml", "name: app\ntype: php:8.3\n"),
                (
                    ".platform/services.yaml",
                    "db:\n  type: mariadbb:11.4\ncache:\n  type: redis\nsearch:\n  disk: 1024\n",
                ),
            ],
        ),
        (
            "service_configuration_errors",
            &[
                (
                    ".platform.app.yaml",
                    "name: app\ntype: php:8.3\nrelationships:\n  pg: 'pg:reporting'\n",
                ),
                (
                    ".platform/services.yaml",
                    "pg:\n  type: postgresql:16\n  configuration:\n    databases: [main, legacy]\n    endpoints:\n      reporting:\n        default_database: analytics\n        default_schema: main\n        privileges: {legacy: ro, main: amdin}\n    extensions: pg_trgm\ncache:\n  type: redis:7.2\n  configuration: {maxmemory_policy: allkeys-lur}\nqueue:\n  type: rabbitmq:3.13\n  configuration: {vhosts: {main: true}}\nsearch:\n  type: solr:9.6\n  configuration:\n    endpoints:\n      main: {}\n",
                ),
            ],
        ),
        (
            "mount_errors",
            &[(
                ".platform.app.yaml",
                "name: app\ntype: php:8.3\nmounts:\n  '../etc': {source: local}\n  'var': 'shared:stuff'\n  'tmp': {source: floppy}\n  'up': {source_path: up}\n",
            )],
        ),
        (
            "cron_errors",
            &[(
                ".platform.app.yaml",
                "name: app\ntype: php:8.3\ncrons:\n  a:\n    spec: '61 * * * *'\n    cmd: run\n  b:\n    spec: '* * *'\n    commands: {start: run}\n  c:\n    spec: '@daily'\n",
            )],
        ),
        (
            "applications_yaml_unknown_root",
            &[(
                ".platform/applications.yaml",
                "app:\n  type: python:3.12\n  web: {commands: {start: x}}\napi:\n  type: python:3.12\n  source: {root: nowhere}\n  web: {commands: {start: x}}\n",
            )],
        ),
        (
            "nested_mount_containing_itself",
            &[(
                ".platform.app.yaml",
                "name: app\ntype: php:8.3\ndisk: 512\nmounts:\n  web: {source: local, source_path: files/web}\n  web/uploads: {source: local, source_path: files}\n  var: {source: tmp, source_path: var}\n  var/cache: {source: tmp, source_path: ''}\n",
            )],
        ),
        (
            "upsun_unknown_top_level",
            &[(
                ".upsun/config.yaml",
                "applications:\n  app:\n    type: python:3.12\n    web: {commands: {start: x}}\nservice:\n  db: {type: 'mariadb:11.4'}\n",
            )],
        ),
        (
            "circular_app_relationships",
            &[
                (
                    ".platform/applications.yaml",
                    "a:\n  type: python:3.12\n  source: {root: a}\n  web: {commands: {start: x}}\n  relationships: {b: 'b:http'}\nb:\n  type: python:3.12\n  source: {root: b}\n  web: {commands: {start: x}}\n  relationships: {a: 'a:http'}\n",
                ),
                ("a/main.py", ""),
                ("b/main.py", ""),
            ],
        ),
        (
            "control_character",
            &[(
                ".platform.app.yaml",
                "name: app\ntype: php:8.3\nhooks:\n  build: \u{0}",
            )],
        ),
        ("not_a_mapping", &[(".platform.app.yaml", "- name: app\n")]),
        (
            "expires_invalid",
            &[(
                ".platform.app.yaml",
                "name: app\ntype: php:8.3\nweb:\n  locations:\n    '/':\n      root: public\n      expires: 1 year\n",
            )],
        ),
        (
            "max_request_size_invalid",
            &[(
                ".platform.app.yaml",
                "name: app\ntype: php:8.3\nweb:\n  locations:\n    '/':\n      root: public\n      request_buffering:\n        max_request_size: 250 MB\n",
            )],
        ),
    ];
    for (name, files) in cases {
        check(name, files);
    }
}

#[test]
fn refuses_huge_files() {
    let big = format!(
        "name: app\ntype: php:8.3\nhooks:\n  build: |\n{}",
        "    echo hello\n".repeat(100_000)
    );
    let err = load_files(&[(".platform.app.yaml", &big)]).expect_err("too large");
    assert!(err.errors[0].message.contains("too large"), "{err}");
}

#[test]
fn refuses_deep_nesting() {
    let deep = format!(
        "name: app\ntype: php:8.3\nvariables:\n  x: {}{}\n",
        "[".repeat(200),
        "]".repeat(200)
    );
    let err = load_files(&[(".platform.app.yaml", &deep)]).expect_err("too deep");
    assert_eq!(err.errors[0].file, ".platform.app.yaml");
    assert!(err.errors[0].line > 0, "{err}");
}

#[test]
fn refuses_alias_bombs() {
    let mut bomb = String::from(
        "name: app\ntype: php:8.3\nvariables:\n  x:\n    a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n",
    );
    for i in 1..12 {
        let prev = i - 1;
        bomb.push_str(&format!("    a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"));
    }
    let err = load_files(&[(".platform.app.yaml", &bomb)]).expect_err("alias bomb");
    assert!(err.errors[0].message.starts_with("invalid YAML"), "{err}");
}

#[test]
fn warnings_do_not_fail_the_load() {
    let project = crate::project(&[(
        ".platform.app.yaml",
        "name: app\ntype: php:8.3\nfirewall:\n  outbound: []\nruntime:\n  extensions: [redis]\n",
    )]);
    let rendered: Vec<String> = project.warnings.iter().map(ToString::to_string).collect();
    insta::assert_snapshot!("warnings_not_supported", rendered.join("\n"));
}

#[test]
fn invalid_utf8_is_positioned() {
    let tree = grove_config::MemoryTree::new([(
        ".platform.app.yaml",
        b"name: app\ntype: \xff\n".as_slice(),
    )]);
    let err = grove_config::load(&tree).expect_err("invalid utf-8");
    let d = &err.errors[0];
    assert_eq!(
        (d.line, d.column, d.message.as_str()),
        (2, 7, "file is not valid UTF-8")
    );
}

/// Regression: the old `shared:files/<dir>` mount syntax let `..` through, which gave
/// the app a writable bind outside its environment's volume.
#[test]
fn old_mount_syntax_cannot_escape_its_volume() {
    check(
        "old_mount_syntax_escape",
        &[(
            ".platform.app.yaml",
            "name: app\ntype: python:3.12\nmounts:\n  var: \"shared:files/../../../..\"\nweb:\n  commands:\n    start: python app.py\n",
        )],
    );
}
