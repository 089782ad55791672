//! User variables as on Platform.sh: levels, inheritance down the tree, `env:` and
//! `PLATFORM_VARIABLES`, sensitive values, and rebuilds only for build-visible changes.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::access::{add_user, cli_as, text};
use crate::support::{Server, curl_json};
use crate::{primary_url, started_project};

const SECRET: &str = "s3cr3t-never-shown-7f1c";

/// The example app, also reporting its whole environment and the decoded
/// `PLATFORM_VARIABLES`/`MAGENTO_CLOUD_VARIABLES`.
fn reporting_app(work: &crate::support::Work) {
    let server = std::fs::read_to_string(work.path().join("server.py")).expect("server.py");
    let server = server.replace(
        "\"pid\": os.getpid(),",
        "\"pid\": os.getpid(), \"env\": dict(os.environ), \
         \"platform_variables\": decoded(\"PLATFORM_VARIABLES\"), \
         \"magento_variables\": decoded(\"MAGENTO_CLOUD_VARIABLES\"),",
    );
    assert!(
        server.contains("platform_variables"),
        "server.py changed shape"
    );
    work.write("server.py", &server);
    work.commit("report every variable");
}

/// Runs a variable command; returns its stdout and stderr (the redeploy logs).
fn variable(server: &Server, args: &[&str]) -> String {
    let out = server.cli(args);
    let all = text(&out);
    assert!(out.status.success(), "grove {args:?} failed:\n{all}");
    all
}

fn served(server: &Server, env: &str) -> Value {
    curl_json(&primary_url(server, env))
}

fn env_of(served: &Value, name: &str) -> Value {
    served["env"][name].clone()
}

