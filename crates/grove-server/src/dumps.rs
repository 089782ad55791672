//! `db:dump`: a logical dump of one of an environment's databases, made by the
//! service's own tool in its sandbox (`grove-services`' `RunningService::dump`) and
//! streamed as the response's body.

use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use grove_services::ServiceKind;
use grove_store::UserRow;

use crate::access::{self, Action};
use crate::error::{Error, Result};
use crate::handlers::ApiResult;
use crate::state::Platform;

/// The service and endpoint behind relationship `name` of the apps (and workers) of
/// the commit `env` runs; without a name, its only database relationship.
fn relationship_target(
    platform: &Platform,
    project: &str,
    env: &str,
    name: Option<&str>,
) -> Result<(String, String, String)> {
    let deployment = platform
        .store
        .last_successful_deployment(project, env)?
        .ok_or_else(|| Error::Conflict(format!("`{env}` has never been deployed")))?;
    let repo = platform.settings.repository(project);
    let (_, config) = crate::deploy::load_config(&repo, &deployment.commit_id)
        .map_err(|e| Error::Internal(format!("the deployed configuration: {e}")))?;
    let config = config.map_err(|e| Error::Conflict(format!("invalid configuration: {e}")))?;
    let kinds: Vec<(String, ServiceKind)> = platform.with_services(project, env, |services| {
        services
            .values()
            .map(|e| (e.running.name().to_string(), e.running.kind()))
            .collect()
    });
    let is_database = |service: &str| {
        kinds.iter().any(|(n, k)| {
            n == service && matches!(k, ServiceKind::MariaDb | ServiceKind::PostgreSql)
        })
    };
    let mut found: Vec<(String, String, String)> = Vec::new();
    for app in &config.apps {
        let all = std::iter::once(&app.relationships)
            .chain(app.workers.values().map(|w| &w.relationships));
        for (rel, target) in all.flat_map(|r| r.iter()) {
            if name.is_some_and(|n| n != rel) || !is_database(&target.service) {
                continue;
            }
            let kind = kinds
                .iter()
                .find(|(n, _)| *n == target.service)
                .map(|(_, k)| *k)
                .unwrap_or(ServiceKind::MariaDb);
            let endpoint = target
                .endpoint
                .clone()
                .unwrap_or_else(|| grove_services::default_endpoint(kind).to_string());
            let entry = (rel.clone(), target.service.clone(), endpoint);
            if !found.contains(&entry) {
                found.push(entry);
            }
        }
    }
    match (found.len(), name) {
        (1, _) => Ok(found.remove(0)),
        (0, Some(name)) => Err(Error::NotFound(format!(
            "`{env}` has no running database relationship `{name}`"
        ))),
        (0, None) => Err(Error::NotFound(format!(
            "`{env}` has no running MariaDB or PostgreSQL relationship"
        ))),
        _ => Err(Error::Invalid(format!(
            "`{env}` has several database relationships ({}): choose one with --relationship",
            found
                .iter()
                .map(|(r, _, _)| r.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

pub async fn dump(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, env)): Path<(String, String)>,
    Query(query): Query<grove_api::DumpQuery>,
) -> ApiResult<Response> {
    access::authorize_environment(&p, &user, &project, &env, Action::Backup)?;
    let (relationship, service, endpoint) = {
        let (p, project, env) = (p.clone(), project.clone(), env.clone());
        let name = query.relationship.clone();
        tokio::task::spawn_blocking(move || {
            relationship_target(&p, &project, &env, name.as_deref())
        })
        .await??
    };
    let running = p
        .with_services(&project, &env, |services| {
            services.get(&service).map(|e| e.running.clone())
        })
        .ok_or_else(|| Error::Conflict(format!("service `{service}` of `{env}` is not running")))?;
    let schema = match query.schema {
        Some(schema) => schema,
        None => running
            .endpoints()
            .into_iter()
            .find(|e| e.name == endpoint)
            .and_then(|e| e.path)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "relationship `{relationship}` names no schema: choose one with --schema"
                ))
            })?,
    };
    let path = running
        .dump(&schema, query.gzip)
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))?;
    // Open, then unlink: the body streams from the open file, nothing stays behind.
    let file = tokio::fs::File::open(&path).await;
    let _ = tokio::fs::remove_file(&path).await;
    let file = file.map_err(|e| Error::Internal(format!("the dump {}: {e}", path.display())))?;
    let (content_type, suffix) = if query.gzip {
        ("application/gzip", ".sql.gz")
    } else {
        ("application/sql", ".sql")
    };
    let file_name = format!("{project}--{env}--{relationship}--{schema}--dump{suffix}");
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file_name}\""),
            ),
        ],
        Body::from_stream(tokio_util::io::ReaderStream::new(file)),
    )
        .into_response())
}
