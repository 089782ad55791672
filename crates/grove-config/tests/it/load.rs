//! What valid configurations mean.

use std::collections::BTreeMap;

use grove_config::{
    Cron, Mount, MountSource, Passthru, Relationship, RouteKind, RuntimeType, SocketFamily,
    UpstreamProtocol,
};
use serde_json::json;

use crate::project;

const PYTHON_APP: &str =
    "name: app\ntype: python:3.12\nweb:\n  commands:\n    start: python app.py\n";

#[test]
fn minimal_app() {
    let p = project(&[(".platform.app.yaml", PYTHON_APP)]);
    assert_eq!(p.apps.len(), 1);
    let app = &p.apps[0];
    assert_eq!(app.name, "app");
    assert_eq!(
        app.runtime,
        RuntimeType {
            language: "python".into(),
            version: "3.12".into()
        }
    );
    assert_eq!(app.runtime.to_string(), "python:3.12");
    assert_eq!(app.source_root, "");
    assert_eq!(app.config_file, ".platform.app.yaml");
    assert_eq!(app.web.commands.start.as_deref(), Some("python app.py"));
    assert_eq!(app.web.upstream.socket_family, SocketFamily::Tcp);
    assert!(p.routes.is_none());
    assert!(p.services.is_empty());
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(app.json["name"], "app");
    assert_eq!(app.json["web"]["commands"]["start"], "python app.py");
}

/// Each layout of spec §1 and where its apps are rooted.
#[test]
fn layouts() {
    fn check(files: &[(&str, &str)], expected: &[(&str, &str, &str)]) {
        let p = project(files);
        let got: Vec<(&str, &str, &str)> = p
            .apps
            .iter()
            .map(|a| {
                (
                    a.name.as_str(),
                    a.source_root.as_str(),
                    a.config_file.as_str(),
                )
            })
            .collect();
        assert_eq!(got, expected, "{files:?}");
    }
    check(
        &[(".platform.app.yaml", PYTHON_APP)],
        &[("app", "", ".platform.app.yaml")],
    );
    check(
        &[(".magento.app.yaml", "name: mymagento\ntype: php:8.3\n")],
        &[("mymagento", "", ".magento.app.yaml")],
    );
    check(
        &[
            (
                "backend/.platform.app.yaml",
                "name: api\ntype: python:3.12\nweb: {commands: {start: x}}\n",
            ),
            (
                "frontend/.platform.app.yaml",
                "name: web\ntype: nodejs:22\nweb: {commands: {start: x}}\n",
            ),
            (
                ".platform/routes.yaml",
                "'https://{default}/': {type: upstream, upstream: 'web:http'}\n",
            ),
        ],
        &[
            ("api", "backend", "backend/.platform.app.yaml"),
            ("web", "frontend", "frontend/.platform.app.yaml"),
        ],
    );
    check(
        &[(
            "sub/.platform.app.yaml",
            "name: app\ntype: php:8.3\nsource:\n  root: /\n",
        )],
        &[("app", "", "sub/.platform.app.yaml")],
    );
    // applications.yaml as a map and as a list.
    check(
        &[
            (
                ".platform/applications.yaml",
                "app:\n  type: php:8.3\n  source:\n    root: app\nadmin:\n  type: php:8.3\n  source:\n    root: /admin/\n",
            ),
            ("app/index.php", ""),
            ("admin/index.php", ""),
            (
                ".platform/routes.yaml",
                "'https://{default}/': {type: upstream, upstream: 'app:http'}\n",
            ),
        ],
        &[
            ("admin", "admin", ".platform/applications.yaml"),
            ("app", "app", ".platform/applications.yaml"),
        ],
    );
    check(
        &[
            (
                ".platform/applications.yaml",
                "- name: app\n  type: php:8.3\n  source:\n    root: app\n",
            ),
            ("app/index.php", ""),
        ],
        &[("app", "app", ".platform/applications.yaml")],
    );
    // Upsun: merged per top-level entry, the last definition wins whole.
    check(
        &[
            (
                ".upsun/config.yaml",
                "applications:\n  app:\n    type: php:8.3\n  other:\n    type: php:8.2\nroutes:\n  'https://{default}/': {type: upstream, upstream: 'app:http'}\n",
            ),
            (
                ".upsun/zz-override.yaml",
                "applications:\n  other:\n    type: php:8.4\n    source: {root: other}\n",
            ),
            ("other/index.php", ""),
        ],
        &[
            ("app", "", ".upsun/config.yaml"),
            ("other", "other", ".upsun/zz-override.yaml"),
        ],
    );
}

