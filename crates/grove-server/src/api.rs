//! The HTTP API (axum): the only place that converts between the platform's types and
//! the wire format of `grove-api`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use grove_api::{ErrorKind, paths};
use grove_store::{ActivityRow, EnvironmentRow, ProjectRow, UserRow};
use serde::Deserialize;

use crate::access::{self, Action};
use crate::auth;
use crate::error::Error;
use crate::handlers::{ApiResult, JsonBody, activity_dto};
use crate::ndjson::push_json_line;
use crate::platform::Platform;

pub fn router(platform: Arc<Platform>) -> Router {
    let api = Router::new()
        .route(paths::PROJECTS, get(list_projects).post(create_project))
        .route(paths::PROJECT, get(get_project))
        .route(paths::ENVIRONMENTS, get(list_environments))
        .route(
            paths::ENVIRONMENT,
            get(get_environment)
                .delete(delete_environment)
                .patch(update_environment),
        )
        .route(paths::ENVIRONMENT_BRANCH, post(branch_environment))
        .route(
            paths::ENVIRONMENT_SYNCHRONIZE,
            post(synchronize_environment),
        )
        .route(paths::ENVIRONMENT_ROUTES, get(environment_routes))
        .route(paths::ENVIRONMENT_LOGS, get(crate::env_logs::logs))
        .route(paths::ENVIRONMENT_ACTION, post(environment_action))
        .route(
            paths::ENVIRONMENT_HTTP_ACCESS,
            get(crate::http_access::get).patch(crate::http_access::update),
        )
        .route(
            paths::ENVIRONMENT_CACHE_CLEAR,
            post(crate::http_cache::clear),
        )
        .route(paths::ACTIVITIES, get(list_activities))
        .route(paths::ACTIVITY, get(get_activity))
        .route(paths::ACTIVITY_LOG, get(activity_log))
        .route(paths::ACTIVITY_CANCEL, post(cancel_activity))
        .route(
            paths::PROJECT_USERS,
            get(crate::users::list).post(crate::users::add),
        )
        .route(
            paths::PROJECT_USER,
            get(crate::users::get)
                .patch(crate::users::update)
                .delete(crate::users::remove),
        )
        .route(
            paths::TOKENS,
            get(crate::users::list_tokens).post(crate::users::create_token),
        )
        .route(
            paths::TOKEN,
            axum::routing::delete(crate::users::delete_token),
        )
        .route(
            paths::SSH_KEYS,
            get(crate::ssh_keys::list).post(crate::ssh_keys::add),
        )
        .route(
            paths::SSH_KEY,
            axum::routing::delete(crate::ssh_keys::delete),
        )
        .route(paths::SSH_GATEWAY, get(crate::ssh_keys::gateway))
        .route(
            paths::PROJECT_VARIABLES,
            get(crate::variables::list_project).post(crate::variables::create_project),
        )
        .route(
            paths::PROJECT_VARIABLE,
            get(crate::variables::get_project)
                .patch(crate::variables::update_project)
                .delete(crate::variables::delete_project),
        )
        .route(
            paths::ENVIRONMENT_VARIABLES,
            get(crate::variables::list_environment).post(crate::variables::create_environment),
        )
        .route(
            paths::ENVIRONMENT_VARIABLE,
            get(crate::variables::get_environment)
                .patch(crate::variables::update_environment)
                .delete(crate::variables::delete_environment),
        )
        .route(paths::RUNTIMES, get(crate::runtimes::list))
        .route(paths::RUNTIMES_INSTALL, post(crate::runtimes::install))
        .route(
            paths::ENVIRONMENT_BACKUPS,
            get(crate::backups::list).post(crate::backups::create),
        )
        .route(
            paths::ENVIRONMENT_BACKUP,
            get(crate::backups::get).delete(crate::backups::delete),
        )
        .route(paths::BACKUP_RESTORE, post(crate::backups::restore))
        .route(
            paths::BACKUP_POLICY,
            get(crate::backups::get_policy)
                .put(crate::backups::set_policy)
                .delete(crate::backups::reset_policy),
        )
        .route(
            paths::ENVIRONMENT_BACKUP_VERIFY,
            post(crate::backups::verify),
        )
        .route(paths::ENVIRONMENT_DB_DUMP, get(crate::dumps::dump))
        .fallback(crate::git_http::serve)
        .layer(axum::middleware::from_fn_with_state(
            platform.clone(),
            require_token,
        ))
        // Outermost: a forged form post is refused before anything looks at it.
        .layer(axum::middleware::from_fn(refuse_cross_origin_forms));
    Router::new()
        .route(paths::HOOK_PRE_RECEIVE, post(crate::git_http::pre_receive))
        .merge(api)
        .with_state(platform)
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let kind = self.kind();
        let status = match kind {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::UserInput => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Platform => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if matches!(kind, ErrorKind::Platform | ErrorKind::Unavailable) {
            tracing::error!(kind = kind.as_str(), message = %self, "Request failed.");
        }
        let mut response = (
            status,
            Json(grove_api::ErrorBody {
                error: grove_api::ErrorDetail {
                    kind,
                    message: self.to_string(),
                },
            }),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"grove\""),
            );
        }
        response
    }
}

