//! User variables of a project or of one of its environments.

use rusqlite::{OptionalExtension, params};

use crate::{Result, Store, StoreError, timestamp_now};

/// A variable as stored. `environment` is `None` for a project-level variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableRow {
    pub project: String,
    pub environment: Option<String>,
    pub name: String,
    pub value: String,
    pub is_json: bool,
    pub is_sensitive: bool,
    pub visible_build: bool,
    pub visible_runtime: bool,
    pub is_inheritable: bool,
    pub is_enabled: bool,
    pub created_at: String,
    pub updated_at: String,
}

const COLUMNS: &str = "project, environment, name, value, is_json, is_sensitive, visible_build, \
     visible_runtime, is_inheritable, is_enabled, created_at, updated_at";

fn variable_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<VariableRow> {
    let environment: String = row.get(1)?;
    Ok(VariableRow {
        project: row.get(0)?,
        environment: (!environment.is_empty()).then_some(environment),
        name: row.get(2)?,
        value: row.get(3)?,
        is_json: row.get(4)?,
        is_sensitive: row.get(5)?,
        visible_build: row.get(6)?,
        visible_runtime: row.get(7)?,
        is_inheritable: row.get(8)?,
        is_enabled: row.get(9)?,
        created_at: row.get(10)?,
        updated_at: row.get(11)?,
    })
}

impl Store {
    /// The variables of the project (`environment` `None`) or of one environment, by name.
    pub fn variables(&self, project: &str, environment: Option<&str>) -> Result<Vec<VariableRow>> {
        let conn = self.read();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM variables WHERE project = ?1 AND environment = ?2 ORDER BY name"
        ))?;
        let rows = stmt.query_map(
            params![project, environment.unwrap_or_default()],
            variable_from_row,
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn variable(
        &self,
        project: &str,
        environment: Option<&str>,
        name: &str,
    ) -> Result<Option<VariableRow>> {
        let conn = self.read();
        Ok(conn
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM variables
                     WHERE project = ?1 AND environment = ?2 AND name = ?3"
                ),
                params![project, environment.unwrap_or_default(), name],
                variable_from_row,
            )
            .optional()?)
    }

    /// Creates a variable; a conflict when one of that name exists at that level.
    pub fn insert_variable(&self, row: &VariableRow) -> Result<()> {
        let now = timestamp_now();
        let changed = self.write().conn.execute(
            &format!(
                "INSERT INTO variables ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)
                 ON CONFLICT DO NOTHING"
            ),
            params![
                row.project,
                row.environment.as_deref().unwrap_or_default(),
                row.name,
                row.value,
                row.is_json,
                row.is_sensitive,
                row.visible_build,
                row.visible_runtime,
                row.is_inheritable,
                row.is_enabled,
                now
            ],
        )?;
        if changed == 0 {
            return Err(StoreError::Conflict(format!("variable `{}`", row.name)));
        }
        Ok(())
    }

    /// Replaces a variable's value and flags; false when there is none of that name.
    pub fn update_variable(&self, row: &VariableRow) -> Result<bool> {
        let changed = self.write().conn.execute(
            "UPDATE variables SET value = ?4, is_json = ?5, is_sensitive = ?6, visible_build = ?7,
                 visible_runtime = ?8, is_inheritable = ?9, is_enabled = ?10, updated_at = ?11
             WHERE project = ?1 AND environment = ?2 AND name = ?3",
            params![
                row.project,
                row.environment.as_deref().unwrap_or_default(),
                row.name,
                row.value,
                row.is_json,
                row.is_sensitive,
                row.visible_build,
                row.visible_runtime,
                row.is_inheritable,
                row.is_enabled,
                timestamp_now()
            ],
        )?;
        Ok(changed > 0)
    }

    /// Deletes a variable; false when there is none of that name.
    pub fn delete_variable(
        &self,
        project: &str,
        environment: Option<&str>,
        name: &str,
    ) -> Result<bool> {
        let changed = self.write().conn.execute(
            "DELETE FROM variables WHERE project = ?1 AND environment = ?2 AND name = ?3",
            params![project, environment.unwrap_or_default(), name],
        )?;
        Ok(changed > 0)
    }
}
