//! The environment variables an app sees at build and at run time (spec §5.1), and the
//! build fingerprint (spec §2.5 "Build reuse").

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::expand::RouteTable;
use crate::model::App;

/// Both names of every platform variable: the Platform.sh one and Magento Cloud's.
const PREFIXES: [&str; 2] = ["PLATFORM_", "MAGENTO_CLOUD_"];

/// Top-level keys of the app config that do not affect a build (spec §2.5).
const NON_BUILD_KEYS: [&str; 5] = ["access", "relationships", "crons", "web", "workers"];

/// A project or environment variable a user set (`variable:create`) that reaches an app,
/// precedence already applied: `env:NAME` becomes the environment variable `NAME`, any
/// other name an entry of `PLATFORM_VARIABLES`. Both override the app config's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserVariable {
    pub name: String,
    /// A string, or any JSON for a variable created with `--json`.
    pub value: Value,
}

/// Inputs of [`build_environment`].
#[derive(Clone, Copy, Debug)]
pub struct BuildContext<'a> {
    pub project: &'a str,
    pub app: &'a App,
    pub tree_id: &'a str,
    pub project_entropy: &'a str,
    /// Where the app is built, e.g. `/app`.
    pub app_dir: &'a str,
    pub cache_dir: &'a str,
    pub output_dir: &'a str,
    /// `grove`.
    pub vendor: &'a str,
    /// The build-visible user variables.
    pub variables: &'a [UserVariable],
}

/// Inputs of [`runtime_environment`].
#[derive(Clone, Copy, Debug)]
pub struct RuntimeContext<'a> {
    pub project: &'a str,
    pub app: &'a App,
    pub tree_id: &'a str,
    pub project_entropy: &'a str,
    pub app_dir: &'a str,
    pub branch: &'a str,
    /// The environment's machine name.
    pub environment: &'a str,
    /// `production`, `staging` or `development`.
    pub environment_type: &'a str,
    pub routes: &'a RouteTable,
    /// The decoded `PLATFORM_RELATIONSHIPS` (`{}` until services exist).
    pub relationships: &'a Value,
    pub port: u16,
    /// The runtime-visible user variables.
    pub variables: &'a [UserVariable],
}

/// Variables for the build hook. Deliberately without `PLATFORM_ENVIRONMENT` and
/// `PLATFORM_BRANCH`: a build is shared by every branch with the same tree, and the
/// config-reader libraries detect build time by `PLATFORM_ENVIRONMENT` being unset.
pub fn build_environment(ctx: &BuildContext<'_>) -> Vec<(String, String)> {
    let app = ctx.app;
    let platform = vec![
        ("APPLICATION", base64_json(&build_app_json(app))),
        ("APPLICATION_NAME", app.name.clone()),
        ("PROJECT", ctx.project.to_owned()),
        ("TREE_ID", ctx.tree_id.to_owned()),
        ("APP_DIR", ctx.app_dir.to_owned()),
        ("PROJECT_ENTROPY", ctx.project_entropy.to_owned()),
        ("CACHE_DIR", ctx.cache_dir.to_owned()),
        ("OUTPUT_DIR", ctx.output_dir.to_owned()),
        ("VENDOR", ctx.vendor.to_owned()),
        (
            "VARIABLES",
            base64_json(&platform_variables(app, ctx.variables)),
        ),
    ];
    assemble(
        platform,
        vec![("CI".into(), "true".into())],
        app,
        ctx.variables,
    )
}

