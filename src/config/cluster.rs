//! The `[runtime]` section (what runs apps: plain Docker containers, or Docker Swarm services
//! across nodes) and the `[registry]` section (where Swarm images travel between nodes).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Config, ConfigError};

/// What runs apps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// One container per deployment on this machine's engine, published on 127.0.0.1.
    #[default]
    Docker,
    /// One Swarm service per deployment, its replicas spread over the swarm's nodes.
    Swarm,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    pub kind: RuntimeKind,
    /// Milliseconds between two reads of the swarm's tasks and nodes (the proxy's replica list).
    pub poll_ms: u64,
    /// The address of this machine's own node as other nodes reach it, for the join command;
    /// default: the swarm's advertised manager address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise_addr: Option<String>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            kind: RuntimeKind::Docker,
            poll_ms: 1000,
            advertise_addr: None,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// `host[:port]` of the registry Swarm images are pushed to and nodes pull from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A PEM CA certificate the registry's TLS certificate chains to (shard checks the
    /// registry with it; each engine trusts it through `/etc/docker/certs.d/<url>/ca.crt`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

impl Config {
    /// The checks of `[runtime]` and `[registry]` (part of `Config::validate`).
    pub(super) fn check_cluster(&self) -> Result<(), ConfigError> {
        if !(100..=60_000).contains(&self.runtime.poll_ms) {
            return Err(ConfigError(
                "runtime.poll_ms: must be between 100 and 60000".into(),
            ));
        }
        if let Some(url) = &self.registry.url {
            let ok = !url.is_empty()
                && url.len() <= 255
                && !url.contains("://")
                && url.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'/' | b'_')
                });
            if !ok {
                return Err(ConfigError(
                    "registry.url: must be host[:port][/path] without a scheme, e.g. registry.example.com:5000".into(),
                ));
            }
        }
        if let Some(file) = &self.registry.ca_file
            && !file.is_file()
        {
            return Err(ConfigError(format!(
                "registry.ca_file: {} is not a readable file",
                file.display()
            )));
        }
        Ok(())
    }

    /// The registry prefix of Swarm images (`None`: images stay on the building node).
    pub fn image_registry(&self) -> Option<&str> {
        match self.runtime.kind {
            RuntimeKind::Swarm => self
                .registry
                .url
                .as_deref()
                .map(|u| u.trim_end_matches('/')),
            RuntimeKind::Docker => None,
        }
    }
}
