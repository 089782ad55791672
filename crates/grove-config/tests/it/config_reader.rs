//! The variables Grove generates, read by the official Platform.sh config reader for
//! Python (PyPI `platformshconfig`), under both the `PLATFORM_` and the
//! `MAGENTO_CLOUD_` prefix. Apps use that library (and its PHP/Node/Go twins, which read
//! the same variables the same way) to find their database, routes and settings, so
//! whatever it reads from Grove's variables is what an app will see.
//!
//! The library must be importable: `GROVE_PYTHONPATH`, else `<workspace>/target/python`,
//! installed with
//! `python3 -m pip install --quiet --break-system-packages --target target/python platformshconfig`.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use grove_config::{
    BuildContext, EndpointAccess, Project, RelationshipContext, RouteContext, RuntimeContext,
    build_environment, expand_routes, relationships_json, runtime_environment,
};
use serde_json::{Value, json};

use crate::project;

const INSTALL: &str = "cd <workspace root> && python3 -m pip install --quiet --break-system-packages --target target/python platformshconfig (or set GROVE_PYTHONPATH to a directory holding it)";

const APP: &str = "\
name: shop
type: python:3.13
web:
  commands:
    start: gunicorn shop.wsgi --bind 0.0.0.0:$PORT
  locations:
    '/':
      root: public
      passthru: true
relationships:
  database: 'db:mysql'
  redis: 'cache:redis'
variables:
  env:
    DJANGO_SETTINGS_MODULE: shop.settings
  django:
    site_name: Grove shop
  feature:
    flags: {checkout: true}
hooks:
  build: pip install -r requirements.txt
  deploy: python manage.py migrate
";

const SERVICES: &str = "\
db:
  type: mariadb:11.4
  disk: 2048
  configuration:
    schemas: [main]
    endpoints:
      mysql:
        default_schema: main
        privileges: {main: admin}
cache:
  type: redis:7.2
";

const ROUTES: &str = "\
'https://{default}/':
  type: upstream
  upstream: 'shop:http'
  id: main
  primary: true
'https://api.{default}/':
  type: upstream
  upstream: 'shop:http'
  id: api
  cache: {enabled: false}
'https://www.{default}/':
  type: redirect
  to: 'https://{default}/'
  id: www
";

const TREE_ID: &str = "8c3a8fd1b2f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8";
const ENTROPY: &str = "s2mt7ktg3m4bp2y5xbyccxwcxyq5fdavmdfzlnpsjopfq5yvnkgqcnzmu";

/// What the Python script asks the library, for one prefix.
const SCRIPT: &str = r#"
import json, os, sys
for entry in reversed(os.environ.get("GROVE_LIBRARY_PATH", "").split(os.pathsep)):
    if entry:
        sys.path.insert(0, entry)
try:
    from platformshconfig import Config
except ImportError as e:
    print("IMPORT-FAILED: %s" % e)
    sys.exit(3)

def attempt(f):
    try:
        return {"ok": f()}
    except Exception as e:
        return {"error": type(e).__name__}

out = {}
for prefix in ["PLATFORM_", "MAGENTO_CLOUD_"]:
    c = Config(var_prefix=prefix)
    out[prefix] = {
        "is_valid_platform": c.is_valid_platform(),
        "in_build": bool(c.in_build()),
        "in_runtime": bool(c.in_runtime()),
        "on_production": attempt(c.on_production),
        "credentials_database": attempt(lambda: c.credentials("database")),
        "credentials_redis": attempt(lambda: c.credentials("redis")),
        "has_relationship_database": c.has_relationship("database"),
        "dsn_database": attempt(lambda: c.formatted_credentials("database", "postgresql_dsn")),
        "primary_route": attempt(c.get_primary_route),
        "route_main": attempt(lambda: c.get_route("main")),
        "route_api": attempt(lambda: c.get_route("api")),
        "routes": attempt(c.routes),
        "upstream_routes": attempt(lambda: sorted(c.get_upstream_routes("shop"))),
        "variable_site_name": c.variable("django:site_name"),
        "variable_flags": c.variable("feature:flags"),
        "variable_missing": c.variable("django:missing", "fallback"),
        "application_name_in_config": attempt(lambda: c.application()["name"]),
        "application_type": attempt(lambda: c.application()["type"]),
        "project": attempt(lambda: c.project),
        "applicationName": attempt(lambda: c.applicationName),
        "treeID": attempt(lambda: c.treeID),
        "appDir": attempt(lambda: c.appDir),
        "projectEntropy": attempt(lambda: c.projectEntropy),
        "branch": attempt(lambda: c.branch),
        "environment": attempt(lambda: c.environment),
        "documentRoot": attempt(lambda: c.documentRoot),
        "smtpHost": attempt(lambda: c.smtpHost),
        "port": attempt(lambda: c.port),
    }
