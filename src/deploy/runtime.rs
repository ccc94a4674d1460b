//! The runtime seam: what the deploy domain asks of whatever runs the apps. Two
//! implementations: [`Containers`] (plain Docker containers on this machine, the default) and
//! [`super::swarm::Swarm`] (`runtime.kind = "swarm"`: one Swarm service per deployment, replicas
//! across nodes). Everything above the seam — the queue, the pipeline's steps and its switch,
//! the route table, runtime logs, the watchdog, the metrics collector, crash recovery — is the
//! same for both; only what is started, checked, stopped and removed differs.
//!
//! A deployment made under one runtime stays manageable after the installation switches to the
//! other: the Swarm runtime hands deployments that ran as plain containers to [`Containers`].
//!
//! ## The runtime seam
//!
//! The deploy domain drives apps through one trait object, `deploy::runtime::Runtime`
//! (`Deployer::runtime()`), chosen by `runtime.kind`: `Containers` (plain Docker on this machine,
//! the default) or `swarm::Swarm`. Its methods are what differs between them — `start` (run the
//! image, move to `health_checking`), `health_gate`, `discard` (what a failed or cancelled deploy
//! started), `remove_deployment` (an interrupted deploy's leftovers), `retire` (drain a superseded
//! deployment, then remove it), `control` (start/stop), `remove_project`, `sweep` (the recovery
//! sweep's part), `probe` (what the watchdog judges: the instances' endpoints, Docker's restart
//! count or the swarm's ended tasks), `halt` (the crash-loop stop), `log_source` (a container's or
//! a service's output for runtime logs) and `local_containers` (what the metrics collector
//! samples here). Everything else — queue, pipeline steps, switch, route table, runtime logs,
//! watchdog, metrics, notifications — is written once above it. `Swarm` hands deployments that
//! still run as plain containers (made before the move to Swarm) to `Containers`, so switching
//! `runtime.kind` strands nothing.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::pipeline::{DRAIN_SETTLE, Pipeline, Stop, failed};
use super::recover::{self, Swept};
use super::{Control, DeployError, Deployer, DeploymentStatus as S, site};
use crate::config::{Config, RuntimeKind};
use crate::db::deployments::{Deployment, Fields};
use crate::docker::{Engine, EngineError, LogSource, RunSpec};

/// What the watchdog reads of a live deployment.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Where each running instance answers (`host:port`).
    pub endpoints: Vec<String>,
    /// Restarts of the instance the engine made itself (Docker's restart count).
    pub restart_count: Option<i64>,
    /// Instances that ended unasked and that the engine still lists (Swarm's failed tasks),
    /// by id: each one is a restart the swarm made.
    pub ended: Vec<String>,
}

/// What runs the apps. See the module docs.
#[async_trait::async_trait]
pub trait Runtime: crate::metrics::ContainerSource + Send + Sync {
    fn kind(&self) -> RuntimeKind;

    /// Runs the deployment's image (a container, or a service with the project's replicas)
    /// and moves the deployment to `health_checking`.
    async fn start(&self, p: &mut Pipeline, image: &str) -> Result<(), Stop>;

    /// The health gate: every instance answers `GET <health_path>` with 2xx/3xx in time.
    async fn health_gate(&self, p: &mut Pipeline) -> Result<(), Stop>;

    /// Removes what a deploy that did not go live started.
    async fn discard(&self, p: &mut Pipeline);

    /// Removes every instance of a deployment now (an interrupted deploy's leftovers).
    async fn remove_deployment(&self, d: &Deployer, deployment: &Deployment);

    /// Lets a superseded deployment's requests drain (at most `grace`), then removes it.
    async fn retire(&self, d: &Deployer, old: &Deployment, grace: Duration);

    /// Starts or stops the instances of a live or stopped deployment.
    async fn control(
        &self,
        d: &Deployer,
        deployment: &Deployment,
        replicas: u32,
        control: Control,
    ) -> Result<(), DeployError>;

    /// Removes what runs for a project (containers, services, images, its network).
    async fn remove_project(&self, d: &Deployer, project: Uuid) -> Result<usize, EngineError>;

    /// Removes instances of deployments that no longer run (the recovery sweep).
    async fn sweep(
        &self,
        d: &Deployer,
        running_here: &HashSet<Uuid>,
        grace: chrono::Duration,
        swept: &mut Swept,
    ) -> anyhow::Result<()>;

    /// What the watchdog reads; `None` when the deployment has nothing running to judge.
    async fn probe(
        &self,
        d: &Deployer,
        deployment: &Deployment,
    ) -> Result<Option<Probe>, EngineError>;

    /// Stops a crash-looping deployment (until someone starts, restarts or deploys it).
    async fn halt(&self, d: &Deployer, deployment: &Deployment) -> Result<(), EngineError>;

    /// Where a deployment's runtime output is read from.
    fn log_source(&self, deployment: &Deployment) -> Option<LogSource>;
}

/// The runtime `config` asks for.
pub fn for_config(config: &Config) -> Arc<dyn Runtime> {
    match config.runtime.kind {
        RuntimeKind::Docker => Arc::new(Containers),
        RuntimeKind::Swarm => Arc::new(super::swarm::Swarm::default()),
    }
}

/// Plain Docker containers on this machine: one per deployment, published on a loopback port.
#[derive(Debug, Default, Clone, Copy)]
pub struct Containers;

