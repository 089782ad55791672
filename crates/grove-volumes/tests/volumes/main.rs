//! grove-volumes against the real tools. Needs root (loop devices, mounts,
//! btrfs); CI runs as root. Every loop pool and tmpfs a test makes is
//! unmounted, detached and deleted by a guard, also when the test fails.

mod bench;
mod btrfs;
mod plain;
mod support;
