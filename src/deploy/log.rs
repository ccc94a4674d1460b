//! The log writer of a running deploy: lines go through a bounded channel to one task that
//! persists them in batches (a slow database slows the build stream, never grows memory),
//! then publishes them on the hub. Secret values are masked before anything is stored, and a
//! deployment persists at most `deploy.max_log_lines` output lines, then one notice.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use uuid::Uuid;

use chrono::{DateTime, Utc};

use super::DeploymentStatus;
use super::notify;
use crate::db::deployment_logs::{self, Entry};
use crate::db::{self, Db, deployments::Deployment};
use crate::hub::{Event, Hub};
use crate::model::LogStream;

/// Lines kept for a failure message ("--- last lines ---").
pub const TAIL_LINES: usize = 15;
/// Lines waiting to be persisted; the build stream waits when it is full.
const CHANNEL_LINES: usize = 4096;
/// Lines persisted and published together at most.
const BATCH_LINES: usize = 512;
/// How long the writer gathers lines after the first one before it persists and publishes
/// them: the most a line waits, and what bounds the messages per second each viewer gets.
const COALESCE: Duration = Duration::from_millis(20);

/// Where a deploy's log goes. Cheap to share between the pipeline and the build stream.
pub struct LogWriter {
    sender: Option<mpsc::Sender<Record>>,
    task: Option<tokio::task::JoinHandle<()>>,
    inner: Mutex<Inner>,
    max_line: usize,
    max_lines: u64,
}

#[derive(Default)]
struct Inner {
    tail: VecDeque<String>,
    masks: Vec<String>,
    /// Output lines accepted so far (system and status lines are not counted).
    output_lines: u64,
    truncated: bool,
}

/// One record of a deployment's log: an output or system line, or a status change (kept in
/// the log so a reader replays it in order).
#[derive(Debug, Clone)]
pub enum Record {
    Line {
        ts: DateTime<Utc>,
        stream: LogStream,
        line: String,
    },
    Status {
        ts: DateTime<Utc>,
        status: DeploymentStatus,
    },
}

impl Record {
    pub fn line(stream: LogStream, line: String) -> Self {
        Record::Line {
            ts: crate::hub::timestamp(),
            stream,
            line,
        }
    }

    fn is_status(&self) -> bool {
        matches!(self, Record::Status { .. })
    }

    pub fn status(status: DeploymentStatus) -> Self {
        Record::Status {
            ts: crate::hub::timestamp(),
            status,
        }
    }

    /// Its row in `deployment_logs`.
    pub(super) fn entry(&self) -> Entry<'_> {
        match self {
            Record::Line { ts, stream, line } => Entry {
                ts: *ts,
                stream: *stream,
                line: line.as_str().into(),
            },
            Record::Status { ts, status } => Entry {
                ts: *ts,
                stream: LogStream::Status,
                line: status.as_str().into(),
            },
        }
    }

    /// Its hub event, at `seq`.
    fn event(self, deployment_id: Uuid, seq: i64) -> Event {
        match self {
            Record::Line { ts, stream, line } => Event::Log {
                deployment_id,
                seq,
                ts,
                stream,
                line,
            },
            Record::Status { ts, status } => Event::Status {
                deployment_id,
                seq,
                ts,
                status,
            },
        }
    }
}

/// What follows persisting a deployment's records (numbered from `first`; `None` when they
/// could not be persisted): every status change goes through `notify::deployment_status`, the
/// one list of its side effects (commit status, metrics, project topic, notices), then the
/// persisted records are published on the hub. `reason` explains a status change; for a
/// failure without one, the deployment's recorded error is used.
pub(super) async fn announce(
    sink: &Sink,
    project_id: Uuid,
    deployment_id: Uuid,
    first: Option<i64>,
    records: Vec<Record>,
    reason: Option<&str>,
) {
    for record in &records {
        let Record::Status { status, .. } = record else {
            continue;
        };
        let recorded;
        let why = match reason {
            Some(reason) => Some(reason),
            None if *status == DeploymentStatus::Failed => {
                recorded = db::deployments::find(&sink.db, deployment_id)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|d| d.error);
                recorded.as_deref()
            }
            None => None,
        };
        notify::deployment_status(sink, project_id, deployment_id, *status, why).await;
    }
    if let Some(first) = first {
        let events = records
            .into_iter()
            .zip(first..)
            .map(|(record, seq)| record.event(deployment_id, seq))
            .collect();
        sink.hub.publish_all(events);
    }
}

/// What the writer task needs to persist and publish.
#[derive(Clone)]
pub struct Sink {
    pub db: Db,
    pub hub: Arc<Hub>,
    pub commit_statuses: super::commit_status::CommitStatuses,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub notifier: Arc<crate::notifications::Notifier>,
    /// The dashboard's external URL (links in notifications).
    pub base: String,
}

