use super::*;

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

fn store() -> Store {
    Store::open_in_memory().expect("in-memory store")
}

/// A store in a temporary directory (two connections, WAL), with project `shop` and
/// in-progress activities `activities`.
fn file_store(activities: &[&str]) -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Store::open(&dir.path().join("grove.db")).expect("open");
    s.insert_project(&project("shop")).expect("project");
    for id in activities {
        s.insert_activity(&activity(id, "in_progress"))
            .expect("activity");
    }
    (dir, Arc::new(s))
}

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(future)
}

fn messages(s: &Store, activity: &str) -> Vec<(u64, String)> {
    s.log_since(activity, 0)
        .expect("log")
        .into_iter()
        .map(|l| (l.seq, l.message))
        .collect()
}

fn project(id: &str) -> ProjectRow {
    ProjectRow {
        id: id.into(),
        title: id.into(),
        default_branch: None,
        entropy: "e".repeat(56),
        created_at: timestamp_now(),
        plan: "development".into(),
        integration_limit: 2,
        development_crons: true,
    }
}

fn activity(id: &str, state: &str) -> ActivityRow {
    ActivityRow {
        id: id.into(),
        project: "shop".into(),
        environment: Some("main".into()),
        kind: "environment.push".into(),
        state: state.into(),
        result: None,
        description: "push".into(),
        created_at: timestamp_now(),
        started_at: None,
        completed_at: None,
    }
}

#[test]
fn duplicate_project_is_a_conflict() {
    let s = store();
    s.insert_project(&project("shop")).expect("insert");
    assert!(matches!(
        s.insert_project(&project("shop")),
        Err(StoreError::Conflict(_))
    ));
}

#[test]
fn environment_found_by_branch_or_machine_name() {
    let s = store();
    s.insert_project(&project("shop")).expect("insert");
    let now = timestamp_now();
    s.insert_environment(&EnvironmentRow {
        project: "shop".into(),
        name: "feature/Foo".into(),
        machine_name: "feature-foo".into(),
        title: "feature/Foo".into(),
        kind: "development".into(),
        status: "inactive".into(),
        parent: Some("main".into()),
        created_at: now.clone(),
        updated_at: now,
        crons: None,
    })
    .expect("insert env");
    for name in ["feature/Foo", "feature-foo"] {
        let env = s.environment("shop", name).expect("query").expect("found");
        assert_eq!(env.machine_name, "feature-foo");
    }
    assert!(s.environment("shop", "other").expect("query").is_none());
}

#[test]
fn unfinished_activities_fail_with_a_reason_at_startup() {
    let s = store();
    s.insert_project(&project("shop")).expect("insert");
    s.insert_activity(&activity("a1", "in_progress"))
        .expect("a1");
    s.insert_activity(&activity("a2", "pending")).expect("a2");
    let mut done = activity("a3", "in_progress");
    done.state = "complete".into();
    done.result = Some("success".into());
    s.insert_activity(&done).expect("a3");

    let failed = s
        .fail_unfinished_activities("server stopped")
        .expect("fail");
    assert_eq!(failed.len(), 2);
    for id in ["a1", "a2"] {
        let a = s.activity(id).expect("query").expect("found");
        assert_eq!(
            (a.state.as_str(), a.result.as_deref()),
            ("complete", Some("failure"))
        );
        let log = s.log_since(id, 0).expect("log");
        assert_eq!(
            log.last().map(|l| l.message.as_str()),
            Some("server stopped")
        );
    }
    assert_eq!(
        s.activity("a3")
            .expect("query")
            .expect("found")
            .result
            .as_deref(),
        Some("success")
    );
}

#[test]
fn log_lines_are_numbered_and_read_incrementally() {
    let s = store();
    s.insert_project(&project("shop")).expect("insert");
    s.insert_activity(&activity("a1", "in_progress"))
        .expect("a1");
    for line in ["one", "two", "three"] {
        s.append_log("a1", line).expect("append");
    }
    let tail: Vec<_> = s
        .log_since("a1", 1)
        .expect("log")
        .into_iter()
        .map(|l| (l.seq, l.message))
        .collect();
    assert_eq!(tail, vec![(2, "two".to_string()), (3, "three".to_string())]);
}

#[test]
fn last_successful_deployment_skips_failures() {
    let s = store();
    let row = |commit: &str, ok: bool| DeploymentRow {
        id: 0,
        project: "shop".into(),
        environment: "main".into(),
        activity: "a".into(),
        commit_id: commit.into(),
        tree_id: "t".into(),
        successful: ok,
        created_at: timestamp_now(),
    };
    s.insert_deployment(&row("c1", true)).expect("c1");
    s.insert_deployment(&row("c2", false)).expect("c2");
    let last = s.last_deployment("shop", "main").expect("q").expect("some");
    let good = s
        .last_successful_deployment("shop", "main")
        .expect("q")
        .expect("some");
    assert_eq!(
        (last.commit_id.as_str(), good.commit_id.as_str()),
        ("c2", "c1")
    );
}

