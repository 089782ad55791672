use std::fmt;
use std::str::FromStr;

use crate::VolumeError;

/// Most segments an id may have (`project/env/services/db` uses four).
pub const MAX_SEGMENTS: usize = 8;
/// Longest segment, in bytes; keeps every path well below `NAME_MAX`.
pub const MAX_SEGMENT_LEN: usize = 100;

/// The name of a volume, which is also its path below the store's root.
///
/// One to [`MAX_SEGMENTS`] segments separated by `/`; a segment is made of
/// `[a-z0-9._-]`, starts with a letter or a digit (so `.`, `..` and hidden
/// names, which the store keeps for itself, are impossible) and is at most
/// [`MAX_SEGMENT_LEN`] bytes long. Example: `shop/main/services/db`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VolumeId(String);

impl VolumeId {
    pub fn new(id: impl Into<String>) -> Result<VolumeId, VolumeError> {
        let id = id.into();
        match check(&id) {
            Ok(()) => Ok(VolumeId(id)),
            Err(reason) => Err(VolumeError::InvalidId { id, reason }),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The ids of the directories above this volume, outermost first:
    /// `a/b/c` → `a`, `a/b`.
    pub(crate) fn ancestors(&self) -> impl Iterator<Item = &str> {
        self.0.match_indices('/').map(|(i, _)| &self.0[..i])
    }

    /// The last segment.
    pub fn leaf(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

fn check(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        return Err("it is empty");
    }
    let mut count = 0;
    for segment in id.split('/') {
        count += 1;
        if count > MAX_SEGMENTS {
            return Err("it has more than 8 segments");
        }
        if segment.is_empty() {
            return Err("it has an empty segment (leading, trailing or double '/')");
        }
        if segment.len() > MAX_SEGMENT_LEN {
            return Err("a segment is longer than 100 characters");
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        {
            return Err("only a-z, 0-9, '.', '_' and '-' are allowed in a segment");
        }
        if !segment.as_bytes()[0].is_ascii_alphanumeric() {
            return Err("a segment must start with a letter or a digit");
        }
    }
    Ok(())
}

impl FromStr for VolumeId {
    type Err = VolumeError;

    fn from_str(s: &str) -> Result<VolumeId, VolumeError> {
        VolumeId::new(s)
    }
}

impl TryFrom<&str> for VolumeId {
    type Error = VolumeError;

    fn try_from(s: &str) -> Result<VolumeId, VolumeError> {
        VolumeId::new(s)
    }
}

impl fmt::Display for VolumeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for VolumeId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_id(input: &str, expected: Result<(), &str>) {
        let got = VolumeId::new(input).map(|_| ()).map_err(|e| e.to_string());
        match expected {
            Ok(()) => assert!(got.is_ok(), "{input:?}: {got:?}"),
            Err(reason) => {
                let message = got.expect_err(input);
                assert!(message.contains(reason), "{input:?}: {message}");
            }
        }
    }

    #[test]
    fn ids() {
        check_id("db", Ok(()));
        check_id("shop/main/services/db", Ok(()));
        check_id("a.b_c-d/0", Ok(()));
        check_id("1/2/3/4/5/6/7/8", Ok(()));
        check_id("", Err("empty"));
        check_id("1/2/3/4/5/6/7/8/9", Err("more than 8 segments"));
        check_id("/a", Err("empty segment"));
        check_id("a/", Err("empty segment"));
        check_id("a//b", Err("empty segment"));
        check_id("a/../b", Err("must start with a letter or a digit"));
        check_id(".", Err("must start with a letter or a digit"));
        check_id(".tmp", Err("must start with a letter or a digit"));
        check_id("-x", Err("must start with a letter or a digit"));
        check_id("Shop", Err("only a-z"));
        check_id("a b", Err("only a-z"));
        check_id("a\\b", Err("only a-z"));
        check_id("é", Err("only a-z"));
        check_id(&"x".repeat(101), Err("longer than 100"));
    }

    #[test]
    fn ancestors_and_leaf() {
        let id = VolumeId::new("a/b/c").expect("valid");
        assert_eq!(id.ancestors().collect::<Vec<_>>(), ["a", "a/b"]);
        assert_eq!(id.leaf(), "c");
        let id = VolumeId::new("a").expect("valid");
        assert_eq!(id.ancestors().count(), 0);
        assert_eq!(id.leaf(), "a");
    }
}
