//! `environment:logs`: an environment's logs by type, as Platform.sh's `log` command
//! reads `/var/log` of a container. `app` is what the app's instances print (their web
//! server's errors included), `service-<name>` a service's output — both files the
//! supervisor writes —, `access` the router's line per request; all readable with
//! `--tail` as they grow; `deploy` and `cron` are the
//! logs of the environment's activities of those kinds, oldest first.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::Response;
use grove_store::UserRow;
use serde::Deserialize;

use crate::access::{self, Action};
use crate::error::Error;
use crate::handlers::ApiResult;
use crate::state::Platform;

/// How often a followed file is looked at for new lines.
const FOLLOW_EVERY: Duration = Duration::from_millis(300);
/// How many of the newest activities `deploy` and `cron` read.
const ACTIVITIES_READ: u32 = 20;

#[derive(Deserialize)]
pub(crate) struct LogsQuery {
    /// How many of the last lines (default 100).
    lines: Option<usize>,
    /// Keep the response open and send lines as they are written.
    #[serde(default)]
    tail: bool,
    /// The app whose log `app` means, when there are several.
    app: Option<String>,
}

/// The activity kinds whose logs make up `deploy`.
const DEPLOY_KINDS: &[&str] = &[
    "environment.push",
    "environment.activate",
    "environment.redeploy",
    "environment.branch",
    "environment.synchronize",
    "environment.merge",
    "environment.restore",
];

pub(crate) async fn logs(
    State(p): State<Arc<Platform>>,
    Extension(user): Extension<UserRow>,
    Path((project, env, kind)): Path<(String, String, String)>,
    Query(query): Query<LogsQuery>,
) -> ApiResult<Response> {
    let lines = query.lines.unwrap_or(100).min(100_000);
    let activity_kinds: Option<&[&str]> = match kind.as_str() {
        "deploy" => Some(DEPLOY_KINDS),
        "cron" => Some(&["environment.cron"]),
        _ => None,
    };
    if let Some(kinds) = activity_kinds {
        // What `activity:log` shows anyone who may see the environment.
        let (_, env) = access::authorize_environment(&p, &user, &project, &env, Action::View)?;
        if query.tail {
            return Err(Error::Invalid(format!(
                "`--tail` follows the app and service logs; follow a running activity with \
                 `activity:log` (the `{kind}` log is made of activities)"
            )));
        }
        let text = activity_logs(&p, &project, &env.name, kinds, lines)?;
        return text_response(Body::from(text));
    }
    // Files an app or service wrote may hold anything it printed: as for SSH access,
    // the contributor role on the environment's type.
    let (_, env) = access::authorize_environment(&p, &user, &project, &env, Action::ReadLogs)?;
    let file = if kind == "access" {
        // The router writes it from the first request on: until then, it is empty.
        let file = p.settings.access_log_file(&project, &env.machine_name);
        ensure_exists(&file)
            .map_err(|e| Error::Internal(format!("cannot create {}: {e}", file.display())))?;
        file
    } else {
        let dir = p
            .settings
            .log_file(&project, &env.machine_name, "x")
            .parent()
            .map(FsPath::to_path_buf)
            .unwrap_or_default();
        log_file(&dir, &kind, query.app.as_deref())?
    };
    let (tail, offset) = tokio::task::spawn_blocking({
        let file = file.clone();
        move || last_lines(&file, lines)
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
    .map_err(|e| Error::Internal(format!("cannot read {}: {e}", file.display())))?;
    if !query.tail {
        return text_response(Body::from(tail));
    }
    let state = Follow {
        file,
        offset,
        first: Some(tail),
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        if let Some(first) = s.first.take() {
            return Some((Ok::<_, std::convert::Infallible>(first), s));
        }
        loop {
            tokio::time::sleep(FOLLOW_EVERY).await;
            let (file, offset) = (s.file.clone(), s.offset);
            let read = tokio::task::spawn_blocking(move || read_from(&file, offset)).await;
            match read {
                Ok(Ok((text, next))) => {
                    s.offset = next;
                    if !text.is_empty() {
                        return Some((Ok(text), s));
                    }
                }
                // The file went away (the environment was deleted): the stream ends.
                _ => return None,
            }
        }
    });
    text_response(Body::from_stream(stream))
}

struct Follow {
    file: PathBuf,
    offset: u64,
    first: Option<String>,
}

fn text_response(body: Body) -> ApiResult<Response> {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(body)
        .map_err(|e| Error::Internal(e.to_string()))
}

/// The file a log type names in an environment's log directory: `app` (the only app's,
/// or `app`'s), `service-<name>`.
fn log_file(dir: &FsPath, kind: &str, app: Option<&str>) -> Result<PathBuf, Error> {
    let names = log_names(dir);
    let apps: Vec<&String> = names
        .iter()
        .filter(|n| !n.starts_with("service-"))
        .collect();
    let services: Vec<&String> = names.iter().filter(|n| n.starts_with("service-")).collect();
    let choose = |name: &str| Ok(dir.join(format!("{name}.log")));
    match kind {
        "app" => match (app, apps.as_slice()) {
            (Some(app), _) if apps.iter().any(|a| *a == app) => choose(app),
            (Some(app), _) => Err(Error::NotFound(format!(
                "no log of app `{app}` here; apps: {}",
                join(&apps)
            ))),
            (None, [only]) => choose(only),
            (None, []) => Err(Error::NotFound(
                "no app of this environment has run yet".into(),
            )),
            (None, _) => Err(Error::Invalid(format!(
                "several apps: choose one with --app ({})",
                join(&apps)
            ))),
        },
        kind if services.iter().any(|s| *s == kind) => choose(kind),
        "error" => Err(Error::Invalid(format!(
            "no separate `{kind}` log: the web server's errors are in the `app` log; \
             types: app, access, deploy, cron{}",
            services
                .iter()
                .map(|s| format!(", {s}"))
                .collect::<String>()
        ))),
        other => Err(Error::Invalid(format!(
            "no log type `{other}`; types: app, access, deploy, cron{}",
            services
                .iter()
                .map(|s| format!(", {s}"))
                .collect::<String>()
        ))),
    }
}

/// Creates an empty private log file where there is none yet.
fn ensure_exists(file: &FsPath) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(file)
        .map(drop)
}