#[test]
fn tokens_resolve_to_their_user() {
    let s = store();
    let id = s.insert_user("admin", "admin").expect("user");
    s.insert_token(id, "first", "hash1").expect("token");
    let user = s.user_by_token_hash("hash1").expect("q").expect("found");
    assert_eq!(user.name, "admin");
    assert!(s.user_by_token_hash("nope").expect("q").is_none());
}

#[test]
fn ssh_keys_belong_to_one_user_and_go_with_it() {
    let s = store();
    let alice = s.insert_user("alice", "user").expect("user");
    let bob = s.insert_user("bob", "user").expect("user");
    let key = s
        .add_ssh_key(alice, "SHA256:a", "ssh-ed25519", "AAAA", "laptop")
        .expect("key");
    assert!(matches!(
        s.add_ssh_key(bob, "SHA256:a", "ssh-ed25519", "AAAA", "stolen"),
        Err(StoreError::Conflict(_))
    ));
    let (id, user) = s.user_by_ssh_key("SHA256:a").expect("q").expect("found");
    assert_eq!((id, user.name.as_str()), (key.id, "alice"));
    assert_eq!(s.ssh_keys(alice).expect("list"), vec![key.clone()]);
    assert!(s.ssh_keys(bob).expect("list").is_empty());
    assert!(!s.delete_ssh_key(bob, key.id).expect("delete"), "not bob's");
    assert!(s.delete_ssh_key(alice, key.id).expect("delete"));
    assert!(s.user_by_ssh_key("SHA256:a").expect("q").is_none());
}

#[test]
fn a_hundred_thousand_log_lines_are_stored_completely_and_in_order() {
    const LINES: u64 = 100_000;
    let (_dir, s) = file_store(&["a1"]);
    let writer = LogWriter::start(s.clone()).expect("writer");
    let mut woken = writer.subscribe("a1");

    let producer = {
        let writer = writer.clone();
        thread::spawn(move || {
            let started = Instant::now();
            for n in 1..=LINES {
                writer.append("a1", &format!("line {n}"));
            }
            let queued = started.elapsed();
            writer
                .complete_blocking("a1", "success")
                .map(|()| (queued, started.elapsed()))
        })
    };

    // Followed like the API does: the state before the lines, so that lines read after
    // seeing `complete` are all of them.
    let (seen, wakeups) = block_on(async {
        let (mut seen, mut wakeups) = (0, 0);
        loop {
            let complete = s
                .activity("a1")
                .expect("activity")
                .is_some_and(|a| a.state == "complete");
            for line in s.log_since("a1", seen).expect("log") {
                assert_eq!(line.seq, seen + 1, "follower saw a gap or a reordering");
                assert_eq!(line.message, format!("line {}", line.seq));
                seen = line.seq;
            }
            if complete {
                return (seen, wakeups);
            }
            woken.changed().await.expect("the writer is running");
            wakeups += 1;
        }
    });
    let (queued, stored) = producer
        .join()
        .expect("producer thread")
        .expect("completed");

    assert_eq!(seen, LINES);
    let log = s.log_since("a1", 0).expect("log");
    assert_eq!(log.len() as u64, LINES);
    for (line, n) in log.iter().zip(1..) {
        assert_eq!(
            (line.seq, line.message.as_str()),
            (n, format!("line {n}").as_str())
        );
    }
    let rate = |elapsed: Duration| LINES as f64 / elapsed.as_secs_f64();
    eprintln!(
        "{LINES} lines: queued in {queued:.2?} ({:.0} lines/s), stored and completed in \
         {stored:.2?} ({:.0} lines/s); the follower was woken {wakeups} times",
        rate(queued),
        rate(stored),
    );
}

#[test]
fn a_follower_is_not_woken_by_lines_of_another_activity() {
    let (_dir, s) = file_store(&["a", "b"]);
    let writer = LogWriter::start(s).expect("writer");
    let a = writer.subscribe("a");
    let mut b = writer.subscribe("b");

    writer.append("b", "only b");
    block_on(writer.flush()).expect("flush");
    assert_eq!(
        (a.has_changed().expect("a"), b.has_changed().expect("b")),
        (false, true)
    );
    assert_eq!(*b.borrow_and_update(), 1);

    block_on(writer.complete("a", "success")).expect("complete a");
    assert_eq!(
        (a.has_changed().expect("a"), b.has_changed().expect("b")),
        (true, false)
    );
}

