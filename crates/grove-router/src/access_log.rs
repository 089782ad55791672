//! Per-environment access logs: a line per request the router answered for an
//! environment, in nginx's `combined` format with the time to the response head
//! appended (what Platform.sh's `access.log` holds). Requests never wait for the disk:
//! lines go through a bounded queue to one writer thread, which appends them to each
//! log file (0600) and rotates a file past [`ROTATE_AT`] to `<file>.1`. When the queue
//! is full, lines are dropped and counted, never the request.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use hyper::http::{HeaderMap, Method, StatusCode, Uri, Version, header};

/// Lines waiting for the writer, all logs together.
const QUEUE: usize = 16 * 1024;
/// A log file is rotated once it is this large.
pub const ROTATE_AT: u64 = 10 * 1024 * 1024;
/// A file no line was written to for this long is closed (its environment may be gone).
const CLOSE_IDLE: Duration = Duration::from_secs(60);
/// At most this many queued lines are written together (one write per file).
const BATCH: usize = 1024;

/// One environment's access log file.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AccessLog {
    path: PathBuf,
}

/// Lines dropped because the writer was behind, since the process started.
static DROPPED: AtomicU64 = AtomicU64::new(0);

impl AccessLog {
    pub fn new(path: PathBuf) -> AccessLog {
        AccessLog { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues one request's line.
    pub(crate) fn record(
        self: &Arc<Self>,
        request: &Requested,
        status: StatusCode,
        bytes: Option<u64>,
    ) {
        let line = request.line(status, bytes);
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            writer().try_send((self.clone(), line))
        {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// How many lines were dropped because the writer was behind.
pub fn dropped_lines() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// What a line says of the request, taken before the request is consumed.
pub(crate) struct Requested {
    started: Instant,
    client: std::net::IpAddr,
    method: Method,
    uri: Uri,
    version: Version,
    referer: Option<header::HeaderValue>,
    user_agent: Option<header::HeaderValue>,
}

impl Requested {
    pub(crate) fn new(
        started: Instant,
        client: std::net::IpAddr,
        method: &Method,
        uri: &Uri,
        version: Version,
        headers: &HeaderMap,
    ) -> Requested {
        Requested {
            started,
            client,
            method: method.clone(),
            uri: uri.clone(),
            version,
            referer: headers.get(header::REFERER).cloned(),
            user_agent: headers.get(header::USER_AGENT).cloned(),
        }
    }

    fn line(&self, status: StatusCode, bytes: Option<u64>) -> String {
        let quoted = |value: Option<&header::HeaderValue>| match value {
            Some(value) => escape(value.as_bytes()),
            None => "-".to_owned(),
        };
        let target = self.uri.path_and_query().map_or("/", |p| p.as_str());
        format!(
            "{} - - [{}] \"{} {} {:?}\" {} {} \"{}\" \"{}\" {:.3}\n",
            self.client,
            httpdate::fmt_http_date(SystemTime::now()),
            escape(self.method.as_str().as_bytes()),
            escape(target.as_bytes()),
            self.version,
            status.as_u16(),
            bytes.map_or("-".to_owned(), |b| b.to_string()),
            quoted(self.referer.as_ref()),
            quoted(self.user_agent.as_ref()),
            self.started.elapsed().as_secs_f64(),
        )
    }
}

/// What a client sent, written so that it cannot break the line or its quoting: `"`,
/// `\` and bytes outside printable ASCII as `\xNN`, as nginx writes them.
fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            out.push_str(&format!("\\x{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

type Queued = (Arc<AccessLog>, String);

fn writer() -> &'static SyncSender<Queued> {
    static WRITER: OnceLock<SyncSender<Queued>> = OnceLock::new();
    WRITER.get_or_init(|| {
        let (send, receive) = std::sync::mpsc::sync_channel(QUEUE);
        if let Err(error) = std::thread::Builder::new()
            .name("grove-access-log".into())
            .spawn(move || write_lines(receive))
        {
            tracing::error!(%error, "Could not start the access log writer; access logs are off.");
        }
        send
    })
}

struct Open {
    file: File,
    length: u64,
    last_write: Instant,
}

fn write_lines(receive: Receiver<Queued>) {
    let mut open: HashMap<PathBuf, Open> = HashMap::new();
    let mut batch: HashMap<Arc<AccessLog>, Vec<u8>> = HashMap::new();
    loop {
        match receive.recv_timeout(CLOSE_IDLE) {
            Ok((log, line)) => {
                batch
                    .entry(log)
                    .or_default()
                    .extend_from_slice(line.as_bytes());
                // What queued meanwhile goes with it: one write per file, not per line.
                for (log, line) in receive.try_iter().take(BATCH - 1) {
                    batch
                        .entry(log)
                        .or_default()
                        .extend_from_slice(line.as_bytes());
                }
                for (log, lines) in batch.drain() {
                    if let Err(error) = append(&mut open, &log.path, &lines, ROTATE_AT) {
                        tracing::warn!(path = %log.path.display(), %error, "Could not write access log lines.");
                        open.remove(&log.path);
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        open.retain(|_, o| o.last_write.elapsed() < CLOSE_IDLE);
    }
}

fn append(
    open: &mut HashMap<PathBuf, Open>,
    path: &Path,
    line: &[u8],
    rotate_at: u64,
) -> std::io::Result<()> {
    let rotate = open.get(path).is_some_and(|o| o.length >= rotate_at);
    if rotate {
        open.remove(path);
        let mut rotated = path.as_os_str().to_owned();
        rotated.push(".1");
        std::fs::rename(path, rotated)?;
    }
    let entry = match open.entry(path.to_path_buf()) {
        std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
        std::collections::hash_map::Entry::Vacant(entry) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)?;
            let length = file.metadata()?.len();
            entry.insert(Open {
                file,
                length,
                last_write: Instant::now(),
            })
        }
    };
    entry.file.write_all(line)?;
    entry.length += line.len() as u64;
    entry.last_write = Instant::now();
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::os::unix::fs::PermissionsExt;

    use super::{append, escape};

    #[test]
    fn files_are_private_and_rotated_once_full() {
        let dir = std::env::temp_dir().join(format!("grove-access-log-{}", std::process::id()));
        let path = dir.join("env").join("access.log");
        let mut open = HashMap::new();
        for i in 0..5 {
            append(&mut open, &path, format!("line {i}\n").as_bytes(), 14).expect("append");
        }
        let rotated = dir.join("env").join("access.log.1");
        assert_eq!(std::fs::read_to_string(&path).expect("log"), "line 4\n");
        assert_eq!(
            std::fs::read_to_string(&rotated).expect("rotated"),
            "line 2\nline 3\n"
        );
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn what_clients_send_cannot_break_a_line() {
        assert_eq!(escape(b"/a?b=c"), "/a?b=c");
        assert_eq!(escape(b"x\"y\\z"), "x\\x22y\\x5Cz");
        assert_eq!(
            escape(b"a\nb\tc\x7f\xc3\xa9"),
            "a\\x0Ab\\x09c\\x7F\\xC3\\xA9"
        );
    }
}
