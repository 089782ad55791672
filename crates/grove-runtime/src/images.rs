//! Runtime images: root filesystems built from Debian's package archive for the
//! language versions this host lacks (`nodejs:18`, `php:8.4`, `golang:1.24`, ...).
//!
//! Each Debian release ships one version of each language; [`IMAGES`] says which
//! (checked against the archive's `Packages` indices, not from memory). An image is
//! built once with `mmdebstrap --variant=minbase` into `<images dir>/<name>`, through
//! a temporary directory and a rename, so a directory with that name is always a
//! complete image. It is only ever bound read-only into sandboxes (its `/usr`, `/etc`,
//! ... replace the host's), shared by every project, and survives restarts. One build
//! at a time per image, across processes too (a lock file): whoever comes second
//! waits and then uses the first one's image.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::output::merged_output;

/// Debian's archive, where images come from unless the operator names a mirror.
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// Written into an image once it is complete (outside the directories a sandbox
/// sees): what it was built from.
const MARKER: &str = "grove-image.txt";

/// One language version that a Debian release ships, and what to install for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageRecipe {
    /// Platform.sh language name: `python`, `nodejs`, `php`, `golang`.
    pub language: &'static str,
    /// What a config's version is matched against (major.minor; nodejs: major).
    pub version: &'static str,
    /// The full version in the archive when this table was written.
    pub full_version: &'static str,
    /// The Debian release (suite) that ships it.
    pub release: &'static str,
    /// Packages installed on top of `minbase`.
    pub packages: &'static [&'static str],
    /// The interpreter inside the image.
    pub binary: &'static str,
}

impl ImageRecipe {
    /// `nodejs-18-bookworm`: the image's directory name.
    pub fn name(&self) -> String {
        format!("{}-{}-{}", self.language, self.version, self.release)
    }

    /// `nodejs:18`
    pub fn type_name(&self) -> String {
        format!("{}:{}", self.language, self.version)
    }
}

impl fmt::Display for ImageRecipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "image {} (Debian {})", self.name(), self.release)
    }
}

macro_rules! php {
    ($v:literal) => {
        &[
            concat!("php", $v, "-cli"),
            concat!("php", $v, "-fpm"),
            concat!("php", $v, "-bcmath"),
            concat!("php", $v, "-curl"),
            concat!("php", $v, "-gd"),
            concat!("php", $v, "-intl"),
            concat!("php", $v, "-mbstring"),
            concat!("php", $v, "-mysql"),
            concat!("php", $v, "-opcache"),
            concat!("php", $v, "-pgsql"),
            // phpredis (a virtual package of `php-redis` in bullseye).
            concat!("php", $v, "-redis"),
            concat!("php", $v, "-sqlite3"),
            concat!("php", $v, "-xml"),
            concat!("php", $v, "-zip"),
            // PHP apps are served by nginx in their sandbox (`grove-web`).
            "nginx",
            // The `composer` build flavor, PHP's default.
            "composer",
            "ca-certificates",
        ]
    };
}

// nginx in every image: it serves the static `web.locations` of any app (`grove-web`).
const PYTHON: &[&str] = &[
    "python3",
    "python3-pip",
    "python3-venv",
    "python-is-python3",
    "nginx",
    "ca-certificates",
];
const NODEJS: &[&str] = &["nodejs", "npm", "nginx", "ca-certificates"];
const GOLANG: &[&str] = &["golang-go", "git", "nginx", "ca-certificates"];

