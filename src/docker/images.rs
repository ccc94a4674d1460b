//! Images: inspect, list and remove this installation's images (builds are in `build`).

use std::collections::HashMap;

use bollard::query_parameters::{ListImagesOptionsBuilder, RemoveImageOptionsBuilder};
use uuid::Uuid;

use super::{Engine, EngineError, LABEL_DEPLOYMENT, is_not_found};

/// An image built by this installation (it carries the build's labels).
#[derive(Debug, Clone)]
pub struct ManagedImage {
    pub id: String,
    pub tags: Vec<String>,
    pub deployment: Option<Uuid>,
}

impl Engine {
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

    /// Whether the engine has `image` (by tag or id).
    pub async fn has_image(&self, image: &str) -> Result<bool, EngineError> {
        match self.client().await?.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The value of label `key` on `image`, if it has it.
    pub async fn image_label(&self, image: &str, key: &str) -> Result<Option<String>, EngineError> {
        let inspect = self.client().await?.inspect_image(image).await?;
        Ok(inspect
            .config
            .and_then(|c| c.labels)
            .and_then(|mut labels| labels.remove(key)))
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
