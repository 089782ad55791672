//! Backups of environments: which backups to keep, where they are stored, and how a
//! restored tree is verified.
//!
//! # The model
//!
//! A backup is **one more data source an environment can be filled from**. Branching
//! fills a new environment's volume from its parent's; restoring fills it from a
//! backup. So the server restores by deploying with that data source: it restores the
//! snapshot into a new, empty directory and checks every file against the manifest in
//! it ([`Store::restore_verified`]; `backup:verify` is the same into a scratch
//! directory), and then runs the ordinary "fill this volume from that source,
//! then deploy" path (with the backup's build and commit, unless code is left out). If
//! any step fails, the environment is as it was: nothing is swapped in before the
//! restored tree is complete and verified.
//!
//! A backup is a directory tree that the caller prepares, backed up as one restic
//! snapshot whose root is that tree:
//!
//! ```text
//! grove-backup.json            the Manifest (environment, commit, build key, services
//!                              and how each was captured, mounts, checksums of all files)
//! services/<name>/...          each service's data directory or dump
//! apps/<app>/<mount>/...       each mount's files
//! ```
//!
//! # Consistency is the caller's job
//!
//! This crate copies a tree that does not change while it is read. The caller gets one:
//!
//! - **consistent** backup: quiesce every service at one instant (MariaDB
//!   `BACKUP STAGE BLOCK_COMMIT`, Redis `BGSAVE` finished, a PostgreSQL `CHECKPOINT`),
//!   hold requests, snapshot the volume (btrfs: instant), resume, record the pause in
//!   [`manifest::Consistency::Consistent`]; then, with everything running again, compute
//!   the checksums ([`manifest::FileTree::compute`]), write the manifest at the root and
//!   [`Store::backup`] the snapshot. The upload happens after the services resume.
//! - **live** backup: snapshot the volume without a pause (crash-consistent, like a
//!   power cut), same upload.
//!
//! # The parts
//!
//! - [`retention`] (pure, no clock): a [`Policy`] (manual backups to keep, and tiers of
//!   fixed periods: "one per hour for 72 hours, one per day for 4 days, ...") and
//!   [`keep`], the backups to keep at a given instant; production's default is the
//!   retention table (`Policy::production`), other types get `Policy::preview`.
//!   Policies are serde values (YAML/JSON), validated when deserialised.
//! - [`store`]: a restic repository (local directory or any restic backend),
//!   deduplicated, compressed (repository format 2) and encrypted; its password lives in
//!   a 0600 file, created with a random password on first use. Backup with `key=value`
//!   tags, list by tags, restore into an empty directory, forget and prune, check
//!   (optionally reading some or all of the data). Errors carry the line of restic's
//!   output that says why, and the repository.
//! - [`manifest`]: what one backup holds, as JSON, with the sha256 of every file;
//!   [`verify`] recomputes them over a restored tree and names what differs.
//!
//! # What this crate does not do
//!
//! - It does not quiesce services, snapshot volumes, or dump databases (`grove-services`
//!   and `grove-volumes` do, driven by the server), and never swaps a restored tree into
//!   an environment.
//! - It does not schedule: the server runs automatic backups and calls [`keep`] after
//!   each, then [`Store::forget`] on the rest. It keeps no records: the server's store
//!   holds backups and their status; the restic snapshot id is the link.
//! - It does not read a clock: times are inputs (seconds since the epoch, UTC).
//! - Every [`Store`] method blocks until restic ends: call it on a blocking thread. There
//!   is no cancellation or progress reporting yet.

pub mod manifest;
pub mod retention;
pub mod store;
mod time;

pub use manifest::{Manifest, verify};
pub use retention::{Policy, keep};
pub use store::{Snapshot, SnapshotId, Store, StoreError};
