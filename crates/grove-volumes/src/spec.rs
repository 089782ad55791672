use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Smallest loop pool we create: `mkfs.btrfs` refuses images below ~110 MiB.
pub const MIN_LOOP_POOL_BYTES: u64 = 128 << 20;

/// What the operator asked for (`grove server --storage ...`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageSpec {
    /// btrfs when the root is on btrfs (or a loop image from an earlier
    /// `btrfs-loop` run exists), otherwise plain copies.
    Auto,
    /// Always plain copies (`cp --reflink=auto`), whatever the filesystem.
    Plain,
    /// The root is on btrfs already; refuse to start otherwise.
    Btrfs,
    /// A btrfs pool in a sparse image file `<root>.img` of this size, mounted
    /// at the root.
    BtrfsLoop { size_bytes: u64 },
}

const ACCEPTED: &str = "expected auto, plain, btrfs or btrfs-loop:<size> \
     (e.g. btrfs-loop:20G; a size in bytes or with a K, M, G or T suffix, powers of 1024)";

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid storage {input:?}: {reason}; {ACCEPTED}")]
pub struct StorageSpecError {
    pub input: String,
    pub reason: String,
}

impl FromStr for StorageSpec {
    type Err = StorageSpecError;

    fn from_str(input: &str) -> Result<StorageSpec, StorageSpecError> {
        let error = |reason: String| StorageSpecError {
            input: input.to_owned(),
            reason,
        };
        match input.trim() {
            "auto" => Ok(StorageSpec::Auto),
            "plain" => Ok(StorageSpec::Plain),
            "btrfs" => Ok(StorageSpec::Btrfs),
            "btrfs-loop" => Err(error("btrfs-loop needs a size".into())),
            other => match other.strip_prefix("btrfs-loop:") {
                Some(size) => {
                    let size_bytes = parse_size(size).map_err(error)?;
                    if size_bytes < MIN_LOOP_POOL_BYTES {
                        return Err(error(format!(
                            "a btrfs pool needs at least {}",
                            format_size(MIN_LOOP_POOL_BYTES)
                        )));
                    }
                    Ok(StorageSpec::BtrfsLoop { size_bytes })
                }
                None => Err(error("unknown storage".into())),
            },
        }
    }
}

impl fmt::Display for StorageSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageSpec::Auto => f.write_str("auto"),
            StorageSpec::Plain => f.write_str("plain"),
            StorageSpec::Btrfs => f.write_str("btrfs"),
            StorageSpec::BtrfsLoop { size_bytes } => {
                write!(f, "btrfs-loop:{}", format_size_exact(*size_bytes))
            }
        }
    }
}

/// `20G`, `512M`, `300MiB`, `1t`, `4096` → bytes (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!("size {text:?} does not start with a number"));
    }
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("unknown size suffix {suffix:?}")),
    };
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("size {text:?} is too large"))?;
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

/// Human-readable, rounded: `20 GiB`, `300 MiB`, `1.5 GiB`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Exact and parseable again by [`parse_size`]: `20G`, `300M`, `1536K`.
fn format_size_exact(bytes: u64) -> String {
    for (shift, suffix) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if bytes != 0 && bytes.is_multiple_of(1 << shift) {
            return format!("{}{suffix}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// What a store really uses, once opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageKind {
    /// Volumes are btrfs subvolumes and clones are snapshots.
    Btrfs { loop_image: Option<LoopImage> },
    /// Volumes are directories and clones are copies, sharing extents when
    /// the filesystem can (`reflink`: btrfs, XFS with reflink, bcachefs...).
    Plain { reflink: bool, filesystem: String },
}

/// The image file behind a loop-mounted pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoopImage {
    pub path: PathBuf,
    pub size_bytes: u64,
}

impl StorageKind {
    /// Whether a clone costs (about) the same whatever the volume's size.
    pub fn is_copy_on_write(&self) -> bool {
        matches!(
            self,
            StorageKind::Btrfs { .. } | StorageKind::Plain { reflink: true, .. }
        )
    }

    /// The method every clone of this store uses.
    pub fn clone_method(&self) -> CloneMethod {
        match self {
            StorageKind::Btrfs { .. } => CloneMethod::BtrfsSnapshot,
            StorageKind::Plain { reflink: true, .. } => CloneMethod::ReflinkCopy,
            StorageKind::Plain { reflink: false, .. } => CloneMethod::PlainCopy,
        }
    }
}

/// `btrfs (loop image /x/volumes.img, 20 GiB)`, `btrfs`,
/// `plain copy on ext4 (no reflink: a clone copies every byte)`.
impl fmt::Display for StorageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageKind::Btrfs { loop_image: None } => f.write_str("btrfs"),
            StorageKind::Btrfs {
                loop_image: Some(image),
            } => write!(
                f,
                "btrfs (loop image {}, {})",
                image.path.display(),
                format_size(image.size_bytes)
            ),
            StorageKind::Plain {
                reflink: true,
                filesystem,
            } => {
                write!(f, "reflink copy on {filesystem}")
            }
            StorageKind::Plain {
                reflink: false,
                filesystem,
            } => write!(
                f,
                "plain copy on {filesystem} (no reflink: a clone copies every byte)"
            ),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloneMethod {
    BtrfsSnapshot,
    ReflinkCopy,
    PlainCopy,
}

impl fmt::Display for CloneMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CloneMethod::BtrfsSnapshot => "btrfs snapshot",
            CloneMethod::ReflinkCopy => "reflink copy",
            CloneMethod::PlainCopy => "plain copy",
        })
    }
}

