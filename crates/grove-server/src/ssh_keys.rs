//! Users' SSH public keys: `ssh-key:add|list|delete` (each user manages their own), and
//! the checks a key passes before it is stored (a pure parser of the public key's wire
//! format, RFC 4253 §6.6, RFC 5656 §3.1, RFC 8709).

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use grove_store::{SshKeyRow, UserRow};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::handlers::{ApiResult, JsonBody};
use crate::platform::Platform;

/// RSA keys shorter than this are refused (NIST SP 800-131A; OpenSSH's own minimum
/// since 9.0 is 1024, which is breakable).
pub const RSA_MIN_BITS: usize = 2048;

/// A public key that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// `ssh-ed25519`, `ssh-rsa`, `ecdsa-sha2-nistp256`, ...
    pub key_type: String,
    /// The key blob in base64, as in an `authorized_keys` line.
    pub data: String,
    pub comment: String,
    /// `SHA256:<base64>`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
}

/// Parses one public key (`TYPE BASE64 [COMMENT]`, the contents of a `.pub` file);
/// the error says what is wrong with it.
pub fn parse_public_key(text: &str) -> Result<PublicKey, String> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let line = lines.next().ok_or("no public key given")?;
    if line.contains("PRIVATE KEY") {
        return Err("this is a private key: give the public one (the `.pub` file)".into());
    }
    if lines.next().is_some() {
        return Err("more than one line: add one public key at a time".into());
    }
    let mut fields = line.split_whitespace();
    let key_type = fields.next().unwrap_or_default();
    let encoded = fields
        .next()
        .ok_or("not a public key: expected `TYPE BASE64 [COMMENT]`, as in a `.pub` file")?;
    let comment = fields.collect::<Vec<_>>().join(" ");
    check_type(key_type)?;
    let blob = STANDARD
        .decode(encoded)
        .map_err(|_| "the key data is not valid base64".to_string())?;
    check_blob(key_type, &blob)?;
    Ok(PublicKey {
        key_type: key_type.to_string(),
        data: encoded.to_string(),
        comment,
        fingerprint: format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(&blob))),
    })
}

fn check_type(key_type: &str) -> Result<(), String> {
    match key_type {
        "ssh-ed25519" | "ssh-rsa" | "ecdsa-sha2-nistp256" | "ecdsa-sha2-nistp384"
        | "ecdsa-sha2-nistp521" => Ok(()),
        "ssh-dss" => Err("DSA keys are refused: they are insecure (OpenSSH removed them); use ed25519".into()),
        t if t.starts_with("sk-") => Err(format!(
            "security-key (FIDO) keys (`{t}`) are not supported yet; use ed25519, RSA or ECDSA"
        )),
        t if t.contains('=') || t.contains(',') => Err(
            "`authorized_keys` options are not accepted: give the public key alone (`TYPE BASE64 [COMMENT]`)".into(),
        ),
        t => Err(format!(
            "unsupported key type `{t}`: use ssh-ed25519, ssh-rsa (at least {RSA_MIN_BITS} bits) or ecdsa-sha2-nistp256/384/521"
        )),
    }
}

/// Checks the decoded key against its type: the blob names the same type and holds a
/// key of the right shape and size, and nothing after it.
fn check_blob(key_type: &str, blob: &[u8]) -> Result<(), String> {
    let truncated = || format!("the `{key_type}` key data is truncated or malformed");
    let mut reader = Reader(blob);
    let named = reader.string().ok_or_else(truncated)?;
    if named != key_type.as_bytes() {
        return Err(format!(
            "the key data is a `{}` key, but the line says `{key_type}`",
            String::from_utf8_lossy(named)
        ));
    }
    match key_type {
        "ssh-ed25519" => {
            let key = reader.string().ok_or_else(truncated)?;
            if key.len() != 32 {
                return Err(truncated());
            }
        }
        "ssh-rsa" => {
            let _exponent = reader.string().ok_or_else(truncated)?;
            let modulus = reader.string().ok_or_else(truncated)?;
            let bits = bit_length(modulus);
            if bits < RSA_MIN_BITS {
                return Err(format!(
                    "RSA keys need at least {RSA_MIN_BITS} bits; this one has {bits}"
                ));
            }
        }
        _ => {
            // ecdsa-sha2-<curve>: the curve again, then an uncompressed point.
            let curve = key_type.trim_start_matches("ecdsa-sha2-");
            let named_curve = reader.string().ok_or_else(truncated)?;
            let point = reader.string().ok_or_else(truncated)?;
            let point_len = match curve {
                "nistp256" => 65,
                "nistp384" => 97,
                _ => 133,
            };
            if named_curve != curve.as_bytes()
                || point.len() != point_len
                || point.first() != Some(&4)
            {
                return Err(truncated());
            }
        }
    }
    if !reader.0.is_empty() {
        return Err(truncated());
    }
    Ok(())
}

/// The bit length of an unsigned big-endian integer (an SSH `mpint`).
fn bit_length(number: &[u8]) -> usize {
    let Some(first) = number.iter().position(|&b| b != 0) else {
        return 0;
    };
    let leading = number[first].leading_zeros() as usize;
    (number.len() - first) * 8 - leading
}

