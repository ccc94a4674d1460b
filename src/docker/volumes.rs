//! Named volumes: created with shard's labels (`shard.managed`, `shard.instance`,
//! `shard.volume`), mounted into app containers, and removed only when asked by name (a purge);
//! no sweep or prune here touches them.

use std::collections::HashMap;

use bollard::models::{Mount, MountType, VolumeCreateRequest};

use super::{Engine, EngineError, LABEL_INSTANCE, LABEL_MANAGED, is_not_found};

/// The label naming the volume's id in shard.
pub const LABEL_VOLUME: &str = "shard.volume";

/// A volume mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    /// The engine's volume name.
    pub volume: String,
    /// The absolute path in the container.
    pub path: String,
}

impl VolumeMount {
    pub(super) fn mount(&self) -> Mount {
        Mount {
            target: Some(self.path.clone()),
            source: Some(self.volume.clone()),
            typ: Some(MountType::VOLUME),
            read_only: Some(false),
            ..Default::default()
        }
    }
}

/// A file from the data directory, bind-mounted read-only at its path (a file mount).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMount {
    /// The file on this host (the engine must see the same path: shard in a container mounts
    /// its data directory at the same path on both sides).
    pub source: std::path::PathBuf,
    /// The absolute path in the container.
    pub path: String,
}

impl FileMount {
    pub(super) fn mount(&self) -> Mount {
        Mount {
            target: Some(self.path.clone()),
            source: Some(self.source.to_string_lossy().into_owned()),
            typ: Some(MountType::BIND),
            read_only: Some(true),
            ..Default::default()
        }
    }
}

/// Why a volume could not be removed.
#[derive(Debug, thiserror::Error)]
pub enum RemoveVolumeError {
    #[error("the volume is in use by a container; stop the app first")]
    InUse,
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl Engine {
    /// Creates volume `name` (labelled with shard's id `id`); an existing one is kept as it is.
    pub async fn create_volume(&self, name: &str, id: uuid::Uuid) -> Result<(), EngineError> {
        let labels = HashMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_INSTANCE.to_string(), self.instance.clone()),
            (LABEL_VOLUME.to_string(), id.to_string()),
        ]);
        self.client()
            .await?
            .create_volume(VolumeCreateRequest {
                name: Some(name.to_string()),
                driver: Some("local".into()),
                labels: Some(labels),
                ..Default::default()
            })
            .await?;
        Ok(())
    }

    /// Removes volume `name` and its data; a missing one is fine.
    pub async fn remove_volume(&self, name: &str) -> Result<(), RemoveVolumeError> {
        match self
            .client()
            .await?
            .remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Err(RemoveVolumeError::InUse),
            Err(e) => Err(EngineError::from(e).into()),
        }
    }

    /// Where the engine keeps volume `name`'s files, when it is on this host's filesystem.
    pub async fn volume_dir(&self, name: &str) -> Result<Option<std::path::PathBuf>, EngineError> {
        match self.client().await?.inspect_volume(name).await {
            Ok(volume) => {
                Ok(Some(std::path::PathBuf::from(volume.mountpoint))
                    .filter(|dir| dir.is_absolute()))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
