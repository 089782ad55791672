use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;

use grove_volumes::{CloneMethod, StorageKind, StorageSpec, VolumeStore};

use crate::support::{
    Scratch, assert_no_leftovers, id, loop_devices_of, path, read, run, write, write_file,
};

const MIB: u64 = 1 << 20;

fn loop_store(scratch: &Scratch, size_mib: u64) -> VolumeStore {
    VolumeStore::open(
        &scratch.mount_point,
        StorageSpec::BtrfsLoop {
            size_bytes: size_mib * MIB,
        },
    )
    .expect("open btrfs loop store")
}

fn assert_subvolume(path: &std::path::Path) {
    assert_eq!(
        fs::metadata(path).expect("stat").ino(),
        256,
        "{} is a subvolume root",
        path.display()
    );
    run("btrfs", &["subvolume", "show", crate::support::path(path)]);
}

#[test]
fn btrfs_loop_create_snapshot_replace_delete_round_trip() {
    let scratch = Scratch::new();
    let store = loop_store(&scratch, 300);
    let image = fs::canonicalize(&scratch.image).expect("image");
    assert_eq!(
        store.kind().to_string(),
        format!("btrfs (loop image {}, 300 MiB)", image.display())
    );
    assert_eq!(loop_devices_of(&image).len(), 1);
    assert!(run("stat", &["-f", "-c", "%T", path(store.root())]).trim() == "btrfs");
    // Sparse: the image takes space as the pool fills.
    assert!(fs::metadata(&image).expect("stat").blocks() * 512 < 100 * MIB);

    let main = store.create(&id("shop/main/services/db")).expect("create");
    assert_subvolume(&main.path);
    write_file(&main.path.join("ibdata1"), 50 << 20, 3).expect("50 MB");
    write(&main, "table", "main 1");

    let feature_id = id("shop/feature/services/db");
    let report = store.clone_volume(&main.id, &feature_id).expect("snapshot");
    assert_eq!(
        (report.method, report.bytes),
        (CloneMethod::BtrfsSnapshot, None)
    );
    assert_eq!(report.method.to_string(), "btrfs snapshot");
    let feature = store.get(&feature_id).expect("clone exists");
    assert_subvolume(&feature.path);
    let show = run("btrfs", &["subvolume", "show", path(&feature.path)]);
    let main_show = run("btrfs", &["subvolume", "show", path(&main.path)]);
    let main_uuid = main_show
        .lines()
        .find_map(|l| l.trim().strip_prefix("UUID:"))
        .expect("uuid")
        .trim();
    assert!(
        show.contains(&format!("Parent UUID: \t{main_uuid}")) || show.contains(main_uuid),
        "{show}"
    );
    assert_eq!(
        fs::read(feature.path.join("ibdata1")).ok(),
        fs::read(main.path.join("ibdata1")).ok()
    );

    write(&feature, "table", "feature 1");
    write(&main, "table", "main 2");
    assert_eq!(read(&main, "table"), "main 2");
    assert_eq!(read(&feature, "table"), "feature 1");

    write(&feature, "only-in-feature", "y");
    let report = store
        .replace_with_clone(&main.id, &feature_id)
        .expect("replace");
    assert_eq!(report.method, CloneMethod::BtrfsSnapshot);
    let feature = store.get(&feature_id).expect("still there");
    assert_subvolume(&feature.path);
    assert_eq!(read(&feature, "table"), "main 2");
    assert!(!feature.path.join("only-in-feature").exists());

    // A subvolume made inside a volume (by whatever runs in it) does not
    // stop the volume's deletion.
    run(
        "btrfs",
        &["subvolume", "create", path(&feature.path.join("nested"))],
    );
    store
        .delete(&feature_id)
        .expect("delete with a nested subvolume");
    assert!(store.get(&feature_id).is_none());
    assert!(!store.root().join("shop/feature").exists());
    let subvolumes = run("btrfs", &["subvolume", "list", path(store.root())]);
    assert!(!subvolumes.contains("feature"), "{subvolumes}");
    store.delete(&feature_id).expect("idempotent");
    assert_eq!(store.list(""), vec![main.id.clone()]);
    assert_no_leftovers(&store);

    store.close().expect("close");
    assert!(
        loop_devices_of(&image).is_empty(),
        "the loop device is detached"
    );
    let mounts = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!mounts.contains(path(&scratch.mount_point)), "unmounted");
}

