//! An environment's deployment computed from its inputs.

use std::collections::BTreeMap;

use grove_config::{App, RouteKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Bump when the build layout changes so that old builds are not reused.
const BUILD_FORMAT: &str = "grove-build-3";
/// Where an app's build is, in its sandbox.
pub const APP_DIR: &str = "/app";
/// Where the build cache is, in a build's sandbox.
pub const CACHE_DIR: &str = "/tmp/cache";

/// Where an environment's data (service data and mounts) comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DataSource {
    /// Its own data, as it is (created empty the first time).
    Keep,
    /// A copy of another environment's data taken at one instant (branch, activate,
    /// synchronize data).
    CopyOf { environment: String },
    /// A backup's data, restored and verified beforehand (`backup:restore`).
    Backup { id: String },
}

/// Everything an environment should run: the builds, services, routes and crons of one
/// commit, and where its data comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub commit: String,
    pub tree_id: String,
    pub data: DataSource,
    /// Sorted by name.
    pub apps: Vec<AppPlan>,
    /// Sorted by name.
    pub services: Vec<ServicePlan>,
    pub routes: Vec<RoutePlan>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppPlan {
    pub name: String,
    /// `python:3.11`, as the configuration asks.
    pub runtime: String,
    pub build_key: String,
    /// `web.commands.start`.
    pub start: Option<String>,
    /// Sorted by path: an outer mount comes before the mounts nested in it.
    pub mounts: Vec<MountPlan>,
    pub crons: Vec<CronPlan>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountPlan {
    /// Relative to the app's root.
    pub path: String,
    /// `local`, `tmp`, `service`, `storage`, `instance`.
    pub source: String,
    pub source_path: String,
    pub service: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronPlan {
    pub name: String,
    pub spec: String,
    pub command: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePlan {
    pub name: String,
    /// `mariadb:10.11`, as services.yaml asks.
    pub kind: String,
    /// What decides whether a running instance of the service is this one: its type,
    /// its configuration and the environment's type (which sizes it).
    pub signature: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutePlan {
    pub url: String,
    pub host: String,
    pub path: String,
    pub target: RouteTarget,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RouteTarget {
    App { name: String },
    Redirect { to: String },
    Proxy { to: String },
}

/// What a deployment is computed from.
pub struct Inputs<'a> {
    pub project: &'a str,
    pub project_entropy: &'a str,
    /// `production`, `staging` or `development`.
    pub environment_type: &'a str,
    pub commit: &'a str,
    pub tree_id: &'a str,
    pub config: &'a grove_config::Project,
    /// The environment's routes, expanded (`grove_config::expand_routes`).
    pub routes: &'a grove_config::RouteTable,
    pub data: DataSource,
    /// The user variables the build sees (`variables::resolve`), part of the build key.
    pub build_variables: &'a [grove_config::UserVariable],
    /// What runs an app whose `type:` is not the host's exact version (by app name:
    /// `nodejs:18 image nodejs-18-bookworm`, `python:3.11 host` for `python:3.10`),
    /// part of its build key: a build is only reused on the runtime it was made on.
    pub runtimes: &'a BTreeMap<String, String>,
}

/// The deployment of `inputs`.
pub fn plan(inputs: &Inputs) -> Deployment {
    let apps = inputs
        .config
        .apps
        .iter()
        .map(|app| {
            let variables = build_variables(
                inputs.project,
                inputs.project_entropy,
                app,
                inputs.tree_id,
                inputs.build_variables,
            );
            AppPlan {
                name: app.name.clone(),
                runtime: app.runtime.to_string(),
                build_key: build_key(
                    inputs.tree_id,
                    app,
                    inputs.runtimes.get(&app.name).map(String::as_str),
                    &variables,
                ),
                start: app.web.commands.start.clone(),
                mounts: app
                    .mounts
                    .iter()
                    .map(|(path, mount)| MountPlan {
                        path: path.clone(),
                        source: mount.source.as_str().to_string(),
                        source_path: mount.source_path.clone(),
                        service: mount.service.clone(),
                    })
                    .collect(),
                crons: app
                    .crons
                    .iter()
                    .map(|(name, cron)| CronPlan {
                        name: name.clone(),
                        spec: cron.spec.clone(),
                        command: cron.command.clone(),
                    })
                    .collect(),
            }
        })
        .collect();
    let services = inputs
        .config
        .services
        .iter()
        .map(|service| {
            let kind = service.service_type.to_string();
            let signature = grove_config::canonical_json(&serde_json::json!({
                "type": kind,
                "configuration": service.configuration,
                "environment_type": inputs.environment_type,
            }));
            ServicePlan {
                name: service.name.clone(),
                kind,
                signature,
            }
        })
        .collect();
    let routes = inputs
        .routes
        .routes
        .iter()
        .map(|route| RoutePlan {
            url: route.url.clone(),
            host: route.host.clone(),
            path: route.path.clone(),
            target: match &route.kind {
                RouteKind::Upstream { app } => RouteTarget::App { name: app.clone() },
                RouteKind::Redirect { to } => RouteTarget::Redirect { to: to.clone() },
                RouteKind::Proxy { to } => RouteTarget::Proxy { to: to.clone() },
            },
        })
        .collect();
    Deployment {
        commit: inputs.commit.to_string(),
        tree_id: inputs.tree_id.to_string(),
        data: inputs.data.clone(),
        apps,
        services,
        routes,
    }
}

/// What a build of `app` sees in its environment: the same for every environment of
/// the project with the same build-visible user variables (no `PLATFORM_ENVIRONMENT`),
/// so that promotion reuses the build.
pub fn build_variables(
    project: &str,
    project_entropy: &str,
    app: &App,
    tree_id: &str,
    user: &[grove_config::UserVariable],
) -> Vec<(String, String)> {
    grove_config::build_environment(&grove_config::BuildContext {
        project,
        app,
        tree_id,
        project_entropy,
        app_dir: APP_DIR,
        cache_dir: CACHE_DIR,
        output_dir: APP_DIR,
        vendor: "grove",
        variables: user,
    })
}

/// The build key: the tree, the app's build-relevant configuration and every variable
/// the build can see (which name the project and carry its entropy, so two projects
/// never share a build). The same key always means the same build.
pub fn build_key(
    tree_id: &str,
    app: &App,
    runtime: Option<&str>,
    variables: &[(String, String)],
) -> String {
    let mut hasher = Sha256::new();
    for part in [BUILD_FORMAT, tree_id, &app.name, &app.build_fingerprint()] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    // Only where it is not the host's exact version, so that builds made before
    // runtime images existed keep their keys.
    if let Some(runtime) = runtime {
        hasher.update(b"runtime\0");
        hasher.update(runtime.as_bytes());
        hasher.update([0]);
    }
    let mut variables: Vec<&(String, String)> = variables.iter().collect();
    variables.sort();
    for (name, value) in variables {
        for part in [name, value] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(files: &[(&str, &str)]) -> grove_config::Project {
        let tree = grove_config::MemoryTree::new(files.iter().copied());
        match grove_config::load(&tree) {
            Ok(project) => project,
            Err(errors) => panic!("{errors}"),
        }
    }

    fn deployment(project: &str, environment_type: &str, files: &[(&str, &str)]) -> Deployment {
        let config = config(files);
        let routes = grove_config::expand_routes(
            &config,
            &grove_config::RouteContext {
                project,
                environment: "main",
                domain: "localhost",
                http_port: 8080,
                https_port: None,
            },
        );
        plan(&Inputs {
            project,
            project_entropy: "entropy",
            environment_type,
            commit: "c0ffee",
            tree_id: "7ee",
            config: &config,
            routes: &routes,
            data: DataSource::Keep,
            build_variables: &[],
            runtimes: &BTreeMap::new(),
        })
    }

    const SHOP: &[(&str, &str)] = &[
        (
            ".platform.app.yaml",
            "name: app\ntype: python:3.11\nrelationships:\n  database: db:mysql\n\
             mounts:\n  var: {source: local, source_path: var}\n\
             crons:\n  report: {spec: '*/5 * * * *', commands: {start: ./report}}\n\
             web:\n  commands:\n    start: python3 server.py\n",
        ),
        (
            ".platform/services.yaml",
            "db:\n  type: mariadb:10.11\n  disk: 256\n",
        ),
        (
            ".platform/routes.yaml",
            "https://{default}/:\n  type: upstream\n  upstream: app:http\n\
             https://www.{default}/:\n  type: redirect\n  to: https://{default}/\n",
        ),
    ];

    #[test]
    fn a_deployment_is_data() {
        insta::assert_json_snapshot!(deployment("shop", "production", SHOP));
    }

    #[test]
    fn builds_differ_across_projects_and_not_across_environments() {
        let key =
            |project: &str, kind: &str| deployment(project, kind, SHOP).apps[0].build_key.clone();
        assert_eq!(key("shop", "production"), key("shop", "development"));
        assert_ne!(key("shop", "production"), key("blog", "production"));
    }

    #[test]
    fn a_build_visible_variable_changes_the_build_key() {
        let config = config(SHOP);
        let app = &config.apps[0];
        let key = |value: &str| {
            let user = [grove_config::UserVariable {
                name: "env:GREETING".into(),
                value: serde_json::json!(value),
            }];
            build_key(
                "7ee",
                app,
                None,
                &build_variables("shop", "e", app, "7ee", &user),
            )
        };
        assert_eq!(key("hello"), key("hello"));
        assert_ne!(key("hello"), key("bonjour"));
    }

    #[test]
    fn the_runtime_that_builds_is_part_of_the_build_key() {
        let config = config(SHOP);
        let app = &config.apps[0];
        let variables = build_variables("shop", "e", app, "7ee", &[]);
        let key = |runtime: Option<&str>| build_key("7ee", app, runtime, &variables);
        assert_ne!(key(None), key(Some("python:3.11 host")));
        assert_ne!(
            key(Some("python:3.11 host")),
            key(Some("python:3.11 image python-3.11-bookworm"))
        );
        assert_eq!(key(Some("python:3.11 host")), key(Some("python:3.11 host")));
    }

    #[test]
    fn services_are_sized_by_the_environment_type() {
        let signature = |kind: &str| deployment("shop", kind, SHOP).services[0].signature.clone();
        assert_ne!(signature("production"), signature("development"));
        assert_eq!(signature("staging"), signature("staging"));
    }
}
