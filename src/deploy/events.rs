//! Follows Docker's events for shard's containers, so that a container Docker restarted (with
//! a new published port) or that died shows in the route table and in the project's runtime
//! state within a second, published on `project:<id>`. After every (re)connection it also
//! re-reads the live containers, covering whatever happened while it was not listening.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Deployer, DeploymentStatus as S, recover};
use crate::db::deployments as deps;
use crate::docker::{ContainerChange, ContainerEvent};
use crate::hub::{Topic, record};

pub async fn watch(deployer: Arc<Deployer>, shutdown: CancellationToken) {
    let mut since = None;
    let mut backoff = Duration::from_secs(1);
    while !shutdown.is_cancelled() {
        match deployer.docker.container_events(since).await {
            Ok(stream) => {
                backoff = Duration::from_secs(1);
                deployer.resync_runtime().await;
                tokio::pin!(stream);
                loop {
                    let event = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        event = stream.next() => event,
                    };
                    match event {
                        Some(Ok(event)) => {
                            since = Some(event.time);
                            deployer.on_container_event(event).await;
                        }
                        Some(Err(e)) => {
                            tracing::debug!(error = %e, "docker event stream broke; reconnecting");
                            break;
                        }
                        None => break,
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot follow docker events yet"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

impl Deployer {
    async fn on_container_event(&self, event: ContainerEvent) {
        let running = event.change == ContainerChange::Started;
        self.proxy.container_event(&event.container, running);
        let Some(deployment) = event.deployment else {
            return;
        };
        if running {
            self.follow_port(deployment, &event.container).await;
        }
        self.refresh_and_announce(event.project).await;
    }

    /// Records the port Docker published for a serving container that (re)started.
    async fn follow_port(&self, deployment: Uuid, container: &str) {
        let Ok(Some(d)) = deps::find(&self.db, deployment).await else {
            return;
        };
        if !matches!(d.state(), S::Live | S::Stopped)
            || d.container_id.as_deref() != Some(container)
        {
            return;
        }
        recover::refresh_upstream(self, &d, container).await;
    }

    /// Rebuilds the route table and tells the project's topic when its runtime state moved.
    async fn refresh_and_announce(&self, project: Option<Uuid>) {
        let before = project.map(|p| self.proxy.runtime(p));
        self.proxy.refresh_or_log().await;
        let (Some(project), Some(before)) = (project, before) else {
            return;
        };
        let after = self.proxy.runtime(project);
        if after != before {
            let payload = serde_json::json!({"runtime": after.as_str()});
            record::publish(
                &self.db,
                &self.hub,
                Topic::Project(project),
                "runtime",
                payload,
            )
            .await;
        }
    }

    /// Re-reads every live or stopped deployment's container: running or not, and its port.
    async fn resync_runtime(&self) {
        let Ok(current) = deps::with_status(&self.db, &S::CURRENT).await else {
            return;
        };
        for d in current {
            let Some(container) = d.container_id.clone() else {
                continue;
            };
            match self.docker.container_status(&container).await {
                Ok(Some(status)) => {
                    self.proxy.container_event(&container, status.running);
                    if status.running {
                        recover::record_port(self, &d, status.host_port).await;
                    }
                }
                Ok(None) => {
                    self.proxy.container_event(&container, false);
                }
                Err(_) => return,
            }
        }
        self.proxy.refresh_or_log().await;
    }
}
