//! Backups: rows and files backed up, changed and deleted, restored identical; a
//! backup whose store cannot be written is a failed activity with the reason.

use crate::support::{Server, Work, curl, curl_json};

fn get_ok(url: &str) {
    let (status, body) = curl(url);
    assert_eq!(status, 200, "{url}: {body}");
}

fn backups(server: &Server) -> Vec<serde_json::Value> {
    backups_of(server, "main")
}

/// The backups of `env` of project `shop`.
fn backups_of(server: &Server, env: &str) -> Vec<serde_json::Value> {
    let out = server.cli_ok(&["backup:list", "-p", "shop", "-e", env, "--format", "json"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Waits until `env` of project `shop` has at least `wanted` automatic backup
/// activities that succeeded, and returns their number; fails after `within`
/// seconds with every automatic backup's result and the logs of those that failed.
fn automatic_backups_done(server: &Server, env: &str, wanted: usize, within: u64) -> usize {
    let started = std::time::Instant::now();
    loop {
        let out = server.cli_ok(&[
            "activity:list",
            "-p",
            "shop",
            "-e",
            env,
            "--format",
            "json",
            "--limit",
            "100",
        ]);
        let activities: Vec<serde_json::Value> = serde_json::from_str(&out).expect("json");
        let automatic: Vec<&serde_json::Value> = activities
            .iter()
            .filter(|a| {
                a["description"]
                    .as_str()
                    .is_some_and(|d| d.contains("(automatic)"))
            })
            .collect();
        let succeeded = automatic
            .iter()
            .filter(|a| a["result"] == "success")
            .count();
        if succeeded >= wanted {
            return succeeded;
        }
        if started.elapsed() > std::time::Duration::from_secs(within) {
            let mut report = String::new();
            for activity in &automatic {
                report.push_str(&format!(
                    "{} {} {} {}\n",
                    activity["id"], activity["state"], activity["result"], activity["description"]
                ));
                if activity["result"] != "success" {
                    let id = activity["id"].as_str().unwrap_or_default();
                    let log = server.cli(&["activity:log", id, "-p", "shop"]);
                    report.push_str(&String::from_utf8_lossy(&log.stdout));
                }
            }
            panic!(
                "{succeeded} of {wanted} automatic backups of {env} in {within} s:\n{report}\n{}",
                server.log()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// Storage that snapshots (a btrfs loop pool), as production has. Needs root.
const BTRFS: (&str, &str) = ("GROVE_STORAGE", "btrfs-loop:2G");

#[test]
fn restore_brings_back_rows_and_files_exactly_and_an_unwritable_store_fails_loudly() {
    // Declared first, dropped last: after the server stopped.
    let _pool;
    let mut server = Server::start_with(&[BTRFS]);
    _pool = crate::limits::Pool(server.data_dir());
    server.cli_ok(&["project:create", "shop"]);
    let work = Work::fixture("backup-app");
    let (ok, out) = work.push(&server.git_url("shop"), &["main"]);
    assert!(ok, "push failed:\n{out}\n{}", server.log());
    let url = crate::primary_url(&server, "main");

    for value in ["apple", "pear", "plum"] {
        get_ok(&format!("{url}insert/{value}"));
    }
    get_ok(&format!("{url}put/one.txt/first-file"));
    get_ok(&format!("{url}put/two.txt/second-file"));
    // Committed the instant before the backup starts: it must be in the backup.
    get_ok(&format!("{url}insert/just-before"));
    let rows = curl_json(&format!("{url}rows"));
    let files = curl_json(&format!("{url}files"));
    assert_eq!(rows.as_array().map(Vec::len), Some(4), "{rows}");
    assert_eq!(files.as_object().map(|f| f.len()), Some(2), "{files}");
    // The rows and the files' hashes an environment serves are the backup's.
    let assert_backed_up_data = |url: &str, what: &str| {
        assert_eq!(curl_json(&format!("{url}rows")), rows, "the rows of {what}");
        assert_eq!(
            curl_json(&format!("{url}files")),
            files,
            "the files of {what}"
        );
    };

    // A consistent backup: MariaDB held at BLOCK_COMMIT during the snapshot, the pause
    // measured and logged.
    let out = server.cli(&["backup:create", "-p", "shop", "-e", "main"]);
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "backup failed:\n{log}");
    for held in [
        "`db`: commits blocked (BACKUP STAGE BLOCK_COMMIT), resumed",
        "`cache`: writes paused (CLIENT PAUSE WRITE), resumed",
        "`pg`: checkpointed (CHECKPOINT), resumed",
    ] {
        assert!(log.contains(held), "not quiesced: {held}\n{log}");
    }
    let pause = log
        .lines()
        .find(|l| l.contains("was paused for"))
        .unwrap_or_else(|| panic!("no pause in the log:\n{log}"));
    println!("consistent backup: {}", pause.trim());
    assert!(
        pause.contains("a snapshot of the whole volume at one instant"),
        "{log}"
    );
    let listed = backups(&server);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let backup = &listed[0];
    assert_eq!(backup["status"], "completed", "{backup}");
    assert_eq!(backup["consistency"], "consistent", "{backup}");
    assert!(backup["size"].as_u64().unwrap_or_default() > 0, "{backup}");
    assert!(backup["commit"].is_string(), "{backup}");
    let id = backup["id"].as_str().unwrap_or_default().to_string();
    let got = server.cli_ok(&["backup:get", &id, "-p", "shop", "-e", "main"]);
    assert!(got.contains(&id), "{got}");
    let info = server.cli_ok(&[
        "environment:info",
        "-p",
        "shop",
        "-e",
        "main",
        "last_backup_status",
    ]);
    assert_eq!(info.trim(), "completed");

    let out = server.cli(&["backup:verify", &id, "-p", "shop", "-e", "main"]);
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "verify failed:\n{log}");
    assert!(log.contains("Restored and verified"), "{log}");

    // New code after the backup: the restore takes the branch back to the backup's.
    let commit = backup["commit"].as_str().unwrap_or_default().to_string();
    work.write("NOTES.txt", "after the backup\n");
    work.commit("after the backup");
    let (ok, out) = work.push(&server.git_url("shop"), &["main"]);
    assert!(ok, "second push failed:\n{out}");
    let deployed = |env: &str| {
        server
            .cli_ok(&[
                "environment:info",
                "-p",
                "shop",
                "-e",
                env,
                "deployed_commit",
            ])
            .trim()
            .to_string()
    };
    assert_ne!(deployed("main"), commit);

    // Change and delete rows and files.
    get_ok(&format!("{url}delete/pear"));
    get_ok(&format!("{url}update/changed"));
    get_ok(&format!("{url}insert/new"));
    get_ok(&format!("{url}put/one.txt/overwritten"));
    get_ok(&format!("{url}rm/two.txt"));
    get_ok(&format!("{url}put/three.txt/added"));
    assert_ne!(curl_json(&format!("{url}rows")), rows);
    assert_ne!(curl_json(&format!("{url}files")), files);

    // Into another environment (a branch holding the changed data): its data is the
    // backup's, with credentials of its own; the backup's environment is untouched.
    let changed = (
        curl_json(&format!("{url}rows")),
        curl_json(&format!("{url}files")),
    );
    server.cli_ok(&["environment:branch", "feature", "main", "-p", "shop"]);
    let out = server.cli(&["backup:restore", &id, "-p", "shop", "-e", "feature"]);
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "restore into feature failed:\n{log}");
    let feature = crate::primary_url(&server, "feature");
    assert_backed_up_data(&feature, "feature");
    assert_eq!(curl_json(&format!("{url}rows")), changed.0, "main's rows");
    assert_eq!(curl_json(&format!("{url}files")), changed.1, "main's files");

    // Into a new environment branched from main: the backup's rows and files, not
    // main's changed ones.
    let restore_into_new = |target: &str| {
        server.cli(&[
            "backup:restore",
            &id,
            "-p",
            "shop",
            "--branch-from",
            "main",
            "--target",
            target,
        ])
    };
    let out = restore_into_new("restored");
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "restore into a new environment failed:\n{log}"
    );
    let restored = crate::primary_url(&server, "restored");
    assert_backed_up_data(&restored, "the new environment");
    assert_eq!(deployed("restored"), commit, "the backup's code");

    // One activity puts everything back.
    let out = server.cli(&["backup:restore", &id, "-p", "shop"]);
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "restore failed:\n{log}\n{}",
        server.log()
    );
    assert!(log.contains("Restored and verified"), "{log}");
    let url = crate::primary_url(&server, "main");
    assert_eq!(deployed("main"), commit, "the backup's code runs again");
    assert_backed_up_data(&url, "main after the restore");

    // A restore that fails (its snapshot vanished from the store) leaves the
    // environment exactly as it was, serving its current data.
    get_ok(&format!("{url}insert/after-restore"));
    get_ok(&format!("{url}put/four.txt/kept"));
    let (rows_now, files_now) = (
        curl_json(&format!("{url}rows")),
        curl_json(&format!("{url}files")),
    );
    let snapshots = server.data_dir().join("backups").join("snapshots");
    for entry in std::fs::read_dir(&snapshots).expect("the store's snapshots") {
        std::fs::remove_file(entry.expect("entry").path()).expect("remove a snapshot");
    }
    let out = server.cli(&["backup:verify", &id, "-p", "shop", "-e", "main"]);
    assert!(
        !out.status.success(),
        "a backup without its snapshot verified"
    );
    let out = server.cli(&["backup:restore", &id, "-p", "shop", "-e", "main"]);
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "a restore without its snapshot succeeded:\n{log}"
    );
    assert!(log.contains("could not be restored"), "{log}");
    assert_eq!(curl_json(&format!("{url}rows")), rows_now);
    assert_eq!(curl_json(&format!("{url}files")), files_now);
    // Nor does a new environment stay behind when its restore fails.
    let out = restore_into_new("never");
    assert!(
        !out.status.success(),
        "a restore without its snapshot succeeded"
    );
    let out = server.cli(&["environment:info", "-p", "shop", "-e", "never"]);
    assert!(
        !out.status.success(),
        "the failed new environment is still there: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A store below a regular file cannot be written: a failed activity naming why, a
    // failed backup on record, and environment:info says so.
    server.stop();
    let blocker = server.dir.path().join("not-a-directory");
    std::fs::write(&blocker, "a file").expect("write the blocking file");
    let store = blocker.join("backups");
    server.spawn_with(&[
        BTRFS,
        ("GROVE_BACKUP_STORE", store.to_str().expect("utf-8 path")),
    ]);
    let out = server.cli(&["backup:create", "--live", "-p", "shop", "-e", "main"]);
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "a backup to an unwritable store succeeded:\n{log}"
    );
    assert!(
        log.contains("backup store is unavailable") && log.contains("not-a-directory"),
        "the reason is not in the log:\n{log}"
    );
    let listed = backups(&server);
    assert_eq!(listed.len(), 2, "{listed:?}");
    let failed = &listed[0];
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["consistency"], "live", "{failed}");
    assert!(
        failed["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not-a-directory")),
        "{failed}"
    );
    let info = server.cli_ok(&[
        "environment:info",
        "-p",
        "shop",
        "-e",
        "main",
        "last_backup_status",
    ]);
    assert_eq!(info.trim(), "failed");
    // The environment kept serving throughout.
    let url = crate::primary_url(&server, "main");
    assert_eq!(curl_json(&format!("{url}rows")), rows_now);
}

