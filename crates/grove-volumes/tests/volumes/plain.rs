use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use grove_volumes::{StorageKind, StorageSpec, VolumeError, VolumeStore};

use crate::support::{Scratch, Unmount, assert_no_leftovers, id, read, write, write_file};

fn plain_store(scratch: &Scratch) -> VolumeStore {
    VolumeStore::open(&scratch.mount_point, StorageSpec::Plain).expect("open plain store")
}

#[test]
fn plain_create_clone_replace_delete_round_trip() {
    let scratch = Scratch::new();
    let store = plain_store(&scratch);
    // /tmp is ext4 here: no reflink.
    assert!(
        matches!(store.kind(), StorageKind::Plain { .. }),
        "{}",
        store.kind()
    );

    let main = store.create(&id("shop/main/services/db")).expect("create");
    assert_eq!(main.path, store.root().join("shop/main/services/db"));
    assert_eq!(
        store.create(&main.id).expect("create again"),
        main,
        "create is idempotent"
    );
    write(&main, "table", "main 1");
    fs::create_dir(main.path.join("sub")).expect("mkdir");
    write_file(&main.path.join("sub/blob"), 3 << 20, 7).expect("blob");

    let feature_id = id("shop/feature/services/db");
    let report = store.clone_volume(&main.id, &feature_id).expect("clone");
    assert_eq!(report.method, store.kind().clone_method());
    assert_eq!(report.bytes, Some((3 << 20) + "main 1".len() as u64));
    let feature = store.get(&feature_id).expect("clone exists");
    assert_eq!(read(&feature, "table"), "main 1");
    assert_eq!(
        fs::read(feature.path.join("sub/blob")).ok(),
        fs::read(main.path.join("sub/blob")).ok()
    );

    // Independence, both ways.
    write(&feature, "table", "feature 1");
    assert_eq!(read(&main, "table"), "main 1");
    write(&main, "table", "main 2");
    write(&main, "only-in-main", "x");
    assert_eq!(read(&feature, "table"), "feature 1");
    assert!(!feature.path.join("only-in-main").exists());

    assert_eq!(store.list(""), [feature_id.clone(), main.id.clone()]);
    assert_eq!(store.list("shop/main/"), vec![main.id.clone()]);
    assert_eq!(store.list("shop/feat"), vec![feature_id.clone()]);
    assert!(store.list("other/").is_empty());

    // Sync data: the feature gets main's current contents, and only those.
    write(&feature, "only-in-feature", "y");
    let report = store
        .replace_with_clone(&main.id, &feature_id)
        .expect("replace");
    assert_eq!(report.method, store.kind().clone_method());
    assert_eq!(read(&feature, "table"), "main 2");
    assert_eq!(read(&feature, "only-in-main"), "x");
    assert!(!feature.path.join("only-in-feature").exists());
    assert_eq!(read(&main, "table"), "main 2");

    store.delete(&feature_id).expect("delete");
    assert!(store.get(&feature_id).is_none());
    assert!(
        !store.root().join("shop/feature").exists(),
        "empty parents are pruned"
    );
    store.delete(&feature_id).expect("delete is idempotent");
    assert_eq!(store.list(""), vec![main.id.clone()]);
    assert_eq!(read(&main, "table"), "main 2");
    assert_no_leftovers(&store);
    store.close().expect("close");
}

#[test]
fn plain_clone_keeps_owners_modes_and_symlinks() {
    let scratch = Scratch::new();
    let store = plain_store(&scratch);
    let source = store.create(&id("p/e/mounts/web")).expect("create");
    let file = source.path.join("secret");
    fs::write(&file, "s").expect("write");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).expect("chmod");
    std::os::unix::fs::chown(&file, Some(1000), Some(1000)).expect("chown");
    std::os::unix::fs::symlink("secret", source.path.join("link")).expect("symlink");
    fs::set_permissions(&source.path, fs::Permissions::from_mode(0o750)).expect("chmod");

    store
        .clone_volume(&source.id, &id("p/f/mounts/web"))
        .expect("clone");
    let clone = store.get(&id("p/f/mounts/web")).expect("clone");
    let meta = fs::metadata(clone.path.join("secret")).expect("stat");
    assert_eq!(
        (meta.mode() & 0o777, meta.uid(), meta.gid()),
        (0o600, 1000, 1000)
    );
    assert_eq!(
        fs::read_link(clone.path.join("link")).expect("readlink"),
        std::path::Path::new("secret")
    );
    assert_eq!(
        fs::metadata(&clone.path).expect("stat").mode() & 0o777,
        0o750
    );
}

#[test]
fn clone_refuses_existing_targets_missing_sources_and_nesting() {
    let scratch = Scratch::new();
    let store = plain_store(&scratch);
    let a = store.create(&id("p/a")).expect("create");
    let b = store.create(&id("p/b")).expect("create");
    write(&a, "f", "a");
    write(&b, "f", "b");

    let err = store.clone_volume(&a.id, &b.id).expect_err("target exists");
    assert!(matches!(err, VolumeError::AlreadyExists { .. }), "{err}");
    assert_eq!(read(&b, "f"), "b", "the existing target is untouched");

    let err = store
        .clone_volume(&id("p/missing"), &id("p/c"))
        .expect_err("no source");
    assert!(matches!(err, VolumeError::NotFound { .. }), "{err}");
    assert_eq!(err.to_string(), "volume p/missing does not exist");

    // A volume inside a volume, or a directory of volumes made a volume.
    let err = store.create(&id("p/a/inner")).expect_err("nested");
    assert!(
        err.to_string()
            .contains("p/a is a volume, and volumes do not nest"),
        "{err}"
    );
    let err = store
        .clone_volume(&a.id, &id("p/b/inner"))
        .expect_err("nested");
    assert!(err.is_caller_error(), "{err}");
    let err = store.create(&id("p")).expect_err("directory of volumes");
    assert!(err.to_string().contains("is not a volume"), "{err}");
    let err = store.delete(&id("p")).expect_err("directory of volumes");
    assert!(matches!(err, VolumeError::Conflict { .. }), "{err}");

    // A file written into a volume's root can't fake a volume or a marker.
    write(&a, ".inner.volume", "");
    fs::create_dir(a.path.join("inner")).expect("mkdir");
    assert!(store.get(&id("p/a/inner")).is_none());
    assert_eq!(store.list("p/"), [a.id.clone(), b.id.clone()]);
    assert_no_leftovers(&store);
}

