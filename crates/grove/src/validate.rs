//! `grove app:config-validate [DIR]`: validates a checkout's configuration without a
//! server, with the same loader the push path uses.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use grove_config::SourceTree;

/// A directory on disk as the config loader sees it (`.git` left out).
struct DirTree {
    root: PathBuf,
    paths: Vec<String>,
}

impl DirTree {
    fn read_dir(root: &Path) -> anyhow::Result<DirTree> {
        let mut paths = Vec::new();
        let mut pending = vec![root.to_path_buf()];
        while let Some(dir) = pending.pop() {
            let entries = std::fs::read_dir(&dir)
                .with_context(|| format!("cannot read {}", dir.display()))?;
            for entry in entries {
                let entry = entry?;
                let path = entry.path();
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    if entry.file_name() != ".git" {
                        pending.push(path);
                    }
                } else if let Ok(relative) = path.strip_prefix(root) {
                    paths.push(relative.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        paths.sort();
        Ok(DirTree {
            root: root.to_path_buf(),
            paths,
        })
    }
}

impl SourceTree for DirTree {
    fn paths(&self) -> Vec<String> {
        self.paths.clone()
    }

    fn read(&self, path: &str) -> Option<Vec<u8>> {
        // Only files of the tree: never follow `..` out of it.
        if !self.paths.iter().any(|p| p == path) {
            return None;
        }
        std::fs::read(self.root.join(path)).ok()
    }
}

pub fn run(dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let dir = dir.unwrap_or_else(|| PathBuf::from("."));
    let tree = DirTree::read_dir(&dir)?;
    match grove_config::load(&tree) {
        Ok(project) => {
            for warning in &project.warnings {
                eprintln!("{warning}");
            }
            // Valid for the platforms, but not runnable by Grove: said now, not only
            // when a push fails.
            let unrunnable: Vec<String> = project
                .services
                .iter()
                .filter_map(|service| {
                    let reason = grove_services::catalog::unsupported(&service.service_type.name)?;
                    Some(format!(
                        "{}: warning: service `{}` ({}): {reason}",
                        service.config_file, service.name, service.service_type
                    ))
                })
                .collect();
            for warning in &unrunnable {
                eprintln!("{warning}");
            }
            let apps: Vec<String> = project
                .apps
                .iter()
                .map(|a| format!("{} ({})", a.name, a.runtime))
                .collect();
            println!(
                "The configuration is valid: {} app(s): {}; {} service(s); {} warning(s).",
                project.apps.len(),
                apps.join(", "),
                project.services.len(),
                project.warnings.len() + unrunnable.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprintln!("{errors}");
            Ok(ExitCode::FAILURE)
        }
    }
}