/// The SSH wire format's length-prefixed strings.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn string(&mut self) -> Option<&'a [u8]> {
        let (len, rest) = self.0.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        if rest.len() < len {
            return None;
        }
        let (value, rest) = rest.split_at(len);
        self.0 = rest;
        Some(value)
    }
}

fn to_api(row: SshKeyRow) -> grove_api::SshKey {
    grove_api::SshKey {
        id: row.id,
        title: row.title,
        key_type: row.key_type,
        fingerprint: row.fingerprint,
        created_at: row.created_at,
    }
}

pub async fn list(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
) -> ApiResult<Json<Vec<grove_api::SshKey>>> {
    Ok(Json(
        p.store.ssh_keys(user.id)?.into_iter().map(to_api).collect(),
    ))
}

pub async fn add(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    JsonBody(body): JsonBody<grove_api::AddSshKey>,
) -> ApiResult<(StatusCode, Json<grove_api::SshKey>)> {
    let key = parse_public_key(&body.key)
        .map_err(|reason| Error::Invalid(format!("this SSH key is refused: {reason}")))?;
    let title = body
        .title
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| key.comment.clone());
    let title = if title.is_empty() {
        key.key_type.clone()
    } else {
        title
    };
    if title.len() > 200 || title.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "a key's title is one line of at most 200 characters".into(),
        ));
    }
    let row = p
        .store
        .add_ssh_key(user.id, &key.fingerprint, &key.key_type, &key.data, &title)?;
    tracing::info!(user = %user.name, fingerprint = %row.fingerprint, "SSH key added.");
    Ok((StatusCode::CREATED, Json(to_api(row))))
}

pub async fn delete(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    if !p.store.delete_ssh_key(user.id, id)? {
        return Err(Error::NotFound(format!("you have no SSH key {id}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Where the SSH gateway listens (`grove ssh` builds its `ssh` command from it).
pub async fn gateway(State(p): State<Arc<Platform>>) -> Json<grove_api::SshGateway> {
    Json(grove_api::SshGateway {
        address: p
            .settings
            .ssh_listen
            .filter(|_| p.ssh_logins.serving())
            .map(|a| a.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGByPmQm8b85J/OHUYdwuMX9QByLiZxsh6COPljMIMzO dev@example";
    const ECDSA384: &str = "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBFq+ov8ivZEV6r94+MvaXCZlNyYxRAUTJTbNhr+XRenpqHTBBLPDhsGeXdwKRqfj+DOGXIf9WFNvz1HDDboi3ZeG7X7ORlGemsq4OAdmr2wxI14+/amyxQFVFEgITatv5w== root@vm";
    const RSA1024: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCjhhzCHwnPoZIeIRhqZw9EifENspS6aQD7KZmm4JSTPl8d18E69sNRcubrfAYWLJox3U4OScRglfpk6YY/ULBsjCKtUlkbb5GWwOybGadlymJM2EaV8GfslIYXBJeFu3OLtxDTHOyMUehIXYpN/blgE++E/3ZHA9DDLfIHkWRiCw== root@vm";

    /// `expected`: the fingerprint (as `ssh-keygen -l` printed it for these keys), or a
    /// part of the refusal.
    fn check(input: &str, expected: Result<&str, &str>) {
        match (parse_public_key(input), expected) {
            (Ok(key), Ok(fingerprint)) => assert_eq!(key.fingerprint, fingerprint, "{input}"),
            (Err(error), Err(part)) => assert!(error.contains(part), "{input}: {error}"),
            (got, expected) => panic!("{input}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn keys_are_checked_and_fingerprinted_as_ssh_keygen_does() {
        check(
            ED25519,
            Ok("SHA256:aNNpikAJCcrC0c5ZVHK7VGZl644ebdzrM7GNgCUzF00"),
        );
        check(
            &format!("\n# my laptop\n{ED25519}\n"),
            Ok("SHA256:aNNpikAJCcrC0c5ZVHK7VGZl644ebdzrM7GNgCUzF00"),
        );
        check(
            ECDSA384,
            Ok("SHA256:C/XcOOewRcRGBfQ174rtdxnXuHmZtYYFopZsZ2C89Jw"),
        );
        check(RSA1024, Err("at least 2048 bits; this one has 1024"));
        check("", Err("no public key"));
        check("ssh-ed25519", Err("expected `TYPE BASE64"));
        check("ssh-dss AAAA", Err("DSA keys are refused"));
        check("sk-ssh-ed25519@openssh.com AAAA", Err("FIDO"));
        check(
            &format!("command=\"x\" {ED25519}"),
            Err("options are not accepted"),
        );
        check("ssh-ed25519 not!base64", Err("not valid base64"));
        check(
            &ED25519.replace("ssh-ed25519 ", "ssh-rsa "),
            Err("is a `ssh-ed25519` key, but the line says `ssh-rsa`"),
        );
        check(
            &format!("{ED25519}\n{ED25519}"),
            Err("one public key at a time"),
        );
        check("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGBy", Err("truncated"));
        check("-----BEGIN OPENSSH PRIVATE KEY-----", Err("a private key"));
        check("ssh-foo AAAA", Err("unsupported key type `ssh-foo`"));
    }

    #[test]
    fn bit_lengths_skip_leading_zeros() {
        assert_eq!(bit_length(&[0, 0x80, 0]), 16);
        assert_eq!(bit_length(&[0x01]), 1);
        assert_eq!(bit_length(&[0, 0]), 0);
    }
}
