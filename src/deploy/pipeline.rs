//! The deploy pipeline: queued → fetching → building → starting → health_checking → live.
//! A failure or cancel at any step removes what this deploy created and leaves the running
//! version untouched; a deploy found half-done after a crash ends `failed` ("interrupted").
//!
//! # Deploy lifecycle
//!
//! Everything that changes what runs for a project goes through `deploy::Deployer`; routes parse,
//! authorize and call it, and never call Docker themselves. `DeploymentStatus` knows its legal moves:
//!
//! ```text
//! queued → fetching → building → starting → health_checking → live ⇄ stopped
//! queued → starting (rollback: the image exists)          live|stopped → superseded
//! any step before live → failed | cancelled
//! ```
//!
//! `POST /projects/{id}/deployments` writes a `queued` deployment and a `deploy` job (project id on
//! the job), and cancels older queued deployments of the project ("superseded by a newer deploy
//! request"). A worker claims the job; the claim skips jobs whose project already has a job under
//! a live lease, so one deploy runs per project (on Postgres claims take turns under an advisory
//! lock, so this holds across instances too). The pipeline then moves the deployment with
//! conditional updates (`deployments::transition`, which refuses illegal moves): a status only
//! moves from the states it expects, so a cancel and a worker never both win.
//!
//! - fetch: a member's git URL is checked against private networks (`egress`) and fetched through
//!   the guard, then gix into `<data_dir>/builds/<deployment>` within `deploy.fetch_timeout_secs`;
//!   a tree over `deploy.max_checkout_mb` on disk fails before it is checked out;
//! - build (`build.rs`): for `build_type: "auto"` first the build plan (`crate::build`,
//!   logged as `==> Plan` lines; a tree nothing recognizes fails at step `plan`), then
//!   `shard/<slug>:<deployment>` from the tarred checkout within the build's time and resource
//!   limits, its output streamed to the log;
//! - start: env vars opened at the last moment, `PORT` set, port = project port, else the image's
//!   single EXPOSE, else 8080, published on an ephemeral 127.0.0.1 port (`upstream`), with the
//!   container defaults below;
//! - health gate: GET `health_path` until 2xx/3xx, failing early when the container exits;
//! - switch (`deployments::switch`, one transaction): new → `live` and every other live or stopped
//!   deployment of the project → `superseded`, so a crash can never leave two live; the route
//!   table moves with it (`Proxy::switch`: it routes to the new deployment before the
//!   transaction commits, other rebuilds held off, and is rebuilt from the database after, so a
//!   deployment read as `live` is already routed); the previous container
//!   drains — after a 0.5 s settle, until its in-flight count is zero, at most `deploy.grace_secs`
//!   — is stopped and removed, and only then are images
//!   outside the keep-set (`prune::plan`: the newest `deploy.keep_images`, plus any image a live,
//!   stopped or unfinished deployment uses) removed.
//!
//! A static site (`build_type: "static"`, or an `auto` build whose plan is a site: its image
//! is labelled `shard.site`) replaces start and health gate with a copy of the site's
//! directory out of the image (`docker/site.rs`: a created, never started container; regular
//! files only; `deploy.max_site_mb`) into `sites/<deployment>/`; its `upstream` is `static` and the
//! proxy serves the files. A restart is a deployment from the live one's image (trigger
//! `restart`) through the same gate and switch — never `docker restart`.
//!
//! Failure or cancel removes the new container (and its image) and leaves the live one untouched.
//! Secret values are masked (`********`) in every persisted line and error.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::env::{self, GIT_TOKEN_VAR, OpenVar};
use super::fetch::pushed_commit;
use super::log::LogWriter;
use super::workspace::{build_dir, checkout_size, remove_dir};
use super::{Deployer, DeploymentStatus as S, prune, site};
use crate::db;
use crate::db::deployments::{self as deps, Deployment, Fields};
use crate::db::projects::Project;
use crate::docker::{LABEL_SITE, Limits};
use crate::model::BuildType;

/// How long a drain waits before it trusts the in-flight count: requests that read the route
/// table just before the swap may not have counted themselves yet.
pub(super) const DRAIN_SETTLE: Duration = Duration::from_millis(500);

