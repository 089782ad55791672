//! Realistic configuration sets under `tests/corpus/<name>/`, each with a snapshot of
//! what it means (or of its errors). Sets named `broken-*` (and `broken`) must fail.

use std::path::{Path, PathBuf};

use grove_config::{
    App, MemoryTree, Mount, Passthru, Project, Relationship, RequestBuffering, RouteContext,
    Worker, expand_routes, load,
};
use serde_json::{Map, Value, json};

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn files_under(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files_under(root, &path, out);
        } else {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push((rel, bytes));
        }
    }
}

fn relationships(rels: &std::collections::BTreeMap<String, Relationship>) -> Value {
    rels.iter()
        .map(|(k, r)| {
            let target = match &r.endpoint {
                Some(endpoint) => format!("{}:{endpoint}", r.service),
                None => format!("{} (default endpoint)", r.service),
            };
            (k.clone(), json!(target))
        })
        .collect::<Map<_, _>>()
        .into()
}

fn mounts(mounts: &std::collections::BTreeMap<String, Mount>) -> Value {
    mounts
        .iter()
        .map(|(k, m)| {
            let mut v = json!({"source": m.source.as_str(), "source_path": m.source_path});
            if let Some(service) = &m.service {
                v["service"] = json!(service);
            }
            (k.clone(), v)
        })
        .collect::<Map<_, _>>()
        .into()
}

fn worker(w: &Worker) -> Value {
    json!({
        "start": w.start,
        "relationships": relationships(&w.relationships),
        "mounts": mounts(&w.mounts),
        "variables": w.variables,
        "disk": w.disk,
    })
}

fn app(a: &App) -> Value {
    let locations: Map<String, Value> = a
        .web
        .locations
        .iter()
        .map(|(path, l)| {
            let passthru = match &l.passthru {
                Passthru::Off => json!(false),
                Passthru::App => json!(true),
                Passthru::Path(p) => json!(p),
            };
            let rules: Map<String, Value> = l.rules.iter().cloned().collect();
            let buffering = (l.request_buffering != RequestBuffering::default()).then(|| {
                json!({
                    "enabled": l.request_buffering.enabled,
                    "max_request_size": l.request_buffering.max_request_size,
                })
            });
            (
                path.clone(),
                json!({
                    "request_buffering": buffering,
                    "root": l.root,
                    "passthru": passthru,
                    "index": l.index,
                    "expires": l.expires,
                    "allow": l.allow,
                    "scripts": l.scripts,
                    "headers": l.headers,
                    "rules": rules,
                }),
            )
        })
        .collect();
    json!({
        "name": a.name,
        "runtime": a.runtime.to_string(),
        "source_root": a.source_root,
        "config_file": a.config_file,
        "build_flavor": a.build_flavor,
        "dependencies": a.dependencies,
        "disk": a.disk,
        "hooks": {"build": a.hooks.build, "deploy": a.hooks.deploy, "post_deploy": a.hooks.post_deploy},
        "web": {
            "start": a.web.commands.start,
            "pre_start": a.web.commands.pre_start,
            "post_start": a.web.commands.post_start,
            "upstream": format!("{:?}/{:?}", a.web.upstream.socket_family, a.web.upstream.protocol).to_lowercase(),
            "document_root": a.web.document_root,
            "locations": locations,
        },
        "relationships": relationships(&a.relationships),
        "mounts": mounts(&a.mounts),
        "crons": a.crons.iter().map(|(k, c)| (k.clone(), json!({"spec": c.spec, "command": c.command, "stop": c.stop, "shutdown_timeout": c.shutdown_timeout, "timeout": c.timeout}))).collect::<Map<_, _>>(),
        "workers": a.workers.iter().map(|(k, w)| (k.clone(), worker(w))).collect::<Map<_, _>>(),
        "variables": a.variables,
        "ssh_access": a.ssh_access,
        "timezone": a.timezone,
    })
}

/// The routes of the `main` environment, without what every route has by default.
fn routes(project: &Project) -> Value {
    let table = expand_routes(
        project,
        &RouteContext {
            project: "corpus",
            environment: "main",
            domain: "localhost",
            http_port: 8080,
            https_port: Some(8443),
        },
    );
    let default_cache = json!({"enabled": true, "default_ttl": 0, "cookies": ["*"], "headers": ["Accept", "Accept-Language"]});
    let mut out = Map::new();
    for (url, route) in table.to_json().as_object().cloned().unwrap_or_default() {
        let Value::Object(mut route) = route else {
            continue;
        };
        if route.get("cache") == Some(&default_cache) {
            route.remove("cache");
        }
        if route.get("ssi") == Some(&json!({"enabled": false})) {
            route.remove("ssi");
        }
        if route.get("attributes") == Some(&json!({})) {
            route.remove("attributes");
        }
        if route.get("id") == Some(&Value::Null) {
            route.remove("id");
        }
        if route.get("primary") == Some(&json!(false)) {
            route.remove("primary");
        }
        out.insert(url, Value::Object(route));
    }
    Value::Object(out)
}