#[test]
fn btrfs_pool_full_reports_enospc_and_stays_usable() {
    let scratch = Scratch::new();
    let store = loop_store(&scratch, 256);
    let filler = store.create(&id("p/main/services/db")).expect("create");

    let err = write_file(&filler.path.join("big"), 400 << 20, 5).expect_err("the pool is smaller");
    assert_eq!(err.kind(), io::ErrorKind::StorageFull, "{err}");

    // A clone in a full pool either works (a snapshot needs little room) or
    // fails without leaving anything named after its target.
    let target = id("p/feature/services/db");
    match store.clone_volume(&filler.id, &target) {
        Ok(report) => assert_eq!(report.method, CloneMethod::BtrfsSnapshot),
        Err(e) => {
            assert!(store.get(&target).is_none(), "{e}");
            assert!(!store.root().join("p/feature/services/db").exists(), "{e}");
        }
    }
    let err = store.create(&id("p/main/mounts/web")).and_then(|v| {
        write_file(&v.path.join("more"), 10 << 20, 6).map_err(|e| grove_volumes::VolumeError::Io {
            action: "writing".into(),
            path: v.path.clone(),
            source: e,
        })
    });
    if let Err(e) = err {
        assert!(
            e.is_no_space()
                || e.to_string().contains("No space left")
                || e.to_string().contains("os error 28"),
            "{e}"
        );
    }
    assert_no_leftovers(&store);

    // Make room: delete everything, wait for btrfs to free it, write again.
    for volume in store.list("") {
        store.delete(&volume).expect("delete");
    }
    run("btrfs", &["subvolume", "sync", path(store.root())]);
    let fresh = store
        .create(&id("p/main/services/db"))
        .expect("create after freeing");
    write_file(&fresh.path.join("data"), 50 << 20, 7).expect("room again");
    store
        .clone_volume(&fresh.id, &id("p/feature/services/db"))
        .expect("clone again");
    store.close().expect("close");
}

#[test]
fn btrfs_loop_reopen_after_close_mounts_the_same_image_with_the_data() {
    let scratch = Scratch::new();
    let store = loop_store(&scratch, 200);
    let volume = store.create(&id("p/main/services/db")).expect("create");
    write(&volume, "table", "kept");
    write_file(&volume.path.join("blob"), 5 << 20, 9).expect("blob");
    let blob = fs::read(volume.path.join("blob")).expect("read");
    store.close().expect("close");
    assert!(loop_devices_of(&scratch.image).is_empty());
    assert!(
        fs::read_dir(&scratch.mount_point)
            .expect("ls")
            .next()
            .is_none(),
        "the root is an empty mount point"
    );

    // Plain copies into the empty mount point would be hidden by the pool later.
    let err = VolumeStore::open(&scratch.mount_point, StorageSpec::Plain).expect_err("pool exists");
    assert!(
        err.to_string().contains("loop pool that is not mounted"),
        "{err}"
    );

    // After a restart (no flag): Auto finds the image.
    let store = VolumeStore::open(&scratch.mount_point, StorageSpec::Auto).expect("reopen");
    assert!(
        matches!(
            store.kind(),
            StorageKind::Btrfs {
                loop_image: Some(_)
            }
        ),
        "{}",
        store.kind()
    );
    let volume = store.get(&id("p/main/services/db")).expect("still there");
    assert_eq!(read(&volume, "table"), "kept");
    assert_eq!(fs::read(volume.path.join("blob")).expect("read"), blob);

    // A crash leaves the pool mounted: opening finds it so, and a bigger size grows it.
    drop(store);
    let store = loop_store(&scratch, 400);
    match store.kind() {
        StorageKind::Btrfs {
            loop_image: Some(image),
        } => assert_eq!(image.size_bytes, 400 * MIB),
        other => panic!("{other}"),
    }
    assert_eq!(
        loop_devices_of(&scratch.image).len(),
        1,
        "no second loop device"
    );
    let size = run("df", &["-B1", "--output=size", path(store.root())]);
    let size: u64 = size
        .lines()
        .nth(1)
        .expect("size")
        .trim()
        .parse()
        .expect("number");
    assert!(size > 300 * MIB, "grown to {size}");
    assert_eq!(
        read(
            &store.get(&id("p/main/services/db")).expect("there"),
            "table"
        ),
        "kept"
    );
    store.close().expect("close");
    assert!(loop_devices_of(&scratch.image).is_empty());
}