/// Variables for the running app (web, workers, hooks after build, crons, SSH).
pub fn runtime_environment(ctx: &RuntimeContext<'_>) -> Vec<(String, String)> {
    let app = ctx.app;
    let document_root = match app.web.document_root.as_deref() {
        Some(root) if !root.is_empty() => {
            format!(
                "{}/{}",
                ctx.app_dir.trim_end_matches('/'),
                root.trim_matches('/')
            )
        }
        _ => ctx.app_dir.to_owned(),
    };
    let mut platform = vec![
        ("APPLICATION", base64_json(&app.json)),
        ("APPLICATION_NAME", app.name.clone()),
        ("PROJECT", ctx.project.to_owned()),
        ("TREE_ID", ctx.tree_id.to_owned()),
        ("APP_DIR", ctx.app_dir.to_owned()),
        ("PROJECT_ENTROPY", ctx.project_entropy.to_owned()),
        ("BRANCH", ctx.branch.to_owned()),
        ("ENVIRONMENT", ctx.environment.to_owned()),
        ("ENVIRONMENT_TYPE", ctx.environment_type.to_owned()),
        ("DOCUMENT_ROOT", document_root),
        ("ROUTES", base64_json(&ctx.routes.to_json())),
        ("RELATIONSHIPS", base64_json(ctx.relationships)),
        (
            "VARIABLES",
            base64_json(&platform_variables(app, ctx.variables)),
        ),
        // Outgoing mail is off until Grove has an SMTP relay: empty means "no mail".
        ("SMTP_HOST", String::new()),
    ];
    let commands = &app.web.commands;
    for (name, command) in [
        ("APP_COMMAND", &commands.start),
        ("PRE_APP_COMMAND", &commands.pre_start),
        ("POST_APP_COMMAND", &commands.post_start),
    ] {
        if let Some(command) = command {
            platform.push((name, command.clone()));
        }
    }
    assemble(
        platform,
        vec![("PORT".into(), ctx.port.to_string())],
        app,
        ctx.variables,
    )
}

/// Platform variables under both prefixes, then `extra`, then the `env:` variables (the
/// user's over the app config's), which may not override anything the platform sets.
fn assemble(
    platform: Vec<(&str, String)>,
    extra: Vec<(String, String)>,
    app: &App,
    user: &[UserVariable],
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for prefix in PREFIXES {
        for (name, value) in &platform {
            out.push((format!("{prefix}{name}"), value.clone()));
        }
    }
    out.extend(extra);
    let mut env: Vec<(String, String)> = Vec::new();
    let app_env = app.variables.get("env").into_iter().flatten();
    let user_env = user
        .iter()
        .filter_map(|v| Some((v.name.strip_prefix("env:")?.to_string(), &v.value)));
    for (name, value) in app_env.map(|(n, v)| (n.clone(), v)).chain(user_env) {
        if name.is_empty() || out.iter().any(|(n, _)| *n == name) {
            continue;
        }
        env.retain(|(n, _)| *n != name);
        env.push((name, env_value(value)));
    }
    out.extend(env);
    out
}

/// An `env:` variable's value as text: strings as they are, anything else as JSON.
fn env_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `PLATFORM_VARIABLES`: every variable except `env:` ones, the app config's as
/// `prefix:name`, then the user's by their name (overriding).
fn platform_variables(app: &App, user: &[UserVariable]) -> Value {
    let mut out = Map::new();
    for (prefix, vars) in &app.variables {
        if prefix == "env" {
            continue;
        }
        for (name, value) in vars {
            out.insert(format!("{prefix}:{name}"), value.clone());
        }
    }
    for variable in user {
        if !variable.name.starts_with("env:") {
            out.insert(variable.name.clone(), variable.value.clone());
        }
    }
    Value::Object(out)
}

/// The app config without the keys that do not affect a build; worker entries keep only
/// their mounts, and only the build hook is kept.
pub fn build_app_json(app: &App) -> Value {
    let mut json = app.json.clone();
    if let Value::Object(map) = &mut json {
        let workers = map.get("workers").cloned();
        for key in NON_BUILD_KEYS {
            map.remove(key);
        }
        if let Some(Value::Object(workers)) = workers {
            let mounts_only: Map<String, Value> = workers
                .into_iter()
                .map(|(name, worker)| {
                    let mounts = worker.get("mounts").cloned().unwrap_or(Value::Null);
                    (name, serde_json::json!({ "mounts": mounts }))
                })
                .collect();
            map.insert("workers".into(), Value::Object(mounts_only));
        }
        if let Some(Value::Object(hooks)) = map.get_mut("hooks") {
            hooks.remove("deploy");
            hooks.remove("post_deploy");
        }
    }
    json
}

impl App {
    /// Canonical string of everything that affects a build (spec §2.5 "Build reuse"):
    /// not `access`, `relationships`, deploy/post_deploy hooks, `crons`, `web`, or
    /// `workers` except their mounts. Stable across key order and formatting.
    pub fn build_fingerprint(&self) -> String {
        let value = serde_json::json!({
            "app": build_app_json(self),
            "source_root": self.source_root,
        });
        canonical_json(&value)
    }
}

/// Compact JSON with object keys sorted, whatever order the map keeps them in.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Base64 (standard alphabet) of compact JSON, as the platform encodes its JSON variables.
pub fn base64_json(value: &Value) -> String {
    base64::engine::general_purpose::STANDARD.encode(value.to_string())
}