#[test]
fn variables_flow_down_the_tree_and_sensitive_values_never_leave_the_server() {
    let (server, work, url) = started_project();
    reporting_app(&work);
    let (ok, out) = work.push(&url, &["main"]);
    assert!(ok, "{out}");
    assert_eq!(
        env_of(&served(&server, "main"), "GREETING"),
        "hello from grove"
    );

    // An environment variable on main overrides the app config's; it is visible to the
    // build by default, so the build key changes and the app is built again.
    let out = variable(
        &server,
        &[
            "variable:create",
            "-p",
            "shop",
            "-e",
            "main",
            "--level",
            "environment",
            "--name",
            "env:GREETING",
            "--value",
            "from main",
        ],
    );
    assert!(
        out.contains("Building app"),
        "a build-visible change rebuilds: {out}"
    );
    assert_eq!(env_of(&served(&server, "main"), "GREETING"), "from main");

    // A child inherits it...
    server.cli_ok(&["environment:branch", "feature", "main", "-p", "shop"]);
    assert_eq!(env_of(&served(&server, "feature"), "GREETING"), "from main");
    // ...unless it has its own, which changes only the child.
    let out = variable(
        &server,
        &[
            "variable:create",
            "-p",
            "shop",
            "-e",
            "feature",
            "--name",
            "env:GREETING",
            "--value",
            "from feature",
        ],
    );
    assert!(
        out.contains("Redeploy feature") && !out.contains("Redeploy main"),
        "{out}"
    );
    assert_eq!(
        env_of(&served(&server, "feature"), "GREETING"),
        "from feature"
    );
    assert_eq!(env_of(&served(&server, "main"), "GREETING"), "from main");
    // A project variable comes below both environments' own.
    variable(
        &server,
        &[
            "variable:create",
            "-p",
            "shop",
            "--level",
            "project",
            "--name",
            "env:GREETING",
            "--value",
            "from the project",
        ],
    );
    assert_eq!(env_of(&served(&server, "main"), "GREETING"), "from main");

    // Other names are entries of PLATFORM_VARIABLES (and MAGENTO_CLOUD_VARIABLES), JSON
    // decoded with --json. Runtime only: the build is reused.
    let out = variable(
        &server,
        &[
            "variable:create",
            "-p",
            "shop",
            "--level",
            "project",
            "--name",
            "d8config:system.site",
            "--value",
            r#"{"name": "My site"}"#,
            "--json",
            "--visible-build",
            "false",
        ],
    );
    assert!(
        out.contains("Reusing build") && !out.contains("Building app"),
        "{out}"
    );
    for env in ["main", "feature"] {
        let s = served(&server, env);
        for key in ["platform_variables", "magento_variables"] {
            assert_eq!(
                s[key]["d8config:system.site"],
                json!({"name": "My site"}),
                "{env}: {s}"
            );
        }
        assert!(s["env"].get("d8config:system.site").is_none(), "{s}");
        // As the app itself decodes it.
        let encoded = env_of(&s, "PLATFORM_VARIABLES");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("PLATFORM_VARIABLES"))
            .expect("base64");
        let decoded: Value = serde_json::from_slice(&decoded).expect("JSON");
        assert_eq!(decoded["d8config:system.site"]["name"], "My site");
    }

    // A sensitive variable reaches the apps and nothing else.
    let mut said = variable(
        &server,
        &[
            "variable:create",
            "-p",
            "shop",
            "--level",
            "project",
            "--name",
            "env:API_KEY",
            "--value",
            SECRET,
            "--sensitive",
            "--visible-build",
            "false",
        ],
    );
    assert!(said.contains("Reusing build"), "{said}");
    for env in ["main", "feature"] {
        assert_eq!(env_of(&served(&server, env), "API_KEY"), SECRET);
    }
    let viewer = add_user(&server, "shop", "viewer@example.com", &["viewer"]);
    let forbidden = cli_as(
        &server,
        &viewer,
        &[
            "variable:create",
            "-p",
            "shop",
            "--name",
            "env:X",
            "--value",
            "x",
        ],
    );
    assert!(
        !forbidden.status.success(),
        "a viewer cannot create variables"
    );
    let viewer_list = cli_as(
        &server,
        &viewer,
        &["variable:list", "-p", "shop", "-e", "main"],
    );
    assert!(viewer_list.status.success(), "{}", text(&viewer_list));
    assert!(
        text(&viewer_list).contains("env:API_KEY"),
        "{}",
        text(&viewer_list)
    );
    said.push_str(&text(&viewer_list));
    for args in [
        vec!["variable:list", "-p", "shop", "-e", "feature"],
        vec!["variable:list", "-p", "shop", "--format", "json"],
        vec![
            "variable:list",
            "-p",
            "shop",
            "-e",
            "main",
            "--format",
            "yaml",
        ],
        vec!["variable:get", "env:API_KEY", "-p", "shop"],
        vec![
            "variable:get",
            "env:API_KEY",
            "-p",
            "shop",
            "--format",
            "json",
        ],
        vec![
            "variable:update",
            "env:API_KEY",
            "-p",
            "shop",
            "--enabled",
            "--format",
            "json",
        ],
        vec![
            "variable:get",
            "env:API_KEY",
            "-p",
            "shop",
            "--property",
            "value",
        ],
    ] {
        said.push_str(&text(&server.cli(&args)));
    }
    let activities: Value = serde_json::from_str(&server.cli_ok(&[
        "activity:list",
        "-p",
        "shop",
        "--all",
        "--limit",
        "100",
        "--format",
        "json",
    ]))
    .expect("activities as JSON");
    for activity in activities.as_array().expect("a list") {
        let id = activity["id"].as_str().expect("an id");
        said.push_str(&server.cli_ok(&["activity:log", "-p", "shop", id]));
        said.push_str(&text(&server.cli(&["activity:log", "-p", "shop", id])));
    }
    assert!(said.contains("[sensitive: not shown]"), "{said}");
    assert!(
        !said.contains(SECRET),
        "a sensitive value was shown:\n{said}"
    );
    assert!(
        !server.log().contains(SECRET),
        "a sensitive value was logged"
    );
    // It cannot be made readable again.
    let out = server.cli(&[
        "variable:update",
        "env:API_KEY",
        "-p",
        "shop",
        "--sensitive",
        "false",
    ]);
    assert!(!out.status.success(), "{}", text(&out));

    // Deleting the child's own brings the inherited value back.
    variable(
        &server,
        &[
            "variable:delete",
            "env:GREETING",
            "-p",
            "shop",
            "-e",
            "feature",
        ],
    );
    assert_eq!(env_of(&served(&server, "feature"), "GREETING"), "from main");
}
