//! Per-project bridge networks, with subnets from shard's own pool (Docker's default pools
//! hold only about 30 networks).

use uuid::Uuid;

use super::{Engine, EngineError, LABEL_DEPLOYMENT, is_not_found};
use crate::config::SubnetPool;

impl Engine {
    /// Creates (if missing) the project's own bridge network, so apps of different projects
    /// cannot reach each other's containers. Returns its name. Its subnet is a block of
    /// `subnets` (Docker's default pools hold only about 30 networks); a block another network
    /// already uses is skipped.
    pub async fn ensure_network(
        &self,
        project: Uuid,
        subnets: &SubnetPool,
    ) -> Result<String, EngineError> {
        let name = format!("shard-{}", project.simple());
        let mut labels = self.labels(project, Uuid::nil());
        labels.remove(LABEL_DEPLOYMENT);
        self.ensure_bridge(&name, labels, project, subnets).await?;
        Ok(name)
    }

    /// Creates bridge network `name` (with `labels`) unless it exists, on a subnet of
    /// `subnets` chosen from `seed` (the next free one when that is taken).
    pub(super) async fn ensure_bridge(
        &self,
        name: &str,
        labels: std::collections::HashMap<String, String>,
        seed: Uuid,
        subnets: &SubnetPool,
    ) -> Result<(), EngineError> {
        let docker = self.client().await?;
        let name = name.to_string();
        match docker
            .inspect_network(
                &name,
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
        let blocks = subnets.blocks();
        let start = (seed.as_u128() % u128::from(blocks)) as u32;
        let mut last_error = None;
        for attempt in 0..blocks.min(256) {
            let subnet = subnets.block((start + attempt) % blocks);
            let request = bollard::models::NetworkCreateRequest {
                name: name.clone(),
                driver: Some("bridge".into()),
                labels: Some(labels.clone()),
                ipam: Some(bollard::models::Ipam {
                    driver: Some("default".into()),
                    config: Some(vec![bollard::models::IpamConfig {
                        subnet: Some(subnet),
                        ..Default::default()
                    }]),
                    options: None,
                }),
                ..Default::default()
            };
            match docker.create_network(request).await {
                Ok(_) => return Ok(()),
                // Created meanwhile by a concurrent deploy of the same project.
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 409, ..
                }) => return Ok(()),
                Err(bollard::errors::Error::DockerResponseServerError { message, .. })
                    if message.contains("overlap") =>
                {
                    last_error = Some(message);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(EngineError::Unreachable {
            endpoint: self.endpoint.clone(),
            reason: format!(
                "no free subnet for network {name} in {subnets} ({})",
                last_error.unwrap_or_default()
            ),
        })
    }
}
