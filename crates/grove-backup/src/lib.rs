//! Backups of environments: which backups a retention policy keeps (`retention`, pure).

pub mod retention;
