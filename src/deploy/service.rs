//! A deployment that runs as a Swarm service: the pipeline's push of the image to the
//! registry every node pulls from, and the Swarm runtime's start (a service with the project's
//! replicas and placement) and health gate (every replica running and answering).

use std::time::{Duration, Instant};

use super::pipeline::{Pipeline, Stop, failed};
use super::runtime::{AppSpec, Failure, Gate, GateError, Started};
use super::swarm::Swarm;
use crate::docker::ServiceRun;
use crate::docker::configs::{MAX_CONFIG_BYTES, ServiceFile};
use crate::proxy::SWARM_UPSTREAM;

impl Pipeline {
    /// Pushes the built image to the registry every node pulls from.
    pub(super) async fn push_image(&mut self, image: &str) -> Result<(), Stop> {
        self.log.system(format!("==> Pushing {image}")).await;
        let auth = self.registry_auth().await?;
        let mut lines = Vec::new();
        let pushed = self
            .d
            .docker
            .push_image(image, auth, |line| lines.push(line))
            .await;
        for line in lines.drain(..) {
            self.log.stdout(line).await;
        }
        pushed.map_err(|e| {
            failed(
                "push",
                format!(
                    "cannot push to the registry: {e} (registry.url; does this engine trust its certificate? does the registry want credentials?)"
                ),
            )
        })
    }

    /// The registry credentials an admin set, if any.
    pub(super) async fn registry_auth(&self) -> Result<Option<crate::docker::RegistryAuth>, Stop> {
        let server = self.d.config.image_registry();
        Ok(super::registry::auth_for(&self.d.db, &self.d.sealer, server).await?)
    }
}

impl Swarm {
    /// Creates the deployment's service.
    pub(super) async fn start_service(&self, app: AppSpec) -> Result<Started, Failure> {
        let replicas = app.replicas.max(1);
        let placed = if app.placement.is_empty() {
            String::new()
        } else {
            let labels: Vec<String> = app
                .placement
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!(" on nodes labelled {}", labels.join(", "))
        };
        let port = app.port;
        // Volumes live on this machine's engine (shard makes them here): the service runs
        // where they are.
        let node = if app.volumes.is_empty() {
            None
        } else {
            let info = self.engine.swarm_info().await.map_err(|e| Failure {
                message: e.to_string(),
                output: Vec::new(),
                started: None,
            })?;
            Some(info.node_id.ok_or_else(|| Failure {
                message: "this machine is not a swarm node, so its volumes cannot be pinned".into(),
                output: Vec::new(),
                started: None,
            })?)
        };
        let pinned = match &node {
            Some(node) => format!(
                ", pinned to node {} where its volumes are",
                &node[..node.len().min(12)]
            ),
            None => String::new(),
        };
        // File mounts travel as Docker configs: every node gets them.
        let mut files = Vec::with_capacity(app.files.len());
        for mount in &app.files {
            let refuse = |message: String| Failure {
                message,
                output: Vec::new(),
                started: None,
            };
            let content = tokio::fs::read(&mount.source)
                .await
                .map_err(|e| refuse(format!("cannot read the file for {}: {e}", mount.path)))?;
            if content.len() > MAX_CONFIG_BYTES {
                return Err(refuse(format!(
                    "{} is {} KiB; under Swarm a file mount is a Docker config, at most {} KiB",
                    mount.path,
                    content.len() / 1024,
                    MAX_CONFIG_BYTES / 1024
                )));
            }
            files.push(ServiceFile {
                path: mount.path.clone(),
                content,
            });
        }
        let run = ServiceRun {
            name: format!(
                "shard-{}-{}",
                app.slug,
                &app.deployment.simple().to_string()[..12]
            ),
            image: app.image,
            env: app.env,
            labels: self.engine.labels(app.project, app.deployment),
            port,
            replicas,
            placement: app.placement,
            limits: app.limits,
            volumes: app.volumes,
            node,
            files,
        };
        let id = self
            .engine
            .create_service(run, app.registry)
            .await
            .map_err(|e| Failure {
                message: e.to_string(),
                output: Vec::new(),
                started: None,
            })?;
        // Configs of services that are gone (the engine keeps those in use).
        if let Err(e) = self.engine.prune_file_configs().await {
            tracing::warn!(error = %e, "unused file configs not removed this time");
        }
        Ok(Started {
            note: format!(
                "==> Service {} with {replicas} replica(s){placed}{pinned}, app port {port}",
                &id[..id.len().min(12)]
            ),
            container: None,
            service: Some(id),
            upstream: SWARM_UPSTREAM.into(),
        })
    }

    /// The health gate for a service: every replica must be running and answer
    /// `GET <path>` with 2xx/3xx within the timeout. A replica that fails ends the deploy at
    /// once; one the swarm cannot place is reported at the timeout.
    pub(super) async fn gate_service(
        &self,
        service: &str,
        gate: &Gate,
    ) -> Result<Vec<String>, GateError> {
        let fail = |message: String| {
            GateError::Failed(Failure {
                message,
                output: Vec::new(),
                started: None,
            })
        };
        let deadline = Instant::now() + gate.timeout;
        let mut problem = String::from("no replica is running yet");
        loop {
            if gate.cancel.is_cancelled() {
                return Err(GateError::Cancelled);
            }
            let replicas = self.engine.replicas(Some(service)).await;
            let nodes = self.engine.nodes().await;
            if let (Ok(replicas), Ok(nodes)) = (replicas, nodes) {
                if let Some(dead) = replicas
                    .iter()
                    .find(|r| matches!(r.state.as_str(), "failed" | "rejected"))
                {
                    let node = nodes.iter().find(|n| n.id == dead.node_id);
                    return Err(fail(format!(
                        "a replica {} on {} before it became healthy: {}",
                        dead.state,
                        node.map_or("a node", |n| n.hostname.as_str()),
                        dead.message.as_deref().unwrap_or("no reason given")
                    )));
                }
                let endpoints = super::swarm::endpoints(&nodes, &replicas)
                    .remove(&gate.deployment)
                    .unwrap_or_default();
                if endpoints.len() >= gate.wanted {
                    match check_all(gate, &endpoints).await {
                        Ok(()) => return Ok(endpoints),
                        Err(why) => problem = why,
                    }
                } else {
                    problem = match replicas.iter().find_map(|r| r.message.clone()) {
                        Some(message) if endpoints.is_empty() => {
                            format!("no replica is running ({message})")
                        }
                        _ => format!("{} of {} replica(s) running", endpoints.len(), gate.wanted),
                    };
                }
            }
            if Instant::now() >= deadline {
                return Err(fail(format!(
                    "the replicas were not all healthy within {} s: {problem}",
                    gate.timeout.as_secs()
                )));
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = gate.cancel.cancelled() => return Err(GateError::Cancelled),
            }
        }
    }
}

async fn check_all(gate: &Gate, endpoints: &[String]) -> Result<(), String> {
    for endpoint in endpoints {
        let url = format!("http://{endpoint}{}", gate.path);
        let request = gate.http.get(&url).timeout(Duration::from_secs(2));
        match request.send().await {
            Ok(r) if r.status().is_success() || r.status().is_redirection() => {}
            Ok(r) => return Err(format!("{endpoint} answered {}", r.status())),
            Err(_) => return Err(format!("{endpoint} did not answer")),
        }
    }
    Ok(())
}
