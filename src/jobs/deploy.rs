//! The deploy pipeline: queued → fetching → building → starting → health_checking → live.
//! A failure or cancel at any step removes what this deploy created and leaves the running
//! version untouched; a deploy found half-done after a crash ends `failed` ("interrupted").

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::app::AppState;
use crate::db::deployment_logs::{self, Entry};
use crate::db::deployments::{self as deps, Deployment, Fields};
use crate::db::jobs::{Job, NewJob};
use crate::db::projects::Project;
use crate::docker::{BuildError, BuildSpec, RunSpec, context};
use crate::hub::{Event, record};
use crate::{db, git};

pub const KIND: &str = "deploy";
/// Env var holding a token for private repositories; used for the fetch, never injected.
pub const GIT_TOKEN_VAR: &str = "SHARD_GIT_TOKEN";
const TAIL_LINES: usize = 15;

#[derive(Debug, Serialize, Deserialize)]
pub struct Payload {
    pub deployment_id: Uuid,
}

/// Cancel tokens of the deploys running in this process.
#[derive(Default)]
pub struct Running {
    tokens: Mutex<HashMap<Uuid, CancellationToken>>,
}

impl Running {
    fn register(&self, id: Uuid) -> CancellationToken {
        let token = CancellationToken::new();
        lock(&self.tokens).insert(id, token.clone());
        token
    }

    fn remove(&self, id: Uuid) {
        lock(&self.tokens).remove(&id);
    }

