//! The loop-backed btrfs pool: a sparse image file next to the root,
//! formatted once, attached to a loop device and mounted at the root.
//! Every step checks what is already there first, so opening again after a
//! restart (or a crash half-way) re-attaches and re-mounts the same image.

use std::fs;
use std::path::{Path, PathBuf};

use crate::spec::{LoopImage, format_size};
use crate::{VolumeError, cmd};

/// `<data dir>/volumes` → `<data dir>/volumes.img`.
pub(crate) fn image_path(root: &Path) -> PathBuf {
    let mut name = root.file_name().unwrap_or_default().to_os_string();
    name.push(".img");
    root.with_file_name(name)
}

fn pool_error(image: &Path, reason: impl Into<String>) -> VolumeError {
    VolumeError::Pool {
        image: image.to_owned(),
        reason: reason.into(),
    }
}

/// Creates the image if there is none (of `size_bytes`; `None` only opens an
/// existing one), grows it when `size_bytes` asks for more, attaches it and
/// mounts it at `root` unless it is mounted there already.
pub(crate) fn open(root: &Path, size_bytes: Option<u64>) -> Result<LoopImage, VolumeError> {
    let image = image_path(root);
    let action = format!("opening btrfs loop pool {}", image.display());
    if !image.exists() {
        let Some(size) = size_bytes else {
            return Err(pool_error(&image, "the image does not exist"));
        };
        create_image(&image, size, &action)?;
    }
    let image = fs::canonicalize(&image).map_err(|e| VolumeError::io(&action, &image, e))?;
    let mut current_size = fs::metadata(&image)
        .map_err(|e| VolumeError::io(&action, &image, e))?
        .len();
    let grow = size_bytes.is_some_and(|wanted| wanted > current_size);
    if let Some(wanted) = size_bytes.filter(|&wanted| wanted < current_size) {
        tracing::warn!(
            image = %image.display(),
            "the loop pool is {} and is not shrunk to the {} asked for",
            format_size(current_size),
            format_size(wanted),
        );
    }
    if let (true, Some(wanted)) = (grow, size_bytes) {
        let file = fs::OpenOptions::new()
            .write(true)
            .open(&image)
            .map_err(|e| VolumeError::io(&action, &image, e))?;
        file.set_len(wanted)
            .map_err(|e| VolumeError::io(&action, &image, e))?;
        current_size = wanted;
    }

    fs::create_dir_all(root).map_err(|e| VolumeError::io(&action, root, e))?;
    let root = fs::canonicalize(root).map_err(|e| VolumeError::io(&action, root, e))?;
    let devices = loop_devices(&image)?;
    match mount_at(&root)? {
        Some(mount) if mount.fstype == "btrfs" && devices.contains(&mount.source) => {
            tracing::info!(image = %image.display(), root = %root.display(), "loop pool already mounted");
            if grow {
                run_grow(&root, &mount.source, &action)?;
            }
        }
        Some(mount) => {
            return Err(pool_error(
                &image,
                format!(
                    "{} is already a mount point of {} ({}), not of this image",
                    root.display(),
                    mount.source,
                    mount.fstype
                ),
            ));
        }
        None => {
            let (device, attached) = match devices.first() {
                Some(device) => (device.clone(), false),
                None => {
                    let out = cmd::run(
                        &action,
                        "losetup",
                        ["--find".as_ref(), "--show".as_ref(), image.as_os_str()],
                    )?;
                    (out.trim().to_owned(), true)
                }
            };
            let mounted = cmd::run(
                &action,
                "mount",
                [
                    "-t".as_ref(),
                    "btrfs".as_ref(),
                    "-o".as_ref(),
                    "noatime".as_ref(),
                    device.as_ref(),
                    root.as_os_str(),
                ],
            );
            if let Err(e) = mounted {
                if attached {
                    let _ = cmd::run(&action, "losetup", ["--detach", device.as_str()]);
                }
                return Err(e);
            }
            tracing::info!(image = %image.display(), %device, root = %root.display(), "loop pool mounted");
            if grow {
                run_grow(&root, &device, &action)?;
            }
        }
    }
    Ok(LoopImage {
        path: image,
        size_bytes: current_size,
    })
}

/// Tells the loop device and then btrfs that the image file got bigger.
fn run_grow(root: &Path, device: &str, action: &str) -> Result<(), VolumeError> {
    cmd::run(action, "losetup", ["--set-capacity", device])?;
    cmd::run(
        action,
        "btrfs",
        [
            "filesystem".as_ref(),
            "resize".as_ref(),
            "max".as_ref(),
            root.as_os_str(),
        ],
    )?;
    Ok(())
}