/// Every API and git request needs a valid token; the user goes into the request.
async fn require_token(
    State(platform): State<Arc<Platform>>,
    mut request: Request,
    next: Next,
) -> Response {
    match authenticate(&platform, request.headers()) {
        Ok(user) => {
            request.extensions_mut().insert(user);
            next.run(request).await
        }
        Err(error) => error.into_response(),
    }
}

/// State-changing requests need a JSON body or Grove's client header, neither of which
/// a web page elsewhere can send without a CORS preflight (never granted): so a browser
/// holding credentials for Grove cannot be made to post a form to it. Git's smart-HTTP
/// posts are exempt: git sends its own content types, and a form cannot speak its
/// protocol.
async fn refuse_cross_origin_forms(request: Request, next: Next) -> Response {
    if is_forgeable(request.method(), request.uri().path(), request.headers()) {
        return Error::Forbidden(format!(
            "{} {} refused: state-changing requests need `Content-Type: application/json` \
             or an `{}` header (cross-origin form posts are not accepted)",
            request.method(),
            request.uri().path(),
            grove_api::CLIENT_HEADER
        ))
        .into_response();
    }
    next.run(request).await
}

fn is_forgeable(method: &Method, path: &str, headers: &HeaderMap) -> bool {
    let changes_state = [Method::POST, Method::PUT, Method::PATCH, Method::DELETE].contains(method);
    if !changes_state || is_git_smart_http_post(path) {
        return false;
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
    let client = headers
        .get(grove_api::CLIENT_HEADER)
        .is_some_and(|v| !v.is_empty());
    !(json || client)
}

fn is_git_smart_http_post(path: &str) -> bool {
    path.split_once(".git/")
        .is_some_and(|(_, rest)| rest == "git-receive-pack" || rest == "git-upload-pack")
}

fn authenticate(platform: &Platform, headers: &HeaderMap) -> Result<UserRow, Error> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(auth::token_from_header)
        .ok_or(Error::Unauthorized)?;
    platform
        .store
        .user_by_token_hash(&auth::token_hash(&token))?
        .ok_or(Error::Unauthorized)
}

async fn list_projects(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
) -> ApiResult<Json<Vec<grove_api::Project>>> {
    let rows = if access::is_platform_admin(&user) {
        p.store.projects()?
    } else {
        p.store.projects_of_user(user.id)?
    };
    Ok(Json(rows.iter().map(|r| project_dto(&p, r)).collect()))
}

async fn create_project(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    JsonBody(body): JsonBody<grove_api::CreateProject>,
) -> ApiResult<(StatusCode, Json<grove_api::Project>)> {
    if !access::is_platform_admin(&user) {
        return Err(Error::Forbidden(format!(
            "creating projects needs a platform admin; `{}` is not one",
            user.name
        )));
    }
    let row = p.create_project(
        &body.name,
        body.title.as_deref(),
        body.plan.as_deref(),
        body.integration_environments,
        body.development_crons.unwrap_or(true),
    )?;
    Ok((StatusCode::CREATED, Json(project_dto(&p, &row))))
}

async fn get_project(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path(project): Path<String>,
) -> ApiResult<Json<grove_api::Project>> {
    let access = access::project(&p, &user, &project)?;
    Ok(Json(project_dto(&p, &access.project)))
}

