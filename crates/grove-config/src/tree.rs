//! The files the loader reads, abstracted so that this crate never touches a filesystem.

use std::collections::BTreeMap;

/// Files of a git tree, as the config loader sees them. Implemented by the git layer (IO)
/// and by [`MemoryTree`] (tests).
pub trait SourceTree {
    /// Every file path in the tree, relative to the repository root, '/'-separated, no
    /// leading '/'.
    fn paths(&self) -> Vec<String>;
    /// A file's bytes, None if absent.
    fn read(&self, path: &str) -> Option<Vec<u8>>;
}

/// A tree held in memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryTree {
    files: BTreeMap<String, Vec<u8>>,
}

impl MemoryTree {
    /// `MemoryTree::new([(".platform.app.yaml", "name: app\n...")])`.
    pub fn new<P, B>(files: impl IntoIterator<Item = (P, B)>) -> Self
    where
        P: Into<String>,
        B: AsRef<[u8]>,
    {
        MemoryTree {
            files: files
                .into_iter()
                .map(|(p, b)| (p.into(), b.as_ref().to_vec()))
                .collect(),
        }
    }

    pub fn insert(&mut self, path: impl Into<String>, bytes: impl AsRef<[u8]>) {
        self.files.insert(path.into(), bytes.as_ref().to_vec());
    }
}

impl SourceTree for MemoryTree {
    fn paths(&self) -> Vec<String> {
        self.files.keys().cloned().collect()
    }

    fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.files.get(path).cloned()
    }
}