#[async_trait::async_trait]
impl Runtime for Containers {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Docker
    }

    async fn start(&self, p: &mut Pipeline, image: &str) -> Result<(), Stop> {
        p.start_container(image).await
    }

    async fn health_gate(&self, p: &mut Pipeline) -> Result<(), Stop> {
        p.health_check().await
    }

    async fn discard(&self, p: &mut Pipeline) {
        if let Some(container) = p.container.take()
            && let Err(e) = p.d.docker.remove_container(&container).await
        {
            tracing::warn!(error = %e, "cannot remove the failed deploy's container; reconcile will");
        }
    }

    async fn remove_deployment(&self, d: &Deployer, deployment: &Deployment) {
        if let Err(e) = d.docker.remove_deployment_containers(deployment.id).await {
            tracing::warn!(error = %e, "cannot remove the deployment's container yet");
        }
    }

    async fn retire(&self, d: &Deployer, old: &Deployment, grace: Duration) {
        let Some(container) = &old.container_id else {
            return;
        };
        // Marked draining by the switch (before this task ran), unmarked here once gone.
        d.proxy.drain(old.id, DRAIN_SETTLE, grace).await;
        let _ = d.docker.stop_container(container, 5).await;
        if let Err(e) = d.docker.remove_container(container).await {
            tracing::warn!(error = %e, "cannot remove the superseded container; reconcile will");
        }
        d.draining().remove(container);
    }

    async fn control(
        &self,
        d: &Deployer,
        deployment: &Deployment,
        _replicas: u32,
        control: Control,
    ) -> Result<(), DeployError> {
        let container = deployment.container_id.clone().ok_or_else(|| {
            DeployError::Conflict(
                if deployment.upstream.as_deref() == Some(site::STATIC_UPSTREAM) {
                    "a static site has no container to start, stop or restart".into()
                } else {
                    "the live deployment has no container".into()
                },
            )
        })?;
        match control {
            Control::Start => {
                d.docker.start_container(&container).await?;
                // Docker publishes a started container's port anew.
                recover::refresh_upstream(d, deployment, &container).await;
            }
            Control::Stop => d.docker.stop_container(&container, 10).await?,
        }
        Ok(())
    }

    async fn remove_project(&self, d: &Deployer, project: Uuid) -> Result<usize, EngineError> {
        let removed = d.docker.remove_project(project).await?;
        tracing::info!(%project, containers = removed.containers, images = removed.images, "removed docker objects");
        Ok(removed.containers)
    }

    async fn sweep(
        &self,
        d: &Deployer,
        running_here: &HashSet<Uuid>,
        grace: chrono::Duration,
        swept: &mut Swept,
    ) -> anyhow::Result<()> {
        recover::sweep_containers(d, running_here, grace, swept).await
    }

    async fn probe(
        &self,
        d: &Deployer,
        deployment: &Deployment,
    ) -> Result<Option<Probe>, EngineError> {
        let (Some(container), Some(upstream)) = (&deployment.container_id, &deployment.upstream)
        else {
            return Ok(None);
        };
        let Some(status) = d.docker.container_status(container).await? else {
            return Ok(None);
        };
        Ok(Some(Probe {
            endpoints: if status.running {
                vec![upstream.clone()]
            } else {
                Vec::new()
            },
            restart_count: Some(status.restart_count),
            ended: Vec::new(),
        }))
    }

    async fn halt(&self, d: &Deployer, deployment: &Deployment) -> Result<(), EngineError> {
        let Some(container) = &deployment.container_id else {
            return Ok(());
        };
        d.docker.stop_container(container, 5).await?;
        d.proxy.container_event(container, false);
        Ok(())
    }

    fn log_source(&self, deployment: &Deployment) -> Option<LogSource> {
        deployment.container_id.clone().map(LogSource::Container)
    }
}

#[async_trait::async_trait]
impl crate::metrics::ContainerSource for Containers {
    async fn local_containers(
        &self,
        _engine: &Engine,
        deployment: &Deployment,
    ) -> Result<Vec<String>, EngineError> {
        Ok(deployment.container_id.iter().cloned().collect())
    }
}

impl Pipeline {
    /// Runs the deployment's container, published on a loopback port, and routes its preview
    /// host while it is checked.
    pub(super) async fn start_container(&mut self, image: &str) -> Result<(), Stop> {
        self.log.system("==> Starting".to_string()).await;
        let engine = self.d.docker.clone();
        let start_failed = |e: EngineError| failed("start", e.to_string());
        let (port, env) = self.app_env(image).await?;
        let network = engine
            .ensure_network(self.project.id, &self.d.config.containers.subnets())
            .await
            .map_err(start_failed)?;
        let spec = RunSpec {
            name: format!(
                "shard-{}-{}",
                self.project.slug,
                self.deployment.id.simple()
            ),
            image: image.to_string(),
            env,
            labels: engine.labels(self.project.id, self.deployment.id),
            port,
            limits: self.limits(),
            network,
        };
        let started = engine.run_container(spec).await.map_err(start_failed)?;
        self.container = Some(started.id.clone());
        if started.host_port == 0 {
            let message = self
                .exited_message("the container stopped right after start")
                .await;
            return Err(failed("start", message));
        }
        let upstream = format!("127.0.0.1:{}", started.host_port);
        self.log
            .system(format!(
                "==> Container {} listening on port {port}, published at {upstream}",
                &started.id[..12]
            ))
            .await;
        let fields = Fields {
            container_id: Some(started.id),
            upstream: Some(upstream.clone()),
            ..Fields::default()
        };
        self.advance(&[S::Starting], S::HealthChecking, fields)
            .await?;
        self.deployment.upstream = Some(upstream);
        // Its preview host routes from now on, while it is being checked.
        self.d.proxy.refresh_or_log().await;
        Ok(())
    }
}