#[test]
fn upsun_last_definition_wins_whole() {
    let p = project(&[
        (
            ".upsun/a.yaml",
            "applications:\n  app:\n    type: php:8.3\n    hooks: {build: one}\n",
        ),
        (
            ".upsun/b.yaml",
            "applications:\n  app:\n    type: php:8.4\nservices:\n  db: {type: 'mariadb:11.4'}\n",
        ),
    ]);
    let app = &p.apps[0];
    assert_eq!(app.runtime.version, "8.4");
    assert_eq!(app.hooks.build, None);
    assert_eq!(p.services[0].name, "db");
}

#[test]
fn upsun_ignores_v1_files_with_a_warning() {
    let p = project(&[
        (
            ".upsun/config.yaml",
            "applications:\n  app:\n    type: php:8.3\n",
        ),
        (".platform.app.yaml", "name: old\ntype: php:7.4\n"),
    ]);
    assert_eq!(p.apps.len(), 1);
    assert_eq!(p.warnings[0].file, ".platform.app.yaml");
    assert!(p.warnings[0].message.contains("ignored"));
}

#[test]
fn relationships_three_syntaxes() {
    let p = project(&[
        (
            ".platform.app.yaml",
            "name: app\ntype: php:8.3\nrelationships:\n  database: 'mysqldb:mysql'\n  mariadb:\n  reports: {service: mariadb, endpoint: reporter}\n  cache: {service: redis}\n",
        ),
        (
            ".platform/services.yaml",
            "mysqldb: {type: 'mysql:10.6', disk: 2048}\nmariadb: {type: 'mariadb:11.4', disk: 1024, configuration: {endpoints: {mysql: {default_schema: main}, reporter: {default_schema: main, privileges: {main: ro}}}}}\nredis: {type: 'redis:7.2'}\n",
        ),
    ]);
    let rel = |s: &str, e: Option<&str>| Relationship {
        service: s.into(),
        endpoint: e.map(Into::into),
    };
    let expected: BTreeMap<String, Relationship> = [
        ("cache".to_string(), rel("redis", None)),
        ("database".to_string(), rel("mysqldb", Some("mysql"))),
        ("mariadb".to_string(), rel("mariadb", None)),
        ("reports".to_string(), rel("mariadb", Some("reporter"))),
    ]
    .into();
    assert_eq!(p.apps[0].relationships, expected);
    let db = p.service("mysqldb").expect("service");
    assert_eq!(db.service_type.to_string(), "mysql:10.6");
    assert_eq!(db.disk, Some(2048));
}

#[test]
fn relationship_shorthand_flow_set() {
    let p = project(&[
        (
            ".platform.app.yaml",
            "name: app\ntype: php:8.3\nrelationships: {mariadb, redis}\n",
        ),
        (
            ".platform/services.yaml",
            "mariadb: {type: 'mariadb:11.4', disk: 1024}\nredis: {type: 'redis:7.2'}\n",
        ),
    ]);
    assert_eq!(p.apps[0].relationships.len(), 2);
    assert_eq!(p.apps[0].relationships["redis"].service, "redis");
}