/// Runs the deployment `id` (the job handler's body).
#[tracing::instrument(skip_all, fields(deployment = %id))]
pub async fn run(deployer: &Arc<Deployer>, id: Uuid) -> anyhow::Result<()> {
    let Some(deployment) = deps::find(&deployer.db, id).await? else {
        return Ok(()); // project deleted with its deployments
    };
    match deployment.state() {
        S::Queued => {}
        status if status.is_in_progress() => {
            super::recover::interrupted(deployer, &deployment).await;
            return Ok(());
        }
        _ => return Ok(()),
    }
    let Some(project) = db::projects::find(&deployer.db, deployment.project_id).await? else {
        return Ok(());
    };
    let cancel = deployer.running.register(deployment.id);
    let deploy = &deployer.config.deploy;
    let log = LogWriter::start(
        deployer.sink(),
        &deployment,
        deploy.max_log_line_bytes,
        deploy.max_log_lines,
    )
    .await?;
    let mut pipeline = Pipeline {
        d: deployer.clone(),
        project,
        deployment,
        cancel,
        log,
        started: None,
    };
    let outcome = pipeline.execute().await;
    pipeline.conclude(outcome).await;
    deployer.running.remove(pipeline.deployment.id);
    pipeline.log.finish().await;
    // A build leaves many small blocks behind (its log lines, the context's buffers).
    drop(pipeline);
    shard_malloc::release_soon();
    // Whatever an earlier crash (or this deploy's failed cleanup) left behind goes now.
    let d = deployer.clone();
    tokio::spawn(async move {
        if let Err(e) = super::recover::sweep(&d).await {
            tracing::debug!(error = %format!("{e:#}"), "post-deploy sweep failed");
        }
    });
    Ok(())
}

/// Why a pipeline stopped early.
pub enum Stop {
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

impl From<sea_orm::DbErr> for Stop {
    fn from(e: sea_orm::DbErr) -> Self {
        anyhow::Error::from(e).into()
    }
}

pub(super) fn failed(step: &'static str, message: impl Into<String>) -> Stop {
    Stop::Failed {
        step,
        message: message.into(),
    }
}

pub struct Pipeline {
    pub(super) d: Arc<Deployer>,
    pub(super) project: Project,
    pub(super) deployment: Deployment,
    pub(super) cancel: CancellationToken,
    pub(super) log: LogWriter,
    /// What this deploy started (a container or a Swarm service), removed if it does not go
    /// live.
    pub(super) started: Option<super::runtime::Started>,
}

impl Pipeline {
    async fn execute(&mut self) -> Result<(), Stop> {
        let (image, site) = match self.deployment.image.clone() {
            Some(image) => {
                self.advance(&[S::Queued], S::Starting, started()).await?;
                self.log
                    .system(format!("==> Rolling back to image {image}"))
                    .await;
                let site = self.site_of(&image).await?;
                (image, site)
            }
            None => {
                self.advance(&[S::Queued], S::Fetching, started()).await?;
                let build_dir = build_dir(&self.d.config.data_dir, self.deployment.id);
                let result = self.fetch_and_build(&build_dir).await;
                remove_dir(&build_dir).await;
                let _ = tokio::fs::remove_file(build_dir.with_extension("tar")).await;
                let (image, site) = result?;
                let fields = Fields {
                    image: Some(image.clone()),
                    ..Fields::default()
                };
                self.advance(&[S::Building], S::Starting, fields).await?;
                (image, site)
            }
        };
        match site {
            Some(dir) => self.publish_site(&image, &dir).await?,
            None => {
                self.start_app(&image).await?;
                self.health_gate().await?;
            }
        }
        self.go_live().await
    }

    /// The directory of `image` to serve as a site, if it is one: a `static` project's
    /// `static_dir`, or what an `auto` build labelled.
    async fn site_of(&self, image: &str) -> Result<Option<String>, Stop> {
        match self.project.build_type {
            BuildType::Dockerfile => Ok(None),
            BuildType::Static => match self.project.static_dir.clone() {
                Some(dir) => Ok(Some(dir)),
                None => Err(failed("start", "a static site needs static_dir")),
            },
            BuildType::Auto => self
                .d
                .docker
                .image_label(image, LABEL_SITE)
                .await
                .map_err(|e| failed("start", e.to_string())),
        }
    }