#[test]
fn complete_is_ordered_after_the_lines_appended_before_it() {
    const LINES: usize = 5_000;
    let (_dir, s) = file_store(&["a1"]);
    let writer = LogWriter::start(s.clone()).expect("writer");
    // Polls without waiting for wake-ups: if the completion were ever committed before
    // the lines queued ahead of it, this would see `complete` with lines missing.
    let poller = {
        let s = s.clone();
        thread::spawn(move || {
            loop {
                let activity = s.activity("a1").expect("activity").expect("exists");
                let lines = s.log_since("a1", 0).expect("log").len();
                if activity.state == "complete" {
                    return (lines, activity.result);
                }
                thread::yield_now();
            }
        })
    };
    for n in 0..LINES {
        writer.append("a1", &n.to_string());
    }
    block_on(writer.complete("a1", "failure")).expect("complete");
    assert_eq!(messages(&s, "a1").len(), LINES);
    assert_eq!(
        poller.join().expect("poller"),
        (LINES, Some("failure".to_string()))
    );
}

#[test]
fn database_files_are_private() {
    for left_world_readable in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("grove.db");
        if left_world_readable {
            std::fs::write(&path, b"").expect("empty database");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        }
        let s = Store::open(&path).expect("open");
        s.insert_project(&project("shop")).expect("write");
        for suffix in ["", "-wal", "-shm"] {
            let file = dir.path().join(format!("grove.db{suffix}"));
            let mode = std::fs::metadata(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
                .permissions()
                .mode();
            assert_eq!(
                mode & 0o777,
                0o600,
                "{suffix:?} (left world-readable: {left_world_readable})"
            );
        }
    }
}

#[test]
fn reads_do_not_wait_behind_a_write() {
    let (_dir, s) = file_store(&[]);
    let mut writer = s.write();
    let tx = writer.conn.transaction().expect("begin");
    tx.execute(
        "INSERT INTO projects (id, title, entropy, created_at) VALUES ('other', 'o', 'e', 'now')",
        [],
    )
    .expect("uncommitted insert");

    let (answer, answered) = mpsc::channel();
    let reader = s.clone();
    thread::spawn(move || {
        let _ = answer.send(reader.projects().map(|p| p.len()));
    });
    // A generous bound so that a read stuck behind the writer fails instead of hanging.
    let projects = answered.recv_timeout(Duration::from_secs(60));
    drop(tx);
    drop(writer);
    assert!(
        matches!(projects, Ok(Ok(1))),
        "{projects:?}: the read should see the last commit at once"
    );
}

#[test]
fn lines_of_a_missing_activity_do_not_lose_the_lines_of_others() {
    let (_dir, s) = file_store(&["a1"]);
    let writer = LogWriter::start(s.clone()).expect("writer");
    {
        // Held while queueing so that the lines mostly end up in one batch, whose
        // transaction then fails on the unknown activity.
        let _writing = s.write();
        writer.append("a1", "kept 1");
        writer.append("ghost", "lost");
        writer.append("a1", "kept 2");
    }
    let ghost = block_on(writer.complete("ghost", "failure"));
    assert!(
        matches!(&ghost, Err(StoreError::LogLinesLost { activity, lost: 1, .. }) if activity == "ghost"),
        "{ghost:?}"
    );
    block_on(writer.complete("a1", "success")).expect("a1 lost nothing");

    writer.append("a1", "after");
    block_on(writer.flush()).expect("flush");
    assert_eq!(
        messages(&s, "a1"),
        [(1, "kept 1"), (2, "kept 2"), (3, "after")].map(|(n, m)| (n, m.to_string()))
    );
}

#[test]
fn direct_and_batched_appends_share_the_numbering() {
    let (_dir, s) = file_store(&["a1"]);
    let writer = LogWriter::start(s.clone()).expect("writer");
    assert_eq!(s.append_log("a1", "direct 1").expect("append"), 1);
    writer.append("a1", "batched 2");
    block_on(writer.flush()).expect("flush");
    assert_eq!(s.append_log("a1", "direct 3").expect("append"), 3);
    s.fail_unfinished_activities("stopped 4").expect("fail");
    writer.append("a1", "batched 5");
    block_on(writer.flush()).expect("flush");
    let seqs: Vec<u64> = messages(&s, "a1").into_iter().map(|(n, _)| n).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
}

