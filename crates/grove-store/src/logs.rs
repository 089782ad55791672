//! Activity log lines stored in batches by one thread, and followers woken per activity.
//!
//! A running build produces lines faster than one transaction per line can store them,
//! and the async tasks producing them must not wait for SQLite. [`LogWriter::append`]
//! only queues a line; the `grove-log-writer` thread stores everything queued in one
//! transaction, then wakes the followers of the activities that got lines. Completions
//! travel through the same queue, so an activity is never complete before its lines are
//! stored.
//!
//! If a transaction fails (a full disk, a line for an activity that does not exist),
//! the thread retries it activity by activity, so one bad activity cannot lose the
//! lines of the others. Lines that still cannot be stored are reported with `tracing`
//! and counted; the next [`LogWriter::complete`] of their activity returns
//! [`StoreError::LogLinesLost`] once the completion itself is stored. Later lines are
//! written as usual: numbering carries on from the last stored line, without a gap.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread;

use tokio::sync::{oneshot, watch};

use crate::{Result, Store, StoreError, append_log_in, complete_activity_in, timestamp_now};

/// At most this many queued lines go into one transaction: large enough that a
/// flood costs a commit per ten thousand lines, small enough that followers see
/// progress and a failed batch loses a bounded amount of work.
const MAX_BATCH: usize = 10_000;

/// Lost-line counts waiting for a completion. Activities completed some other way never
/// take theirs, so the map is capped; beyond it, losses are only in the tracing log.
const MAX_LOST_RECORDS: usize = 1024;

/// The handle to the log writer thread: cheap to clone, shared by every activity.
///
/// The thread stops once the last clone is dropped, after storing what was queued.
/// Start one per store: followers are only woken by the writer they subscribed to.
#[derive(Clone)]
pub struct LogWriter {
    queue: mpsc::Sender<Op>,
    followers: Followers,
}

/// One watch channel per followed activity. An entry exists only while someone holds
/// a receiver: entries without receivers are swept after each batch and on subscribe.
type Followers = Arc<Mutex<HashMap<String, watch::Sender<u64>>>>;

enum Op {
    Line {
        activity: String,
        timestamp: String,
        message: String,
    },
    Complete {
        activity: String,
        result: String,
        timestamp: String,
        done: Reply,
    },
    /// Answered once everything queued before it has been written (or given up on).
    Flush { done: Reply },
}

impl Op {
    fn activity(&self) -> Option<&str> {
        match self {
            Op::Line { activity, .. } | Op::Complete { activity, .. } => Some(activity),
            Op::Flush { .. } => None,
        }
    }
}

/// Where to answer a completion or flush: an async waiter or a blocked thread. A
/// separate blocking channel rather than `oneshot::blocking_recv`, which panics when
/// called from inside a runtime.
enum Reply {
    Async(oneshot::Sender<Result<()>>),
    Blocking(mpsc::SyncSender<Result<()>>),
}

impl Reply {
    fn send(self, result: Result<()>) {
        // The waiter may have given up (a dropped future); nobody is left to tell.
        match self {
            Reply::Async(done) => {
                let _ = done.send(result);
            }
            Reply::Blocking(done) => {
                let _ = done.send(result);
            }
        }
    }
}

impl LogWriter {
    /// Starts the `grove-log-writer` thread for `store`.
    pub fn start(store: Arc<Store>) -> Result<LogWriter> {
        let (queue, queued) = mpsc::channel();
        let followers = Followers::default();
        let thread_followers = followers.clone();
        thread::Builder::new()
            .name("grove-log-writer".into())
            .spawn(move || run(&store, &queued, &thread_followers))
            .map_err(StoreError::LogWriterStart)?;
        Ok(LogWriter { queue, followers })
    }

    /// Queues a line of `activity`'s log; never waits for SQLite. The line's timestamp
    /// is taken now, when it was produced, not when it is stored.
    ///
    /// The queue is unbounded: a producer is never slowed down, so a runaway producer
    /// costs memory rather than stalling the activity that feeds it.
    pub fn append(&self, activity: &str, line: &str) {
        let op = Op::Line {
            activity: activity.to_string(),
            timestamp: timestamp_now(),
            message: line.to_string(),
        };
        if self.queue.send(op).is_err() {
            tracing::error!(
                activity,
                "The activity log writer has stopped; a log line is lost."
            );
        }
    }

