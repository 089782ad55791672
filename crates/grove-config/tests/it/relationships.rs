//! `PLATFORM_RELATIONSHIPS` endpoint objects and Upsun's flattened variables.

use grove_config::{
    EndpointAccess, RelationshipContext, relationship_variables, relationships_json,
};

use crate::project;

#[test]
fn endpoint_objects_per_service_type() {
    let p = project(&[
        (
            ".platform/applications.yaml",
            "app:\n  type: php:8.3\n  source: {root: app}\n  relationships:\n    database: 'db:mysql'\n    sessions: 'cache:redis'\n    pg: {service: pg}\n    mc: {service: memcached}\n    api: 'api:http'\n    down: {service: queue}\napi:\n  type: python:3.13\n  source: {root: api}\n  web: {commands: {start: x}}\n",
        ),
        ("app/index.php", ""),
        ("api/main.py", ""),
        (
            ".platform/services.yaml",
            "db: {type: 'mariadb:11.4', disk: 1024}\ncache: {type: 'redis:7.2'}\npg: {type: 'postgresql:16', disk: 1024}\nmemcached: {type: 'memcached:1.6'}\nqueue: {type: 'rabbitmq:4.3', disk: 512}\n",
        ),
        (
            ".platform/routes.yaml",
            "'https://{default}/': {type: upstream, upstream: 'app:http'}\n",
        ),
    ]);
    let app = p.app("app").expect("app");
    let ctx = RelationshipContext {
        project: "shop",
        environment: "main",
    };
    let access = |service: &str, _endpoint: &str| -> Option<EndpointAccess> {
        let (user, pass, path) = match service {
            "db" | "pg" => (Some("main"), Some("secret"), Some("main")),
            "queue" => return None,
            _ => (None, None, None),
        };
        Some(EndpointAccess {
            ip: format!("127.0.0.{}", service.len()),
            port: if service == "api" { Some(8000) } else { None },
            username: user.map(Into::into),
            password: pass.map(Into::into),
            path: path.map(Into::into),
            query: None,
        })
    };
    let json = relationships_json(&p, app, &ctx, &access);
    insta::assert_json_snapshot!("relationships_json", json);
    let flat = relationship_variables(&json);
    let rendered: Vec<String> = flat.iter().map(|(k, v)| format!("{k}={v}")).collect();
    insta::assert_snapshot!("relationship_variables", rendered.join("\n"));
}