#[test]
fn production_is_backed_up_automatically_and_pruned_by_the_retention_policy() {
    let mut server = Server::start();
    server.cli_ok(&["project:create", "shop"]);
    let work = Work::fixture("backup-app");
    let (ok, out) = work.push(&server.git_url("shop"), &["main"]);
    assert!(ok, "push failed:\n{out}\n{}", server.log());
    // Every 2 s instead of every hour: production's policy keeps the first backup of
    // each hour and the newest, so all but those are pruned as they come.
    server.stop();
    server.spawn_with(&[("GROVE_AUTOMATIC_BACKUPS_EVERY", "2")]);
    let succeeded = automatic_backups_done(&server, "main", 4, 120);
    let listed = backups(&server);
    let kept = listed
        .iter()
        .filter(|b| b["automatic"] == true && b["status"] == "completed")
        .count();
    // The first of this hour and the newest (a third if an hour began meanwhile).
    assert!(
        (1..=3).contains(&kept) && kept < succeeded,
        "{succeeded} automatic backups, {kept} kept: {listed:?}"
    );

    // Deleting one is an activity of its own, and the backup is gone from the list
    // (with no automatic backup holding the store meanwhile).
    server.stop();
    server.spawn();
    let listed = backups(&server);
    let oldest = listed
        .iter()
        .rev()
        .find(|b| b["status"] == "completed")
        .and_then(|b| b["id"].as_str())
        .expect("a completed backup")
        .to_string();
    let out = server.cli(&["backup:delete", &oldest, "-p", "shop", "-e", "main"]);
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "backup:delete failed:\n{log}");
    assert!(
        log.contains("Forgot snapshot") && log.contains(&format!("Deleted backup {oldest}")),
        "{log}"
    );
    assert!(
        !backups(&server).iter().any(|b| b["id"] == oldest.as_str()),
        "backup {oldest} is still listed"
    );
    let out = server.cli_ok(&["activity:list", "-p", "shop", "--format", "json"]);
    assert!(
        out.contains(&format!("Delete backup {oldest} of main")),
        "no activity for the deletion: {out}"
    );
}

