//! App containers: run with the safe defaults (see the module docs of `docker`), their
//! status, output and logs, start, stop and removal, and the containers of Swarm tasks here.

use std::collections::HashMap;

use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};

use uuid::Uuid;

use super::lines::{self, LineSplitter};
use super::{
    Engine, EngineError, LABEL_DEPLOYMENT, LABEL_PROJECT, SWARM_TASK_LABEL, is_not_found,
    is_removal_in_progress,
};
use crate::model::LogStream;

/// A container to create and start.
pub struct RunSpec {
    pub name: String,
    pub image: String,
    pub env: Vec<String>,
    pub labels: HashMap<String, String>,
    /// The port the app listens on inside the container.
    pub port: u16,
    pub limits: Limits,
    /// The project's own bridge network (see `Engine::ensure_network`).
    pub network: String,
    /// The project's volumes.
    pub volumes: Vec<super::VolumeMount>,
    /// The project's file mounts, read-only.
    pub files: Vec<super::FileMount>,
}

/// What an app container may use, and how much log Docker keeps for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub memory_mb: i64,
    pub cpu_millis: i64,
    pub pids: i64,
    pub log_max_size_mb: u32,
    pub log_max_files: u32,
}

/// Capabilities Docker grants by default that an app has no business with: raw sockets
/// (spoofing on the bridge), device nodes, audit writes, chroot and file capabilities.
pub const DROPPED_CAPABILITIES: &[&str] = &[
    "NET_RAW",
    "MKNOD",
    "AUDIT_WRITE",
    "SYS_CHROOT",
    "SETFCAP",
    "SETPCAP",
];

/// A started container and the loopback port Docker published its app port on.
#[derive(Debug, Clone)]
pub struct Started {
    pub id: String,
    pub host_port: u16,
}

/// The state of a container as shard cares about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    pub running: bool,
    pub exit_code: Option<i64>,
    /// The loopback port published for the app, when running.
    pub host_port: Option<u16>,
    /// How many times Docker restarted it (its restart policy).
    pub restart_count: i64,
}

/// A container carrying `shard.managed=true`.
#[derive(Debug, Clone)]
pub struct ManagedContainer {
    pub id: String,
    pub project: Option<Uuid>,
    pub deployment: Option<Uuid>,
    pub running: bool,
}