    /// Signals a running deploy to stop; false when none runs here.
    pub fn cancel(&self, id: Uuid) -> bool {
        lock(&self.tokens)
            .get(&id)
            .map(CancellationToken::cancel)
            .is_some()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Records a deploy request: a queued deployment, its job, and older queued requests of the
/// same project cancelled in its favour.
pub async fn request(
    state: &AppState,
    project: &Project,
    created_by: Option<Uuid>,
    rollback_from: Option<&Deployment>,
) -> anyhow::Result<Deployment> {
    let deployment = deps::create(
        &state.db,
        deps::NewDeployment {
            project_id: project.id,
            trigger: if rollback_from.is_some() {
                "rollback"
            } else {
                "manual"
            },
            from_deployment_id: rollback_from.map(|d| d.id),
            image: rollback_from.and_then(|d| d.image.clone()),
            commit_sha: rollback_from.and_then(|d| d.commit_sha.clone()),
            created_by,
        },
    )
    .await?;
    record_status(state, project.id, deployment.id, deps::QUEUED, None).await;
    for older in deps::queued_for_project(&state.db, project.id, deployment.id).await? {
        if older.created_at <= deployment.created_at {
            let reason = format!("superseded by a newer deploy request ({})", deployment.id);
            cancel_queued(state, &older, &reason).await?;
        }
    }
    let payload = serde_json::to_string(&Payload {
        deployment_id: deployment.id,
    })?;
    db::jobs::enqueue(
        &state.db,
        NewJob {
            kind: KIND,
            payload,
            project_id: Some(project.id),
            max_attempts: 1,
            run_after: Utc::now(),
        },
    )
    .await?;
    state.job_signal.notify_waiters();
    Ok(deployment)
}

/// Cancels a queued deployment now, or signals a running one. False when it is already final.
pub async fn cancel(state: &AppState, deployment: &Deployment) -> anyhow::Result<bool> {
    Ok(
        cancel_queued(state, deployment, "cancelled by request").await?
            || state.deploys.cancel(deployment.id),
    )
}

/// Moves a still-queued deployment to `cancelled` with `reason`; false if it was not queued.
async fn cancel_queued(
    state: &AppState,
    deployment: &Deployment,
    reason: &str,
) -> anyhow::Result<bool> {
    let fields = Fields {
        error: Some(reason.to_string()),
        ..Fields::default()
    };
    let cancelled = deps::transition(
        &state.db,
        deployment.id,
        &[deps::QUEUED],
        deps::CANCELLED,
        fields,
    )
    .await?;
    if cancelled {
        record_status(
            state,
            deployment.project_id,
            deployment.id,
            deps::CANCELLED,
            Some(reason),
        )
        .await;
    }
    Ok(cancelled)
}

/// Persists and publishes a status change made outside a running pipeline.
async fn record_status(
    state: &AppState,
    project_id: Uuid,
    deployment_id: Uuid,
    status: &str,
    reason: Option<&str>,
) {
    let mut entries = vec![Entry {
        ts: crate::hub::timestamp(),
        stream: "status",
        line: status.to_string(),
    }];
    if let Some(reason) = reason {
        entries.push(Entry {
            ts: crate::hub::timestamp(),
            stream: "system",
            line: format!("==> {reason}"),
        });
    }
    record::deployment_status(state, project_id, deployment_id, status, reason).await;
    let first = match deployment_logs::append(&state.db, deployment_id, &entries).await {
        Ok(first) => first,
        Err(e) => {
            tracing::error!(deployment = %deployment_id, error = %e, "cannot record status");
            return;
        }
    };
    {
        state.hub.publish(Event::Status {
            project_id,
            deployment_id,
            seq: first,
            ts: entries[0].ts,
            status: status.to_string(),
        });
        for (i, e) in entries.into_iter().enumerate().skip(1) {
            state.hub.publish(Event::Log {
                deployment_id,
                seq: first + i as i64,
                ts: e.ts,
                stream: e.stream,
                line: e.line,
            });
        }
    }
}

/// The job handler.
#[tracing::instrument(skip_all, fields(deployment))]
pub async fn run(state: &Arc<AppState>, job: &Job) -> anyhow::Result<()> {
    let payload: Payload = serde_json::from_str(&job.payload).context("deploy job payload")?;
    tracing::Span::current().record("deployment", tracing::field::display(payload.deployment_id));
    let Some(deployment) = deps::find(&state.db, payload.deployment_id).await? else {
        return Ok(()); // project deleted with its deployments
    };
    if deployment.status != deps::QUEUED {
        if deps::IN_PROGRESS.contains(&deployment.status.as_str()) {
            interrupted(state, &deployment).await?;
        }
        return Ok(());
    }
    let Some(project) = db::projects::find(&state.db, deployment.project_id).await? else {
        return Ok(());
    };
    let cancel = state.deploys.register(deployment.id);
    let log = LogWriter::start(state.clone(), &deployment).await?;
    let mut pipeline = Pipeline {
        state: state.clone(),
        project,
        deployment,
        cancel,
        log,
        container: None,
    };
    let outcome = pipeline.execute().await;
    pipeline.conclude(outcome).await;
    state.deploys.remove(pipeline.deployment.id);
    pipeline.log.finish().await;
    Ok(())
}

/// A deploy that was in progress when its process died: fail it and remove its container.
async fn interrupted(state: &AppState, deployment: &Deployment) -> anyhow::Result<()> {
    tracing::warn!(deployment = %deployment.id, status = %deployment.status, "deploy was interrupted by a restart");
    if let Some(container) = &deployment.container_id {
        state.docker.remove_container(container).await?;
    }
    let reason = "interrupted by restart";
    let fields = Fields {
        error: Some(reason.into()),
        error_step: Some(deployment.status.clone()),
        ..Fields::default()
    };
    if deps::transition(
        &state.db,
        deployment.id,
        deps::IN_PROGRESS,
        deps::FAILED,
        fields,
    )
    .await?
    {
        record_status(
            state,
            deployment.project_id,
            deployment.id,
            deps::FAILED,
            Some(reason),
        )
        .await;
    }
    Ok(())
}

/// Why a pipeline stopped early.
enum Stop {
    Cancelled,
    Failed {
        step: &'static str,
        message: String,
    },
    /// Someone else moved the deployment (it was cancelled while queued, or the project went).
    Preempted,
}

impl From<anyhow::Error> for Stop {
    fn from(e: anyhow::Error) -> Self {
        Stop::Failed {
            step: "internal",
            message: format!("{e:#}"),
        }
    }
}

struct Pipeline {
    state: Arc<AppState>,
    project: Project,
    deployment: Deployment,
    cancel: CancellationToken,
    log: LogWriter,
    /// The container this deploy created, removed if it does not go live.
    container: Option<String>,
}

impl Pipeline {
    async fn execute(&mut self) -> Result<(), Stop> {
        let id = self.deployment.id;
        let image = match self.deployment.image.clone() {
            Some(image) => {
                self.advance(
                    &[deps::QUEUED],
                    deps::STARTING,
                    Fields {
                        started: true,
                        ..Fields::default()
                    },
                )
                .await?;
                self.log
                    .system(format!("==> Rolling back to image {image}"));
                image
            }
            None => {
                self.advance(
                    &[deps::QUEUED],
                    deps::FETCHING,
                    Fields {
                        started: true,
                        ..Fields::default()
                    },
                )
                .await?;
                let build_dir = self
                    .state
                    .config
                    .data_dir
                    .join("builds")
                    .join(id.to_string());
                let result = self.fetch_and_build(&build_dir).await;
                let _ = tokio::fs::remove_dir_all(&build_dir).await;
                let image = result?;
                self.advance(
                    &[deps::BUILDING],
                    deps::STARTING,
                    Fields {
                        image: Some(image.clone()),
                        ..Fields::default()
                    },
                )
                .await?;
                image
            }
        };
        self.start_container(&image).await?;
        self.health_check().await?;
        self.go_live().await
    }

    async fn advance(&mut self, from: &[&str], to: &str, fields: Fields) -> Result<(), Stop> {
        if self.cancel.is_cancelled() {
            return Err(Stop::Cancelled);
        }
        if !deps::transition(&self.state.db, self.deployment.id, from, to, fields)
            .await
            .map_err(anyhow::Error::from)?
        {
            return Err(Stop::Preempted);
        }
        self.deployment.status = to.to_string();
        self.log.status(to);
        Ok(())
    }

    async fn fetch_and_build(&mut self, build_dir: &std::path::Path) -> Result<String, Stop> {
        let p = self.project.clone();
        self.log
            .system(format!("==> Fetching {} ({})", p.git_url, p.branch));
        let env = db::env_vars::list(&self.state.db, p.id)
            .await
            .map_err(anyhow::Error::from)?;
        let opened = self.open_env(&env)?;
        let token = opened
            .iter()
            .find(|(k, _, _)| k == GIT_TOKEN_VAR)
            .map(|(_, v, _)| v.clone());
        let _ = tokio::fs::remove_dir_all(build_dir).await;
        tokio::fs::create_dir_all(build_dir.parent().expect("builds dir"))
            .await
            .map_err(anyhow::Error::from)?;
        let interrupt = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (cancel, interrupt) = (self.cancel.clone(), interrupt.clone());
            tokio::spawn(async move {
                cancel.cancelled().await;
                interrupt.store(true, Ordering::Relaxed);
            })
        };
        let (url, branch, dir) = (p.git_url.clone(), p.branch.clone(), build_dir.to_path_buf());
        let fetched = tokio::task::spawn_blocking(move || {
            git::fetch_branch(&url, &branch, &dir, token.as_deref(), &interrupt)
        })
        .await;
        watcher.abort();
        let checkout = match fetched.map_err(|e| anyhow::anyhow!("fetch task: {e}"))? {
            Ok(checkout) => checkout,
            Err(git::GitError::Cancelled) => return Err(Stop::Cancelled),
            Err(e) => {
                return Err(Stop::Failed {
                    step: "fetch",
                    message: e.to_string(),
                });
            }
        };
        if !checkout.shallow {
            tracing::warn!("the fetch was not shallow (server without protocol v2?)");
        }
        let short = &checkout.commit_sha[..checkout.commit_sha.len().min(12)];
        self.log
            .system(format!("==> Fetched {short} {}", checkout.summary));
        let fields = Fields {
            commit_sha: Some(checkout.commit_sha.clone()),
            commit_message: Some(checkout.summary.clone()),
            ..Fields::default()
        };
        self.advance(&[deps::FETCHING], deps::BUILDING, fields)
            .await?;

        let tag = format!("shard/{}:{}", p.slug, self.deployment.id);
        self.log.system(format!("==> Building {tag}"));
        let root = build_dir.to_path_buf();
        let dockerfile = p.dockerfile.clone();
        if !root.join(&dockerfile).is_file() {
            return Err(Stop::Failed {
                step: "build",
                message: format!("no Dockerfile at '{dockerfile}' in the repository"),
            });
        }
        let tar = tokio::task::spawn_blocking(move || context::tar_context(&root, &dockerfile))
            .await
            .map_err(|e| anyhow::anyhow!("context task: {e}"))?
            .map_err(|e| Stop::Failed {
                step: "build",
                message: format!("{e:#}"),
            })?;
        let build_args = opened
            .iter()
            .filter(|(k, _, build)| *build && k != GIT_TOKEN_VAR)
            .map(|(k, v, _)| (k.clone(), v.clone()))
            .collect();
        let spec = BuildSpec {
            tag: tag.clone(),
            dockerfile: p.dockerfile.clone(),
            context: tar,
            build_args,
            labels: self.labels(),
        };
        let log = &self.log;
        match self
            .state
            .docker
            .build_image(spec, &self.cancel, |line| log.stdout(line))
            .await
        {
            Ok(()) => Ok(tag),
            Err(BuildError::Cancelled) => {
                let _ = self.state.docker.remove_image(&tag).await;
                Err(Stop::Cancelled)
            }
            Err(BuildError::Failed { message, step }) => {
                let mut text = match step {
                    Some(step) => format!("{step}: {message}"),
                    None => message,
                };
                text.push_str("\n--- last lines ---\n");
                text.push_str(&self.log.tail().join("\n"));
                Err(Stop::Failed {
                    step: "build",
                    message: text,
                })
            }
            Err(BuildError::Engine(e)) => Err(Stop::Failed {
                step: "build",
                message: e.to_string(),
            }),
        }
    }

    /// Decrypts the project's env vars: (key, value, build).
    fn open_env(&self, vars: &[db::env_vars::EnvVar]) -> Result<Vec<(String, String, bool)>, Stop> {
        vars.iter()
            .map(|v| {
                let clear = self
                    .state
                    .sealer
                    .open(&v.value_sealed, v.id.as_bytes())
                    .map_err(|e| anyhow::anyhow!("env var {}: {e}", v.key))?;
                let value = String::from_utf8(clear)
                    .map_err(|_| anyhow::anyhow!("env var {} is not UTF-8", v.key))?;
                if v.secret && value.len() >= 4 {
                    self.log.mask(value.clone());
                }
                Ok((v.key.clone(), value, v.build))
            })
            .collect()
    }

    fn labels(&self) -> HashMap<String, String> {
        self.state
            .docker
            .labels(self.project.id, self.deployment.id)
    }

    async fn start_container(&mut self, image: &str) -> Result<(), Stop> {
        self.log.system("==> Starting".to_string());
        let engine = &self.state.docker;
        let port = match self.project.port {
            Some(port) => port as u16,
            None => engine
                .exposed_port(image)
                .await
                .map_err(|e| Stop::Failed {
                    step: "start",
                    message: e.to_string(),
                })?
                .unwrap_or(8080),
        };
        let vars = db::env_vars::list(&self.state.db, self.project.id)
            .await
            .map_err(anyhow::Error::from)?;
        // Decrypted at the last moment, and only into the container's environment.
        let mut env: Vec<String> = self
            .open_env(&vars)?
            .into_iter()
            .filter(|(k, _, _)| k != GIT_TOKEN_VAR)
            .map(|(k, v, _)| format!("{k}={v}"))
            .collect();
        env.push(format!("PORT={port}"));
        let spec = RunSpec {
            name: format!(
                "shard-{}-{}",
                self.project.slug,
                self.deployment.id.simple()
            ),
            image: image.to_string(),
            env,
            labels: self.labels(),
            port,
            memory_mb: self.project.memory_limit_mb,
            cpu_millis: self.project.cpu_limit_millis,
        };
        let started = engine.run_container(spec).await.map_err(|e| Stop::Failed {
            step: "start",
            message: e.to_string(),
        })?;
        self.container = Some(started.id.clone());
        if started.host_port == 0 {
            return Err(Stop::Failed {
                step: "start",
                message: self
                    .exited_message("the container stopped right after start")
                    .await,
            });
        }
        let upstream = format!("127.0.0.1:{}", started.host_port);
        self.log.system(format!(
            "==> Container {} listening on port {port}, published at {upstream}",
            &started.id[..12]
        ));
        let fields = Fields {
            container_id: Some(started.id),
            upstream: Some(upstream.clone()),
            ..Fields::default()
        };
        self.advance(&[deps::STARTING], deps::HEALTH_CHECKING, fields)
            .await?;
        self.deployment.upstream = Some(upstream);
        Ok(())
    }

    async fn exited_message(&self, what: &str) -> String {
        let lines = match &self.container {
            Some(id) => self
                .state
                .docker
                .tail_logs(id, TAIL_LINES)
                .await
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let mut text = what.to_string();
        if !lines.is_empty() {
            text.push_str("\n--- container output ---\n");
            text.push_str(&self.log.masked(&lines.join("\n")));
        }
        text
    }

    async fn health_check(&mut self) -> Result<(), Stop> {
        let upstream = self.deployment.upstream.clone().unwrap_or_default();
        let url = format!("http://{upstream}{}", self.project.health_path);
        let timeout = Duration::from_secs(self.project.health_timeout_secs.max(1) as u64);
        self.log.system(format!(
            "==> Health check GET {} (up to {} s)",
            self.project.health_path,
            timeout.as_secs()
        ));
        let deadline = Instant::now() + timeout;
        let container = self.container.clone().unwrap_or_default();
        let mut last_problem;
        loop {
            if self.cancel.is_cancelled() {
                return Err(Stop::Cancelled);
            }
            match self
                .state
                .http
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
            {
                Ok(response)
                    if response.status().is_success() || response.status().is_redirection() =>
                {
                    return Ok(());
                }
                Ok(response) => last_problem = format!("answered {}", response.status()),
                Err(e) => {
                    last_problem = format!(
                        "no answer ({})",
                        if e.is_timeout() {
                            "timeout".to_string()
                        } else {
                            "connection refused or reset".to_string()
                        }
                    )
                }
            }
            match self.state.docker.container_status(&container).await {
                Ok(Some(status)) if !status.running => {
                    let what = format!(
                        "the container exited (code {}) before it became healthy",
                        status.exit_code.unwrap_or(-1)
                    );
                    return Err(Stop::Failed {
                        step: "health_check",
                        message: self.exited_message(&what).await,
                    });
                }
                Ok(None) => {
                    return Err(Stop::Failed {
                        step: "health_check",
                        message: "the container disappeared".into(),
                    });
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                let what = format!(
                    "GET {} did not succeed within {} s: last {last_problem}",
                    self.project.health_path,
                    timeout.as_secs()
                );
                return Err(Stop::Failed {
                    step: "health_check",
                    message: self.exited_message(&what).await,
                });
            }
            tokio::select! {
                _ = tokio::time::sleep(poll_interval(deadline - timeout)) => {}
                _ = self.cancel.cancelled() => return Err(Stop::Cancelled),
            }
        }
    }

    async fn go_live(&mut self) -> Result<(), Stop> {
        let previous = deps::live_for_project(&self.state.db, self.project.id)
            .await
            .map_err(anyhow::Error::from)?;
        if self.cancel.is_cancelled() {
            return Err(Stop::Cancelled);
        }
        let id = self.deployment.id;
        let live = deps::transition(
            &self.state.db,
            id,
            &[deps::HEALTH_CHECKING],
            deps::LIVE,
            Fields::default(),
        );
        if !live.await.map_err(anyhow::Error::from)? {
            return Err(Stop::Preempted);
        }
        self.container = None; // it is the live one now
        // The header first, then the status: `live` is the last message of a deploy's topic.
        let url = crate::http::routes::projects::app_url(&self.state, &self.project.slug);
        self.log.system(format!("==> Live at {url}"));
        self.log.status(deps::LIVE);
        let mut old_container = None;
        if let Some(old) = previous.filter(|d| d.id != self.deployment.id) {
            if deps::transition(
                &self.state.db,
                old.id,
                &[deps::LIVE, deps::STOPPED],
                deps::SUPERSEDED,
                Fields::default(),
            )
            .await
            .unwrap_or(false)
            {
                record_status(&self.state, self.project.id, old.id, deps::SUPERSEDED, None).await;
            }
            old_container = old.container_id;
        }
        // Drain: the previous container keeps serving for the grace period, then goes; only
        // then can its image be pruned (Docker refuses to remove an image a container uses).
        let (state, project_id) = (self.state.clone(), self.project.id);
        tokio::spawn(async move {
            if let Some(container) = old_container {
                tokio::time::sleep(Duration::from_secs(state.config.deploy.grace_secs)).await;
                let _ = state.docker.stop_container(&container, 5).await;
                if let Err(e) = state.docker.remove_container(&container).await {
                    tracing::warn!(error = %e, "cannot remove the superseded container; reconcile will");
                }
            }
            prune_images(&state, project_id, state.config.deploy.keep_images).await;
        });
        Ok(())
    }

    /// Records how the pipeline ended and removes what a failed or cancelled deploy created.
    async fn conclude(&mut self, outcome: Result<(), Stop>) {
        let Err(stop) = outcome else { return };
        if let Some(container) = self.container.take()
            && let Err(e) = self.state.docker.remove_container(&container).await
        {
            tracing::warn!(error = %e, "cannot remove the failed deploy's container");
        }
        let from = [
            deps::QUEUED,
            deps::FETCHING,
            deps::BUILDING,
            deps::STARTING,
            deps::HEALTH_CHECKING,
        ];
        let (status, fields, summary) = match stop {
            Stop::Preempted => return,
            Stop::Cancelled => (
                deps::CANCELLED,
                Fields {
                    error: Some("cancelled by request".into()),
                    ..Fields::default()
                },
                "==> Cancelled".to_string(),
            ),
            Stop::Failed { step, message } => {
                let message = self.log.masked(&message);
                let summary = format!("==> Failed at {step}: {message}");
                (
                    deps::FAILED,
                    Fields {
                        error: Some(message),
                        error_step: Some(step.into()),
                        ..Fields::default()
                    },
                    summary,
                )
            }
        };
        match deps::transition(&self.state.db, self.deployment.id, &from, status, fields).await {
            Ok(true) => {
                self.log.system(summary);
                self.log.status(status);
            }
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "cannot record the deploy outcome"),
        }
        tracing::info!(status, "deploy ended");
    }
}

/// Health polls are frequent while a fresh app is likely starting, then back off.
fn poll_interval(started: Instant) -> Duration {
    if started.elapsed() < Duration::from_secs(3) {
        Duration::from_millis(25)
    } else {
        Duration::from_millis(250)
    }
}

/// Keeps the images of the newest `keep` deployments (and the live one), removes the rest.
pub async fn prune_images(state: &AppState, project_id: Uuid, keep: usize) {
    let Ok(with_images) = deps::with_images(&state.db, project_id).await else {
        return;
    };
    let kept_or_running = |d: &Deployment| d.status == deps::LIVE || d.status == deps::STOPPED;
    // Rollbacks share their source's image: an image stays while any kept deployment uses it.
    let in_use: std::collections::HashSet<String> = with_images
        .iter()
        .enumerate()
        .filter(|(i, d)| *i < keep || kept_or_running(d))
        .filter_map(|(_, d)| d.image.clone())
        .collect();
    for old in with_images
        .iter()
        .skip(keep)
        .filter(|d| !kept_or_running(d))
    {
        let Some(image) = old.image.as_deref() else {
            continue;
        };
        if !in_use.contains(image)
            && let Err(e) = state.docker.remove_image(image).await
        {
            tracing::debug!(image, error = %e, "image still in use; kept");
            continue;
        }
        // Beyond the kept window, a deployment no longer offers its image for rollback.
        let _ = deps::clear_image(&state.db, old.id).await;
    }
}

/// Streams a pipeline's log into `deployment_logs` in batches on its own task, so a slow
/// database never slows the build, and publishes each line once it is persisted.
pub struct LogWriter {
    sender: Option<mpsc::UnboundedSender<Entry>>,
    task: Option<tokio::task::JoinHandle<()>>,
    tail: Mutex<VecDeque<String>>,
    masks: Mutex<Vec<String>>,
}

impl LogWriter {
    pub async fn start(state: Arc<AppState>, deployment: &Deployment) -> anyhow::Result<Self> {
        let (sender, mut receiver) = mpsc::unbounded_channel::<Entry>();
        let mut next_seq = deployment_logs::last_seq(&state.db, deployment.id).await? + 1;
        let (deployment_id, project_id) = (deployment.id, deployment.project_id);
        let task = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(256);
            while receiver.recv_many(&mut batch, 512).await > 0 {
                let mut attempt = 0;
                while let Err(e) =
                    deployment_logs::insert(&state.db, deployment_id, next_seq, &batch).await
                {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "cannot persist log lines; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                    if attempt >= 10 {
                        break;
                    }
                }
                for entry in batch.iter().filter(|e| e.stream == "status") {
                    let error = if entry.line == deps::FAILED {
                        deps::find(&state.db, deployment_id)
                            .await
                            .ok()
                            .flatten()
                            .and_then(|d| d.error)
                    } else {
                        None
                    };
                    record::deployment_status(
                        &state,
                        project_id,
                        deployment_id,
                        &entry.line,
                        error.as_deref(),
                    )
                    .await;
                }
                for entry in batch.drain(..) {
                    let event = if entry.stream == "status" {
                        Event::Status {
                            project_id,
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
                    state.hub.publish(event);
                    next_seq += 1;
                }
            }
        });
        Ok(Self {
            sender: Some(sender),
            task: Some(task),
            tail: Mutex::default(),
            masks: Mutex::default(),
        })
    }

    fn send(&self, stream: &'static str, line: String) {
        let line = self.masked(&line);
        if stream != "status" {
            let mut tail = lock(&self.tail);
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line.clone());
        }
        if let Some(sender) = &self.sender {
            let _ = sender.send(Entry {
                ts: crate::hub::timestamp(),
                stream,
                line,
            });
        }
    }

    pub fn stdout(&self, line: String) {
        self.send("stdout", line);
    }

    fn system(&self, line: String) {
        self.send("system", line);
    }

    fn status(&self, status: &str) {
        self.send("status", status.to_string());
    }

    /// Secret values to replace with `********` in every later line.
    fn mask(&self, secret: String) {
        let mut masks = lock(&self.masks);
        if !masks.contains(&secret) {
            masks.push(secret);
        }
    }

    fn masked(&self, text: &str) -> String {
        let masks = lock(&self.masks);
        let mut out = text.to_string();
        for secret in masks.iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "********");
            }
        }
        out
    }

    fn tail(&self) -> Vec<String> {
        lock(&self.tail).iter().cloned().collect()
    }

    /// Flushes everything written so far.
    pub async fn finish(&mut self) {
        self.sender.take();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}