/// The environments the user may see.
async fn list_environments(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path(project): Path<String>,
) -> ApiResult<Json<Vec<grove_api::Environment>>> {
    let access = access::project(&p, &user, &project)?;
    let rows = p.store.environments(&project)?;
    Ok(Json(
        rows.iter()
            .filter(|r| access.can(&r.kind, Action::View))
            .map(|r| environment_dto(&p, r))
            .collect(),
    ))
}

async fn get_environment(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, env)): Path<(String, String)>,
) -> ApiResult<Json<grove_api::Environment>> {
    let (_, env) = access::authorize_environment(&p, &user, &project, &env, Action::View)?;
    Ok(Json(environment_dto(&p, &env)))
}

async fn environment_routes(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, env)): Path<(String, String)>,
) -> ApiResult<Json<Vec<grove_api::Route>>> {
    let (_, env) = access::authorize_environment(&p, &user, &project, &env, Action::View)?;
    let Some(routes) = p.environment_routes(&project, &env.name) else {
        return Ok(Json(Vec::new()));
    };
    let primary = routes.primary().map(|r| r.url.clone());
    let mut out: Vec<grove_api::Route> = routes
        .routes
        .iter()
        .map(|r| {
            let (upstream, to) = match &r.kind {
                grove_config::RouteKind::Upstream { app } => (Some(app.clone()), None),
                grove_config::RouteKind::Redirect { to }
                | grove_config::RouteKind::Proxy { to } => (None, Some(to.clone())),
            };
            grove_api::Route {
                url: r.url.clone(),
                original_url: r.original_url.clone(),
                kind: r.kind.type_name().to_string(),
                primary: Some(&r.url) == primary.as_ref(),
                id: r.id.clone(),
                upstream,
                to,
            }
        })
        .collect();
    out.sort_by_key(|r| !r.primary);
    Ok(Json(out))
}

#[derive(Deserialize)]
struct DeleteQuery {
    #[serde(default)]
    delete_branch: bool,
}

async fn delete_environment(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, env)): Path<(String, String)>,
    Query(query): Query<DeleteQuery>,
) -> ApiResult<(StatusCode, Json<grove_api::Activity>)> {
    access::authorize_environment(&p, &user, &project, &env, Action::Delete)?;
    let id = p.delete(&project, &env, query.delete_branch)?;
    activity_accepted(&p, &id)
}

async fn environment_action(
    State(p): State<Arc<Platform>>,
    Path((project, env, action)): Path<(String, String, String)>,
    Extension(user): Extension<UserRow>,
) -> ApiResult<(StatusCode, Json<grove_api::Activity>)> {
    let needs = match action.as_str() {
        "activate" => Some(Action::Activate),
        "deactivate" => Some(Action::Deactivate),
        "redeploy" => Some(Action::Redeploy),
        _ => None,
    };
    if let Some(needs) = needs {
        access::authorize_environment(&p, &user, &project, &env, needs)?;
    } else if action == "merge" {
        // Merging changes the parent: it needs admin there, and sight of the child.
        let (access, child) =
            access::authorize_environment(&p, &user, &project, &env, Action::View)?;
        let target = match &child.parent {
            Some(parent) => p.environment(&project, parent)?.kind,
            None => child.kind,
        };
        access.allow(&target, Action::MergeInto)?;
    } else {
        access::project(&p, &user, &project)?;
    }
    let id = match action.as_str() {
        "activate" => p.activate(&project, &env)?,
        "deactivate" => p.deactivate(&project, &env)?,
        "redeploy" => p.redeploy(&project, &env)?,
        "merge" => p.merge(&project, &env)?,
        other => {
            return Err(Error::NotFound(format!(
                "no environment operation `{other}` (known: activate, deactivate, redeploy, \
                 merge, branch, synchronize)"
            )));
        }
    };
    activity_accepted(&p, &id)
}

