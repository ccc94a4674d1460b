//! The Swarm nodes apps run on, as the Nodes page and `/nodes` see them: the list with the
//! shard replicas on each, a node's labels and availability, and the command that joins a new
//! one. Read from and changed through the engine of this instance (a Swarm manager).

use std::collections::HashMap;

use super::Engines;
pub use crate::docker::{NodeChange, NodeInfo};

/// Why the nodes cannot be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum NodesError {
    /// This instance's engine is not a Swarm manager, so there are no nodes.
    #[error("shard's Docker engine is not a Swarm manager")]
    NotASwarm,
    #[error("node not found")]
    NotFound,
    /// The engine did not answer.
    #[error("{0}")]
    Unavailable(String),
}

fn unavailable(e: crate::docker::EngineError) -> NodesError {
    NodesError::Unavailable(e.to_string())
}

/// How a new machine joins: whether this engine manages a swarm, and the join command.
pub struct Join {
    pub managing: bool,
    pub command: Option<String>,
}

impl Engines {
    async fn manager(&self) -> Result<(), NodesError> {
        let swarm = self.docker.swarm_info().await.map_err(unavailable)?;
        if swarm.active && swarm.manager {
            Ok(())
        } else {
            Err(NodesError::NotASwarm)
        }
    }

    /// Every node with the number of shard app replicas running on it.
    pub async fn nodes(&self) -> Result<Vec<(NodeInfo, usize)>, NodesError> {
        self.manager().await?;
        let nodes = self.docker.nodes().await.map_err(unavailable)?;
        let mut per_node: HashMap<String, usize> = HashMap::new();
        for replica in self.docker.replicas(None).await.map_err(unavailable)? {
            if replica.is_running() {
                *per_node.entry(replica.node_id).or_default() += 1;
            }
        }
        Ok(nodes
            .into_iter()
            .map(|node| {
                let replicas = per_node.get(&node.id).copied().unwrap_or(0);
                (node, replicas)
            })
            .collect())
    }

    /// Changes a node's labels or availability (already validated by the caller).
    pub async fn update_node(&self, id: &str, change: NodeChange) -> Result<(), NodesError> {
        self.manager().await?;
        match self.docker.update_node(id, change).await {
            Ok(Some(())) => Ok(()),
            Ok(None) => Err(NodesError::NotFound),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// The `docker swarm join` command for a worker, addressed at `advertise_host` when set
    /// (else at the address the manager listens on).
    pub async fn join(&self, advertise_host: Option<&str>) -> Join {
        let swarm = self.docker.swarm_info().await.ok();
        let managing = swarm.as_ref().is_some_and(|s| s.active && s.manager);
        let command = match (managing, swarm.and_then(|s| s.manager_addr)) {
            (true, Some(addr)) => {
                let addr = match advertise_host {
                    Some(host) => {
                        format!("{host}:{}", addr.rsplit_once(':').map_or("2377", |p| p.1))
                    }
                    None => addr,
                };
                self.docker
                    .worker_join_token()
                    .await
                    .ok()
                    .flatten()
                    .map(|token| format!("docker swarm join --token {token} {addr}"))
            }
            _ => None,
        };
        Join { managing, command }
    }
}
