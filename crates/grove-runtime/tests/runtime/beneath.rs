//! Mount sources beneath a root the apps write to: resolved without following
//! symlinks, never outside the root, and bound by descriptor so that a link swapped
//! in later changes nothing.

use std::os::unix::fs::{MetadataExt, symlink};
use std::path::Path;
use std::time::Duration;

use grove_runtime::beneath::{self, Refusal};
use grove_runtime::{Bind, RuntimeError};

use crate::support::{run, spec};

fn mkdirs(root: &Path, path: &str) {
    std::fs::create_dir_all(root.join(path)).expect("mkdir");
}

/// The refusal for `path` beneath `root`, as `(refused part, reason)`.
fn refused(root: &Path, path: &str, create: bool) -> (String, String) {
    let error = beneath::open_dir(root, Path::new(path), create).expect_err(path);
    (error.path.display().to_string(), error.refusal.to_string())
}

const SYMLINK: &str = "is a symbolic link; refusing to follow it";

fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).expect("read dir").next().is_none()
}

#[test]
fn a_symlink_at_any_depth_is_refused_and_nothing_is_created_through_it() {
    let root = tempfile::tempdir().expect("tempdir");
    let outside = tempfile::tempdir().expect("tempdir");
    mkdirs(root.path(), "a/b/c");
    symlink(outside.path(), root.path().join("top")).expect("symlink");
    symlink("c", root.path().join("a/b/lc")).expect("symlink");
    symlink("b", root.path().join("a/lb")).expect("symlink");
    let cases = [
        ("top", "top"),
        ("top/new", "top"),
        ("a/lb/c", "a/lb"),
        ("a/lb/new/deeper", "a/lb"),
        // A trailing link, even to a directory beneath the root.
        ("a/b/lc", "a/b/lc"),
    ];
    for (path, part) in cases {
        for create in [false, true] {
            assert_eq!(
                refused(root.path(), path, create),
                (part.to_owned(), SYMLINK.to_owned()),
                "{path} (create: {create})"
            );
        }
    }
    assert!(is_empty(outside.path()), "nothing was created outside");
    assert!(!root.path().join("a/b/c/new").exists());
}

#[test]
fn dot_dot_absolute_paths_and_links_leaving_the_root_are_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let outside = tempfile::tempdir().expect("tempdir");
    mkdirs(root.path(), "a");
    // A relative link climbing out, as deep as the root is, and an absolute one.
    let up = "../".repeat(root.path().components().count() + 2);
    symlink(&up, root.path().join("a/up")).expect("symlink");
    symlink(outside.path(), root.path().join("a/abs")).expect("symlink");
    symlink("/", root.path().join("a/host")).expect("symlink");
    let not_beneath = "is not a relative path of plain names (no `..`, `.` or leading `/`)";
    for path in ["../x", "a/../../x", "a/..", "/etc", "./a"] {
        for create in [false, true] {
            let (_, reason) = refused(root.path(), path, create);
            assert_eq!(reason, not_beneath, "{path}");
        }
    }
    for (path, part) in [
        ("a/up", "a/up"),
        ("a/up/tmp/new", "a/up"),
        ("a/abs/new", "a/abs"),
        ("a/host/etc", "a/host"),
    ] {
        assert_eq!(
            refused(root.path(), path, true),
            (part.to_owned(), SYMLINK.to_owned()),
            "{path}"
        );
    }
    assert!(is_empty(outside.path()));
    assert!(!Path::new("/etc/new").exists());
}

#[test]
fn missing_directories_are_created_and_files_are_not_directories() {
    let root = tempfile::tempdir().expect("tempdir");
    mkdirs(root.path(), "a");
    std::fs::write(root.path().join("a/file"), "x").expect("write");

    let dir = beneath::open_dir(root.path(), Path::new("a/x/y/z"), true).expect("created");
    let created = std::fs::metadata(root.path().join("a/x/y/z")).expect("created");
    let opened = std::fs::File::from(dir).metadata().expect("fstat");
    assert!(created.is_dir());
    assert_eq!(
        (opened.dev(), opened.ino()),
        (created.dev(), created.ino()),
        "the descriptor is the directory that was created"
    );

    let error = beneath::open_dir(root.path(), Path::new("a/missing"), false).expect_err("absent");
    assert!(matches!(error.refusal, Refusal::Io(_)), "{error}");
    assert!(!root.path().join("a/missing").exists());
    for create in [false, true] {
        assert_eq!(
            refused(root.path(), "a/file/sub", create),
            ("a/file".to_owned(), "is not a directory".to_owned())
        );
    }
    // The root itself.
    beneath::open_dir(root.path(), Path::new(""), false).expect("the root");
}