    /// Wakes the returned receiver whenever lines of `activity` are stored or it is
    /// completed through this writer.
    ///
    /// The value is the highest sequence number of the activity stored through this
    /// writer while it had followers (0 until then): a hint only, read the lines with
    /// `Store::log_since`. Subscribe before that first read so that no line stored in
    /// between is missed. `changed()` fails once the writer has stopped: no more wake-ups
    /// will come.
    pub fn subscribe(&self, activity: &str) -> watch::Receiver<u64> {
        let mut followers = lock(&self.followers);
        followers.retain(|_, follower| follower.receiver_count() > 0);
        followers
            .entry(activity.to_string())
            .or_insert_with(|| watch::Sender::new(0))
            .subscribe()
    }

    /// Marks `activity` complete with `result` after every line queued before this call
    /// is stored, then wakes its followers.
    ///
    /// Queued when called, not when first polled; the future resolves once the
    /// completion is committed. `Err(LogLinesLost)` means the activity was completed
    /// but lines of it could not be stored.
    pub fn complete(
        &self,
        activity: &str,
        result: &str,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let (done, answer) = oneshot::channel();
        let queued = self.enqueue_completion(activity, result, Reply::Async(done));
        async move {
            queued?;
            answer.await.map_err(|_| StoreError::LogWriterStopped)?
        }
    }

    /// [`LogWriter::complete`] for a thread that may block (not an async task).
    pub fn complete_blocking(&self, activity: &str, result: &str) -> Result<()> {
        let (done, answer) = mpsc::sync_channel(1);
        self.enqueue_completion(activity, result, Reply::Blocking(done))?;
        answer.recv().map_err(|_| StoreError::LogWriterStopped)?
    }

    /// Resolves once every line queued before this call has been written (or reported
    /// lost), e.g. before shutting down.
    pub fn flush(&self) -> impl Future<Output = Result<()>> + Send + 'static {
        let (done, answer) = oneshot::channel();
        let queued = self
            .queue
            .send(Op::Flush {
                done: Reply::Async(done),
            })
            .map_err(|_| StoreError::LogWriterStopped);
        async move {
            queued?;
            answer.await.map_err(|_| StoreError::LogWriterStopped)?
        }
    }

    fn enqueue_completion(&self, activity: &str, result: &str, done: Reply) -> Result<()> {
        self.queue
            .send(Op::Complete {
                activity: activity.to_string(),
                result: result.to_string(),
                timestamp: timestamp_now(),
                done,
            })
            .map_err(|_| StoreError::LogWriterStopped)
    }

    #[cfg(test)]
    pub(crate) fn followed_activities(&self) -> usize {
        lock(&self.followers).len()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Only watch senders live behind this lock; a panic cannot leave them half-updated.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The writer thread: returns once every `LogWriter` is dropped and the queue is empty.
fn run(store: &Store, queued: &mpsc::Receiver<Op>, followers: &Followers) {
    let mut lost = LostLines::default();
    while let Ok(first) = queued.recv() {
        let mut batch = Vec::with_capacity(64);
        batch.push(first);
        batch.extend(queued.try_iter().take(MAX_BATCH - 1));
        write_batch(store, followers, &mut lost, batch);
    }
}

fn write_batch(store: &Store, followers: &Followers, lost: &mut LostLines, batch: Vec<Op>) {
    // Completions that could not be stored, by their index in the batch.
    let mut failed = HashMap::new();
    let stored = match store_ops(store, batch.iter()) {
        Ok(stored) => stored,
        Err(error) => {
            tracing::warn!(
                %error,
                queued = batch.len(),
                "Could not store a batch of activity log lines; retrying activity by activity."
            );
            retry_per_activity(store, &batch, lost, &mut failed)
        }
    };
    wake(followers, &batch, &stored, &failed);
    for (index, op) in batch.into_iter().enumerate() {
        match op {
            Op::Line { .. } => {}
            Op::Complete { activity, done, .. } => {
                let result = match failed.remove(&index) {
                    // Not complete: the lost count stays for the completion's retry.
                    Some(error) => Err(error),
                    None => lost.take(&activity).map_or(Ok(()), Err),
                };
                done.send(result);
            }
            Op::Flush { done } => done.send(Ok(())),
        }
    }
}

/// Stores `ops` in one transaction; returns the last sequence number stored per activity.
fn store_ops<'a>(
    store: &Store,
    ops: impl Iterator<Item = &'a Op>,
) -> Result<HashMap<&'a str, u64>> {
    store.write_transaction(|tx, last_seq| {
        let mut stored = HashMap::new();
        for op in ops {
            match op {
                Op::Line {
                    activity,
                    timestamp,
                    message,
                } => {
                    let seq = append_log_in(tx, last_seq, activity, timestamp, message)?;
                    stored.insert(activity.as_str(), seq);
                }
                Op::Complete {
                    activity,
                    result,
                    timestamp,
                    ..
                } => {
                    complete_activity_in(tx, activity, result, timestamp)?;
                    last_seq.forget(activity);
                }
                Op::Flush { .. } => {}
            }
        }
        Ok(stored)
    })
}