#[test]
fn mounts_both_syntaxes() {
    let p = project(&[
        (
            ".magento.app.yaml",
            "name: mymagento\ntype: php:8.3\ndisk: 2048\nmounts:\n  'var': 'shared:files/var'\n  '/pub/media/': 'shared:files/media'\n  'web/uploads': {source: local, source_path: uploads}\n  'cache': {source: tmp}\n  'files': {source: service, service: files, source_path: ''}\n",
        ),
        (
            ".magento/services.yaml",
            "files: {type: 'network-storage:1.0'}\n",
        ),
    ]);
    let m = |source, path: &str, service: Option<&str>| Mount {
        source,
        source_path: path.into(),
        service: service.map(Into::into),
    };
    let expected: BTreeMap<String, Mount> = [
        ("cache".to_string(), m(MountSource::Tmp, "cache", None)),
        (
            "files".to_string(),
            m(MountSource::Service, "", Some("files")),
        ),
        (
            "pub/media".to_string(),
            m(MountSource::Local, "media", None),
        ),
        ("var".to_string(), m(MountSource::Local, "var", None)),
        (
            "web/uploads".to_string(),
            m(MountSource::Local, "uploads", None),
        ),
    ]
    .into();
    assert_eq!(p.apps[0].mounts, expected);
}

#[test]
fn crons_both_syntaxes() {
    let p = project(&[(
        ".magento.app.yaml",
        "name: mymagento\ntype: php:8.3\ncrons:\n  cronrun:\n    spec: '*/5 * * * *'\n    cmd: 'php bin/magento cron:run'\n  report:\n    spec: '0 3 * * *'\n    commands:\n      start: ./report.sh\n      stop: pkill report\n    shutdown_timeout: 30\n",
    )]);
    let crons = &p.apps[0].crons;
    assert_eq!(
        crons["cronrun"],
        Cron {
            spec: "*/5 * * * *".into(),
            command: "php bin/magento cron:run".into(),
            stop: None,
            shutdown_timeout: 10,
            timeout: 86_400
        }
    );
    assert_eq!(crons["report"].command, "./report.sh");
    assert_eq!(crons["report"].stop.as_deref(), Some("pkill report"));
    assert_eq!(crons["report"].shutdown_timeout, 30);
}

#[test]
fn web_locations_and_legacy_document_root() {
    let p = project(&[(
        ".platform.app.yaml",
        "name: app\ntype: php:8.3\nweb:\n  locations:\n    '/':\n      root: pub\n      passthru: /index.php\n      allow: false\n      rules:\n        '\\.(css|js)$': {allow: true}\n    '/media':\n      root: pub/media\n      passthru: true\n      expires: 1y\n",
    )]);
    let web = &p.apps[0].web;
    assert_eq!(web.document_root.as_deref(), Some("pub"));
    assert_eq!(
        web.locations["/"].passthru,
        Passthru::Path("/index.php".into())
    );
    assert!(!web.locations["/"].allow);
    assert_eq!(web.locations["/"].rules.len(), 1);
    assert_eq!(web.locations["/media"].passthru, Passthru::App);
    assert_eq!(web.locations["/media"].expires.as_deref(), Some("1y"));
    assert_eq!(web.upstream.socket_family, SocketFamily::Unix);
    assert_eq!(web.upstream.protocol, UpstreamProtocol::Fastcgi);

    let legacy = project(&[(
        ".platform.app.yaml",
        "name: app\ntype: php:8.3\nweb:\n  document_root: /web\n  passthru: /index.php\n  upstream: {socket_family: tcp, protocol: http}\n",
    )]);
    let web = &legacy.apps[0].web;
    assert_eq!(web.document_root.as_deref(), Some("web"));
    assert_eq!(
        web.locations["/"].passthru,
        Passthru::Path("/index.php".into())
    );
    assert_eq!(web.upstream.socket_family, SocketFamily::Tcp);
}

