//! The API of user variables (`variable:create|list|get|update|delete`), of the project
//! (project admins write them) or of one environment (its type's admins write them;
//! children inherit the inheritable ones). A sensitive value is stored for the apps and
//! never leaves the server again: no answer carries it and nothing logs it. A change
//! redeploys every active environment whose resolved variables it changed, one
//! activity each.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use grove_store::{UserRow, VariableRow, timestamp_now};

use crate::access::{self, Action};
use crate::error::{Error, Result};
use crate::handlers::{ApiResult, JsonBody, activity_dto};
use crate::platform::Platform;

/// Where a variable is defined: the project, or one environment (by branch name).
#[derive(Debug, Clone)]
enum Level {
    Project,
    Environment(String),
}

impl Level {
    fn environment(&self) -> Option<&str> {
        match self {
            Level::Project => None,
            Level::Environment(env) => Some(env),
        }
    }
}

/// Read access: any member sees the project's variables; an environment's need sight
/// of it.
fn may_read(p: &Platform, user: &UserRow, project: &str, env: Option<&str>) -> Result<Level> {
    match env {
        None => {
            access::project(p, user, project)?;
            Ok(Level::Project)
        }
        Some(env) => {
            let (_, row) = access::authorize_environment(p, user, project, env, Action::View)?;
            Ok(Level::Environment(row.name))
        }
    }
}

/// Write access: a project admin for the project's variables, an admin of the
/// environment's type for an environment's.
fn may_write(p: &Platform, user: &UserRow, project: &str, env: Option<&str>) -> Result<Level> {
    match env {
        None => {
            access::project(p, user, project)?.allow_project_admin("change project variables")?;
            Ok(Level::Project)
        }
        Some(env) => {
            let (_, row) = access::authorize_environment(p, user, project, env, Action::Configure)?;
            Ok(Level::Environment(row.name))
        }
    }
}

pub async fn list_project(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path(project): Path<String>,
) -> ApiResult<Json<Vec<grove_api::Variable>>> {
    may_read(&p, &user, &project, None)?;
    Ok(Json(
        p.store
            .variables(&project, None)?
            .iter()
            .map(|row| variable_dto(row, false))
            .collect(),
    ))
}

/// An environment's own variables and those it inherits from its ancestors (nearest
/// first wins, `inherited: true`); the project's are listed by the project.
pub async fn list_environment(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, env)): Path<(String, String)>,
) -> ApiResult<Json<Vec<grove_api::Variable>>> {
    let level = may_read(&p, &user, &project, Some(&env))?;
    Ok(Json(environment_view(&p, &project, &level)?))
}

pub async fn get_project(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<Json<grove_api::Variable>> {
    may_read(&p, &user, &project, None)?;
    let row = p
        .store
        .variable(&project, None, &name)?
        .ok_or_else(|| no_variable(&name, &Level::Project))?;
    Ok(Json(variable_dto(&row, false)))
}

pub async fn get_environment(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, env, name)): Path<(String, String, String)>,
) -> ApiResult<Json<grove_api::Variable>> {
    let level = may_read(&p, &user, &project, Some(&env))?;
    environment_view(&p, &project, &level)?
        .into_iter()
        .find(|v| v.name == name)
        .map(Json)
        .ok_or_else(|| no_variable(&name, &level))
}

pub async fn create_project(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path(project): Path<String>,
    JsonBody(body): JsonBody<grove_api::CreateVariable>,
) -> ApiResult<(StatusCode, Json<grove_api::VariableChange>)> {
    let level = may_write(&p, &user, &project, None)?;
    create(&p, &user, &project, level, body)
}

pub async fn create_environment(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, env)): Path<(String, String)>,
    JsonBody(body): JsonBody<grove_api::CreateVariable>,
) -> ApiResult<(StatusCode, Json<grove_api::VariableChange>)> {
    let level = may_write(&p, &user, &project, Some(&env))?;
    create(&p, &user, &project, level, body)
}

pub async fn update_project(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<grove_api::UpdateVariable>,
) -> ApiResult<Json<grove_api::VariableChange>> {
    let level = may_write(&p, &user, &project, None)?;
    update(&p, &user, &project, level, &name, body)
}

