//! The Docker driver: the only module that imports bollard. It speaks to the engine over its
//! API (never a shell) and returns shard's own types. Every object shard creates carries the
//! `shard.managed` label plus its project and deployment, so shard can find and remove it.
//!
//! ## App containers: safe by default
//!
//! Every app container gets: memory (`containers.memory_mb`, no extra swap), CPU
//! (`containers.cpu_millis`) and process (`containers.pids_limit`) limits — a project may ask for
//! other values up to `containers.max_*`; json-file logs rotated at `containers.log_max_size_mb` ×
//! `containers.log_max_files`; `no-new-privileges`; Docker's default capabilities minus `NET_RAW`,
//! `MKNOD`, `AUDIT_WRITE`, `SYS_CHROOT`, `SETFCAP`, `SETPCAP`; an init process; its project's own
//! bridge network `shard-<project>` (a `/26` of `containers.network_pool`, removed with the
//! project), so apps of different projects cannot reach each other's containers; its port
//! published on 127.0.0.1 only.

use std::collections::HashMap;

use bollard::Docker;
use bollard::query_parameters::ListContainersOptionsBuilder;
use tokio::sync::OnceCell;
use uuid::Uuid;

mod archive;
mod build;
mod cgroup;
pub mod configs;
mod containers;
pub use cgroup::sweep as sweep_build_cgroups;
pub mod context;
mod databases;
mod events;
mod images;
pub mod lines;
mod network;
mod site;
mod stats;
mod swarm;
mod tasks;
mod volumes;

pub use build::{BuildError, BuildLimits, BuildSpec};
pub use containers::{
    ContainerStatus, DROPPED_CAPABILITIES, Limits, LogSource, ManagedContainer, RunSpec, Started,
};
pub use databases::{DatabaseRun, ExecError, LABEL_DATABASE, Seed};
pub use events::{ContainerChange, ContainerEvent};
pub use images::{ManagedImage, cap_text};
pub use site::{CopyError, CopyStats};
pub use stats::StatsReading;
pub use swarm::{NodeChange, NodeInfo, RegistryAuth, Replica, ServiceRun, SwarmInfo};
pub use tasks::{Attached, LABEL_RUN, TaskOutput, TaskSpec, TtyTarget};
pub use volumes::{FileMount, LABEL_VOLUME, RemoveVolumeError, VolumeMount};

pub use lines::LineSplitter;

pub const LABEL_MANAGED: &str = "shard.managed";
pub const LABEL_PROJECT: &str = "shard.project";
pub const LABEL_DEPLOYMENT: &str = "shard.deployment";
/// On an image whose `/site` is a static site to serve (an `auto` build that planned one).
pub const LABEL_SITE: &str = "shard.site";
/// Which shard installation owns the object, so several can share one Docker engine.
pub const LABEL_INSTANCE: &str = "shard.instance";

/// Docker's label on the containers of Swarm tasks.
const SWARM_TASK_LABEL: &str = "com.docker.swarm.task.id";

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("docker engine unreachable at {endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error("docker API error: {0}")]
    Api(#[from] bollard::errors::Error),
}

/// A handle on the Docker engine. Connecting is lazy: shard starts (and serves its dashboard)
/// while Docker is down, and each call reports an unreachable engine as an error.
pub struct Engine {
    endpoint: String,
    instance: String,
    client: OnceCell<Docker>,
    /// Builds hold it shared, image removals exclusively: removing an image also deletes its
    /// untagged parent layers, and a build that just took one of them from the cache would
    /// fail ("failed to get digest"). Removals wait for running builds (up to 30 s) instead.
    layers: tokio::sync::RwLock<()>,
    /// How the engine lays out cgroups (read once; see `cgroup`).
    cgroups: OnceCell<cgroup::Layout>,
    /// This engine's Swarm node id once read (see `nodes`).
    local_node: std::sync::Mutex<Option<String>>,
}

/// What `Engine::remove_project` removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    pub containers: usize,
    pub images: usize,
}

impl Engine {
    /// `host` as in `DOCKER_HOST` (`unix:///var/run/docker.sock`, `tcp://...`); `None` uses
    /// `DOCKER_HOST` or the platform default. `instance` names this installation in labels.
    pub fn new(host: Option<&str>, instance: String) -> Self {
        let endpoint = host
            .map(str::to_string)
            .or_else(|| std::env::var("DOCKER_HOST").ok())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
        Self {
            endpoint,
            instance,
            client: OnceCell::new(),
            layers: tokio::sync::RwLock::new(()),
            cgroups: OnceCell::new(),
            local_node: std::sync::Mutex::new(None),
        }
    }

    /// How the engine lays out cgroups (`Unknown` while it cannot be asked).
    async fn cgroup_layout(&self) -> cgroup::Layout {
        let read = self
            .cgroups
            .get_or_try_init(|| async {
                let info = self.client().await?.info().await?;
                let text = |v: Option<String>| v.filter(|s| !s.is_empty());
                let driver = text(info.cgroup_driver.map(|d| d.to_string()));
                let version = text(info.cgroup_version.map(|v| v.to_string()));
                Ok::<_, EngineError>(cgroup::Layout::of(driver.as_deref(), version.as_deref()))
            })
            .await;
        read.copied().unwrap_or(cgroup::Layout::Unknown)
    }

