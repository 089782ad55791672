use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rustix::fs::{CWD, FlockOperation, RenameFlags};

use crate::spec::{CloneMethod, CloneReport, StorageKind, StorageSpec};
use crate::{VolumeError, VolumeId, cmd, pool};

/// Work in progress (clones not yet published, volumes being deleted). Not
/// a possible id (ids start with a letter or digit), and emptied on open.
const TMP_DIR: &str = ".tmp";
const LOCK_FILE: &str = ".lock";
const BTRFS_SUPER_MAGIC: u64 = 0x9123_683E;
/// Inode number of the root directory of every btrfs subvolume.
const BTRFS_SUBVOLUME_ROOT_INO: u64 = 256;

/// A volume: a directory (a subvolume on btrfs) that a service or an app
/// mount gets bind-mounted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    pub id: VolumeId,
    pub path: PathBuf,
}

/// The volumes below one root directory. See the crate documentation.
#[derive(Debug)]
pub struct VolumeStore {
    root: PathBuf,
    kind: StorageKind,
    /// The root is on btrfs (also with `--storage plain`): subvolumes may
    /// exist and have to be deleted as such.
    on_btrfs: bool,
    /// Held (flock) while the store is open: one store per root.
    lock_file: Option<fs::File>,
    /// Serialises changes to the names (publish, swap, delete, pruning empty
    /// directories); copies and snapshots run outside it.
    namespace: Mutex<()>,
    temp_counter: AtomicU64,
    /// `btrfs quota enable` ran (once per open store, before the first cap).
    quotas_enabled: std::sync::atomic::AtomicBool,
}