fn join(names: &[&String]) -> String {
    names
        .iter()
        .map(|n| n.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The logs in a directory, by name without `.log` (rotated `.log.1` files aside).
fn log_names(dir: &FsPath) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_suffix(".log"))
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The last `n` lines of a file (and of its rotated predecessor `<file>.1` when the
/// file alone has fewer), and the file's length: where following goes on.
fn last_lines(file: &FsPath, n: usize) -> std::io::Result<(String, u64)> {
    let mut current = std::fs::File::open(file)?;
    let length = current.metadata()?.len();
    let mut lines = tail(&mut current, length, n)?;
    if lines.len() < n {
        let rotated = PathBuf::from(format!("{}.1", file.display()));
        if let Ok(mut old) = std::fs::File::open(&rotated) {
            let old_length = old.metadata()?.len();
            let mut older = tail(&mut old, old_length, n - lines.len())?;
            older.append(&mut lines);
            lines = older;
        }
    }
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    Ok((text, length))
}

/// The last `n` complete lines of the first `length` bytes, read backwards in blocks.
fn tail(file: &mut std::fs::File, length: u64, n: usize) -> std::io::Result<Vec<String>> {
    const BLOCK: u64 = 64 * 1024;
    let mut start = length;
    let mut buffer: Vec<u8> = Vec::new();
    while start > 0 && buffer.iter().filter(|b| **b == b'\n').count() <= n {
        let from = start.saturating_sub(BLOCK);
        let mut block = vec![0; (start - from) as usize];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut block)?;
        block.extend_from_slice(&buffer);
        buffer = block;
        start = from;
    }
    let text = String::from_utf8_lossy(&buffer);
    let all: Vec<&str> = text.lines().collect();
    // The first line is partial unless the read reached the file's start.
    let complete = if start > 0 && !all.is_empty() {
        &all[1..]
    } else {
        &all[..]
    };
    let skip = complete.len().saturating_sub(n);
    Ok(complete[skip..].iter().map(|l| l.to_string()).collect())
}

/// What was written after `offset`, up to the last complete line, and the new offset.
/// A file shorter than `offset` was rotated: it is read from its start.
fn read_from(file: &FsPath, offset: u64) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(file)?;
    let length = f.metadata()?.len();
    let offset = if length < offset { 0 } else { offset };
    f.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    f.take(4 * 1024 * 1024).read_to_end(&mut bytes)?;
    let Some(end) = bytes.iter().rposition(|b| *b == b'\n') else {
        return Ok((String::new(), offset));
    };
    bytes.truncate(end + 1);
    Ok((
        String::from_utf8_lossy(&bytes).into_owned(),
        offset + bytes.len() as u64,
    ))
}

