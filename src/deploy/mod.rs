//! The deploy domain: the `Deployer` owns every action that changes what runs for a project —
//! deploy requests, rollback, cancel, the pipeline (`pipeline.rs`), the switch, runtime control
//! (start/stop/restart) and project deletion — plus the log writer, image pruning, env sealing,
//! deploy notifications and crash recovery. Routes call it; it is the one place that drives
//! Docker for apps.

pub mod build;
mod commit_status;
mod control;
pub mod env;
pub mod events;
mod fetch;
pub mod files;
mod health;
pub mod log;
mod notify;
mod pipeline;
pub mod prune;
pub mod recover;
pub mod registry;
pub mod runtime;
mod service;
pub mod site;
pub mod swarm;
pub mod tasks;
pub mod volumes;
pub mod watchdog;
mod workspace;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use crate::model::DeploymentStatus;
use crate::model::Trigger;
pub use env::GIT_TOKEN_VAR;
pub use log::LogWriter;

use crate::config::Config;
use crate::db::deployment_logs::Entry;
use crate::db::deployments::{self as deps, Deployment, Fields};
use crate::db::jobs::{Job, NewJob};
use crate::db::projects::Project;
use crate::db::{self, Db, deployment_logs};
use crate::docker::{Engine, EngineError};
use crate::hub::{Hub, Topic};
use crate::proxy::Proxy;
use crate::secrets::Sealer;
use DeploymentStatus as S;

/// A deploy job's payload.
#[derive(Debug, Serialize, Deserialize)]
pub struct Payload {
    pub deployment_id: Uuid,
}

/// Why a deploy action was refused; the HTTP edge maps each to its status.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    Conflict(String),
    /// Over a size limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// Docker could not be reached or refused.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sea_orm::DbErr> for DeployError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Internal(anyhow::Error::new(e).context("database error"))
    }
}

impl From<EngineError> for DeployError {
    fn from(e: EngineError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// A push to deploy, as a webhook delivery described it.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The pushed commit (`after`).
    pub commit_sha: String,
    pub message: Option<String>,
    pub pusher: Option<String>,
}

/// Runtime control of a project's serving container (a restart is `Deployer::restart`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Start,
    Stop,
}

/// Cancel tokens of the deploys running in this process.
#[derive(Default)]
struct Running {
    tokens: Mutex<HashMap<Uuid, CancellationToken>>,
}

impl Running {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, CancellationToken>> {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn register(&self, id: Uuid) -> CancellationToken {
        let token = CancellationToken::new();
        self.lock().insert(id, token.clone());
        token
    }

    fn remove(&self, id: Uuid) {
        self.lock().remove(&id);
    }

    fn cancel(&self, id: Uuid) -> bool {
        self.lock()
            .get(&id)
            .map(CancellationToken::cancel)
            .is_some()
    }

    fn ids(&self) -> Vec<Uuid> {
        self.lock().keys().copied().collect()
    }

    fn contains(&self, id: Uuid) -> bool {
        self.lock().contains_key(&id)
    }
}

/// The deploy domain's handle: the narrow set of shared services it needs.
pub struct Deployer {
    db: Db,
    hub: Arc<Hub>,
    docker: Arc<Engine>,
    /// What runs the apps: plain containers or Swarm services.
    runtime: Arc<dyn runtime::Runtime>,
    sealer: Arc<Sealer>,
    config: Arc<Config>,
    /// The port shard listens on (part of app URLs).
    port: u16,
    running: Running,
    /// Containers of superseded deployments still serving their grace period here.
    draining: Mutex<std::collections::HashSet<String>>,
    /// Live deployments the watchdog stopped for crash-looping (not started again by the
    /// recovery sweep until someone starts, restarts or redeploys).
    crash_looped: Mutex<std::collections::HashSet<Uuid>>,
    /// Wakes idle job workers when a deploy is enqueued.
    job_signal: Arc<tokio::sync::Notify>,
    /// Health checks of app containers (loopback only, no redirects followed).
    http: reqwest::Client,
    /// The route table, rebuilt after every change of what serves a project.
    proxy: Arc<Proxy>,
    /// Posts deployments' states to GitHub as commit statuses.
    commit_statuses: commit_status::CommitStatuses,
    metrics: Arc<crate::metrics::Metrics>,
    notifier: Arc<crate::notifications::Notifier>,
    /// The dashboard's external URL (links in notifications).
    base: String,
    /// Plans of branch tips being made (`plan_tip`), at most `build::PLANS_AT_ONCE`.
    planning: tokio::sync::Semaphore,
    /// One-click databases: a deleted project's attachments are undone first.
    databases: Arc<crate::storage::Databases>,
}

/// What `Deployer::new` takes.
pub struct Parts {
    pub db: Db,
    pub hub: Arc<Hub>,
    pub docker: Arc<Engine>,
    pub sealer: Arc<Sealer>,
    pub config: Arc<Config>,
    pub port: u16,
    pub job_signal: Arc<tokio::sync::Notify>,
    pub proxy: Arc<Proxy>,
    pub github: Arc<crate::github::Github>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub notifier: Arc<crate::notifications::Notifier>,
    pub databases: Arc<crate::storage::Databases>,
}

impl Deployer {
    /// The loop that posts commit statuses to GitHub, for app.rs to start (once).
    pub fn commit_status_poster(
        &self,
    ) -> Option<impl std::future::Future<Output = ()> + Send + use<>> {
        self.commit_statuses.take_poster()
    }