async fn branch_environment(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, parent)): Path<(String, String)>,
    JsonBody(body): JsonBody<grove_api::BranchEnvironment>,
) -> ApiResult<(StatusCode, Json<grove_api::Activity>)> {
    // Branching reads the parent and creates an environment of the new type; a type
    // that cannot be created is refused by the operation with its own message.
    let (access, _) = access::authorize_environment(&p, &user, &project, &parent, Action::View)?;
    let kind = body.kind.as_deref().unwrap_or("development");
    if crate::platform::ENVIRONMENT_TYPES.contains(&kind) && kind != "production" {
        access.allow(kind, Action::Branch)?;
    }
    let id = p.branch(
        &project,
        crate::tree::BranchRequest {
            name: body.name,
            parent: Some(parent),
            kind: body.kind,
            title: body.title,
            clone_parent: body.clone_parent,
        },
    )?;
    activity_accepted(&p, &id)
}

async fn synchronize_environment(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, env)): Path<(String, String)>,
    JsonBody(body): JsonBody<grove_api::SynchronizeEnvironment>,
) -> ApiResult<(StatusCode, Json<grove_api::Activity>)> {
    // It changes the environment, from what its parent has.
    let (access, child) =
        access::authorize_environment(&p, &user, &project, &env, Action::Synchronize)?;
    if let Some(parent) = &child.parent {
        access.allow(&p.environment(&project, parent)?.kind, Action::View)?;
    }
    let id = p.synchronize(
        &project,
        &env,
        crate::tree::SyncRequest {
            code: body.synchronize_code,
            data: body.synchronize_data,
            rebase: body.rebase,
        },
    )?;
    activity_accepted(&p, &id)
}

async fn update_environment(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, env)): Path<(String, String)>,
    JsonBody(body): JsonBody<grove_api::UpdateEnvironment>,
) -> ApiResult<Json<grove_api::Environment>> {
    let (access, _) = access::authorize_environment(&p, &user, &project, &env, Action::Configure)?;
    if body.property == "type" && crate::platform::ENVIRONMENT_TYPES.contains(&body.value.as_str())
    {
        // Moving an environment to a type is like creating one there.
        access.allow(&body.value, Action::Configure)?;
    }
    let row = p.set_environment_property(&project, &env, &body.property, &body.value)?;
    Ok(Json(environment_dto(&p, &row)))
}

fn activity_accepted(p: &Platform, id: &str) -> ApiResult<(StatusCode, Json<grove_api::Activity>)> {
    let row = p
        .store
        .activity(id)?
        .ok_or_else(|| Error::Internal(format!("activity {id} vanished")))?;
    Ok((StatusCode::ACCEPTED, Json(activity_dto(&row))))
}

#[derive(Deserialize)]
struct ActivitiesQuery {
    environment: Option<String>,
    limit: Option<u32>,
    /// Only activities in this state (`pending`, `in_progress`, `complete`).
    state: Option<String>,
}

/// The activities of the environments the user may see (and the project's own).
async fn list_activities(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path(project): Path<String>,
    Query(query): Query<ActivitiesQuery>,
) -> ApiResult<Json<Vec<grove_api::Activity>>> {
    let access = access::project(&p, &user, &project)?;
    let env = match &query.environment {
        Some(name) => Some(
            access::authorize_environment(&p, &user, &project, name, Action::View)?
                .1
                .name,
        ),
        None => None,
    };
    let kinds: std::collections::HashMap<String, String> = p
        .store
        .environments(&project)?
        .into_iter()
        .map(|e| (e.name, e.kind))
        .collect();
    let limit = query.limit.unwrap_or(50).min(1000);
    // With a state, the newest 1000 are searched for `limit` in that state.
    let fetch = if query.state.is_some() { 1000 } else { limit };
    let rows = p.store.activities(&project, env.as_deref(), fetch)?;
    Ok(Json(
        rows.iter()
            .filter(|a| query.state.as_ref().is_none_or(|s| a.state == *s))
            .filter(|a| activity_visible(&access, &kinds, a))
            .take(limit as usize)
            .map(activity_dto)
            .collect(),
    ))
}

/// An activity of an environment is seen by whoever sees the environment; one of the
/// project (or of an environment since deleted) by every member.
fn activity_visible(
    access: &access::Access,
    kinds: &std::collections::HashMap<String, String>,
    activity: &ActivityRow,
) -> bool {
    match activity.environment.as_ref().and_then(|e| kinds.get(e)) {
        Some(kind) => access.can(kind, Action::View),
        None => true,
    }
}

async fn get_activity(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, id)): Path<(String, String)>,
) -> ApiResult<Json<grove_api::Activity>> {
    Ok(Json(activity_dto(&find_activity(
        &p, &user, &project, &id,
    )?)))
}

