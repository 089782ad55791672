//! Who may do what: users' roles per project and per environment type, and their API
//! tokens. The store records roles; deciding what a role allows is the server's.

use std::collections::BTreeMap;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{OptionalExtension, params};

use crate::{ProjectRow, Result, Store, StoreError, UserRow, project_from_row, timestamp_now};

/// `users.role` of a platform administrator (the admin of the first start): every
/// project, every operation.
pub const PLATFORM_ADMIN: &str = "admin";
/// `users.role` of everyone else: what they may do comes from their project roles.
pub const PLATFORM_USER: &str = "user";

/// A user's role in a project, as on Platform.sh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProjectRole {
    /// Everything on every environment, and managing the project's users.
    Admin,
    /// A member: what they may do on environments comes from their environment type
    /// roles.
    Viewer,
}

/// A user's role on the environments of one type (`production`, `staging`,
/// `development`), ordered from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EnvironmentRole {
    /// Sees the environments, their activities and logs, and clones the code.
    Viewer,
    /// A viewer who also pushes code and branches new environments.
    Contributor,
    /// A contributor who also runs every operation (activate, deactivate, redeploy,
    /// synchronize, merge into, delete, settings).
    Admin,
}

impl ProjectRole {
    pub const ALL: [ProjectRole; 2] = [ProjectRole::Admin, ProjectRole::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            ProjectRole::Admin => "admin",
            ProjectRole::Viewer => "viewer",
        }
    }

    pub fn parse(value: &str) -> Option<ProjectRole> {
        ProjectRole::ALL.into_iter().find(|r| r.as_str() == value)
    }
}

impl EnvironmentRole {
    pub const ALL: [EnvironmentRole; 3] = [
        EnvironmentRole::Viewer,
        EnvironmentRole::Contributor,
        EnvironmentRole::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EnvironmentRole::Viewer => "viewer",
            EnvironmentRole::Contributor => "contributor",
            EnvironmentRole::Admin => "admin",
        }
    }

    pub fn parse(value: &str) -> Option<EnvironmentRole> {
        EnvironmentRole::ALL
            .into_iter()
            .find(|r| r.as_str() == value)
    }
}

impl std::fmt::Display for ProjectRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for EnvironmentRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ToSql for ProjectRole {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for ProjectRole {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        ProjectRole::parse(text)
            .ok_or_else(|| FromSqlError::Other(format!("unknown project role `{text}`").into()))
    }
}

impl ToSql for EnvironmentRole {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for EnvironmentRole {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        EnvironmentRole::parse(text).ok_or_else(|| {
            FromSqlError::Other(format!("unknown environment type role `{text}`").into())
        })
    }
}

/// A user's access to one project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectAccessRow {
    pub project: String,
    pub user: UserRow,
    pub role: ProjectRole,
    /// Roles by environment type; a type missing here gives no access to its
    /// environments (a project admin's are not consulted).
    pub types: BTreeMap<String, EnvironmentRole>,
    pub created_at: String,
}

/// An API token as its owner sees it: never the secret, which only its hash stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub created_at: String,
}

/// What `add_project_user` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedUser {
    pub access: ProjectAccessRow,
    /// The user did not exist: it was created with the token whose hash was given.
    pub created: bool,
}

pub(crate) const USER_COLUMNS: &str = "u.id, u.name, u.role";

pub(crate) fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: r.get(0)?,
        name: r.get(1)?,
        role: r.get(2)?,
    })
}

impl Store {
    pub fn user_by_name(&self, name: &str) -> Result<Option<UserRow>> {
        Ok(self
            .read()
            .query_row(
                &format!("SELECT {USER_COLUMNS} FROM users u WHERE u.name = ?1"),
                [name],
                user_from_row,
            )
            .optional()?)
    }

    /// The user's access to a project, if any.
    pub fn project_access(&self, project: &str, user_id: i64) -> Result<Option<ProjectAccessRow>> {
        let conn = self.read();
        access_rows(
            &conn,
            "WHERE a.project = ?1 AND a.user_id = ?2",
            params![project, user_id],
        )
        .map(|mut rows| rows.pop())
    }

    /// Everyone with access to a project, in the order they were added.
    pub fn project_users(&self, project: &str) -> Result<Vec<ProjectAccessRow>> {
        let conn = self.read();
        access_rows(&conn, "WHERE a.project = ?1", params![project])
    }

