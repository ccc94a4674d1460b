//! What a task container (a one-off command, a job's run, a terminal's fresh container) gets
//! from the project: the live deployment's image, the app's environment (opened here, at the
//! last moment), its network, volumes, file mounts and limits, and the secret values to mask
//! in the task's output.

use std::path::PathBuf;

use super::{DeployError, Deployer, env};
use crate::db::{self, projects::Project};
use crate::docker::{FileMount, Limits, VolumeMount};

/// A project's environment for a task container.
pub struct TaskContext {
    pub deployment: uuid::Uuid,
    pub image: String,
    /// `KEY=value`, `PORT` included, as the app has them.
    pub env: Vec<String>,
    /// Secret values to mask in what the task prints.
    pub masks: Vec<String>,
    pub network: String,
    pub volumes: Vec<VolumeMount>,
    pub files: Vec<FileMount>,
    pub limits: Limits,
}

impl Deployer {
    /// What `project`'s containers may use: its own limits, else `[containers]`'.
    pub fn limits_of(&self, project: &Project) -> Limits {
        let c = &self.config.containers;
        Limits {
            memory_mb: project.memory_limit_mb.unwrap_or(c.memory_mb),
            cpu_millis: project.cpu_limit_millis.map_or(c.cpu_millis, i64::from),
            pids: c.pids_limit,
            log_max_size_mb: c.log_max_size_mb,
            log_max_files: c.log_max_files,
        }
    }

    /// The context of `project`'s live deployment; a conflict when nothing is live.
    pub async fn task_context(&self, project: &Project) -> Result<TaskContext, DeployError> {
        let live = db::deployments::live_for_project(&self.db, project.id)
            .await?
            .ok_or_else(|| {
                DeployError::Conflict("the project has no live deployment; deploy it first".into())
            })?;
        let image = live.image.clone().ok_or_else(|| {
            DeployError::Conflict("the live deployment has no image (a static site?)".into())
        })?;
        let opened = env::for_project(&self.db, &self.sealer, project).await?;
        let masks = opened
            .iter()
            .filter(|v| v.secret && v.value.len() >= 4)
            .map(|v| v.value.clone())
            .collect();
        let port = match project.port {
            Some(port) => port as u16,
            None => self.docker.exposed_port(&image).await?.unwrap_or(8080),
        };
        let mut environment: Vec<String> = opened
            .into_iter()
            .filter(|v| v.key != super::GIT_TOKEN_VAR)
            .map(|v| format!("{}={}", v.key, v.value))
            .collect();
        environment.push(format!("PORT={port}"));
        let network = self
            .docker
            .ensure_network(project.id, &self.config.containers.subnets())
            .await?;
        let volumes = db::volumes::for_project(&self.db, project.id)
            .await?
            .into_iter()
            .map(|v| VolumeMount {
                volume: v.docker_name,
                path: v.mount_path,
            })
            .collect();
        let files = match live.files_version {
            Some(version) => self.files_at(project, version).await?,
            None => Vec::new(),
        };
        Ok(TaskContext {
            deployment: live.id,
            image,
            env: environment,
            masks,
            network,
            volumes,
            files,
            limits: self.limits_of(project),
        })
    }

    /// The file mounts of `project` at `version`, as written for the deployment that mounts
    /// them (a file whose copy is gone is left out).
    async fn files_at(
        &self,
        project: &Project,
        version: i32,
    ) -> Result<Vec<FileMount>, DeployError> {
        let dir: PathBuf = self
            .config
            .data_dir
            .join("files")
            .join(project.id.to_string())
            .join(version.to_string());
        Ok(db::files::history(&self.db, project.id)
            .await?
            .into_iter()
            .filter(|f| {
                f.version <= version
                    && f.sha256.is_some()
                    && f.superseded_in.is_none_or(|s| s > version)
            })
            .map(|f| FileMount {
                source: dir.join(&f.path),
                path: format!("/{}", f.path),
            })
            .filter(|m| m.source.is_file())
            .collect())
    }
}
