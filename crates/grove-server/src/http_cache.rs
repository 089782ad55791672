//! The API of the router's HTTP cache: `cache:clear`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use grove_store::UserRow;

use crate::access::{self, Action};
use crate::handlers::ApiResult;
use crate::platform::Platform;
use crate::state::owner_key;

/// Empties the environment's cache; who may redeploy it may clear it.
pub(crate) async fn clear(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, env)): Path<(String, String)>,
) -> ApiResult<Json<grove_api::CacheCleared>> {
    let (_, env) = access::authorize_environment(&p, &user, &project, &env, Action::Redeploy)?;
    let cleared = p.router.clear_cache(&owner_key(&project, &env.name));
    tracing::info!(project = %project, env = %env.name, cleared, "HTTP cache cleared.");
    Ok(Json(grove_api::CacheCleared { cleared }))
}
