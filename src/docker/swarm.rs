//! Docker Swarm: image pushes to the registry nodes pull from, one service per deployment
//! (replicas, placement by node labels, the app port published in host mode on each node), the
//! tasks that say where each replica runs, and the node list with its labels and availability.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum,
    EndpointSpec, Limit, NodeSpecAvailabilityEnum, NodeState, ServiceSpec, ServiceSpecMode,
    ServiceSpecModeReplicated, TaskSpec, TaskSpecContainerSpec, TaskSpecContainerSpecPrivileges,
    TaskSpecLogDriver, TaskSpecPlacement, TaskSpecResources, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum, TaskState,
};
use bollard::query_parameters::{
    ListNodesOptions, ListServicesOptionsBuilder, ListTasksOptionsBuilder, PushImageOptionsBuilder,
    UpdateNodeOptionsBuilder, UpdateServiceOptionsBuilder,
};
use uuid::Uuid;

use super::{Engine, EngineError, LABEL_DEPLOYMENT, LABEL_PROJECT, Limits, is_not_found};

/// A user and password for the registry (pushes, and pulls on every node).
#[derive(Clone)]
pub struct RegistryAuth {
    pub username: String,
    pub password: String,
    /// The registry's address (`registry.url`).
    pub server: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

fn credentials(auth: Option<RegistryAuth>) -> Option<bollard::auth::DockerCredentials> {
    auth.map(|a| bollard::auth::DockerCredentials {
        username: Some(a.username),
        password: Some(a.password),
        serveraddress: Some(a.server),
        ..Default::default()
    })
}

/// A deployment's service.
pub struct ServiceRun {
    pub name: String,
    pub image: String,
    pub env: Vec<String>,
    pub labels: HashMap<String, String>,
    /// The port the app listens on inside each replica.
    pub port: u16,
    pub replicas: u32,
    /// Node labels a replica's node must carry.
    pub placement: BTreeMap<String, String>,
    pub limits: Limits,
    /// Named volumes mounted into each replica; they live on one node's engine, so the
    /// service is pinned to `node` (its id) with them.
    pub volumes: Vec<super::VolumeMount>,
    pub node: Option<String>,
    /// Files given to every replica, on every node, as Docker configs.
    pub files: Vec<super::configs::ServiceFile>,
}

/// One task (replica) of a managed service, as the swarm last reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    /// The task's id.
    pub task: String,
    pub deployment: Uuid,
    pub node_id: String,
    /// The task's state (`running`, `pending`, `failed`, ...).
    pub state: String,
    /// Whether the swarm still wants it running.
    pub wanted: bool,
    /// The node port its app port is published on (host mode), once running.
    pub port: Option<u16>,
    /// Why it is not running, when the swarm says.
    pub message: Option<String>,
}

impl Replica {
    pub fn is_running(&self) -> bool {
        self.wanted && self.state == "running" && self.port.is_some()
    }

    /// Whether the replica's app ended by itself (exited or crashed), after which the swarm
    /// starts another in its slot; a replica shut down by a scale or removal does not count.
    pub fn ended_unasked(&self) -> bool {
        matches!(self.state.as_str(), "failed" | "complete")
    }
}

/// A swarm node, as `GET /nodes` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct NodeInfo {
    pub id: String,
    pub hostname: String,
    /// The address other nodes (and shard's proxy) reach it at.
    pub address: String,
    /// `ready`, `down`, `disconnected` or `unknown`.
    pub state: String,
    /// `active`, `pause` or `drain`.
    pub availability: String,
    /// `manager` or `worker`.
    pub role: String,
    pub leader: bool,
    pub labels: BTreeMap<String, String>,
    pub cpus: f64,
    pub memory_bytes: i64,
    pub engine_version: Option<String>,
    /// When the swarm last changed the node's record (its state or spec; Swarm does not
    /// expose heartbeat times).
    pub last_seen: Option<String>,
    /// Whether this is the node shard's own engine runs on.
    pub this_machine: bool,
}

#[cfg(test)]
impl NodeInfo {
    pub fn for_test(id: &str, address: &str, state: &str, this_machine: bool) -> Self {
        Self {
            id: id.into(),
            hostname: id.into(),
            address: address.into(),
            state: state.into(),
            availability: "active".into(),
            role: "worker".into(),
            leader: false,
            labels: BTreeMap::new(),
            cpus: 1.0,
            memory_bytes: 0,
            engine_version: None,
            last_seen: None,
            this_machine,
        }
    }
}