    pub(super) async fn advance(&mut self, from: &[S], to: S, fields: Fields) -> Result<(), Stop> {
        if self.cancel.is_cancelled() {
            return Err(Stop::Cancelled);
        }
        if !deps::transition(&self.d.db, self.deployment.id, from, to, fields).await? {
            return Err(Stop::Preempted);
        }
        self.deployment.status = to;
        self.log.status(to).await;
        Ok(())
    }

    /// Decrypts the project's env vars, registering secret values for masking.
    async fn open_env(&self) -> Result<Vec<OpenVar>, Stop> {
        let opened = env::for_project(&self.d.db, &self.d.sealer, &self.project).await?;
        for var in opened.iter().filter(|v| v.secret && v.value.len() >= 4) {
            self.log.mask(var.value.clone());
        }
        Ok(opened)
    }

    /// Fetches and builds; answers the image and, for a site, its directory in the image.
    async fn fetch_and_build(
        &mut self,
        build_dir: &Path,
    ) -> Result<(String, Option<String>), Stop> {
        let p = self.project.clone();
        self.log
            .system(match pushed_commit(&self.deployment) {
                Some(sha) => format!(
                    "==> Fetching {} (commit {} pushed to {})",
                    p.git_url,
                    &sha[..sha.len().min(12)],
                    p.branch
                ),
                None => format!("==> Fetching {} ({})", p.git_url, p.branch),
            })
            .await;
        self.check_source().await?;
        let opened = self.open_env().await?;
        let token = self.git_token(&opened).await?;
        let checkout = self.fetch(build_dir, token).await?;
        if !checkout.shallow {
            tracing::warn!("the fetch was not shallow (server without protocol v2?)");
        }
        let limit = self.d.config.deploy.max_checkout_mb * 1024 * 1024;
        let root = build_dir.to_path_buf();
        let size = tokio::task::spawn_blocking(move || checkout_size(&root, limit))
            .await
            .map_err(|e| anyhow::anyhow!("size task: {e}"))?;
        if size > limit {
            return Err(failed(
                "fetch",
                format!(
                    "the checkout is larger than {} MiB (deploy.max_checkout_mb)",
                    self.d.config.deploy.max_checkout_mb
                ),
            ));
        }
        let short = &checkout.commit_sha[..checkout.commit_sha.len().min(12)];
        self.log
            .system(format!("==> Fetched {short} {}", checkout.summary))
            .await;
        let fields = Fields {
            commit_sha: Some(checkout.commit_sha.clone()),
            commit_message: Some(checkout.summary.clone()),
            ..Fields::default()
        };
        self.advance(&[S::Fetching], S::Building, fields).await?;

        self.build_image(build_dir, &opened).await
    }

    pub(super) fn limits(&self) -> Limits {
        self.d.limits_of(&self.project)
    }

    /// The port the app listens on (the project's, else the image's single EXPOSE, else
    /// 8080) and its environment with `PORT` set, decrypted at the last moment and only for
    /// the app (containers and Swarm services alike).
    pub(super) async fn app_env(&self, image: &str) -> Result<(u16, Vec<String>), Stop> {
        let port = match self.project.port {
            Some(port) => port as u16,
            None => self
                .d
                .docker
                .exposed_port(image)
                .await
                .map_err(|e| failed("start", e.to_string()))?
                .unwrap_or(8080),
        };
        let mut env: Vec<String> = self
            .open_env()
            .await?
            .into_iter()
            .filter(|v| v.key != GIT_TOKEN_VAR)
            .map(|v| format!("{}={}", v.key, v.value))
            .collect();
        env.push(format!("PORT={port}"));
        Ok((port, env))
    }