#[test]
fn failed_clone_on_a_full_disk_leaves_no_target_and_the_source_untouched() {
    let scratch = Scratch::new();
    scratch.mount_tmpfs("4m");
    let store =
        VolumeStore::open(&scratch.mount_point.join("volumes"), StorageSpec::Auto).expect("open");
    assert!(
        store.kind().to_string().contains("tmpfs"),
        "{}",
        store.kind()
    );
    let source = store.create(&id("shop/main/services/db")).expect("create");
    write_file(&source.path.join("ibdata1"), 2500 << 10, 1).expect("fits once");
    let before = fs::read(source.path.join("ibdata1")).expect("read");

    let target = id("shop/feature/services/db");
    let err = store
        .clone_volume(&source.id, &target)
        .expect_err("does not fit twice");
    assert!(err.is_no_space(), "{err}");
    assert!(
        err.to_string().starts_with(
            "cloning volume shop/main/services/db to shop/feature/services/db: no space left"
        ),
        "{err}"
    );
    assert!(store.get(&target).is_none());
    assert!(!store.root().join("shop/feature/services/db").exists());
    assert!(
        !store
            .root()
            .join("shop/feature/services/.db.volume")
            .exists()
    );
    assert_eq!(store.list(""), vec![source.id.clone()]);
    assert_no_leftovers(&store);

    // Sync data into an existing (small) target fails the same way and
    // leaves the target as it was.
    let small = store
        .create(&id("shop/staging/services/db"))
        .expect("create");
    write(&small, "table", "staging");
    let err = store
        .replace_with_clone(&source.id, &small.id)
        .expect_err("does not fit");
    assert!(err.is_no_space(), "{err}");
    assert_eq!(read(&small, "table"), "staging");
    assert_eq!(fs::read(source.path.join("ibdata1")).expect("read"), before);
    assert_no_leftovers(&store);

    // Room again: the same clone works.
    fs::remove_file(source.path.join("ibdata1")).expect("rm");
    write_file(&source.path.join("ibdata1"), 1 << 20, 2).expect("write");
    store
        .clone_volume(&source.id, &target)
        .expect("clone with room");
    drop(store);
}

#[test]
fn open_takes_the_root_and_removes_interrupted_work() {
    let scratch = Scratch::new();
    let store = VolumeStore::open(&scratch.mount_point, StorageSpec::Auto).expect("open");
    let err = VolumeStore::open(&scratch.mount_point, StorageSpec::Auto).expect_err("second open");
    assert!(matches!(err, VolumeError::InUse { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("already open in process {}", std::process::id())),
        "{err}"
    );
    store.create(&id("p/e/db")).expect("create");
    drop(store);

    // What a crash in the middle of a clone leaves behind.
    let leftover = scratch.mount_point.join(".tmp/clone-1-0");
    fs::create_dir_all(leftover.join("deep")).expect("mkdir");
    fs::write(leftover.join("deep/file"), "x").expect("write");
    let store = VolumeStore::open(&scratch.mount_point, StorageSpec::Auto).expect("reopen");
    assert!(!leftover.exists());
    assert_eq!(store.list(""), [id("p/e/db")]);
}

#[test]
fn btrfs_storage_on_a_non_btrfs_root_is_refused() {
    let scratch = Scratch::new();
    let err = VolumeStore::open(&scratch.mount_point, StorageSpec::Btrfs).expect_err("ext4");
    assert!(matches!(err, VolumeError::NotBtrfs { .. }), "{err}");
    assert!(
        err.to_string().contains("use --storage btrfs-loop:<size>"),
        "{err}"
    );
}

#[test]
fn delete_and_replace_refuse_a_volume_with_a_mount_inside() {
    let scratch = Scratch::new();
    let store = plain_store(&scratch);
    let source = store.create(&id("p/main/db")).expect("create");
    let target = store.create(&id("p/feature/db")).expect("create");
    let mount_point = target.path.join("run");
    fs::create_dir(&mount_point).expect("mkdir");
    let mount = Unmount::tmpfs(&mount_point);
    fs::write(mount_point.join("socket"), "s").expect("write");

    let err = store.delete(&target.id).expect_err("busy");
    assert!(matches!(err, VolumeError::Busy { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("volume p/feature/db is in use: "),
        "{err}"
    );
    let err = store
        .replace_with_clone(&source.id, &target.id)
        .expect_err("busy");
    assert!(matches!(err, VolumeError::Busy { .. }), "{err}");
    assert_eq!(
        fs::read_to_string(mount_point.join("socket")).expect("read"),
        "s"
    );
    assert!(store.get(&target.id).is_some());
    assert_no_leftovers(&store);

    drop(mount);
    store
        .replace_with_clone(&source.id, &target.id)
        .expect("replace");
    store.delete(&target.id).expect("delete");
}