#[test]
fn a_link_swapped_in_after_opening_does_not_change_what_the_descriptor_is() {
    let root = tempfile::tempdir().expect("tempdir");
    let outside = tempfile::tempdir().expect("tempdir");
    let dir = beneath::open_dir(root.path(), Path::new("a/b"), true).expect("created");
    let original = std::fs::metadata(root.path().join("a/b")).expect("b");
    std::fs::rename(root.path().join("a/b"), root.path().join("a/moved")).expect("rename");
    symlink(outside.path(), root.path().join("a/b")).expect("symlink");

    let opened = std::fs::File::from(dir).metadata().expect("fstat");
    assert_eq!(
        (opened.dev(), opened.ino()),
        (original.dev(), original.ino())
    );
    // Resolving again sees the link, and refuses it.
    assert_eq!(
        refused(root.path(), "a/b", true),
        ("a/b".to_owned(), SYMLINK.to_owned())
    );
}

#[tokio::test]
async fn bind_fd_binds_the_directory_and_does_not_leak_the_descriptor() {
    let app = tempfile::tempdir().expect("tempdir");
    let volume = tempfile::tempdir().expect("tempdir");
    mkdirs(volume.path(), "apps/app/shared");
    std::fs::write(volume.path().join("apps/app/shared/config"), "ro\n").expect("write");
    let mut spec = spec(
        app.path(),
        "echo hello > /app/var/file && cat /app/shared/config && \
         if [ -e /proc/$$/fd/3 ] || [ -e /proc/$$/fd/4 ]; then echo leaked; fi; \
         touch /app/shared/nope",
    );
    spec.binds = vec![
        // Created when missing, beneath the volume.
        Bind::beneath(volume.path(), "apps/app/var", "/app/var", true),
        Bind::beneath(volume.path(), "apps/app/shared", "/app/shared", false),
    ];
    let (outcome, lines) = run(&spec).await;
    assert!(!outcome.success(), "a read-only bind-fd is read-only");
    assert_eq!(lines[0], "ro", "{lines:?}");
    assert!(lines[1].contains("Read-only file system"), "{lines:?}");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(
        std::fs::read_to_string(volume.path().join("apps/app/var/file")).expect("read"),
        "hello\n"
    );
    assert!(
        app.path().join("var").is_dir(),
        "the mount point in the app"
    );
    assert!(!volume.path().join("apps/app/shared/nope").exists());
}

#[tokio::test]
async fn a_symlinked_mount_source_is_refused_before_starting() {
    let app = tempfile::tempdir().expect("tempdir");
    let volume = tempfile::tempdir().expect("tempdir");
    let host = tempfile::tempdir().expect("tempdir");
    mkdirs(volume.path(), "apps/app/local/a");
    let up = "../".repeat(volume.path().components().count() + 5);
    symlink(
        format!("{up}{}", host.path().display()),
        volume.path().join("apps/app/local/a/b"),
    )
    .expect("symlink");
    let mut spec = spec(app.path(), "touch /app/b/escaped");
    spec.binds = vec![
        Bind::beneath(volume.path(), "apps/app/local/a", "/app/a", true),
        Bind::beneath(volume.path(), "apps/app/local/a/b", "/app/b", true),
    ];
    let mut sink = |_: &str| {};
    let error = grove_runtime::run_command(&spec, Duration::from_secs(10), &mut sink)
        .await
        .expect_err("refused");
    assert!(matches!(error, RuntimeError::MountSource { .. }), "{error}");
    assert_eq!(
        error.to_string(),
        format!(
            "mount /app/b: `apps/app/local/a/b` {SYMLINK} (beneath {})",
            volume.path().display()
        )
    );
    assert!(is_empty(host.path()));
}

