//! Resource limits on this host's real cgroups (v1 or v2): a sandbox joins its
//! group before bwrap runs, and its limits hold.

use grove_runtime::{Cgroups, Limits};

use crate::support::{run, spec};

fn limits(pids: u64) -> Limits {
    Limits {
        memory_bytes: 64 * 1024 * 1024,
        cpu_millis: Some(500),
        pids,
    }
}

#[tokio::test]
async fn a_sandbox_runs_in_its_group_and_cannot_fork_past_pids_max() {
    let data = tempfile::tempdir().expect("tempdir");
    let cgroups = Cgroups::open(data.path()).expect("cgroups on this host");
    let join = cgroups.apply("limited", &limits(20)).expect("apply");
    let app = tempfile::tempdir().expect("tempdir");
    // A bounded loop: at most 200 children, whatever the limit does.
    let mut spec = spec(
        app.path(),
        "cat /proc/self/cgroup; n=0; while [ $n -lt 200 ]; do sleep 30 & n=$((n+1)); echo started $n; done",
    );
    spec.cgroup = Some(join);
    let (outcome, lines) = run(&spec).await;
    assert!(
        !outcome.success(),
        "the shell cannot fork: {outcome}: {lines:?}"
    );
    let started: u64 = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("started "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(
        started < 20,
        "started {started} children under pids.max 20: {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("/limited")),
        "the sandbox is in its group: {lines:?}"
    );
    cgroups.remove("limited").expect("removed once empty");
    cgroups.close();
}

#[tokio::test]
async fn memory_past_the_limit_is_killed() {
    let data = tempfile::tempdir().expect("tempdir");
    let cgroups = Cgroups::open(data.path()).expect("cgroups on this host");
    let join = cgroups.apply("small", &limits(100)).expect("apply");
    let app = tempfile::tempdir().expect("tempdir");
    // 512 MB of touched memory against a 64 MB limit.
    let mut spec = spec(
        app.path(),
        "python3 -c 'b = bytearray(512 * 1024 * 1024); print(\"allocated\")'",
    );
    spec.cgroup = Some(join);
    let (outcome, lines) = run(&spec).await;
    assert!(!outcome.success(), "{outcome}: {lines:?}");
    assert!(!lines.iter().any(|l| l == "allocated"), "{lines:?}");
    assert!(cgroups.oom_kills("small") >= 1, "the OOM killer acted");
    cgroups.remove("small").expect("removed once empty");
    cgroups.close();
}

/// A redeploy with bigger, then smaller sizes: on v1 the memory+swap limit has to
/// move first when raising and last when lowering.
#[test]
fn limits_can_be_raised_and_lowered() {
    let data = tempfile::tempdir().expect("tempdir");
    let cgroups = Cgroups::open(data.path()).expect("cgroups on this host");
    let read = |file: &str| -> Option<String> {
        let dir = cgroups
            .hierarchy()
            .dirs("resized")
            .into_iter()
            .find(|d| d.join(file).exists())?;
        Some(
            std::fs::read_to_string(dir.join(file))
                .expect("read")
                .trim()
                .to_owned(),
        )
    };
    for mb in [64u64, 1024, 128] {
        cgroups.apply("resized", &limits_mb(mb)).expect("apply");
        let bytes = (mb << 20).to_string();
        let memory = read("memory.limit_in_bytes").or_else(|| read("memory.max"));
        assert_eq!(memory.as_deref(), Some(bytes.as_str()));
        if let Some(memsw) = read("memory.memsw.limit_in_bytes") {
            assert_eq!(memsw, bytes);
        }
    }
    cgroups.remove("resized").expect("remove");
    cgroups.close();
}

fn limits_mb(mb: u64) -> Limits {
    Limits {
        memory_bytes: mb << 20,
        cpu_millis: None,
        pids: 50,
    }
}

/// An app's group inside its environment's: its own limits hold, and removing the
/// environment's group removes it too.
#[tokio::test]
async fn nested_groups_have_their_own_limits_and_go_with_their_parent() {
    let data = tempfile::tempdir().expect("tempdir");
    let cgroups = Cgroups::open(data.path()).expect("cgroups on this host");
    cgroups.apply("env", &limits(200)).expect("parent");
    let join = cgroups.apply("env/app-web", &limits(20)).expect("child");
    let app = tempfile::tempdir().expect("tempdir");
    let mut spec = spec(
        app.path(),
        "n=0; while [ $n -lt 200 ]; do sleep 30 & n=$((n+1)); echo started $n; done",
    );
    spec.cgroup = Some(join);
    let (outcome, lines) = run(&spec).await;
    assert!(!outcome.success(), "{outcome}: {lines:?}");
    let started: u64 = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("started "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(
        started < 20,
        "started {started} under the child's 20: {lines:?}"
    );
    cgroups.remove("env").expect("removed with its child");
    assert!(
        cgroups.hierarchy().dirs("env").iter().all(|d| !d.exists()),
        "gone"
    );
    cgroups.close();
}
