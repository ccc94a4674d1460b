//! The pipeline's steps for a deployment that runs as a Swarm service: push the image to the
//! registry every node pulls from, create the service with the project's replicas and
//! placement, and the health gate that waits for every replica to run and answer.

use std::time::{Duration, Instant};

use super::DeploymentStatus as S;
use super::pipeline::{Pipeline, Stop, failed};
use crate::db::deployments::Fields;
use crate::docker::ServiceRun;
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
    async fn registry_auth(&self) -> Result<Option<crate::docker::RegistryAuth>, Stop> {
        let server = self.d.config.image_registry();
        Ok(super::registry::auth_for(&self.d.db, &self.d.sealer, server).await?)
    }

    /// Creates the deployment's service and moves it to health checking.
    pub(super) async fn start_service(&mut self, image: &str) -> Result<(), Stop> {
        self.log
            .system("==> Starting the service".to_string())
            .await;
        let engine = self.d.docker.clone();
        let (port, env) = self.app_env(image).await?;
        let placement = crate::db::projects::placement_of(&self.project);
        let replicas = self.project.replicas.max(1) as u32;
        let run = ServiceRun {
            name: format!(
                "shard-{}-{}",
                self.project.slug,
                &self.deployment.id.simple().to_string()[..12]
            ),
            image: image.to_string(),
            env,
            labels: engine.labels(self.project.id, self.deployment.id),
            port,
            replicas,
            placement: placement.clone(),
            limits: self.limits(),
        };
        let id = engine
            .create_service(run, self.registry_auth().await?)
            .await
            .map_err(|e| failed("start", e.to_string()))?;
        self.service = Some(id.clone());
        let placed = if placement.is_empty() {
            String::new()
        } else {
            let labels: Vec<String> = placement.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!(" on nodes labelled {}", labels.join(", "))
        };
        self.log
            .system(format!(
                "==> Service {} with {replicas} replica(s){placed}, app port {port}",
                &id[..id.len().min(12)]
            ))
            .await;
        let fields = Fields {
            service_id: Some(id),
            upstream: Some(SWARM_UPSTREAM.into()),
            ..Fields::default()
        };
        self.advance(&[S::Starting], S::HealthChecking, fields)
            .await?;
        self.deployment.upstream = Some(SWARM_UPSTREAM.into());
        Ok(())
    }

    /// The health gate for a service: every replica must be running and answer
    /// `GET <health_path>` with 2xx/3xx within the project's timeout. A replica that fails
    /// ends the deploy at once; one the swarm cannot place is reported at the timeout.
    pub(super) async fn health_check_service(&mut self) -> Result<(), Stop> {
        let service = self.service.clone().unwrap_or_default();
        let wanted = self.project.replicas.max(1) as usize;
        let path = self.project.health_path.clone();
        let timeout = Duration::from_secs(self.project.health_timeout_secs.max(1) as u64);
        self.log
            .system(format!(
                "==> Health check GET {path} on {wanted} replica(s) (up to {} s)",
                timeout.as_secs()
            ))
            .await;
        let deadline = Instant::now() + timeout;
        let mut problem = String::from("no replica is running yet");
        loop {
            if self.cancel.is_cancelled() {
                return Err(Stop::Cancelled);
            }
            let replicas = self.d.docker.replicas(Some(&service)).await;
            let nodes = self.d.docker.nodes().await;
            if let (Ok(replicas), Ok(nodes)) = (replicas, nodes) {
                if let Some(dead) = replicas
                    .iter()
                    .find(|r| matches!(r.state.as_str(), "failed" | "rejected"))
                {
                    let node = nodes.iter().find(|n| n.id == dead.node_id);
                    let what = format!(
                        "a replica {} on {} before it became healthy: {}",
                        dead.state,
                        node.map_or("a node", |n| n.hostname.as_str()),
                        dead.message.as_deref().unwrap_or("no reason given")
                    );
                    return Err(failed("health_check", what));
                }
                let endpoints = super::swarm::endpoints(&nodes, &replicas)
                    .remove(&self.deployment.id)
                    .unwrap_or_default();
                if endpoints.len() >= wanted {
                    match self.check_all(&endpoints, &path).await {
                        Ok(()) => {
                            self.log
                                .system(format!("==> Healthy: {}", endpoints.join(", ")))
                                .await;
                            self.d
                                .proxy
                                .set_deployment_replicas(self.deployment.id, endpoints);
                            return Ok(());
                        }
                        Err(why) => problem = why,
                    }
                } else {
                    problem = match replicas.iter().find_map(|r| r.message.clone()) {
                        Some(message) if endpoints.is_empty() => {
                            format!("no replica is running ({message})")
                        }
                        _ => format!("{} of {wanted} replica(s) running", endpoints.len()),
                    };
                }
            }
            if Instant::now() >= deadline {
                return Err(failed(
                    "health_check",
                    format!(
                        "the replicas were not all healthy within {} s: {problem}",
                        timeout.as_secs()
                    ),
                ));
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = self.cancel.cancelled() => return Err(Stop::Cancelled),
            }
        }
    }

    async fn check_all(&self, endpoints: &[String], path: &str) -> Result<(), String> {
        for endpoint in endpoints {
            let url = format!("http://{endpoint}{path}");
            let request = self.d.http.get(&url).timeout(Duration::from_secs(2));
            match request.send().await {
                Ok(r) if r.status().is_success() || r.status().is_redirection() => {}
                Ok(r) => return Err(format!("{endpoint} answered {}", r.status())),
                Err(_) => return Err(format!("{endpoint} did not answer")),
            }
        }
        Ok(())
    }
}