#[test]
fn variables_hooks_build_and_disk() {
    let p = project(&[(
        ".platform.app.yaml",
        "name: app\ntype: python:3.12\nbuild: {flavor: none}\ndisk: 512\nhooks:\n  build: |\n    set -e\n    pip install -r requirements.txt\n  deploy: ./migrate\nvariables:\n  env:\n    AUTHOR: Juan\n    WORKERS: 4\n  php:\n    memory_limit: 256M\n  d8config:\n    system.site:name: My site\n    nested: {a: [1, 2]}\nweb: {commands: {start: gunicorn app}}\n",
    )]);
    let app = &p.apps[0];
    assert_eq!(app.build_flavor.as_deref(), Some("none"));
    assert_eq!(app.disk, Some(512));
    assert_eq!(
        app.hooks.build.as_deref(),
        Some("set -e\npip install -r requirements.txt\n")
    );
    assert_eq!(app.hooks.deploy.as_deref(), Some("./migrate"));
    assert_eq!(app.hooks.post_deploy, None);
    assert_eq!(app.variables["env"]["AUTHOR"], json!("Juan"));
    assert_eq!(app.variables["env"]["WORKERS"], json!(4));
    assert_eq!(app.variables["d8config"]["nested"], json!({"a": [1, 2]}));
}

#[test]
fn routes_in_file_order_with_defaults() {
    let p = project(&[
        (".platform.app.yaml", PYTHON_APP),
        (
            ".platform/routes.yaml",
            "'https://{default}/':\n  type: upstream\n  upstream: 'app:http'\n  id: main\n  cache: {enabled: false}\n'https://www.{default}/':\n  type: redirect\n  to: 'https://{default}/'\n",
        ),
    ]);
    let routes = p.routes.expect("routes file present");
    assert_eq!(routes.len(), 2);
    assert_eq!(routes[0].template, "https://{default}/");
    assert_eq!(routes[0].kind, RouteKind::Upstream { app: "app".into() });
    assert_eq!(routes[0].id.as_deref(), Some("main"));
    assert_eq!(
        routes[0].cache,
        json!({"enabled": false, "default_ttl": 0, "cookies": ["*"], "headers": ["Accept", "Accept-Language"]})
    );
    assert_eq!(routes[0].ssi, json!({"enabled": false}));
    assert_eq!(
        routes[1].kind,
        RouteKind::Redirect {
            to: "https://{default}/".into()
        }
    );
}

#[test]
fn empty_routes_file_means_no_routes() {
    let p = project(&[
        (".platform.app.yaml", PYTHON_APP),
        (".platform/routes.yaml", "# nothing\n"),
    ]);
    assert_eq!(p.routes, Some(Vec::new()));
}

#[test]
fn build_fingerprint_ignores_runtime_only_keys() {
    let fingerprint =
        |yaml: &str| project(&[(".platform.app.yaml", yaml)]).apps[0].build_fingerprint();
    let base = fingerprint(
        "name: app\ntype: php:8.3\nhooks: {build: make, deploy: one}\nvariables: {env: {A: b}}\n",
    );
    // Key order and formatting do not matter.
    assert_eq!(
        base,
        fingerprint(
            "type: 'php:8.3'\nvariables:\n  env:\n    A: b\nhooks:\n  deploy: one\n  build: make\nname: app\n"
        )
    );
    // Runtime-only keys do not matter.
    assert_eq!(
        base,
        fingerprint(
            "name: app\ntype: php:8.3\nhooks: {build: make, deploy: two, post_deploy: x}\nvariables: {env: {A: b}}\ncrons: {c: {spec: '* * * * *', cmd: x}}\naccess: {ssh: admin}\nweb: {locations: {'/': {root: web}}}\n"
        )
    );
    // Build inputs do.
    for changed in [
        "name: app\ntype: php:8.4\nhooks: {build: make, deploy: one}\nvariables: {env: {A: b}}\n",
        "name: app\ntype: php:8.3\nhooks: {build: make all, deploy: one}\nvariables: {env: {A: b}}\n",
        "name: app\ntype: php:8.3\nhooks: {build: make, deploy: one}\nvariables: {env: {A: c}}\n",
        "name: app\ntype: php:8.3\nhooks: {build: make, deploy: one}\nvariables: {env: {A: b}}\nbuild: {flavor: none}\n",
    ] {
        assert_ne!(base, fingerprint(changed), "{changed}");
    }
}

#[test]
fn several_apps_without_routes_warn() {
    let p = project(&[
        ("a/.platform.app.yaml", "name: a\ntype: php:8.3\n"),
        ("b/.platform.app.yaml", "name: b\ntype: php:8.3\n"),
    ]);
    assert!(
        p.warnings
            .iter()
            .any(|w| w.message.contains("only `a` is routed")),
        "{:?}",
        p.warnings
    );
}

