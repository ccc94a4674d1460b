//! The start and the health gate, as pipeline steps over the runtime seam: the app is described
//! (`AppSpec`), the runtime starts it and reports what it started, the pipeline records that
//! (`health_checking`, container or service, upstream) and routes its preview host; then the
//! runtime's gate waits until every instance answers `GET <health_path>` with 2xx/3xx within
//! the project's timeout. A failure carries the app's last output lines, masked here.

use std::time::Duration;

use super::DeploymentStatus as S;
use super::pipeline::{Pipeline, Stop, failed};
use super::runtime::{AppSpec, Failure, Gate, GateError};
use crate::config::RuntimeKind;
use crate::db::deployments::Fields;

impl Pipeline {
    /// A failure's message with the app's last output (masked) under it.
    fn with_output(&self, failure: &Failure) -> String {
        let mut text = failure.message.clone();
        if !failure.output.is_empty() {
            text.push_str("\n--- container output ---\n");
            text.push_str(&self.log.masked(&failure.output.join("\n")));
        }
        text
    }

    /// Runs the deployment's image through the runtime and moves it to health checking.
    pub(super) async fn start_app(&mut self, image: &str) -> Result<(), Stop> {
        let runtime = self.d.runtime.clone();
        let swarm = runtime.kind() == RuntimeKind::Swarm;
        let header = if swarm {
            "==> Starting the service"
        } else {
            "==> Starting"
        };
        self.log.system(header.to_string()).await;
        let (port, env) = self.app_env(image).await?;
        let volumes = self.volume_mounts().await?;
        let files = self.file_mounts().await?;
        let app = AppSpec {
            project: self.project.id,
            slug: self.project.slug.clone(),
            deployment: self.deployment.id,
            image: image.to_string(),
            env,
            port,
            limits: self.limits(),
            replicas: self.project.replicas.max(1) as u32,
            placement: crate::db::projects::placement_of(&self.project),
            subnets: self.d.config.containers.subnets(),
            registry: if swarm {
                self.registry_auth().await?
            } else {
                None
            },
            volumes,
            files,
        };
        let started = match runtime.start(app).await {
            Ok(started) => started,
            Err(mut failure) => {
                self.started = failure.started.take();
                return Err(failed("start", self.with_output(&failure)));
            }
        };
        self.started = Some(started.clone());
        self.log.system(started.note.clone()).await;
        let fields = Fields {
            container_id: started.container.clone(),
            service_id: started.service.clone(),
            upstream: Some(started.upstream.clone()),
            ..Fields::default()
        };
        self.advance(&[S::Starting], S::HealthChecking, fields)
            .await?;
        self.deployment.upstream = Some(started.upstream);
        if started.service.is_none() {
            // Its preview host routes from now on, while it is being checked.
            self.d.proxy.refresh_or_log().await;
        }
        Ok(())
    }

    /// The health gate; a service's replicas are routed once they all answer.
    pub(super) async fn health_gate(&mut self) -> Result<(), Stop> {
        let Some(started) = self.started.clone() else {
            return Err(failed("health_check", "nothing was started"));
        };
        let timeout = Duration::from_secs(self.project.health_timeout_secs.max(1) as u64);
        let wanted = self.project.replicas.max(1) as usize;
        let path = self.project.health_path.clone();
        let header = if started.service.is_some() {
            format!(
                "==> Health check GET {path} on {wanted} replica(s) (up to {} s)",
                timeout.as_secs()
            )
        } else {
            format!(
                "==> Health check GET {path} (up to {} s)",
                timeout.as_secs()
            )
        };
        self.log.system(header).await;
        let gate = Gate {
            deployment: self.deployment.id,
            path,
            timeout,
            wanted,
            http: self.d.http.clone(),
            cancel: self.cancel.clone(),
        };
        let runtime = self.d.runtime.clone();
        match runtime.health_gate(&started, &gate).await {
            Ok(endpoints) => {
                if started.service.is_some() {
                    self.log
                        .system(format!("==> Healthy: {}", endpoints.join(", ")))
                        .await;
                    self.d
                        .proxy
                        .set_deployment_replicas(self.deployment.id, endpoints);
                }
                Ok(())
            }
            Err(GateError::Cancelled) => Err(Stop::Cancelled),
            Err(GateError::Failed(failure)) => {
                Err(failed("health_check", self.with_output(&failure)))
            }
        }
    }
}
