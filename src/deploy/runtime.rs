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
//! the default) or `swarm::Swarm`. A runtime holds the engine handle and takes plain inputs:
//! `start` gets an `AppSpec` (image, env, port, limits, replicas, placement, network pool,
//! registry credentials) and returns what it `Started`; `health_gate` gets a `Gate` (path,
//! timeout, replicas wanted) and returns the endpoints that answered; `discard`,
//! `remove_deployment`, `retire`, `control`, `remove_project`, `probe`, `halt` and `log_source`
//! take a deployment's record. It calls nothing above it: logging, recording fields and
//! statuses, routing (drain, replicas, dead containers) and the recovery sweep are the
//! pipeline's and the `Deployer`'s, written once for both runtimes. `Swarm` hands deployments that
//! still run as plain containers (made before the move to Swarm) to `Containers`, so switching
//! `runtime.kind` strands nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::log::TAIL_LINES;
use super::{Control, DeployError, site};
use crate::config::{Config, RuntimeKind, SubnetPool};
use crate::db::deployments::Deployment;
use crate::docker::{Engine, EngineError, Limits, LogSource, RegistryAuth, RunSpec};

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

/// What to run for a deployment, decided above the runtime.
pub struct AppSpec {
    pub project: Uuid,
    pub slug: String,
    pub deployment: Uuid,
    pub image: String,
    /// `KEY=value`, `PORT` included.
    pub env: Vec<String>,
    /// The port the app listens on.
    pub port: u16,
    pub limits: Limits,
    /// Copies to run (Swarm; plain Docker runs one).
    pub replicas: u32,
    /// Node labels every replica's node must carry (Swarm).
    pub placement: BTreeMap<String, String>,
    /// Where a project network's subnet comes from (plain Docker).
    pub subnets: SubnetPool,
    /// Credentials for the registry nodes pull from (Swarm).
    pub registry: Option<RegistryAuth>,
    /// The project's volumes, mounted read-write (plain Docker).
    pub volumes: Vec<crate::docker::VolumeMount>,
    /// The project's file mounts, read-only (plain Docker).
    pub files: Vec<crate::docker::FileMount>,
}

/// What a runtime started for a deployment.
#[derive(Debug, Clone, Default)]
pub struct Started {
    pub container: Option<String>,
    pub service: Option<String>,
    /// What the route table stores for it (`127.0.0.1:<port>`, or the Swarm marker).
    pub upstream: String,
    /// One line for the deploy log saying what runs and where.
    pub note: String,
}

/// Why something the runtime ran did not come up: the message, and the app's last output
/// lines when there are some (masked by the caller before anyone sees them).
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub output: Vec<String>,
    /// What was started before it failed, for the caller to discard.
    pub started: Option<Started>,
}

impl Failure {
    fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            output: Vec::new(),
            started: None,
        }
    }
}

/// The health gate's terms: every instance answers `GET <path>` with 2xx/3xx within `timeout`.
pub struct Gate {
    pub deployment: Uuid,
    pub path: String,
    pub timeout: Duration,
    /// Instances that must answer (Swarm replicas).
    pub wanted: usize,
    pub http: reqwest::Client,
    pub cancel: CancellationToken,
}

/// How the health gate ended when it did not pass.
#[derive(Debug)]
pub enum GateError {
    Cancelled,
    Failed(Failure),
}

/// What a start or stop asked of a live deployment changed for routing.
#[derive(Debug, PartialEq, Eq)]
pub enum Controlled {
    /// Nothing the caller needs to follow up.
    Done,
    /// A container started again: Docker publishes its port anew.
    ContainerStarted(String),
    /// Replicas answer here now.
    Replicas(Vec<String>),
}

/// What runs the apps. See the module docs.
#[async_trait::async_trait]
pub trait Runtime: crate::metrics::ContainerSource + Send + Sync {
    fn kind(&self) -> RuntimeKind;

    /// Runs the deployment's image (a container, or a service with its replicas).
    async fn start(&self, app: AppSpec) -> Result<Started, Failure>;

    /// Waits until every instance answers the health check; the endpoints that answered.
    async fn health_gate(&self, started: &Started, gate: &Gate) -> Result<Vec<String>, GateError>;

    /// Removes what a deploy that did not go live started.
    async fn discard(&self, started: Started);

    /// Removes every instance of a deployment now (an interrupted deploy's leftovers).
    async fn remove_deployment(&self, deployment: &Deployment);

    /// Removes a superseded deployment (after the caller drained its requests).
    async fn retire(&self, old: &Deployment);

    /// Starts or stops the instances of a live or stopped deployment.
    async fn control(
        &self,
        deployment: &Deployment,
        replicas: u32,
        control: Control,
    ) -> Result<Controlled, DeployError>;

    /// Removes what runs for a project (containers, services, images, its network).
    async fn remove_project(&self, project: Uuid) -> Result<usize, EngineError>;

    /// What the watchdog reads; `None` when the deployment has nothing running to judge.
    async fn probe(&self, deployment: &Deployment) -> Result<Option<Probe>, EngineError>;

    /// Stops a crash-looping deployment (until someone starts, restarts or deploys it).
    async fn halt(&self, deployment: &Deployment) -> Result<(), EngineError>;

    /// Where a deployment's runtime output is read from.
    fn log_source(&self, deployment: &Deployment) -> Option<LogSource>;
}

/// The runtime `config` asks for, driving `engine`.
pub fn for_config(config: &Config, engine: Arc<Engine>) -> Arc<dyn Runtime> {
    match config.runtime.kind {
        RuntimeKind::Docker => Arc::new(Containers { engine }),
        RuntimeKind::Swarm => Arc::new(super::swarm::Swarm::new(engine)),
    }
}

