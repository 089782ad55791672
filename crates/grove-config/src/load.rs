//! Finding the config files of a tree (spec §1), reading them, and checking how they
//! refer to each other.

use std::collections::{BTreeMap, BTreeSet};

use crate::app::{AppOrigin, read_app};
use crate::diagnostic::{ConfigErrors, Diagnostic, Severity, Sink, Source, global};
use crate::include::{self, Includes};
use crate::model::{App, Project, RouteKind, RouteSpec, Service};
use crate::read::{KeyUse, Keys, Reader};
use crate::routes::read_routes;
use crate::services::{default_endpoint, read_services};
use crate::tree::SourceTree;
use crate::yaml::{self, Node};

const PLATFORM_APP_FILE: &str = ".platform.app.yaml";
const MAGENTO_APP_FILE: &str = ".magento.app.yaml";
const APPLICATIONS_FILE: &str = ".platform/applications.yaml";
const ROUTES_FILES: [&str; 2] = [".platform/routes.yaml", ".magento/routes.yaml"];
const SERVICES_FILES: [&str; 2] = [".platform/services.yaml", ".magento/services.yaml"];
const UPSUN_DIR: &str = ".upsun/";

/// Service types whose endpoints are defined in their `configuration.endpoints`; without
/// that, the standard endpoint is the only one.
const CONFIGURABLE_ENDPOINTS: [&str; 5] =
    ["mariadb", "mysql", "oracle-mysql", "postgresql", "solr"];

/// The message when a tree has no app configuration at all.
pub const NO_APP_CONFIG: &str = "no application configuration found (looked for .platform.app.yaml, .magento.app.yaml, .platform/applications.yaml, .upsun/config.yaml)";

/// One parsed file; nodes of the tree are borrowed from here while reading.
struct Parsed {
    path: String,
    text: String,
    root: Node,
}

/// An app definition found somewhere, before it is read.
struct AppSite<'p> {
    file: usize,
    node: &'p Node,
    name_key: Option<&'p Node>,
    /// The app's root when its `source.root` is absent.
    default_root: String,
}

