//! Build and runtime variables (spec §5.1).

use base64::Engine as _;
use grove_config::{
    BuildContext, RouteContext, RuntimeContext, build_environment, expand_routes,
    runtime_environment,
};
use serde_json::{Value, json};

use crate::project;

const APP: &str = "\
name: app
type: python:3.12
hooks:
  build: pip install -r requirements.txt
  deploy: ./migrate
web:
  commands:
    start: gunicorn app:app --bind 0.0.0.0:$PORT
  locations:
    '/':
      root: public
      passthru: true
relationships:
  database: 'db:mysql'
variables:
  env:
    AUTHOR: Juan
    PLATFORM_PROJECT: not-allowed
    DEBUG: true
  php:
    memory_limit: 256M
  myapp:
    settings: {colour: blue}
";

const SERVICES: &str = "db:\n  type: mariadb:11.4\n  disk: 1024\n";

fn decode(value: &str) -> Value {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value)
        .unwrap_or_else(|e| panic!("{value}: {e}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{value}: {e}"))
}

/// Variables as a JSON object for snapshots: base64 JSON values decoded, both prefixes
/// checked equal and shown once.
fn check(name: &str, vars: &[(String, String)]) {
    let mut shown = serde_json::Map::new();
    for (key, value) in vars {
        assert_eq!(
            vars.iter().filter(|(k, _)| k == key).count(),
            1,
            "{key} set twice"
        );
        if let Some(rest) = key.strip_prefix("MAGENTO_CLOUD_") {
            let twin = vars.iter().find(|(k, _)| *k == format!("PLATFORM_{rest}"));
            assert_eq!(
                twin.map(|(_, v)| v),
                Some(value),
                "{key} differs from its PLATFORM_ twin"
            );
            continue;
        }
        let is_json = matches!(
            key.as_str(),
            "PLATFORM_APPLICATION"
                | "PLATFORM_VARIABLES"
                | "PLATFORM_ROUTES"
                | "PLATFORM_RELATIONSHIPS"
        );
        shown.insert(
            key.clone(),
            if is_json { decode(value) } else { json!(value) },
        );
    }
    insta::assert_json_snapshot!(name, Value::Object(shown));
}

#[test]
fn build_variables() {
    let p = project(&[
        (".platform.app.yaml", APP),
        (".platform/services.yaml", SERVICES),
    ]);
    let vars = build_environment(&BuildContext {
        project: "shop",
        app: &p.apps[0],
        tree_id: "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
        project_entropy: "entropy-entropy-entropy-entropy-entropy-entropy-entropy!",
        app_dir: "/app",
        cache_dir: "/cache",
        output_dir: "/output",
        vendor: "grove",
        variables: &[],
    });
    assert!(
        !vars
            .iter()
            .any(|(k, _)| k.ends_with("_ENVIRONMENT") || k.ends_with("_BRANCH"))
    );
    check("build_variables", &vars);
}

#[test]
fn runtime_variables() {
    let p = project(&[
        (".platform.app.yaml", APP),
        (".platform/services.yaml", SERVICES),
    ]);
    let routes = expand_routes(
        &p,
        &RouteContext {
            project: "shop",
            environment: "main",
            domain: "localhost",
            http_port: 8080,
            https_port: None,
        },
    );
    let relationships = json!({});
    let vars = runtime_environment(&RuntimeContext {
        project: "shop",
        app: &p.apps[0],
        tree_id: "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
        project_entropy: "entropy-entropy-entropy-entropy-entropy-entropy-entropy!",
        app_dir: "/app",
        branch: "main",
        environment: "main",
        environment_type: "production",
        routes: &routes,
        relationships: &relationships,
        port: 8000,
        variables: &[],
    });
    check("runtime_variables", &vars);
}

#[test]
fn user_variables_override_the_app_config() {
    let p = project(&[(
        ".platform.app.yaml",
        "name: app\ntype: python:3.11\nvariables:\n  env:\n    GREETING: app\n    KEPT: kept\n  d8config:\n    site: app\n",
    )]);
    let user = [
        grove_config::UserVariable {
            name: "env:GREETING".into(),
            value: json!("user"),
        },
        grove_config::UserVariable {
            name: "env:PLATFORM_PROJECT".into(),
            value: json!("not allowed"),
        },
        grove_config::UserVariable {
            name: "d8config:site".into(),
            value: json!({"json": true}),
        },
    ];
    let vars = build_environment(&BuildContext {
        project: "shop",
        app: &p.apps[0],
        tree_id: "t",
        project_entropy: "e",
        app_dir: "/app",
        cache_dir: "/cache",
        output_dir: "/output",
        vendor: "grove",
        variables: &user,
    });
    let get = |name: &str| -> Vec<&str> {
        vars.iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(get("GREETING"), ["user"]);
    assert_eq!(get("KEPT"), ["kept"]);
    assert_eq!(get("PLATFORM_PROJECT"), ["shop"]);
    for prefix in ["PLATFORM_", "MAGENTO_CLOUD_"] {
        let encoded = get(&format!("{prefix}VARIABLES"))[0];
        let decoded = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded)
            .expect("base64");
        let decoded: serde_json::Value = serde_json::from_slice(&decoded).expect("json");
        assert_eq!(decoded, json!({"d8config:site": {"json": true}}));
    }
}
