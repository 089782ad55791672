//! run_command: environment, exit status, hook semantics, output, timeouts.

use std::time::{Duration, Instant};

use crate::support::{processes_with_marker, run, run_with_timeout, spec, unique_marker};

#[tokio::test]
async fn env_is_exactly_what_was_given_plus_defaults() {
    let app = tempfile::tempdir().expect("tempdir");
    let mut spec = spec(app.path(), "env | sort");
    spec.env = vec![
        ("PLATFORM_APPLICATION_NAME".into(), "shop".into()),
        ("WITH_SPACES".into(), "a b  c".into()),
    ];
    let (outcome, lines) = run(&spec).await;
    assert!(outcome.success(), "{outcome}: {lines:?}");
    assert_eq!(
        lines,
        [
            "HOME=/app",
            "LANG=C.UTF-8",
            "PATH=/app/.global/bin:/usr/local/bin:/usr/bin:/bin",
            "PLATFORM_APPLICATION_NAME=shop",
            // dash exports its working directory.
            "PWD=/app",
            "TMPDIR=/tmp",
            "WITH_SPACES=a b  c",
        ]
    );
}

#[tokio::test]
async fn given_defaults_are_not_overridden() {
    let app = tempfile::tempdir().expect("tempdir");
    let mut spec = spec(app.path(), "echo $HOME $PATH");
    spec.env = vec![
        ("HOME".into(), "/tmp".into()),
        ("PATH".into(), "/usr/bin".into()),
    ];
    let (_, lines) = run(&spec).await;
    assert_eq!(lines, ["/tmp /usr/bin"]);
}

#[tokio::test]
async fn exit_codes_propagate() {
    let app = tempfile::tempdir().expect("tempdir");
    let (outcome, _) = run(&spec(app.path(), "exit 3")).await;
    assert_eq!(outcome.exit_code, Some(3));
    assert!(!outcome.success());
    assert_eq!(outcome.to_string(), "exited with status 3");

    let (outcome, _) = run(&spec(app.path(), "true")).await;
    assert!(outcome.success(), "{outcome}");
}

#[tokio::test]
async fn only_the_last_status_counts_unless_set_e() {
    let app = tempfile::tempdir().expect("tempdir");
    let (outcome, lines) = run(&spec(app.path(), "false\necho after\ntrue")).await;
    assert!(outcome.success(), "{outcome}");
    assert_eq!(lines, ["after"]);

    let (outcome, lines) = run(&spec(
        app.path(),
        "set -e\necho before\nfalse\necho unreachable",
    ))
    .await;
    assert_eq!(outcome.exit_code, Some(1));
    assert_eq!(lines, ["before"]);
}

#[tokio::test]
async fn stdout_and_stderr_lines_are_streamed_in_order() {
    let app = tempfile::tempdir().expect("tempdir");
    let script = "echo one; echo two >&2; echo three; printf 'no newline at end' >&2";
    let (outcome, lines) = run(&spec(app.path(), script)).await;
    assert!(outcome.success(), "{outcome}");
    assert_eq!(lines, ["one", "two", "three", "no newline at end"]);
}

#[tokio::test]
async fn many_lines_arrive_complete_and_in_order() {
    let app = tempfile::tempdir().expect("tempdir");
    let script = "i=0; while [ $i -lt 5000 ]; do echo line $i; i=$((i+1)); done";
    let (outcome, lines) = run(&spec(app.path(), script)).await;
    assert!(outcome.success(), "{outcome}");
    let expected: Vec<String> = (0..5000).map(|i| format!("line {i}")).collect();
    assert_eq!(lines, expected);
}

#[tokio::test]
async fn timeout_kills_the_whole_tree() {
    let app = tempfile::tempdir().expect("tempdir");
    let marker = unique_marker();
    let mut spec = spec(
        app.path(),
        "sleep 300 & sleep 300 & echo started; sleep 300",
    );
    spec.env = vec![("GROVE_TEST_MARKER".into(), marker.clone())];
    let start = Instant::now();
    let (outcome, lines) = run_with_timeout(&spec, Duration::from_secs(1)).await;
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "took {:?}",
        start.elapsed()
    );
    assert!(outcome.timed_out, "{outcome}");
    assert!(!outcome.success());
    assert_eq!(outcome.to_string(), "timed out after 1s");
    assert_eq!(lines, ["started"]);
    assert_eq!(processes_with_marker(&marker), Vec::<u32>::new());
}

#[tokio::test]
async fn missing_mount_source_is_reported_before_starting() {
    let app = tempfile::tempdir().expect("tempdir");
    let mut spec = spec(app.path(), "true");
    spec.binds = vec![grove_runtime::Bind::host(
        app.path().join("does-not-exist"),
        "/app/var",
        true,
    )];
    let mut sink = |_: &str| {};
    let err = grove_runtime::run_command(&spec, Duration::from_secs(10), &mut sink)
        .await
        .expect_err("a missing source must fail");
    let message = err.to_string();
    assert!(
        message.starts_with("mount source not accessible:"),
        "{message}"
    );
    assert!(message.contains("does-not-exist"), "{message}");
}

#[tokio::test]
async fn cancelling_run_command_kills_the_sandbox() {
    let app = tempfile::tempdir().expect("tempdir");
    let marker = unique_marker();
    let mut spec = spec(app.path(), "sleep 300 & echo started; sleep 300");
    spec.env = vec![("GROVE_TEST_MARKER".into(), marker.clone())];
    let mut started = false;
    {
        let mut on_line = |line: &str| started |= line == "started";
        let run = grove_runtime::run_command(&spec, Duration::from_secs(600), &mut on_line);
        // The caller gives up (e.g. the activity was cancelled): the future is dropped.
        let _ = tokio::time::timeout(Duration::from_secs(1), run).await;
    }
    assert!(started);
    crate::support::eventually("the sandbox to die", Duration::from_secs(60), || {
        processes_with_marker(&marker).is_empty()
    })
    .await;
}

#[tokio::test]
async fn sandbox_setup_errors_show_in_the_output() {
    let app = tempfile::tempdir().expect("tempdir");
    let mut spec = spec(app.path(), "true");
    spec.workdir = "/app/missing".into();
    let (outcome, lines) = run(&spec).await;
    assert!(!outcome.success(), "{outcome}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("bwrap: ") && l.contains("/app/missing")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn a_sandbox_runs_at_the_niceness_it_asks_for() {
    let app = tempfile::tempdir().expect("tempdir");
    let mut spec = spec(app.path(), "nice");
    let (_, lines) = run(&spec).await;
    assert_eq!(lines, ["0"], "unchanged by default");
    spec.niceness = Some(10);
    let (outcome, lines) = run(&spec).await;
    assert!(outcome.success(), "{outcome}: {lines:?}");
    assert_eq!(lines, ["10"]);
}