impl Engine {
    /// Creates and starts a container with an init process, `unless-stopped` restarts, the
    /// app port published on an ephemeral 127.0.0.1 port, and the safe defaults of
    /// ARCHITECTURE.md: limits, rotated logs, `no-new-privileges`, dropped capabilities and
    /// the project's own network.
    pub async fn run_container(&self, spec: RunSpec) -> Result<Started, EngineError> {
        use bollard::models::{
            ContainerCreateBody, HostConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum,
        };
        let docker = self.client().await?;
        let port_key = format!("{}/tcp", spec.port);
        let host_config = HostConfig {
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            port_bindings: Some(HashMap::from([(
                port_key.clone(),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(String::new()),
                }]),
            )])),
            ..safe_host_config(
                &spec.limits,
                spec.limits.log_max_files,
                &spec.network,
                &spec.volumes,
                &spec.files,
            )
        };
        let body = ContainerCreateBody {
            image: Some(spec.image),
            env: Some(spec.env),
            labels: Some(spec.labels),
            exposed_ports: Some(vec![port_key]),
            host_config: Some(host_config),
            ..Default::default()
        };
        let options = bollard::query_parameters::CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        let created = docker.create_container(Some(options), body).await?;
        if let Err(e) = docker
            .start_container(
                &created.id,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
        {
            let _ = self.remove_container(&created.id).await;
            return Err(e.into());
        }
        let status = self.container_status(&created.id).await?;
        match status.and_then(|s| s.host_port) {
            Some(host_port) => Ok(Started {
                id: created.id,
                host_port,
            }),
            None => Ok(Started {
                id: created.id,
                host_port: 0,
            }),
        }
    }

    /// `None` when the container does not exist.
    pub async fn container_status(&self, id: &str) -> Result<Option<ContainerStatus>, EngineError> {
        let docker = self.client().await?;
        let inspect = match docker
            .inspect_container(
                id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
        {
            Ok(inspect) => inspect,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let state = inspect.state.unwrap_or_default();
        let host_port = inspect
            .network_settings
            .and_then(|n| n.ports)
            .and_then(|ports| {
                ports.into_values().flatten().flatten().find_map(|b| {
                    (b.host_ip.as_deref() == Some("127.0.0.1"))
                        .then_some(b.host_port)
                        .flatten()
                })
            })
            .and_then(|p| p.parse().ok());
        Ok(Some(ContainerStatus {
            restart_count: inspect.restart_count.unwrap_or(0),
            running: state.running.unwrap_or(false),
            exit_code: state.exit_code,
            host_port,
        }))
    }

    /// The last `lines` lines of the container's output.
    pub async fn tail_logs(&self, id: &str, lines: usize) -> Result<Vec<String>, EngineError> {
        use futures_util::StreamExt;
        let docker = self.client().await?;
        let options = bollard::query_parameters::LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let mut stream = docker.logs(id, Some(options));
        let mut splitter = LineSplitter::new(lines::DEFAULT_MAX_LINE_BYTES);
        let mut tail = std::collections::VecDeque::with_capacity(lines + 1);
        let mut keep = |line: String| {
            tail.push_back(line);
            if tail.len() > lines {
                tail.pop_front();
            }
        };
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(output) => {
                    splitter.push(&String::from_utf8_lossy(&output.into_bytes()), &mut keep)
                }
                Err(e) if is_not_found(&e) => break,
                Err(e) => return Err(e.into()),
            }
        }
        splitter.finish(&mut keep);
        Ok(tail.into_iter().collect())
    }

    pub async fn start_container(&self, id: &str) -> Result<(), EngineError> {
        let docker = self.client().await?;
        docker
            .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
            .await?;
        Ok(())
    }

    /// Stops with `grace_secs` before SIGKILL; a missing or stopped container is fine.
    pub async fn stop_container(&self, id: &str, grace_secs: i32) -> Result<(), EngineError> {
        let docker = self.client().await?;
        let options = bollard::query_parameters::StopContainerOptionsBuilder::default()
            .t(grace_secs)
            .build();
        match docker.stop_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) || is_not_modified(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Force-removes a container; a missing one is fine.
    pub async fn remove_container(&self, id: &str) -> Result<(), EngineError> {
        let docker = self.client().await?;
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // Someone else is removing it (the swarm, for a task of a service just removed):
            // it is gone once that ends.
            Err(e) if is_removal_in_progress(&e) => {
                for _ in 0..100 {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    match docker.inspect_container(id, None).await {
                        Err(e) if is_not_found(&e) => return Ok(()),
                        _ => {}
                    }
                }
                Err(e.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every container of this installation, running or not.
    pub async fn managed_containers(&self) -> Result<Vec<ManagedContainer>, EngineError> {
        let containers = self.containers_matching(&self.owned_filter(None)).await?;
        Ok(containers
            .into_iter()
            .filter_map(|c| {
                let labels = c.labels.unwrap_or_default();
                // A Swarm replica's container belongs to its service, which shard manages.
                if labels.contains_key(SWARM_TASK_LABEL) {
                    return None;
                }
                // A one-click database or a task (one-off run, job) is not an app: no sweep of
                // apps may touch it.
                if labels.contains_key(super::databases::LABEL_DATABASE)
                    || labels.contains_key(super::databases::LABEL_THROWAWAY)
                    || labels.contains_key(super::LABEL_RUN)
                {
                    return None;
                }
                let label = |key: &str| labels.get(key).and_then(|v| Uuid::parse_str(v).ok());
                Some(ManagedContainer {
                    project: label(LABEL_PROJECT),
                    deployment: label(LABEL_DEPLOYMENT),
                    running: c.state == Some(bollard::models::ContainerSummaryStateEnum::RUNNING),
                    id: c.id?,
                })
            })
            .collect())
    }
}

/// The safe defaults every app and task container gets (see the module docs of `docker`):
/// an init process, limits without extra swap, rotated json-file logs (`log_files` of
/// `log_max_size_mb`), `no-new-privileges`, dropped capabilities, the project's network, and
/// its volumes then file mounts (a file may sit inside a volume's path).
pub(super) fn safe_host_config(
    limits: &Limits,
    log_files: u32,
    network: &str,
    volumes: &[super::VolumeMount],
    files: &[super::FileMount],
) -> bollard::models::HostConfig {
    bollard::models::HostConfig {
        init: Some(true),
        memory: Some(limits.memory_mb * 1024 * 1024),
        memory_swap: Some(limits.memory_mb * 1024 * 1024),
        nano_cpus: Some(limits.cpu_millis * 1_000_000),
        pids_limit: Some(limits.pids),
        log_config: Some(bollard::models::HostConfigLogConfig {
            typ: Some("json-file".into()),
            config: Some(HashMap::from([
                (
                    "max-size".to_string(),
                    format!("{}m", limits.log_max_size_mb),
                ),
                ("max-file".to_string(), log_files.to_string()),
            ])),
        }),
        security_opt: Some(vec!["no-new-privileges:true".into()]),
        cap_drop: Some(DROPPED_CAPABILITIES.iter().map(|c| c.to_string()).collect()),
        network_mode: Some(network.to_string()),
        mounts: (!volumes.is_empty() || !files.is_empty()).then(|| {
            volumes
                .iter()
                .map(|v| v.mount())
                .chain(files.iter().map(|f| f.mount()))
                .collect()
        }),
        ..Default::default()
    }
}

fn is_not_modified(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 304,
            ..
        }
    )
}

/// Where an app's runtime output is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogSource {
    /// One container on this machine.
    Container(String),
    /// Every replica of a Swarm service, on whichever node it runs (the manager gathers them).
    Service(String),
}