/// What a clone did, for the activity log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloneReport {
    pub method: CloneMethod,
    /// Apparent size of the files copied; `None` for a snapshot, which
    /// copies nothing.
    pub bytes: Option<u64>,
    pub elapsed: Duration,
}

impl fmt::Display for CloneReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.method)?;
        if let Some(bytes) = self.bytes {
            write!(f, " of {}", format_size(bytes))?;
        }
        write!(f, " in {:.3} s", self.elapsed.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<StorageSpec, &str>) {
        let got = input.parse::<StorageSpec>();
        match expected {
            Ok(spec) => {
                assert_eq!(got, Ok(spec), "{input:?}");
                assert_eq!(spec.to_string().parse::<StorageSpec>(), Ok(spec));
            }
            Err(reason) => {
                let message = got.expect_err(input).to_string();
                assert!(message.contains(reason), "{input:?}: {message}");
                assert!(message.contains("expected auto, plain, btrfs or btrfs-loop:<size>"));
            }
        }
    }

    #[test]
    fn specs() {
        const G: u64 = 1 << 30;
        check("auto", Ok(StorageSpec::Auto));
        check("plain", Ok(StorageSpec::Plain));
        check("btrfs", Ok(StorageSpec::Btrfs));
        check(
            "btrfs-loop:20G",
            Ok(StorageSpec::BtrfsLoop { size_bytes: 20 * G }),
        );
        check(
            "btrfs-loop:20g",
            Ok(StorageSpec::BtrfsLoop { size_bytes: 20 * G }),
        );
        check(
            "btrfs-loop:20GiB",
            Ok(StorageSpec::BtrfsLoop { size_bytes: 20 * G }),
        );
        check(
            "btrfs-loop:300M",
            Ok(StorageSpec::BtrfsLoop {
                size_bytes: 300 << 20,
            }),
        );
        check(
            "btrfs-loop:1T",
            Ok(StorageSpec::BtrfsLoop {
                size_bytes: 1 << 40,
            }),
        );
        check(
            "btrfs-loop:204800K",
            Ok(StorageSpec::BtrfsLoop {
                size_bytes: 200 << 20,
            }),
        );
        check(
            "btrfs-loop:209715201",
            Ok(StorageSpec::BtrfsLoop {
                size_bytes: (200 << 20) + 1,
            }),
        );
        check("btrfs-loop", Err("needs a size"));
        check("btrfs-loop:", Err("does not start with a number"));
        check("btrfs-loop:G", Err("does not start with a number"));
        check("btrfs-loop:20X", Err("unknown size suffix \"X\""));
        check("btrfs-loop:1.5G", Err("unknown size suffix \".5G\""));
        check("btrfs-loop:100M", Err("at least 128 MiB"));
        check("btrfs-loop:99999999999T", Err("too large"));
        check("zfs", Err("unknown storage"));
        check("", Err("unknown storage"));
    }

    #[test]
    fn kinds_display() {
        let kind = StorageKind::Btrfs {
            loop_image: Some(LoopImage {
                path: "/x/volumes.img".into(),
                size_bytes: 20 << 30,
            }),
        };
        assert_eq!(
            kind.to_string(),
            "btrfs (loop image /x/volumes.img, 20 GiB)"
        );
        let kind = StorageKind::Plain {
            reflink: false,
            filesystem: "ext4".into(),
        };
        assert_eq!(
            kind.to_string(),
            "plain copy on ext4 (no reflink: a clone copies every byte)"
        );
        assert!(!kind.is_copy_on_write());
        assert_eq!(format_size(1536 << 20), "1.5 GiB");
        assert_eq!(format_size(10), "10 B");
    }
}
