//! Images: build from a tarred context (output streamed as bounded lines), inspect, list and
//! remove this installation's images.

use std::collections::HashMap;

use bollard::query_parameters::{ListImagesOptionsBuilder, RemoveImageOptionsBuilder};
use uuid::Uuid;

use super::{Engine, EngineError, LABEL_DEPLOYMENT, LineSplitter, is_not_found};

/// What `Engine::build_image` needs.
pub struct BuildSpec {
    pub tag: String,
    /// Path of the Dockerfile inside the context.
    pub dockerfile: String,
    /// The tar from `context::tar_context`.
    pub context: Vec<u8>,
    pub build_args: HashMap<String, String>,
    pub labels: HashMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Dockerfile failed; `step` is the last `Step N/M : ...` line seen.
    #[error("{message}")]
    Failed {
        message: String,
        step: Option<String>,
    },
    #[error("build cancelled")]
    Cancelled,
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// An image built by this installation (it carries the build's labels).
#[derive(Debug, Clone)]
pub struct ManagedImage {
    pub id: String,
    pub tags: Vec<String>,
    pub deployment: Option<Uuid>,
}

impl Engine {
    /// Builds `spec`, sending every output line as it arrives. Dropping the stream on cancel
    /// closes the connection, which stops the build in dockerd.
    /// Output lines go to `lines` (a bounded channel: a slow reader slows the build stream,
    /// never grows memory); lines longer than `max_line` bytes are cut.
    pub async fn build_image(
        &self,
        spec: BuildSpec,
        cancel: &tokio_util::sync::CancellationToken,
        max_line: usize,
        lines: tokio::sync::mpsc::Sender<String>,
    ) -> Result<(), BuildError> {
        use futures_util::StreamExt;
        let _building = self.layers.read().await;
        let docker = self.client().await?;
        let options = bollard::query_parameters::BuildImageOptionsBuilder::default()
            .dockerfile(&spec.dockerfile)
            .t(&spec.tag)
            .rm(true)
            .forcerm(true)
            .buildargs(&spec.build_args)
            .labels(&spec.labels)
            .build();
        let mut stream = docker.build_image(
            options,
            None,
            Some(bollard::body_full(bytes::Bytes::from(spec.context))),
        );
        let mut splitter = LineSplitter::new(max_line);
        let mut step = None;
        let mut ready = Vec::new();
        loop {
            let item = tokio::select! {
                item = stream.next() => item,
                _ = cancel.cancelled() => return Err(BuildError::Cancelled),
            };
            let Some(item) = item else { break };
            let info = match item {
                Ok(info) => info,
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    return Err(BuildError::Failed {
                        message: error,
                        step,
                    });
                }
                Err(e) => return Err(BuildError::Engine(e.into())),
            };
            if let Some(text) = info.stream {
                splitter.push(&text, |line| ready.push(line));
            }
            if let Some(status) = info.status {
                splitter.push(&status, |line| ready.push(line));
                splitter.finish(|line| ready.push(line));
            }
            for line in ready.drain(..) {
                if line.starts_with("Step ") {
                    step = Some(line.clone());
                }
                tokio::select! {
                    sent = lines.send(line) => if sent.is_err() { return Err(BuildError::Cancelled) },
                    _ = cancel.cancelled() => return Err(BuildError::Cancelled),
                }
            }
            if let Some(detail) = info.error_detail {
                let mut message = detail.message.unwrap_or_else(|| "build failed".into());
                cap_text(&mut message, max_line);
                return Err(BuildError::Failed { message, step });
            }
        }
        splitter.finish(|line| ready.push(line));
        for line in ready {
            let _ = lines.send(line).await;
        }
        Ok(())
    }

    /// The single port the image EXPOSEs, if it exposes exactly one TCP port.
    pub async fn exposed_port(&self, image: &str) -> Result<Option<u16>, EngineError> {
        let inspect = self.client().await?.inspect_image(image).await?;
        let ports: Vec<u16> = inspect
            .config
            .and_then(|c| c.exposed_ports)
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p.strip_suffix("/tcp").and_then(|n| n.parse().ok()))
            .collect();
        Ok(if ports.len() == 1 {
            Some(ports[0])
        } else {
            None
        })
    }

    /// Removes an image by tag or id; a missing one is fine.
    pub async fn remove_image(&self, image: &str) -> Result<(), EngineError> {
        // Waits for running builds, but not forever: a long build must not hold up a
        // project's deletion for its whole duration.
        let _no_build_running =
            tokio::time::timeout(std::time::Duration::from_secs(30), self.layers.write())
                .await
                .ok();
        let docker = self.client().await?;
        let options = RemoveImageOptionsBuilder::default().force(true).build();
        match docker.remove_image(image, Some(options), None).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Untagged intermediate images of builds that were cut off (they carry only the labels
    /// the build had applied so far, at least `shard.deployment`).
    pub async fn dangling_build_images(&self) -> Result<Vec<ManagedImage>, EngineError> {
        let filters = HashMap::from([
            ("dangling".to_string(), vec!["true".to_string()]),
            ("label".to_string(), vec![LABEL_DEPLOYMENT.to_string()]),
        ]);
        self.images_matching(&filters).await
    }

    /// Every image this installation built.
    pub async fn managed_images(&self) -> Result<Vec<ManagedImage>, EngineError> {
        self.images_matching(&self.owned_filter(None)).await
    }

    /// Images matching `filters`, with the deployment label read off.
    pub(super) async fn images_matching(
        &self,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<ManagedImage>, EngineError> {
        let images = self
            .client()
            .await?
            .list_images(Some(
                ListImagesOptionsBuilder::default().filters(filters).build(),
            ))
            .await?;
        Ok(images
            .into_iter()
            .map(|i| ManagedImage {
                deployment: i
                    .labels
                    .get(LABEL_DEPLOYMENT)
                    .and_then(|v| Uuid::parse_str(v).ok()),
                tags: i.repo_tags,
                id: i.id,
            })
            .collect())
    }
}

/// Cuts `text` to at most `max` bytes (on a character boundary) with a marker.
pub fn cap_text(text: &mut String, max: usize) {
    if text.len() > max {
        let mut at = max;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
        text.push_str(" [cut]");
    }
}
