//! Backups of environments (placeholder, see below).

pub mod manifest;
pub mod retention;
pub mod store;
mod time;

pub use manifest::{Manifest, verify};
pub use retention::{Policy, keep};
pub use store::{Snapshot, SnapshotId, Store, StoreError};
