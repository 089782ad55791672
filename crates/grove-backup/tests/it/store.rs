//! The restic store, with the real `restic` and repositories in temp dirs.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use grove_backup::manifest::{
    CaptureMethod, Consistency, FileTree, MANIFEST_FILE, Manifest, MountData, ServiceData,
    VerifyError, verify,
};
use grove_backup::store::{CheckLevel, ErrorClass, SnapshotId, Store, StoreError};
use tempfile::TempDir;

struct Fixture {
    dir: TempDir,
    store: Store,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = dir.path().join("repo");
        let store =
            Store::open_or_init(repo.to_str().expect("utf-8"), &dir.path().join("password"))
                .expect("repository created");
        Fixture { dir, store }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A tree shaped like an environment's backup: service data, a dump, mounts with
/// nested directories, an empty file, a larger binary file, a symlink, odd names.
fn environment_tree(root: &Path) {
    let write = |relative: &str, contents: &[u8]| {
        let path = root.join(relative);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, contents).expect("write");
    };
    write("services/db/data/ibdata1", &[7u8; 300_000]);
    write(
        "services/db/dump.sql",
        b"CREATE TABLE t (id INT);\nINSERT INTO t VALUES (1),(2);\n",
    );
    write("services/cache/dump.rdb", b"REDIS0011");
    write(
        "apps/app/web/uploads/logo.png",
        &(0..=255u8).cycle().take(70_000).collect::<Vec<_>>(),
    );
    write("apps/app/web/uploads/empty", b"");
    write(
        "apps/app/var/log/a 100% weird name.txt",
        b"spaces and percent",
    );
    fs::create_dir_all(root.join("apps/app/var/empty-dir")).expect("mkdir");
    symlink("uploads/logo.png", root.join("apps/app/web/current-logo")).expect("symlink");
    let mut big = Vec::with_capacity(2 << 20);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while big.len() < 2 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        big.extend_from_slice(&x.to_le_bytes());
    }
    write("apps/app/web/uploads/video.bin", &big);
}

fn manifest_of(root: &Path) -> Manifest {
    Manifest {
        format: grove_backup::manifest::FORMAT,
        project: "shop".to_owned(),
        environment: "main".to_owned(),
        commit: Some("0123456789abcdef0123456789abcdef01234567".to_owned()),
        build_key: Some("b".repeat(64)),
        created_at: 1_796_109_931,
        consistency: Consistency::Consistent { pause_ms: 412 },
        services: vec![
            ServiceData {
                name: "db".to_owned(),
                service_type: "mariadb:10.11".to_owned(),
                method: CaptureMethod::VolumeSnapshot,
                quiesced: Some("commits blocked (BACKUP STAGE BLOCK_COMMIT)".to_owned()),
                path: "services/db/data".to_owned(),
            },
            ServiceData {
                name: "cache".to_owned(),
                service_type: "redis:7.0".to_owned(),
                method: CaptureMethod::Dump {
                    tool: "redis BGSAVE".to_owned(),
                },
                quiesced: None,
                path: "services/cache/dump.rdb".to_owned(),
            },
        ],
        mounts: vec![MountData {
            app: "app".to_owned(),
            mount: "web/uploads".to_owned(),
            path: "apps/app/web/uploads".to_owned(),
        }],
        files: FileTree::compute(root).expect("tree readable"),
    }
}

