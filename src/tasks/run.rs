//! One run: its container started from the live image, its output split into bounded lines,
//! masked, persisted in batches on the topic `run:<id>` and published, its end (exit code,
//! timeout, cancellation, a start that failed) recorded once, its container removed.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use uuid::Uuid;

use super::Tasks;
use crate::db::{self, projects::Project, runs::NewRun, runs::Run, runs::ScheduledJob};
use crate::deploy::DeployError;
use crate::deploy::tasks::TaskContext;
use crate::docker::{LineSplitter, TaskSpec};
use crate::hub::{Event, Topic};
use crate::model::{LogStream, RunState, RunTrigger};
use crate::notifications::Notice;

/// The `type` of a run topic's last event.
pub const STATUS_EVENT: &str = "status";
/// How often a running run's row says its runner is alive.
pub(super) const HEARTBEAT: Duration = Duration::from_secs(10);
/// Lines persisted and published together at most, and how long the first waits for others.
const BATCH_LINES: usize = 256;
const GATHER: Duration = Duration::from_millis(20);

/// What to run.
pub struct Request<'a> {
    pub project: &'a Project,
    pub command: Vec<String>,
    pub timeout: Duration,
    pub trigger: RunTrigger,
    pub job: Option<&'a ScheduledJob>,
    pub by: Option<Uuid>,
}

impl Tasks {
    /// Starts a run in the background; the recorded run (already `running`).
    pub async fn start(self: &Arc<Self>, request: Request<'_>) -> Result<Run, DeployError> {
        super::check_command(&request.command)?;
        if self.running().len() >= self.config.jobs.max_running {
            return Err(DeployError::Conflict(format!(
                "{} runs are running on this instance (jobs.max_running); retry when one ends",
                self.config.jobs.max_running
            )));
        }
        let context = self.deployer.task_context(request.project).await?;
        let run = db::runs::create_run(
            &self.db,
            NewRun {
                project_id: request.project.id,
                job_id: request.job.map(|j| j.id),
                command: request.command.clone(),
                trigger: request.trigger,
                created_by: request.by,
                deployment_id: Some(context.deployment),
            },
        )
        .await?;
        let token = self.shutdown.child_token();
        self.running().insert(run.id, token.clone());
        let tasks = self.clone();
        let (project, job, timeout, command) = (
            request.project.clone(),
            request.job.cloned(),
            request.timeout,
            request.command,
        );
        let started = run.clone();
        tokio::spawn(async move {
            let outcome = tasks
                .execute(&started, &project, context, command, timeout, token)
                .await;
            tasks.running().remove(&started.id);
            tasks.after(&started, &project, job.as_ref(), outcome).await;
        });
        Ok(run)
    }

