//! Authorisation: what a user's roles allow, decided at the edges (the API handlers and
//! git over HTTP) before an operation starts. The operations themselves (`platform`,
//! `tree`) know nothing of users.
//!
//! The model is Platform.sh's: a platform admin (the first start's admin) may do
//! everything; otherwise a user has a role in a project (`admin` or `viewer`) and, as a
//! project viewer, a role per environment type (`admin`, `contributor`, `viewer`). What
//! an operation on an environment needs is a role on that environment's type
//! ([`Action::needs`]). A user without a role in a project is told it does not exist.

use std::collections::BTreeMap;

use grove_store::{
    EnvironmentRole, PLATFORM_ADMIN, ProjectAccessRow, ProjectRole, ProjectRow, UserRow,
};

use crate::error::{Error, Result};
use crate::platform::{ENVIRONMENT_TYPES, Platform};

/// An operation on the environments of one type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// See an environment, its routes, activities and logs.
    View,
    /// Push code to a branch of this type (or create one of this type by pushing).
    Push,
    /// Create an environment of this type by branching.
    Branch,
    /// Push a deletion of the branch, which deletes its environment.
    DeleteByPush,
    /// Push a rewrite of the branch (not a fast-forward).
    ForcePush,
    Activate,
    Deactivate,
    Redeploy,
    /// Bring the parent's code or data into an environment of this type.
    Synchronize,
    /// Merge a child into an environment of this type.
    MergeInto,
    Delete,
    /// Change an environment's type, title, parent or crons.
    Configure,
    /// Back up an environment of this type.
    Backup,
    /// Restore a backup into an environment of this type.
    Restore,
    /// Delete a backup of an environment of this type.
    DeleteBackup,
    /// Cancel an activity of an environment of this type.
    Cancel,
    /// Read what the apps and services of an environment of this type printed.
    ReadLogs,
    /// Open an SSH session (a shell or a command) in an environment of this type.
    Ssh,
}

impl Action {
    /// The least role on the environment's type that allows the action.
    pub fn needs(self) -> EnvironmentRole {
        match self {
            Action::View => EnvironmentRole::Viewer,
            Action::Push
            | Action::Branch
            | Action::Backup
            | Action::Restore
            | Action::Cancel
            | Action::ReadLogs
            | Action::Ssh => EnvironmentRole::Contributor,
            Action::DeleteByPush
            | Action::ForcePush
            | Action::Activate
            | Action::Deactivate
            | Action::Redeploy
            | Action::Synchronize
            | Action::MergeInto
            | Action::Delete
            | Action::Configure
            | Action::DeleteBackup => EnvironmentRole::Admin,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Action::View => "see",
            Action::Push => "push to",
            Action::Branch => "branch new",
            Action::DeleteByPush => "delete (by push)",
            Action::ForcePush => "force-push to",
            Action::Activate => "activate",
            Action::Deactivate => "deactivate",
            Action::Redeploy => "redeploy",
            Action::Cancel => "cancel activities of",
            Action::ReadLogs => "read the app and service logs of",
            Action::Synchronize => "synchronize",
            Action::MergeInto => "merge into",
            Action::Delete => "delete",
            Action::Configure => "change",
            Action::Backup => "back up",
            Action::Restore => "restore a backup into",
            Action::DeleteBackup => "delete backups of",
            Action::Ssh => "open SSH sessions on",
        }
    }
}

/// What one user may do in one project.
#[derive(Debug, Clone)]
pub struct Access {
    pub project: ProjectRow,
    user: String,
    grant: Grant,
}

#[derive(Debug, Clone)]
enum Grant {
    PlatformAdmin,
    Member(ProjectAccessRow),
}

impl Access {
    /// The user's role on environments of `env_type`, if any.
    pub fn role_on(&self, env_type: &str) -> Option<EnvironmentRole> {
        match &self.grant {
            Grant::PlatformAdmin => Some(EnvironmentRole::Admin),
            Grant::Member(row) => match row.role {
                ProjectRole::Admin => Some(EnvironmentRole::Admin),
                ProjectRole::Viewer => row.types.get(env_type).copied(),
            },
        }
    }

    pub fn is_project_admin(&self) -> bool {
        match &self.grant {
            Grant::PlatformAdmin => true,
            Grant::Member(row) => row.role == ProjectRole::Admin,
        }
    }

    pub fn can(&self, env_type: &str, action: Action) -> bool {
        self.role_on(env_type)
            .is_some_and(|role| role >= action.needs())
    }

    /// Allows `action` on environments of `env_type`, or says which role it needs.
    pub fn allow(&self, env_type: &str, action: Action) -> Result<()> {
        if self.can(env_type, action) {
            return Ok(());
        }
        let has = match self.role_on(env_type) {
            Some(role) => format!("you have `{role}`"),
            None => "you have no role there".to_string(),
        };
        Err(Error::Forbidden(format!(
            "to {} {env_type} environments of project `{}`, `{}` needs the `{}` role on \
             the `{env_type}` type ({has}); a project admin can grant it with \
             `grove user:update {} -p {} --role {env_type}:{}`",
            action.describe(),
            self.project.id,
            self.user,
            action.needs(),
            self.user,
            self.project.id,
            action.needs(),
        )))
    }

    /// Managing the project's users needs a project admin.
    pub fn allow_project_admin(&self, what: &str) -> Result<()> {
        if self.is_project_admin() {
            return Ok(());
        }
        Err(Error::Forbidden(format!(
            "to {what}, `{}` needs the `admin` role on project `{}` (you have `viewer`)",
            self.user, self.project.id
        )))
    }

