//! Scheduled jobs: declared per project (`{name, schedule, command, timeout_secs,
//! concurrency}`), fired by the leader. Every `jobs.schedule_tick_ms` the leader reads the due
//! jobs; each firing is claimed by moving `next_run_at` to the next one with a conditional
//! update (so it happens once, whoever else looks), then run unless:
//! - the firing is older than `jobs.catch_up_secs` (shard was down longer): skipped, and the
//!   job waits for its next firing;
//! - the job is `forbid` and its last run still runs: skipped (a "Run now" is refused);
//! - nothing is live, or `jobs.max_running` runs are running: skipped, logged.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::Tasks;
use super::run::Request;
use crate::cluster::leader::Leadership;
use crate::db::{self, projects::Project, runs::JobSpec, runs::Run, runs::ScheduledJob};
use crate::deploy::DeployError;
use crate::model::{Concurrency, RunTrigger};

/// How often stale runs and leftover task containers are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// Due jobs read per tick.
const DUE_PER_TICK: u64 = 100;

/// A job as asked for.
pub struct NewJob {
    pub name: String,
    pub schedule: String,
    pub command: Vec<String>,
    pub timeout_secs: Option<u64>,
    pub concurrency: Option<Concurrency>,
}

/// The next time `schedule` fires after `after`; why it is not a cron expression.
pub fn next_firing(schedule: &str, after: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let cron = croner::Cron::from_str(schedule.trim()).map_err(|e| e.to_string())?;
    cron.find_next_occurrence(&after, false)
        .map_err(|e| e.to_string())
}

impl Tasks {
    /// Creates `new` in `project`, or replaces the job of that name; the job and whether it
    /// is new.
    pub async fn put_job(
        &self,
        project: &Project,
        new: NewJob,
    ) -> Result<(ScheduledJob, bool), DeployError> {
        let invalid = |field, message: String| DeployError::Invalid { field, message };
        let next = next_firing(&new.schedule, Utc::now()).map_err(|e| {
            invalid(
                "schedule",
                format!(
                    "is not a cron expression ({e}); e.g. '*/15 * * * *' is every 15 minutes (UTC)"
                ),
            )
        })?;
        super::check_command(&new.command)?;
        let timeout = new
            .timeout_secs
            .unwrap_or(super::DEFAULT_TIMEOUT_SECS.min(self.config.jobs.max_timeout_secs));
        super::check_timeout(&self.config, timeout)?;
        if db::runs::find_job(&self.db, project.id, &new.name)
            .await?
            .is_none()
            && db::runs::count_jobs(&self.db, project.id).await? >= self.config.jobs.max_per_project
        {
            return Err(DeployError::Conflict(format!(
                "the project has {} jobs (jobs.max_per_project); delete one first",
                self.config.jobs.max_per_project
            )));
        }
        let spec = JobSpec {
            name: new.name,
            schedule: new.schedule.trim().to_string(),
            command: new.command,
            timeout_secs: timeout as i32,
            concurrency: new.concurrency.unwrap_or(Concurrency::Forbid),
            next_run_at: next,
        };
        Ok(db::runs::put_job(&self.db, project.id, spec).await?)
    }

    /// Starts a run of `job` now ("Run now" or a firing).
    pub async fn run_job(
        self: &Arc<Self>,
        project: &Project,
        job: &ScheduledJob,
        trigger: RunTrigger,
        by: Option<uuid::Uuid>,
    ) -> Result<Run, DeployError> {
        if job.concurrency == Concurrency::Forbid
            && db::runs::running_of_job(&self.db, job.id).await? > 0
        {
            return Err(DeployError::Conflict(format!(
                "job {} is still running and its concurrency is 'forbid'",
                job.name
            )));
        }
        self.start(Request {
            project,
            command: db::runs::command_of(&job.command),
            timeout: Duration::from_secs(job.timeout_secs.max(1) as u64),
            trigger,
            job: Some(job),
            by,
        })
        .await
    }

    /// The scheduler: fires due jobs while this instance leads, and sweeps stale runs.
    pub async fn run_schedules(self: Arc<Self>, leadership: Leadership, stop: CancellationToken) {
        let tick = Duration::from_millis(self.config.jobs.schedule_tick_ms);
        let mut last_sweep: Option<tokio::time::Instant> = None;
        loop {
            if last_sweep.is_none_or(|t| t.elapsed() >= SWEEP_EVERY) {
                last_sweep = Some(tokio::time::Instant::now());
                match self.sweep().await {
                    Ok((0, 0)) => {}
                    Ok((failed, removed)) => tracing::info!(failed, removed, "swept runs"),
                    Err(e) => tracing::warn!(error = %e, "cannot sweep runs"),
                }
            }
            if leadership.is_leader()
                && let Err(e) = self.fire_due().await
            {
                tracing::warn!(error = %e, "cannot fire scheduled jobs");
            }
            tokio::select! {
                () = tokio::time::sleep(tick) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    async fn fire_due(self: &Arc<Self>) -> anyhow::Result<()> {
        let now = Utc::now();
        let catch_up = chrono::Duration::seconds(self.config.jobs.catch_up_secs as i64);
        for job in db::runs::due_jobs(&self.db, now, DUE_PER_TICK).await? {
            let next = match next_firing(&job.schedule, now) {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!(job = %job.id, error = %e, "a job's schedule no longer parses");
                    now + chrono::Duration::days(1)
                }
            };
            let late = now - job.next_run_at;
            let run = late <= catch_up;
            if !db::runs::claim_job(&self.db, job.id, job.next_run_at, next, run).await? {
                continue;
            }
            if !run {
                tracing::info!(job = %job.name, late_secs = late.num_seconds(), "skipped a firing missed while shard was down (jobs.catch_up_secs)");
                continue;
            }
            let Some(project) = db::projects::find(&self.db, job.project_id).await? else {
                continue;
            };
            match self
                .run_job(&project, &job, RunTrigger::Schedule, None)
                .await
            {
                Ok(run) => tracing::info!(job = %job.name, run = %run.id, "fired a scheduled job"),
                Err(e) => {
                    tracing::info!(job = %job.name, reason = %e, "skipped a scheduled job's firing")
                }
            }
        }
        Ok(())
    }
}