impl Engine {
    /// Follows a container's or a service's output from its last `tail` lines on, calling
    /// `on_line` with the stream and each line (cut at `max_line` bytes), until it stops
    /// or the future is dropped.
    pub async fn follow_logs(
        &self,
        source: &LogSource,
        tail: usize,
        max_line: usize,
        mut on_line: impl FnMut(LogStream, String),
    ) -> Result<(), EngineError> {
        use bollard::container::LogOutput;
        use futures_util::StreamExt;
        let docker = self.client().await?;
        let options = bollard::query_parameters::LogsOptionsBuilder::default()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .tail(&tail.to_string())
            .build();
        let mut stream = match source {
            LogSource::Container(id) => docker.logs(id, Some(options)).boxed(),
            LogSource::Service(id) => docker.service_logs(id, Some(options)).boxed(),
        };
        let mut out = LineSplitter::new(max_line);
        let mut err = LineSplitter::new(max_line);
        while let Some(chunk) = stream.next().await {
            let (name, splitter, bytes) = match chunk? {
                LogOutput::StdErr { message } => (LogStream::Stderr, &mut err, message),
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    (LogStream::Stdout, &mut out, message)
                }
                LogOutput::StdIn { .. } => continue,
            };
            splitter.push(&String::from_utf8_lossy(&bytes), |line| on_line(name, line));
        }
        out.finish(|line| on_line(LogStream::Stdout, line));
        err.finish(|line| on_line(LogStream::Stderr, line));
        Ok(())
    }
}

impl Engine {
    /// Force-removes every container labelled with `deployment`, recorded or not (a crash
    /// between create and record leaves one only the label knows). Returns how many.
    pub async fn remove_deployment_containers(
        &self,
        deployment: Uuid,
    ) -> Result<usize, EngineError> {
        let filters = self.owned_filter(Some(format!("{LABEL_DEPLOYMENT}={deployment}")));
        let mut removed = 0;
        for id in self.container_ids(&filters).await? {
            self.remove_container(&id).await?;
            removed += 1;
        }
        Ok(removed)
    }

    /// The running containers on this machine of a Swarm service's replicas.
    pub async fn service_containers(&self, service: &str) -> Result<Vec<String>, EngineError> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("com.docker.swarm.service.id={service}")],
        )]);
        let containers = self
            .client()
            .await?
            .list_containers(Some(
                ListContainersOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await?;
        Ok(containers.into_iter().filter_map(|c| c.id).collect())
    }
}