impl VolumeStore {
    /// Opens (creating if needed) the store rooted at `root`, e.g.
    /// `<data dir>/volumes`.
    ///
    /// - `BtrfsLoop`: creates once a sparse image `<root>.img` of that size
    ///   and formats it, attaches it to a loop device and mounts it at `root`;
    ///   later opens re-attach and re-mount it, or find it mounted already. A
    ///   bigger size grows the pool; a smaller one is ignored (with a warning).
    /// - `Auto`: the loop pool if `<root>.img` exists (a restart without the
    ///   flag must not fall back to an empty directory), else btrfs if `root`
    ///   is on btrfs, else plain copies.
    /// - `Btrfs`: `root` must be on btrfs.
    /// - `Plain`: copies (reflink when the filesystem can) whatever the filesystem.
    ///
    /// Leftovers of operations interrupted by a crash are removed.
    pub fn open(root: &Path, spec: StorageSpec) -> Result<VolumeStore, VolumeError> {
        let action = format!("opening volume store at {}", root.display());
        let image = pool::image_path(root);
        let loop_image = match spec {
            StorageSpec::BtrfsLoop { size_bytes } => Some(pool::open(root, Some(size_bytes))?),
            StorageSpec::Auto if image.exists() => Some(pool::open(root, None)?),
            // Volumes made now would be hidden when the pool is mounted again.
            StorageSpec::Plain | StorageSpec::Btrfs
                if image.exists()
                    && fs::canonicalize(root)
                        .ok()
                        .and_then(|root| pool::mount_at(&root).ok().flatten())
                        .is_none() =>
            {
                return Err(VolumeError::Pool {
                    image,
                    reason: format!(
                        "the data dir has a loop pool that is not mounted at {}; \
                         open it with --storage auto or btrfs-loop:<size>",
                        root.display()
                    ),
                });
            }
            _ => None,
        };
        fs::create_dir_all(root).map_err(|e| VolumeError::io(&action, root, e))?;
        let root = fs::canonicalize(root).map_err(|e| VolumeError::io(&action, root, e))?;
        let statfs =
            rustix::fs::statfs(&root).map_err(|e| VolumeError::io(&action, &root, e.into()))?;
        #[allow(clippy::unnecessary_cast)] // f_type's integer type differs between architectures
        let on_btrfs = statfs.f_type as u64 == BTRFS_SUPER_MAGIC;
        let filesystem = || {
            pool::mount_of(&root)
                .ok()
                .flatten()
                .map_or_else(|| "an unknown filesystem".to_owned(), |m| m.fstype)
        };

        let lock_file = lock(&root, &action)?;
        let temp = root.join(TMP_DIR);
        fs::create_dir_all(&temp).map_err(|e| VolumeError::io(&action, &temp, e))?;
        let mut store = VolumeStore {
            kind: StorageKind::Plain {
                reflink: false,
                filesystem: String::new(),
            },
            root: root.clone(),
            on_btrfs,
            lock_file: Some(lock_file),
            namespace: Mutex::new(()),
            temp_counter: AtomicU64::new(0),
            quotas_enabled: std::sync::atomic::AtomicBool::new(false),
        };
        store.kind = match (spec, loop_image) {
            (_, Some(image)) if on_btrfs => StorageKind::Btrfs {
                loop_image: Some(image),
            },
            (StorageSpec::Btrfs | StorageSpec::Auto, None) if on_btrfs => {
                StorageKind::Btrfs { loop_image: None }
            }
            (StorageSpec::Btrfs | StorageSpec::BtrfsLoop { .. }, _)
            | (StorageSpec::Auto, Some(_)) => {
                return Err(VolumeError::NotBtrfs {
                    filesystem: filesystem(),
                    root,
                });
            }
            (StorageSpec::Auto | StorageSpec::Plain, _) => StorageKind::Plain {
                reflink: store.probe_reflink()?,
                filesystem: filesystem(),
            },
        };
        store.remove_leftovers();
        tracing::info!(root = %store.root.display(), kind = %store.kind, "volume store open");
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// What clones really are; its `Display` is meant for the activity log
    /// (`btrfs (loop image /srv/grove/volumes.img, 20 GiB)`,
    /// `plain copy on ext4 (no reflink: a clone copies every byte)`).
    pub fn kind(&self) -> &StorageKind {
        &self.kind
    }

    /// Creates an empty volume; returns the existing one if it exists.
    pub fn create(&self, id: &VolumeId) -> Result<Volume, VolumeError> {
        let action = format!("creating volume {id}");
        let path = self.path_of(id);
        let _names = self.lock_names();
        self.check_placement(id)?;
        if self.is_volume(id) {
            return Ok(Volume {
                id: id.clone(),
                path,
            });
        }
        let marker = self.marker_of(id);
        self.make_parents(id, &action)?;
        write_marker(&marker, &action)?;
        let made = match self.kind {
            StorageKind::Btrfs { .. } => cmd::run(
                &action,
                "btrfs",
                ["subvolume".as_ref(), "create".as_ref(), path.as_os_str()],
            )
            .map(drop),
            StorageKind::Plain { .. } => {
                fs::create_dir(&path).map_err(|e| VolumeError::io(&action, &path, e))
            }
        };
        if let Err(e) = made {
            let _ = fs::remove_file(&marker);
            return Err(e);
        }
        Ok(Volume {
            id: id.clone(),
            path,
        })
    }

    /// Caps what the volume holds at `bytes` (`None` lifts the cap): a btrfs
    /// qgroup limit on its subvolume, so that a write past it fails with
    /// EDQUOT ("Disk quota exceeded"). The limit counts what the volume
    /// references, shared extents of a snapshot included, so a clone's cap
    /// means the same as its source's; a clone starts without one (set it
    /// again). Quotas are enabled on the filesystem before the first cap.
    /// Returns `false` where volumes are plain directories, which cannot be
    /// capped.
    pub fn set_cap(&self, id: &VolumeId, bytes: Option<u64>) -> Result<bool, VolumeError> {
        if !matches!(self.kind, StorageKind::Btrfs { .. }) {
            return Ok(false);
        }
        let path = self.path_of(id);
        let action = format!("capping volume {id}");
        if !self.is_volume(id) {
            return Err(VolumeError::NotFound { id: id.clone() });
        }
        if !self
            .quotas_enabled
            .load(std::sync::atomic::Ordering::Acquire)
        {
            cmd::run(
                &action,
                "btrfs",
                ["quota".as_ref(), "enable".as_ref(), self.root.as_os_str()],
            )?;
            self.quotas_enabled
                .store(true, std::sync::atomic::Ordering::Release);
        }
        let limit = bytes.map_or_else(|| "none".to_owned(), |b| b.to_string());
        cmd::run(
            &action,
            "btrfs",
            [
                "qgroup".as_ref(),
                "limit".as_ref(),
                limit.as_ref(),
                path.as_os_str(),
            ],
        )?;
        Ok(true)
    }

    /// The volume, if it exists.
    pub fn get(&self, id: &VolumeId) -> Option<Volume> {
        self.is_volume(id).then(|| Volume {
            id: id.clone(),
            path: self.path_of(id),
        })
    }

    /// Clones `source` as a new volume `target`: a snapshot on btrfs, else
    /// `cp -a --reflink=auto`. The clone is made under a temporary name and
    /// renamed into place, so on any failure (a full disk half-way, say)
    /// nothing named `target` exists and `source` is untouched. Refuses if
    /// `target` exists.
    ///
    /// The clone is as consistent as `source` is while it runs: stop (or
    /// flush and lock) whatever writes to it first.
    pub fn clone_volume(
        &self,
        source: &VolumeId,
        target: &VolumeId,
    ) -> Result<CloneReport, VolumeError> {
        let action = format!("cloning volume {source} to {target}");
        let started = Instant::now();
        if !self.is_volume(source) {
            return Err(VolumeError::NotFound { id: source.clone() });
        }
        // Checked before the copy, to fail fast, and again before publishing.
        if self.is_volume(target) {
            return Err(VolumeError::AlreadyExists { id: target.clone() });
        }
        self.check_placement(target)?;
        let temp = self.temp_path("clone");
        let (method, bytes) = self.copy(source, &temp, &action)?;
        let published = {
            let _names = self.lock_names();
            if self.is_volume(target) {
                Err(VolumeError::AlreadyExists { id: target.clone() })
            } else {
                self.check_placement(target)
                    .and_then(|()| self.publish(&temp, target, &action))
            }
        };
        if let Err(e) = published {
            self.discard(&temp);
            return Err(e);
        }
        let report = CloneReport {
            method,
            bytes,
            elapsed: started.elapsed(),
        };
        tracing::info!(%source, %target, %report, "volume cloned");
        Ok(report)
    }

    /// Replaces the contents of `target` with a clone of `source` (sync
    /// data): the clone is made under a temporary name and then swapped in
    /// atomically, and the old contents are deleted afterwards. If the clone
    /// fails, `target` is untouched. A missing `target` is simply created.
    pub fn replace_with_clone(
        &self,
        source: &VolumeId,
        target: &VolumeId,
    ) -> Result<CloneReport, VolumeError> {
        let action = format!("replacing volume {target} with a clone of {source}");
        let started = Instant::now();
        if source == target {
            return Err(VolumeError::Conflict {
                id: target.clone(),
                reason: "a volume cannot be replaced with a clone of itself".into(),
            });
        }
        if !self.is_volume(source) {
            return Err(VolumeError::NotFound { id: source.clone() });
        }
        self.check_placement(target)?;
        if self.is_volume(target) {
            // Fail before the copy; checked again before the swap.
            self.check_not_mounted(target)?;
        }
        let temp = self.temp_path("replace");
        let (method, bytes) = self.copy(source, &temp, &action)?;
        let swapped = {
            let _names = self.lock_names();
            match self.check_placement(target) {
                Err(e) => Err(e),
                Ok(()) if !self.is_volume(target) => {
                    self.publish(&temp, target, &action).map(|()| false)
                }
                Ok(()) => self
                    .check_not_mounted(target)
                    .and_then(|()| self.swap(&temp, target, &action))
                    .map(|()| true),
            }
        };
        match swapped {
            Err(e) => {
                self.discard(&temp);
                return Err(e);
            }
            // `temp` now holds the old contents.
            Ok(true) => self.discard(&temp),
            Ok(false) => {}
        }
        let report = CloneReport {
            method,
            bytes,
            elapsed: started.elapsed(),
        };
        tracing::info!(%source, %target, %report, "volume replaced with a clone");
        Ok(report)
    }

    /// Deletes the volume (on btrfs with any subvolume created inside it).
    /// Deleting a missing volume succeeds. Directories left empty above it
    /// are removed.
    pub fn delete(&self, id: &VolumeId) -> Result<(), VolumeError> {
        let action = format!("deleting volume {id}");
        let path = self.path_of(id);
        let marker = self.marker_of(id);
        let trash = self.temp_path("delete");
        {
            let _names = self.lock_names();
            if !self.is_volume(id) {
                // Inside a volume, or a directory of volumes: not ours to delete.
                self.check_placement(id)?;
                // A marker whose directory is gone: the end of an interrupted create.
                let _ = fs::remove_file(&marker);
                return Ok(());
            }
            self.check_not_mounted(id)?;
            // The name goes first, atomically; the contents follow.
            fs::rename(&path, &trash).map_err(|e| VolumeError::io(&action, &path, e))?;
            fs::remove_file(&marker).map_err(|e| VolumeError::io(&action, &marker, e))?;
            self.prune_parents(id);
        }
        self.remove_tree(&trash, &action)
    }

    /// The volumes whose id starts with `prefix` (`""` for all,
    /// `"shop/main/"` for one environment's), sorted.
    pub fn list(&self, prefix: &str) -> Vec<VolumeId> {
        // Start at the deepest directory the prefix names, when it is one.
        let start = match prefix.rsplit_once('/') {
            Some((dir, _)) if VolumeId::new(dir).is_ok() => dir.to_owned(),
            _ => String::new(),
        };
        let mut found = Vec::new();
        self.collect(&start, &mut found);
        found.retain(|id| id.as_str().starts_with(prefix));
        found.sort();
        found
    }

    /// Unmounts the loop pool and detaches its loop device (clean shutdown,
    /// tests); for other stores it only releases the root.
    pub fn close(mut self) -> Result<(), VolumeError> {
        // The lock file is inside the mount: it must be closed to unmount.
        drop(self.lock_file.take());
        if let StorageKind::Btrfs {
            loop_image: Some(image),
        } = &self.kind
        {
            pool::close(&self.root, &image.path)?;
        }
        Ok(())
    }

    // ---- names and layout ----

    fn path_of(&self, id: &VolumeId) -> PathBuf {
        self.root.join(id.as_str())
    }

    /// `a/b/c` → `<root>/a/b/.c.volume`. A volume is a directory with its
    /// marker beside it, in a directory that is not a volume and so is never
    /// seen by a sandbox: no app can make its volume look like something
    /// else. Markers tell a volume from a directory of volumes on every
    /// filesystem.
    fn marker_of(&self, id: &VolumeId) -> PathBuf {
        let path = self.path_of(id);
        path.with_file_name(format!(".{}.volume", id.leaf()))
    }

    /// Its directory and marker exist, and no directory above it is a
    /// volume (inside a volume, its user could fake a marker).
    fn is_volume(&self, id: &VolumeId) -> bool {
        self.has_marker_and_dir(id)
            && !id
                .ancestors()
                .any(|ancestor| VolumeId::new(ancestor).is_ok_and(|a| self.has_marker_and_dir(&a)))
    }

    fn has_marker_and_dir(&self, id: &VolumeId) -> bool {
        fs::symlink_metadata(self.path_of(id)).is_ok_and(|m| m.is_dir())
            && fs::symlink_metadata(self.marker_of(id)).is_ok_and(|m| m.is_file())
    }

    /// A volume can't be inside another volume (a snapshot would not contain
    /// it), and a directory of volumes can't become a volume.
    fn check_placement(&self, id: &VolumeId) -> Result<(), VolumeError> {
        for ancestor in id.ancestors() {
            let ancestor_id = VolumeId::new(ancestor)?;
            let path = self.path_of(&ancestor_id);
            if self.is_volume(&ancestor_id) {
                return Err(VolumeError::Conflict {
                    id: id.clone(),
                    reason: format!("{ancestor} is a volume, and volumes do not nest"),
                });
            }
            if fs::symlink_metadata(&path).is_ok_and(|m| !m.is_dir()) {
                return Err(VolumeError::Conflict {
                    id: id.clone(),
                    reason: format!("{} is not a directory", path.display()),
                });
            }
        }
        let path = self.path_of(id);
        if !self.is_volume(id) && fs::symlink_metadata(&path).is_ok() {
            return Err(VolumeError::Conflict {
                id: id.clone(),
                reason: format!(
                    "{} exists and is not a volume (a directory of other volumes?)",
                    path.display()
                ),
            });
        }
        Ok(())
    }

    /// Refuses to move or delete a volume with something mounted in it
    /// (in this mount namespace): the swap would leave the mount in the old
    /// copy, and deleting would go through the mount into another filesystem.
    fn check_not_mounted(&self, id: &VolumeId) -> Result<(), VolumeError> {
        let path = self.path_of(id);
        match pool::mounts_below(&path) {
            Ok(mounts) if mounts.is_empty() => Ok(()),
            Ok(mounts) => Err(VolumeError::Busy {
                id: id.clone(),
                mount_point: mounts[0].mount_point.clone(),
            }),
            Err(e) => Err(e),
        }
    }

    fn make_parents(&self, id: &VolumeId, action: &str) -> Result<(), VolumeError> {
        let parent = self
            .path_of(id)
            .parent()
            .map(Path::to_owned)
            .unwrap_or_else(|| self.root.clone());
        fs::create_dir_all(&parent).map_err(|e| VolumeError::io(action, &parent, e))
    }

    /// Removes the directories above a deleted volume that are now empty.
    fn prune_parents(&self, id: &VolumeId) {
        for ancestor in id.ancestors().collect::<Vec<_>>().into_iter().rev() {
            if fs::remove_dir(self.root.join(ancestor)).is_err() {
                break;
            }
        }
    }

    fn lock_names(&self) -> std::sync::MutexGuard<'_, ()> {
        self.namespace
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn collect(&self, dir: &str, found: &mut Vec<VolumeId>) {
        let Ok(entries) = fs::read_dir(self.root.join(dir)) else {
            return;
        };
        for entry in entries.flatten() {
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if name.starts_with('.') || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let rel = if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            };
            let Ok(id) = VolumeId::new(&rel) else {
                continue;
            };
            if self.is_volume(&id) {
                found.push(id);
            } else {
                self.collect(&rel, found);
            }
        }
    }

