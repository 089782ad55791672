//! `environment:http-access`: an environment's Basic credentials and address rules,
//! stored, inherited by the environments below it that have none of their own, and
//! handed to the router, which checks every request against them.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use grove_api::{AccessAddress, HttpAccessUpdate};
use grove_router::{AddressRule, HttpAccess, Network};
use grove_store::{HttpAccessRow, UserRow};

use crate::access::{self, Action};
use crate::error::{Error, Result};
use crate::handlers::{ApiResult, JsonBody};
use crate::platform::Platform;
use crate::state::owner_key;

/// How far up the tree settings are looked for (the tree is never this deep).
const MAX_DEPTH: usize = 64;

pub(crate) async fn get(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, env)): Path<(String, String)>,
) -> ApiResult<Json<grove_api::HttpAccess>> {
    let (_, env) = access::authorize_environment(&p, &user, &project, &env, Action::View)?;
    Ok(Json(describe(&p, &project, &env.name)?))
}

/// Changes the environment's own settings, then applies them to it and to every
/// environment that inherits them.
pub(crate) async fn update(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, env)): Path<(String, String)>,
    JsonBody(change): JsonBody<HttpAccessUpdate>,
) -> ApiResult<Json<grove_api::HttpAccess>> {
    let (_, env) = access::authorize_environment(&p, &user, &project, &env, Action::Configure)?;
    let mut row = p
        .store
        .http_access(&project, &env.name)?
        .unwrap_or(HttpAccessRow {
            project: project.clone(),
            environment: env.name.clone(),
            enabled: true,
            basic_auth: Vec::new(),
            addresses: Vec::new(),
            updated_at: String::new(),
        });
    if let Some(enabled) = change.is_enabled {
        row.enabled = enabled;
    }
    if let Some(users) = change.basic_auth {
        row.basic_auth = users.into_iter().collect();
    }
    if let Some(addresses) = change.addresses {
        row.addresses = addresses
            .into_iter()
            .map(|a| (a.permission, a.address))
            .collect();
    }
    check(&row)?;
    p.store.set_http_access(&row)?;
    apply_project(&p, &project)?;
    tracing::info!(project = %project, env = %env.name, enabled = row.enabled, "HTTP access changed.");
    Ok(Json(describe(&p, &project, &env.name)?))
}

/// Hands the settings that apply to every environment of `project` to the router.
pub(crate) fn apply_project(p: &Platform, project: &str) -> Result<()> {
    for env in p.store.environments(project)? {
        apply(p, project, &env.name)?;
    }
    Ok(())
}

/// Hands the settings that apply to `env` (its own or inherited) to the router.
pub(crate) fn apply(p: &Platform, project: &str, env: &str) -> Result<()> {
    let access = effective(p, project, env)?
        .map(|(row, _)| row)
        .filter(|row| row.enabled)
        .map(|row| router_access(&row));
    p.router.set_access(&owner_key(project, env), access);
    Ok(())
}

/// The settings that apply to `env` and the environment they belong to.
fn effective(p: &Platform, project: &str, env: &str) -> Result<Option<(HttpAccessRow, String)>> {
    let mut name = env.to_string();
    for _ in 0..MAX_DEPTH {
        if let Some(row) = p.store.http_access(project, &name)? {
            return Ok(Some((row, name)));
        }
        match p.store.environment(project, &name)?.and_then(|e| e.parent) {
            Some(parent) => name = parent,
            None => return Ok(None),
        }
    }
    Ok(None)
}

fn describe(p: &Platform, project: &str, env: &str) -> Result<grove_api::HttpAccess> {
    let Some((row, owner)) = effective(p, project, env)? else {
        return Ok(grove_api::HttpAccess {
            is_enabled: false,
            basic_auth_users: Vec::new(),
            addresses: Vec::new(),
            inherited_from: None,
        });
    };
    Ok(grove_api::HttpAccess {
        is_enabled: row.enabled,
        basic_auth_users: row.basic_auth.iter().map(|(u, _)| u.clone()).collect(),
        addresses: row
            .addresses
            .iter()
            .map(|(permission, address)| AccessAddress {
                permission: permission.clone(),
                address: address.clone(),
            })
            .collect(),
        inherited_from: (owner != env).then_some(owner),
    })
}

fn check(row: &HttpAccessRow) -> Result<()> {
    for (user, password) in &row.basic_auth {
        if user.is_empty() || user.contains(':') || password.is_empty() {
            return Err(Error::Invalid(format!(
                "invalid credentials for `{user}`: a user name without `:` and a non-empty password are needed"
            )));
        }
        if user.chars().chain(password.chars()).any(char::is_control) {
            return Err(Error::Invalid(format!(
                "the credentials of `{user}` contain control characters"
            )));
        }
    }
    for (permission, address) in &row.addresses {
        if permission != "allow" && permission != "deny" {
            return Err(Error::Invalid(format!(
                "`{permission}:{address}`: the permission is `allow` or `deny`"
            )));
        }
        address.parse::<Network>().map_err(Error::Invalid)?;
    }
    Ok(())
}

fn router_access(row: &HttpAccessRow) -> HttpAccess {
    let rules = row
        .addresses
        .iter()
        .filter_map(|(permission, address)| {
            Some(AddressRule {
                allow: permission == "allow",
                network: address.parse().ok()?,
            })
        })
        .collect();
    HttpAccess::new(&row.basic_auth, rules)
}
