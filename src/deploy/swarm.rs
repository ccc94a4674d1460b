//! The Swarm runtime (`runtime.kind = "swarm"`): the same pipeline as plain containers up to
//! the image, then the image is pushed to `registry.url`, a service with the project's
//! `replicas` and `placement` runs it (the app port published in host mode on each node), and
//! the health gate checks every replica before the switch. The switch is start-first as with
//! containers: the new service serves beside the old one, then the old one drains and goes.
//!
//! The watcher reads the swarm's tasks and nodes every `runtime.poll_ms`, and at once on the
//! Docker events that announce a change, and hands the proxy each deployment's running
//! replicas (`127.0.0.1:port` on this machine's node, the node's address elsewhere); a
//! replica whose task stops or whose node goes down leaves the route table on the next read,
//! and the proxy moves a refused connection to the next replica.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::pipeline::{Pipeline, Stop, failed};
use super::recover::Swept;
use super::runtime::{Containers, Probe, Runtime};
use super::{Control, DeployError, Deployer, DeploymentStatus as S};
use crate::config::RuntimeKind;
use crate::db::deployments::{Deployment, Fields};
use crate::docker::{Engine, EngineError, LogSource, NodeInfo, Replica, ServiceRun};
use crate::proxy::SWARM_UPSTREAM;

/// How long starting a stopped service waits for its first replica to run.
const START_WAIT: Duration = Duration::from_secs(30);

/// Where each deployment's running replicas answer, from the swarm's tasks and nodes.
pub fn endpoints(nodes: &[NodeInfo], replicas: &[Replica]) -> HashMap<Uuid, Vec<String>> {
    let by_id: HashMap<&str, &NodeInfo> = nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let mut out: HashMap<Uuid, Vec<String>> = HashMap::new();
    for replica in replicas.iter().filter(|r| r.is_running()) {
        let (Some(node), Some(port)) = (by_id.get(replica.node_id.as_str()), replica.port) else {
            continue;
        };
        // A node that stopped answering keeps its tasks "running" until the swarm notices.
        if node.state != "ready" {
            continue;
        }
        let host = if node.this_machine {
            "127.0.0.1"
        } else if node.address.is_empty() {
            continue;
        } else {
            node.address.as_str()
        };
        out.entry(replica.deployment)
            .or_default()
            .push(format!("{host}:{port}"));
    }
    for list in out.values_mut() {
        list.sort();
    }
    out
}

