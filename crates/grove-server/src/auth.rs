//! API tokens: random, prefixed so secret scanners spot them, stored only as SHA-256.

use base64::Engine;
use sha2::{Digest, Sha256};

/// A new secret token: `grove_<purpose>_<43 url-safe characters>` (32 random bytes).
pub fn random_token(purpose: &str) -> String {
    let mut bytes = [0u8; 32];
    fill_random(&mut bytes);
    format!(
        "grove_{purpose}_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// `n` random lower-case letters and digits (for `PLATFORM_PROJECT_ENTROPY`).
pub fn random_alnum(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = vec![0u8; n];
    fill_random(&mut bytes);
    bytes
        .iter()
        // 256 is not a multiple of 36: the bias this leaves is irrelevant for entropy
        // strings and tokens carry their own 256 bits.
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

fn fill_random(bytes: &mut [u8]) {
    if let Err(error) = getrandom::fill(bytes) {
        // Without the kernel's random source no secret can be made safely.
        panic!("the kernel's random number source failed: {error}");
    }
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares secrets in constant time.
pub fn same_secret(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The token of an `Authorization` header: `Bearer <token>`, or HTTP basic auth with
/// any user name and the token as password (what git sends).
pub fn token_from_header(value: &str) -> Option<String> {
    let value = value.trim();
    if let Some(token) = value.strip_prefix("Bearer ") {
        return Some(token.trim().to_string());
    }
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (_, password) = decoded.split_once(':')?;
    Some(password.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_and_distinct() {
        let a = random_token("pat");
        let b = random_token("pat");
        assert!(a.starts_with("grove_pat_"));
        assert_eq!(a.len(), "grove_pat_".len() + 43);
        assert_ne!(a, b);
        assert_eq!(random_alnum(56).len(), 56);
    }

    #[test]
    fn header_forms() {
        assert_eq!(token_from_header("Bearer abc").as_deref(), Some("abc"));
        // "git:abc"
        assert_eq!(
            token_from_header("Basic Z2l0OmFiYw==").as_deref(),
            Some("abc")
        );
        assert_eq!(token_from_header("Basic !!!"), None);
        assert_eq!(token_from_header("Digest x"), None);
    }

    #[test]
    fn secrets_compare() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