#[test]
fn backup_then_change_and_delete_then_restore_gives_identical_files() {
    let fixture = Fixture::new();
    let source = fixture.path("volume");
    environment_tree(&source);
    let manifest = manifest_of(&source);
    fs::write(source.join(MANIFEST_FILE), manifest.to_json()).expect("manifest written");

    let summary = fixture
        .store
        .backup(&source, &[("project", "shop"), ("environment", "main")])
        .expect("backup");
    assert_eq!(
        summary.files_total, 8,
        "7 files and the manifest: {summary:?}"
    );
    assert!(summary.bytes_total > 2 << 20);
    assert!(summary.bytes_added > 0);
    assert_eq!(summary.snapshot.tags["environment"], "main");

    // The environment changes after the backup: edits, deletions, additions.
    fs::write(source.join("services/db/dump.sql"), "DROP TABLE t;").expect("edit");
    fs::remove_file(source.join("apps/app/web/uploads/logo.png")).expect("delete");
    fs::remove_dir_all(source.join("apps/app/var")).expect("delete");
    fs::write(source.join("apps/app/web/uploads/new.txt"), "new").expect("add");
    let drifted = verify(&source, &manifest).expect_err("the live tree has drifted");
    let VerifyError::Mismatch {
        missing,
        extra,
        changed,
    } = &drifted
    else {
        panic!("{drifted}");
    };
    assert!(
        missing.contains(&"apps/app/web/uploads/logo.png".to_owned()),
        "{missing:?}"
    );
    assert!(
        missing.contains(&"apps/app/var/empty-dir".to_owned()),
        "{missing:?}"
    );
    assert_eq!(extra, &["apps/app/web/uploads/new.txt"]);
    assert_eq!(changed, &["services/db/dump.sql"]);
    assert!(
        drifted
            .to_string()
            .contains("1 changed (services/db/dump.sql)"),
        "{drifted}"
    );

    let restored = fixture.path("restored");
    let read = fixture
        .store
        .restore_verified(&summary.snapshot.id, &restored)
        .expect("restored and verified");
    assert_eq!(read, manifest);
    verify(&restored, &manifest).expect("restored tree matches its manifest");
    assert_eq!(
        FileTree::compute(&restored).expect("readable").digest,
        manifest.files.digest
    );
    assert_eq!(
        fs::read_link(restored.join("apps/app/web/current-logo")).expect("symlink restored"),
        Path::new("uploads/logo.png")
    );

    // The manifest can be read from the store without restoring.
    let stored = fixture
        .store
        .read_file(&summary.snapshot.id, MANIFEST_FILE)
        .expect("manifest readable");
    assert_eq!(
        Manifest::from_json(&stored).expect("manifest parses"),
        manifest
    );

    // A second backup of the unchanged restored tree adds (almost) nothing.
    let again = fixture
        .store
        .backup(&restored, &[("environment", "main")])
        .expect("backup");
    assert!(again.bytes_added < 10_000, "deduplicated: {again:?}");
}

#[test]
fn the_password_file_is_created_private_and_the_repository_reopened() {
    let fixture = Fixture::new();
    let password = fixture.path("password");
    let mode = fs::metadata(&password)
        .expect("created")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(fs::read(&password).expect("readable").len(), 64);
    // Opening again finds the repository (it is not created twice).
    let again = Store::open_or_init(fixture.store.repo(), &password).expect("reopened");
    assert!(again.list(&[]).expect("list").is_empty());

    fs::set_permissions(&password, fs::Permissions::from_mode(0o644)).expect("chmod");
    let error =
        Store::open_or_init(fixture.store.repo(), &password).expect_err("readable by others");
    assert!(
        error
            .to_string()
            .contains("can be read by others (mode 0644); it must be 0600"),
        "{error}"
    );
}

#[test]
fn first_opens_at_the_same_time_make_one_repository_every_one_can_use() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = dir.path().join("repo");
    let password = dir.path().join("password");
    let stores: Vec<Store> = std::thread::scope(|scope| {
        let opening: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    Store::open_or_init(repo.to_str().expect("utf-8"), &password)
                        .expect("opened or created")
                })
            })
            .collect();
        opening
            .into_iter()
            .map(|o| o.join().expect("thread"))
            .collect()
    });
    let source = dir.path().join("volume");
    fs::create_dir_all(&source).expect("mkdir");
    fs::write(source.join("a"), "one").expect("write");
    for store in &stores {
        store
            .backup(&source, &[])
            .expect("a backup through every store");
    }
    assert_eq!(
        fs::read_dir(repo.join("keys")).expect("keys").count(),
        1,
        "one initialisation, one key"
    );
}

#[test]
fn a_wrong_password_is_an_error_that_says_so() {
    let fixture = Fixture::new();
    let other = fixture.path("other-password");
    fs::write(&other, "not the password").expect("write");
    fs::set_permissions(&other, fs::Permissions::from_mode(0o600)).expect("chmod");
    let error = Store::open_or_init(fixture.store.repo(), &other).expect_err("wrong password");
    assert!(error.to_string().contains("wrong password"), "{error}");
    assert_eq!(error.class(), ErrorClass::Upstream);
}

