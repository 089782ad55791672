//! HTTP access control of environments (`environment:http-access`).

use rusqlite::{OptionalExtension, params};

use crate::{Result, Store, timestamp_now};

/// An environment's own access settings (it inherits its parent's without a row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAccessRow {
    pub project: String,
    pub environment: String,
    pub enabled: bool,
    /// `(user, password)`.
    pub basic_auth: Vec<(String, String)>,
    /// `(permission, address)`: `allow` or `deny`, and a CIDR, in the order checked.
    pub addresses: Vec<(String, String)>,
    pub updated_at: String,
}

/// One `user:password` or `permission address` per line; the API refuses control
/// characters, so a line cannot hold a newline.
fn lines(pairs: &[(String, String)], separator: char) -> String {
    pairs
        .iter()
        .map(|(a, b)| format!("{a}{separator}{b}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn pairs(text: &str, separator: char) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| line.split_once(separator))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

impl Store {
    pub fn http_access(&self, project: &str, environment: &str) -> Result<Option<HttpAccessRow>> {
        let conn = self.read();
        let row = conn
            .query_row(
                "SELECT enabled, basic_auth, addresses, updated_at FROM http_access \
                 WHERE project = ?1 AND environment = ?2",
                params![project, environment],
                |row| {
                    let basic_auth: String = row.get(1)?;
                    let addresses: String = row.get(2)?;
                    Ok(HttpAccessRow {
                        project: project.to_string(),
                        environment: environment.to_string(),
                        enabled: row.get(0)?,
                        basic_auth: pairs(&basic_auth, ':'),
                        addresses: pairs(&addresses, ' '),
                        updated_at: row.get(3)?,
                    })
                },
            )
            .optional()?;
        Ok(row)
    }

    /// Sets an environment's own settings (`updated_at` is set here).
    pub fn set_http_access(&self, row: &HttpAccessRow) -> Result<()> {
        self.write().conn.execute(
            "INSERT INTO http_access (project, environment, enabled, basic_auth, addresses, \
             updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (project, environment) DO UPDATE SET enabled = excluded.enabled, \
             basic_auth = excluded.basic_auth, addresses = excluded.addresses, \
             updated_at = excluded.updated_at",
            params![
                row.project,
                row.environment,
                row.enabled,
                lines(&row.basic_auth, ':'),
                lines(&row.addresses, ' '),
                timestamp_now(),
            ],
        )?;
        Ok(())
    }
}
