//! The runtime API: `runtime:list` (what the host has, which images are built and
//! which could be) and `runtime:install` (builds an image, streaming its progress;
//! platform admins only, as it writes to what every project shares).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::Response;
use axum::{Extension, Json};
use grove_runtime::RuntimeSource;
use grove_store::UserRow;

use crate::access;
use crate::error::Error;
use crate::handlers::{ApiResult, JsonBody};
use crate::ndjson::push_json_line;
use crate::state::Platform;

pub(crate) async fn list(
    State(p): State<Arc<Platform>>,
    Extension(_user): Extension<UserRow>,
) -> ApiResult<Json<Vec<grove_api::Runtime>>> {
    let runtimes = p
        .catalog
        .entries()
        .into_iter()
        .map(|entry| {
            let (status, source, release) = match &entry.source {
                RuntimeSource::Host => ("installed", "host", None),
                RuntimeSource::Image(recipe) => (
                    if p.images.is_installed(recipe) {
                        "installed"
                    } else {
                        "installable"
                    },
                    "image",
                    Some(recipe.release.to_string()),
                ),
            };
            grove_api::Runtime {
                kind: format!("{}:{}", entry.language, entry.version),
                language: entry.language,
                version: entry.version,
                full_version: entry.full_version,
                status: status.to_string(),
                source: source.to_string(),
                release,
            }
        })
        .collect();
    Ok(Json(runtimes))
}

/// Builds the image of a runtime type (exactly that version), answering with its
/// progress as NDJSON `RuntimeInstallEvent`s; the build goes on if the client leaves.
pub(crate) async fn install(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    JsonBody(body): JsonBody<grove_api::InstallRuntime>,
) -> ApiResult<Response> {
    if !access::is_platform_admin(&user) {
        return Err(Error::Forbidden(format!(
            "installing runtimes needs a platform admin; `{}` is not one",
            user.name
        )));
    }
    let requested = body.kind.trim().to_string();
    let resolved = p
        .catalog
        .resolve_type(&requested)
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let recipe = match (&resolved.source, resolved.substituted) {
        (RuntimeSource::Image(recipe), false) => *recipe,
        (RuntimeSource::Host, false) => {
            return Ok(stream_of(vec![
                event(Some(format!("{requested}: {resolved}; nothing to install"))),
                done(None),
            ]));
        }
        _ => {
            let available: Vec<String> = p
                .catalog
                .entries()
                .iter()
                .filter(|e| requested.starts_with(&format!("{}:", e.language)))
                .map(|e| format!("{}:{}", e.language, e.version))
                .collect();
            return Err(Error::Invalid(format!(
                "no runtime image provides `{requested}` exactly ({resolved} when an app asks for it); installable: {}",
                available.join(", ")
            )));
        }
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let platform = p.clone();
    tokio::spawn(async move {
        let lines = tx.clone();
        let mut on_line = move |line: &str| {
            let _ = lines.send(line_json(&event(Some(line.to_string()))));
        };
        let result = platform.images.ensure(&recipe, &mut on_line).await;
        let last = match result {
            Ok(root) => {
                tracing::info!(image = %recipe.name(), root = %root.display(), "Runtime image installed.");
                done(None)
            }
            Err(error) => {
                tracing::warn!(image = %recipe.name(), %error, "Runtime image build failed.");
                done(Some(error.to_string()))
            }
        };
        let _ = tx.send(line_json(&last));
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let line = rx.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(line), rx))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(stream))
        .map_err(|e| Error::Internal(e.to_string()))
}

fn event(message: Option<String>) -> grove_api::RuntimeInstallEvent {
    grove_api::RuntimeInstallEvent {
        message,
        done: false,
        error: None,
    }
}

fn done(error: Option<String>) -> grove_api::RuntimeInstallEvent {
    grove_api::RuntimeInstallEvent {
        message: None,
        done: true,
        error,
    }
}

fn line_json(event: &grove_api::RuntimeInstallEvent) -> String {
    let mut out = String::new();
    push_json_line(&mut out, event);
    out
}

fn stream_of(events: Vec<grove_api::RuntimeInstallEvent>) -> Response {
    let body: String = events.iter().map(line_json).collect();
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/x-ndjson"),
    );
    response
}