/// What an admin may change on a node.
#[derive(Debug, Default, Clone)]
pub struct NodeChange {
    pub labels: Option<BTreeMap<String, String>>,
    /// `active`, `pause` or `drain`.
    pub availability: Option<String>,
}

/// The swarm as this engine sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SwarmInfo {
    /// Whether this engine is part of an active swarm.
    pub active: bool,
    /// Whether it is a manager (services can be created through it).
    pub manager: bool,
    pub node_id: Option<String>,
    /// The manager address other nodes join (`host:2377`).
    pub manager_addr: Option<String>,
}

fn task_state_name(state: Option<TaskState>) -> String {
    state.map_or_else(|| "unknown".into(), |s| s.to_string())
}

impl Engine {
    /// Pushes `image` (`registry/name:tag`) to its registry, calling `on_line` with progress
    /// lines worth a log (layers pushed, the digest); an error the registry gave is returned.
    pub async fn push_image(
        &self,
        image: &str,
        auth: Option<RegistryAuth>,
        mut on_line: impl FnMut(String),
    ) -> Result<(), String> {
        use futures_util::StreamExt;
        let docker = self.client().await.map_err(|e| e.to_string())?;
        let (name, tag) = match image.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, tag),
            _ => (image, "latest"),
        };
        let options = PushImageOptionsBuilder::default().tag(tag).build();
        let mut stream = docker.push_image(name, Some(options), credentials(auth));
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| e.to_string())?;
            if let Some(detail) = info.error_detail {
                return Err(detail.message.unwrap_or_else(|| "the push failed".into()));
            }
            if let Some(status) = info.status
                && (status.starts_with("Pushed")
                    || status.contains("digest:")
                    || status.starts_with("Layer already exists"))
            {
                on_line(status);
            }
        }
        Ok(())
    }

    /// Creates a deployment's service and returns its id. Replicas restart on failure with a
    /// back-off; limits, log rotation and labels are those of plain containers. With `auth`
    /// the swarm hands the registry credentials to the nodes that pull the image.
    pub async fn create_service(
        &self,
        run: ServiceRun,
        auth: Option<RegistryAuth>,
    ) -> Result<String, EngineError> {
        let docker = self.client().await?;
        let mut constraints = run
            .placement
            .iter()
            .map(|(key, value)| format!("node.labels.{key}=={value}"))
            .collect::<Vec<_>>();
        if let Some(node) = &run.node {
            constraints.push(format!("node.id=={node}"));
        }
        let mounts = run.volumes.iter().map(|v| v.mount()).collect::<Vec<_>>();
        let configs = self.file_configs(&run.files).await?;
        let spec = ServiceSpec {
            name: Some(run.name),
            labels: Some(run.labels.clone()),
            task_template: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: Some(run.image),
                    env: Some(run.env),
                    labels: Some(run.labels),
                    init: Some(true),
                    privileges: Some(TaskSpecContainerSpecPrivileges {
                        no_new_privileges: Some(true),
                        ..Default::default()
                    }),
                    capability_drop: Some(
                        super::DROPPED_CAPABILITIES
                            .iter()
                            .map(|c| c.to_string())
                            .collect(),
                    ),
                    stop_grace_period: Some(5_000_000_000),
                    mounts: (!mounts.is_empty()).then_some(mounts),
                    configs: (!configs.is_empty()).then_some(configs),
                    ..Default::default()
                }),
                resources: Some(TaskSpecResources {
                    limits: Some(Limit {
                        nano_cpus: Some(run.limits.cpu_millis * 1_000_000),
                        memory_bytes: Some(run.limits.memory_mb * 1024 * 1024),
                        pids: Some(run.limits.pids),
                    }),
                    ..Default::default()
                }),
                restart_policy: Some(TaskSpecRestartPolicy {
                    condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                    delay: Some(1_000_000_000),
                    ..Default::default()
                }),
                placement: Some(TaskSpecPlacement {
                    constraints: Some(constraints),
                    ..Default::default()
                }),
                log_driver: Some(TaskSpecLogDriver {
                    name: Some("json-file".into()),
                    options: Some(HashMap::from([
                        (
                            "max-size".to_string(),
                            format!("{}m", run.limits.log_max_size_mb),
                        ),
                        ("max-file".to_string(), run.limits.log_max_files.to_string()),
                    ])),
                }),
                ..Default::default()
            }),
            mode: Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated {
                    replicas: Some(i64::from(run.replicas)),
                }),
                ..Default::default()
            }),
            endpoint_spec: Some(EndpointSpec {
                ports: Some(vec![EndpointPortConfig {
                    protocol: Some(EndpointPortConfigProtocolEnum::TCP),
                    target_port: Some(i64::from(run.port)),
                    // Host mode without a published port: each replica gets a free port on
                    // its node, so several replicas can share one node.
                    publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = docker.create_service(spec, credentials(auth)).await?;
        Ok(created.id.unwrap_or_default())
    }

    /// Sets how many replicas a service runs (0 stops it); false when it does not exist.
    pub async fn scale_service(&self, id: &str, replicas: u32) -> Result<bool, EngineError> {
        let docker = self.client().await?;
        let service = match docker
            .inspect_service(id, None::<bollard::query_parameters::InspectServiceOptions>)
            .await
        {
            Ok(service) => service,
            Err(e) if is_not_found(&e) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let version = service.version.and_then(|v| v.index).unwrap_or(0);
        let mut spec = service.spec.unwrap_or_default();
        spec.mode = Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(i64::from(replicas)),
            }),
            ..Default::default()
        });
        let options = UpdateServiceOptionsBuilder::default()
            .version(i32::try_from(version).unwrap_or(i32::MAX))
            .build();
        docker.update_service(id, spec, options, None).await?;
        Ok(true)
    }

    /// Removes a service (its replicas stop); a missing one is fine.
    pub async fn remove_service(&self, id: &str) -> Result<(), EngineError> {
        match self.client().await?.delete_service(id).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every service of this installation: (service id, project, deployment).
    pub async fn managed_services(
        &self,
        extra: Option<String>,
    ) -> Result<Vec<(String, Option<Uuid>, Option<Uuid>)>, EngineError> {
        let filters = self.owned_filter(extra);
        let services = self
            .client()
            .await?
            .list_services(Some(
                ListServicesOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await?;
        Ok(services
            .into_iter()
            .filter_map(|s| {
                let labels = s.spec.and_then(|spec| spec.labels).unwrap_or_default();
                let label = |key: &str| labels.get(key).and_then(|v| Uuid::parse_str(v).ok());
                Some((s.id?, label(LABEL_PROJECT), label(LABEL_DEPLOYMENT)))
            })
            .collect())
    }

    /// Removes every service of a project; returns how many.
    pub async fn remove_project_services(&self, project: Uuid) -> Result<usize, EngineError> {
        let services = self
            .managed_services(Some(format!("{LABEL_PROJECT}={project}")))
            .await?;
        for (id, _, _) in &services {
            self.remove_service(id).await?;
        }
        Ok(services.len())
    }

    /// The tasks of this installation's services (`service`: one service's only).
    pub async fn replicas(&self, service: Option<&str>) -> Result<Vec<Replica>, EngineError> {
        let mut filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{}={}", super::LABEL_INSTANCE, self.instance)],
        )]);
        if let Some(service) = service {
            filters.insert("service".into(), vec![service.to_string()]);
        }
        let tasks = self
            .client()
            .await?
            .list_tasks(Some(
                ListTasksOptionsBuilder::default().filters(&filters).build(),
            ))
            .await?;
        Ok(tasks
            .into_iter()
            .filter_map(|task| {
                let labels = task
                    .spec
                    .as_ref()
                    .and_then(|s| s.container_spec.as_ref())
                    .and_then(|c| c.labels.as_ref());
                let deployment = labels
                    .and_then(|l| l.get(LABEL_DEPLOYMENT))
                    .and_then(|v| Uuid::parse_str(v).ok())?;
                let status = task.status.unwrap_or_default();
                let port = status
                    .port_status
                    .and_then(|p| p.ports)
                    .unwrap_or_default()
                    .into_iter()
                    .find_map(|p| p.published_port)
                    .and_then(|p| u16::try_from(p).ok());
                Some(Replica {
                    task: task.id.unwrap_or_default(),
                    deployment,
                    node_id: task.node_id.unwrap_or_default(),
                    state: task_state_name(status.state),
                    wanted: task.desired_state == Some(TaskState::RUNNING),
                    port,
                    message: status.err.or(status.message),
                })
            })
            .collect())
    }

    /// The swarm this engine is part of, if any.
    pub async fn swarm_info(&self) -> Result<SwarmInfo, EngineError> {
        let info = self.client().await?.info().await?;
        let swarm = info.swarm.unwrap_or_default();
        let active = swarm.local_node_state.map(|s| s.to_string()).as_deref() == Some("active");
        let manager_addr = swarm
            .remote_managers
            .unwrap_or_default()
            .into_iter()
            .find(|m| m.node_id == swarm.node_id)
            .and_then(|m| m.addr);
        Ok(SwarmInfo {
            active,
            manager: swarm.control_available.unwrap_or(false),
            node_id: swarm.node_id.filter(|id| !id.is_empty()),
            manager_addr,
        })
    }

    fn cached_local_node(&self) -> Option<String> {
        self.local_node
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The worker join token (managers only).
    pub async fn worker_join_token(&self) -> Result<Option<String>, EngineError> {
        let swarm = self.client().await?.inspect_swarm().await?;
        Ok(swarm.join_tokens.and_then(|t| t.worker))
    }

    /// The swarm's nodes, this engine's own marked `this_machine`. Its node id is read once
    /// and kept, and read again only when the list no longer holds it (the swarm was left
    /// and made anew).
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, EngineError> {
        let nodes = self
            .client()
            .await?
            .list_nodes(None::<ListNodesOptions>)
            .await?;
        let known = self.cached_local_node();
        let local = match known {
            Some(id) if nodes.iter().any(|n| n.id.as_ref() == Some(&id)) => Some(id),
            _ => {
                let id = self.swarm_info().await?.node_id;
                *self
                    .local_node
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = id.clone();
                id
            }
        };
        let local = local.as_deref();
        Ok(nodes
            .into_iter()
            .filter_map(|node| {
                let id = node.id?;
                let spec = node.spec.unwrap_or_default();
                let description = node.description.unwrap_or_default();
                let status = node.status.unwrap_or_default();
                let manager = node.manager_status;
                // A manager may report 0.0.0.0 as its address; its manager address is exact.
                let address = match status.addr.as_deref() {
                    Some(addr) if !addr.is_empty() && addr != "0.0.0.0" => addr.to_string(),
                    _ => manager
                        .as_ref()
                        .and_then(|m| m.addr.as_deref())
                        .and_then(|a| a.rsplit_once(':').map(|(host, _)| host.to_string()))
                        .unwrap_or_default(),
                };
                let resources = description.resources.unwrap_or_default();
                Some(NodeInfo {
                    this_machine: local == Some(id.as_str()),
                    hostname: description.hostname.unwrap_or_default(),
                    address,
                    state: status.state.unwrap_or(NodeState::UNKNOWN).to_string(),
                    availability: spec
                        .availability
                        .map_or_else(|| "active".into(), |a| a.to_string()),
                    role: spec.role.map_or_else(|| "worker".into(), |r| r.to_string()),
                    leader: manager.and_then(|m| m.leader).unwrap_or(false),
                    labels: spec.labels.unwrap_or_default().into_iter().collect(),
                    cpus: resources.nano_cpus.unwrap_or(0) as f64 / 1e9,
                    memory_bytes: resources.memory_bytes.unwrap_or(0),
                    engine_version: description.engine.and_then(|e| e.engine_version),
                    last_seen: node.updated_at.map(|t| t.to_string()),
                    id,
                })
            })
            .collect())
    }

    /// Changes a node's labels or availability; `None` when there is no such node.
    pub async fn update_node(
        &self,
        id: &str,
        change: NodeChange,
    ) -> Result<Option<()>, EngineError> {
        let docker = self.client().await?;
        let node = match docker.inspect_node(id).await {
            Ok(node) => node,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let version = node.version.and_then(|v| v.index).unwrap_or(0);
        let mut spec = node.spec.unwrap_or_default();
        if let Some(labels) = change.labels {
            spec.labels = Some(labels.into_iter().collect());
        }
        if let Some(availability) = change.availability {
            spec.availability = Some(match availability.as_str() {
                "drain" => NodeSpecAvailabilityEnum::DRAIN,
                "pause" => NodeSpecAvailabilityEnum::PAUSE,
                _ => NodeSpecAvailabilityEnum::ACTIVE,
            });
        }
        let options = UpdateNodeOptionsBuilder::default()
            .version(i64::try_from(version).unwrap_or(i64::MAX))
            .build();
        docker.update_node(id, spec, options).await?;
        Ok(Some(()))
    }
}
