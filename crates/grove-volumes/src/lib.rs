//! Grove's storage layer: every service's data and every app mount lives in
//! a volume, and branching an environment clones its parent's volumes.
//!
//! A [`VolumeStore`] owns one root directory (`<data dir>/volumes`); the
//! volume `shop/main/services/db` is the directory `<root>/shop/main/services/db`.
//! How clones are made is the store's business, shown by [`VolumeStore::kind`]:
//!
//! - **btrfs**: a volume is a subvolume and a clone is a snapshot, which takes
//!   the same time whatever the volume holds. With
//!   [`StorageSpec::BtrfsLoop`] the store makes its own pool: a sparse image
//!   file `<root>.img`, formatted once, attached to a loop device and mounted
//!   at the root; later opens find or re-attach it.
//! - **plain**: a volume is a directory and a clone is `cp -a --reflink=auto`,
//!   which shares extents where the filesystem can (XFS, bcachefs, btrfs) and
//!   copies every byte elsewhere. The kind's `Display` says which, for the
//!   activity log.
//!
//! On btrfs a volume can be capped ([`VolumeStore::set_cap`]): a qgroup limit
//! on its subvolume, past which writes fail with EDQUOT.
//!
//! Guarantees:
//!
//! - A clone is built under `<root>/.tmp` and renamed into place
//!   (`RENAME_NOREPLACE`), so a clone that fails half-way (a full disk) leaves
//!   nothing named after its target; [`VolumeStore::replace_with_clone`] swaps
//!   the finished clone in (`RENAME_EXCHANGE`) and the target is untouched if
//!   the clone fails. `.tmp` is emptied when a store opens.
//! - A volume is its directory plus an empty marker `.<leaf>.volume` beside it,
//!   in a directory that no sandbox sees. Ids nest as paths (`shop/main/...`)
//!   but volumes don't: the directories above a volume are plain directories
//!   and never volumes themselves.
//! - One store per root: the store holds an exclusive `flock` on `<root>/.lock`.
//!
//! Limits: a clone is only as consistent as its source is while it runs
//! (stop or flush what writes to it); a btrfs snapshot does not contain
//! subvolumes created inside the source (they show up as empty directories);
//! a loop pool grows when opened with a bigger size but never shrinks; a
//! deleted subvolume's space comes back when btrfs' cleaner has run (woken
//! right away by the delete, not waited for).
//!
//! The API is synchronous (it runs `btrfs`, `cp`, `losetup` and `mount`); call
//! it from `spawn_blocking`. It needs root for btrfs and loop devices. The
//! Debian packages it runs are listed in the crate's `PACKAGES` file.

mod cmd;
mod error;
mod id;
mod pool;
mod spec;
mod store;

pub use error::VolumeError;
pub use id::{MAX_SEGMENT_LEN, MAX_SEGMENTS, VolumeId};
pub use spec::{
    CloneMethod, CloneReport, LoopImage, MIN_LOOP_POOL_BYTES, StorageKind, StorageSpec,
    StorageSpecError, format_size, parse_size,
};
pub use store::{Volume, VolumeStore};