    /// The projects a user has a role in.
    pub fn projects_of_user(&self, user_id: i64) -> Result<Vec<ProjectRow>> {
        let conn = self.read();
        let mut stmt = conn.prepare(
            "SELECT p.id, p.title, p.default_branch, p.entropy, p.created_at, p.plan,
                    p.integration_limit, p.development_crons
             FROM projects p JOIN project_access a ON a.project = p.id
             WHERE a.user_id = ?1 ORDER BY p.id",
        )?;
        let rows = stmt.query_map([user_id], project_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Gives `name` a role in `project`, creating the user (with the token of
    /// `new_token_hash`) if there is none of that name; an existing user's roles in the
    /// project are replaced. One transaction: a user is never created without access or
    /// a token.
    pub fn add_project_user(
        &self,
        project: &str,
        name: &str,
        role: ProjectRole,
        types: &BTreeMap<String, EnvironmentRole>,
        new_token_hash: &str,
    ) -> Result<AddedUser> {
        let created = self.write_transaction(|tx, _| {
            let existing: Option<i64> = tx
                .query_row("SELECT id FROM users WHERE name = ?1", [name], |r| r.get(0))
                .optional()?;
            let now = timestamp_now();
            let (user_id, created) = match existing {
                Some(id) => (id, false),
                None => {
                    tx.execute(
                        "INSERT INTO users (name, role, created_at) VALUES (?1, ?2, ?3)",
                        params![name, PLATFORM_USER, now],
                    )?;
                    let id = tx.last_insert_rowid();
                    tx.execute(
                        "INSERT INTO api_tokens (hash, user_id, name, created_at)
                         VALUES (?1, ?2, ?3, ?4)",
                        params![new_token_hash, id, "first token", now],
                    )?;
                    (id, true)
                }
            };
            write_access(tx, project, user_id, role, types, &now)?;
            Ok((user_id, created))
        });
        let (user_id, created) = created?;
        let access = self
            .project_access(project, user_id)?
            .ok_or_else(|| StoreError::Conflict(format!("access of user {user_id}")))?;
        Ok(AddedUser { access, created })
    }

    /// Replaces a member's roles in a project; false if they have none there.
    pub fn set_project_access(
        &self,
        project: &str,
        user_id: i64,
        role: ProjectRole,
        types: &BTreeMap<String, EnvironmentRole>,
    ) -> Result<bool> {
        self.write_transaction(|tx, _| {
            let member: bool = tx
                .query_row(
                    "SELECT count(*) > 0 FROM project_access WHERE project = ?1 AND user_id = ?2",
                    params![project, user_id],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(false);
            if member {
                write_access(tx, project, user_id, role, types, &timestamp_now())?;
            }
            Ok(member)
        })
    }

    /// Takes a user's access to a project away (the user and its tokens remain); false
    /// if they had none.
    pub fn remove_project_user(&self, project: &str, user_id: i64) -> Result<bool> {
        let changed = self.write().conn.execute(
            "DELETE FROM project_access WHERE project = ?1 AND user_id = ?2",
            params![project, user_id],
        )?;
        Ok(changed > 0)
    }

    /// Stores the hash of a new token of `user_id`; the token itself is never stored.
    pub fn create_token(&self, user_id: i64, name: &str, hash: &str) -> Result<TokenRow> {
        let w = self.write();
        let now = timestamp_now();
        w.conn.execute(
            "INSERT INTO api_tokens (hash, user_id, name, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![hash, user_id, name, now],
        )?;
        Ok(TokenRow {
            id: w.conn.last_insert_rowid(),
            name: name.to_string(),
            created_at: now,
        })
    }

    pub fn tokens(&self, user_id: i64) -> Result<Vec<TokenRow>> {
        let conn = self.read();
        let mut stmt = conn.prepare(
            "SELECT id, name, created_at FROM api_tokens WHERE user_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([user_id], |r| {
            Ok(TokenRow {
                id: r.get(0)?,
                name: r.get(1)?,
                created_at: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Deletes one of `user_id`'s tokens; false if it has none of that id.
    pub fn delete_token(&self, user_id: i64, token_id: i64) -> Result<bool> {
        let changed = self.write().conn.execute(
            "DELETE FROM api_tokens WHERE id = ?1 AND user_id = ?2",
            params![token_id, user_id],
        )?;
        Ok(changed > 0)
    }
}

fn write_access(
    tx: &rusqlite::Transaction<'_>,
    project: &str,
    user_id: i64,
    role: ProjectRole,
    types: &BTreeMap<String, EnvironmentRole>,
    now: &str,
) -> Result<()> {
    tx.execute(
        "INSERT INTO project_access (project, user_id, role, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (project, user_id) DO UPDATE SET role = excluded.role",
        params![project, user_id, role, now],
    )?;
    tx.execute(
        "DELETE FROM environment_type_access WHERE project = ?1 AND user_id = ?2",
        params![project, user_id],
    )?;
    for (kind, role) in types {
        tx.execute(
            "INSERT INTO environment_type_access (project, user_id, type, role)
             VALUES (?1, ?2, ?3, ?4)",
            params![project, user_id, kind, role],
        )?;
    }
    Ok(())
}

fn access_rows(
    conn: &rusqlite::Connection,
    filter: &str,
    params: &[&dyn ToSql],
) -> Result<Vec<ProjectAccessRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {USER_COLUMNS}, a.project, a.role, a.created_at
         FROM project_access a JOIN users u ON u.id = a.user_id {filter}
         ORDER BY a.created_at, u.id"
    ))?;
    let mut rows: Vec<ProjectAccessRow> = stmt
        .query_map(params, |r| {
            Ok(ProjectAccessRow {
                user: user_from_row(r)?,
                project: r.get(3)?,
                role: r.get(4)?,
                created_at: r.get(5)?,
                types: BTreeMap::new(),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut types = conn.prepare_cached(
        "SELECT type, role FROM environment_type_access WHERE project = ?1 AND user_id = ?2",
    )?;
    for row in &mut rows {
        let found = types.query_map(params![row.project, row.user.id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, EnvironmentRole>(1)?))
        })?;
        row.types = found.collect::<rusqlite::Result<_>>()?;
    }
    Ok(rows)
}
