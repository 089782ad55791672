//! Integration tests of grove-config, through its public API only.

mod config_reader;
mod corpus;
mod env;
mod errors;
mod fuzz;
mod includes;
mod load;
mod relationships;
mod routes;

use grove_config::{ConfigErrors, MemoryTree, Project, load};

/// Loads an in-memory tree.
pub fn load_files(files: &[(&str, &str)]) -> Result<Project, ConfigErrors> {
    load(&MemoryTree::new(files.iter().map(|(p, c)| (*p, *c))))
}

/// Loads a tree that must be valid.
pub fn project(files: &[(&str, &str)]) -> Project {
    match load_files(files) {
        Ok(project) => project,
        Err(errors) => panic!("expected a valid project, got:\n{errors}"),
    }
}