    /// This installation's id, as put in the `shard.instance` label.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The labels of every object shard creates for a deployment.
    pub fn labels(&self, project: Uuid, deployment: Uuid) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_INSTANCE.to_string(), self.instance.clone()),
            (LABEL_PROJECT.to_string(), project.to_string()),
            (LABEL_DEPLOYMENT.to_string(), deployment.to_string()),
        ])
    }

    /// A label filter that matches only this installation's objects, plus `extra`.
    fn owned_filter(&self, extra: Option<String>) -> HashMap<String, Vec<String>> {
        let mut labels = vec![
            format!("{LABEL_MANAGED}=true"),
            format!("{LABEL_INSTANCE}={}", self.instance),
        ];
        labels.extend(extra);
        HashMap::from([("label".to_string(), labels)])
    }

    async fn client(&self) -> Result<&Docker, EngineError> {
        self.client
            .get_or_try_init(|| async {
                let unreachable = |reason: String| EngineError::Unreachable {
                    endpoint: self.endpoint.clone(),
                    reason,
                };
                let docker = Docker::connect_with_host(&self.endpoint)
                    .map_err(|e| unreachable(e.to_string()))?;
                docker
                    .negotiate_version()
                    .await
                    .map_err(|e| unreachable(e.to_string()))
            })
            .await
    }

    /// The engine's own id and host name (`docker info`'s `ID` and `Name`): two engines with
    /// one id are one engine.
    pub async fn identity(&self) -> Result<(String, String), EngineError> {
        let info = self.client().await?.info().await?;
        Ok((info.id.unwrap_or_default(), info.name.unwrap_or_default()))
    }

    /// The engine's clock (`docker info`'s `SystemTime`), as a reference for clock skew.
    pub async fn system_time(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>, EngineError> {
        let info = self.client().await?.info().await?;
        Ok(info
            .system_time
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&chrono::Utc)))
    }

    /// Where the engine is reached (`docker.host`, `DOCKER_HOST` or the default socket).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The engine's version, proving it answers.
    pub async fn version(&self) -> Result<String, EngineError> {
        let version = self.client().await?.version().await?;
        Ok(version.version.unwrap_or_else(|| "unknown".into()))
    }

    /// Force-removes every container and image labelled with this project, and its network.
    ///
    /// A build cut off a moment ago (shard was killed mid-build) may still hold an image or
    /// the network through a container the engine is tearing down; such conflicts are tried
    /// again for up to [`REMOVE_SETTLE`] before they are reported.
    pub async fn remove_project(&self, project_id: Uuid) -> Result<Removed, EngineError> {
        let filters = self.owned_filter(Some(format!("{LABEL_PROJECT}={project_id}")));
        let network = format!("shard-{}", project_id.simple());
        let deadline = tokio::time::Instant::now() + REMOVE_SETTLE;
        let mut removed = Removed::default();
        loop {
            let mut busy = None;
            for id in self.container_ids(&filters).await? {
                self.remove_container(&id).await?;
                removed.containers += 1;
            }
            for image in self.images_matching(&filters).await? {
                match self.remove_image(&image.id).await {
                    Ok(()) => removed.images += 1,
                    Err(EngineError::Api(e)) if is_busy(&e) => busy = Some(e),
                    Err(e) => return Err(e),
                }
            }
            if busy.is_none() {
                match self.client().await?.remove_network(&network).await {
                    Ok(()) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) if is_busy(&e) => busy = Some(e),
                    Err(e) => return Err(e.into()),
                }
            }
            match busy {
                None => return Ok(removed),
                Some(e) if tokio::time::Instant::now() >= deadline => return Err(e.into()),
                Some(e) => {
                    tracing::debug!(project = %project_id, error = %e, "project removal waits for the engine");
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
            }
        }
    }

    /// Every container (running or not) matching `filters`.
    pub(crate) async fn containers_matching(
        &self,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<bollard::models::ContainerSummary>, EngineError> {
        Ok(self
            .client()
            .await?
            .list_containers(Some(
                ListContainersOptionsBuilder::default()
                    .all(true)
                    .filters(filters)
                    .build(),
            ))
            .await?)
    }

    /// Ids of every container (running or not) matching `filters`.
    async fn container_ids(
        &self,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<String>, EngineError> {
        let containers = self.containers_matching(filters).await?;
        Ok(containers.into_iter().filter_map(|c| c.id).collect())
    }
}

pub(crate) fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Docker's answer when another request is already removing the container.
/// How long a project's removal retries objects the engine still reports in use.
const REMOVE_SETTLE: std::time::Duration = std::time::Duration::from_secs(20);

/// An object in use for now: an image under a container being removed (409), a network with
/// an endpoint still attached (403 on older engines, 409 on newer).
fn is_busy(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 403 | 409,
            ..
        }
    )
}

fn is_removal_in_progress(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 409,
            message,
        } if message.contains("already in progress")
    )
}