/// Finding "stricter than the platforms": apps in `.platform/applications.yaml` without
/// `source.root` were refused. Platform.sh roots them at the repository root (the
/// official golang and django4 templates keep their code there), and several apps may
/// share that root.
#[test]
fn applications_yaml_without_source_root_is_accepted() {
    fn roots(files: &[(&str, &str)]) -> Vec<(String, String)> {
        let p = project(files);
        let unexpected: Vec<&str> = p
            .warnings
            .iter()
            .map(|w| w.message.as_str())
            .filter(|m| !m.starts_with("accepted, not supported yet"))
            .collect();
        assert!(unexpected.is_empty(), "{unexpected:?}");
        p.apps
            .iter()
            .map(|a| (a.name.clone(), a.source_root.clone()))
            .collect()
    }
    let pair = |name: &str, root: &str| (name.to_string(), root.to_string());
    let routes = (
        ".platform/routes.yaml",
        "'https://{default}/': {type: upstream, upstream: 'app:http'}\n",
    );
    // Keyed by name, no `source` at all.
    assert_eq!(
        roots(&[
            (
                ".platform/applications.yaml",
                "app:\n  type: golang:1.22\n  web: {commands: {start: ./bin/app}}\n"
            ),
            ("go.mod", "module app\n"),
        ]),
        [pair("app", "")]
    );
    // A list; `source` with operations only, or with `root:` left empty.
    assert_eq!(
        roots(&[
            (
                ".platform/applications.yaml",
                "- name: app\n  type: python:3.12\n  web: {commands: {start: x}}\n  source: {operations: {update: {command: ./update}}}\n- name: queue\n  type: python:3.12\n  web: {commands: {start: ./queue}}\n  source:\n    root:\n",
            ),
            routes,
        ]),
        [pair("app", ""), pair("queue", "")]
    );
    // Several apps sharing the root, whether they say so (`/`) or not; the default does
    // not depend on the other apps' roots.
    assert_eq!(
        roots(&[
            (
                ".platform/applications.yaml",
                "app:\n  type: php:8.3\nadmin:\n  type: php:8.3\n  source: {root: /}\napi:\n  type: php:8.3\n  source: {root: api}\n",
            ),
            ("api/index.php", "<?php\n"),
            routes,
        ]),
        [pair("admin", ""), pair("api", "api"), pair("app", "")]
    );
}

