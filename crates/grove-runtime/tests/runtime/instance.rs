//! Supervised processes: readiness, restarts, graceful stop, no leftovers.

use std::path::Path;
use std::time::{Duration, Instant};

use grove_runtime::instance::SupervisorOptions;
use grove_runtime::procfs;
use grove_runtime::{Instance, InstanceState, SandboxSpec};

use crate::support::{eventually, free_addr, http_get, processes_with_marker, unique_marker};

const LONG: Duration = Duration::from_secs(60);

fn server_spec(app: &Path, port: u16, marker: &str) -> SandboxSpec {
    let mut spec = SandboxSpec::new(app, "exec python3 -m http.server $PORT --bind 127.0.0.1");
    spec.env = vec![
        ("PORT".into(), port.to_string()),
        ("GROVE_TEST_MARKER".into(), marker.to_owned()),
    ];
    spec
}

fn with_marker(app: &Path, command: &str, marker: &str) -> SandboxSpec {
    let mut spec = SandboxSpec::new(app, command);
    spec.env = vec![("GROVE_TEST_MARKER".into(), marker.to_owned())];
    spec
}

/// The outer bwrap and everything below it.
fn tree(instance: &Instance) -> Vec<u32> {
    let pid = instance.pid().expect("a running incarnation");
    let mut all = vec![pid];
    all.extend(procfs::descendants(pid));
    all
}

async fn assert_all_gone(pids: &[u32], marker: &str) {
    for &pid in pids {
        assert!(!procfs::is_alive(pid), "pid {pid} survived stop");
    }
    assert_eq!(processes_with_marker(marker), Vec::<u32>::new());
}

// The daemon runs a multi-threaded runtime: restarts happen on its worker threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_is_restarted_after_kill_and_stops_without_leftovers() {
    let app = tempfile::tempdir().expect("tempdir");
    std::fs::write(app.path().join("index.html"), "hello").expect("write");
    let logs = tempfile::tempdir().expect("tempdir");
    let log_file = logs.path().join("nested/app.log");
    let addr = free_addr();
    let marker = unique_marker();
    let instance = Instance::spawn(
        server_spec(app.path(), addr.port(), &marker),
        log_file.clone(),
    )
    .expect("spawn");

    instance.wait_ready(addr, LONG).await.expect("ready");
    assert_eq!(instance.state(), InstanceState::Running);
    assert_eq!(http_get(addr, "/index.html").await, "HTTP/1.0 200 OK");
    assert_eq!(instance.restarts(), 0);

    // Kill the app itself (the deepest process of the sandbox), not bwrap.
    let first_pid = instance.pid().expect("pid");
    let app_pid = *procfs::descendants(first_pid).last().expect("app process");
    procfs::send_signal(app_pid, procfs::Signal::Kill).expect("kill -9");
    eventually("a restart", LONG, || instance.restarts() == 1).await;
    instance.wait_ready(addr, LONG).await.expect("ready again");
    assert_ne!(instance.pid(), Some(first_pid));
    assert_eq!(http_get(addr, "/index.html").await, "HTTP/1.0 200 OK");

    let pids = tree(&instance);
    assert!(pids.len() >= 3, "bwrap, its init and the app: {pids:?}");
    instance.stop(Duration::from_secs(10)).await;
    assert_eq!(instance.state(), InstanceState::Stopped);
    assert_eq!(instance.pid(), None);
    assert_all_gone(&pids, &marker).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());

    let log = std::fs::read_to_string(&log_file).expect("log file");
    assert!(log.contains("\"GET /index.html HTTP/1.0\" 200"), "{log}");
    assert!(
        log.contains("[grove] process exited with status 137; restarting in 100ms"),
        "{log}"
    );
    assert!(log.contains("[grove] process stopped"), "{log}");
}

#[tokio::test]
async fn never_listening_fails_wait_ready_with_the_log_tail() {
    let app = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let marker = unique_marker();
    let spec = with_marker(
        app.path(),
        "echo starting up; echo still starting >&2; exec sleep 300",
        &marker,
    );
    let instance = Instance::spawn(spec, logs.path().join("app.log")).expect("spawn");

    let err = instance
        .wait_ready(addr, Duration::from_secs(2))
        .await
        .expect_err("nothing listens");
    let message = err.to_string();
    assert!(
        message.contains(&format!("did not accept connections on {addr} within 2s")),
        "{message}"
    );
    assert!(
        message.ends_with("last lines of output:\n  starting up\n  still starting"),
        "{message}"
    );

    let pids = tree(&instance);
    instance.stop(Duration::from_secs(10)).await;
    assert_all_gone(&pids, &marker).await;
}

