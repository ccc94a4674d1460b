//! Volumes: data a project keeps across deployments. A volume is a named Docker volume
//! (`shard-vol-<id>`, labelled `shard.volume`) that every deployment of its project mounts at
//! its `mount_path`, so a redeploy, rollback or restart finds the data the last one left. During
//! a switch's drain the old and the new container both mount it for up to `deploy.grace_secs`.
//!
//! Nothing that cleans up removes a volume: the sweep and image pruning never look at volumes,
//! removing a project's containers leaves them, and deleting a project *detaches* its volumes
//! (kept, listed for admins, attachable to another project). A detached volume is removed only
//! by an explicit purge, or `retention.detached_volumes_days` after it was detached.
//!
//! Under the Swarm runtime a volume would live on one node; shard does not place services by
//! volume yet, so volumes are refused there, as is a volume for a project of more than one
//! replica (each copy would get a volume of its own on its own machine).

use uuid::Uuid;

use super::pipeline::{Pipeline, Stop, failed};
use super::{DeployError, Deployer};
use crate::db;
use crate::db::projects::Project;
use crate::db::volumes::{AddError, Volume};
use crate::docker::{RemoveVolumeError, VolumeMount};

/// Volumes one project may have.
pub const MAX_PER_PROJECT: usize = 10;

impl Deployer {
    /// Whether `project` may have volumes here, and why not.
    /// (Under Swarm a volume lives on this machine's node and the service is pinned there.)
    pub fn volumes_allowed(&self, replicas: i32) -> Result<(), DeployError> {
        if replicas > 1 {
            return Err(DeployError::Conflict(format!(
                "a project with a volume runs one replica (a volume is local to one machine); \
                 it has {replicas}"
            )));
        }
        Ok(())
    }

    /// Adds volume `name` at `mount_path` to `project` and creates it in the engine; the next
    /// deployment mounts it.
    pub async fn add_volume(
        &self,
        project: &Project,
        name: &str,
        mount_path: &str,
    ) -> Result<Volume, DeployError> {
        self.volumes_allowed(project.replicas)?;
        let existing = db::volumes::for_project(&self.db, project.id).await?;
        if existing.len() >= MAX_PER_PROJECT {
            return Err(DeployError::Conflict(format!(
                "a project has at most {MAX_PER_PROJECT} volumes"
            )));
        }
        if let Some(other) = existing.iter().find(|v| v.mount_path == mount_path) {
            return Err(DeployError::Invalid {
                field: "mount_path",
                message: format!("volume '{}' is mounted there already", other.name),
            });
        }
        let id = Uuid::now_v7();
        let volume = match db::volumes::add(&self.db, id, project, name, mount_path).await {
            Ok(volume) => volume,
            Err(AddError::Taken) => {
                return Err(DeployError::Conflict(format!(
                    "the project already has a volume named '{name}'"
                )));
            }
            Err(AddError::Db(e)) => return Err(e.into()),
        };
        if let Err(e) = self.docker.create_volume(&volume.docker_name, id).await {
            db::volumes::forget(&self.db, id).await?;
            return Err(e.into());
        }
        Ok(volume)
    }

    /// Detaches `volume` from its project (the data stays; the running app keeps it mounted
    /// until its next deployment).
    pub async fn detach_volume(&self, volume: Volume) -> Result<Volume, DeployError> {
        Ok(db::volumes::detach(&self.db, volume).await?)
    }

    /// Attaches a detached volume to `project`.
    pub async fn attach_volume(
        &self,
        volume: Volume,
        project: &Project,
    ) -> Result<Volume, DeployError> {
        if volume.project_id.is_some() {
            return Err(DeployError::Conflict(
                "the volume is attached to a project; detach it first".into(),
            ));
        }
        self.volumes_allowed(project.replicas)?;
        let mounted = db::volumes::for_project(&self.db, project.id).await?;
        if mounted.iter().any(|v| v.mount_path == volume.mount_path) {
            return Err(DeployError::Conflict(format!(
                "the project mounts another volume at {}",
                volume.mount_path
            )));
        }
        match db::volumes::attach(&self.db, volume, project).await {
            Ok(volume) => Ok(volume),
            Err(AddError::Taken) => Err(DeployError::Conflict(
                "the project already has a volume of that name".into(),
            )),
            Err(AddError::Db(e)) => Err(e.into()),
        }
    }

    /// Removes a volume and its data, for good; refused (nothing changed) while a container,
    /// running or stopped, still mounts it.
    pub async fn purge_volume(&self, volume: &Volume) -> Result<(), DeployError> {
        match self.docker.remove_volume(&volume.docker_name).await {
            Ok(()) => {}
            Err(RemoveVolumeError::InUse) => {
                return Err(DeployError::Conflict(
                    "a container of the app still mounts the volume; detach it and purge it \
                     once a deployment without it has replaced that container"
                        .into(),
                ));
            }
            Err(RemoveVolumeError::Engine(e)) => return Err(e.into()),
        }
        db::volumes::forget(&self.db, volume.id).await?;
        Ok(())
    }

    /// Purges volumes detached longer than `retention.detached_volumes_days`; answers how
    /// many went (one still in use stays for the next round).
    pub async fn expire_detached_volumes(&self) -> Result<usize, DeployError> {
        let days = i64::from(self.config.retention.detached_volumes_days);
        let before = chrono::Utc::now() - chrono::Duration::days(days);
        let mut purged = 0;
        for volume in db::volumes::detached_before(&self.db, before).await? {
            match self.purge_volume(&volume).await {
                Ok(()) => purged += 1,
                Err(e) => {
                    tracing::warn!(volume = %volume.id, error = %e, "an expired volume stays")
                }
            }
        }
        Ok(purged)
    }
}

impl Pipeline {
    /// The project's volumes, each made sure of in the engine (created again, empty, if the
    /// engine lost it).
    pub(super) async fn volume_mounts(&mut self) -> Result<Vec<VolumeMount>, Stop> {
        let volumes = db::volumes::for_project(&self.d.db, self.project.id).await?;
        let mut mounts = Vec::new();
        for v in volumes {
            self.d
                .docker
                .create_volume(&v.docker_name, v.id)
                .await
                .map_err(|e| failed("start", format!("volume '{}': {e}", v.name)))?;
            self.log
                .system(format!("==> Volume {} at {}", v.name, v.mount_path))
                .await;
            mounts.push(VolumeMount {
                volume: v.docker_name,
                path: v.mount_path,
            });
        }
        Ok(mounts)
    }
}