/// Formats into a temporary file and renames it into place, so that an image
/// file that exists is always a whole filesystem.
fn create_image(image: &Path, size: u64, action: &str) -> Result<(), VolumeError> {
    let mut new_name = image.file_name().unwrap_or_default().to_os_string();
    new_name.push(".new");
    let new = image.with_file_name(new_name);
    if let Some(parent) = image.parent() {
        fs::create_dir_all(parent).map_err(|e| VolumeError::io(action, parent, e))?;
    }
    let result = (|| {
        let file = fs::File::create(&new).map_err(|e| VolumeError::io(action, &new, e))?;
        // Sparse: the pool takes disk space as it fills, not up front.
        file.set_len(size)
            .map_err(|e| VolumeError::io(action, &new, e))?;
        drop(file);
        cmd::run(
            action,
            "mkfs.btrfs",
            [
                "--quiet".as_ref(),
                "--label".as_ref(),
                "grove-volumes".as_ref(),
                new.as_os_str(),
            ],
        )?;
        fs::rename(&new, image).map_err(|e| VolumeError::io(action, image, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&new);
    } else {
        tracing::info!(image = %image.display(), size = %format_size(size), "created btrfs loop pool");
    }
    result
}

/// Unmounts the pool from `root` (when it is mounted from this image) and
/// detaches every loop device backed by the image, and only those.
pub(crate) fn close(root: &Path, image: &Path) -> Result<(), VolumeError> {
    let action = format!("closing btrfs loop pool {}", image.display());
    let devices = loop_devices(image)?;
    if let Some(mount) = mount_at(root)?
        && devices.contains(&mount.source)
    {
        cmd::run(&action, "umount", [root])?;
    }
    for device in devices {
        cmd::run(&action, "losetup", ["--detach", device.as_str()])?;
    }
    Ok(())
}

/// The loop devices attached to `image` (`losetup --associated`).
pub(crate) fn loop_devices(image: &Path) -> Result<Vec<String>, VolumeError> {
    let action = format!("looking up the loop devices of {}", image.display());
    let out = cmd::run(
        &action,
        "losetup",
        ["--associated".as_ref(), image.as_os_str()],
    )?;
    // `/dev/loop3: [2049]:1234 (/data/volumes.img)`
    Ok(out
        .lines()
        .filter_map(|line| line.split_once(": ").map(|(device, _)| device.to_owned()))
        .collect())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    pub(crate) mount_point: PathBuf,
    pub(crate) fstype: String,
    pub(crate) source: String,
}

/// The mount whose mount point is exactly `path` (the topmost one, if several
/// are stacked there).
pub(crate) fn mount_at(path: &Path) -> Result<Option<Mount>, VolumeError> {
    Ok(mounts()?.into_iter().rev().find(|m| m.mount_point == path))
}

/// The mount that holds `path`: the longest mount point above it.
pub(crate) fn mount_of(path: &Path) -> Result<Option<Mount>, VolumeError> {
    // max_by_key keeps the last of equals: the topmost of stacked mounts.
    Ok(mounts()?
        .into_iter()
        .filter(|m| path.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.as_os_str().len()))
}

/// The mounts at or below `path`.
pub(crate) fn mounts_below(path: &Path) -> Result<Vec<Mount>, VolumeError> {
    Ok(mounts()?
        .into_iter()
        .filter(|m| m.mount_point.starts_with(path))
        .collect())
}

fn mounts() -> Result<Vec<Mount>, VolumeError> {
    let path = "/proc/self/mountinfo";
    let text = fs::read_to_string(path)
        .map_err(|e| VolumeError::io("reading the mount table", path, e))?;
    Ok(parse_mountinfo(&text))
}

/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let mount_point = before.split(' ').nth(4)?;
            let mut after = after.split(' ');
            let fstype = after.next()?;
            let source = after.next()?;
            Some(Mount {
                mount_point: PathBuf::from(unescape(mount_point)),
                fstype: unescape(fstype),
                source: unescape(source),
            })
        })
        .collect()
}

/// The kernel writes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value = (bytes[i + 1] - b'0') as u32 * 64
                + (bytes[i + 2] - b'0') as u32 * 8
                + (bytes[i + 3] - b'0') as u32;
            out.push(value as u8);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_next_to_root() {
        assert_eq!(
            image_path(Path::new("/srv/grove/volumes")),
            Path::new("/srv/grove/volumes.img")
        );
    }

    #[test]
    fn mountinfo() {
        let text = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
97 22 7:0 / /srv/my\\040data/volumes rw,noatime shared:50 - btrfs /dev/loop0 rw,space_cache=v2,subvolid=5,subvol=/
98 22 0:50 / /tmp/t rw master:3 - tmpfs tmpfs rw,size=1024k
garbage line
";
        let mounts = parse_mountinfo(text);
        assert_eq!(mounts.len(), 3);
        assert_eq!(
            mounts[1],
            Mount {
                mount_point: "/srv/my data/volumes".into(),
                fstype: "btrfs".into(),
                source: "/dev/loop0".into(),
            }
        );
        assert_eq!(unescape("a\\134b\\011"), "a\\b\t");
        assert_eq!(unescape("trailing\\04"), "trailing\\04");
    }
}