/// Reads the swarm's replicas, handing changes to the proxy, until shard stops: every
/// `runtime.poll_ms`, and at once when Docker reports a change (a replica's container here
/// starting or dying, a node going down or coming back), then again 0.25, 0.75, 1.75 and
/// 3.75 s after, since the swarm records a task's new state a moment after its container moved.
pub async fn watch(d: Arc<Deployer>) {
    let period = Duration::from_millis(d.config.runtime.poll_ms);
    let changed = Arc::new(tokio::sync::Notify::new());
    let follower = tokio::spawn(follow_changes(d.clone(), changed.clone()));
    let _stop_follower = AbortOnDrop(follower);
    let mut warned = false;
    let mut soon = 0;
    loop {
        let read_at = Instant::now();
        match read_endpoints(&d).await {
            Ok(map) => {
                warned = false;
                if d.proxy.set_replicas(map, read_at) {
                    d.proxy.refresh_or_log().await;
                }
            }
            Err(e) if !warned => {
                warned = true;
                tracing::warn!(error = %e, "cannot read the swarm's replicas; routes keep the last ones");
            }
            Err(_) => {}
        }
        let wait = match soon {
            0 => period,
            n => {
                soon -= 1;
                (AFTER_CHANGE * (1 << (AFTER_CHANGE_READS - n))).min(period)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = changed.notified() => soon = AFTER_CHANGE_READS,
        }
    }
}

/// How soon the replicas are read again after a change Docker reported (doubling after that).
const AFTER_CHANGE: Duration = Duration::from_millis(250);
/// How many reads follow a change.
const AFTER_CHANGE_READS: u32 = 4;

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Wakes the watcher on every change Docker reports, reconnecting with backoff.
async fn follow_changes(d: Arc<Deployer>, changed: Arc<tokio::sync::Notify>) {
    use futures_util::StreamExt;
    let mut backoff = Duration::from_secs(1);
    loop {
        match d.docker.swarm_changes().await {
            Ok(stream) => {
                backoff = Duration::from_secs(1);
                tokio::pin!(stream);
                while let Some(Ok(())) = stream.next().await {
                    changed.notify_one();
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot follow the swarm's events yet"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

async fn read_endpoints(
    d: &Deployer,
) -> Result<HashMap<Uuid, Vec<String>>, crate::docker::EngineError> {
    let nodes = d.docker.nodes().await?;
    let replicas = d.docker.replicas(None).await?;
    Ok(endpoints(&nodes, &replicas))
}

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

/// Docker Swarm services (see the module docs). Deployments that ran as plain containers
/// before the installation moved to Swarm are handed to [`Containers`].
#[derive(Default)]
pub struct Swarm {
    containers: Containers,
}

impl Swarm {
    async fn endpoints_of(
        &self,
        engine: &Engine,
        replicas: &[Replica],
        deployment: Uuid,
    ) -> Result<Vec<String>, EngineError> {
        let nodes = engine.nodes().await?;
        Ok(endpoints(&nodes, replicas)
            .remove(&deployment)
            .unwrap_or_default())
    }
}

#[async_trait::async_trait]
impl Runtime for Swarm {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Swarm
    }

    async fn start(&self, p: &mut Pipeline, image: &str) -> Result<(), Stop> {
        p.start_service(image).await
    }

    async fn health_gate(&self, p: &mut Pipeline) -> Result<(), Stop> {
        p.health_check_service().await
    }

    async fn discard(&self, p: &mut Pipeline) {
        if let Some(service) = p.service.take()
            && let Err(e) = p.d.docker.remove_service(&service).await
        {
            tracing::warn!(error = %e, "cannot remove the failed deploy's service; the sweep will");
        }
        self.containers.discard(p).await;
    }

    async fn remove_deployment(&self, d: &Deployer, deployment: &Deployment) {
        if let Some(service) = &deployment.service_id
            && let Err(e) = d.docker.remove_service(service).await
        {
            tracing::warn!(error = %e, "cannot remove the deployment's service yet");
        }
        self.containers.remove_deployment(d, deployment).await;
    }

    async fn retire(&self, d: &Deployer, old: &Deployment, grace: Duration) {
        let Some(service) = &old.service_id else {
            return self.containers.retire(d, old, grace).await;
        };
        d.proxy
            .drain(old.id, super::pipeline::DRAIN_SETTLE, grace)
            .await;
        if let Err(e) = d.docker.remove_service(service).await {
            tracing::warn!(error = %e, "cannot remove the superseded service; the sweep will");
        }
    }

    async fn control(
        &self,
        d: &Deployer,
        deployment: &Deployment,
        replicas: u32,
        control: Control,
    ) -> Result<(), DeployError> {
        let Some(service) = &deployment.service_id else {
            return self
                .containers
                .control(d, deployment, replicas, control)
                .await;
        };
        let replicas = match control {
            Control::Start => replicas,
            Control::Stop => 0,
        };
        if !d.docker.scale_service(service, replicas).await? {
            return Err(DeployError::Conflict(
                "the live deployment's service is gone; deploy again".into(),
            ));
        }
        if control == Control::Start {
            // Answer once a replica runs, routed at once rather than at the watcher's next
            // read (so the app never shows as crashed while its replicas come up).
            let deadline = Instant::now() + START_WAIT;
            while Instant::now() < deadline {
                let replicas = d.docker.replicas(Some(service)).await?;
                let running = self
                    .endpoints_of(&d.docker, &replicas, deployment.id)
                    .await?;
                if !running.is_empty() {
                    d.proxy.set_deployment_replicas(deployment.id, running);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }

    async fn remove_project(&self, d: &Deployer, project: Uuid) -> Result<usize, EngineError> {
        let services = d.docker.remove_project_services(project).await?;
        Ok(services + self.containers.remove_project(d, project).await?)
    }

    async fn sweep(
        &self,
        d: &Deployer,
        running_here: &HashSet<Uuid>,
        grace: chrono::Duration,
        swept: &mut Swept,
    ) -> anyhow::Result<()> {
        self.containers.sweep(d, running_here, grace, swept).await?;
        swept.services = super::recover::sweep_services(d, running_here, grace).await?;
        Ok(())
    }

    async fn probe(
        &self,
        d: &Deployer,
        deployment: &Deployment,
    ) -> Result<Option<Probe>, EngineError> {
        let Some(service) = &deployment.service_id else {
            return self.containers.probe(d, deployment).await;
        };
        let replicas = d.docker.replicas(Some(service)).await?;
        let endpoints = self
            .endpoints_of(&d.docker, &replicas, deployment.id)
            .await?;
        Ok(Some(Probe {
            endpoints,
            restart_count: None,
            ended: replicas
                .iter()
                .filter(|r| r.ended_unasked())
                .map(|r| r.task.clone())
                .collect(),
        }))
    }

    async fn halt(&self, d: &Deployer, deployment: &Deployment) -> Result<(), EngineError> {
        match &deployment.service_id {
            Some(service) => {
                d.docker.scale_service(service, 0).await?;
                // Unrouted now: a replica being stopped may run for its stop grace period,
                // and the swarm marks its tasks unwanted only a moment after the scale.
                d.proxy.set_deployment_replicas(deployment.id, Vec::new());
                Ok(())
            }
            None => self.containers.halt(d, deployment).await,
        }
    }

    fn log_source(&self, deployment: &Deployment) -> Option<LogSource> {
        match &deployment.service_id {
            Some(service) => Some(LogSource::Service(service.clone())),
            None => self.containers.log_source(deployment),
        }
    }
}

#[async_trait::async_trait]
impl crate::metrics::ContainerSource for Swarm {
    async fn local_containers(
        &self,
        engine: &Engine,
        deployment: &Deployment,
    ) -> Result<Vec<String>, EngineError> {
        match &deployment.service_id {
            Some(service) => engine.service_containers(service).await,
            None => {
                crate::metrics::ContainerSource::local_containers(
                    &self.containers,
                    engine,
                    deployment,
                )
                .await
            }
        }
    }
}

impl Deployer {
    /// Applies a project's new replica count to its running service at once (placement and
    /// everything else apply with the next deploy). Nothing to do without a running service.
    pub async fn rescale(
        &self,
        project: &crate::db::projects::Project,
    ) -> Result<(), super::DeployError> {
        let Some(live) = crate::db::deployments::live_for_project(&self.db, project.id).await?
        else {
            return Ok(());
        };
        if let Some(service) = &live.service_id {
            self.docker
                .scale_service(service, project.replicas.max(1) as u32)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, address: &str, state: &str, local: bool) -> NodeInfo {
        NodeInfo::for_test(id, address, state, local)
    }

    fn replica(deployment: Uuid, node: &str, state: &str, port: Option<u16>) -> Replica {
        Replica {
            task: format!("t-{node}-{state}"),
            deployment,
            node_id: node.into(),
            state: state.into(),
            wanted: state == "running",
            port,
            message: None,
        }
    }

    #[test]
    fn replicas_route_at_their_node_and_leave_with_it() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let nodes = [
            node("n1", "10.0.0.1", "ready", true),
            node("n2", "10.0.0.2", "ready", false),
            node("n3", "10.0.0.3", "down", false),
        ];
        let replicas = [
            replica(a, "n1", "running", Some(30001)),
            replica(a, "n2", "running", Some(30002)),
            replica(a, "n3", "running", Some(30003)),
            replica(b, "n2", "starting", None),
            replica(b, "n2", "failed", Some(30004)),
        ];
        let map = endpoints(&nodes, &replicas);
        assert_eq!(
            map.get(&a).map(Vec::as_slice),
            Some(&["10.0.0.2:30002".to_string(), "127.0.0.1:30001".to_string()][..]),
            "the local node answers on loopback, a down node's replica is left out"
        );
        assert!(!map.contains_key(&b), "nothing running, nothing routed");
    }
}