/// The same finding for Upsun: `source.root` defaults to the repository root.
#[test]
fn upsun_config_without_source_root_is_accepted() {
    let p = project(&[(
        ".upsun/config.yaml",
        "applications:\n  app:\n    type: golang:1.22\n    web: {commands: {start: ./bin/app}}\n  worker:\n    type: golang:1.22\n    web: {commands: {start: ./bin/worker}}\n    source:\n      root:\nroutes:\n  'https://{default}/': {type: upstream, upstream: 'app:http'}\n",
    )]);
    let roots: Vec<(&str, &str)> = p
        .apps
        .iter()
        .map(|a| (a.name.as_str(), a.source_root.as_str()))
        .collect();
    assert_eq!(roots, [("app", ""), ("worker", "")]);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

/// Finding "stricter than the platforms": nested mounts of different kinds were refused.
/// The official templates nest a network-storage mount in local ones (akeneo) and
/// per-instance and tmp mounts in a storage mount (magentoCE24 on Upsun); the outer mount
/// is mounted first and the inner mount point is created inside it.
#[test]
fn nested_mounts_of_different_kinds_are_accepted() {
    let p = project(&[
        (
            ".platform.app.yaml",
            "name: app\ntype: php:8.3\ndisk: 1024\nmounts:\n  var/file_storage/jobs: {source: service, service: jobs, source_path: jobs}\n  var: {source: local, source_path: var}\n  var/file_storage: {source: local, source_path: var/file_storage}\n  web/files: {source: local, source_path: files}\n  web/files/tmp: {source: tmp}\n  tmp: {source: tmp, source_path: ''}\n  tmp/sessions: {source: local, source_path: sessions}\nworkers:\n  queue:\n    commands: {start: ./queue}\n    mounts:\n      spool: {source: tmp}\n      spool/done: {source: local, source_path: done}\n",
        ),
        (
            ".platform/services.yaml",
            "jobs: {type: 'network-storage:1.0'}\n",
        ),
    ]);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    let app = &p.apps[0];
    let sources: Vec<(&str, MountSource)> = app
        .mounts
        .iter()
        .map(|(path, m)| (path.as_str(), m.source))
        .collect();
    assert_eq!(
        sources,
        [
            ("tmp", MountSource::Tmp),
            ("tmp/sessions", MountSource::Local),
            ("var", MountSource::Local),
            ("var/file_storage", MountSource::Local),
            ("var/file_storage/jobs", MountSource::Service),
            ("web/files", MountSource::Local),
            ("web/files/tmp", MountSource::Tmp),
        ]
    );
    assert_eq!(app.workers["queue"].mounts.len(), 2);

    // Upsun: per-instance mounts in a shared one load, with a warning, because the
    // platforms' documentation calls this an error while their Magento template does it.
    let p = project(&[(
        ".upsun/config.yaml",
        "applications:\n  shop:\n    type: php:8.3\n    mounts:\n      /var: {source: storage, source_path: var}\n      /var/log: {source: instance, source_path: log}\n      /var/report: {source: tmp, source_path: report}\n",
    )]);
    let mounts: Vec<&str> = p.apps[0].mounts.keys().map(String::as_str).collect();
    assert_eq!(mounts, ["var", "var/log", "var/report"]);
    let warnings: Vec<&str> = p.warnings.iter().map(|w| w.message.as_str()).collect();
    assert_eq!(
        warnings,
        [
            "mount `var/log` (instance) is nested in shared mount `var` (storage)",
            "mount `var/report` (tmp) is nested in shared mount `var` (storage)",
        ]
    );
}

/// `App::mounts` is mounted in its order, so an outer mount must come before every mount
/// nested in it, whatever the order in the file and whatever sorts between them.
#[test]
fn mounts_sort_outer_before_nested() {
    let paths = [
        "var/log/archive",
        "var.d",
        "var/log",
        "var-old",
        "var",
        "a/b/c",
        "a",
        "a b",
        "a/b",
        "a-b/c",
    ];
    let mut yaml = String::from("name: app\ntype: php:8.3\ndisk: 512\nmounts:\n");
    for path in paths {
        yaml.push_str(&format!(
            "  '{path}': {{source: local, source_path: '{}'}}\n",
            path.replace(['/', ' ', '.'], "-")
        ));
    }
    let p = project(&[(".platform.app.yaml", &yaml)]);
    let order: Vec<&str> = p.apps[0].mounts.keys().map(String::as_str).collect();
    assert_eq!(order.len(), paths.len());
    for (i, outer) in order.iter().enumerate() {
        for inner in &order[..i] {
            assert!(
                !inner.starts_with(&format!("{outer}/")),
                "`{inner}` comes before `{outer}`, which it is nested in: {order:?}"
            );
        }
    }
}

#[test]
fn sizes_of_apps_and_services_are_read_auto_by_default() {
    use grove_config::Size;
    let p = crate::project(&[
        (
            ".platform.app.yaml",
            "name: app\ntype: python:3.12\nsize: l\nweb:\n  commands:\n    start: python app.py\n",
        ),
        (
            ".platform/services.yaml",
            "db:\n  type: mariadb:11.8\n  disk: 512\n  size: 2XL\ncache:\n  type: redis:7.2\n",
        ),
    ]);
    assert_eq!(p.apps[0].size, Size::L);
    let size = |name: &str| p.services.iter().find(|s| s.name == name).map(|s| s.size);
    assert_eq!(size("db"), Some(Size::XXL));
    assert_eq!(size("cache"), Some(Size::Auto));
    assert_eq!(Size::XXL.to_string(), "2XL");
}
