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
    if let Err(error) = platform.project(project) {
        return error.into_response();
    }
    match cgi(&platform, &user, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
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
        // What the pre-receive hook needs to reach us.
        .env("GROVE_EXE", &settings.grove_exe)
        .env(
            "GROVE_HOOK_URL",
            format!(
                "{}{}",
                settings.api_url(),
                grove_api::paths::HOOK_PRE_RECEIVE
            ),
        )
        .env("GROVE_HOOK_TOKEN", &platform.hook_secret)
        .env("GROVE_PROJECT", &project)
        .env("GROVE_USER", &user.name)
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