/// Drops null members, and empty members of the summary's own fields, so that snapshots
/// show what is set (an empty list written in the config, such as `cookies: []`, stays).
fn prune(value: &mut Value) {
    const SUMMARY_FIELDS: [&str; 13] = [
        "configuration",
        "crons",
        "dependencies",
        "headers",
        "hooks",
        "index",
        "locations",
        "mounts",
        "relationships",
        "rules",
        "variables",
        "web",
        "workers",
    ];
    match value {
        Value::Object(map) => {
            map.values_mut().for_each(prune);
            map.retain(|k, v| {
                !(v.is_null()
                    || SUMMARY_FIELDS.contains(&k.as_str())
                        && (v.as_object().is_some_and(Map::is_empty)
                            || v.as_array().is_some_and(Vec::is_empty)))
            });
        }
        Value::Array(items) => items.iter_mut().for_each(prune),
        _ => {}
    }
}

/// Loads one corpus directory and snapshots the project summary or the errors.
fn check(name: &str) {
    let root = corpus_root().join(name);
    let mut files = Vec::new();
    files_under(&root, &root, &mut files);
    let tree = MemoryTree::new(files);
    let must_fail = name.starts_with("broken");
    let summary = match load(&tree) {
        Err(errors) => {
            assert!(must_fail, "corpus `{name}` should load, got:\n{errors}");
            errors.to_string()
        }
        Ok(project) => {
            assert!(!must_fail, "corpus `{name}` should fail to load");
            let services: Vec<Value> = project
                .services
                .iter()
                .map(|s| {
                    json!({
                        "name": s.name,
                        "type": s.service_type.to_string(),
                        "disk": s.disk,
                        "configuration": s.configuration,
                        "relationships": relationships(&s.relationships),
                        "config_file": s.config_file,
                    })
                })
                .collect();
            let mut value = json!({
                "apps": project.apps.iter().map(app).collect::<Vec<_>>(),
                "services": services,
                "routes": routes(&project),
            });
            prune(&mut value);
            let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
            for warning in &project.warnings {
                text.push_str(&format!("\n\n{warning}"));
            }
            text
        }
    };
    insta::assert_snapshot!(format!("corpus_{name}"), summary);
}

macro_rules! corpus {
    ($($test:ident => $dir:literal,)*) => {
        $(
            #[test]
            fn $test() {
                check($dir);
            }
        )*

        /// Every directory of the corpus has a test above.
        #[test]
        fn every_corpus_set_is_tested() {
            let listed = [$($dir),*];
            let mut found: Vec<String> = std::fs::read_dir(corpus_root())
                .expect("tests/corpus")
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            found.sort();
            let mut listed: Vec<String> = listed.iter().map(|s| s.to_string()).collect();
            listed.sort();
            assert_eq!(found, listed, "add new corpus directories to the corpus! list");
        }
    };
}

corpus! {
    applications_list_shared_root => "applications-list-shared-root",
    applications_yaml_no_root => "applications-yaml-no-root",
    broken => "broken",
    broken_bad_type => "broken-bad-type",
    broken_cron => "broken-cron",
    broken_default_endpoint => "broken-default-endpoint",
    broken_endpoint_schema => "broken-endpoint-schema",
    broken_include_missing => "broken-include-missing",
    broken_missing_endpoint => "broken-missing-endpoint",
    broken_missing_service => "broken-missing-service",
    broken_mount_escape => "broken-mount-escape",
    broken_route_upstream => "broken-route-upstream",
    broken_rule_regex => "broken-rule-regex",
    broken_service_type => "broken-service-type",
    broken_solr_core => "broken-solr-core",
    broken_unknown_key => "broken-unknown-key",
    broken_worker_relationship => "broken-worker-relationship",
    broken_yaml_syntax => "broken-yaml-syntax",
    composable => "composable",
    golang => "golang",
    includes => "includes",
    legacy_2016 => "legacy-2016",
    magento_cloud => "magento-cloud",
    magento_cloud_default => "magento-cloud-default",
    magento_pro => "magento-pro",
    magento_starter => "magento-starter",
    mounts_nested_local_service => "mounts-nested-local-service",
    multi_app => "multi-app",
    multi_app_list => "multi-app-list",
    multi_app_subdirs => "multi-app-subdirs",
    no_routes => "no-routes",
    nodejs_express => "nodejs-express",
    nodejs_nextjs => "nodejs-nextjs",
    php_drupal => "php-drupal",
    php_laravel => "php-laravel",
    php_symfony => "php-symfony",
    php_wordpress => "php-wordpress",
    python_django => "python-django",
    python_flask => "python-flask",
    relationship_syntaxes => "relationship-syntaxes",
    routes_redirects => "routes-redirects",
    ruby_rails => "ruby-rails",
    services_all => "services-all",
    upsun_flex => "upsun-flex",
    upsun_nested_mounts => "upsun-nested-mounts",
    upsun_split => "upsun-split",
    upsun_workers => "upsun-workers",
    varnish_solr => "varnish-solr",
}