#[test]
fn followers_are_forgotten_once_nobody_follows() {
    let (_dir, s) = file_store(&["a1", "a2"]);
    let writer = LogWriter::start(s).expect("writer");
    let follower = writer.subscribe("a1");
    block_on(writer.complete("a1", "success")).expect("complete");
    assert_eq!(writer.followed_activities(), 1, "still followed");
    drop(follower);
    writer.append("a2", "any line");
    block_on(writer.flush()).expect("flush");
    assert_eq!(writer.followed_activities(), 0);
}

#[test]
fn the_writer_stores_what_was_queued_when_the_last_handle_is_dropped() {
    let (_dir, s) = file_store(&["a1"]);
    let writer = LogWriter::start(s.clone()).expect("writer");
    let mut woken = writer.subscribe("a1");
    for n in 1..=1000 {
        writer.append("a1", &n.to_string());
    }
    drop(writer);
    // The thread drops the followers when it exits, after the last batch.
    block_on(async { while woken.changed().await.is_ok() {} });
    assert_eq!(messages(&s, "a1").len(), 1000);
}

#[test]
fn project_roles_replace_and_go_with_their_project_access() {
    use std::collections::BTreeMap;
    let s = store();
    s.insert_project(&ProjectRow {
        id: "shop".into(),
        title: "shop".into(),
        default_branch: None,
        entropy: "e".into(),
        created_at: "t".into(),
        plan: "development".into(),
        integration_limit: 2,
        development_crons: true,
    })
    .expect("project");
    let types = BTreeMap::from([
        ("development".to_string(), EnvironmentRole::Contributor),
        ("staging".to_string(), EnvironmentRole::Viewer),
    ]);
    let added = s
        .add_project_user("shop", "a@example.com", ProjectRole::Viewer, &types, "h1")
        .expect("add");
    assert!(added.created);
    assert_eq!(added.access.types, types);
    assert_eq!(added.access.user.role, PLATFORM_USER);
    let user = s.user_by_token_hash("h1").expect("q").expect("first token");
    assert_eq!(user.name, "a@example.com");
    assert_eq!(s.projects_of_user(user.id).expect("projects").len(), 1);

    // Added again: the same user, roles replaced, no second token.
    let again = s
        .add_project_user(
            "shop",
            "a@example.com",
            ProjectRole::Admin,
            &BTreeMap::new(),
            "h2",
        )
        .expect("add again");
    assert!(!again.created);
    assert_eq!(again.access.role, ProjectRole::Admin);
    assert!(again.access.types.is_empty());
    assert!(s.user_by_token_hash("h2").expect("q").is_none());

    let token = s.create_token(user.id, "ci", "h3").expect("token");
    assert_eq!(s.tokens(user.id).expect("tokens").len(), 2);
    assert!(!s.delete_token(user.id + 1, token.id).expect("not theirs"));
    assert!(s.delete_token(user.id, token.id).expect("delete"));
    assert!(s.user_by_token_hash("h3").expect("q").is_none());

    assert!(s.remove_project_user("shop", user.id).expect("remove"));
    assert!(s.project_access("shop", user.id).expect("q").is_none());
    assert!(s.project_users("shop").expect("users").is_empty());
    assert!(
        !s.set_project_access("shop", user.id, ProjectRole::Viewer, &types)
            .expect("set")
    );
}

#[test]
fn variables_are_kept_per_level() {
    let s = store();
    s.insert_project(&project("shop")).expect("store");
    let row = VariableRow {
        project: "shop".into(),
        environment: None,
        name: "env:GREETING".into(),
        value: "hello".into(),
        is_json: false,
        is_sensitive: false,
        visible_build: true,
        visible_runtime: true,
        is_inheritable: true,
        is_enabled: true,
        created_at: String::new(),
        updated_at: String::new(),
    };
    s.insert_variable(&row).expect("store");
    assert!(matches!(
        s.insert_variable(&row),
        Err(StoreError::Conflict(_))
    ));
    let env_row = VariableRow {
        environment: Some("main".into()),
        value: "bonjour".into(),
        ..row.clone()
    };
    s.insert_variable(&env_row).expect("store");
    assert_eq!(s.variables("shop", None).expect("store")[0].value, "hello");
    assert_eq!(
        s.variables("shop", Some("main")).expect("store")[0].value,
        "bonjour"
    );
    assert!(
        s.update_variable(&VariableRow {
            value: "hi".into(),
            ..row.clone()
        })
        .expect("store")
    );
    assert_eq!(
        s.variable("shop", None, "env:GREETING")
            .expect("store")
            .expect("store")
            .value,
        "hi"
    );
    s.delete_environment("shop", "main").expect("store");
    assert!(s.variables("shop", Some("main")).expect("store").is_empty());
    assert!(
        s.delete_variable("shop", None, "env:GREETING")
            .expect("store")
    );
    assert!(
        !s.delete_variable("shop", None, "env:GREETING")
            .expect("store")
    );
}

