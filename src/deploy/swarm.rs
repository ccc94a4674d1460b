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
//!
//! ## Docker Swarm runtime
//!
//! `runtime.kind = "swarm"` keeps the pipeline and changes what runs a deployment
//! (`deploy/swarm.rs` over `docker/swarm.rs`, behind the runtime seam):
//!
//! - build: the image is named `<registry.url>/shard/<slug>:<deployment>` and pushed there after
//!   the build (step `push`); every node pulls it from the registry (each engine trusts the
//!   registry's CA through `/etc/docker/certs.d/<url>/ca.crt`; shard never embeds a registry).
//!   With credentials set (`PUT /api/v1/registry/credentials`, admins; sealed in
//!   `shared_values`, the password never answered back) the push signs in with them and the
//!   service is created with them, so the swarm hands them to the nodes that pull;
//! - start: one service per deployment (`deployments.service_id`, `upstream = "swarm"`) with the
//!   project's `replicas`, constraints `node.labels.<k>==<v>` from its `placement` (keys and
//!   values are checked against `[A-Za-z0-9._-]`, so no operator can be smuggled in), the same
//!   limits, capability drops, init and log rotation as containers, restart on any exit with a
//!   1 s delay, and the app port published in **host mode** without a fixed port: each replica
//!   gets a free port on its node;
//! - health gate: every replica must be running on a `ready` node and answer `health_path`;
//!   a `failed`/`rejected` task ends the deploy at once, one the swarm cannot place is reported
//!   at the timeout with the swarm's reason;
//! - switch: start-first as with containers — the new service serves beside the old one, the
//!   route table moves, the old service drains (its in-flight count) and is removed;
//! - routes: a watcher reads the swarm's tasks and nodes when Docker's events say something
//!   moved (one of this installation's containers here starting or dying, a node's state,
//!   availability or labels changing), then again 0.25, 0.75, 1.75 and 3.75 s later while the
//!   swarm records the task's new state, and every `runtime.poll_ms` as a fallback (each
//!   instance its own), and hands the proxy each deployment's running replicas: `127.0.0.1:<port>` on the
//!   node shard's engine is, `<node address>:<port>` elsewhere; replicas on a node that is not
//!   `ready` are left out. The proxy balances round robin over them, and a request without a
//!   body whose connection is refused (or times out connecting) moves to the next replica (at
//!   most 3 tries) and the refusing address is skipped for 5 s by every request (its state lives
//!   in an `Endpoint` shared across table swaps), so a replica that just died costs no request
//!   and no repeated connect attempt even before the watcher notices. Replicas a health gate
//!   handed over are pinned against a watcher read that started before them;
//! - start/stop scale the service to `replicas`/0 (start answers once a replica runs, routed at
//!   once); changing `replicas` rescales the live service at once; placement applies with the
//!   next deploy; deleting a project removes its services; the sweep removes services whose
//!   deployment no longer runs;
//! - above the seam: runtime logs follow the service (Docker gathers every replica's output
//!   through the manager, whichever node it runs on); the watchdog probes every replica's
//!   endpoint and counts each task the swarm started again after one ended as a restart (a crash
//!   loop scales the service to none and unroutes it at once — a replica being stopped may run
//!   through its stop grace, and a swarm read begun before the halt does not route it again);
//!   the metrics collector samples the replicas on this
//!   machine and sums them per project (an engine reports stats of its own containers only, so
//!   replicas on other nodes are not in the samples).
//!
//! Nodes (`/api/v1/nodes`, the Nodes page) are Swarm's own list; admins set labels and
//! availability (`drain` makes Swarm move replicas away), read the worker join command and set
//! the registry credentials there. Pruning covers the registry: an image beyond
//! `deploy.keep_images` is deleted there (its manifest, by digest; the registry must allow
//! deletes, and its own garbage collection frees the blobs) and stays offered for rollback only
//! while the registry keeps it; deleting a project deletes its images there. Not covered yet:
//! images other nodes pulled stay in their engines (`docker image prune` there), and the Nodes
//! page reads the list every 3 s.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::runtime::{
    AppSpec, Containers, Controlled, Failure, Gate, GateError, Probe, Runtime, Started,
};
use super::{Control, DeployError, Deployer};
use crate::config::RuntimeKind;
use crate::db::deployments::Deployment;
use crate::docker::{Engine, EngineError, LogSource, NodeInfo, Replica};

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