#[test]
fn data_dir_already_on_btrfs_uses_snapshots_or_reflinks() {
    let scratch = Scratch::new();
    scratch.mount_btrfs("200M");
    let btrfs =
        VolumeStore::open(&scratch.mount_point.join("snapshots"), StorageSpec::Auto).expect("open");
    assert_eq!(btrfs.kind(), &StorageKind::Btrfs { loop_image: None });
    let plain =
        VolumeStore::open(&scratch.mount_point.join("copies"), StorageSpec::Plain).expect("open");
    assert_eq!(
        plain.kind(),
        &StorageKind::Plain {
            reflink: true,
            filesystem: "btrfs".into()
        }
    );
    assert_eq!(plain.kind().to_string(), "reflink copy on btrfs");

    for store in [&btrfs, &plain] {
        let source = store.create(&id("p/main/db")).expect("create");
        write_file(&source.path.join("data"), 20 << 20, 4).expect("write");
        let report = store
            .clone_volume(&source.id, &id("p/feature/db"))
            .expect("clone");
        assert_eq!(report.method, store.kind().clone_method());
        let clone = store.get(&id("p/feature/db")).expect("clone");
        write(&clone, "data", "changed");
        assert_eq!(
            fs::metadata(source.path.join("data")).expect("stat").len(),
            20 << 20
        );
        store.delete(&clone.id).expect("delete");
    }
    assert_eq!(btrfs.kind().clone_method(), CloneMethod::BtrfsSnapshot);
    assert_eq!(plain.kind().clone_method(), CloneMethod::ReflinkCopy);
    drop(btrfs);
    drop(plain);

    // The same directory opened with btrfs: a plain volume made earlier is
    // copied into a subvolume once, and snapshotted from then on.
    let store =
        VolumeStore::open(&scratch.mount_point.join("copies"), StorageSpec::Btrfs).expect("open");
    let report = store
        .clone_volume(&id("p/main/db"), &id("p/other/db"))
        .expect("clone");
    assert_eq!(report.method, CloneMethod::ReflinkCopy);
    assert_subvolume(&store.root().join("p/other/db"));
    let report = store
        .clone_volume(&id("p/other/db"), &id("p/third/db"))
        .expect("clone");
    assert_eq!(report.method, CloneMethod::BtrfsSnapshot);
}

#[test]
fn a_capped_volume_refuses_writes_past_its_cap_and_its_snapshot_gets_one_again() {
    let scratch = Scratch::new();
    let store = loop_store(&scratch, 600);
    let main = store.create(&id("shop/main")).expect("create");
    assert!(store.set_cap(&main.id, Some(64 * MIB)).expect("cap"));
    write_file(&main.path.join("a"), 40 << 20, 1).expect("40 MB fit under 64 MB");
    run("sync", &[]);
    let err = write_file(&main.path.join("b"), 80 << 20, 2).expect_err("past the cap");
    assert_eq!(err.raw_os_error(), Some(libc_edquot()), "{err}");

    // A snapshot shares the parent's extents: capped again, it holds the same.
    fs::remove_file(main.path.join("b")).expect("rm");
    run("sync", &[]);
    store
        .clone_volume(&main.id, &id("shop/feature"))
        .expect("snapshot");
    let child = store.get(&id("shop/feature")).expect("the clone");
    assert!(store.set_cap(&child.id, Some(64 * MIB)).expect("cap"));
    assert_eq!(
        fs::metadata(child.path.join("a")).expect("a").len(),
        40 << 20
    );
    let err = write_file(&child.path.join("b"), 80 << 20, 3).expect_err("past the cap");
    assert_eq!(err.raw_os_error(), Some(libc_edquot()), "{err}");
    // Lifted: the write goes through.
    fs::remove_file(child.path.join("b")).expect("rm");
    assert!(store.set_cap(&child.id, None).expect("uncap"));
    write_file(&child.path.join("b"), 80 << 20, 3).expect("no cap");
}

/// EDQUOT on Linux.
fn libc_edquot() -> i32 {
    122
}