/// bwrap would follow a link at the mount point of a bind nested in another one,
/// which the app writes to: the mount point is made first, without following links.
#[tokio::test]
async fn a_mount_point_inside_another_bind_is_not_made_through_a_symlink() {
    let app = tempfile::tempdir().expect("tempdir");
    let volume = tempfile::tempdir().expect("tempdir");
    let host = tempfile::tempdir().expect("tempdir");
    mkdirs(volume.path(), "var");
    symlink(host.path(), volume.path().join("var/storage")).expect("symlink");
    let mut spec = spec(app.path(), "true");
    spec.binds = vec![
        Bind::beneath(volume.path(), "var", "/app/var", true),
        Bind::beneath(volume.path(), "jobs", "/app/var/storage/jobs", true),
    ];
    let mut sink = |_: &str| {};
    let error = grove_runtime::run_command(&spec, Duration::from_secs(10), &mut sink)
        .await
        .expect_err("refused");
    assert_eq!(
        error.to_string(),
        format!("mount point of /app/var/storage/jobs: `storage` {SYMLINK}")
    );
    assert!(is_empty(host.path()));

    // Without the link, the mount point is made inside the outer bind's directory.
    std::fs::remove_file(volume.path().join("var/storage")).expect("rm");
    spec.command = "echo nested > /app/var/storage/jobs/file".into();
    let (outcome, lines) = run(&spec).await;
    assert!(outcome.success(), "{outcome}: {lines:?}");
    assert!(volume.path().join("var/storage/jobs").is_dir());
    assert!(volume.path().join("jobs/file").is_file());
}

/// The escape of the first security finding, raced: while sandboxes start, another
/// thread keeps exchanging the mount source with a link to the "host". Every start
/// binds the real directory, or refuses the link, or bwrap stops before the command
/// runs; none binds the link's target.
#[tokio::test]
async fn a_symlink_swapped_in_while_sandboxes_start_never_binds_its_target() {
    let app = tempfile::tempdir().expect("tempdir");
    let volume = tempfile::tempdir().expect("tempdir");
    let host = tempfile::tempdir().expect("tempdir");
    mkdirs(volume.path(), "a/b");
    symlink(host.path(), volume.path().join("a/other")).expect("symlink");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        let (b, other) = (volume.path().join("a/b"), volume.path().join("a/other"));
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                rustix::fs::renameat_with(
                    rustix::fs::CWD,
                    &b,
                    rustix::fs::CWD,
                    &other,
                    rustix::fs::RenameFlags::EXCHANGE,
                )
                .expect("exchange");
                swaps += 1;
                // Bursts of swaps and quiet spells as long as a sandbox start.
                if swaps.is_multiple_of(64) {
                    std::thread::sleep(Duration::from_millis(swaps % 50));
                } else {
                    std::thread::yield_now();
                }
            }
            swaps
        })
    };
    let (mut bound, mut refused, mut caught) = (0, 0, 0);
    // Until both outcomes were seen a few times (a refusal is much quicker than a
    // start), within bounds.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    for i in 0..400 {
        if (bound >= 5 && refused + caught >= 5) || std::time::Instant::now() > deadline {
            break;
        }
        let mut spec = spec(app.path(), &format!("touch /app/b/marker-{i}"));
        spec.binds = vec![Bind::beneath(volume.path(), "a/b", "/app/b", true)];
        let mut lines = Vec::new();
        let mut sink = |line: &str| lines.push(line.to_owned());
        match grove_runtime::run_command(&spec, Duration::from_secs(30), &mut sink).await {
            Ok(outcome) if outcome.success() => bound += 1,
            // bwrap 0.8 mounts the path it reads back from /proc/self/fd/N, then
            // checks that what it mounted is the descriptor's directory: a swap in
            // between makes the mount fail or the check stop bwrap, before the
            // command runs.
            Ok(outcome) => {
                assert!(
                    !lines.is_empty() && lines.iter().all(|l| l.starts_with("bwrap: ")),
                    "{outcome}: {lines:?}"
                );
                caught += 1;
            }
            Err(RuntimeError::MountSource { error, .. })
                if matches!(error.refusal, Refusal::Symlink) =>
            {
                refused += 1
            }
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = swapper.join().expect("swapper");
    println!("{bound} bound, {refused} refused, {caught} caught by bwrap, {swaps} swaps");
    assert!(is_empty(host.path()), "the link's target was never bound");
    // Whichever name the real directory has now, it holds every marker.
    let real = ["a/b", "a/other"]
        .iter()
        .map(|p| volume.path().join(p))
        .find(|p| !p.is_symlink())
        .expect("the real directory");
    assert_eq!(std::fs::read_dir(real).expect("read").count(), bound);
    assert!(bound > 0, "{refused} refused");
}
