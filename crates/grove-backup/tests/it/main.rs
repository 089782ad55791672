//! One test binary for grove-backup: the retention policy (pure, a simulated clock),
//! the manifest, and the restic store (real `restic`, repositories in temp dirs).

mod manifest;
mod retention;
mod store;