    /// Runs the container to its end; (exit code, why it failed other than by its code).
    async fn execute(
        &self,
        run: &Run,
        project: &Project,
        context: TaskContext,
        command: Vec<String>,
        timeout: Duration,
        cancel: tokio_util::sync::CancellationToken,
    ) -> (Option<i64>, Option<String>) {
        let mut output = Output::new(self, run.id, context.masks.clone());
        let spec = TaskSpec {
            project: project.id,
            run: run.id,
            image: context.image,
            command,
            env: context.env,
            limits: context.limits,
            network: context.network,
            volumes: context.volumes,
            files: context.files,
            tty: false,
        };
        let container = match self.docker.start_task(spec).await {
            Ok(container) => container,
            Err(e) => return (None, Some(format!("cannot start the command: {e}"))),
        };
        if let Err(e) = db::runs::set_container(&self.db, run.id, &container).await {
            tracing::warn!(run = %run.id, error = %e, "cannot record a run's container");
        }
        let mut stream = match self.docker.task_output(&container).await {
            Ok(stream) => stream,
            Err(e) => {
                let _ = self.docker.remove_container(&container).await;
                return (None, Some(format!("cannot read the command's output: {e}")));
            }
        };
        let max_line = self.config.deploy.max_log_line_bytes;
        let (mut out, mut err) = (LineSplitter::new(max_line), LineSplitter::new(max_line));
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.tick().await;
        let mut why: Option<String> = None;
        loop {
            let gather = output.gather_deadline();
            tokio::select! {
                chunk = stream.next() => match chunk {
                    Some(Ok((stream, bytes))) => {
                        let text = String::from_utf8_lossy(&bytes);
                        let splitter = if stream == LogStream::Stderr { &mut err } else { &mut out };
                        splitter.push(&text, |line| output.line(stream, line));
                        if output.pending() >= BATCH_LINES {
                            output.flush().await;
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!(run = %run.id, error = %e, "a run's output stream broke");
                        break;
                    }
                    None => break,
                },
                () = tokio::time::sleep_until(gather), if output.pending() > 0 => output.flush().await,
                () = &mut deadline, if why.is_none() => {
                    why = Some(format!("timed out after {} s; the container was killed", timeout.as_secs()));
                    let _ = self.docker.kill_task(&container).await;
                }
                () = cancel.cancelled(), if why.is_none() => {
                    why = Some("cancelled; the container was killed".into());
                    let _ = self.docker.kill_task(&container).await;
                }
                _ = heartbeat.tick() => {
                    if let Err(e) = db::runs::heartbeat(&self.db, &[run.id]).await {
                        tracing::warn!(run = %run.id, error = %e, "cannot record a run's heartbeat");
                    }
                }
            }
        }
        out.finish(|line| output.line(LogStream::Stdout, line));
        err.finish(|line| output.line(LogStream::Stderr, line));
        let code = self.docker.wait_task(&container).await.ok();
        output.flush().await;
        if let Err(e) = self.docker.remove_container(&container).await {
            tracing::warn!(run = %run.id, error = %e, "cannot remove a run's container");
        }
        (code, why)
    }

    /// Records the end, tells whoever listens, and drops runs past `jobs.keep_runs`.
    async fn after(
        &self,
        run: &Run,
        project: &Project,
        job: Option<&ScheduledJob>,
        (code, why): (Option<i64>, Option<String>),
    ) {
        let failed_because = match (&why, code) {
            (Some(why), _) => Some(why.clone()),
            (None, Some(0)) => None,
            (None, Some(code)) => Some(format!("exited with code {code}")),
            (None, None) => Some("the command's exit code is unknown".into()),
        };
        if !self.end(run, code, failed_because.as_deref()).await {
            return;
        }
        if let (Some(job), Some(why)) = (job, &failed_because) {
            let notice = Notice {
                event: "job.failed".into(),
                title: format!("job {} of {} failed", job.name, project.name),
                body: why.clone(),
                project_id: Some(project.id),
                project: Some(project.name.clone()),
                deployment_id: None,
                url: Some(format!("{}/projects/{}/jobs", self.base, project.id)),
            };
            self.notifier.emit_to_team(project, notice).await;
        }
        let keep = self.config.jobs.keep_runs;
        match db::runs::prune(&self.db, project.id, job.map(|j| j.id), keep).await {
            Ok(gone) => {
                for id in gone {
                    let topic = Topic::Run(id).to_string();
                    let _ = db::topic_events::delete_topic(&self.db, &topic).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot prune old runs"),
        }
    }

    /// Ends a running run once (`error` set: failed) and publishes its status; whether this
    /// call ended it.
    pub(super) async fn end(&self, run: &Run, code: Option<i64>, error: Option<&str>) -> bool {
        let status = if error.is_none() {
            RunState::Succeeded
        } else {
            RunState::Failed
        };
        match db::runs::finish(&self.db, run.id, status, code, error).await {
            Ok(true) => {}
            Ok(false) => return false,
            Err(e) => {
                tracing::error!(run = %run.id, error = %e, "cannot record a run's end");
                return false;
            }
        }
        let mut payload = json!({"status": status.as_str(), "exit_code": code});
        if let Some(error) = error {
            payload["error"] = json!(error);
        }
        crate::hub::record::publish(
            &self.db,
            &self.hub,
            Topic::Run(run.id),
            STATUS_EVENT,
            payload,
        )
        .await;
        true
    }
}

/// A run's output on its way to the topic: numbered here (the run is the topic's only writer
/// until its status), masked, bounded.
struct Output<'a> {
    tasks: &'a Tasks,
    topic: Topic,
    name: String,
    masks: Vec<String>,
    seq: i64,
    pending: Vec<(chrono::DateTime<chrono::Utc>, LogStream, String)>,
    first_pending: Option<tokio::time::Instant>,
    lines: u64,
    truncated: bool,
}

impl<'a> Output<'a> {
    fn new(tasks: &'a Tasks, run: Uuid, masks: Vec<String>) -> Self {
        let topic = Topic::Run(run);
        Self {
            tasks,
            name: topic.to_string(),
            topic,
            masks,
            seq: 0,
            pending: Vec::new(),
            first_pending: None,
            lines: 0,
            truncated: false,
        }
    }

    fn pending(&self) -> usize {
        self.pending.len()
    }

    /// When the waiting lines are due to go out (far ahead when none wait).
    fn gather_deadline(&self) -> tokio::time::Instant {
        self.first_pending.map_or_else(
            || tokio::time::Instant::now() + Duration::from_secs(3600),
            |first| first + GATHER,
        )
    }

    fn line(&mut self, stream: LogStream, mut line: String) {
        if self.truncated {
            return;
        }
        if self.lines >= self.tasks.config.deploy.max_log_lines {
            self.truncated = true;
            line = format!(
                "[shard] output truncated after {} lines (deploy.max_log_lines); the command still runs",
                self.lines
            );
            self.push(LogStream::System, line);
            return;
        }
        self.lines += 1;
        for secret in &self.masks {
            if line.contains(secret.as_str()) {
                line = line.replace(secret.as_str(), "********");
            }
        }
        self.push(stream, line);
    }

    fn push(&mut self, stream: LogStream, line: String) {
        if self.pending.is_empty() {
            self.first_pending = Some(tokio::time::Instant::now());
        }
        self.pending.push((crate::hub::timestamp(), stream, line));
    }

    /// Persists the waiting lines, then publishes them.
    async fn flush(&mut self) {
        self.first_pending = None;
        if self.pending.is_empty() {
            return;
        }
        let lines = std::mem::take(&mut self.pending);
        let rows: Vec<_> = lines
            .iter()
            .map(|(ts, stream, line)| {
                let payload = json!({"stream": stream.as_str(), "line": line});
                (*ts, "log", payload.to_string())
            })
            .collect();
        let first = self.seq + 1;
        if let Err(e) =
            db::topic_events::append_numbered(&self.tasks.db, &self.name, first, &rows).await
        {
            tracing::error!(topic = %self.name, error = %e, "cannot record a run's output");
            return;
        }
        self.seq += lines.len() as i64;
        let events = lines
            .into_iter()
            .enumerate()
            .map(|(i, (ts, stream, line))| Event::Topic {
                topic: self.topic,
                seq: first + i as i64,
                ts,
                kind: "log".into(),
                payload: json!({"stream": stream.as_str(), "line": line}),
            })
            .collect();
        self.tasks.hub.publish_all(events);
    }
}