#[test]
fn a_lost_password_file_is_not_replaced_by_a_new_password() {
    let fixture = Fixture::new();
    let lost = fixture.path("lost-password");
    let error = Store::open_or_init(fixture.store.repo(), &lost).expect_err("password lost");
    assert!(
        matches!(error, StoreError::PasswordLost { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("put the password file back"),
        "{error}"
    );
    assert!(!lost.exists(), "no new password file is left behind");
}

#[test]
fn an_unwritable_repository_path_is_an_error_naming_the_path_and_the_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Tests run as root (CI does), where permission bits do not stop a write: a
    // repository below a regular file cannot be written by anyone.
    fs::write(dir.path().join("file"), "").expect("file");
    let repo = dir.path().join("file/repo");
    let error = Store::open_or_init(repo.to_str().expect("utf-8"), &dir.path().join("password"))
        .expect_err("unwritable");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("backup store {}: ", repo.display())),
        "{message}"
    );
    assert!(
        message.contains("file/repo/keys: not a directory"),
        "{message}"
    );

    // A directory nobody may write into (immutable stops root too).
    let locked = dir.path().join("locked");
    fs::create_dir(&locked).expect("mkdir");
    let Some(_guard) = Immutable::set(&locked) else {
        eprintln!("skipped the immutable directory: chattr +i is not available here");
        return;
    };
    let repo = locked.join("repo");
    let error = Store::open_or_init(repo.to_str().expect("utf-8"), &dir.path().join("password"))
        .expect_err("unwritable");
    let message = error.to_string();
    assert!(
        message.contains("creating the repository failed"),
        "{message}"
    );
    assert!(
        message.contains("locked/repo: operation not permitted"),
        "{message}"
    );
}

/// Marks a directory immutable (`chattr +i`, which stops root too) until dropped;
/// `None` where the filesystem or the user cannot.
struct Immutable(PathBuf);

