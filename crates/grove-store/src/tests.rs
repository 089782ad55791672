use super::*;

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

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
