//! Grove's git repositories.
//!
//! Every project is a bare repository served by the stock `git` (as Gitea and GitLab
//! do: `git http-backend` for smart HTTP). A `pre-receive` hook hands each push to the
//! server, which builds and deploys before git accepts the new refs; the hook is the
//! `grove` binary itself, found through `GROVE_EXE` in the environment the server gives
//! `git http-backend`.
//!
//! This crate runs `git` synchronously; async callers use `spawn_blocking`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("could not run git: {0}")]
    Spawn(std::io::Error),
    #[error("git {args}: {stderr}")]
    Failed { args: String, stderr: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, GitError>;

/// The all-zero object id git uses for "no ref" in ref updates.
pub const ZERO_ID: &str = "0000000000000000000000000000000000000000";

const PRE_RECEIVE_HOOK: &str = "#!/bin/sh\n\
# Installed by grove: hands the push to the grove server, which builds and deploys it.\n\
if [ -z \"$GROVE_EXE\" ]; then\n\
  echo 'grove: pushes to this repository go through the grove server' >&2\n\
  exit 1\n\
fi\n\
exec \"$GROVE_EXE\" hook pre-receive\n";

/// A bare repository, plus the extra environment under which its objects are read
/// (git's quarantine directories while a push is being checked).
#[derive(Debug, Clone)]
pub struct Repository {
    path: PathBuf,
    env: Vec<(String, String)>,
}

impl Repository {
    pub fn at(path: impl Into<PathBuf>) -> Repository {
        Repository {
            path: path.into(),
            env: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The same repository, reading objects with git's quarantine environment of a push
    /// in progress (`GIT_OBJECT_DIRECTORY`, `GIT_ALTERNATE_OBJECT_DIRECTORIES`, ...).
    pub fn with_env(&self, env: Vec<(String, String)>) -> Repository {
        Repository {
            path: self.path.clone(),
            env,
        }
    }

    /// Creates the bare repository if it does not exist, and (re)installs the hook and
    /// the settings grove relies on. Idempotent.
    pub fn init(&self) -> Result<()> {
        if !self.path.join("HEAD").exists() {
            std::fs::create_dir_all(&self.path).map_err(|e| io_err(&self.path, e))?;
            self.git(["init", "--bare", "--quiet", "--initial-branch=main"])?;
        }
        for (key, value) in [
            ("receive.advertisePushOptions", "true"),
            ("http.receivepack", "true"),
            ("receive.denyDeleteCurrent", "false"),
            ("gc.auto", "0"),
        ] {
            self.git(["config", key, value])?;
        }
        let hooks = self.path.join("hooks");
        std::fs::create_dir_all(&hooks).map_err(|e| io_err(&hooks, e))?;
        let hook = hooks.join("pre-receive");
        std::fs::write(&hook, PRE_RECEIVE_HOOK).map_err(|e| io_err(&hook, e))?;
        set_executable(&hook)?;
        Ok(())
    }

    /// The tree id of a commit.
    pub fn tree_id(&self, commit: &str) -> Result<String> {
        Ok(self
            .git(["rev-parse", "--verify", &format!("{commit}^{{tree}}")])?
            .trim()
            .to_string())
    }

    /// The commit a branch points at, if the branch exists.
    pub fn branch_head(&self, branch: &str) -> Result<Option<String>> {
        match self.git([
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("refs/heads/{branch}^{{commit}}"),
        ]) {
            Ok(out) => Ok(Some(out.trim().to_string())),
            Err(GitError::Failed { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Branch names and their heads.
    pub fn branches(&self) -> Result<Vec<(String, String)>> {
        let out = self.git([
            "for-each-ref",
            "--format=%(refname:strip=2) %(objectname)",
            "refs/heads/",
        ])?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(b, c)| (b.to_string(), c.to_string()))
            .collect())
    }

    /// Points `branch` at `commit`. With `expected`, only if the branch is still there
    /// (`None`: only if the branch does not exist yet), so that a concurrent push is
    /// never overwritten.
    pub fn set_branch(&self, branch: &str, commit: &str, expected: Option<&str>) -> Result<()> {
        let reference = format!("refs/heads/{branch}");
        let old = expected.unwrap_or(ZERO_ID);
        self.git(["update-ref", &reference, commit, old])?;
        Ok(())
    }

    /// Whether `ancestor` is `descendant` or one of its ancestors.
    pub fn is_ancestor(&self, ancestor: &str, descendant: &str) -> Result<bool> {
        let status = self
            .command(["merge-base", "--is-ancestor", ancestor, descendant])
            .status()
            .map_err(GitError::Spawn)?;
        match status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(GitError::Failed {
                args: format!("merge-base --is-ancestor {ancestor} {descendant}"),
                stderr: format!("exited with {status}"),
            }),
        }
    }

    /// How many commits `a` has that `b` lacks, and the reverse.
    pub fn ahead_behind(&self, a: &str, b: &str) -> Result<(u32, u32)> {
        let out = self.git(["rev-list", "--left-right", "--count", &format!("{a}...{b}")])?;
        let mut counts = out.split_whitespace().map(|n| n.parse().unwrap_or(0));
        Ok((counts.next().unwrap_or(0), counts.next().unwrap_or(0)))
    }

    /// Replays the commits of `head` that `onto` lacks on top of `onto`, in a
    /// temporary work tree, and returns the new head. Fails (changing nothing) on a
    /// conflict, naming the conflicting files.
    pub fn rebase(&self, head: &str, onto: &str, scratch: &Path) -> Result<String> {
        let worktree = scratch.join(format!("rebase-{}", &head[..head.len().min(12)]));
        let _ = std::fs::remove_dir_all(&worktree);
        self.git([
            std::ffi::OsStr::new("worktree"),
            std::ffi::OsStr::new("add"),
            std::ffi::OsStr::new("--detach"),
            worktree.as_os_str(),
            std::ffi::OsStr::new(head),
        ])?;
        let run = |args: &[&str]| -> std::io::Result<std::process::Output> {
            Command::new("git")
                .current_dir(&worktree)
                .args(args)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env_remove("GIT_DIR")
                .env("GIT_COMMITTER_NAME", "Grove")
                .env("GIT_COMMITTER_EMAIL", "grove@localhost")
                .env("GIT_EDITOR", "true")
                .stdin(Stdio::null())
                .output()
        };
        let result = (|| {
            let out = run(&["rebase", onto]).map_err(GitError::Spawn)?;
            if !out.status.success() {
                let conflicts = run(&["diff", "--name-only", "--diff-filter=U"])
                    .map(|o| {
                        String::from_utf8_lossy(&o.stdout)
                            .trim()
                            .replace('\n', ", ")
                    })
                    .unwrap_or_default();
                let _ = run(&["rebase", "--abort"]);
                return Err(GitError::Failed {
                    args: format!("rebase {onto}"),
                    stderr: if conflicts.is_empty() {
                        String::from_utf8_lossy(&out.stderr).trim().to_string()
                    } else {
                        format!("conflicts in {conflicts}")
                    },
                });
            }
            let out = run(&["rev-parse", "HEAD"]).map_err(GitError::Spawn)?;
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        })();
        let _ = self.git([
            std::ffi::OsStr::new("worktree"),
            std::ffi::OsStr::new("remove"),
            std::ffi::OsStr::new("--force"),
            worktree.as_os_str(),
        ]);
        let _ = std::fs::remove_dir_all(&worktree);
        result
    }

    /// Deletes a branch, if it exists.
    pub fn delete_branch(&self, branch: &str) -> Result<()> {
        if self.branch_head(branch)?.is_some() {
            self.git(["update-ref", "-d", &format!("refs/heads/{branch}")])?;
        }
        Ok(())
    }

    /// Every file path in a tree (recursively), '/'-separated.
    pub fn list_files(&self, tree: &str) -> Result<Vec<String>> {
        let out = self.git(["ls-tree", "-r", "-z", "--name-only", "--full-tree", tree])?;
        Ok(out
            .split('\0')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect())
    }

    /// A file's contents in a tree, None if it is not there.
    pub fn read_file(&self, tree: &str, path: &str) -> Result<Option<Vec<u8>>> {
        let output = self
            .command(["cat-file", "blob", &format!("{tree}:{path}")])
            .output()
            .map_err(GitError::Spawn)?;
        if output.status.success() {
            Ok(Some(output.stdout))
        } else {
            Ok(None)
        }
    }

    /// Writes the files of `tree` under `subdir` ("" for all) into `dest`, which must
    /// exist and be empty.
    pub fn export(&self, tree: &str, subdir: &str, dest: &Path) -> Result<()> {
        let treeish = if subdir.is_empty() {
            tree.to_string()
        } else {
            format!("{tree}:{}", subdir.trim_matches('/'))
        };
        let mut archive = self
            .command(["archive", "--format=tar", &treeish])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(GitError::Spawn)?;
        let Some(archive_out) = archive.stdout.take() else {
            return Err(GitError::Spawn(std::io::Error::other("no stdout")));
        };
        let tar = Command::new("tar")
            .arg("-x")
            .arg("-C")
            .arg(dest)
            .stdin(archive_out)
            .stderr(Stdio::piped())
            .output()
            .map_err(GitError::Spawn)?;
        let archived = archive.wait_with_output().map_err(GitError::Spawn)?;
        if !archived.status.success() {
            return Err(GitError::Failed {
                args: format!("archive {treeish}"),
                stderr: String::from_utf8_lossy(&archived.stderr).trim().to_string(),
            });
        }
        if !tar.status.success() {
            return Err(GitError::Failed {
                args: format!("archive {treeish} | tar -x"),
                stderr: String::from_utf8_lossy(&tar.stderr).trim().to_string(),
            });
        }
        Ok(())
    }

    fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("git");
        cmd.arg("--git-dir")
            .arg(&self.path)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env_remove("GIT_DIR")
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    fn git<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<S> = args.into_iter().collect();
        let printable = args
            .iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let output = self.command(&args).output().map_err(GitError::Spawn)?;
        if !output.status.success() {
            return Err(GitError::Failed {
                args: printable,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

fn io_err(path: &Path, source: std::io::Error) -> GitError {
    GitError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn set_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| io_err(path, e))
}

/// Whether git accepts `name` as a branch name (`git check-ref-format`).
pub fn valid_branch_name(name: &str) -> bool {
    !name.starts_with('-')
        && Command::new("git")
            .args(["check-ref-format", &format!("refs/heads/{name}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// Splits the `GIT_PUSH_OPTION_*` values the hook received into grove's push options.
/// Accepts Platform.sh's spellings: `environment.activate`, `environment.status=active`,
/// `environment.parent=NAME`, `environment.type=TYPE`, `environment.title=TITLE`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PushOptions {
    pub activate: bool,
    pub parent: Option<String>,
    pub kind: Option<String>,
    pub title: Option<String>,
    /// Options grove does not know, reported back to the pusher.
    pub unknown: Vec<String>,
}

impl PushOptions {
    pub fn parse(options: &[String]) -> PushOptions {
        let mut parsed = PushOptions::default();
        for option in options {
            let (key, value) = match option.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (option.trim(), None),
            };
            match (key, value) {
                ("environment.activate", None | Some("1" | "true" | "True")) => {
                    parsed.activate = true
                }
                ("environment.status", Some("active")) => parsed.activate = true,
                ("environment.parent", Some(v)) if !v.is_empty() => {
                    parsed.parent = Some(v.to_string())
                }
                ("environment.type", Some(v)) if !v.is_empty() => parsed.kind = Some(v.to_string()),
                ("environment.title", Some(v)) => parsed.title = Some(v.to_string()),
                _ => parsed.unknown.push(option.clone()),
            }
        }
        parsed
    }
}

#[cfg(test)]
mod tests;