/// Plain Docker containers on this machine: one per deployment, published on a loopback port.
#[derive(Clone)]
pub struct Containers {
    pub(super) engine: Arc<Engine>,
}

impl Containers {
    /// The container's last output lines (for a failure message).
    async fn output(&self, container: &str) -> Vec<String> {
        self.engine
            .tail_logs(container, TAIL_LINES)
            .await
            .unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl Runtime for Containers {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Docker
    }

    async fn start(&self, app: AppSpec) -> Result<Started, Failure> {
        let engine = &self.engine;
        let start_failed = |e: EngineError| Failure::new(e.to_string());
        let network = engine
            .ensure_network(app.project, &app.subnets)
            .await
            .map_err(start_failed)?;
        let spec = RunSpec {
            name: format!("shard-{}-{}", app.slug, app.deployment.simple()),
            image: app.image,
            env: app.env,
            labels: engine.labels(app.project, app.deployment),
            port: app.port,
            limits: app.limits,
            network,
            volumes: app.volumes,
            files: app.files,
        };
        let run = engine.run_container(spec).await.map_err(start_failed)?;
        if run.host_port == 0 {
            return Err(Failure {
                message: "the container stopped right after start".into(),
                output: self.output(&run.id).await,
                started: Some(Started {
                    container: Some(run.id),
                    ..Started::default()
                }),
            });
        }
        let upstream = format!("127.0.0.1:{}", run.host_port);
        Ok(Started {
            note: format!(
                "==> Container {} listening on port {}, published at {upstream}",
                &run.id[..12],
                app.port
            ),
            container: Some(run.id),
            service: None,
            upstream,
        })
    }

    async fn health_gate(&self, started: &Started, gate: &Gate) -> Result<Vec<String>, GateError> {
        let upstream = started.upstream.clone();
        let url = format!("http://{upstream}{}", gate.path);
        let deadline = Instant::now() + gate.timeout;
        let container = started.container.clone().unwrap_or_default();
        let mut last_problem;
        loop {
            if gate.cancel.is_cancelled() {
                return Err(GateError::Cancelled);
            }
            let request = gate.http.get(&url).timeout(Duration::from_secs(2));
            match request.send().await {
                Ok(response)
                    if response.status().is_success() || response.status().is_redirection() =>
                {
                    return Ok(vec![upstream]);
                }
                Ok(response) => last_problem = format!("answered {}", response.status()),
                Err(e) => {
                    last_problem = format!(
                        "no answer ({})",
                        if e.is_timeout() {
                            "timeout"
                        } else {
                            "connection refused or reset"
                        }
                    )
                }
            }
            match self.engine.container_status(&container).await {
                Ok(Some(status)) if !status.running => {
                    return Err(GateError::Failed(Failure {
                        message: format!(
                            "the container exited (code {}) before it became healthy",
                            status.exit_code.unwrap_or(-1)
                        ),
                        output: self.output(&container).await,
                        started: None,
                    }));
                }
                Ok(None) => {
                    return Err(GateError::Failed(Failure::new("the container disappeared")));
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                return Err(GateError::Failed(Failure {
                    message: format!(
                        "GET {} did not succeed within {} s: last {last_problem}",
                        gate.path,
                        gate.timeout.as_secs()
                    ),
                    output: self.output(&container).await,
                    started: None,
                }));
            }
            tokio::select! {
                _ = tokio::time::sleep(poll_interval(deadline - gate.timeout)) => {}
                _ = gate.cancel.cancelled() => return Err(GateError::Cancelled),
            }
        }
    }

    async fn discard(&self, started: Started) {
        if let Some(container) = started.container
            && let Err(e) = self.engine.remove_container(&container).await
        {
            tracing::warn!(error = %e, "cannot remove the failed deploy's container; reconcile will");
        }
    }

    async fn remove_deployment(&self, deployment: &Deployment) {
        if let Err(e) = self
            .engine
            .remove_deployment_containers(deployment.id)
            .await
        {
            tracing::warn!(error = %e, "cannot remove the deployment's container yet");
        }
    }

    async fn retire(&self, old: &Deployment) {
        let Some(container) = &old.container_id else {
            return;
        };
        let _ = self.engine.stop_container(container, 5).await;
        if let Err(e) = self.engine.remove_container(container).await {
            tracing::warn!(error = %e, "cannot remove the superseded container; reconcile will");
        }
    }

    async fn control(
        &self,
        deployment: &Deployment,
        _replicas: u32,
        control: Control,
    ) -> Result<Controlled, DeployError> {
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
                self.engine.start_container(&container).await?;
                Ok(Controlled::ContainerStarted(container))
            }
            Control::Stop => {
                self.engine.stop_container(&container, 10).await?;
                Ok(Controlled::Done)
            }
        }
    }

    async fn remove_project(&self, project: Uuid) -> Result<usize, EngineError> {
        let removed = self.engine.remove_project(project).await?;
        tracing::info!(%project, containers = removed.containers, images = removed.images, "removed docker objects");
        Ok(removed.containers)
    }

    async fn probe(&self, deployment: &Deployment) -> Result<Option<Probe>, EngineError> {
        let (Some(container), Some(upstream)) = (&deployment.container_id, &deployment.upstream)
        else {
            return Ok(None);
        };
        let Some(status) = self.engine.container_status(container).await? else {
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

    async fn halt(&self, deployment: &Deployment) -> Result<(), EngineError> {
        let Some(container) = &deployment.container_id else {
            return Ok(());
        };
        self.engine.stop_container(container, 5).await
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

/// Health polls are frequent while a fresh app is likely starting, then back off.
fn poll_interval(started: Instant) -> Duration {
    if started.elapsed() < Duration::from_secs(3) {
        Duration::from_millis(25)
    } else {
        Duration::from_millis(250)
    }
}