/// What each Debian release ships (main, amd64), from the archive's `Packages.xz`
/// of bullseye, bookworm and trixie (December 2026).
pub const IMAGES: &[ImageRecipe] = &[
    ImageRecipe {
        language: "python",
        version: "3.9",
        full_version: "3.9.2",
        release: "bullseye",
        packages: PYTHON,
        binary: "/usr/bin/python3",
    },
    ImageRecipe {
        language: "python",
        version: "3.11",
        full_version: "3.11.2",
        release: "bookworm",
        packages: PYTHON,
        binary: "/usr/bin/python3",
    },
    ImageRecipe {
        language: "python",
        version: "3.13",
        full_version: "3.13.5",
        release: "trixie",
        packages: PYTHON,
        binary: "/usr/bin/python3",
    },
    ImageRecipe {
        language: "nodejs",
        version: "12",
        full_version: "12.22.12",
        release: "bullseye",
        packages: NODEJS,
        binary: "/usr/bin/node",
    },
    ImageRecipe {
        language: "nodejs",
        version: "18",
        full_version: "18.20.4",
        release: "bookworm",
        packages: NODEJS,
        binary: "/usr/bin/node",
    },
    ImageRecipe {
        language: "nodejs",
        version: "20",
        full_version: "20.19.2",
        release: "trixie",
        packages: NODEJS,
        binary: "/usr/bin/node",
    },
    ImageRecipe {
        language: "php",
        version: "7.4",
        full_version: "7.4.33",
        release: "bullseye",
        packages: php!("7.4"),
        binary: "/usr/bin/php7.4",
    },
    ImageRecipe {
        language: "php",
        version: "8.2",
        full_version: "8.2.32",
        release: "bookworm",
        packages: php!("8.2"),
        binary: "/usr/bin/php8.2",
    },
    ImageRecipe {
        language: "php",
        version: "8.4",
        full_version: "8.4.27",
        release: "trixie",
        packages: php!("8.4"),
        binary: "/usr/bin/php8.4",
    },
    ImageRecipe {
        language: "golang",
        version: "1.15",
        full_version: "1.15.15",
        release: "bullseye",
        packages: GOLANG,
        binary: "/usr/bin/go",
    },
    ImageRecipe {
        language: "golang",
        version: "1.19",
        full_version: "1.19.8",
        release: "bookworm",
        packages: GOLANG,
        binary: "/usr/bin/go",
    },
    ImageRecipe {
        language: "golang",
        version: "1.24",
        full_version: "1.24.4",
        release: "trixie",
        packages: GOLANG,
        binary: "/usr/bin/go",
    },
];

/// Why an image could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("mmdebstrap not found: install the `mmdebstrap` package to build runtime images")]
    MmdebstrapNotFound,
    #[error("building {image} failed ({status}){}", render_tail(.tail))]
    BuildFailed {
        image: String,
        status: String,
        tail: Vec<String>,
    },
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn render_tail(lines: &[String]) -> String {
    let mut out = String::new();
    for line in lines {
        out.push_str("\n  ");
        out.push_str(line);
    }
    out
}

/// The images of this server: where they live and where they come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageStore {
    dir: PathBuf,
    mirror: String,
}