    /// The switch: this deployment `live` and the previous one `superseded` in one
    /// transaction, then the previous container drained and removed, then images pruned.
    async fn go_live(&mut self) -> Result<(), Stop> {
        if self.cancel.is_cancelled() {
            return Err(Stop::Cancelled);
        }
        // The route table moves with the switch (ahead of its commit): whoever reads the
        // deployment as live finds new requests reaching the new container, while requests
        // already on the old one finish there (the old one serves until drained).
        let (project, deployment) = (self.project.id, self.deployment.id);
        let switched = self
            .d
            .proxy
            .switch(
                project,
                deployment,
                deps::switch(&self.d.db, project, deployment),
            )
            .await;
        let Some(previous) = switched? else {
            return Err(Stop::Preempted);
        };
        self.started = None; // it is the live one now
        // The header first, then the status: `live` is the last message of a deploy's topic.
        let url = self.d.app_url(&self.project.slug);
        self.log.system(format!("==> Live at {url}")).await;
        self.log.status(S::Live).await;
        let mut retiring = Vec::new();
        let mut old_sites = Vec::new();
        for old in previous {
            self.d
                .record_status(self.project.id, old.id, S::Superseded, None)
                .await;
            if old.upstream.as_deref() == Some(site::STATIC_UPSTREAM) {
                old_sites.push(old.id);
            } else {
                retiring.push(old);
            }
        }
        // Drain: each previous deployment keeps serving until its in-flight requests end (at
        // most the grace period), then the runtime removes it; only then can its image be
        // pruned (Docker refuses to remove an image a container uses).
        let (d, project_id) = (self.d.clone(), self.project.id);
        // Marked before the task starts, so no sweep takes a draining container for a leftover.
        d.draining()
            .extend(retiring.iter().filter_map(|old| old.container_id.clone()));
        tokio::spawn(async move {
            let grace = Duration::from_secs(d.config.deploy.grace_secs);
            // Files already open keep serving after their directory goes.
            if !old_sites.is_empty() {
                tokio::time::sleep(DRAIN_SETTLE).await;
            }
            for old in old_sites {
                site::remove_site(&d.config.data_dir, old).await;
            }
            let retired = retiring.iter().map(|old| d.retire(old, grace));
            futures_util::future::join_all(retired).await;
            d.proxy.refresh_or_log().await;
            prune::apply(&d, project_id).await;
        });
        Ok(())
    }

    /// Records how the pipeline ended and removes what a failed or cancelled deploy created.
    async fn conclude(&mut self, outcome: Result<(), Stop>) {
        let Err(stop) = outcome else { return };
        site::remove_site(&self.d.config.data_dir, self.deployment.id).await;
        if let Some(started) = self.started.take() {
            self.d.runtime.discard(started).await;
        }
        let (status, fields, summary) = match stop {
            Stop::Preempted => return,
            Stop::Cancelled => (
                S::Cancelled,
                Fields {
                    error: Some("cancelled by request".into()),
                    ..Fields::default()
                },
                "==> Cancelled".to_string(),
            ),
            Stop::Failed { step, message } => {
                let mut message = self.log.masked(&message);
                crate::docker::cap_text(&mut message, 64 * 1024);
                let summary = format!("==> Failed at {step}: {message}");
                (
                    S::Failed,
                    Fields {
                        error: Some(message),
                        error_step: Some(step.into()),
                        ..Fields::default()
                    },
                    summary,
                )
            }
        };
        match deps::transition(
            &self.d.db,
            self.deployment.id,
            &S::UNFINISHED,
            status,
            fields,
        )
        .await
        {
            Ok(true) => {
                self.log.system(summary).await;
                self.log.status(status).await;
            }
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "cannot record the deploy outcome"),
        }
        self.d.proxy.refresh_or_log().await;
        tracing::info!(%status, "deploy ended");
    }
}

fn started() -> Fields {
    Fields {
        started: true,
        ..Fields::default()
    }
}

impl Deployer {
    /// Retires a superseded deployment: its requests drain (after a settle, at most `grace`),
    /// then the runtime removes it, and its container is no longer marked draining.
    async fn retire(&self, old: &Deployment, grace: Duration) {
        if old.container_id.is_none() && old.service_id.is_none() {
            return;
        }
        // Marked draining by the switch (before this task ran), unmarked here once gone.
        self.proxy.drain(old.id, DRAIN_SETTLE, grace).await;
        self.runtime.retire(old).await;
        if let Some(container) = &old.container_id {
            self.draining().remove(container);
        }
    }
}