/// The logs of the environment's newest activities of `kinds`, oldest first, each
/// under a line naming it; the last `n` lines of all that.
fn activity_logs(
    p: &Platform,
    project: &str,
    env: &str,
    kinds: &[&str],
    n: usize,
) -> Result<String, Error> {
    let mut activities: Vec<_> = p
        .store
        .activities(project, Some(env), ACTIVITIES_READ * 5)?
        .into_iter()
        .filter(|a| kinds.contains(&a.kind.as_str()))
        .take(ACTIVITIES_READ as usize)
        .collect();
    activities.reverse();
    let mut lines = Vec::new();
    for activity in activities {
        lines.push(format!(
            "--- {} {} ({}, {})",
            activity.created_at,
            activity.description,
            activity.id,
            activity.result.as_deref().unwrap_or(&activity.state)
        ));
        for line in p.store.log_since(&activity.id, 0)? {
            lines.push(line.message);
        }
    }
    let skip = lines.len().saturating_sub(n);
    let mut text = lines[skip..].join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_lines_of_a_file_and_of_its_rotated_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("app.log");
        let numbered = |from: usize, to: usize| -> String {
            (from..=to).map(|i| format!("line {i}\n")).collect()
        };
        std::fs::write(format!("{}.1", file.display()), numbered(1, 50_000)).expect("write");
        std::fs::write(&file, numbered(50_001, 50_010)).expect("write");
        let (text, length) = last_lines(&file, 3).expect("tail");
        assert_eq!(text, "line 50008\nline 50009\nline 50010\n");
        assert_eq!(length, std::fs::metadata(&file).expect("meta").len());
        let (text, _) = last_lines(&file, 12).expect("tail");
        assert_eq!(text, numbered(49_999, 50_010));
        // Far more than one block of the rotated file.
        let (text, _) = last_lines(&file, 20_000).expect("tail");
        assert_eq!(text, numbered(30_011, 50_010));
        let (all, _) = last_lines(&file, 1_000_000).expect("tail");
        assert_eq!(all, numbered(1, 50_010));
    }

    #[test]
    fn following_reads_complete_lines_and_starts_over_after_a_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("app.log");
        std::fs::write(&file, "one\ntwo\nhalf").expect("write");
        let (text, offset) = read_from(&file, 4).expect("read");
        assert_eq!((text.as_str(), offset), ("two\n", 8));
        std::fs::write(&file, "new\n").expect("rotate");
        let (text, offset) = read_from(&file, offset).expect("read");
        assert_eq!((text.as_str(), offset), ("new\n", 4));
    }

    #[test]
    fn log_types_name_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["web.log", "web.log.1", "service-db.log"] {
            std::fs::write(dir.path().join(name), "").expect("write");
        }
        let path = |kind: &str, app: Option<&str>| log_file(dir.path(), kind, app).ok();
        assert_eq!(path("app", None), Some(dir.path().join("web.log")));
        assert_eq!(path("app", Some("web")), Some(dir.path().join("web.log")));
        assert_eq!(
            path("service-db", None),
            Some(dir.path().join("service-db.log"))
        );
        assert_eq!(path("app", Some("api")), None);
        let error = log_file(dir.path(), "nginx", None)
            .err()
            .map(|e| e.to_string());
        assert!(
            error.is_some_and(|e| e.contains("types: app, access, deploy, cron, service-db")),
            "the types are listed"
        );
    }
}
