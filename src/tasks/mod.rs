//! Tasks: commands run beside an app, each in a fresh container from the live deployment's
//! image with the app's environment, network, volumes, file mounts and limits
//! (`deploy::tasks::TaskContext`).
//!
//! - **One-off runs** (`POST /projects/{id}/runs`, `shard run`): the command's output is the
//!   persisted topic `run:<id>` (lines as `log` events, masked like a build log, at most
//!   `deploy.max_log_lines`), ended by one `status` event `{status, exit_code}`.
//! - **Scheduled jobs** (`schedule.rs`): a cron expression per job; the leader fires due jobs,
//!   each firing claimed by a conditional update so it runs once. A job's run is a run like
//!   any other, with a timeout and a concurrency rule (`forbid` skips a firing while the last
//!   run still runs). A failed job run raises `job.failed`.
//! - **Terminals** (`exec.rs`): a TTY in the running container or a fresh one, for the
//!   WebSocket `GET /projects/{id}/exec`.
//! - **Bounds**: at most `jobs.max_running` runs at once per instance, a timeout on each (the
//!   container is killed past it), the newest `jobs.keep_runs` runs kept per job (and one-off
//!   runs per project) with their output. A run whose runner died (its heartbeat went
//!   silent) is failed and its container removed by the sweep.

pub mod exec;
pub mod run;
pub mod schedule;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::Config;
use crate::db::{self, Db};
use crate::deploy::{DeployError, Deployer};
use crate::docker::Engine;
use crate::hub::Hub;
use crate::notifications::Notifier;

pub use run::STATUS_EVENT;

/// Words of a command, and bytes of each word, at most.
const MAX_WORDS: usize = 256;
const MAX_WORD_BYTES: usize = 8192;
/// A one-off command's timeout when it names none.
pub const DEFAULT_TIMEOUT_SECS: u64 = 3600;

/// Runs tasks; shared by the HTTP layer and the scheduler.
pub struct Tasks {
    db: Db,
    hub: Arc<Hub>,
    docker: Arc<Engine>,
    deployer: Arc<Deployer>,
    notifier: Arc<Notifier>,
    config: Arc<Config>,
    /// The dashboard's external URL (links in notifications).
    base: String,
    /// Runs executing in this process, each with what cancels it.
    running: Mutex<HashMap<Uuid, CancellationToken>>,
    /// Open terminals per user, here.
    terminals: Mutex<HashMap<Uuid, usize>>,
    /// Ends every run's task at shutdown (their containers are killed and the runs failed).
    shutdown: CancellationToken,
}

/// What `Tasks::new` takes.
pub struct Parts {
    pub db: Db,
    pub hub: Arc<Hub>,
    pub docker: Arc<Engine>,
    pub deployer: Arc<Deployer>,
    pub notifier: Arc<Notifier>,
    pub config: Arc<Config>,
    pub base: String,
    pub shutdown: CancellationToken,
}

impl Tasks {
    pub fn new(parts: Parts) -> Arc<Self> {
        Arc::new(Self {
            db: parts.db,
            hub: parts.hub,
            docker: parts.docker,
            deployer: parts.deployer,
            notifier: parts.notifier,
            config: parts.config,
            base: parts.base,
            running: Mutex::new(HashMap::new()),
            terminals: Mutex::new(HashMap::new()),
            shutdown: parts.shutdown,
        })
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, CancellationToken>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs executing in this process.
    pub fn running_here(&self) -> Vec<Uuid> {
        self.running().keys().copied().collect()
    }

    /// Stops a run executing here (its container is killed; it ends `failed`); whether it ran
    /// here.
    pub fn cancel(&self, run: Uuid) -> bool {
        match self.running().get(&run) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }
}

/// Checks a command: 1 to `MAX_WORDS` words, none empty-only, no NUL, each bounded.
pub fn check_command(command: &[String]) -> Result<(), DeployError> {
    let invalid = |message: String| DeployError::Invalid {
        field: "command",
        message,
    };
    if command.is_empty() {
        return Err(invalid(
            "must name a program, e.g. [\"sh\", \"-c\", \"echo hi\"]".into(),
        ));
    }
    if command.len() > MAX_WORDS {
        return Err(invalid(format!("at most {MAX_WORDS} words")));
    }
    if command[0].trim().is_empty() {
        return Err(invalid("the program name is empty".into()));
    }
    for word in command {
        if word.len() > MAX_WORD_BYTES {
            return Err(invalid(format!(
                "a word is longer than {MAX_WORD_BYTES} bytes"
            )));
        }
        if word.contains('\0') {
            return Err(invalid("a word contains a NUL byte".into()));
        }
    }
    Ok(())
}

/// Checks a timeout against `jobs.max_timeout_secs`.
pub fn check_timeout(config: &Config, secs: u64) -> Result<(), DeployError> {
    if secs == 0 || secs > config.jobs.max_timeout_secs {
        return Err(DeployError::Invalid {
            field: "timeout_secs",
            message: format!("must be 1 to {}", config.jobs.max_timeout_secs),
        });
    }
    Ok(())
}

impl Tasks {
    /// Fails the runs whose runner went silent and removes task containers of runs that no
    /// longer run; called by the scheduler loop. What it did, for the log.
    pub async fn sweep(&self) -> anyhow::Result<(usize, usize)> {
        let before = db::now() - chrono::Duration::from_std(run::HEARTBEAT * 4)?;
        let mine = self.running_here();
        let mut failed = 0;
        for run in db::runs::stale(&self.db, before).await? {
            if mine.contains(&run.id) {
                continue;
            }
            if self
                .end(&run, None, Some("interrupted: shard stopped while it ran"))
                .await
            {
                failed += 1;
            }
        }
        let mut removed = 0;
        for (container, run) in self.docker.task_containers().await? {
            if mine.contains(&run) {
                continue;
            }
            let running = db::runs::find_run(&self.db, run)
                .await?
                .is_some_and(|r| r.status == crate::model::RunState::Running);
            if !running && self.docker.remove_container(&container).await.is_ok() {
                removed += 1;
            }
        }
        Ok((failed, removed))
    }
}