    // ---- copies, publishing, removal ----

    fn temp_path(&self, what: &str) -> PathBuf {
        let n = self.temp_counter.fetch_add(1, Ordering::Relaxed);
        self.root
            .join(TMP_DIR)
            .join(format!("{what}-{}-{n}", std::process::id()))
    }

    /// Makes `temp` a copy of `source`. On failure nothing is left at `temp`.
    fn copy(
        &self,
        source: &VolumeId,
        temp: &Path,
        action: &str,
    ) -> Result<(CloneMethod, Option<u64>), VolumeError> {
        let source_path = self.path_of(source);
        let result = match self.kind.clone_method() {
            CloneMethod::BtrfsSnapshot if self.is_subvolume(&source_path) => cmd::run(
                action,
                "btrfs",
                [
                    "subvolume".as_ref(),
                    "snapshot".as_ref(),
                    source_path.as_os_str(),
                    temp.as_os_str(),
                ],
            )
            .map(|_| (CloneMethod::BtrfsSnapshot, None)),
            // A volume made by a plain store earlier on the same filesystem:
            // copy it into a subvolume, so that its clones are snapshots.
            CloneMethod::BtrfsSnapshot => {
                let bytes = apparent_size(&source_path);
                cmd::run(
                    action,
                    "btrfs",
                    ["subvolume".as_ref(), "create".as_ref(), temp.as_os_str()],
                )
                .and_then(|_| {
                    cmd::run(
                        action,
                        "cp",
                        [
                            "-a".as_ref(),
                            "--reflink=auto".as_ref(),
                            source_path.join(".").as_os_str(),
                            temp.as_os_str(),
                        ],
                    )
                })
                .map(|_| (CloneMethod::ReflinkCopy, Some(bytes)))
            }
            method => {
                let bytes = apparent_size(&source_path);
                cmd::run(
                    action,
                    "cp",
                    [
                        "-a".as_ref(),
                        "--reflink=auto".as_ref(),
                        "--no-target-directory".as_ref(),
                        source_path.as_os_str(),
                        temp.as_os_str(),
                    ],
                )
                .map(|_| (method, Some(bytes)))
            }
        };
        if result.is_err() {
            self.discard(temp);
        }
        result
    }

