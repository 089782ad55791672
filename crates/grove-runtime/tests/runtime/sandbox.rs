//! What a sandboxed command can and cannot see or change.

use grove_runtime::{Bind, Network};

use crate::support::{run, spec};

#[tokio::test]
async fn app_is_read_only_at_runtime() {
    let app = tempfile::tempdir().expect("tempdir");
    let (outcome, lines) = run(&spec(app.path(), "touch /app/x")).await;
    assert!(!outcome.success(), "{outcome}");
    assert!(
        lines.iter().any(|l| l.contains("Read-only file system")),
        "{lines:?}"
    );
    assert!(!app.path().join("x").exists());
}

#[tokio::test]
async fn app_is_writable_for_the_build() {
    let app = tempfile::tempdir().expect("tempdir");
    let mut spec = spec(app.path(), "touch /app/x && echo built > /app/out");
    spec.app_writable = true;
    let (outcome, lines) = run(&spec).await;
    assert!(outcome.success(), "{outcome}: {lines:?}");
    assert!(app.path().join("x").exists());
    assert_eq!(
        std::fs::read_to_string(app.path().join("out")).expect("read out"),
        "built\n"
    );
}

#[tokio::test]
async fn writable_bind_inside_read_only_app() {
    let app = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("tempdir");
    let shared = tempfile::tempdir().expect("tempdir");
    std::fs::write(shared.path().join("config"), "ro\n").expect("write");
    let mut spec = spec(
        app.path(),
        "echo hello > /app/var/cache/file && cat /app/etc-shared/config && touch /app/etc-shared/nope",
    );
    spec.binds = vec![
        Bind::host(data.path(), "/app/var/cache", true),
        Bind::host(shared.path(), "/app/etc-shared", false),
    ];
    let (outcome, lines) = run(&spec).await;
    assert!(!outcome.success(), "touching a read-only bind must fail");
    assert_eq!(lines[0], "ro");
    assert!(lines[1].contains("Read-only file system"), "{lines:?}");
    assert_eq!(
        std::fs::read_to_string(data.path().join("file")).expect("read"),
        "hello\n"
    );
    // The mount points were created in the app root, nothing else was.
    assert!(app.path().join("var/cache").is_dir());
    assert!(!shared.path().join("nope").exists());
}

#[tokio::test]
async fn mount_point_through_a_symlink_is_refused() {
    let app = tempfile::tempdir().expect("tempdir");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink(elsewhere.path(), app.path().join("var")).expect("symlink");
    let mut spec = spec(app.path(), "true");
    spec.binds = vec![Bind::host(data.path(), "/app/var/cache", true)];
    let mut sink = |_: &str| {};
    let err = grove_runtime::run_command(&spec, std::time::Duration::from_secs(10), &mut sink)
        .await
        .expect_err("must refuse");
    assert_eq!(
        err.to_string(),
        "mount point of /app/var/cache: `var` is a symbolic link; refusing to follow it"
    );
    assert!(!elsewhere.path().join("cache").exists());
}

#[tokio::test]
async fn sandbox_has_its_own_pid_namespace() {
    let app = tempfile::tempdir().expect("tempdir");
    let script = "echo $$; ls /proc | grep -c '^[0-9]'";
    let (outcome, lines) = run(&spec(app.path(), script)).await;
    assert!(outcome.success(), "{outcome}: {lines:?}");
    let own_pid: u32 = lines[0].parse().expect("a pid");
    assert!(
        own_pid <= 3,
        "the shell should be one of the first pids: {own_pid}"
    );
    let visible: u32 = lines[1].parse().expect("a count");
    assert!(
        visible < 10,
        "only the sandbox's processes are visible: {visible}"
    );
}

#[tokio::test]
async fn host_directories_that_are_not_bound_are_invisible() {
    let app = tempfile::tempdir().expect("tempdir");
    let secret = tempfile::tempdir().expect("tempdir");
    std::fs::write(secret.path().join("secret"), "x").expect("write");
    let script = format!(
        "for p in /root /home /var/lib {secret}; do if [ -e $p ]; then echo visible $p; else echo absent $p; fi; done; ls -A /tmp | wc -l",
        secret = secret.path().display()
    );
    let (outcome, lines) = run(&spec(app.path(), &script)).await;
    assert!(outcome.success(), "{outcome}: {lines:?}");
    let secret_line = format!("absent {}", secret.path().display());
    assert_eq!(
        lines,
        [
            "absent /root",
            "absent /home",
            "absent /var/lib",
            secret_line.as_str(),
            "0"
        ]
    );
}

#[tokio::test]
async fn sandbox_has_no_capabilities_a_hostname_and_starts_in_workdir() {
    let app = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(app.path().join("web")).expect("mkdir");
    let mut spec = spec(
        app.path(),
        "grep CapEff /proc/self/status; cat /proc/sys/kernel/hostname; pwd",
    );
    spec.hostname = Some("shop".into());
    spec.workdir = "/app/web".into();
    let (outcome, lines) = run(&spec).await;
    assert!(outcome.success(), "{outcome}: {lines:?}");
    assert_eq!(lines, ["CapEff:\t0000000000000000", "shop", "/app/web"]);
}

#[tokio::test]
async fn host_tmp_dir_can_back_tmp() {
    let app = tempfile::tempdir().expect("tempdir");
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut spec = spec(app.path(), "echo cached > /tmp/file");
    spec.tmp_dir = Some(tmp.path().to_owned());
    let (outcome, _) = run(&spec).await;
    assert!(outcome.success(), "{outcome}");
    assert!(tmp.path().join("file").exists());
}

#[tokio::test]
async fn without_network_only_loopback_exists() {
    let app = tempfile::tempdir().expect("tempdir");
    let script = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '";
    let mut spec = spec(app.path(), script);
    spec.network = Network::None;
    let (outcome, lines) = run(&spec).await;
    assert!(outcome.success(), "{outcome}: {lines:?}");
    assert_eq!(lines, ["lo"]);
}

#[tokio::test]
async fn root_is_read_only_and_var_tmp_is_tmp() {
    let app = tempfile::tempdir().expect("tempdir");
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut spec = spec(
        app.path(),
        "touch /new-file; touch /usr/new-file; echo x > /var/tmp/scratch && echo ok",
    );
    spec.tmp_dir = Some(tmp.path().to_owned());
    let (outcome, lines) = run(&spec).await;
    assert!(outcome.success(), "{outcome}: {lines:?}");
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].contains("'/new-file': Read-only file system"),
        "{lines:?}"
    );
    assert!(
        lines[1].contains("'/usr/new-file': Read-only file system"),
        "{lines:?}"
    );
    assert_eq!(lines[2], "ok");
    assert!(tmp.path().join("scratch").exists());
}

#[tokio::test]
async fn root_only_host_files_are_hidden() {
    let app = tempfile::tempdir().expect("tempdir");
    // The host's /etc/shadow is readable by uid 0 even without capabilities.
    let (outcome, lines) = run(&spec(app.path(), "cat /etc/shadow /etc/passwd")).await;
    assert!(
        !outcome.success(),
        "reading /etc/shadow must fail: {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("root:x:0:0:")),
        "passwd stays visible: {lines:?}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("root:") && !l.starts_with("root:x:0:0:")),
        "{lines:?}"
    );
    let layout = grove_runtime::sandbox::HostLayout::probe();
    assert!(
        layout
            .masked_files
            .iter()
            .any(|f| f.as_os_str() == "/etc/shadow"),
        "{layout:?}"
    );
}
