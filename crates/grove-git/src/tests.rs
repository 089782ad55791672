use super::*;

fn run(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A bare repo with one commit on `main`: `app/.platform.app.yaml` and `README`.
fn fixture() -> (tempfile::TempDir, Repository, String) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = Repository::at(tmp.path().join("shop.git"));
    repo.init().expect("init");
    let work = tmp.path().join("work");
    std::fs::create_dir_all(work.join("app")).expect("mkdir");
    std::fs::write(work.join("app/.platform.app.yaml"), "name: app\n").expect("write");
    std::fs::write(work.join("README"), "hello\n").expect("write");
    run(&work, &["init", "-q", "-b", "main"]);
    run(&work, &["add", "."]);
    run(&work, &["commit", "-q", "-m", "first"]);
    let bare = repo.path().to_string_lossy().into_owned();
    // The hook execs `$GROVE_EXE hook pre-receive`; `true` accepts the push.
    let pushed = Command::new("git")
        .current_dir(&work)
        .args(["push", "-q", &bare, "main"])
        .env("GROVE_EXE", "true")
        .output()
        .expect("git push");
    assert!(pushed.status.success(), "{pushed:?}");
    let commit = run(&work, &["rev-parse", "HEAD"]);
    (tmp, repo, commit)
}

#[test]
fn init_installs_the_hook_and_is_idempotent() {
    let (_tmp, repo, _) = fixture();
    repo.init().expect("second init");
    let hook = std::fs::read_to_string(repo.path().join("hooks/pre-receive")).expect("hook");
    assert!(hook.contains("hook pre-receive"));
}

#[test]
fn the_hook_refuses_pushes_that_bypass_the_server() {
    let (tmp, repo, _) = fixture();
    let work = tmp.path().join("work");
    run(&work, &["commit", "-q", "--allow-empty", "-m", "second"]);
    let out = Command::new("git")
        .current_dir(&work)
        .args(["push", "-q", &repo.path().to_string_lossy(), "main"])
        .env_remove("GROVE_EXE")
        .output()
        .expect("git push");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("go through the grove server"));
}

#[test]
fn reads_trees_files_and_branches() {
    let (_tmp, repo, commit) = fixture();
    let tree = repo.tree_id(&commit).expect("tree");
    assert_eq!(tree.len(), 40);
    assert_eq!(
        repo.list_files(&tree).expect("list"),
        vec!["README".to_string(), "app/.platform.app.yaml".to_string()]
    );
    assert_eq!(
        repo.read_file(&tree, "app/.platform.app.yaml")
            .expect("read"),
        Some(b"name: app\n".to_vec())
    );
    assert_eq!(repo.read_file(&tree, "missing").expect("read"), None);
    assert_eq!(
        repo.branch_head("main").expect("head"),
        Some(commit.clone())
    );
    assert_eq!(repo.branch_head("nope").expect("head"), None);
    assert_eq!(
        repo.branches().expect("branches"),
        vec![("main".to_string(), commit)]
    );
}

#[test]
fn exports_a_subdirectory() {
    let (tmp, repo, commit) = fixture();
    let tree = repo.tree_id(&commit).expect("tree");
    let dest = tmp.path().join("out");
    std::fs::create_dir_all(&dest).expect("mkdir");
    repo.export(&tree, "app", &dest).expect("export");
    assert!(dest.join(".platform.app.yaml").exists());
    assert!(!dest.join("README").exists());
}

#[test]
fn push_options_accept_platform_spellings() {
    let opts =
        |v: &[&str]| PushOptions::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert!(opts(&["environment.activate"]).activate);
    assert!(opts(&["environment.status=active"]).activate);
    let o = opts(&[
        "environment.parent=staging",
        "environment.type=staging",
        "x=1",
    ]);
    assert_eq!(o.parent.as_deref(), Some("staging"));
    assert_eq!(o.kind.as_deref(), Some("staging"));
    assert_eq!(o.unknown, vec!["x=1".to_string()]);
    assert!(!o.activate);
}

#[test]
fn branches_ancestry_and_rebase() {
    let (tmp, repo, first) = fixture();
    let work = tmp.path().join("work");
    repo.set_branch("feature", &first, None).expect("create");
    assert!(
        repo.set_branch("feature", &first, None).is_err(),
        "exists already"
    );
    run(&work, &["checkout", "-q", "-b", "feature"]);
    std::fs::write(work.join("feature.txt"), "f\n").expect("write");
    run(&work, &["add", "."]);
    run(&work, &["commit", "-q", "-m", "feature work"]);
    let feature = run(&work, &["rev-parse", "HEAD"]);
    run(&work, &["checkout", "-q", "main"]);
    std::fs::write(work.join("main.txt"), "m\n").expect("write");
    run(&work, &["add", "."]);
    run(&work, &["commit", "-q", "-m", "main work"]);
    let main = run(&work, &["rev-parse", "HEAD"]);
    let bare = repo.path().to_string_lossy().into_owned();
    for branch in ["main", "feature"] {
        let pushed = Command::new("git")
            .current_dir(&work)
            .args(["push", "-q", "-f", &bare, branch])
            .env("GROVE_EXE", "true")
            .output()
            .expect("push");
        assert!(pushed.status.success(), "{pushed:?}");
    }
    assert!(repo.is_ancestor(&first, &feature).expect("ancestry"));
    assert!(!repo.is_ancestor(&main, &feature).expect("ancestry"));
    assert_eq!(repo.ahead_behind(&feature, &main).expect("counts"), (1, 1));

    let rebased = repo.rebase(&feature, &main, tmp.path()).expect("rebase");
    assert!(repo.is_ancestor(&main, &rebased).expect("ancestry"));
    let tree = repo.tree_id(&rebased).expect("tree");
    let files = repo.list_files(&tree).expect("files");
    assert!(files.contains(&"feature.txt".to_string()) && files.contains(&"main.txt".to_string()));
    repo.set_branch("feature", &rebased, Some(&feature))
        .expect("move");
    assert!(
        repo.set_branch("feature", &main, Some(&feature)).is_err(),
        "a stale expected value is refused"
    );
}

#[test]
fn branch_names_git_accepts() {
    for (name, ok) in [
        ("feature/x", true),
        ("Feature_Y-1.2", true),
        ("main~1", false),
        ("a..b", false),
        ("-x", false),
        ("with space", false),
        ("", false),
    ] {
        assert_eq!(valid_branch_name(name), ok, "{name:?}");
    }
}
