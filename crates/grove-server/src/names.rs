//! Machine names: the DNS-safe form of a branch name used in URLs and paths.

/// The longest machine name, leaving room for a uniqueness suffix within a DNS label.
const MAX_LEN: usize = 32;

/// Lower-case ASCII letters, digits and single dashes, at most 32 characters:
/// `Feature/Foo_Bar` -> `feature-foo-bar`. Never empty.
pub fn machine_name(branch: &str) -> String {
    let mut out = String::with_capacity(branch.len());
    for c in branch.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.truncate(MAX_LEN);
    let trimmed = out.trim_matches('-');
    if trimmed.is_empty() {
        "env".to_string()
    } else {
        trimmed.to_string()
    }
}

/// A project name must be usable as a DNS label and a path: what `machine_name` gives.
pub fn valid_project_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 48 && machine_name(name) == name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_names() {
        for (branch, expected) in [
            ("main", "main"),
            ("Feature/Foo_Bar", "feature-foo-bar"),
            ("--x--", "x"),
            ("ünïcode", "n-code"),
            ("///", "env"),
            ("a".repeat(40).as_str(), "a".repeat(32).as_str()),
            ("release-1.2", "release-1-2"),
        ] {
            assert_eq!(machine_name(branch), expected, "{branch}");
        }
    }

    #[test]
    fn project_names() {
        assert!(valid_project_name("shop"));
        assert!(valid_project_name("my-shop-2"));
        for bad in ["", "Shop", "my_shop", "-x", "a/b"] {
            assert!(!valid_project_name(bad), "{bad}");
        }
    }
}
