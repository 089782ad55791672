//! Clone times by volume size: printed, never asserted (see the output with
//! `cargo nextest run -p grove-volumes --no-capture clone_times`). The big
//! size is `GROVE_VOLUMES_BENCH_MB` (default 500). The plain copy reads a
//! source just written, from the page cache: a cold cache is slower.

use std::time::Duration;

use grove_volumes::{StorageSpec, VolumeStore};

use crate::support::{Scratch, id, run, write_file};

const SMALL_MB: usize = 10;

fn time_clones(store: &VolumeStore, big_mb: usize) -> (Duration, Duration) {
    let mut times = Vec::new();
    for (name, mb) in [("small", SMALL_MB), ("big", big_mb)] {
        let source = store
            .create(&id(&format!("bench/{name}/db")))
            .expect("create");
        write_file(&source.path.join("ibdata1"), mb << 20, mb as u64).expect("write");
        // Time the clone, not the writeback of what we just wrote.
        run("sync", &[]);
        let report = store
            .clone_volume(&source.id, &id(&format!("bench/{name}-clone/db")))
            .expect("clone");
        times.push(report.elapsed);
    }
    (times[0], times[1])
}

fn print_row(label: &str, big_mb: usize, (small, big): (Duration, Duration)) {
    eprintln!(
        "clone {label:<22} {SMALL_MB:>4} MB: {:>9.3} ms   {big_mb:>4} MB: {:>9.3} ms   ratio {:.2}",
        small.as_secs_f64() * 1e3,
        big.as_secs_f64() * 1e3,
        big.as_secs_f64() / small.as_secs_f64(),
    );
}

#[test]
fn clone_times_are_printed() {
    let big_mb: usize = std::env::var("GROVE_VOLUMES_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let pool_mb = 3 * (big_mb + SMALL_MB) + 512;

    let pool = Scratch::new();
    pool.mount_btrfs(&format!("{pool_mb}M"));
    let btrfs =
        VolumeStore::open(&pool.mount_point.join("snapshots"), StorageSpec::Btrfs).expect("open");
    let reflink =
        VolumeStore::open(&pool.mount_point.join("copies"), StorageSpec::Plain).expect("open");
    let ext4 = Scratch::new();
    let plain = VolumeStore::open(&ext4.mount_point, StorageSpec::Plain).expect("open");

    for (label, store) in [
        ("btrfs snapshot", &btrfs),
        ("reflink copy (btrfs)", &reflink),
        ("plain copy (ext4)", &plain),
    ] {
        assert_eq!(
            store.kind().clone_method().to_string(),
            label.split(" (").next().unwrap_or(label)
        );
        print_row(label, big_mb, time_clones(store, big_mb));
    }
}