#[test]
fn backups_are_listed_newest_first_finished_and_interrupted_ones_fail() {
    let s = store();
    s.insert_project(&project("shop")).expect("project");
    let row = |id: &str, created_at: &str| BackupRow {
        id: id.into(),
        project: "shop".into(),
        environment: "main".into(),
        activity: format!("act-{id}"),
        snapshot: None,
        commit_id: None,
        build_keys: String::new(),
        consistent: true,
        automatic: false,
        pause_ms: None,
        status: "running".into(),
        reason: None,
        size: None,
        created_at: created_at.into(),
        completed_at: None,
    };
    s.insert_backup(&row("a", "2026-12-01T07:00:00.000Z"))
        .expect("a");
    s.insert_backup(&row("b", "2026-12-01T08:00:00.000Z"))
        .expect("b");
    let mut done = row("a", "2026-12-01T07:00:00.000Z");
    done.status = "completed".into();
    done.snapshot = Some("0123abcd".into());
    done.pause_ms = Some(420);
    done.size = Some(4096);
    s.finish_backup(&done).expect("finish");
    assert_eq!(
        s.fail_running_backups("the server stopped").expect("fail"),
        1
    );
    let listed = s.backups("shop", "main").expect("list");
    assert_eq!(
        listed.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(),
        ["b", "a"]
    );
    assert_eq!(listed[0].status, "failed");
    assert_eq!(listed[0].reason.as_deref(), Some("the server stopped"));
    let a = s.backup("shop", "a").expect("get").expect("a");
    assert_eq!(
        (a.status.as_str(), a.pause_ms, a.size),
        ("completed", Some(420), Some(4096))
    );
    assert!(a.completed_at.is_some());
    assert!(s.delete_backup("shop", "a").expect("delete"));
    assert!(s.backup("shop", "a").expect("get").is_none());
    assert!(!s.delete_backup("shop", "a").expect("delete again"));
}

#[test]
fn http_access_is_stored_replaced_and_goes_with_its_environment() {
    let s = store();
    s.insert_project(&project("shop")).expect("insert");
    let now = timestamp_now();
    s.insert_environment(&EnvironmentRow {
        project: "shop".into(),
        name: "main".into(),
        machine_name: "main".into(),
        title: "main".into(),
        kind: "production".into(),
        status: "active".into(),
        parent: None,
        created_at: now.clone(),
        updated_at: now,
        crons: None,
    })
    .expect("insert env");
    assert_eq!(s.http_access("shop", "main").expect("query"), None);
    let mut row = crate::HttpAccessRow {
        project: "shop".into(),
        environment: "main".into(),
        enabled: true,
        basic_auth: vec![("alice".into(), "pa:ss word".into())],
        addresses: vec![
            ("allow".into(), "192.0.2.0/24".into()),
            ("deny".into(), "0.0.0.0/0".into()),
        ],
        updated_at: String::new(),
    };
    s.set_http_access(&row).expect("set");
    let stored = s.http_access("shop", "main").expect("query").expect("row");
    assert_eq!(
        (&stored.basic_auth, &stored.addresses, stored.enabled),
        (&row.basic_auth, &row.addresses, true)
    );
    row.enabled = false;
    row.basic_auth.clear();
    s.set_http_access(&row).expect("replace");
    let stored = s.http_access("shop", "main").expect("query").expect("row");
    assert_eq!((stored.enabled, stored.basic_auth.len()), (false, 0));
    s.delete_environment("shop", "main").expect("delete");
    assert_eq!(s.http_access("shop", "main").expect("query"), None);
}

#[test]
fn a_projects_backup_policies_are_set_replaced_and_reset() {
    let s = store();
    s.insert_project(&project("shop")).expect("project");
    assert_eq!(s.backup_policy("shop", "production").expect("read"), None);
    s.set_backup_policy("shop", "production", Some(r#"{"manual":1}"#))
        .expect("set");
    s.set_backup_policy("shop", "production", Some(r#"{"manual":2}"#))
        .expect("replace");
    assert_eq!(
        s.backup_policy("shop", "production")
            .expect("read")
            .as_deref(),
        Some(r#"{"manual":2}"#)
    );
    assert_eq!(s.backup_policy("shop", "staging").expect("read"), None);
    s.set_backup_policy("shop", "production", None)
        .expect("reset");
    assert_eq!(s.backup_policy("shop", "production").expect("read"), None);
}