/// Loads and validates the configuration of a tree. Errors carry file, line and column;
/// warnings (keys accepted but not acted on, ignored files) are returned with the
/// project, or with the errors.
pub fn load(tree: &dyn SourceTree) -> Result<Project, ConfigErrors> {
    let mut sink = Sink::default();
    let paths = tree.paths();
    let mut parsed: Vec<Parsed> = Vec::new();

    let upsun_files: Vec<&String> = {
        let mut v: Vec<&String> = paths
            .iter()
            .filter(|p| {
                p.strip_prefix(UPSUN_DIR).is_some_and(|name| {
                    !name.contains('/') && (name.ends_with(".yaml") || name.ends_with(".yml"))
                })
            })
            .collect();
        v.sort();
        v
    };
    let mut app_files: Vec<&String> = paths
        .iter()
        .filter(|p| {
            let name = p.rsplit('/').next().unwrap_or(p);
            name == PLATFORM_APP_FILE || name == MAGENTO_APP_FILE
        })
        .collect();
    app_files.sort();
    let has_applications_yaml = paths.iter().any(|p| p == APPLICATIONS_FILE);

    let mut app_sites: Vec<AppSite<'_>> = Vec::new();
    let mut service_sites: Vec<(usize, &Node)> = Vec::new();
    let mut route_sites: Vec<(usize, &Node)> = Vec::new();
    let mut routes_present = false;

    // Parse every file we will read first, so that the nodes can be borrowed below.
    let upsun_mode = !upsun_files.is_empty();
    let mut wanted: Vec<String> = Vec::new();
    if upsun_mode {
        wanted.extend(upsun_files.iter().map(|p| (*p).clone()));
        let ignored = app_files.iter().map(|p| (*p).clone()).chain(
            [APPLICATIONS_FILE]
                .into_iter()
                .chain(ROUTES_FILES)
                .chain(SERVICES_FILES)
                .filter(|f| paths.iter().any(|p| p == f))
                .map(str::to_owned),
        );
        for file in ignored {
            sink.push(global(
                Severity::Warning,
                &file,
                "ignored: the project uses .upsun/ configuration",
                Some("move this configuration into .upsun/config.yaml or delete the file".into()),
            ));
        }
    } else {
        wanted.extend(app_files.iter().map(|p| (*p).clone()));
        if has_applications_yaml {
            wanted.push(APPLICATIONS_FILE.to_owned());
        }
        for group in [ROUTES_FILES, SERVICES_FILES] {
            let present: Vec<&str> = group
                .into_iter()
                .filter(|f| paths.iter().any(|p| p == f))
                .collect();
            let Some(first) = present.first() else {
                continue;
            };
            wanted.push((*first).to_owned());
            for other in present.iter().skip(1) {
                sink.push(global(
                    Severity::Warning,
                    other,
                    format!("ignored: {first} takes precedence"),
                    Some("keep one of the two files".into()),
                ));
            }
        }
    }
    let mut includes = Includes {
        tree,
        paths: &paths,
        included_bytes: 0,
    };
    for path in wanted {
        if let Some(mut p) = parse_file(tree, &path, &mut sink) {
            let mut r = Reader {
                src: Source::new(&p.path, &p.text),
                sink: &mut sink,
            };
            let mut stack = vec![p.path.clone()];
            include::resolve(&mut r, &mut includes, &mut p.root, &p.path, &mut stack);
            parsed.push(p);
        }
    }

    // Locate app, service and route definitions in the parsed files.
    if upsun_mode {
        locate_upsun(
            &parsed,
            &mut sink,
            &mut app_sites,
            &mut service_sites,
            &mut route_sites,
            &mut routes_present,
        );
    } else {
        for (i, p) in parsed.iter().enumerate() {
            let path = p.path.as_str();
            let name = path.rsplit('/').next().unwrap_or(path);
            if name == PLATFORM_APP_FILE || name == MAGENTO_APP_FILE {
                let dir = path.strip_suffix(name).unwrap_or("").trim_end_matches('/');
                app_sites.push(AppSite {
                    file: i,
                    node: &p.root,
                    name_key: None,
                    default_root: dir.to_owned(),
                });
            } else if path == APPLICATIONS_FILE {
                locate_applications(i, p, &mut sink, &mut app_sites);
            } else if ROUTES_FILES.contains(&path) {
                routes_present = true;
                route_sites.push((i, &p.root));
            } else if SERVICES_FILES.contains(&path) {
                service_sites.push((i, &p.root));
            }
        }
    }

    if app_sites.is_empty() && !sink.has_errors() {
        let any_app_file = !app_files.is_empty() || has_applications_yaml || upsun_mode;
        if !any_app_file {
            sink.push(global(
                Severity::Error,
                "",
                NO_APP_CONFIG,
                Some("add a .platform.app.yaml with at least `name` and `type` at the root of the repository".into()),
            ));
        } else if upsun_mode {
            sink.push(global(
                Severity::Error,
                upsun_files.first().map_or("", |s| s.as_str()),
                "no applications defined under `applications:`",
                None,
            ));
        }
    }

    // Services.
    let mut services: Vec<(Service, usize, Node)> = Vec::new();
    for (file, node) in &service_sites {
        let p = &parsed[*file];
        let mut r = Reader {
            src: Source::new(&p.path, &p.text),
            sink: &mut sink,
        };
        let mut found = Vec::new();
        read_services(&mut r, node, &mut found);
        for (service, name_node) in found {
            // Upsun: a later file's definition replaces an earlier one.
            services.retain(|(s, _, _)| s.name != service.name);
            services.push((service, *file, name_node));
        }
    }

    // Apps.
    let mut apps: Vec<(App, usize, &Node)> = Vec::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for site in &app_sites {
        let p = &parsed[site.file];
        let mut r = Reader {
            src: Source::new(&p.path, &p.text),
            sink: &mut sink,
        };
        let origin = AppOrigin {
            name_key: site.name_key,
            default_root: &site.default_root,
        };
        let Some(app) = read_app(&mut r, site.node, &origin) else {
            continue;
        };
        if let Some(first_file) = seen.get(&app.name) {
            let at = site
                .name_key
                .or_else(|| site.node.get("name"))
                .unwrap_or(site.node);
            r.error(
                at,
                format!("duplicate app name `{}`", app.name),
                Some(format!(
                    "`{}` is already defined in {first_file}; app names must be unique",
                    app.name
                )),
            );
            continue;
        }
        seen.insert(app.name.clone(), p.path.clone());
        apps.push((app, site.file, site.node));
    }

    // Routes.
    let mut routes: Vec<(RouteSpec, usize, Node)> = Vec::new();
    for (file, node) in &route_sites {
        let p = &parsed[*file];
        let mut r = Reader {
            src: Source::new(&p.path, &p.text),
            sink: &mut sink,
        };
        let mut found = Vec::new();
        read_routes(&mut r, node, &mut found);
        for (route, key) in found {
            if let Some(existing) = routes
                .iter_mut()
                .find(|(s, _, _)| s.template == route.template)
            {
                *existing = (route, *file, key);
            } else {
                routes.push((route, *file, key));
            }
        }
    }

    // Cross-references.
    let app_names: BTreeSet<&str> = apps.iter().map(|(a, _, _)| a.name.as_str()).collect();
    let service_types: BTreeMap<&str, &str> = services
        .iter()
        .map(|(s, _, _)| (s.name.as_str(), s.service_type.name.as_str()))
        .collect();
    // Services that are defined but were refused (bad type, ...): already reported, so
    // relationships to them are not reported again.
    let refused_services: BTreeSet<String> = service_sites
        .iter()
        .filter_map(|(_, node)| node.as_map())
        .flatten()
        .filter_map(|(key, _)| key.scalar_text())
        .filter(|name| !service_types.contains_key(name.as_str()))
        .collect();
    let service_endpoints: BTreeMap<&str, Vec<String>> = services
        .iter()
        .filter_map(|(s, _, _)| {
            let endpoints = s.configuration.get("endpoints")?.as_object()?;
            Some((s.name.as_str(), endpoints.keys().cloned().collect()))
        })
        .collect();
    for (app, file, node) in &apps {
        let p = &parsed[*file];
        let mut r = Reader {
            src: Source::new(&p.path, &p.text),
            sink: &mut sink,
        };
        check_source_root(&mut r, app, node, &paths);
        if let Some(rels) = node.get("relationships").and_then(Node::as_map) {
            check_relationships(
                &mut r,
                rels,
                &app.relationships,
                &app_names,
                &service_types,
                &service_endpoints,
                &refused_services,
            );
        }
        if let Some(mounts) = node.get("mounts").and_then(Node::as_map) {
            check_mount_services(&mut r, mounts, &app.mounts, &service_types);
        }
        // Workers may override relationships and mounts (spec §2.6).
        for (worker_name, worker_node) in node
            .get("workers")
            .and_then(Node::as_map)
            .unwrap_or_default()
        {
            let Some(worker) = worker_name.scalar_text().and_then(|n| app.workers.get(&n)) else {
                continue;
            };
            if let Some(rels) = worker_node.get("relationships").and_then(Node::as_map) {
                check_relationships(
                    &mut r,
                    rels,
                    &worker.relationships,
                    &app_names,
                    &service_types,
                    &service_endpoints,
                    &refused_services,
                );
            }
            if let Some(mounts) = worker_node.get("mounts").and_then(Node::as_map) {
                check_mount_services(&mut r, mounts, &worker.mounts, &service_types);
            }
        }
    }
    for (service, file, name_node) in &services {
        let p = &parsed[*file];
        let mut r = Reader {
            src: Source::new(&p.path, &p.text),
            sink: &mut sink,
        };
        for (rel_name, rel) in &service.relationships {
            if !app_names.contains(rel.service.as_str())
                && !service_types.contains_key(rel.service.as_str())
            {
                r.error(
                    name_node,
                    format!("service `{}`: relationship `{rel_name}` targets `{}`, which is not an app or a service", service.name, rel.service),
                    None,
                );
            }
        }
    }
    check_app_cycles(&apps, &parsed, &mut sink);
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    for (route, file, key) in &routes {
        let p = &parsed[*file];
        let mut r = Reader {
            src: Source::new(&p.path, &p.text),
            sink: &mut sink,
        };
        // Routes may also point at a service that fronts apps (varnish).
        if let RouteKind::Upstream { app } = &route.kind
            && !app_names.contains(app.as_str())
            && !service_types.contains_key(app.as_str())
        {
            let at = node_for_route(&p.root, key, "upstream");
            let hint = crate::suggest::did_you_mean(app, app_names.iter().copied())
                .map(|s| format!("did you mean `{s}:http`?"))
                .or_else(|| {
                    Some(format!(
                        "defined apps: {}",
                        app_names.iter().copied().collect::<Vec<_>>().join(", ")
                    ))
                });
            r.error(
                at,
                format!("route `{}` points to unknown app `{app}`", route.template),
                hint,
            );
        }
        if let Some(id) = &route.id
            && let Some(other) = ids.insert(id.clone(), route.template.clone())
        {
            let at = node_for_route(&p.root, key, "id");
            r.error(
                at,
                format!("route id `{id}` is also used by `{other}`"),
                Some("route ids must be unique".into()),
            );
        }
    }

    if !routes_present && apps.len() > 1 {
        let first = apps
            .iter()
            .map(|(a, _, _)| a.name.as_str())
            .min()
            .unwrap_or_default();
        sink.push(global(
            Severity::Warning,
            "",
            format!(
                "no routes file and {} apps: only `{first}` is routed at https://{{default}}/",
                apps.len()
            ),
            Some("add .platform/routes.yaml to route the other apps".into()),
        ));
    }

    let ConfigErrorsParts { errors, warnings } = finish(sink);
    if !errors.is_empty() {
        return Err(ConfigErrors { errors, warnings });
    }
    let mut apps: Vec<App> = apps.into_iter().map(|(a, _, _)| a).collect();
    apps.sort_by(|a, b| a.name.cmp(&b.name));
    let mut services: Vec<Service> = services.into_iter().map(|(s, _, _)| s).collect();
    services.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Project {
        apps,
        services,
        routes: routes_present.then(|| routes.into_iter().map(|(r, _, _)| r).collect()),
        warnings,
    })
}