impl LogWriter {
    /// Starts the writer task; numbering continues after what the deployment's log holds.
    pub async fn start(
        sink: Sink,
        deployment: &Deployment,
        max_line: usize,
        max_lines: u64,
    ) -> anyhow::Result<Self> {
        let (sender, receiver) = mpsc::channel::<Record>(CHANNEL_LINES);
        let next_seq = deployment_logs::last_seq(&sink.db, deployment.id).await? + 1;
        let task = tokio::spawn(write_batches(
            sink,
            deployment.id,
            deployment.project_id,
            next_seq,
            receiver,
        ));
        Ok(Self {
            sender: Some(sender),
            task: Some(task),
            inner: Mutex::default(),
            max_line,
            max_lines,
        })
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn send(&self, stream: LogStream, line: String) {
        let mut line = self.masked(&line);
        crate::docker::cap_text(&mut line, self.max_line);
        if matches!(stream, LogStream::Stdout | LogStream::Stderr) {
            let notice = {
                let mut inner = self.inner();
                if inner.truncated {
                    return;
                }
                inner.output_lines += 1;
                if inner.tail.len() == TAIL_LINES {
                    inner.tail.pop_front();
                }
                inner.tail.push_back(line.clone());
                if inner.output_lines > self.max_lines {
                    inner.truncated = true;
                    true
                } else {
                    false
                }
            };
            if notice {
                let text = format!(
                    "==> log truncated: this deployment already has {} lines; later output is not kept (deploy.max_log_lines)",
                    self.max_lines
                );
                return self.push(Record::line(LogStream::System, text)).await;
            }
        }
        self.push(Record::line(stream, line)).await
    }

    async fn push(&self, record: Record) {
        if let Some(sender) = &self.sender {
            let _ = sender.send(record).await;
        }
    }

    pub async fn stdout(&self, line: String) {
        self.send(LogStream::Stdout, line).await;
    }

    pub async fn system(&self, line: String) {
        self.send(LogStream::System, line).await;
    }

    pub async fn status(&self, status: DeploymentStatus) {
        self.push(Record::status(status)).await;
    }

    /// Secret values to replace with `********` in every later line.
    pub fn mask(&self, secret: String) {
        let mut inner = self.inner();
        if !inner.masks.contains(&secret) {
            inner.masks.push(secret);
        }
    }

    pub fn masked(&self, text: &str) -> String {
        let inner = self.inner();
        let mut out = text.to_string();
        for secret in &inner.masks {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "********");
            }
        }
        out
    }

    /// The last output lines (masked), for a failure message.
    pub fn tail(&self) -> Vec<String> {
        self.inner().tail.iter().cloned().collect()
    }

    /// Flushes everything written so far and stops the task.
    pub async fn finish(&mut self) {
        self.sender.take();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// The writer task: persist a batch (retrying while the database is away: a gap would break
/// every subscriber's replay), then `announce` it.
async fn write_batches(
    sink: Sink,
    deployment_id: Uuid,
    project_id: Uuid,
    mut next_seq: i64,
    mut receiver: mpsc::Receiver<Record>,
) {
    let mut batch = Vec::with_capacity(256);
    while receiver.recv_many(&mut batch, BATCH_LINES).await > 0 {
        // A busy build gives lines one at a time: wait a moment for more, so every subscriber
        // gets one message per window instead of one per line, and the database one insert.
        // A status change goes out at once: it is what a viewer waits for.
        let deadline = tokio::time::Instant::now() + COALESCE;
        while batch.len() < BATCH_LINES && !batch.iter().any(Record::is_status) {
            let room = BATCH_LINES - batch.len();
            match tokio::time::timeout_at(deadline, receiver.recv_many(&mut batch, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        // Rows borrow the records' text; each line is copied once, into the statement.
        let entries: Vec<Entry> = batch.iter().map(Record::entry).collect();
        let mut attempt: u64 = 0;
        let mut persisted = true;
        while let Err(e) =
            deployment_logs::insert(&sink.db, deployment_id, next_seq, &entries).await
        {
            attempt += 1;
            if attempt >= 5
                && matches!(
                    db::deployments::find(&sink.db, deployment_id).await,
                    Ok(None)
                )
            {
                // The project was deleted with its deployments: nothing left to write to.
                persisted = false;
                break;
            }
            tracing::warn!(error = %e, attempt, "cannot persist log lines; retrying");
            tokio::time::sleep(Duration::from_millis(200 * attempt.min(25))).await;
        }
        drop(entries);
        if !persisted {
            batch.clear();
            continue;
        }
        let first = next_seq;
        next_seq += batch.len() as i64;
        let records = std::mem::replace(&mut batch, Vec::with_capacity(256));
        announce(&sink, project_id, deployment_id, Some(first), records, None).await;
    }
}
