//! Manifests: the tree listing is lossless and its digest follows its contents.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;

use grove_backup::manifest::{Entry, FileTree, MANIFEST_FILE};

#[test]
fn a_tree_lists_files_dirs_and_symlinks_and_leaves_out_its_manifest() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    fs::create_dir_all(root.join("a/b")).expect("mkdir");
    fs::write(root.join("a/b/file"), "hello").expect("write");
    fs::write(root.join(MANIFEST_FILE), "{}").expect("write");
    fs::write(
        root.join("a").join(MANIFEST_FILE),
        "not at the root: listed",
    )
    .expect("write");
    symlink("../elsewhere", root.join("a/link")).expect("symlink");
    let name = std::ffi::OsStr::from_bytes(b"bad-\xff-100%");
    fs::write(root.join(name), "").expect("write");

    let tree = FileTree::compute(root).expect("readable");
    let paths: Vec<&str> = tree.entries.keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        [
            "a",
            "a/b",
            "a/b/file",
            "a/grove-backup.json",
            "a/link",
            "bad-%FF-100%25"
        ]
    );
    assert_eq!(
        tree.entries["a/b/file"],
        Entry::File {
            size: 5,
            sha256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824".to_owned()
        }
    );
    assert_eq!(
        tree.entries["a/link"],
        Entry::Symlink {
            target: "../elsewhere".to_owned()
        }
    );

    let before = tree.digest.clone();
    fs::write(root.join("a/b/file"), "hellO").expect("write");
    assert_ne!(FileTree::compute(root).expect("readable").digest, before);
    fs::write(root.join("a/b/file"), "hello").expect("write");
    fs::write(root.join(MANIFEST_FILE), "{\"changed\": true}").expect("write");
    assert_eq!(FileTree::compute(root).expect("readable").digest, before);
}

#[test]
fn an_unreadable_tree_names_the_path() {
    let error =
        FileTree::compute(std::path::Path::new("/nonexistent/grove-backup")).expect_err("missing");
    assert!(
        error.to_string().starts_with("/nonexistent/grove-backup: "),
        "{error}"
    );
}