/// After a failed batch: each activity's share in its own transaction, and when that
/// fails too, its completions alone, so that the activity still ends.
fn retry_per_activity<'a>(
    store: &Store,
    batch: &'a [Op],
    lost: &mut LostLines,
    failed: &mut HashMap<usize, StoreError>,
) -> HashMap<&'a str, u64> {
    let mut stored = HashMap::new();
    let mut seen = HashSet::new();
    for activity in batch.iter().filter_map(Op::activity) {
        if !seen.insert(activity) {
            continue;
        }
        let of_activity = || {
            batch
                .iter()
                .enumerate()
                .filter(move |(_, op)| op.activity() == Some(activity))
        };
        let error = match store_ops(store, of_activity().map(|(_, op)| op)) {
            Ok(lines) => {
                stored.extend(lines);
                continue;
            }
            Err(error) => error,
        };
        let lines = of_activity()
            .filter(|(_, op)| matches!(op, Op::Line { .. }))
            .count() as u64;
        tracing::error!(activity, lines, %error, "Activity log lines could not be stored.");
        lost.record(activity, lines, &error);
        for (index, op) in of_activity().filter(|(_, op)| matches!(op, Op::Complete { .. })) {
            if let Err(error) = store_ops(store, std::iter::once(op)) {
                tracing::error!(activity, %error, "An activity's completion could not be stored.");
                failed.insert(index, error);
            }
        }
    }
    stored
}

/// Wakes the followers of the activities that got lines or were completed, after the
/// commit, so that a woken follower reads what woke it.
fn wake(
    followers: &Followers,
    batch: &[Op],
    stored: &HashMap<&str, u64>,
    failed: &HashMap<usize, StoreError>,
) {
    let mut followers = lock(followers);
    if followers.is_empty() {
        return;
    }
    for (activity, seq) in stored {
        if let Some(follower) = followers.get(*activity) {
            follower.send_replace(*seq);
        }
    }
    for (index, op) in batch.iter().enumerate() {
        if let Op::Complete { activity, .. } = op
            && !failed.contains_key(&index)
            && let Some(follower) = followers.get(activity.as_str())
        {
            // The value stays the last seq; the change itself says "look again".
            follower.send_modify(|_| {});
        }
    }
    followers.retain(|_, follower| follower.receiver_count() > 0);
}

/// Lines that could not be stored, per activity, until its completion reports them.
#[derive(Default)]
struct LostLines(HashMap<String, (u64, String)>);

impl LostLines {
    fn record(&mut self, activity: &str, lines: u64, error: &StoreError) {
        if lines == 0 {
            return;
        }
        if let Some((lost, _)) = self.0.get_mut(activity) {
            *lost += lines;
        } else if self.0.len() < MAX_LOST_RECORDS {
            self.0
                .insert(activity.to_string(), (lines, error.to_string()));
        }
    }

    fn take(&mut self, activity: &str) -> Option<StoreError> {
        self.0
            .remove(activity)
            .map(|(lost, reason)| StoreError::LogLinesLost {
                activity: activity.to_string(),
                lost,
                reason,
            })
    }
}