/// Docker Swarm services (see the module docs). Deployments that ran as plain containers
/// before the installation moved to Swarm are handed to [`Containers`].
pub struct Swarm {
    pub(super) engine: Arc<Engine>,
    pub(super) containers: Containers,
}

impl Swarm {
    pub fn new(engine: Arc<Engine>) -> Self {
        Swarm {
            containers: Containers {
                engine: engine.clone(),
            },
            engine,
        }
    }

    pub(super) async fn endpoints_of(
        &self,
        replicas: &[Replica],
        deployment: Uuid,
    ) -> Result<Vec<String>, EngineError> {
        let nodes = self.engine.nodes().await?;
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

    async fn start(&self, app: AppSpec) -> Result<Started, Failure> {
        self.start_service(app).await
    }

    async fn health_gate(&self, started: &Started, gate: &Gate) -> Result<Vec<String>, GateError> {
        match &started.service {
            Some(service) => self.gate_service(service, gate).await,
            None => self.containers.health_gate(started, gate).await,
        }
    }

    async fn discard(&self, mut started: Started) {
        if let Some(service) = started.service.take()
            && let Err(e) = self.engine.remove_service(&service).await
        {
            tracing::warn!(error = %e, "cannot remove the failed deploy's service; the sweep will");
        }
        self.containers.discard(started).await;
    }

    async fn remove_deployment(&self, deployment: &Deployment) {
        if let Some(service) = &deployment.service_id
            && let Err(e) = self.engine.remove_service(service).await
        {
            tracing::warn!(error = %e, "cannot remove the deployment's service yet");
        }
        self.containers.remove_deployment(deployment).await;
    }

    async fn retire(&self, old: &Deployment) {
        let Some(service) = &old.service_id else {
            return self.containers.retire(old).await;
        };
        if let Err(e) = self.engine.remove_service(service).await {
            tracing::warn!(error = %e, "cannot remove the superseded service; the sweep will");
        }
    }

    async fn control(
        &self,
        deployment: &Deployment,
        replicas: u32,
        control: Control,
    ) -> Result<Controlled, DeployError> {
        let Some(service) = &deployment.service_id else {
            return self.containers.control(deployment, replicas, control).await;
        };
        let replicas = match control {
            Control::Start => replicas,
            Control::Stop => 0,
        };
        if !self.engine.scale_service(service, replicas).await? {
            return Err(DeployError::Conflict(
                "the live deployment's service is gone; deploy again".into(),
            ));
        }
        if control == Control::Start {
            // Answer once a replica runs, so the caller routes it at once rather than at the
            // watcher's next read (the app never shows as crashed while its replicas come up).
            let deadline = Instant::now() + START_WAIT;
            while Instant::now() < deadline {
                let replicas = self.engine.replicas(Some(service)).await?;
                let running = self.endpoints_of(&replicas, deployment.id).await?;
                if !running.is_empty() {
                    return Ok(Controlled::Replicas(running));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(Controlled::Done)
    }

    async fn remove_project(&self, project: Uuid) -> Result<usize, EngineError> {
        let services = self.engine.remove_project_services(project).await?;
        Ok(services + self.containers.remove_project(project).await?)
    }

    async fn probe(&self, deployment: &Deployment) -> Result<Option<Probe>, EngineError> {
        let Some(service) = &deployment.service_id else {
            return self.containers.probe(deployment).await;
        };
        let replicas = self.engine.replicas(Some(service)).await?;
        let endpoints = self.endpoints_of(&replicas, deployment.id).await?;
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

    async fn halt(&self, deployment: &Deployment) -> Result<(), EngineError> {
        match &deployment.service_id {
            Some(service) => self.engine.scale_service(service, 0).await.map(|_| ()),
            None => self.containers.halt(deployment).await,
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