fn find_activity(p: &Platform, user: &UserRow, project: &str, id: &str) -> ApiResult<ActivityRow> {
    let access = access::project(p, user, project)?;
    let activity = p
        .store
        .activity(id)?
        .filter(|a| a.project == project)
        .ok_or_else(|| Error::NotFound(format!("no activity `{id}` in project `{project}`")))?;
    if let Some(env) = activity
        .environment
        .as_ref()
        .and_then(|e| p.store.environment(project, e).ok().flatten())
        .filter(|e| activity.environment.as_ref() == Some(&e.name))
    {
        access.allow(&env.kind, Action::View)?;
    }
    Ok(activity)
}

/// Cancels an activity: a pending one never runs; a running one has its build or hook
/// stopped and fails the way a failed build does (the previous deployment keeps
/// serving). Needs the contributor role on the environment's type.
async fn cancel_activity(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, id)): Path<(String, String)>,
) -> ApiResult<Json<grove_api::Activity>> {
    let activity = find_activity(&p, &user, &project, &id)?;
    if let Some(env) = activity
        .environment
        .as_ref()
        .and_then(|e| p.store.environment(&project, e).ok().flatten())
    {
        access::project(&p, &user, &project)?.allow(&env.kind, Action::Cancel)?;
    }
    if activity.state == "complete" {
        return Err(Error::Conflict(format!(
            "activity {id} is already complete ({})",
            activity.result.as_deref().unwrap_or("no result")
        )));
    }
    let token = p
        .cancellable
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&id)
        .cloned();
    let Some(token) = token else {
        return Err(Error::Conflict(format!(
            "activity {id} ({}) cannot be cancelled",
            activity.kind
        )));
    };
    token.cancel();
    tracing::info!(activity = %id, user = %user.name, "Activity cancelled.");
    Ok(Json(activity_dto(&activity)))
}

#[derive(Deserialize)]
struct LogQuery {
    #[serde(default)]
    follow: bool,
    #[serde(default)]
    start_at: u64,
}

/// NDJSON: one `LogLine` per line, then a `LogSeal`. With `follow=true` the stream
/// stays open until the activity completes.
async fn activity_log(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, id)): Path<(String, String)>,
    Query(query): Query<LogQuery>,
) -> ApiResult<Response> {
    find_activity(&p, &user, &project, &id)?;
    let wake = p.logs.subscribe(&id);
    let state = LogFollow {
        platform: p.clone(),
        id,
        after: query.start_at,
        follow: query.follow,
        // Subscribed before the first read: no line stored in between is missed.
        wake,
        done: false,
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        let chunk = s.next_chunk().await;
        Some((Ok::<_, std::convert::Infallible>(chunk), s))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(stream))
        .map_err(|e| Error::Internal(e.to_string()))
}

struct LogFollow {
    platform: Arc<Platform>,
    id: String,
    after: u64,
    follow: bool,
    /// Woken when this activity's log grows or it completes.
    wake: tokio::sync::watch::Receiver<u64>,
    done: bool,
}

impl LogFollow {
    async fn next_chunk(&mut self) -> String {
        loop {
            // Read the state before the lines: once an activity is complete its log is
            // complete, so lines read after seeing `complete` are all of them.
            // Read on a blocking thread: a follower of a long log reads thousands of
            // lines at a time, and the router shares this runtime.
            let (store, id, after) = (self.platform.store.clone(), self.id.clone(), self.after);
            let (activity, lines) = tokio::task::spawn_blocking(move || {
                (
                    store.activity(&id).ok().flatten(),
                    store.log_since(&id, after).unwrap_or_default(),
                )
            })
            .await
            .unwrap_or_default();
            let mut chunk = String::new();
            for line in &lines {
                self.after = line.seq;
                push_json_line(
                    &mut chunk,
                    &grove_api::LogLine {
                        seq: line.seq,
                        timestamp: line.timestamp.clone(),
                        message: line.message.clone(),
                    },
                );
            }
            let finished = activity.as_ref().is_none_or(|a| a.state == "complete");
            if finished || !self.follow {
                push_json_line(
                    &mut chunk,
                    &grove_api::LogSeal {
                        seal: finished,
                        state: activity
                            .as_ref()
                            .map(|a| a.state.clone())
                            .unwrap_or_default(),
                        result: activity.and_then(|a| a.result),
                    },
                );
                self.done = true;
                return chunk;
            }
            if !chunk.is_empty() {
                return chunk;
            }
            // The timeout is a safety net: a writer that stopped wakes nobody.
            let _ = tokio::time::timeout(Duration::from_secs(1), self.wake.changed()).await;
        }
    }
}