struct ConfigErrorsParts {
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

/// Orders diagnostics by file and position so that output is stable.
fn finish(sink: Sink) -> ConfigErrorsParts {
    let key = |d: &Diagnostic| (d.file.clone(), d.line, d.column);
    let mut errors = sink.errors;
    let mut warnings = sink.warnings;
    errors.sort_by_key(key);
    warnings.sort_by_key(key);
    errors.dedup();
    warnings.dedup();
    ConfigErrorsParts { errors, warnings }
}

fn parse_file(tree: &dyn SourceTree, path: &str, sink: &mut Sink) -> Option<Parsed> {
    let Some(bytes) = tree.read(path) else {
        sink.push(global(
            Severity::Error,
            path,
            "file is listed but cannot be read",
            None,
        ));
        return None;
    };
    match yaml::parse(&bytes) {
        Ok(root) => Some(Parsed {
            path: path.to_owned(),
            text: String::from_utf8_lossy(&bytes).into_owned(),
            root,
        }),
        Err(err) => {
            let text = if bytes.len() > yaml::MAX_FILE_BYTES {
                String::new()
            } else {
                String::from_utf8_lossy(&bytes).into_owned()
            };
            let d = Source::new(path, &text).diagnostic(
                Severity::Error,
                err.pos,
                1,
                err.message,
                err.hint,
            );
            sink.push(d);
            None
        }
    }
}

/// `.platform/applications.yaml`: a list of apps with `name`, or a map keyed by name.
///
/// Without `source.root` an app is rooted at the repository root: the file's directory
/// `.platform/` is the project's configuration directory, and the official templates
/// (`platformsh-templates/golang`, `django4`) keep their code at the root with no
/// `source.root`. Several apps may share a root ("To build multiple apps from the
/// repository root, set `source.root` to `/`": `create-apps/multi-app/project-structure`).
fn locate_applications<'p>(
    file: usize,
    p: &'p Parsed,
    sink: &mut Sink,
    out: &mut Vec<AppSite<'p>>,
) {
    use crate::yaml::Kind;
    match &p.root.kind {
        Kind::Seq(items) => {
            for item in items {
                out.push(AppSite {
                    file,
                    node: item,
                    name_key: None,
                    default_root: String::new(),
                });
            }
        }
        Kind::Map(entries) => {
            for (key, value) in entries {
                out.push(AppSite {
                    file,
                    node: value,
                    name_key: Some(key),
                    default_root: String::new(),
                });
            }
        }
        _ => {
            let mut r = Reader {
                src: Source::new(&p.path, &p.text),
                sink,
            };
            r.error(
                &p.root,
                format!(
                    "applications.yaml must be a list or a mapping of apps, found {}",
                    p.root.type_name()
                ),
                None,
            );
        }
    }
}