pub async fn update_environment(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, env, name)): Path<(String, String, String)>,
    JsonBody(body): JsonBody<grove_api::UpdateVariable>,
) -> ApiResult<Json<grove_api::VariableChange>> {
    let level = may_write(&p, &user, &project, Some(&env))?;
    update(&p, &user, &project, level, &name, body)
}

pub async fn delete_project(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<Json<grove_api::VariableChange>> {
    let level = may_write(&p, &user, &project, None)?;
    delete(&p, &user, &project, level, &name)
}

pub async fn delete_environment(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, env, name)): Path<(String, String, String)>,
) -> ApiResult<Json<grove_api::VariableChange>> {
    let level = may_write(&p, &user, &project, Some(&env))?;
    delete(&p, &user, &project, level, &name)
}

fn create(
    p: &Arc<Platform>,
    user: &UserRow,
    project: &str,
    level: Level,
    body: grove_api::CreateVariable,
) -> ApiResult<(StatusCode, Json<grove_api::VariableChange>)> {
    let row = VariableRow {
        project: project.to_string(),
        environment: level.environment().map(str::to_string),
        name: body.name.trim().to_string(),
        value: body.value,
        is_json: body.is_json.unwrap_or(false),
        is_sensitive: body.is_sensitive.unwrap_or(false),
        visible_build: body.visible_build.unwrap_or(true),
        visible_runtime: body.visible_runtime.unwrap_or(true),
        is_inheritable: body.is_inheritable.unwrap_or(true),
        is_enabled: body.is_enabled.unwrap_or(true),
        created_at: timestamp_now(),
        updated_at: timestamp_now(),
    };
    validate(&row)?;
    let change = changing(p, project, || {
        p.store.insert_variable(&row).map_err(|e| match e {
            grove_store::StoreError::Conflict(_) => Error::Conflict(format!(
                "variable `{}` already exists {}: change it with `grove variable:update`",
                row.name,
                describe(&level)
            )),
            other => other.into(),
        })
    })?;
    tracing::info!(project = %project, environment = ?level.environment(), variable = %row.name, by = %user.name, "Variable created.");
    let variable = p.store.variable(project, level.environment(), &row.name)?;
    Ok((
        StatusCode::CREATED,
        Json(grove_api::VariableChange {
            variable: variable.map(|row| variable_dto(&row, false)),
            activities: change,
        }),
    ))
}

fn update(
    p: &Arc<Platform>,
    user: &UserRow,
    project: &str,
    level: Level,
    name: &str,
    body: grove_api::UpdateVariable,
) -> ApiResult<Json<grove_api::VariableChange>> {
    let current = p
        .store
        .variable(project, level.environment(), name)?
        .ok_or_else(|| no_variable(name, &level))?;
    if current.is_sensitive && body.is_sensitive == Some(false) {
        return Err(Error::Invalid(format!(
            "variable `{name}` is sensitive, which cannot be undone: delete it and create it \
             again"
        )));
    }
    let row = VariableRow {
        value: body.value.unwrap_or_else(|| current.value.clone()),
        is_json: body.is_json.unwrap_or(current.is_json),
        is_sensitive: body.is_sensitive.unwrap_or(current.is_sensitive),
        visible_build: body.visible_build.unwrap_or(current.visible_build),
        visible_runtime: body.visible_runtime.unwrap_or(current.visible_runtime),
        is_inheritable: body.is_inheritable.unwrap_or(current.is_inheritable),
        is_enabled: body.is_enabled.unwrap_or(current.is_enabled),
        ..current
    };
    validate(&row)?;
    let change = changing(p, project, || {
        if p.store.update_variable(&row)? {
            Ok(())
        } else {
            Err(no_variable(name, &level))
        }
    })?;
    tracing::info!(project = %project, environment = ?level.environment(), variable = %name, by = %user.name, "Variable updated.");
    let variable = p.store.variable(project, level.environment(), name)?;
    Ok(Json(grove_api::VariableChange {
        variable: variable.map(|row| variable_dto(&row, false)),
        activities: change,
    }))
}

fn delete(
    p: &Arc<Platform>,
    user: &UserRow,
    project: &str,
    level: Level,
    name: &str,
) -> ApiResult<Json<grove_api::VariableChange>> {
    let change = changing(p, project, || {
        if p.store
            .delete_variable(project, level.environment(), name)?
        {
            Ok(())
        } else {
            Err(no_variable(name, &level))
        }
    })?;
    tracing::info!(project = %project, environment = ?level.environment(), variable = %name, by = %user.name, "Variable deleted.");
    Ok(Json(grove_api::VariableChange {
        variable: None,
        activities: change,
    }))
}