    pub fn new(parts: Parts) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| anyhow::anyhow!("building the health-check client: {e}"))?;
        let commit_statuses = commit_status::CommitStatuses::new(commit_status::Poster {
            db: parts.db.clone(),
            sealer: parts.sealer.clone(),
            github: parts.github,
            base: parts.config.public_base(parts.port),
        });
        Ok(Self {
            commit_statuses,
            databases: parts.databases,
            metrics: parts.metrics,
            notifier: parts.notifier,
            base: parts.config.public_base(parts.port),
            runtime: runtime::for_config(&parts.config, parts.docker.clone()),
            db: parts.db,
            hub: parts.hub,
            docker: parts.docker,
            sealer: parts.sealer,
            config: parts.config,
            port: parts.port,
            running: Running::default(),
            planning: tokio::sync::Semaphore::new(build::PLANS_AT_ONCE),
            draining: Mutex::default(),
            crash_looped: Mutex::default(),
            job_signal: parts.job_signal,
            http,
            proxy: parts.proxy,
        })
    }

    /// What runs the apps.
    pub fn runtime(&self) -> Arc<dyn runtime::Runtime> {
        self.runtime.clone()
    }

    fn draining(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.draining.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn crash_looped(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<Uuid>> {
        self.crash_looped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the watchdog stopped this deployment for crash-looping.
    pub fn is_crash_looped(&self, deployment: Uuid) -> bool {
        self.crash_looped().contains(&deployment)
    }

    /// Where a deployment's log and status changes go (the log writer's handle).
    pub fn sink(&self) -> log::Sink {
        log::Sink {
            db: self.db.clone(),
            hub: self.hub.clone(),
            commit_statuses: self.commit_statuses.clone(),
            metrics: self.metrics.clone(),
            notifier: self.notifier.clone(),
            base: self.base.clone(),
        }
    }

    /// `http://<slug>.<apps.domain>:<port>`, or `https://<slug>.<apps.domain>` behind HTTPS.
    pub fn app_url(&self, slug: &str) -> String {
        self.url_of(&format!("{slug}.{}", self.config.apps.domain))
    }

    /// `http://<short-id>-<slug>.<apps.domain>[:port]`: one deployment's own URL.
    pub fn preview_url(&self, deployment: Uuid, slug: &str) -> String {
        let host = crate::proxy::preview_host(deployment, slug, &self.config.apps.domain);
        self.url_of(&host)
    }

    fn url_of(&self, host: &str) -> String {
        if self.config.public_url().starts_with("https://") {
            format!("https://{host}")
        } else if self.port == 80 {
            format!("http://{host}")
        } else {
            format!("http://{host}:{}", self.port)
        }
    }

    /// Queues a deploy of the project's branch, or with `from` a rollback to that earlier
    /// deployment's image. Older queued requests of the project are cancelled in its favour.
    pub async fn request(
        &self,
        project: &Project,
        created_by: Option<Uuid>,
        from: Option<Uuid>,
    ) -> Result<Deployment, DeployError> {
        let trigger = if from.is_some() {
            Trigger::Rollback
        } else {
            Trigger::Manual
        };
        self.enqueue(project, created_by, from, trigger, None).await
    }

    /// Queues a deploy for a push to the project's branch (trigger `push`), naming the pushed
    /// commit, its message and the pusher on the deployment.
    pub async fn request_push(
        &self,
        project: &Project,
        pushed: Pushed,
    ) -> Result<Deployment, DeployError> {
        self.enqueue(project, None, None, Trigger::Push, Some(pushed))
            .await
    }

    /// Restarts the app the way every replacement happens: a new container from the live
    /// deployment's image, health-checked, switched in, the old one drained — never a
    /// `docker restart` of the serving container. Returns the queued deployment.
    pub async fn restart(
        &self,
        project: &Project,
        created_by: Option<Uuid>,
    ) -> Result<Deployment, DeployError> {
        let current = deps::live_for_project(&self.db, project.id)
            .await?
            .ok_or_else(|| {
                DeployError::Conflict("the project has no live deployment; deploy it first".into())
            })?;
        self.enqueue(
            project,
            created_by,
            Some(current.id),
            Trigger::Restart,
            None,
        )
        .await
    }

    /// Builds the commit of `live` (a live deployment whose container and image are not on
    /// this machine) again, as a new deployment; the branch tip when it names no commit.
    pub async fn rebuild(
        &self,
        project: &Project,
        live: &Deployment,
    ) -> Result<Deployment, DeployError> {
        let Some(commit_sha) = live.commit_sha.clone() else {
            return self.request(project, None, None).await;
        };
        let pushed = Pushed {
            commit_sha,
            message: live.commit_message.clone(),
            pusher: None,
        };
        self.enqueue(project, None, None, Trigger::Rebuild, Some(pushed))
            .await
    }

    async fn enqueue(
        &self,
        project: &Project,
        created_by: Option<Uuid>,
        from: Option<Uuid>,
        trigger: Trigger,
        pushed: Option<Pushed>,
    ) -> Result<Deployment, DeployError> {
        let rollback_from = match from {
            Some(from_id) => {
                let from = deps::find(&self.db, from_id)
                    .await?
                    .filter(|d| d.project_id == project.id)
                    .ok_or_else(|| DeployError::Invalid {
                        field: "from_deployment",
                        message: "is not a deployment of this project".into(),
                    })?;
                if from.image.is_none() {
                    return Err(DeployError::Conflict(
                        "that deployment's image is no longer kept; deploy again instead".into(),
                    ));
                }
                Some(from)
            }
            None => None,
        };
        // The commit is known up front for a rollback (the earlier deployment's) and a push.
        let (commit_sha, commit_message, pusher) = match (&rollback_from, pushed) {
            (Some(from), _) => (from.commit_sha.clone(), from.commit_message.clone(), None),
            (None, Some(p)) => (Some(p.commit_sha), p.message, p.pusher),
            (None, None) => (None, None, None),
        };
        let deployment = deps::create(
            &self.db,
            deps::NewDeployment {
                project_id: project.id,
                trigger,
                from_deployment_id: rollback_from.as_ref().map(|d| d.id),
                image: rollback_from.as_ref().and_then(|d| d.image.clone()),
                commit_sha,
                commit_message,
                created_by,
                pusher,
            },
        )
        .await?;
        self.record_status(project.id, deployment.id, S::Queued, None)
            .await;
        for older in deps::queued_for_project(&self.db, project.id, deployment.id).await? {
            if older.created_at <= deployment.created_at {
                let reason = format!("superseded by a newer deploy request ({})", deployment.id);
                self.cancel_queued(&older, &reason).await?;
            }
        }
        let payload = serde_json::to_string(&Payload {
            deployment_id: deployment.id,
        })
        .map_err(anyhow::Error::from)?;
        db::jobs::enqueue(
            &self.db,
            NewJob {
                kind: crate::model::JobKind::Deploy,
                payload,
                project_id: Some(project.id),
                max_attempts: 1,
                run_after: Utc::now(),
            },
        )
        .await?;
        self.job_signal.notify_waiters();
        Ok(deployment)
    }

    /// Cancels a queued deployment now, or signals a running one; returns it as it is after.
    pub async fn cancel(&self, deployment: &Deployment) -> Result<Deployment, DeployError> {
        let done = self
            .cancel_queued(deployment, "cancelled by request")
            .await?
            || self.running.cancel(deployment.id);
        let now = deps::find(&self.db, deployment.id)
            .await?
            .ok_or(DeployError::NotFound("deployment"))?;
        if !done {
            let status = now.state();
            if status == S::Queued || status.is_in_progress() {
                return Err(DeployError::Conflict(
                    "the deploy is running on another shard instance; cancel it there".into(),
                ));
            }
            return Err(DeployError::Conflict(format!(
                "the deployment already ended ({status})"
            )));
        }
        Ok(now)
    }

    /// Moves a still-queued deployment to `cancelled` with `reason`; false if it was not queued.
    async fn cancel_queued(&self, deployment: &Deployment, reason: &str) -> anyhow::Result<bool> {
        let fields = Fields {
            error: Some(reason.to_string()),
            ..Fields::default()
        };
        let cancelled =
            deps::transition(&self.db, deployment.id, &[S::Queued], S::Cancelled, fields).await?;
        if cancelled {
            self.record_status(
                deployment.project_id,
                deployment.id,
                S::Cancelled,
                Some(reason),
            )
            .await;
        }
        Ok(cancelled)
    }

    /// Records a status change made outside a running pipeline (and the reason, as a line)
    /// in the deployment's log, then announces it like the pipeline's own.
    async fn record_status(
        &self,
        project_id: Uuid,
        deployment_id: Uuid,
        status: S,
        reason: Option<&str>,
    ) {
        let mut records = vec![log::Record::status(status)];
        if let Some(reason) = reason {
            records.push(log::Record::line(
                crate::model::LogStream::System,
                format!("==> {reason}"),
            ));
        }
        let entries: Vec<Entry> = records.iter().map(log::Record::entry).collect();
        let first = match deployment_logs::append(&self.db, deployment_id, &entries).await {
            Ok(first) => Some(first),
            Err(e) => {
                tracing::error!(deployment = %deployment_id, error = %e, "cannot record status");
                None
            }
        };
        log::announce(
            &self.sink(),
            project_id,
            deployment_id,
            first,
            records,
            reason,
        )
        .await;
    }

    /// Deletes a project with its containers, images, network and topic history. Running
    /// deploys are cancelled first so they create nothing after the cleanup. When Docker
    /// cannot be reached the project is kept (so nothing runs without an owner), unless it was
    /// never deployed.
    pub async fn delete_project(&self, project: &Project) -> Result<(), DeployError> {
        // Its pull requests' previews first (child projects of their own).
        for child in db::previews::children(&self.db, project.id).await? {
            Box::pin(self.delete_project(&child)).await?;
        }
        for running in deps::with_status(&self.db, &S::IN_PROGRESS).await? {
            if running.project_id == project.id {
                self.running.cancel(running.id);
            }
        }
        // Its databases leave its network first (the network goes with its containers).
        if let Err(e) = self.databases.leave_project(project.id).await {
            return Err(DeployError::Unavailable(format!(
                "cannot detach the project's databases: {e}; retry when Docker is reachable"
            )));
        }
        let has_deployments = !deps::list_for_project(&self.db, project.id, 1)
            .await?
            .is_empty();
        match self.runtime.remove_project(project.id).await {
            Ok(_) => {}
            Err(e) if has_deployments => {
                tracing::warn!(project = %project.id, error = %e, "cannot remove the project's containers");
                return Err(DeployError::Unavailable(format!(
                    "cannot remove the project's containers: {e}; retry when Docker is reachable"
                )));
            }
            Err(e) => tracing::debug!(error = %e, "docker unreachable; project was never deployed"),
        }
        prune::purge_registry(self, project.id).await;
        let deployments = deps::ids_for_project(&self.db, project.id).await?;
        // Its data stays: the volumes are detached, not removed.
        db::volumes::detach_all(&self.db, project.id).await?;
        db::projects::delete(&self.db, project.id).await?;
        self.proxy.refresh_or_log().await;
        for id in deployments {
            site::remove_site(&self.config.data_dir, id).await;
        }
        let topic = Topic::Project(project.id).to_string();
        db::topic_events::delete_topic(&self.db, &topic).await?;
        Ok(())
    }

    /// The route table, for callers that change what a host means (renames, domains).
    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    /// The deploy job handler.
    pub async fn run_job(self: &Arc<Self>, job: &Job) -> anyhow::Result<()> {
        let payload: Payload = serde_json::from_str(&job.payload)
            .map_err(|e| anyhow::anyhow!("deploy job payload: {e}"))?;
        pipeline::run(self, payload.deployment_id).await
    }
}
