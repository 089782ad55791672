//! The project and environment a command means when `-p`/`-e` are left out, from the
//! git checkout it runs in, as the Platform.sh CLI does: the project is the one the
//! checkout's `grove` remote points at, the environment its current branch.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// The name of the remote the README tells users to add.
pub const REMOTE: &str = "grove";

/// The project of the current directory's checkout, if it has a `grove` remote (git
/// is asked once per command).
pub fn project() -> Option<String> {
    static PROJECT: OnceLock<Option<String>> = OnceLock::new();
    PROJECT
        .get_or_init(|| project_of(&git(&["remote", "get-url", REMOTE])?))
        .clone()
}

/// The branch checked out in the current directory (none when HEAD is detached).
pub fn branch() -> Option<String> {
    static BRANCH: OnceLock<Option<String>> = OnceLock::new();
    BRANCH
        .get_or_init(|| git(&["symbolic-ref", "--quiet", "--short", "HEAD"]))
        .clone()
}

/// A Grove git URL's project: the last path segment without `.git`
/// (`http://grove:TOKEN@host:8022/shop.git`, `ssh://git@host:2222/shop.git`).
fn project_of(url: &str) -> Option<String> {
    let path = url.trim().trim_end_matches('/');
    let last = path.rsplit(['/', ':']).next()?;
    let name = last.strip_suffix(".git").unwrap_or(last);
    (!name.is_empty()).then(|| name.to_owned())
}

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(Path::new("."))
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_project_is_the_last_segment_of_the_remote() {
        for (url, project) in [
            ("http://grove:secret@127.0.0.1:8022/shop.git", Some("shop")),
            ("http://127.0.0.1:8022/shop.git/", Some("shop")),
            ("ssh://git@127.0.0.1:2222/shop.git", Some("shop")),
            ("git@example.com:shop.git", Some("shop")),
            ("", None),
        ] {
            assert_eq!(project_of(url).as_deref(), project, "{url}");
        }
    }
}