    /// Renames the finished copy `temp` to `id`, never over anything.
    fn publish(&self, temp: &Path, id: &VolumeId, action: &str) -> Result<(), VolumeError> {
        let path = self.path_of(id);
        let marker = self.marker_of(id);
        self.make_parents(id, action)?;
        write_marker(&marker, action)?;
        let renamed = match rustix::fs::renameat_with(CWD, temp, CWD, &path, RenameFlags::NOREPLACE)
        {
            Err(rustix::io::Errno::EXIST) | Err(rustix::io::Errno::NOTEMPTY) => {
                Err(VolumeError::AlreadyExists { id: id.clone() })
            }
            // A filesystem without renameat2 flags: we hold the name lock and
            // checked that `path` is free.
            Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOSYS) if !path.exists() => {
                fs::rename(temp, &path).map_err(|e| VolumeError::io(action, &path, e))
            }
            Err(e) => Err(VolumeError::io(action, &path, e.into())),
            Ok(()) => Ok(()),
        };
        if renamed.is_err() {
            let _ = fs::remove_file(&marker);
        }
        renamed
    }

    /// Exchanges `temp` and the volume `id` atomically; `temp` then holds
    /// the old contents.
    fn swap(&self, temp: &Path, id: &VolumeId, action: &str) -> Result<(), VolumeError> {
        let path = self.path_of(id);
        match rustix::fs::renameat_with(CWD, temp, CWD, &path, RenameFlags::EXCHANGE) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOSYS) => {
                // No RENAME_EXCHANGE: two renames, under the name lock.
                let old = self.temp_path("old");
                fs::rename(&path, &old).map_err(|e| VolumeError::io(action, &path, e))?;
                if let Err(e) = fs::rename(temp, &path) {
                    let _ = fs::rename(&old, &path);
                    return Err(VolumeError::io(action, &path, e));
                }
                fs::rename(&old, temp).map_err(|e| VolumeError::io(action, temp, e))
            }
            Err(e) => Err(VolumeError::io(action, &path, e.into())),
        }
    }

    /// Removes `path` and logs (rather than returns) a failure: used on paths
    /// in `.tmp`, which the next open empties anyway.
    fn discard(&self, path: &Path) {
        if let Err(e) = self.remove_tree(path, "discarding a temporary copy") {
            tracing::warn!(path = %path.display(), error = %e, "could not remove a temporary copy; the next open retries");
        }
    }

    fn is_subvolume(&self, path: &Path) -> bool {
        self.on_btrfs
            && fs::symlink_metadata(path)
                .is_ok_and(|m| m.is_dir() && m.ino() == BTRFS_SUBVOLUME_ROOT_INO)
    }

    /// Removes a directory tree, deleting the btrfs subvolumes in it (which
    /// `rmdir` can't) deepest first.
    fn remove_tree(&self, path: &Path, action: &str) -> Result<(), VolumeError> {
        if fs::symlink_metadata(path).is_err() {
            return Ok(());
        }
        if let Some(mount) = pool::mounts_below(path)?.first() {
            let busy = io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!("{} is mounted inside it", mount.mount_point.display()),
            );
            return Err(VolumeError::io(action, path, busy));
        }
        if self.is_subvolume(path) {
            // The common case first: no subvolume inside, no need to walk the tree.
            match delete_subvolumes(&[path.to_owned()], action) {
                Err(VolumeError::Command { stderr, .. })
                    if stderr.contains("Directory not empty") =>
                {
                    let mut nested = Vec::new();
                    self.find_nested_subvolumes(path, &mut nested);
                    nested.push(path.to_owned());
                    delete_subvolumes(&nested, action)?;
                }
                result => result?,
            }
            return self.wake_cleaner(action);
        }
        if self.on_btrfs {
            let mut nested = Vec::new();
            self.find_nested_subvolumes(path, &mut nested);
            if !nested.is_empty() {
                delete_subvolumes(&nested, action)?;
                self.wake_cleaner(action)?;
            }
        }
        match fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(path),
            Ok(_) => fs::remove_file(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
        .map_err(|e| VolumeError::io(action, path, e))
    }

    /// The subvolumes below `dir`, deepest first.
    fn find_nested_subvolumes(&self, dir: &Path, found: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = entry.path();
            self.find_nested_subvolumes(&path, found);
            if self.is_subvolume(&path) {
                found.push(path);
            }
        }
    }

    /// A deleted subvolume's space is freed by btrfs' cleaner thread, which
    /// otherwise wakes at the next periodic commit (30 s): too late for
    /// "delete something and retry" on a full pool. The sync ioctl commits
    /// and wakes it.
    fn wake_cleaner(&self, action: &str) -> Result<(), VolumeError> {
        cmd::run(
            action,
            "btrfs",
            [
                "filesystem".as_ref(),
                "sync".as_ref(),
                self.root.as_os_str(),
            ],
        )
        .map(drop)
    }

    /// Whether `cp --reflink=always` works here.
    fn probe_reflink(&self) -> Result<bool, VolumeError> {
        let action = "checking whether the filesystem supports reflinks";
        let original = self.temp_path("reflink-probe");
        let copy = self.temp_path("reflink-probe");
        fs::write(&original, [0u8; 4096]).map_err(|e| VolumeError::io(action, &original, e))?;
        let works = cmd::run(
            action,
            "cp",
            [
                "--reflink=always".as_ref(),
                original.as_os_str(),
                copy.as_os_str(),
            ],
        )
        .is_ok();
        let _ = fs::remove_file(&original);
        let _ = fs::remove_file(&copy);
        Ok(works)
    }

    /// Empties `.tmp`: whatever is there was left by a process that is gone
    /// (the lock says no other store has this root open).
    fn remove_leftovers(&self) {
        let temp = self.root.join(TMP_DIR);
        let Ok(entries) = fs::read_dir(&temp) else {
            return;
        };
        for entry in entries.flatten() {
            tracing::info!(path = %entry.path().display(), "removing a leftover of an interrupted operation");
            self.discard(&entry.path());
        }
    }
}

