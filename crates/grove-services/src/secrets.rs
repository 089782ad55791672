//! The endpoints' passwords of one service instance: generated once, kept by
//! the caller (a small JSON file next to the environment's data), reused on
//! every start so that apps keep working across restarts and redeploys.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::ServiceError;

/// Passwords by endpoint name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secrets {
    pub passwords: BTreeMap<String, String>,
}

impl Secrets {
    /// Fresh random passwords for `endpoint_names`.
    pub fn generate<S: AsRef<str>>(endpoint_names: &[S]) -> Secrets {
        let mut secrets = Secrets::default();
        secrets.ensure(endpoint_names);
        secrets
    }

    /// Adds a password for every endpoint that has none (a new endpoint in the
    /// configuration); returns whether anything was added, i.e. whether the
    /// caller must save the secrets again.
    pub fn ensure<S: AsRef<str>>(&mut self, endpoint_names: &[S]) -> bool {
        let mut changed = false;
        for name in endpoint_names {
            let name = name.as_ref();
            if !self.passwords.contains_key(name) {
                self.passwords.insert(name.to_owned(), random_password());
                changed = true;
            }
        }
        changed
    }

    pub fn password(&self, endpoint: &str) -> Option<&str> {
        self.passwords.get(endpoint).map(String::as_str)
    }

    /// Reads a file written by [`Secrets::save`].
    pub fn load(path: &Path) -> Result<Secrets, ServiceError> {
        let fail = |message: String| ServiceError::Secrets {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| fail(format!("not a secrets file: {e}")))
    }

    /// Writes the secrets readable by root only, replacing the file atomically.
    pub fn save(&self, path: &Path) -> Result<(), ServiceError> {
        use std::os::unix::fs::OpenOptionsExt;
        let fail = |message: String| ServiceError::Secrets {
            path: path.to_owned(),
            message,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| fail(e.to_string()))?;
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let text = serde_json::to_string_pretty(self).map_err(|e| fail(e.to_string()))?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| fail(e.to_string()))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| fail(e.to_string()))?;
        std::fs::rename(&tmp, path).map_err(|e| fail(e.to_string()))
    }
}

/// 24 characters from [A-Za-z0-9]: ~142 bits, and nothing that needs quoting
/// in a URL, a shell or SQL.
fn random_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(24);
    while out.len() < 24 {
        let mut bytes = [0u8; 32];
        if getrandom::fill(&mut bytes).is_err() {
            // The kernel's RNG doesn't fail once booted; never hand out a
            // predictable password if it does.
            panic!("the system random number generator is unavailable");
        }
        for b in bytes {
            // Rejection sampling keeps the distribution uniform (248 = 4 * 62).
            if b < 248 && out.len() < 24 {
                out.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_ensure_save_load() {
        let mut secrets = Secrets::generate(&["mysql", "admin"]);
        let admin = secrets.password("admin").map(str::to_owned);
        assert_eq!(admin.as_deref().map(str::len), Some(24));
        assert_ne!(secrets.password("mysql"), admin.as_deref());
        assert!(!secrets.ensure(&["admin"]));
        assert!(secrets.ensure(&["admin", "reporter"]));
        assert_eq!(secrets.password("admin"), admin.as_deref());

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secrets/db.json");
        secrets.save(&path).expect("save");
        assert_eq!(Secrets::load(&path).expect("load"), secrets);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, "{").expect("write");
        assert!(Secrets::load(&path).is_err());
    }
}
