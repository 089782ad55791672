//! The HTTP API (axum): the only place that converts between the platform's types and
//! the wire format of `grove-api`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use grove_api::{ErrorKind, paths};
use grove_store::{ActivityRow, EnvironmentRow, ProjectRow, UserRow};
use serde::Deserialize;

use crate::auth;
use crate::error::Error;
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
        .route(paths::ENVIRONMENT_ACTION, post(environment_action))
        .route(paths::ACTIVITIES, get(list_activities))
        .route(paths::ACTIVITY, get(get_activity))
        .route(paths::ACTIVITY_LOG, get(activity_log))
        .fallback(crate::git_http::serve)
        .layer(axum::middleware::from_fn_with_state(
            platform.clone(),
            require_token,
        ));
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

type ApiResult<T> = Result<T, Error>;

/// A JSON request body. A body that is not JSON or not of the expected shape is the
/// client's mistake, answered with the same typed error body as every other error.
struct JsonBody<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for JsonBody<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Error> {
        Json::<T>::from_request(request, state)
            .await
            .map(|Json(body)| JsonBody(body))
            .map_err(|rejection| Error::Invalid(rejection.body_text()))
    }
}

async fn list_projects(State(p): State<Arc<Platform>>) -> ApiResult<Json<Vec<grove_api::Project>>> {
    let rows = p.store.projects()?;
    Ok(Json(rows.iter().map(|r| project_dto(&p, r)).collect()))
}

async fn create_project(
    State(p): State<Arc<Platform>>,
    JsonBody(body): JsonBody<grove_api::CreateProject>,
) -> ApiResult<(StatusCode, Json<grove_api::Project>)> {
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
    Path(project): Path<String>,
) -> ApiResult<Json<grove_api::Project>> {
    Ok(Json(project_dto(&p, &p.project(&project)?)))
}

async fn list_environments(
    State(p): State<Arc<Platform>>,
    Path(project): Path<String>,
) -> ApiResult<Json<Vec<grove_api::Environment>>> {
    p.project(&project)?;
    let rows = p.store.environments(&project)?;
    Ok(Json(rows.iter().map(|r| environment_dto(&p, r)).collect()))
}

async fn get_environment(
    State(p): State<Arc<Platform>>,
    Path((project, env)): Path<(String, String)>,
) -> ApiResult<Json<grove_api::Environment>> {
    Ok(Json(environment_dto(&p, &p.environment(&project, &env)?)))
}

async fn environment_routes(
    State(p): State<Arc<Platform>>,
    Path((project, env)): Path<(String, String)>,
) -> ApiResult<Json<Vec<grove_api::Route>>> {
    let env = p.environment(&project, &env)?;
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
    Path((project, env)): Path<(String, String)>,
    Query(query): Query<DeleteQuery>,
) -> ApiResult<(StatusCode, Json<grove_api::Activity>)> {
    let id = p.delete(&project, &env, query.delete_branch)?;
    activity_accepted(&p, &id)
}

async fn environment_action(
    State(p): State<Arc<Platform>>,
    Path((project, env, action)): Path<(String, String, String)>,
    Extension(_user): Extension<UserRow>,
) -> ApiResult<(StatusCode, Json<grove_api::Activity>)> {
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
    Path((project, parent)): Path<(String, String)>,
    JsonBody(body): JsonBody<grove_api::BranchEnvironment>,
) -> ApiResult<(StatusCode, Json<grove_api::Activity>)> {
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
    Path((project, env)): Path<(String, String)>,
    JsonBody(body): JsonBody<grove_api::SynchronizeEnvironment>,
) -> ApiResult<(StatusCode, Json<grove_api::Activity>)> {
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
    Path((project, env)): Path<(String, String)>,
    JsonBody(body): JsonBody<grove_api::UpdateEnvironment>,
) -> ApiResult<Json<grove_api::Environment>> {
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
}

async fn list_activities(
    State(p): State<Arc<Platform>>,
    Path(project): Path<String>,
    Query(query): Query<ActivitiesQuery>,
) -> ApiResult<Json<Vec<grove_api::Activity>>> {
    p.project(&project)?;
    let env = match &query.environment {
        Some(name) => Some(p.environment(&project, name)?.name),
        None => None,
    };
    let rows = p.store.activities(
        &project,
        env.as_deref(),
        query.limit.unwrap_or(50).min(1000),
    )?;
    Ok(Json(rows.iter().map(activity_dto).collect()))
}

async fn get_activity(
    State(p): State<Arc<Platform>>,
    Path((project, id)): Path<(String, String)>,
) -> ApiResult<Json<grove_api::Activity>> {
    Ok(Json(activity_dto(&find_activity(&p, &project, &id)?)))
}

fn find_activity(p: &Platform, project: &str, id: &str) -> ApiResult<ActivityRow> {
    p.store
        .activity(id)?
        .filter(|a| a.project == project)
        .ok_or_else(|| Error::NotFound(format!("no activity `{id}` in project `{project}`")))
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
    Path((project, id)): Path<(String, String)>,
    Query(query): Query<LogQuery>,
) -> ApiResult<Response> {
    find_activity(&p, &project, &id)?;
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
            let activity = self.platform.store.activity(&self.id).ok().flatten();
            let lines = self
                .platform
                .store
                .log_since(&self.id, self.after)
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
        services: services
            .into_iter()
            .map(|(name, s)| {
                (
                    name,
                    grove_api::ServiceStatus {
                        kind: s.kind,
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

fn activity_dto(row: &ActivityRow) -> grove_api::Activity {
    grove_api::Activity {
        id: row.id.clone(),
        kind: row.kind.clone(),
        project: row.project.clone(),
        environment: row.environment.clone(),
        state: row.state.clone(),
        result: row.result.clone(),
        description: row.description.clone(),
        created_at: row.created_at.clone(),
        started_at: row.started_at.clone(),
        completed_at: row.completed_at.clone(),
    }
}
