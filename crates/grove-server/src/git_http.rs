//! Git over smart HTTP, by running the stock `git http-backend` as a CGI program, and
//! the endpoint its `pre-receive` hook calls to build and deploy a push.

use std::process::Stdio;
use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use grove_store::UserRow;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

use crate::access::{self, Action};
use crate::auth;
use crate::error::Error;
use crate::ndjson::push_json_line;
use crate::platform::Platform;

/// `/<project>.git/<git path>`: clone, fetch and push.
pub async fn serve(
    State(platform): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    request: Request,
) -> Response {
    let path = request.uri().path().to_string();
    let Some((project, _)) = path.strip_prefix('/').and_then(|p| p.split_once(".git/")) else {
        return Error::NotFound(format!("nothing at {path}")).into_response();
    };
    // Fetching needs a role in the project (without one it does not exist); pushing a
    // contributor role somewhere, and each pushed ref is checked against the type of its
    // environment by the pre-receive hook, once git has the refs.
    let access = match access::project(&platform, &user, project) {
        Ok(access) => access,
        Err(error) => return error.into_response(),
    };
    if is_push(&request) && !access.may_push_somewhere() {
        return Error::Forbidden(format!(
            "pushing to project `{project}` needs the `contributor` role on an environment \
             type; `{}` has none",
            user.name
        ))
        .into_response();
    }
    match cgi(&platform, &user, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// Both steps of a push: the ref advertisement and the pack.
fn is_push(request: &Request) -> bool {
    request.uri().path().ends_with("/git-receive-pack")
        || request
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|pair| pair == "service=git-receive-pack"))
}

async fn cgi(platform: &Platform, user: &UserRow, request: Request) -> Result<Response, Error> {
    let settings = &platform.settings;
    let (parts, body) = request.into_parts();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let project = parts
        .uri
        .path()
        .trim_start_matches('/')
        .split_once(".git/")
        .map(|(p, _)| p.to_string())
        .unwrap_or_default();
    let mut cmd = Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env(
            "PATH",
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
        )
        .env("GIT_PROJECT_ROOT", settings.data_dir.join("git"))
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("CONTENT_TYPE", header("content-type"))
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("HTTP_GIT_PROTOCOL", header("git-protocol"))
        .env("REMOTE_USER", &user.name)
        .env("REMOTE_ADDR", "127.0.0.1")
        .envs(hook_env(platform, &project, &user.name))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let content_length = header("content-length");
    if !content_length.is_empty() {
        cmd.env("CONTENT_LENGTH", content_length);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::Internal(format!("could not run git http-backend: {e}")))?;
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(Error::Internal("git http-backend has no pipes".into()));
    };
    tokio::spawn(async move {
        let mut body = body.into_data_stream();
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else { break };
            if stdin.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = stdin.shutdown().await;
    });
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::debug!(%line, "git http-backend");
        }
    });

    // CGI response: header lines, a blank line, then the body.
    let mut reader = BufReader::new(stdout);
    let mut status = StatusCode::OK;
    let mut headers = HeaderMap::new();
    loop {
        let mut line = String::new();
        let n = reader
            .read_line(&mut line)
            .await
            .map_err(|e| Error::Internal(format!("git http-backend: {e}")))?;
        let line = line.trim_end_matches(['\r', '\n']);
        if n == 0 || line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            if let Some(code) = value.split_whitespace().next().and_then(|c| c.parse().ok()) {
                status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
            }
        } else if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
    // The child is reaped when its output ends (kill_on_drop covers a client that
    // goes away first).
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(reader));
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

