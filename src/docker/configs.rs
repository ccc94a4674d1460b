//! File mounts under Swarm: each file is a Docker config, which the swarm gives read-only to
//! every replica on every node. A config is named by its content's SHA-256, so the same file
//! is one config however many deployments use it; configs no service uses are removed after
//! each new service (the engine refuses to remove one in use, which is how the live ones stay).

use std::collections::HashMap;

use base64::Engine as _;
use bollard::models::{ConfigSpec, TaskSpecContainerSpecConfigs, TaskSpecContainerSpecFile1};
use bollard::query_parameters::ListConfigsOptionsBuilder;
use sha2::{Digest, Sha256};

use super::{Engine, EngineError, LABEL_INSTANCE, LABEL_MANAGED, is_not_found};

/// The largest config the engine takes (500 KiB on the engines shard supports).
pub const MAX_CONFIG_BYTES: usize = 500 * 1024;

/// A file given to each replica at `path`.
pub struct ServiceFile {
    pub path: String,
    pub content: Vec<u8>,
}

impl Engine {
    /// The configs of `files`, made when missing, as a service references them.
    pub(super) async fn file_configs(
        &self,
        files: &[ServiceFile],
    ) -> Result<Vec<TaskSpecContainerSpecConfigs>, EngineError> {
        let docker = self.client().await?;
        let mut configs = Vec::with_capacity(files.len());
        for file in files {
            let name = format!(
                "shard-file-{}",
                &hex::encode(Sha256::digest(&file.content))[..32]
            );
            let id = match docker.inspect_config(&name).await {
                Ok(found) => found.id,
                Err(e) if is_not_found(&e) => {
                    let spec = ConfigSpec {
                        name: Some(name.clone()),
                        labels: Some(HashMap::from([
                            (LABEL_MANAGED.to_string(), "true".to_string()),
                            (LABEL_INSTANCE.to_string(), self.instance.clone()),
                        ])),
                        data: Some(base64::engine::general_purpose::STANDARD.encode(&file.content)),
                        templating: None,
                    };
                    match docker.create_config(spec).await {
                        Ok(created) => Some(created.id),
                        // Made meanwhile by another deployment: the same content.
                        Err(_) => docker.inspect_config(&name).await?.id,
                    }
                }
                Err(e) => return Err(e.into()),
            };
            configs.push(TaskSpecContainerSpecConfigs {
                file: Some(TaskSpecContainerSpecFile1 {
                    name: Some(file.path.clone()),
                    uid: Some("0".into()),
                    gid: Some("0".into()),
                    mode: Some(0o444),
                }),
                runtime: None,
                config_id: id,
                config_name: Some(name),
            });
        }
        Ok(configs)
    }

    /// Removes this installation's file configs that no service uses; answers how many.
    pub async fn prune_file_configs(&self) -> Result<usize, EngineError> {
        let docker = self.client().await?;
        let filters = self.owned_filter(None);
        let options = ListConfigsOptionsBuilder::default()
            .filters(&filters)
            .build();
        let mut removed = 0;
        for config in docker.list_configs(Some(options)).await? {
            let Some(id) = config.id else { continue };
            // One in use is refused by the engine, and stays.
            if docker.delete_config(&id).await.is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}