    /// Whether any environment type lets the user push (a push's refs are checked one
    /// by one once git has them).
    pub fn may_push_somewhere(&self) -> bool {
        ENVIRONMENT_TYPES
            .iter()
            .any(|kind| self.can(kind, Action::Push))
    }
}

pub fn is_platform_admin(user: &UserRow) -> bool {
    user.role == PLATFORM_ADMIN
}

/// The user's access to `project`: "no project" both when it does not exist and when the
/// user has no role in it, so that its existence is not revealed.
pub fn project(p: &Platform, user: &UserRow, project: &str) -> Result<Access> {
    let hidden = || Error::NotFound(format!("no project `{project}`"));
    let row = p.store.project(project)?.ok_or_else(hidden)?;
    let grant = if is_platform_admin(user) {
        Grant::PlatformAdmin
    } else {
        Grant::Member(
            p.store
                .project_access(project, user.id)?
                .ok_or_else(hidden)?,
        )
    };
    Ok(Access {
        project: row,
        user: user.name.clone(),
        grant,
    })
}

/// Allows `action` on one environment, whose type is looked up: "no environment" when
/// it does not exist, 403 naming the role when the user's is not enough.
pub fn authorize_environment(
    p: &Platform,
    user: &UserRow,
    project: &str,
    env: &str,
    action: Action,
) -> Result<(Access, grove_store::EnvironmentRow)> {
    let access = self::project(p, user, project)?;
    let env = p.environment(project, env)?;
    access.allow(&env.kind, action)?;
    Ok((access, env))
}

/// Parses roles as the API receives them: a project role, and roles by environment
/// type where `none` takes a type's role away. `current` are the roles being changed
/// (empty for a new member).
pub fn parse_roles(
    role: Option<&str>,
    types: &BTreeMap<String, String>,
    current: Option<&ProjectAccessRow>,
) -> Result<(ProjectRole, BTreeMap<String, EnvironmentRole>)> {
    let project_role = match role {
        Some(role) => ProjectRole::parse(role).ok_or_else(|| {
            Error::Invalid(format!(
                "unknown project role `{role}`: use `admin` or `viewer`, or TYPE:ROLE for an \
                 environment type ({})",
                ENVIRONMENT_TYPES.join(", ")
            ))
        })?,
        None => current.map_or(ProjectRole::Viewer, |c| c.role),
    };
    let mut result = current.map(|c| c.types.clone()).unwrap_or_default();
    for (kind, role) in types {
        if !ENVIRONMENT_TYPES.contains(&kind.as_str()) {
            return Err(Error::Invalid(format!(
                "unknown environment type `{kind}`: use one of {}",
                ENVIRONMENT_TYPES.join(", ")
            )));
        }
        if role == "none" {
            result.remove(kind);
            continue;
        }
        let parsed = EnvironmentRole::parse(role).ok_or_else(|| {
            Error::Invalid(format!(
                "unknown role `{role}` for `{kind}` environments: use admin, contributor, \
                 viewer or none"
            ))
        })?;
        result.insert(kind.clone(), parsed);
    }
    // A project viewer who is given no environment type role sees every environment
    // (Platform.sh's "project viewer"); `TYPE:none` narrows that afterwards.
    let becomes_viewer =
        project_role == ProjectRole::Viewer && current.is_none_or(|c| c.role == ProjectRole::Admin);
    if becomes_viewer && types.is_empty() && result.is_empty() {
        for kind in ENVIRONMENT_TYPES {
            result.insert((*kind).to_string(), EnvironmentRole::Viewer);
        }
    }
    if project_role == ProjectRole::Admin {
        // Admin everywhere: type roles would only mislead.
        result.clear();
    }
    Ok((project_role, result))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn check(role: Option<&str>, given: &[(&str, &str)], expected: &[(&str, EnvironmentRole)]) {
        let (_, parsed) = parse_roles(role, &types(given), None).expect("valid roles");
        let expected: BTreeMap<String, EnvironmentRole> =
            expected.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        assert_eq!(parsed, expected, "{role:?} {given:?}");
    }

    #[test]
    fn roles_as_given() {
        use EnvironmentRole::*;
        check(
            None,
            &[],
            &[
                ("development", Viewer),
                ("production", Viewer),
                ("staging", Viewer),
            ],
        );
        check(
            Some("viewer"),
            &[("development", "contributor")],
            &[("development", Contributor)],
        );
        check(Some("admin"), &[("development", "viewer")], &[]);
        check(None, &[("staging", "none")], &[]);
        assert!(parse_roles(Some("owner"), &types(&[]), None).is_err());
        assert!(parse_roles(None, &types(&[("qa", "viewer")]), None).is_err());
        assert!(parse_roles(None, &types(&[("staging", "boss")]), None).is_err());
    }

    #[test]
    fn actions_need_ordered_roles() {
        assert!(EnvironmentRole::Admin > EnvironmentRole::Contributor);
        assert!(EnvironmentRole::Contributor > EnvironmentRole::Viewer);
        assert_eq!(Action::Push.needs(), EnvironmentRole::Contributor);
        assert_eq!(Action::Redeploy.needs(), EnvironmentRole::Admin);
    }

    #[test]
    fn contributors_back_up_and_restore_viewers_see_admins_delete_backups() {
        assert_eq!(Action::Backup.needs(), EnvironmentRole::Contributor);
        assert_eq!(Action::Restore.needs(), EnvironmentRole::Contributor);
        assert_eq!(Action::DeleteBackup.needs(), EnvironmentRole::Admin);
        assert_eq!(Action::View.needs(), EnvironmentRole::Viewer);
    }
}
