//! A volume's files as a tar stream, in and out, through the engine's archive API: a
//! container that mounts the volume is created but never started (from `shard/empty`, an
//! image with no files that shard imports itself; nothing is pulled), its path is read or
//! written, and the container is removed. It carries the throwaway label, so the sweep never
//! takes it and the next start removes one a crash left.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, DownloadFromContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};

use super::databases::{LABEL_RUNNER, LABEL_THROWAWAY};
use super::{Engine, EngineError, LABEL_INSTANCE, LABEL_MANAGED};

/// The image of archive containers: no files at all.
const EMPTY_IMAGE: &str = "shard/empty:1";
/// Where the volume is mounted in them; a tar read from it has entries under `volume/`.
const MOUNT: &str = "/volume";

impl Engine {
    /// Imports `shard/empty:1` (an empty tar) when it is missing.
    async fn ensure_empty_image(&self) -> Result<(), EngineError> {
        let docker = self.client().await?;
        if docker.inspect_image(EMPTY_IMAGE).await.is_ok() {
            return Ok(());
        }
        let options = CreateImageOptionsBuilder::default()
            .from_src("-")
            .repo("shard/empty")
            .tag("1")
            .build();
        let empty = Bytes::from(vec![0u8; 1024]);
        let mut progress =
            docker.create_image(Some(options), Some(bollard::body_full(empty)), None);
        while let Some(step) = progress.next().await {
            step?;
        }
        Ok(())
    }

    /// Creates (never starts) container `name` of `runner` with volume `volume` at `/volume`.
    async fn archive_container(
        &self,
        name: &str,
        runner: &str,
        volume: &str,
        read_only: bool,
    ) -> Result<String, EngineError> {
        self.ensure_empty_image().await?;
        let docker = self.client().await?;
        self.remove_named(name).await?;
        let labels = HashMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_INSTANCE.to_string(), self.instance.clone()),
            (LABEL_THROWAWAY.to_string(), "true".to_string()),
            (LABEL_RUNNER.to_string(), runner.to_string()),
        ]);
        let body = ContainerCreateBody {
            image: Some(EMPTY_IMAGE.into()),
            cmd: Some(vec!["none".into()]),
            labels: Some(labels),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                mounts: Some(vec![Mount {
                    target: Some(MOUNT.into()),
                    source: Some(volume.into()),
                    typ: Some(MountType::VOLUME),
                    read_only: Some(read_only),
                    ..Default::default()
                }]),
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        Ok(docker.create_container(Some(options), body).await?.id)
    }

    /// Volume `volume`'s files as a tar stream (entries under `volume/`), read through
    /// container `name`, which the caller removes ([`Engine::remove_named`]) when done.
    pub async fn read_volume(
        &self,
        name: &str,
        runner: &str,
        volume: &str,
    ) -> Result<impl Stream<Item = Result<Bytes, EngineError>> + use<>, EngineError> {
        let id = self.archive_container(name, runner, volume, true).await?;
        let docker = self.client().await?.clone();
        let options = DownloadFromContainerOptionsBuilder::default()
            .path(MOUNT)
            .build();
        Ok(docker
            .download_from_container(&id, Some(options))
            .map_err(EngineError::from))
    }

    /// Unpacks `tar` (entries under `volume/`) into volume `volume` through container `name`,
    /// removed after.
    pub async fn write_volume(
        &self,
        name: &str,
        runner: &str,
        volume: &str,
        tar: impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    ) -> Result<(), EngineError> {
        let id = self.archive_container(name, runner, volume, false).await?;
        let options = UploadToContainerOptionsBuilder::default().path("/").build();
        let result = self
            .client()
            .await?
            .upload_to_container(&id, Some(options), bollard::body_try_stream(tar))
            .await;
        self.remove_named(name).await?;
        Ok(result?)
    }
}