impl Immutable {
    fn set(path: &Path) -> Option<Immutable> {
        let ok = Command::new("chattr")
            .arg("-R")
            .arg("+i")
            .arg(path)
            .status()
            .ok()?
            .success();
        ok.then(|| Immutable(path.to_path_buf()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr")
            .arg("-R")
            .arg("-i")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_backup_into_a_repository_that_became_unwritable_fails_naming_the_reason() {
    let fixture = Fixture::new();
    let source = fixture.path("volume");
    environment_tree(&source);
    let Some(_guard) = Immutable::set(&fixture.path("repo")) else {
        eprintln!("skipped: chattr +i is not available here");
        return;
    };
    let error = fixture.store.backup(&source, &[]).expect_err("unwritable");
    let message = error.to_string();
    assert!(message.contains("backup failed"), "{message}");
    assert!(message.contains("repo/locks"), "{message}");
    assert!(message.contains("operation not permitted"), "{message}");
}

#[test]
fn forget_removes_a_snapshot_from_the_list() {
    let mut fixture = Fixture::new();
    // With restic's cache this time (the server keeps one in its data directory).
    fixture.store = fixture.store.clone().with_cache_dir(&fixture.path("cache"));
    let source = fixture.path("volume");
    fs::create_dir_all(&source).expect("mkdir");
    fs::write(source.join("a"), "one").expect("write");
    let first = fixture
        .store
        .backup(&source, &[("environment", "main")])
        .expect("backup");
    fs::write(source.join("a"), "two").expect("write");
    let second = fixture
        .store
        .backup(&source, &[("environment", "main")])
        .expect("backup");
    let other = fixture
        .store
        .backup(&source, &[("environment", "staging")])
        .expect("backup");

    let ids = |tags: &[(&str, &str)]| -> Vec<SnapshotId> {
        fixture
            .store
            .list(tags)
            .expect("list")
            .into_iter()
            .map(|s| s.id)
            .collect()
    };
    assert_eq!(
        ids(&[("environment", "main")]),
        [first.snapshot.id.clone(), second.snapshot.id.clone()]
    );
    assert_eq!(ids(&[]).len(), 3);

    fixture
        .store
        .forget_and_prune(std::slice::from_ref(&first.snapshot.id))
        .expect("forget");
    assert_eq!(
        ids(&[("environment", "main")]),
        vec![second.snapshot.id.clone()]
    );
    assert_eq!(ids(&[("environment", "staging")]), [other.snapshot.id]);
    fixture
        .store
        .check(CheckLevel::ReadAll)
        .expect("still consistent after pruning");
    assert!(
        fixture.path("cache").is_dir(),
        "the cache is where it was put"
    );
    fixture
        .store
        .unlock()
        .expect("no stale locks to remove, and no error");

    let restored = fixture.path("restored");
    fixture
        .store
        .restore(&second.snapshot.id, &restored)
        .expect("restore");
    assert_eq!(fs::read_to_string(restored.join("a")).expect("read"), "two");
}

#[test]
fn a_lock_another_process_holds_is_waited_for() {
    let fixture = Fixture::new();
    let source = fixture.path("volume");
    fs::create_dir_all(&source).expect("mkdir");
    fs::write(source.join("a"), "one").expect("write");
    let first = fixture.store.backup(&source, &[]).expect("backup");

    // Another restic, not this process's, holds the repository while its stdin is open.
    let mut other = std::process::Command::new("restic")
        .arg("--repo")
        .arg(fixture.path("repo"))
        .arg("--password-file")
        .arg(fixture.path("password"))
        .args([
            "--no-cache",
            "backup",
            "--stdin",
            "--stdin-filename",
            "slow",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("restic");
    let locks = fixture.path("repo").join("locks");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while fs::read_dir(&locks).map_or(0, |d| d.count()) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the other restic took no lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let stdin = other.stdin.take();
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(3));
        drop(stdin);
    });
    assert!(
        other.try_wait().expect("other restic").is_none(),
        "the other restic still holds its lock"
    );
    fixture
        .store
        .forget(std::slice::from_ref(&first.snapshot.id))
        .expect("forget waits for the other restic instead of failing");
    release.join().expect("release");
    let _ = other.wait();
}

#[test]
fn forget_keeps_the_data_until_a_prune_deletes_what_no_snapshot_uses() {
    let fixture = Fixture::new();
    let source = fixture.path("volume");
    fs::create_dir_all(&source).expect("mkdir");
    // Content restic cannot compress away nor share between the two snapshots.
    let noise = |seed: u64| -> Vec<u8> {
        let mut x = seed;
        (0..512 * 1024)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    fs::write(source.join("blob"), noise(1)).expect("write");
    let first = fixture.store.backup(&source, &[]).expect("backup");
    fs::write(source.join("blob"), noise(2)).expect("write");
    let second = fixture.store.backup(&source, &[]).expect("backup");
    let repo = fixture.path("repo");
    let before = pack_files(&repo);

    fixture
        .store
        .forget(std::slice::from_ref(&first.snapshot.id))
        .expect("forget");
    assert_eq!(pack_files(&repo), before, "forget alone deletes no data");
    fixture.store.prune().expect("prune");
    let after = pack_files(&repo);
    assert!(
        after.len() < before.len(),
        "prune deletes the packs only the forgotten snapshot used: {} then {}",
        before.len(),
        after.len()
    );
    fixture
        .store
        .check(CheckLevel::ReadAll)
        .expect("consistent after the prune");
    let restored = fixture.path("restored");
    fixture
        .store
        .restore(&second.snapshot.id, &restored)
        .expect("restore");
    assert_eq!(fs::read(restored.join("blob")).expect("read"), noise(2));
}

fn pack_files(repo: &Path) -> Vec<PathBuf> {
    let mut packs = Vec::new();
    for prefix in fs::read_dir(repo.join("data")).expect("data dir") {
        for pack in fs::read_dir(prefix.expect("entry").path()).expect("prefix dir") {
            packs.push(pack.expect("entry").path());
        }
    }
    packs.sort();
    packs
}

fn backed_up_fixture() -> Fixture {
    let fixture = Fixture::new();
    let source = fixture.path("volume");
    environment_tree(&source);
    fixture.store.backup(&source, &[]).expect("backup");
    fixture
        .store
        .check(CheckLevel::Structure)
        .expect("a new repository is sound");
    fixture
        .store
        .check(CheckLevel::ReadSubset { percent: 50 })
        .expect("sound");
    fixture.store.check(CheckLevel::ReadAll).expect("sound");
    fixture
}

#[test]
fn check_fails_when_a_pack_file_is_deleted() {
    let fixture = backed_up_fixture();
    let packs = pack_files(&fixture.path("repo"));
    assert!(!packs.is_empty());
    fs::remove_file(&packs[0]).expect("delete a pack");
    let error = fixture
        .store
        .check(CheckLevel::Structure)
        .expect_err("damaged");
    assert!(matches!(error, StoreError::Damaged { .. }), "{error:?}");
    let name = packs[0]
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(error.to_string().contains("is damaged"), "{error}");
    assert!(
        error.to_string().contains(&name[..8]),
        "names the pack: {error}"
    );
}

#[test]
fn check_reading_the_data_fails_when_a_pack_file_is_corrupted() {
    let fixture = backed_up_fixture();
    let packs = pack_files(&fixture.path("repo"));
    let largest = packs
        .iter()
        .max_by_key(|p| fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("a pack");
    let mut bytes = fs::read(largest).expect("read pack");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(largest, bytes).expect("corrupt pack");
    let error = fixture
        .store
        .check(CheckLevel::ReadAll)
        .expect_err("damaged");
    assert!(matches!(error, StoreError::Damaged { .. }), "{error:?}");
    let name = largest
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(
        error.to_string().contains(&name[..8]),
        "names the pack: {error}"
    );
}

#[test]
fn restore_refuses_a_target_that_is_not_empty() {
    let fixture = Fixture::new();
    let source = fixture.path("volume");
    fs::create_dir_all(&source).expect("mkdir");
    fs::write(source.join("a"), "one").expect("write");
    let backup = fixture.store.backup(&source, &[]).expect("backup");
    let error = fixture
        .store
        .restore(&backup.snapshot.id, &source)
        .expect_err("not empty");
    assert!(
        matches!(error, StoreError::TargetNotEmpty { .. }),
        "{error:?}"
    );
    assert_eq!(error.class(), ErrorClass::User);
}

#[test]
fn tags_and_ids_that_restic_would_misread_are_refused() {
    let fixture = Fixture::new();
    let source = fixture.path("volume");
    fs::create_dir_all(&source).expect("mkdir");
    for (key, value) in [("env", "a,b"), ("a=b", "c"), ("", "x"), ("env", "a\nb")] {
        let error = fixture
            .store
            .backup(&source, &[(key, value)])
            .expect_err("invalid tag");
        assert!(
            matches!(error, StoreError::InvalidTag { .. }),
            "{key}={value}: {error:?}"
        );
    }
    for id in ["latest", "--read-data", "abc", &"g".repeat(64)] {
        assert!(SnapshotId::parse(id).is_err(), "{id}");
    }
    assert!(
        fixture.store.list(&[]).expect("list").is_empty(),
        "nothing was written"
    );
}

#[test]
fn a_backup_source_that_is_not_a_directory_is_refused() {
    let fixture = Fixture::new();
    let file = fixture.path("file");
    fs::write(&file, "x").expect("write");
    let error = fixture
        .store
        .backup(&file, &[])
        .expect_err("not a directory");
    assert!(error.to_string().contains("not a directory"), "{error}");
    let missing = fixture
        .store
        .backup(&fixture.path("missing"), &[])
        .expect_err("missing");
    assert!(missing.to_string().contains("missing"), "{missing}");
}

#[test]
fn a_restore_that_does_not_match_its_manifest_is_an_error_naming_the_files() {
    let fixture = Fixture::new();
    let source = fixture.path("volume");
    environment_tree(&source);
    let manifest = manifest_of(&source);
    // The tree changes between the checksums and the upload (a caller that did not
    // back up a frozen snapshot): the backup does not match its own manifest.
    fs::write(source.join(MANIFEST_FILE), manifest.to_json()).expect("manifest written");
    fs::write(
        source.join("services/db/dump.sql"),
        "changed after the checksums",
    )
    .expect("edit");
    let backup = fixture.store.backup(&source, &[]).expect("backup");
    let error = fixture
        .store
        .restore_verified(&backup.snapshot.id, &fixture.path("restored"))
        .expect_err("mismatch");
    assert!(matches!(error, StoreError::Verify { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("1 changed (services/db/dump.sql)"),
        "{error}"
    );

    // A snapshot without a manifest cannot be verified.
    fs::remove_file(source.join(MANIFEST_FILE)).expect("remove");
    let bare = fixture.store.backup(&source, &[]).expect("backup");
    let error = fixture
        .store
        .restore_verified(&bare.snapshot.id, &fixture.path("restored-bare"))
        .expect_err("no manifest");
    assert!(matches!(error, StoreError::NoManifest { .. }), "{error:?}");
}
