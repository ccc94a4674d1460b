//! The Docker driver: the only module that imports bollard. It speaks to the engine over its
//! API (never a shell) and returns shard's own types. Every object shard creates carries the
//! `shard.managed` label plus its project and deployment, so shard can find and remove it.

use std::collections::HashMap;

use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptionsBuilder,
};
use tokio::sync::OnceCell;
use uuid::Uuid;

pub const LABEL_MANAGED: &str = "shard.managed";
pub const LABEL_PROJECT: &str = "shard.project";
pub const LABEL_DEPLOYMENT: &str = "shard.deployment";

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
    client: OnceCell<Docker>,
}

/// What `Engine::remove_project` removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    pub containers: usize,
    pub images: usize,
}

impl Engine {
    /// `host` as in `DOCKER_HOST` (`unix:///var/run/docker.sock`, `tcp://...`); `None` uses
    /// `DOCKER_HOST` or the platform default.
    pub fn new(host: Option<&str>) -> Self {
        let endpoint = host
            .map(str::to_string)
            .or_else(|| std::env::var("DOCKER_HOST").ok())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
        Self {
            endpoint,
            client: OnceCell::new(),
        }
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

    /// The engine's version, proving it answers.
    pub async fn version(&self) -> Result<String, EngineError> {
        let version = self.client().await?.version().await?;
        Ok(version.version.unwrap_or_else(|| "unknown".into()))
    }

    /// Force-removes every container and image labelled with this project.
    pub async fn remove_project(&self, project_id: Uuid) -> Result<Removed, EngineError> {
        let docker = self.client().await?;
        let filters: HashMap<String, Vec<String>> = HashMap::from([(
            "label".to_string(),
            vec![format!("{LABEL_PROJECT}={project_id}")],
        )]);
        let mut removed = Removed::default();
        let containers = docker
            .list_containers(Some(
                ListContainersOptionsBuilder::default()
                    .all(true)
                    .filters(&filters)
                    .build(),
            ))
            .await?;
        for container in containers {
            let Some(id) = container.id else { continue };
            let options = RemoveContainerOptionsBuilder::default()
                .force(true)
                .v(true)
                .build();
            match docker.remove_container(&id, Some(options)).await {
                Ok(()) => removed.containers += 1,
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let images = docker
            .list_images(Some(
                ListImagesOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await?;
        for image in images {
            let options = RemoveImageOptionsBuilder::default().force(true).build();
            match docker.remove_image(&image.id, Some(options), None).await {
                Ok(_) => removed.images += 1,
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(removed)
    }
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}