#[tokio::test]
async fn exiting_immediately_fails_wait_ready_early() {
    let app = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let marker = unique_marker();
    let spec = with_marker(app.path(), "echo boom >&2; exit 3", &marker);
    let instance = Instance::spawn(spec, logs.path().join("app.log")).expect("spawn");

    let start = Instant::now();
    let err = instance
        .wait_ready(addr, Duration::from_secs(600))
        .await
        .expect_err("it exits");
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "not early: {:?}",
        start.elapsed()
    );
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "exited (exited with status 3) before accepting connections on {addr}"
        )),
        "{message}"
    );
    assert!(message.contains("\n  boom\n"), "{message}");

    // It keeps being restarted with backoff until stopped.
    eventually("restarts", LONG, || instance.restarts() >= 2).await;
    instance.stop(Duration::from_secs(10)).await;
    let restarts = instance.restarts();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(instance.restarts(), restarts, "no restarts after stop");
    assert_eq!(processes_with_marker(&marker), Vec::<u32>::new());
}

#[tokio::test]
async fn stop_terminates_gracefully_when_the_app_handles_sigterm() {
    let app = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let log_file = logs.path().join("app.log");
    let marker = unique_marker();
    let spec = with_marker(
        app.path(),
        "trap 'echo got TERM; exit 0' TERM; echo up; while :; do sleep 0.1; done",
        &marker,
    );
    let instance = Instance::spawn(spec, log_file.clone()).expect("spawn");
    eventually("output", LONG, || {
        instance.log_tail().iter().any(|l| l == "up")
    })
    .await;
    let pids = tree(&instance);
    instance.stop(LONG).await;
    assert_all_gone(&pids, &marker).await;
    let log = std::fs::read_to_string(&log_file).expect("log");
    assert!(log.contains("got TERM"), "{log}");
    assert_eq!(instance.restarts(), 0);
}

#[tokio::test]
async fn stop_kills_what_ignores_sigterm_and_is_idempotent() {
    let app = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let marker = unique_marker();
    // A background child that ignores SIGTERM too, to check the whole tree goes.
    let spec = with_marker(
        app.path(),
        "trap '' TERM; (trap '' TERM; while :; do sleep 0.1; done) & echo up; while :; do sleep 0.1; done",
        &marker,
    );
    let instance = Instance::spawn(spec, logs.path().join("app.log")).expect("spawn");
    eventually("output", LONG, || {
        instance.log_tail().iter().any(|l| l == "up")
    })
    .await;
    let pids = tree(&instance);
    let grace = Duration::from_millis(300);
    tokio::join!(instance.stop(grace), instance.stop(grace));
    instance.stop(grace).await;
    assert_eq!(instance.state(), InstanceState::Stopped);
    assert_all_gone(&pids, &marker).await;
    let err = instance
        .wait_ready(free_addr(), LONG)
        .await
        .expect_err("a stopped instance is never ready");
    assert!(
        err.to_string()
            .contains("was stopped before accepting connections"),
        "{err}"
    );
}

#[tokio::test]
async fn dropping_the_handle_kills_the_sandbox() {
    let app = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let marker = unique_marker();
    let instance = Instance::spawn(
        with_marker(app.path(), "exec sleep 300", &marker),
        logs.path().join("app.log"),
    )
    .expect("spawn");
    let pids = tree(&instance);
    drop(instance);
    eventually("the sandbox to die", LONG, || {
        pids.iter().all(|&pid| !procfs::is_alive(pid)) && processes_with_marker(&marker).is_empty()
    })
    .await;
}

#[tokio::test]
async fn restart_delay_doubles_up_to_its_cap() {
    let app = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let log_file = logs.path().join("app.log");
    let marker = unique_marker();
    let options = SupervisorOptions {
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(40),
        stable_after: Duration::from_secs(3600),
        ..SupervisorOptions::default()
    };
    let spec = with_marker(app.path(), "exit 1", &marker);
    let instance = Instance::spawn_with_options(spec, log_file.clone(), options).expect("spawn");
    eventually("several restarts", LONG, || instance.restarts() >= 5).await;
    instance.stop(Duration::from_secs(5)).await;
    let log = std::fs::read_to_string(&log_file).expect("log");
    let delays: Vec<&str> = log
        .lines()
        .filter_map(|l| l.strip_prefix("[grove] process exited with status 1; restarting in "))
        .take(5)
        .collect();
    assert_eq!(delays, ["10ms", "20ms", "40ms", "40ms", "40ms"]);
}

#[tokio::test]
async fn a_process_that_stayed_up_long_enough_restarts_after_the_initial_delay() {
    let app = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let log_file = logs.path().join("app.log");
    let marker = unique_marker();
    let options = SupervisorOptions {
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_secs(1),
        stable_after: Duration::ZERO,
        ..SupervisorOptions::default()
    };
    let spec = with_marker(app.path(), "exit 1", &marker);
    let instance = Instance::spawn_with_options(spec, log_file.clone(), options).expect("spawn");
    eventually("several restarts", LONG, || instance.restarts() >= 3).await;
    instance.stop(Duration::from_secs(5)).await;
    let log = std::fs::read_to_string(&log_file).expect("log");
    let delays: Vec<&str> = log
        .lines()
        .filter_map(|l| l.strip_prefix("[grove] process exited with status 1; restarting in "))
        .take(3)
        .collect();
    assert_eq!(delays, ["10ms", "10ms", "10ms"]);
}