/// What the pre-receive hook of a push by `user` needs to reach us (git over HTTP and
/// over SSH).
pub(crate) fn hook_env(
    platform: &Platform,
    project: &str,
    user: &str,
) -> [(&'static str, std::ffi::OsString); 5] {
    let settings = &platform.settings;
    [
        ("GROVE_EXE", settings.grove_exe.clone().into()),
        (
            "GROVE_HOOK_URL",
            format!(
                "{}{}",
                settings.api_url(),
                grove_api::paths::HOOK_PRE_RECEIVE
            )
            .into(),
        ),
        ("GROVE_HOOK_TOKEN", platform.hook_secret.clone().into()),
        ("GROVE_PROJECT", project.into()),
        ("GROVE_USER", user.into()),
    ]
}

/// Called by the pre-receive hook of a push in progress. Streams the activity log as
/// NDJSON (`{"message": ...}` lines) and ends with `{"result": "success"|"failure"}`;
/// the hook accepts the push only on success.
pub async fn pre_receive(
    State(platform): State<Arc<Platform>>,
    headers: HeaderMap,
    Json(push): Json<grove_api::PreReceive>,
) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(auth::token_from_header)
        .unwrap_or_default();
    if !auth::same_secret(&token, &platform.hook_secret) {
        return Error::Unauthorized.into_response();
    }
    if let Err(refusal) = authorize_push(&platform, &push).await {
        let mut out = String::new();
        push_json_line(
            &mut out,
            &serde_json::json!({ "message": format!("E: {refusal}") }),
        );
        push_json_line(&mut out, &serde_json::json!({ "result": "failure" }));
        return Response::builder()
            .header(header::CONTENT_TYPE, "application/x-ndjson")
            .body(Body::from(out))
            .unwrap_or_else(|e| Error::Internal(e.to_string()).into_response());
    }
    let (tx, rx) = mpsc::unbounded_channel::<String>();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<bool>();
    let worker = platform.clone();
    tokio::spawn(async move {
        let ok = worker.receive_push(push, tx).await;
        let _ = done_tx.send(ok);
    });
    let stream = futures_util::stream::unfold((rx, Some(done_rx)), |(mut rx, done)| async move {
        if let Some(line) = rx.recv().await {
            let mut out = String::new();
            push_json_line(&mut out, &serde_json::json!({ "message": line }));
            return Some((Ok::<_, std::convert::Infallible>(out), (rx, done)));
        }
        // Every sender is gone: the push is handled.
        let done = done?;
        let ok = done.await.unwrap_or(false);
        let mut out = String::new();
        push_json_line(
            &mut out,
            &serde_json::json!({ "result": if ok { "success" } else { "failure" } }),
        );
        Some((Ok(out), (rx, None)))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|e| Error::Internal(e.to_string()).into_response())
}

/// Checks every ref of a push against the pusher's role on the type of the environment
/// it lands in: an existing environment's type, or for a new branch the type it will get
/// (production for the project's first `main`/`master`, else `environment.type` or
/// development). Pushing needs `contributor`; deleting a branch (which deletes its
/// environment) and rewriting one (a force push) need `admin`.
async fn authorize_push(
    platform: &Arc<Platform>,
    push: &grove_api::PreReceive,
) -> Result<(), Error> {
    let user = push
        .user
        .as_deref()
        .and_then(|name| platform.store.user_by_name(name).ok().flatten())
        .ok_or_else(|| Error::Forbidden("this push has no known user".into()))?;
    let access = access::project(platform, &user, &push.project)?;
    let options = grove_git::PushOptions::parse(&push.push_options);
    let mut default_branch = access.project.default_branch.clone();
    for update in &push.updates {
        let Some(branch) = update.name.strip_prefix("refs/heads/") else {
            continue;
        };
        let existing = platform
            .store
            .environment(&push.project, branch)?
            .filter(|env| env.name == branch);
        let kind = match &existing {
            Some(env) => env.kind.clone(),
            None => {
                if default_branch.is_none() && (branch == "main" || branch == "master") {
                    default_branch = Some(branch.to_string());
                }
                if default_branch.as_deref() == Some(branch) {
                    "production".to_string()
                } else {
                    options.kind.clone().unwrap_or_else(|| "development".into())
                }
            }
        };
        if !crate::platform::ENVIRONMENT_TYPES.contains(&kind.as_str()) {
            // The push is refused for its invalid type, with its own message.
            continue;
        }
        let action = if update.new == grove_git::ZERO_ID {
            Action::DeleteByPush
        } else if update.old != grove_git::ZERO_ID
            && !is_fast_forward(platform, push, &update.old, &update.new).await
        {
            Action::ForcePush
        } else {
            Action::Push
        };
        access.allow(&kind, action).map_err(|e| match e {
            Error::Forbidden(message) => Error::Forbidden(format!("`{branch}`: {message}")),
            other => other,
        })?;
    }
    Ok(())
}

/// Whether `new` contains `old`, read with the push's quarantine (the pushed objects are
/// not in the repository yet).
async fn is_fast_forward(
    platform: &Arc<Platform>,
    push: &grove_api::PreReceive,
    old: &str,
    new: &str,
) -> bool {
    let repo = platform
        .settings
        .repository(&push.project)
        .with_env(push.git_env.clone());
    let (old, new) = (old.to_string(), new.to_string());
    tokio::task::spawn_blocking(move || repo.is_ancestor(&old, &new).unwrap_or(false))
        .await
        .unwrap_or(false)
}
