//! A crash at every named step of a deploy: the server is killed there (a failpoint set
//! through `GROVE_FAILPOINT`), started again, and the environment then serves either
//! the whole previous deployment or the whole new one, agreeing with its branch.

use std::time::{Duration, Instant};

use crate::support::{Server, Work};

/// The named steps of a deploy, in order (see `deploy.rs`).
const STEPS: &[&str] = &[
    "configured",
    "built",
    "services-ready",
    "instances-started",
    "deploy-hook-done",
    "routes-switched",
    "previous-stopped",
    "post-deploy-done",
    "recorded",
];

fn remote_head(work: &Work, url: &str, branch: &str) -> String {
    let out = work.git(&["ls-remote", url, &format!("refs/heads/{branch}")]);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_crash_at_any_step_of_a_deploy_leaves_the_old_or_the_new_deployment_whole() {
    let mut server = Server::start();
    server.cli_ok(&["project:create", "shop"]);
    let work = Work::example();
    let url = server.git_url("shop");
    let (ok, out) = work.push(&url, &["main"]);
    assert!(ok, "{out}");

    for (n, step) in STEPS.iter().enumerate() {
        let old = remote_head(&work, &url, "main");
        work.write("NEWS", &format!("deploy {n}\n"));
        work.commit(&format!("deploy {n}"));

        server.stop();
        server.spawn_with(&[("GROVE_FAILPOINT", step)]);
        // Wait for the start-up restore before pushing: the failpoint applies to the
        // push's deploy, which is the only deploy that runs hooks.
        wait_serving(&server);
        let (_, out) = work.push(&url, &["main"]);
        server.wait_exit(Duration::from_secs(30));
        server.spawn();

        let served = wait_serving(&server);
        let head = remote_head(&work, &url, "main");
        let deployed = server
            .cli_ok(&[
                "environment:info",
                "-p",
                "shop",
                "-e",
                "main",
                "deployed_commit",
            ])
            .trim()
            .to_string();
        assert!(
            head == old || head == served_commit(&work, &served),
            "step {step}: the branch is at {head}, which is neither the old commit {old} nor what is served\n{out}"
        );
        assert_eq!(
            deployed, head,
            "step {step}: the environment runs what its branch holds\n{out}"
        );
        assert_eq!(
            served_commit(&work, &served),
            head,
            "step {step}: what the app serves is that deployment, whole\n{out}"
        );
        let activities = server.cli_ok(&[
            "activity:list",
            "-p",
            "shop",
            "-e",
            "main",
            "--format",
            "json",
        ]);
        let activities: serde_json::Value =
            serde_json::from_str(&activities).expect("activities as JSON");
        let interrupted = activities
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["result"] == "failure");
        assert!(
            interrupted || head != old,
            "step {step}: the interrupted push is recorded as failed"
        );
    }
}

/// Waits until main answers, and returns what it serves.
fn wait_serving(server: &Server) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let url = server.cli(&[
            "environment:url",
            "-p",
            "shop",
            "-e",
            "main",
            "--primary",
            "--pipe",
        ]);
        if url.status.success() {
            let url = String::from_utf8_lossy(&url.stdout).trim().to_string();
            let out = std::process::Command::new("curl")
                .args(["-s", "--max-time", "5", &url])
                .output()
                .expect("curl");
            if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&out.stdout) {
                return value;
            }
        }
        assert!(
            Instant::now() < deadline,
            "main does not serve after a restart"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The commit whose tree the app serves (the example app reports its runtime tree id
/// and its build's output, which must be of the same tree).
fn served_commit(work: &Work, served: &serde_json::Value) -> String {
    let tree = served["variables"]["PLATFORM_TREE_ID"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let build = served["build"].as_str().unwrap_or_default();
    assert!(
        build.contains(&tree),
        "the build ({build}) and the runtime (tree {tree}) are of one deployment"
    );
    let log = work.git(&["log", "--format=%H %T", "-n", "50"]);
    String::from_utf8_lossy(&log.stdout)
        .lines()
        .find_map(|l| {
            let (commit, t) = l.split_once(' ')?;
            (t == tree).then(|| commit.to_string())
        })
        .unwrap_or_else(|| format!("no commit with tree {tree}"))
}