/// `.upsun/*.yaml`: merged per top-level entry; the last definition of a name wins whole.
fn locate_upsun<'p>(
    parsed: &'p [Parsed],
    sink: &mut Sink,
    apps: &mut Vec<AppSite<'p>>,
    services: &mut Vec<(usize, &'p Node)>,
    routes: &mut Vec<(usize, &'p Node)>,
    routes_present: &mut bool,
) {
    const TOP_KEYS: Keys = &[
        ("applications", KeyUse::Supported),
        ("services", KeyUse::Supported),
        ("routes", KeyUse::Supported),
    ];
    for (i, p) in parsed.iter().enumerate() {
        let mut r = Reader {
            src: Source::new(&p.path, &p.text),
            sink,
        };
        let Some(entries) = r.map_or_null(&p.root, "the Upsun configuration") else {
            continue;
        };
        r.check_keys(entries, TOP_KEYS, "");
        if let Some(node) = p.root.get("applications")
            && let Some(list) = r.map_or_null(node, "applications")
        {
            for (key, value) in list {
                let name = key.scalar_text();
                apps.retain(|site| site.name_key.and_then(Node::scalar_text) != name);
                apps.push(AppSite {
                    file: i,
                    node: value,
                    name_key: Some(key),
                    default_root: String::new(),
                });
            }
        }
        if let Some(node) = p.root.get("services") {
            services.push((i, node));
        }
        if let Some(node) = p.root.get("routes") {
            *routes_present = true;
            routes.push((i, node));
        }
    }
}

fn check_source_root(r: &mut Reader<'_, '_>, app: &App, node: &Node, paths: &[String]) {
    if app.source_root.is_empty() {
        return;
    }
    let prefix = format!("{}/", app.source_root);
    if paths.iter().any(|p| p.starts_with(&prefix)) {
        return;
    }
    let at = node
        .get("source")
        .and_then(|s| s.get("root"))
        .unwrap_or(node);
    r.error(
        at,
        format!(
            "app `{}`: source root `{}` does not exist in the repository",
            app.name, app.source_root
        ),
        Some("`source.root` is a directory relative to the repository root".into()),
    );
}

fn check_relationships(
    r: &mut Reader<'_, '_>,
    nodes: &[(Node, Node)],
    rels: &BTreeMap<String, crate::model::Relationship>,
    apps: &BTreeSet<&str>,
    services: &BTreeMap<&str, &str>,
    endpoints: &BTreeMap<&str, Vec<String>>,
    refused: &BTreeSet<String>,
) {
    for (key, value) in nodes {
        let Some(name) = key.scalar_text() else {
            continue;
        };
        let Some(rel) = rels.get(&name) else { continue };
        let at = if value.is_null() { key } else { value };
        // In the mapping form, point at the field that is wrong.
        let at_service = value.get("service").unwrap_or(at);
        let at_endpoint = value.get("endpoint").unwrap_or(at);
        if let Some(service_type) = services.get(rel.service.as_str()) {
            if let Some(endpoint) = &rel.endpoint {
                // Grid HA suffixes address replicas of the same endpoint.
                let base = endpoint
                    .strip_suffix("-replica")
                    .or_else(|| endpoint.strip_suffix("-all"))
                    .unwrap_or(endpoint);
                let default = default_endpoint(service_type);
                match endpoints.get(rel.service.as_str()) {
                    Some(defined) if !defined.iter().any(|d| d == base) && default != Some(base) => {
                        let hint = crate::suggest::did_you_mean(base, defined.iter().map(String::as_str))
                            .map(|s| format!("did you mean `{}:{s}`?", rel.service))
                            .or_else(|| Some(format!("endpoints of `{}`: {}", rel.service, defined.join(", "))));
                        r.error(at_endpoint, format!("relationship `{name}`: service `{}` has no endpoint `{endpoint}`", rel.service), hint);
                    }
                    // These types only have their standard endpoint until `endpoints`
                    // defines others.
                    None if default.is_some_and(|d| d != base)
                        && CONFIGURABLE_ENDPOINTS.contains(service_type) =>
                    {
                        r.error(
                            at_endpoint,
                            format!("relationship `{name}`: service `{}` has no endpoint `{endpoint}`", rel.service),
                            default.map(|d| format!("`{}` ({service_type}) defines no `endpoints`, so its only endpoint is `{d}`: `{name}: \"{}:{d}\"`", rel.service, rel.service)),
                        );
                    }
                    None if default.is_some_and(|d| d != base) => r.warning(
                        at_endpoint,
                        format!("relationship `{name}`: `{endpoint}` is not the standard endpoint of {service_type} services"),
                        default.map(|d| format!("the standard endpoint is `{d}`: `{name}: \"{}:{d}\"`", rel.service)),
                    ),
                    _ => {}
                }
            } else if default_endpoint(service_type).is_none() {
                r.error(
                    at_service,
                    format!("relationship `{name}` targets a service without a valid default endpoint configuration (`{}` is {service_type})", rel.service),
                    Some(format!("name the endpoint: `{name}: \"{}:<endpoint>\"`", rel.service)),
                );
            }
        } else if apps.contains(rel.service.as_str()) {
            if let Some(endpoint) = &rel.endpoint
                && endpoint != "http"
            {
                r.error(
                    at_endpoint,
                    format!("relationship `{name}` to app `{}` must use the `http` endpoint, not `{endpoint}`", rel.service),
                    Some(format!("write `{name}: \"{}:http\"`", rel.service)),
                );
            }
        } else if !refused.contains(&rel.service) {
            let candidates = services.keys().copied().chain(apps.iter().copied());
            let hint = crate::suggest::did_you_mean(&rel.service, candidates)
                .map(|s| format!("did you mean `{s}`?"))
                .or_else(|| Some("define the service in services.yaml, or fix the name".into()));
            r.error(
                at_service,
                format!("relationship `{name}` targets `{}`, which is not defined in services.yaml or as an app", rel.service),
                hint,
            );
        }
    }
}

/// `source: service` mounts must name a network-storage service.
fn check_mount_services(
    r: &mut Reader<'_, '_>,
    nodes: &[(Node, Node)],
    mounts: &BTreeMap<String, crate::model::Mount>,
    services: &BTreeMap<&str, &str>,
) {
    for (key, value) in nodes {
        let Some(path) = key.scalar_text() else {
            continue;
        };
        let Some(mount) = crate::app::normalize_relative_dir(&path).and_then(|p| mounts.get(&p))
        else {
            continue;
        };
        let Some(service) = &mount.service else {
            continue;
        };
        if mount.source != crate::model::MountSource::Service {
            continue;
        }
        let at = value.get("service").unwrap_or(key);
        match services.get(service.as_str()) {
            Some(&"network-storage") => {}
            Some(other) => r.error(
                at,
                format!(
                    "mount `{path}` uses service `{service}`, which is {other}, not network-storage"
                ),
                None,
            ),
            None => r.error(
                at,
                format!(
                    "mount `{path}` uses service `{service}`, which is not defined in services.yaml"
                ),
                Some("define it with `type: network-storage:1.0`".into()),
            ),
        }
    }
}

/// App-to-app relationships may not form a cycle (spec §2.2).
fn check_app_cycles(apps: &[(App, usize, &Node)], parsed: &[Parsed], sink: &mut Sink) {
    let edges: BTreeMap<&str, Vec<&str>> = apps
        .iter()
        .map(|(a, _, _)| {
            let targets = a
                .relationships
                .values()
                .map(|r| r.service.as_str())
                .filter(|s| apps.iter().any(|(b, _, _)| b.name == *s))
                .collect();
            (a.name.as_str(), targets)
        })
        .collect();
    let mut reported: BTreeSet<Vec<&str>> = BTreeSet::new();
    for (app, file, node) in apps {
        if let Some(cycle) = find_cycle(&edges, app.name.as_str()) {
            let mut canonical = cycle.clone();
            canonical.sort_unstable();
            if !reported.insert(canonical) {
                continue;
            }
            let p = &parsed[*file];
            let mut r = Reader {
                src: Source::new(&p.path, &p.text),
                sink,
            };
            let at = node.get("relationships").unwrap_or(node);
            let mut path = cycle.clone();
            path.push(cycle[0]);
            r.error(
                at,
                format!("circular relationships between apps: {}", path.join(" -> ")),
                Some("app-to-app relationships must not form a cycle; remove one of them".into()),
            );
        }
    }
}

/// A cycle through `start`, as the list of apps on it.
fn find_cycle<'a>(edges: &BTreeMap<&'a str, Vec<&'a str>>, start: &'a str) -> Option<Vec<&'a str>> {
    fn dfs<'a>(
        edges: &BTreeMap<&'a str, Vec<&'a str>>,
        start: &'a str,
        current: &'a str,
        path: &mut Vec<&'a str>,
        visited: &mut BTreeSet<&'a str>,
    ) -> bool {
        for next in edges.get(current).into_iter().flatten() {
            if *next == start {
                return true;
            }
            if visited.insert(next) {
                path.push(next);
                if dfs(edges, start, next, path, visited) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start];
    let mut visited = BTreeSet::from([start]);
    dfs(edges, start, start, &mut path, &mut visited).then_some(path)
}

/// The node of `field` in the route whose key is `key`, else the key itself.
fn node_for_route<'n>(root: &'n Node, key: &'n Node, field: &str) -> &'n Node {
    let routes = root.get("routes").unwrap_or(root);
    routes
        .as_map()
        .and_then(|entries| entries.iter().find(|(k, _)| k.pos == key.pos))
        .and_then(|(_, v)| v.get(field))
        .unwrap_or(key)
}