#[test]
fn db_dump_writes_the_rows_as_sql_gzipped_or_to_stdout_only() {
    let server = Server::start();
    server.cli_ok(&["project:create", "shop"]);
    let work = Work::fixture("backup-app");
    let (ok, out) = work.push(&server.git_url("shop"), &["main"]);
    assert!(ok, "push failed:\n{out}\n{}", server.log());
    let url = crate::primary_url(&server, "main");
    for value in ["dumped-apple", "dumped-pear"] {
        get_ok(&format!("{url}insert/{value}"));
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let target = ["-p", "shop", "-e", "main"];
    let dump = |args: &[&str]| server.cli(&[&["db:dump"][..], &target, args].concat());

    // Two database relationships: which one is for the user to say.
    let out = dump(&["--stdout"]);
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success() && out.stdout.is_empty(), "{log}");
    assert!(
        log.contains("several database relationships (database, pgdatabase)"),
        "{log}"
    );

    // To a file named after what was dumped.
    let out = std::process::Command::new(crate::support::GROVE)
        .args(["db:dump", "-r", "database"])
        .args(target)
        .current_dir(dir.path())
        .env("GROVE_URL", format!("http://127.0.0.1:{}", server.api_port))
        .env("GROVE_TOKEN", server.token())
        .env_remove("GROVE_PROJECT")
        .output()
        .expect("run grove");
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "db:dump failed:\n{log}");
    let file = dir.path().join("shop--main--database--main--dump.sql");
    let sql = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}:\n{log}"));
    assert!(sql.contains("CREATE TABLE `items`"), "{sql}");
    assert!(
        sql.contains("'dumped-apple'") && sql.contains("'dumped-pear'"),
        "the rows are not in the dump:\n{sql}"
    );

    // Gzipped, into a chosen file.
    let gz = dir.path().join("dump.sql.gz");
    let gz_arg = gz.to_str().expect("utf-8 path");
    let out = dump(&["--relationship", "database", "--gzip", "--file", gz_arg]);
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{log}");
    let bytes = std::fs::read(&gz).unwrap_or_else(|e| panic!("{e}: {log}"));
    assert_eq!(bytes.get(..2), Some(&[0x1f, 0x8b][..]), "not gzip");
    let unzipped = std::process::Command::new("gzip")
        .args(["-dc", gz_arg])
        .output()
        .expect("run gzip");
    assert!(unzipped.status.success(), "gzip -d failed");
    assert_eq!(
        String::from_utf8_lossy(&unzipped.stdout),
        sql.as_str(),
        "the gzipped dump is not the same dump"
    );

    // To stdout: the dump and nothing else.
    let out = dump(&["-r", "database", "--stdout"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), sql.as_str());

    // PostgreSQL's through pg_dump.
    let out = dump(&["-r", "pgdatabase", "-o"]);
    let pg = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(pg.contains("PostgreSQL database dump"), "{pg}");

    // A schema is never taken for an option of the tool (`-A`: every database).
    let out = dump(&["-r", "database", "--schema=-A", "-o"]);
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success() && out.stdout.is_empty(), "{log}");
    assert!(log.contains("not a schema name"), "{log}");

    // A relationship that does not exist is refused with its name.
    let out = dump(&["-r", "nope", "-o"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("`nope`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_projects_own_policy_backs_up_another_type_and_prunes_as_it_says() {
    let mut server = Server::start();
    server.cli_ok(&["project:create", "shop"]);
    let work = Work::fixture("backup-app");
    let (ok, out) = work.push(&server.git_url("shop"), &["main"]);
    assert!(ok, "push failed:\n{out}\n{}", server.log());
    server.cli_ok(&[
        "environment:branch",
        "staging",
        "main",
        "-p",
        "shop",
        "--type",
        "staging",
    ]);

    // The default until the project sets its own; a wrong policy is refused (exit 3).
    fn policy(server: &Server, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["backup:policy", "staging", "-p", "shop", "--format", "json"];
        all.extend_from_slice(args);
        serde_json::from_str(&server.cli_ok(&all)).expect("json")
    }
    assert_eq!(policy(&server, &[])["default"], true);
    for (tier, reason) in [("1x:3", "invalid interval"), ("1d:0", "keeps nothing")] {
        let out = server.cli(&["backup:policy", "staging", "-p", "shop", "--tier", tier]);
        assert_eq!(out.status.code(), Some(3), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(reason),
            "{out:?}"
        );
    }
    let set = policy(&server, &["--manual", "1", "--tier", "1d:1"]);
    assert_eq!(set["default"], false, "{set}");
    assert_eq!(set["policy"]["manual"], 1, "{set}");
    assert_eq!(set["policy"]["tiers"][0]["keep"], 1, "{set}");

    // With a policy of its own that has tiers, staging is backed up automatically,
    // and pruned by it: the first backup of the day and the newest stay.
    server.stop();
    server.spawn_with(&[("GROVE_AUTOMATIC_BACKUPS_EVERY", "2")]);
    let succeeded = automatic_backups_done(&server, "staging", 3, 300);
    // Each automatic backup applies the policy after it; one whose retention could
    // not run (said in its log) leaves it to the next.
    let kept_now = |server: &Server| {
        backups_of(server, "staging")
            .iter()
            .filter(|b| b["automatic"] == true && b["status"] == "completed")
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !(1..=2).contains(&kept_now(&server)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    server.stop();
    server.spawn();
    let kept = kept_now(&server);
    let succeeded = succeeded.max(automatic_backups_done(&server, "staging", 0, 0));
    assert!(
        (1..=2).contains(&kept) && kept < succeeded,
        "{succeeded} automatic backups of staging, {kept} kept\n{}",
        server.log()
    );

    // Back to the default: automatic backups of staging stop being due.
    assert_eq!(policy(&server, &["--reset"])["default"], true);
}