fn project_dto(p: &Platform, row: &ProjectRow) -> grove_api::Project {
    grove_api::Project {
        id: row.id.clone(),
        title: row.title.clone(),
        default_branch: row.default_branch.clone(),
        plan: row.plan.clone(),
        git_url: format!("{}/{}.git", p.settings.api_url(), row.id),
        created_at: row.created_at.clone(),
    }
}

fn environment_dto(p: &Platform, row: &EnvironmentRow) -> grove_api::Environment {
    let routes = p.environment_routes(&row.project, &row.name);
    let last = p
        .store
        .last_deployment(&row.project, &row.name)
        .ok()
        .flatten();
    let services = p.service_health(&row.project, &row.name);
    let last_backup = crate::backups::last_backup(p, &row.project, &row.name);
    grove_api::Environment {
        id: row.name.clone(),
        name: row.name.clone(),
        machine_name: row.machine_name.clone(),
        title: row.title.clone(),
        kind: row.kind.clone(),
        status: row.status.clone(),
        parent: row.parent.clone(),
        project: row.project.clone(),
        deployed_commit: p.running_commit(&row.project, &row.name),
        last_deployment_successful: last.as_ref().map(|d| d.successful),
        last_deployment_at: last.map(|d| d.created_at),
        last_backup_status: last_backup.as_ref().map(|b| b.status.clone()),
        last_backup_at: last_backup.map(|b| b.created_at),
        urls: routes
            .as_ref()
            .map(|r| r.routes.iter().map(|r| r.url.clone()).collect())
            .unwrap_or_default(),
        primary_url: routes
            .as_ref()
            .and_then(|r| r.primary().map(|r| r.url.clone())),
        crons: p.crons_enabled(&row.project, &row.name),
        health: if services
            .values()
            .any(|s| s.failures >= crate::services::DEGRADED_AFTER)
        {
            "degraded".into()
        } else {
            "ok".into()
        },
        runtime_warnings: p.runtime_warnings(&row.project, &row.name),
        services: services
            .into_iter()
            .map(|(name, s)| {
                (
                    name,
                    grove_api::ServiceStatus {
                        kind: s.kind,
                        runs_on: s.runs_on,
                        address: s.address,
                        healthy: s.healthy,
                        restarts: s.restarts,
                        failures: s.failures,
                        last_error: s.last_error,
                    },
                )
            })
            .collect(),
        created_at: row.created_at.clone(),
        updated_at: row.updated_at.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(method: Method, path: &str, headers: &[(&str, &str)], forgeable: bool) {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(
                header::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                value.parse().expect("value"),
            );
        }
        assert_eq!(
            is_forgeable(&method, path, &map),
            forgeable,
            "{method} {path} {headers:?}"
        );
    }

    #[test]
    fn only_programs_change_state() {
        let form = ("content-type", "application/x-www-form-urlencoded");
        check(Method::POST, "/api/projects", &[form], true);
        check(
            Method::POST,
            "/api/projects/p/environments/e/redeploy",
            &[],
            true,
        );
        check(Method::DELETE, "/api/projects/p/environments/e", &[], true);
        check(
            Method::PATCH,
            "/api/projects/p/environments/e",
            &[("content-type", "text/plain")],
            true,
        );
        check(
            Method::POST,
            "/api/projects",
            &[("content-type", "application/json; charset=utf-8")],
            false,
        );
        check(
            Method::POST,
            "/api/projects/p/environments/e/redeploy",
            &[("x-grove-client", "cli")],
            false,
        );
        check(Method::GET, "/api/projects", &[], false);
        check(
            Method::POST,
            "/shop.git/git-receive-pack",
            &[("content-type", "application/x-git-receive-pack-request")],
            false,
        );
        check(Method::POST, "/shop.git/git-upload-pack", &[], false);
        check(Method::POST, "/shop.git/other", &[], true);
    }
}
