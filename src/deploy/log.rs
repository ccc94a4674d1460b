//! The log writer of a running deploy: lines go through a bounded channel to one task that
//! persists them in batches (a slow database slows the build stream, never grows memory),
//! then publishes them on the hub. Secret values are masked before anything is stored, and a
//! deployment persists at most `deploy.max_log_lines` output lines, then one notice.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use uuid::Uuid;

use super::DeploymentStatus;
use super::notify;
use crate::db::deployment_logs::{self, Entry};
use crate::db::{self, Db, deployments::Deployment};
use crate::hub::{Event, Hub};

/// Lines kept for a failure message ("--- last lines ---").
pub const TAIL_LINES: usize = 15;
/// Lines waiting to be persisted; the build stream waits when it is full.
const CHANNEL_LINES: usize = 4096;

/// Where a deploy's log goes. Cheap to share between the pipeline and the build stream.
pub struct LogWriter {
    sender: Option<mpsc::Sender<Entry>>,
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
        let (sender, receiver) = mpsc::channel::<Entry>(CHANNEL_LINES);
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

    async fn send(&self, stream: &'static str, line: String) {
        let mut line = self.masked(&line);
        crate::docker::cap_text(&mut line, self.max_line);
        if stream == "stdout" || stream == "stderr" {
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
                return self.push("system", text).await;
            }
        }
        self.push(stream, line).await
    }

    async fn push(&self, stream: &'static str, line: String) {
        if let Some(sender) = &self.sender {
            let entry = Entry {
                ts: crate::hub::timestamp(),
                stream,
                line,
            };
            let _ = sender.send(entry).await;
        }
    }

    pub async fn stdout(&self, line: String) {
        self.send("stdout", line).await;
    }

    pub async fn system(&self, line: String) {
        self.send("system", line).await;
    }

    pub async fn status(&self, status: DeploymentStatus) {
        self.send("status", status.as_str().to_string()).await;
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
/// every subscriber's replay), then publish it, status lines also on the project topic.
async fn write_batches(
    sink: Sink,
    deployment_id: Uuid,
    project_id: Uuid,
    mut next_seq: i64,
    mut receiver: mpsc::Receiver<Entry>,
) {
    let mut batch = Vec::with_capacity(256);
    while receiver.recv_many(&mut batch, 512).await > 0 {
        let mut attempt: u64 = 0;
        while let Err(e) = deployment_logs::insert(&sink.db, deployment_id, next_seq, &batch).await
        {
            attempt += 1;
            if attempt >= 5
                && matches!(
                    db::deployments::find(&sink.db, deployment_id).await,
                    Ok(None)
                )
            {
                // The project was deleted with its deployments: nothing left to write to.
                batch.clear();
                break;
            }
            tracing::warn!(error = %e, attempt, "cannot persist log lines; retrying");
            tokio::time::sleep(Duration::from_millis(200 * attempt.min(25))).await;
        }
        for entry in batch.iter().filter(|e| e.stream == "status") {
            let Some(status) = DeploymentStatus::parse(&entry.line) else {
                continue;
            };
            let error = if status == DeploymentStatus::Failed {
                db::deployments::find(&sink.db, deployment_id)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|d| d.error)
            } else {
                None
            };
            notify::deployment_status(&sink, project_id, deployment_id, status, error.as_deref())
                .await;
        }
        let mut events = Vec::with_capacity(batch.len());
        for entry in batch.drain(..) {
            let event = if entry.stream == "status" {
                Event::Status {
                    deployment_id,
                    seq: next_seq,
                    ts: entry.ts,
                    status: entry.line,
                }
            } else {
                Event::Log {
                    deployment_id,
                    seq: next_seq,
                    ts: entry.ts,
                    stream: entry.stream,
                    line: entry.line,
                }
            };
            events.push(event);
            next_seq += 1;
        }
        sink.hub.publish_all(events);
    }
}
