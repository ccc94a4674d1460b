//! The durable in-process job queue: jobs are rows (`db::jobs`), claimed by N workers under a
//! lease they renew while the job runs. A job whose worker died is claimed again once its lease
//! expires; failures retry with exponential backoff up to the job's attempt limit. Job kinds
//! dispatch into their domain modules (`deploy`) or housekeeping (`maintenance`).

pub mod maintenance;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::task::JoinHandle;

use crate::supervisor::Supervisor;
use tokio_util::sync::CancellationToken;

use crate::db::jobs::{self as queue, Job};

/// What the workers use: the queue, its settings, and the handlers of each kind of job.
pub struct Parts {
    pub db: crate::db::Db,
    pub config: Arc<crate::config::Config>,
    /// Woken when this process queues a job.
    pub signal: Arc<tokio::sync::Notify>,
    pub deployer: Arc<crate::deploy::Deployer>,
    pub notifier: Arc<crate::notifications::Notifier>,
}

/// How long an idle worker waits before looking for due jobs again, unless woken by
/// `Parts::signal` (new job in this process). Other instances' jobs and `run_after`
/// retries are found by this poll.
const IDLE_POLL: Duration = Duration::from_millis(500);

/// The kinds of job shard runs (the stored `kind` column is its text).
pub use crate::model::JobKind as Kind;

/// The running worker tasks.
pub struct Workers {
    handle: JoinHandle<()>,
}

impl Workers {
    /// Schedules the periodic jobs (once) and starts `jobs.concurrency` workers, run under the
    /// supervisor as `job-workers`: if a worker's loop ends unasked, the others finish their
    /// current job and stop, and the supervisor starts them all again.
    pub async fn start(
        state: Arc<Parts>,
        supervisor: &Arc<Supervisor>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Workers> {
        maintenance::ensure_scheduled(&state.db, Utc::now()).await?;
        let owner_prefix = format!("{}-{}", hostname(), std::process::id());
        let handle = supervisor.spawn("job-workers", move || {
            run_all(state.clone(), owner_prefix.clone(), shutdown.clone())
        });
        Ok(Workers { handle })
    }

    /// Waits for every worker to finish its current job and stop.
    pub async fn join(self) {
        if let Err(e) = self.handle.await {
            tracing::error!(error = %e, "the job workers' supervisor ended abnormally");
        }
    }
}

/// Runs the workers until shutdown; an error when one of them ended before it.
async fn run_all(
    state: Arc<Parts>,
    owner_prefix: String,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let stop = shutdown.child_token();
    let mut workers = tokio::task::JoinSet::new();
    for n in 0..state.config.jobs.concurrency {
        workers.spawn(
            Worker {
                owner: format!("{owner_prefix}-{n}"),
                state: state.clone(),
                shutdown: stop.clone(),
            }
            .run(),
        );
    }
    let mut failure = None;
    while let Some(ended) = workers.join_next().await {
        if !shutdown.is_cancelled() && failure.is_none() {
            failure = Some(match ended {
                Err(e) if e.is_panic() => "a job worker panicked".to_string(),
                _ => "a job worker stopped".to_string(),
            });
            // The rest finish their current job and stop; the supervisor starts them again.
            stop.cancel();
        }
    }
    match failure {
        Some(why) => Err(anyhow::anyhow!(why)),
        None => Ok(()),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "shard".into())
}

struct Worker {
    owner: String,
    state: Arc<Parts>,
    shutdown: CancellationToken,
}

impl Worker {
    async fn run(self) {
        let lease = Duration::from_secs(self.state.config.jobs.lease_secs);
        while !self.shutdown.is_cancelled() {
            let lease_until = Utc::now() + lease;
            match queue::claim(&self.state.db, &self.owner, lease_until).await {
                Ok(Some(job)) => self.execute(job, lease).await,
                Ok(None) => self.idle(IDLE_POLL).await,
                Err(e) => {
                    tracing::warn!(worker = %self.owner, error = %e, "cannot claim jobs; retrying");
                    self.idle(Duration::from_secs(2)).await;
                }
            }
        }
    }

    async fn idle(&self, duration: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(duration) => {}
            _ = self.state.signal.notified() => {}
            _ = self.shutdown.cancelled() => {}
        }
    }

    #[tracing::instrument(skip_all, fields(job = %job.id, kind = %job.kind, attempt = job.attempts))]
    async fn execute(&self, job: Job, lease: Duration) {
        let Some(kind) = Kind::parse(&job.kind) else {
            tracing::error!("unknown job kind; marking failed");
            let _ = queue::finish(
                &self.state.db,
                job.id,
                &self.owner,
                queue::JobState::Failed,
                Some(format!("unknown job kind {}", job.kind)),
                None,
            )
            .await;
            return;
        };
        let outcome = tokio::select! {
            result = self.dispatch(kind, &job) => Some(result),
            lost = self.renew_lease(&job, lease) => { let () = lost; None }
        };
        let db = &self.state.db;
        let result = match outcome {
            None => {
                tracing::warn!("lease lost; another worker owns the job now");
                return;
            }
            Some(Ok(())) => {
                queue::finish(
                    db,
                    job.id,
                    &self.owner,
                    queue::JobState::Succeeded,
                    None,
                    None,
                )
                .await
            }
            Some(Err(e)) if job.attempts < job.max_attempts => {
                let delay = backoff(job.attempts);
                tracing::warn!(error = %format!("{e:#}"), retry_in_secs = delay.as_secs(), "job failed; will retry");
                let retry_at = Utc::now() + delay;
                queue::finish(
                    db,
                    job.id,
                    &self.owner,
                    queue::JobState::Queued,
                    Some(format!("{e:#}")),
                    Some(retry_at),
                )
                .await
            }
            Some(Err(e)) => {
                tracing::error!(error = %format!("{e:#}"), "job failed for good");
                queue::finish(
                    db,
                    job.id,
                    &self.owner,
                    queue::JobState::Failed,
                    Some(format!("{e:#}")),
                    None,
                )
                .await
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot record job outcome");
        }
    }

    async fn dispatch(&self, kind: Kind, job: &Job) -> anyhow::Result<()> {
        match kind {
            Kind::Maintenance => maintenance::run(&self.state).await,
            Kind::Deploy => self.state.deployer.run_job(job).await,
            Kind::Notify => self.state.notifier.run_job(job).await,
        }
    }

    /// Renews the lease every third of its length; returns only if the lease was lost.
    async fn renew_lease(&self, job: &Job, lease: Duration) {
        loop {
            tokio::time::sleep(lease / 3).await;
            match queue::renew(&self.state.db, job.id, &self.owner, Utc::now() + lease).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => tracing::warn!(error = %e, "lease renewal failed; will retry"),
            }
        }
    }
}

/// 2^attempt seconds, at most five minutes.
fn backoff(attempt: i32) -> Duration {
    Duration::from_secs(2u64.saturating_pow(attempt.clamp(0, 16) as u32).min(300))
}