print(json.dumps(out))
"#;

/// Where the library is: `GROVE_PYTHONPATH`, else `<workspace>/target/python`.
fn library_path() -> Option<String> {
    if let Ok(path) = std::env::var("GROVE_PYTHONPATH")
        && !path.is_empty()
    {
        return Some(path);
    }
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(PathBuf::from)?;
    let candidate = workspace.join("target/python");
    candidate
        .is_dir()
        .then(|| candidate.to_string_lossy().into_owned())
}

/// Runs the script with exactly `vars` as its environment (plus PATH) and returns its
/// JSON answer, keyed by prefix.
fn read_with_library(vars: &[(String, String)]) -> Value {
    let Some(library) = library_path() else {
        panic!("the platformshconfig Python library is not installed; install it with: {INSTALL}");
    };
    let mut child = Command::new("python3")
        .arg("-")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GROVE_LIBRARY_PATH", &library)
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3 (needed for this test): {e}"));
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(SCRIPT.as_bytes())
        .expect("write the script");
    let output = child.wait_with_output().expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stdout.starts_with("IMPORT-FAILED") {
        panic!(
            "cannot import platformshconfig from {library} ({}); install it with: {INSTALL}",
            stdout.trim()
        );
    }
    assert!(
        output.status.success(),
        "python3 failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

fn shop() -> Project {
    project(&[
        (".platform.app.yaml", APP),
        (".platform/services.yaml", SERVICES),
        (".platform/routes.yaml", ROUTES),
    ])
}

/// The credentials the services layer would hand over for each service.
fn access(service: &str, _endpoint: &str) -> Option<EndpointAccess> {
    Some(match service {
        "db" => EndpointAccess {
            ip: "169.254.12.7".into(),
            port: Some(33061),
            username: Some("user".into()),
            password: Some("s3cr3t-Pa55".into()),
            path: Some("main".into()),
            query: None,
        },
        "cache" => EndpointAccess {
            ip: "169.254.12.8".into(),
            port: None,
            username: None,
            password: None,
            path: None,
            query: None,
        },
        _ => return None,
    })
}

fn runtime_vars(
    p: &Project,
    branch: &str,
    environment: &str,
    env_type: &str,
) -> Vec<(String, String)> {
    let app = p.app("shop").expect("app shop");
    let routes = expand_routes(
        p,
        &RouteContext {
            project: "k2mp4tq7",
            environment,
            domain: "grove.test",
            http_port: 80,
            https_port: Some(443),
        },
    );
    let relationships = relationships_json(
        p,
        app,
        &RelationshipContext {
            project: "k2mp4tq7",
            environment,
        },
        &access,
    );
    runtime_environment(&RuntimeContext {
        project: "k2mp4tq7",
        app,
        tree_id: TREE_ID,
        project_entropy: ENTROPY,
        app_dir: "/app",
        branch,
        environment,
        environment_type: env_type,
        routes: &routes,
        relationships: &relationships,
        port: 8000,
        variables: &[],
    })
}

fn ok(answer: &Value, field: &str) -> Value {
    match answer.get(field) {
        Some(Value::Object(o)) if o.contains_key("ok") => o["ok"].clone(),
        other => panic!("{field}: the library failed: {other:?}"),
    }
}

fn error(answer: &Value, field: &str) -> String {
    answer[field]["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{field}: expected an error, got {:?}", answer[field]))
        .to_owned()
}

#[test]
fn official_reader_at_build_time() {
    let p = shop();
    let vars = build_environment(&BuildContext {
        project: "k2mp4tq7",
        app: p.app("shop").expect("app shop"),
        tree_id: TREE_ID,
        project_entropy: ENTROPY,
        app_dir: "/app",
        cache_dir: "/cache",
        output_dir: "/output",
        vendor: "grove",
        variables: &[],
    });
    let answers = read_with_library(&vars);
    for prefix in ["PLATFORM_", "MAGENTO_CLOUD_"] {
        let a = &answers[prefix];
        assert_eq!(a["is_valid_platform"], json!(true), "{prefix}");
        assert_eq!(a["in_build"], json!(true), "{prefix}");
        assert_eq!(a["in_runtime"], json!(false), "{prefix}");
        assert_eq!(ok(a, "applicationName"), json!("shop"), "{prefix}");
        assert_eq!(
            ok(a, "application_name_in_config"),
            json!("shop"),
            "{prefix}"
        );
        assert_eq!(ok(a, "application_type"), json!("python:3.13"), "{prefix}");
        assert_eq!(ok(a, "project"), json!("k2mp4tq7"), "{prefix}");
        assert_eq!(ok(a, "treeID"), json!(TREE_ID), "{prefix}");
        assert_eq!(ok(a, "appDir"), json!("/app"), "{prefix}");
        assert_eq!(ok(a, "projectEntropy"), json!(ENTROPY), "{prefix}");
        assert_eq!(a["variable_site_name"], json!("Grove shop"), "{prefix}");
        assert_eq!(a["variable_flags"], json!({"checkout": true}), "{prefix}");
        assert_eq!(a["variable_missing"], json!("fallback"), "{prefix}");
        // Runtime-only things are refused the way the library refuses them at build time.
        for field in ["branch", "environment", "routes", "credentials_database"] {
            assert_eq!(
                error(a, field),
                "BuildTimeVariableAccessException",
                "{prefix} {field}"
            );
        }
        assert_eq!(ok(a, "on_production"), json!(false), "{prefix}");
    }
}

#[test]
fn official_reader_at_runtime() {
    let p = shop();
    for (branch, environment, env_type, production) in [
        // The library's rule: production is the `master` branch (`production` on
        // Dedicated); it does not read PLATFORM_ENVIRONMENT_TYPE.
        ("master", "master", "production", true),
        ("feature-x", "feature-x", "development", false),
    ] {
        let vars = runtime_vars(&p, branch, environment, env_type);
        let answers = read_with_library(&vars);
        let host = format!("{environment}.k2mp4tq7.grove.test");
        for prefix in ["PLATFORM_", "MAGENTO_CLOUD_"] {
            let a = &answers[prefix];
            let at = format!("{prefix} {env_type}");
            assert_eq!(a["is_valid_platform"], json!(true), "{at}");
            assert_eq!(a["in_build"], json!(false), "{at}");
            assert_eq!(a["in_runtime"], json!(true), "{at}");
            assert_eq!(ok(a, "on_production"), json!(production), "{at}");
            assert_eq!(
                vars.iter()
                    .find(|(k, _)| *k == format!("{prefix}ENVIRONMENT_TYPE"))
                    .map(|(_, v)| v.as_str()),
                Some(env_type),
                "{at}"
            );

            let db = ok(a, "credentials_database");
            assert_eq!(db["username"], json!("user"), "{at}");
            assert_eq!(db["password"], json!("s3cr3t-Pa55"), "{at}");
            assert_eq!(db["host"], json!("database.internal"), "{at}");
            assert_eq!(db["port"], json!(33061), "{at}");
            assert_eq!(db["path"], json!("main"), "{at}");
            assert_eq!(db["scheme"], json!("mysql"), "{at}");
            assert_eq!(db["rel"], json!("mysql"), "{at}");
            assert_eq!(db["service"], json!("db"), "{at}");
            assert_eq!(db["type"], json!("mariadb:11.4"), "{at}");
            assert_eq!(db["ip"], json!("169.254.12.7"), "{at}");
            assert_eq!(db["query"], json!({"is_master": true}), "{at}");
            assert_eq!(a["has_relationship_database"], json!(true), "{at}");
            let redis = ok(a, "credentials_redis");
            assert_eq!(redis["host"], json!("redis.internal"), "{at}");
            assert_eq!(redis["port"], json!(6379), "{at}");
            assert_eq!(redis["scheme"], json!("redis"), "{at}");
            assert_eq!(redis["type"], json!("redis:7.2"), "{at}");
            assert_eq!(redis["username"], json!(null), "{at}");
            // The library's formatters build URLs from the same fields.
            assert_eq!(
                ok(a, "dsn_database"),
                json!("postgresql://user:s3cr3t-Pa55@database.internal:33061/main"),
                "{at}"
            );

            let primary = ok(a, "primary_route");
            assert_eq!(primary["original_url"], json!("https://{default}/"), "{at}");
            assert_eq!(primary["id"], json!("main"), "{at}");
            assert_eq!(primary["type"], json!("upstream"), "{at}");
            assert_eq!(primary["upstream"], json!("shop"), "{at}");
            let main = ok(a, "route_main");
            assert_eq!(main["url"], json!(format!("https://{host}/")), "{at}");
            assert_eq!(main["primary"], json!(true), "{at}");
            let api = ok(a, "route_api");
            assert_eq!(api["url"], json!(format!("https://api.{host}/")), "{at}");
            assert_eq!(api["primary"], json!(false), "{at}");
            assert_eq!(api["cache"]["enabled"], json!(false), "{at}");
            let routes = ok(a, "routes");
            let urls: Vec<&String> = routes.as_object().expect("routes object").keys().collect();
            let mut expected = vec![
                format!("http://api.{host}/"),
                format!("http://www.{host}/"),
                format!("http://{host}/"),
                format!("https://api.{host}/"),
                format!("https://www.{host}/"),
                format!("https://{host}/"),
            ];
            expected.sort();
            let mut urls: Vec<String> = urls.into_iter().cloned().collect();
            urls.sort();
            assert_eq!(urls, expected, "{at}");
            assert_eq!(
                routes[format!("https://www.{host}/")]["to"],
                json!(format!("https://{host}/")),
                "{at}"
            );
            assert_eq!(
                routes[format!("http://{host}/")]["to"],
                json!(format!("https://{host}/")),
                "{at}"
            );
            assert_eq!(
                ok(a, "upstream_routes"),
                json!([format!("https://api.{host}/"), format!("https://{host}/")]),
                "{at}"
            );

            assert_eq!(a["variable_site_name"], json!("Grove shop"), "{at}");
            assert_eq!(a["variable_flags"], json!({"checkout": true}), "{at}");
            assert_eq!(ok(a, "application_name_in_config"), json!("shop"), "{at}");
            assert_eq!(ok(a, "applicationName"), json!("shop"), "{at}");
            assert_eq!(ok(a, "project"), json!("k2mp4tq7"), "{at}");
            assert_eq!(ok(a, "treeID"), json!(TREE_ID), "{at}");
            assert_eq!(ok(a, "projectEntropy"), json!(ENTROPY), "{at}");
            assert_eq!(ok(a, "appDir"), json!("/app"), "{at}");
            assert_eq!(ok(a, "branch"), json!(branch), "{at}");
            assert_eq!(ok(a, "environment"), json!(environment), "{at}");
            assert_eq!(ok(a, "documentRoot"), json!("/app/public"), "{at}");
            assert_eq!(ok(a, "port"), json!("8000"), "{at}");
            // Mail is off (empty SMTP host, as on the platform when mail is disabled);
            // the library reports that as "not defined".
            assert_eq!(error(a, "smtpHost"), "NotValidPlatformException", "{at}");
        }
    }
}
