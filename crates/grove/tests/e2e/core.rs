//! The orchestration core, end to end: operations serialised per environment with
//! every check made by the owner, pushes that land all their refs or none, failed
//! operations that leave nothing half-done, and start-up after a crash.

use std::os::unix::fs::PermissionsExt;
use std::sync::mpsc;
use std::time::Duration;

use crate::support::{Server, Work, curl_json};
use crate::{primary_url, started_project};

fn field(server: &Server, project: &str, env: &str, name: &str) -> String {
    server
        .cli_ok(&["environment:info", "-p", project, "-e", env, name])
        .trim()
        .to_string()
}

fn head(work: &Work) -> String {
    String::from_utf8_lossy(&work.git(&["rev-parse", "HEAD"]).stdout)
        .trim()
        .to_string()
}

#[test]
fn concurrent_activations_never_exceed_the_plan() {
    let server = Server::start();
    let work = Work::example();
    server.cli_ok(&["project:create", "small", "--plan", "starter"]);
    let url = server.git_url("small");
    let branches: Vec<String> = (1..=8).map(|i| format!("b{i}")).collect();
    let mut refspecs = vec!["main".to_string()];
    refspecs.extend(branches.iter().map(|b| format!("main:{b}")));
    let refspecs: Vec<&str> = refspecs.iter().map(String::as_str).collect();
    let (ok, out) = work.push(&url, &refspecs);
    assert!(ok, "{out}");

    // Eight activations at once; the starter plan has 3 slots left besides production.
    let outcomes: Vec<(bool, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = branches
            .iter()
            .map(|b| {
                let server = &server;
                scope.spawn(move || {
                    let out = server.cli(&["environment:activate", "-p", "small", "-e", b]);
                    (
                        out.status.success(),
                        String::from_utf8_lossy(&out.stderr).into_owned(),
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("activation thread"))
            .collect()
    });
    let activated = outcomes.iter().filter(|(ok, _)| *ok).count();
    assert_eq!(activated, 3, "{outcomes:#?}");
    for (_, stderr) in outcomes.iter().filter(|(ok, _)| !ok) {
        assert!(
            stderr.contains("allows 4 active environments"),
            "refused with the limit: {stderr}"
        );
    }
    let active = branches
        .iter()
        .filter(|b| field(&server, "small", b, "status") == "active")
        .count();
    assert_eq!(active, 3, "exactly the plan's limit is active");
}

#[test]
fn concurrent_reparenting_branching_and_copies_finish() {
    let (server, work, url) = started_project();
    assert!(
        work.push(
            &url,
            &["-o", "environment.activate", "main", "main:a", "main:b"]
        )
        .0
    );
    // Operations that own two environments each, in both directions of the tree, and
    // a reparenting that turns the tree around meanwhile.
    let (done, finished) = mpsc::channel();
    std::thread::scope(|scope| {
        let jobs: Vec<Vec<&str>> = vec![
            vec!["environment:synchronize", "data", "-p", "shop", "-e", "a"],
            vec!["environment:info", "-p", "shop", "-e", "a", "parent", "b"],
            vec!["environment:branch", "c", "a", "-p", "shop"],
            vec!["environment:synchronize", "data", "-p", "shop", "-e", "b"],
            vec!["environment:branch", "d", "b", "-p", "shop"],
            vec!["environment:merge", "-p", "shop", "-e", "a"],
        ];
        for job in jobs {
            let server = &server;
            let done = done.clone();
            scope.spawn(move || {
                let out = server.cli(&job);
                let _ = done.send((job.join(" "), out.status.success()));
            });
        }
        drop(done);
        let mut results = Vec::new();
        for _ in 0..6 {
            // Generous: this detects a deadlock, it does not measure speed.
            match finished.recv_timeout(Duration::from_secs(240)) {
                Ok(result) => results.push(result),
                Err(_) => panic!(
                    "operations waited for each other: only {results:?} finished\n{}",
                    server.log()
                ),
            }
        }
    });
    assert_eq!(field(&server, "shop", "a", "parent"), "b");
}

#[test]
fn a_push_of_two_refs_where_the_second_fails_deploys_neither() {
    let (server, work, url) = started_project();
    assert!(
        work.push(
            &url,
            &[
                "-o",
                "environment.activate",
                "main",
                "main:a-good",
                "main:b-bad"
            ]
        )
        .0
    );
    let before = head(&work);

    // One commit that deploys, one whose configuration is broken, and a new branch:
    // pushed together, in that order.
    work.git(&["checkout", "-q", "-b", "a-good"]);
    work.write("NEWS", "good\n");
    work.commit("good");
    let good = head(&work);
    work.git(&["checkout", "-q", "-b", "b-bad"]);
    work.write(
        ".platform.app.yaml",
        "name: app\ntype: python:3.11\nweb: [\n",
    );
    work.commit("bad");
    let (ok, out) = work.push(
        &url,
        &[
            "-o",
            "environment.activate",
            &format!("{good}:refs/heads/a-good"),
            &format!("{good}:refs/heads/a-new"),
            "b-bad:b-bad",
        ],
    );
    assert!(!ok, "{out}");
    assert!(out.contains("Rolling `a-good` back"), "{out}");
    if out.contains("to branch `a-new`") {
        // Git chose to hand the new branch over before the broken one.
        assert!(out.contains("Removing `a-new`"), "{out}");
    }
    assert_eq!(
        field(&server, "shop", "a-good", "deployed_commit"),
        before,
        "the environment runs what its branch holds"
    );
    let refs = String::from_utf8_lossy(&work.git(&["ls-remote", &url]).stdout).into_owned();
    assert!(
        refs.contains(&format!("{before}\trefs/heads/a-good")),
        "{refs}"
    );
    assert!(!refs.contains("refs/heads/a-new"), "{refs}");
    let listed = server.cli_ok(&["environment:list", "-p", "shop", "--format", "json"]);
    assert!(!listed.contains("a-new"), "{listed}");
    // What it serves is the whole previous deployment.
    let served = curl_json(&primary_url(&server, "a-good"));
    assert!(served.is_object(), "{served}");

    // A restart keeps it there: the rollback is its deployment now.
    let mut server = server;
    server.stop();
    server.spawn();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while field(&server, "shop", "a-good", "deployed_commit") != before {
        assert!(
            std::time::Instant::now() < deadline,
            "a-good did not come back at {before}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_failed_synchronize_puts_the_childs_own_data_back() {
    let (server, work, url) = started_project();
    assert!(work.push(&url, &["main"]).0);
    // The child refuses to start on data that holds `poison` (its own post_start).
    work.git(&["checkout", "-q", "-b", "feature"]);
    let config = std::fs::read_to_string(work.path().join(".platform.app.yaml"))
        .expect("app config")
        .replace(
            "    start: python3 server.py",
            "    start: python3 server.py\n    post_start: test ! -e /app/var/poison",
        );
    work.write(".platform.app.yaml", &config);
    work.commit("feature refuses poison");
    assert!(
        work.push(&url, &["-o", "environment.activate", "feature"])
            .0
    );
    let main_url = primary_url(&server, "main");
    let feature_url = primary_url(&server, "feature");
    curl_json(&format!("{main_url}write/poison"));
    curl_json(&format!("{feature_url}write/mine.txt"));

    let out = server.cli(&[
        "environment:synchronize",
        "data",
        "-p",
        "shop",
        "-e",
        "feature",
    ]);
    assert!(!out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("has its own data back"),
        "the log says what happened: {log}"
    );
    assert_eq!(
        curl_json(&feature_url)["mount_files"],
        serde_json::json!(["mine.txt"]),
        "the child's own data, not the parent's copy"
    );
}

#[test]
fn a_restart_removes_what_a_crash_left_and_keeps_the_data_dir_private() {
    let (mut server, work, url) = started_project();
    assert!(work.push(&url, &["main"]).0);
    let data = server.data_dir();
    let leftovers = [
        data.join("builds/.tmp-0123abcd"),
        data.join("git/shop.git/objects/tmp_objdir-incoming-XyZ123"),
    ];
    for dir in &leftovers {
        std::fs::create_dir_all(dir.join("inner")).expect("leftover");
    }
    server.crash();
    server.spawn();
    for dir in &leftovers {
        assert!(!dir.exists(), "{} was left", dir.display());
    }
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    assert_eq!(mode(&data), 0o700, "the data directory");
    assert_eq!(mode(&data.join("grove.db")), 0o600, "the database");
    assert_eq!(mode(&data.join("admin-token")), 0o600, "the token");
    let app_log = data.join("logs/shop/main/app.log");
    // The restart deploys main again, which writes to its log.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !app_log.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(mode(&app_log), 0o600, "the app's log");
}

#[test]
fn api_errors_say_their_kind() {
    let (server, _work, _url) = started_project();
    let call = |path: &str| {
        let out = std::process::Command::new("curl")
            .args(["-s", "-H"])
            .arg(format!("Authorization: Bearer {}", server.token()))
            .arg(format!("http://127.0.0.1:{}{path}", server.api_port))
            .output()
            .expect("curl");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("a JSON error body")
    };
    let missing = call("/api/projects/nope");
    assert_eq!(missing["error"]["kind"], "not_found", "{missing}");
    assert!(
        missing["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("nope")),
        "{missing}"
    );
    let out = server.cli(&["project:create", "Bad Name"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid project name"),
        "the CLI prints the message as it is"
    );
}

#[test]
fn builds_are_never_shared_across_projects() {
    let (server, work, url) = started_project();
    let (ok, out) = work.push(&url, &["main"]);
    assert!(ok, "{out}");
    server.cli_ok(&["project:create", "other"]);
    // The same tree, pushed to another project: it builds on its own, with its own
    // project's variables.
    let (ok, out) = work.push(&server.git_url("other"), &["main"]);
    assert!(ok, "{out}");
    assert!(out.contains("Building app `app`"), "{out}");
    assert!(!out.contains("Reusing build"), "{out}");
    let builds = std::fs::read_dir(server.data_dir().join("builds"))
        .expect("builds")
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .count();
    assert_eq!(builds, 2, "one build per project");
}