/// Applies `write` and redeploys the active environments whose resolved variables it
/// changed (through the ordinary redeploy: one activity each, which rebuilds only when
/// a build-visible variable changed, since the build key covers those).
fn changing(
    p: &Arc<Platform>,
    project: &str,
    write: impl FnOnce() -> Result<()>,
) -> Result<Vec<grove_api::Activity>> {
    let active: Vec<String> = p
        .store
        .environments(project)?
        .into_iter()
        .filter(|env| env.status == "active")
        .map(|env| env.name)
        .collect();
    let resolve =
        |env: &str| crate::deploy::user_variables(p, project, env).map_err(Error::Internal);
    let mut before = BTreeMap::new();
    for env in &active {
        before.insert(env.clone(), resolve(env)?);
    }
    write()?;
    let mut activities = Vec::new();
    for env in &active {
        if before.get(env) == Some(&resolve(env)?) {
            continue;
        }
        match p.redeploy(project, env) {
            Ok(id) => {
                if let Some(row) = p.store.activity(&id)? {
                    activities.push(activity_dto(&row));
                }
            }
            // Deactivated meanwhile: its next activation reads the variables anyway.
            Err(Error::Conflict(_)) => {}
            Err(other) => return Err(other),
        }
    }
    Ok(activities)
}

/// The environment's own variables and the inheritable ones of its ancestors that it
/// does not override.
fn environment_view(
    p: &Platform,
    project: &str,
    level: &Level,
) -> Result<Vec<grove_api::Variable>> {
    let mut seen = BTreeMap::new();
    let mut next = level.environment().map(str::to_string);
    let mut depth = 0;
    while let Some(name) = next.take()
        && depth < 64
    {
        for row in p.store.variables(project, Some(&name))? {
            if (depth == 0 || row.is_inheritable) && !seen.contains_key(&row.name) {
                seen.insert(row.name.clone(), variable_dto(&row, depth > 0));
            }
        }
        next = p
            .store
            .environment(project, &name)?
            .and_then(|row| row.parent);
        depth += 1;
    }
    Ok(seen.into_values().collect())
}

fn validate(row: &VariableRow) -> Result<()> {
    let name = &row.name;
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::Invalid(format!(
            "`{name}` is not a variable name: use `env:NAME` for an environment variable, or \
             a name without spaces for `PLATFORM_VARIABLES`"
        )));
    }
    if let Some(env) = name.strip_prefix("env:") {
        let valid = env
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && env.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(Error::Invalid(format!(
                "`{name}`: after `env:` comes an environment variable name (letters, digits \
                 and `_`, not starting with a digit)"
            )));
        }
    }
    if row.is_json && serde_json::from_str::<serde_json::Value>(&row.value).is_err() {
        // The value itself is not repeated: it may be a secret.
        return Err(Error::Invalid(format!(
            "the value of variable `{name}` is not JSON (given with --json)"
        )));
    }
    Ok(())
}

fn describe(level: &Level) -> String {
    match level {
        Level::Project => "on the project".to_string(),
        Level::Environment(env) => format!("on environment `{env}`"),
    }
}

fn no_variable(name: &str, level: &Level) -> Error {
    Error::NotFound(format!("no variable `{name}` {}", describe(level)))
}

/// The wire form; a sensitive value is never sent.
fn variable_dto(row: &VariableRow, inherited: bool) -> grove_api::Variable {
    grove_api::Variable {
        name: row.name.clone(),
        level: if row.environment.is_some() {
            "environment"
        } else {
            "project"
        }
        .to_string(),
        environment: row.environment.clone(),
        value: (!row.is_sensitive).then(|| row.value.clone()),
        is_json: row.is_json,
        is_sensitive: row.is_sensitive,
        is_enabled: row.is_enabled,
        is_inheritable: row.is_inheritable,
        visible_build: row.visible_build,
        visible_runtime: row.visible_runtime,
        inherited,
        created_at: row.created_at.clone(),
        updated_at: row.updated_at.clone(),
    }
}
