use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use grove_volumes::{Volume, VolumeStore};

pub fn id(text: &str) -> grove_volumes::VolumeId {
    text.parse().expect("valid volume id")
}

/// Runs a tool that must succeed and returns its stdout.
pub fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().expect(program);
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn is_mount_point(path: &Path) -> bool {
    let Ok(path) = fs::canonicalize(path) else {
        return false;
    };
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let wanted = path.to_string_lossy().replace(' ', "\\040");
    mountinfo
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(wanted.as_str()))
}

/// The loop devices backed by `image`, and only those.
pub fn loop_devices_of(image: &Path) -> Vec<String> {
    let out = Command::new("losetup")
        .arg("--associated")
        .arg(image)
        .output()
        .expect("losetup");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_once(": ").map(|(dev, _)| dev.to_owned()))
        .collect()
}

/// A temporary directory whose mounts and loop devices are taken down on
/// drop: `mount_point` is unmounted if something is mounted there, the loop
/// devices of `image` are detached, then everything is deleted.
pub struct Scratch {
    /// Deleted after the guard has unmounted and detached everything in it.
    _dir: tempfile::TempDir,
    /// Where the store's root (or a manually mounted pool) is.
    pub mount_point: PathBuf,
    /// `<mount_point>.img`, the loop pool's image.
    pub image: PathBuf,
}

impl Scratch {
    pub fn new() -> Scratch {
        let dir = tempfile::tempdir().expect("tempdir");
        let mount_point = dir.path().join("volumes");
        let image = dir.path().join("volumes.img");
        Scratch {
            _dir: dir,
            mount_point,
            image,
        }
    }

    /// Formats and mounts a btrfs image at `mount_point` ourselves: a data
    /// dir that is "already on btrfs".
    pub fn mount_btrfs(&self, size: &str) {
        run("truncate", &["-s", size, path(&self.image)]);
        run("mkfs.btrfs", &["-q", path(&self.image)]);
        let device = run("losetup", &["--find", "--show", path(&self.image)]);
        fs::create_dir_all(&self.mount_point).expect("mkdir");
        run("mount", &[device.trim(), path(&self.mount_point)]);
    }

    /// Mounts a tmpfs of `size` at `mount_point`: a disk that fills up.
    pub fn mount_tmpfs(&self, size: &str) {
        fs::create_dir_all(&self.mount_point).expect("mkdir");
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                path(&self.mount_point),
            ],
        );
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if is_mount_point(&self.mount_point) {
            let ok = Command::new("umount")
                .arg(&self.mount_point)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                let _ = Command::new("umount")
                    .arg("--lazy")
                    .arg(&self.mount_point)
                    .status();
            }
        }
        if self.image.exists() {
            for device in loop_devices_of(&self.image) {
                let _ = Command::new("losetup")
                    .arg("--detach")
                    .arg(&device)
                    .status();
            }
            let _ = fs::remove_file(&self.image);
        }
    }
}

pub fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Writes `len` bytes of incompressible-looking data, every 4 KiB page
/// different (one pseudo-random MiB, stamped per page: cheap in a debug build).
pub fn write_file(path: &Path, len: usize, seed: u64) -> io::Result<()> {
    let mut file = fs::File::create(path)?;
    let mut state = seed | 1;
    let mut block = vec![0u8; 1 << 20];
    for chunk in block.chunks_exact_mut(8) {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes());
    }
    let mut left = len;
    let mut page_number = seed << 32;
    while left > 0 {
        for page in block.chunks_exact_mut(4096) {
            page_number += 1;
            page[..8].copy_from_slice(&page_number.to_le_bytes());
        }
        let n = left.min(block.len());
        file.write_all(&block[..n])?;
        left -= n;
    }
    file.sync_all()
}

pub fn read(volume: &Volume, file: &str) -> String {
    fs::read_to_string(volume.path.join(file))
        .unwrap_or_else(|e| panic!("{}/{file}: {e}", volume.id))
}

pub fn write(volume: &Volume, file: &str, text: &str) {
    fs::write(volume.path.join(file), text).unwrap_or_else(|e| panic!("{}/{file}: {e}", volume.id));
}

/// Nothing half-done is left in the store's work directory.
pub fn assert_no_leftovers(store: &VolumeStore) {
    let leftovers: Vec<_> = fs::read_dir(store.root().join(".tmp"))
        .expect(".tmp")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(leftovers.is_empty(), "left in .tmp: {leftovers:?}");
}

/// Unmounts what a test mounted at `0` when dropped.
pub struct Unmount(pub PathBuf);

impl Unmount {
    pub fn tmpfs(at: &Path) -> Unmount {
        run(
            "mount",
            &["-t", "tmpfs", "-o", "size=1m", "tmpfs", path(at)],
        );
        Unmount(at.to_owned())
    }
}

impl Drop for Unmount {
    fn drop(&mut self) {
        if is_mount_point(&self.0) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
}
