//! The API of users, roles and tokens: `user:add|list|get|update|delete` (project admins
//! manage their project's users) and `auth:token-create|list|delete` (everyone manages
//! their own tokens).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use grove_store::{ProjectAccessRow, ProjectRole, UserRow};

use crate::access;
use crate::auth;
use crate::error::Error;
use crate::handlers::{ApiResult, JsonBody};
use crate::platform::Platform;

pub async fn list(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path(project): Path<String>,
) -> ApiResult<Json<Vec<grove_api::ProjectUser>>> {
    access::project(&p, &user, &project)?.allow_project_admin("list the project's users")?;
    Ok(Json(
        p.store
            .project_users(&project)?
            .iter()
            .map(|row| project_user_dto(row, None))
            .collect(),
    ))
}

pub async fn add(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path(project): Path<String>,
    JsonBody(body): JsonBody<grove_api::AddProjectUser>,
) -> ApiResult<(StatusCode, Json<grove_api::ProjectUser>)> {
    access::project(&p, &user, &project)?.allow_project_admin("add users")?;
    let email = body.email.trim();
    if !valid_email(email) {
        return Err(Error::Invalid(format!(
            "`{email}` is not an email address (name@domain)"
        )));
    }
    if let Some(existing) = p.store.user_by_name(email)?
        && p.store.project_access(&project, existing.id)?.is_some()
    {
        return Err(Error::Conflict(format!(
            "`{email}` already has access to project `{project}`: change their roles with \
             `grove user:update {email} -p {project} --role ...`"
        )));
    }
    let (role, types) = access::parse_roles(body.role.as_deref(), &body.environment_types, None)?;
    let token = auth::random_token("pat");
    let added =
        p.store
            .add_project_user(&project, email, role, &types, &auth::token_hash(&token))?;
    tracing::info!(project = %project, user = %email, by = %user.name, role = %role, "User added to the project.");
    let token = added.created.then_some(token);
    Ok((
        StatusCode::CREATED,
        Json(project_user_dto(&added.access, token)),
    ))
}

pub async fn get(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, member)): Path<(String, String)>,
) -> ApiResult<Json<grove_api::ProjectUser>> {
    access::project(&p, &user, &project)?.allow_project_admin("see the project's users")?;
    Ok(Json(project_user_dto(
        &member_of(&p, &project, &member)?,
        None,
    )))
}

pub async fn update(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, member)): Path<(String, String)>,
    JsonBody(body): JsonBody<grove_api::UpdateProjectUser>,
) -> ApiResult<Json<grove_api::ProjectUser>> {
    access::project(&p, &user, &project)?.allow_project_admin("change users' roles")?;
    let current = member_of(&p, &project, &member)?;
    let (role, types) = access::parse_roles(
        body.role.as_deref(),
        &body.environment_types,
        Some(&current),
    )?;
    if !p
        .store
        .set_project_access(&project, current.user.id, role, &types)?
    {
        return Err(not_a_member(&project, &member));
    }
    tracing::info!(project = %project, user = %current.user.name, by = %user.name, role = %role, "User's roles changed.");
    Ok(Json(project_user_dto(
        &member_of(&p, &project, &member)?,
        None,
    )))
}

pub async fn remove(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, member)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    access::project(&p, &user, &project)?.allow_project_admin("remove users")?;
    let current = member_of(&p, &project, &member)?;
    if !p.store.remove_project_user(&project, current.user.id)? {
        return Err(not_a_member(&project, &member));
    }
    tracing::info!(project = %project, user = %current.user.name, by = %user.name, "User removed from the project.");
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_tokens(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
) -> ApiResult<Json<Vec<grove_api::Token>>> {
    Ok(Json(
        p.store
            .tokens(user.id)?
            .into_iter()
            .map(|t| grove_api::Token {
                id: t.id,
                name: t.name,
                created_at: t.created_at,
                token: None,
            })
            .collect(),
    ))
}

pub async fn create_token(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    JsonBody(body): JsonBody<grove_api::CreateToken>,
) -> ApiResult<(StatusCode, Json<grove_api::Token>)> {
    let name = body.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(Error::Invalid(
            "a token needs a name (at most 200 characters) saying what uses it".into(),
        ));
    }
    let token = auth::random_token("pat");
    let row = p
        .store
        .create_token(user.id, name, &auth::token_hash(&token))?;
    Ok((
        StatusCode::CREATED,
        Json(grove_api::Token {
            id: row.id,
            name: row.name,
            created_at: row.created_at,
            token: Some(token),
        }),
    ))
}

pub async fn delete_token(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let missing = || {
        Error::NotFound(format!(
            "you have no API token `{id}` (see auth:token-list)"
        ))
    };
    let id: i64 = id.parse().map_err(|_| missing())?;
    if !p.store.delete_token(user.id, id)? {
        return Err(missing());
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A member of the project, by email or id.
fn member_of(p: &Platform, project: &str, member: &str) -> ApiResult<ProjectAccessRow> {
    p.store
        .project_users(project)?
        .into_iter()
        .find(|row| row.user.name == member || row.user.id.to_string() == member)
        .ok_or_else(|| not_a_member(project, member))
}

fn not_a_member(project: &str, member: &str) -> Error {
    Error::NotFound(format!("`{member}` has no access to project `{project}`"))
}

fn valid_email(email: &str) -> bool {
    email.len() <= 254
        && !email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/')
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        })
}

fn project_user_dto(row: &ProjectAccessRow, token: Option<String>) -> grove_api::ProjectUser {
    grove_api::ProjectUser {
        id: row.user.id,
        email: row.user.name.clone(),
        project: row.project.clone(),
        role: row.role.as_str().to_string(),
        environment_types: match row.role {
            ProjectRole::Admin => crate::platform::ENVIRONMENT_TYPES
                .iter()
                .map(|kind| (kind.to_string(), "admin".to_string()))
                .collect(),
            ProjectRole::Viewer => row
                .types
                .iter()
                .map(|(kind, role)| (kind.clone(), role.as_str().to_string()))
                .collect(),
        },
        created_at: row.created_at.clone(),
        token,
    }
}