/// Takes `<root>/.lock` exclusively for the store's lifetime.
fn lock(root: &Path, action: &str) -> Result<fs::File, VolumeError> {
    let path = root.join(LOCK_FILE);
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| VolumeError::io(action, &path, e))?;
    match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => {
            let holder = fs::read_to_string(&path)
                .unwrap_or_default()
                .trim()
                .to_owned();
            return Err(VolumeError::InUse {
                root: root.to_owned(),
                holder,
            });
        }
        Err(e) => return Err(VolumeError::io(action, &path, e.into())),
    }
    file.set_len(0)
        .map_err(|e| VolumeError::io(action, &path, e))?;
    write!(file, "{}", std::process::id()).map_err(|e| VolumeError::io(action, &path, e))?;
    Ok(file)
}

/// `btrfs subvolume delete` of `paths`, in that order.
fn delete_subvolumes(paths: &[PathBuf], action: &str) -> Result<(), VolumeError> {
    let args = ["subvolume".as_ref(), "delete".as_ref()]
        .into_iter()
        .chain(paths.iter().map(|p| p.as_os_str()));
    cmd::run(action, "btrfs", args).map(drop)
}

fn write_marker(marker: &Path, action: &str) -> Result<(), VolumeError> {
    fs::write(marker, b"").map_err(|e| VolumeError::io(action, marker, e))
}

/// Total length of the regular files below `path` (what a copy reads).
fn apparent_size(path: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => apparent_size(&entry.path()),
            Ok(t) if t.is_file() => entry.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    /// Shared behind an `Arc` and used from `spawn_blocking`.
    #[test]
    fn store_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<super::VolumeStore>();
    }
}