impl ImageStore {
    pub fn new(dir: impl Into<PathBuf>, mirror: impl Into<String>) -> ImageStore {
        ImageStore {
            dir: dir.into(),
            mirror: mirror.into(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn mirror(&self) -> &str {
        &self.mirror
    }

    /// The image's root filesystem (complete only when [`is_installed`](Self::is_installed)).
    pub fn root(&self, recipe: &ImageRecipe) -> PathBuf {
        self.dir.join(recipe.name())
    }

    pub fn is_installed(&self, recipe: &ImageRecipe) -> bool {
        self.root(recipe).join(MARKER).is_file()
    }

    /// The image's root, built first when missing (blocking while another build of
    /// the same image runs, here or in another process). Progress lines go to
    /// `on_line`.
    pub async fn ensure(
        &self,
        recipe: &ImageRecipe,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<PathBuf, ImageError> {
        let root = self.root(recipe);
        if self.is_installed(recipe) {
            return Ok(root);
        }
        let io = |what: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source| ImageError::Io { what, path, source }
        };
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(io("cannot create the images directory", &self.dir))?;
        let lock_path = self.dir.join(format!(".{}.lock", recipe.name()));
        let lock = File::create(&lock_path).map_err(io("cannot open", &lock_path))?;
        let lock = match lock.try_lock() {
            Ok(()) => lock,
            Err(std::fs::TryLockError::WouldBlock) => {
                on_line(&format!(
                    "Waiting for {recipe}: another push is building it"
                ));
                let waited = Instant::now();
                let lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))
                    .and_then(|r| r)
                    .map_err(io("cannot lock", &lock_path))?;
                on_line(&format!(
                    "Waited {} for {recipe}",
                    seconds(waited.elapsed())
                ));
                lock
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io("cannot lock", &lock_path)(e)),
        };
        if self.is_installed(recipe) {
            return Ok(root);
        }
        let result = self.build(recipe, on_line).await;
        drop(lock);
        result
    }

    /// Builds the image into a temporary directory, then renames it into place.
    async fn build(
        &self,
        recipe: &ImageRecipe,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<PathBuf, ImageError> {
        let io = |what: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source| ImageError::Io { what, path, source }
        };
        let root = self.root(recipe);
        let work = self.dir.join(format!(".tmp-{}", recipe.name()));
        for stale in [&work, &root] {
            if tokio::fs::symlink_metadata(stale).await.is_ok() {
                tokio::fs::remove_dir_all(stale)
                    .await
                    .map_err(io("cannot remove", stale))?;
            }
        }
        let mmdebstrap = ["/usr/bin/mmdebstrap", "/usr/local/bin/mmdebstrap"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.is_file())
            .ok_or(ImageError::MmdebstrapNotFound)?;
        on_line(&format!(
            "Building {recipe} with {} {} from {}",
            recipe.language, recipe.full_version, self.mirror
        ));
        on_line(&format!("  Packages: {}", recipe.packages.join(" ")));
        let started = Instant::now();
        let mut cmd = tokio::process::Command::new(mmdebstrap);
        cmd.args(mmdebstrap_args(recipe, &work, &self.mirror))
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let mut output =
            merged_output(&mut cmd).map_err(io("cannot read the output of", mmdebstrap))?;
        let mut child = cmd.spawn().map_err(io("cannot run", mmdebstrap))?;
        drop(cmd);
        let mut tail: Vec<String> = Vec::new();
        while let Some(line) = output
            .next_line()
            .await
            .map_err(io("cannot read the output of", mmdebstrap))?
        {
            // mmdebstrap's own progress (`I: downloading packages with apt...`) says
            // what is being fetched; each line gets the time since the build started.
            if line.starts_with("I: ") || line.starts_with("E: ") || line.starts_with("W: ") {
                on_line(&format!("  [{:>6}] {line}", seconds(started.elapsed())));
            }
            tail.push(line);
            if tail.len() > 20 {
                tail.remove(0);
            }
        }
        let status = child
            .wait()
            .await
            .map_err(io("cannot wait for", mmdebstrap))?;
        if !status.success() {
            let _ = tokio::fs::remove_dir_all(&work).await;
            return Err(ImageError::BuildFailed {
                image: recipe.name(),
                status: status.to_string(),
                tail,
            });
        }
        let finish = {
            let (work, root, recipe, mirror) =
                (work.clone(), root.clone(), *recipe, self.mirror.clone());
            // Walking a few hundred MiB of files is no job for the async runtime.
            tokio::task::spawn_blocking(move || {
                finish_image(&work, &root, &recipe, &mirror).map(|()| dir_size(&root))
            })
        };
        let size = finish
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|r| r)
            .map_err(io("cannot store the image in", &root))?;
        on_line(&format!(
            "Built {recipe} in {} ({} MiB)",
            seconds(started.elapsed()),
            size / (1024 * 1024)
        ));
        Ok(root)
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// The `mmdebstrap` arguments building `recipe` into `target`.
pub fn mmdebstrap_args(recipe: &ImageRecipe, target: &Path, mirror: &str) -> Vec<String> {
    let mut args = vec![
        "--variant=minbase".to_owned(),
        "--mode=auto".to_owned(),
        format!("--include={}", recipe.packages.join(",")),
        // What no app reads: smaller images, fewer files to bind.
        "--dpkgopt=path-exclude=/usr/share/doc/*".to_owned(),
        "--dpkgopt=path-exclude=/usr/share/man/*".to_owned(),
        "--dpkgopt=path-exclude=/usr/share/locale/*".to_owned(),
        "--aptopt=Acquire::Languages \"none\"".to_owned(),
    ];
    args.push(recipe.release.to_owned());
    args.push(target.display().to_string());
    args.push(mirror.to_owned());
    args
}

/// Makes a built root usable as a sandbox's system directories, then puts it in
/// place: mount points for the files the sandbox shows from the host
/// (`/etc/resolv.conf`, `/etc/hosts`), the marker, read-only modes.
fn finish_image(
    work: &Path,
    root: &Path,
    recipe: &ImageRecipe,
    mirror: &str,
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for file in ["etc/resolv.conf", "etc/hosts"] {
        let path = work.join(file);
        // A dangling link (systemd-resolved's) would not do as a mount point.
        if std::fs::metadata(&path).is_err() {
            let _ = std::fs::remove_file(&path);
            std::fs::write(&path, "")?;
        }
    }
    std::fs::write(
        work.join(MARKER),
        format!(
            "image: {}\nrelease: {}\nmirror: {mirror}\npackages: {}\n",
            recipe.name(),
            recipe.release,
            recipe.packages.join(" ")
        ),
    )?;
    std::fs::set_permissions(work, std::fs::Permissions::from_mode(0o555))?;
    std::fs::rename(work, root)
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_image_per_language_and_release() {
        let mut seen = std::collections::BTreeSet::new();
        for recipe in IMAGES {
            assert!(seen.insert(recipe.name()), "{recipe}");
            assert!(
                recipe.full_version.starts_with(recipe.version),
                "{recipe:?}"
            );
            assert!(recipe.packages.contains(&"ca-certificates"), "{recipe:?}");
        }
    }

    #[test]
    fn php_images_have_fpm_and_nginx() {
        let php84 = IMAGES
            .iter()
            .find(|r| r.type_name() == "php:8.4")
            .expect("php:8.4");
        assert_eq!(php84.release, "trixie");
        for package in ["php8.4-cli", "php8.4-fpm", "php8.4-mysql", "nginx"] {
            assert!(php84.packages.contains(&package), "{package}");
        }
    }

    /// A second push needing an image that is being built waits for that build and
    /// uses its result instead of building it again.
    #[tokio::test]
    async fn a_second_build_of_the_same_image_waits_and_reuses_the_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ImageStore::new(dir.path(), DEFAULT_MIRROR);
        let recipe = IMAGES[0];
        // "Another push" holds the image's lock while it builds.
        let lock = File::create(dir.path().join(format!(".{}.lock", recipe.name()))).expect("lock");
        lock.lock().expect("locked");
        let waiter = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut lines = Vec::new();
                let mut on_line = |line: &str| lines.push(line.to_owned());
                let root = store.ensure(&recipe, &mut on_line).await;
                (root.map_err(|e| e.to_string()), lines)
            })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!waiter.is_finished(), "it waits for the build in progress");
        // The build completes: the image is renamed into place, the lock released.
        let root = store.root(&recipe);
        std::fs::create_dir_all(&root).expect("mkdir");
        std::fs::write(root.join(MARKER), "image\n").expect("marker");
        drop(lock);
        let (result, lines) = waiter.await.expect("joined");
        assert_eq!(result, Ok(root));
        assert!(store.is_installed(&recipe));
        assert_eq!(
            lines.first().map(String::as_str),
            Some(
                "Waiting for image python-3.9-bullseye (Debian bullseye): another push is building it"
            )
        );
        assert!(
            !lines.iter().any(|l| l.starts_with("Building")),
            "not built twice: {lines:?}"
        );
    }

    #[test]
    fn mmdebstrap_command_line() {
        let node18 = IMAGES
            .iter()
            .find(|r| r.type_name() == "nodejs:18")
            .expect("nodejs:18");
        assert_eq!(node18.name(), "nodejs-18-bookworm");
        let args = mmdebstrap_args(node18, Path::new("/d/.tmp-x"), DEFAULT_MIRROR);
        assert_eq!(args[0], "--variant=minbase");
        assert_eq!(args[2], "--include=nodejs,npm,nginx,ca-certificates");
        assert_eq!(
            &args[args.len() - 3..],
            ["bookworm", "/d/.tmp-x", "http://deb.debian.org/debian"]
        );
    }
}
