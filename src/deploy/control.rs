//! Runtime control of a project's live deployment: start and stop of its container (plain
//! Docker) or its service scaled to the project's replicas or to none (Swarm). Either way the
//! deployment moves between `live` and `stopped`, the project topic is told and the route
//! table rebuilt. A restart is a deployment (`Deployer::restart`), never `docker restart`.

use super::runtime::Controlled;
use super::{Control, DeployError, Deployer, DeploymentStatus as S, recover};
use crate::db::deployments::{self as deps, Deployment, Fields};
use crate::db::projects::Project;
use crate::hub::{Topic, record};

impl Deployer {
    /// Starts or stops the project's serving container or service and returns its deployment
    /// as it is after.
    pub async fn control(
        &self,
        project: &Project,
        control: Control,
    ) -> Result<Deployment, DeployError> {
        let deployment = deps::live_for_project(&self.db, project.id)
            .await?
            .ok_or_else(|| {
                DeployError::Conflict("the project has no live deployment; deploy it first".into())
            })?;
        let (from, to, event) = match control {
            Control::Start => (S::Stopped, S::Live, "started"),
            Control::Stop => (S::Live, S::Stopped, "stopped"),
        };
        if control == Control::Start {
            self.crash_looped().remove(&deployment.id);
        }
        let replicas = project.replicas.max(1) as u32;
        match self.runtime.control(&deployment, replicas, control).await? {
            Controlled::Done => {}
            // Docker publishes a started container's port anew.
            Controlled::ContainerStarted(container) => {
                recover::refresh_upstream(self, &deployment, &container).await;
            }
            // Routed at once rather than at the watcher's next read.
            Controlled::Replicas(running) => {
                self.proxy.set_deployment_replicas(deployment.id, running);
            }
        }
        deps::transition(&self.db, deployment.id, &[from], to, Fields::default()).await?;
        let payload = serde_json::json!({"action": event, "deployment": deployment.id});
        record::publish(
            &self.db,
            &self.hub,
            Topic::Project(project.id),
            "container",
            payload,
        )
        .await;
        self.proxy.refresh_or_log().await;
        deps::find(&self.db, deployment.id)
            .await?
            .ok_or(DeployError::NotFound("deployment"))
    }
}
