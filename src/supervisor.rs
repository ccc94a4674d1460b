//! Every long-running background loop runs under one `Supervisor`: it has a name; when it
//! returns an error or panics it is logged and started again after a backoff (1 s, doubling to
//! 60 s, back to 1 s once a run lasted a minute); a loop that returns `Ok` has ended on purpose
//! (shutdown, or nothing to do on this instance). Its state (running, restarting, ended),
//! restart count and last error are visible (`GET /system/overview`,
//! `shard_task_restarts_total{task}` on `/metrics`).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A run that lasted this long before failing starts the backoff over.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// Where a supervised task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Running,
    /// It failed and waits for its backoff before starting again.
    Restarting,
    /// It ended with shutdown (or was never meant to run again).
    Ended,
}

/// One task as `GET /system/overview` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TaskState {
    pub name: &'static str,
    pub status: TaskStatus,
    pub restarts: u64,
    pub last_error: Option<String>,
    pub last_restart_at: Option<DateTime<Utc>>,
}

type OnRestart = Box<dyn Fn(&'static str) + Send + Sync>;

pub struct Supervisor {
    tasks: Mutex<BTreeMap<&'static str, TaskState>>,
    shutdown: CancellationToken,
    /// Told of every restart (the `/metrics` counter).
    on_restart: OnRestart,
}

impl Supervisor {
    pub fn new(shutdown: CancellationToken, on_restart: OnRestart) -> Arc<Self> {
        Arc::new(Self {
            tasks: Mutex::default(),
            shutdown,
            on_restart,
        })
    }

    /// Runs the task `make` starts, as `name`, starting it again whenever it fails. The handle
    /// ends when the task ended for good (done, or at shutdown).
    pub fn spawn<F, Fut>(self: &Arc<Self>, name: &'static str, make: F) -> JoinHandle<()>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.set(name, |t| t.status = TaskStatus::Running);
        let this = self.clone();
        tokio::spawn(async move {
            let mut backoff = FIRST_BACKOFF;
            loop {
                let started = Instant::now();
                let outcome = tokio::spawn(make()).await;
                if this.shutdown.is_cancelled() || matches!(outcome, Ok(Ok(()))) {
                    this.set(name, |t| t.status = TaskStatus::Ended);
                    return;
                }
                let why = match outcome {
                    Ok(Ok(())) => unreachable!("an Ok end returned above"),
                    Ok(Err(e)) => format!("{e:#}"),
                    Err(e) if e.is_panic() => "it panicked".to_string(),
                    Err(e) => format!("{e}"),
                };
                if started.elapsed() > HEALTHY_RUN {
                    backoff = FIRST_BACKOFF;
                }
                tracing::error!(task = name, error = %why, retry_in_secs = backoff.as_secs(), "a background task failed; restarting it");
                this.set(name, |t| {
                    t.status = TaskStatus::Restarting;
                    t.restarts += 1;
                    t.last_error = Some(why.chars().take(500).collect());
                    t.last_restart_at = Some(Utc::now());
                });
                (this.on_restart)(name);
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = this.shutdown.cancelled() => {
                        this.set(name, |t| t.status = TaskStatus::Ended);
                        return;
                    }
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                this.set(name, |t| t.status = TaskStatus::Running);
            }
        })
    }

    /// Runs a task that can only be started once (it owns a channel's receiving end): watched
    /// and shown like the others, but not started again; a failure is logged as an error.
    pub fn spawn_once<Fut>(self: &Arc<Self>, name: &'static str, task: Fut)
    where
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.set(name, |t| t.status = TaskStatus::Running);
        let this = self.clone();
        tokio::spawn(async move {
            let outcome = tokio::spawn(task).await;
            let why = match outcome {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(format!("{e:#}")),
                Err(e) => Some(format!("{e}")),
            };
            if let Some(why) = why {
                tracing::error!(task = name, error = %why, "a background task failed and cannot be restarted");
                this.set(name, |t| t.last_error = Some(why));
            }
            this.set(name, |t| t.status = TaskStatus::Ended);
        });
    }

    /// Every task, by name.
    pub fn snapshot(&self) -> Vec<TaskState> {
        self.tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    fn set(&self, name: &'static str, change: impl FnOnce(&mut TaskState)) {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        let task = tasks.entry(name).or_insert(TaskState {
            name,
            status: TaskStatus::Running,
            restarts: 0,
            last_error: None,
            last_restart_at: None,
        });
        change(task);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_failing_task_is_restarted_with_backoff_and_counted() {
        let shutdown = CancellationToken::new();
        let counted = Arc::new(AtomicU32::new(0));
        let seen = counted.clone();
        let supervisor = Supervisor::new(
            shutdown.clone(),
            Box::new(move |_| {
                seen.fetch_add(1, Ordering::Relaxed);
            }),
        );
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        supervisor.spawn("flaky", move || {
            let n = r.fetch_add(1, Ordering::Relaxed);
            async move {
                match n {
                    0 => anyhow::bail!("first run fails"),
                    1 => panic!("second run panics"),
                    _ => {
                        std::future::pending::<()>().await;
                        Ok(())
                    }
                }
            }
        });
        // Backoffs of 1 s then 2 s.
        let deadline = Instant::now() + Duration::from_secs(10);
        while runs.load(Ordering::Relaxed) < 3 {
            assert!(Instant::now() < deadline, "{:?}", supervisor.snapshot());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let task = &supervisor.snapshot()[0];
        assert_eq!(task.status, TaskStatus::Running);
        assert_eq!(task.restarts, 2);
        assert_eq!(runs.load(Ordering::Relaxed), 3);
        assert_eq!(counted.load(Ordering::Relaxed), 2);
        assert!(task.last_error.as_deref().unwrap().contains("panicked"));
        shutdown.cancel();
    }
}
