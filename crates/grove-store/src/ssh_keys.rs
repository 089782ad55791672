//! Users' SSH public keys. The store keeps what was validated by the server; a key
//! belongs to one user (its fingerprint is unique across users).

use rusqlite::{OptionalExtension, params};

use crate::access::{USER_COLUMNS, user_from_row};
use crate::{Result, Store, StoreError, UserRow, timestamp_now};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshKeyRow {
    pub id: i64,
    pub user_id: i64,
    /// `SHA256:<base64 without padding>`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// `ssh-ed25519`, `ssh-rsa`, `ecdsa-sha2-nistp256`, ...
    pub key_type: String,
    /// The key's base64 blob, as in an `authorized_keys` line.
    pub key_data: String,
    pub title: String,
    pub created_at: String,
}

const COLUMNS: &str = "id, user_id, fingerprint, key_type, key_data, title, created_at";

fn key_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SshKeyRow> {
    Ok(SshKeyRow {
        id: r.get(0)?,
        user_id: r.get(1)?,
        fingerprint: r.get(2)?,
        key_type: r.get(3)?,
        key_data: r.get(4)?,
        title: r.get(5)?,
        created_at: r.get(6)?,
    })
}

impl Store {
    /// Adds a key to `user_id`; a conflict when any user already has this key.
    pub fn add_ssh_key(
        &self,
        user_id: i64,
        fingerprint: &str,
        key_type: &str,
        key_data: &str,
        title: &str,
    ) -> Result<SshKeyRow> {
        let w = self.write();
        let now = timestamp_now();
        let inserted = w.conn.execute(
            "INSERT INTO ssh_keys (user_id, fingerprint, key_type, key_data, title, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (fingerprint) DO NOTHING",
            params![user_id, fingerprint, key_type, key_data, title, now],
        )?;
        if inserted == 0 {
            return Err(StoreError::Conflict(format!("the SSH key {fingerprint}")));
        }
        Ok(SshKeyRow {
            id: w.conn.last_insert_rowid(),
            user_id,
            fingerprint: fingerprint.to_string(),
            key_type: key_type.to_string(),
            key_data: key_data.to_string(),
            title: title.to_string(),
            created_at: now,
        })
    }

    pub fn ssh_keys(&self, user_id: i64) -> Result<Vec<SshKeyRow>> {
        let conn = self.read();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM ssh_keys WHERE user_id = ?1 ORDER BY id"
        ))?;
        let rows = stmt.query_map([user_id], key_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The user a key belongs to, with the key's id.
    pub fn user_by_ssh_key(&self, fingerprint: &str) -> Result<Option<(i64, UserRow)>> {
        Ok(self
            .read()
            .query_row(
                &format!(
                    "SELECT {USER_COLUMNS}, k.id FROM ssh_keys k JOIN users u ON u.id = k.user_id
                     WHERE k.fingerprint = ?1"
                ),
                [fingerprint],
                |r| Ok((r.get(3)?, user_from_row(r)?)),
            )
            .optional()?)
    }

    /// Deletes one of `user_id`'s keys; false if it has none of that id.
    pub fn delete_ssh_key(&self, user_id: i64, key_id: i64) -> Result<bool> {
        let changed = self.write().conn.execute(
            "DELETE FROM ssh_keys WHERE id = ?1 AND user_id = ?2",
            params![key_id, user_id],
        )?;
        Ok(changed > 0)
    }
}
