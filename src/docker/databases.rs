//! Database containers: one per one-click database, labelled `shard.database=<id>` (the
//! sweep and `managed_containers` leave them alone), on a bridge network of its own that no
//! app shares, with its volume at its data directory and no published port unless an admin
//! asked for one. Attaching joins it to a project's network under its name; commands run in it
//! through the engine (readiness checks), never over the network.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, Mount, MountType, NetworkConnectRequest,
    NetworkDisconnectRequest, PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use uuid::Uuid;

use super::{Engine, EngineError, LABEL_INSTANCE, LABEL_MANAGED, is_not_found};
use crate::config::SubnetPool;

/// The label naming the database's id in shard.
pub const LABEL_DATABASE: &str = "shard.database";

/// Why a command in a container could not be run to its end.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Its output could not be written where it was going (or its input read).
    #[error("{0}")]
    Write(std::io::Error),
}

/// The last 8 KiB of a command's error output.
#[derive(Default)]
struct Tail(Vec<u8>);

impl Tail {
    const MAX: usize = 8192;

    fn push(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
        if self.0.len() > Self::MAX {
            self.0.drain(..self.0.len() - Self::MAX);
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0).trim().to_string()
    }
}

/// A writer that keeps at most `left` bytes and drops the rest.
struct AtMost<'a> {
    inner: &'a mut Vec<u8>,
    left: usize,
}

trait TakeAtMost<'a> {
    fn take_at_most(self, n: usize) -> AtMost<'a>;
}

impl<'a> TakeAtMost<'a> for &'a mut Vec<u8> {
    fn take_at_most(self, n: usize) -> AtMost<'a> {
        AtMost {
            inner: self,
            left: n,
        }
    }
}

impl tokio::io::AsyncWrite for AtMost<'_> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let keep = buf.len().min(self.left);
        self.left -= keep;
        self.inner.extend_from_slice(&buf[..keep]);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// A database container to create and start.
pub struct DatabaseRun {
    pub id: Uuid,
    /// The container's name.
    pub name: String,
    pub image: String,
    pub env: Vec<String>,
    /// Replaces the image's command (Redis: its password and persistence flags).
    pub cmd: Option<Vec<String>>,
    pub volume: String,
    pub data_dir: String,
    pub port: u16,
    /// Published on every address of this host, when set.
    pub public_port: Option<u16>,
    pub memory_mb: i64,
    /// A copy that lives only while a backup is checked, made by this runner (no network,
    /// removed after; any a crash left go at the runner's next start).
    pub throwaway: Option<String>,
    /// A file put into the data directory before the server first starts (a Redis RDB).
    pub seed: Option<Seed>,
}

/// A file streamed into a container's data directory before it starts.
pub struct Seed {
    pub name: String,
    /// Exactly what `reader` yields.
    pub size: u64,
    pub reader: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
}

impl Seed {
    /// The file as a tar stream: header, content, padding and end blocks.
    fn into_tar(
        self,
    ) -> Result<
        impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
        std::io::Error,
    > {
        use futures_util::StreamExt;
        let mut header = tar::Header::new_gnu();
        header.set_path(&self.name)?;
        header.set_size(self.size);
        header.set_mode(0o644);
        header.set_mtime(chrono::Utc::now().timestamp().max(0) as u64);
        header.set_cksum();
        let padding = (512 - (self.size % 512) as usize) % 512;
        let head = futures_util::stream::once(async move {
            Ok(bytes::Bytes::copy_from_slice(header.as_bytes()))
        });
        let tail =
            futures_util::stream::once(
                async move { Ok(bytes::Bytes::from(vec![0u8; padding + 1024])) },
            );
        let body = tokio_util::io::ReaderStream::with_capacity(self.reader, 1 << 16);
        Ok(head.chain(body).chain(tail))
    }
}

/// The label of a throwaway database container (a backup's check).
pub(super) const LABEL_THROWAWAY: &str = "shard.throwaway";
/// The process (per data dir) that made a throwaway container.
pub(super) const LABEL_RUNNER: &str = "shard.runner";

impl Engine {
    fn database_labels(&self, id: Uuid) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_INSTANCE.to_string(), self.instance.clone()),
            (LABEL_DATABASE.to_string(), id.to_string()),
        ])
    }

    /// The database's own network (created if missing).
    pub async fn ensure_database_network(
        &self,
        id: Uuid,
        subnets: &SubnetPool,
    ) -> Result<String, EngineError> {
        let name = format!("shard-db-{}", id.simple());
        self.ensure_bridge(&name, self.database_labels(id), id, subnets)
            .await?;
        Ok(name)
    }

    /// Creates and starts the database's container on its own network (a leftover container
    /// of the same name is replaced; the data is in the volume). Answers its id.
    pub async fn run_database(
        &self,
        run: DatabaseRun,
        network: &str,
    ) -> Result<String, EngineError> {
        let docker = self.client().await?;
        self.remove_named(&run.name).await?;
        self.remove_labelled(run.id).await?;
        let port_key = format!("{}/tcp", run.port);
        let port_bindings = run.public_port.map(|port| {
            HashMap::from([(
                port_key.clone(),
                Some(vec![PortBinding {
                    host_ip: Some("0.0.0.0".into()),
                    host_port: Some(port.to_string()),
                }]),
            )])
        });
        let host_config = HostConfig {
            init: Some(true),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            port_bindings,
            memory: Some(run.memory_mb * 1024 * 1024),
            memory_swap: Some(run.memory_mb * 1024 * 1024),
            pids_limit: Some(1024),
            security_opt: Some(vec!["no-new-privileges:true".into()]),
            cap_drop: Some(vec!["NET_RAW".into(), "MKNOD".into(), "AUDIT_WRITE".into()]),
            network_mode: Some(network.to_string()),
            // A throwaway copy's volume is anonymous: it goes with the container.
            mounts: Some(vec![Mount {
                target: Some(run.data_dir.clone()),
                source: (!run.volume.is_empty()).then(|| run.volume.clone()),
                typ: Some(MountType::VOLUME),
                read_only: Some(false),
                ..Default::default()
            }]),
            log_config: Some(bollard::models::HostConfigLogConfig {
                typ: Some("json-file".into()),
                config: Some(HashMap::from([
                    ("max-size".to_string(), "10m".to_string()),
                    ("max-file".to_string(), "3".to_string()),
                ])),
            }),
            ..Default::default()
        };
        let mut labels = self.database_labels(run.id);
        if let Some(runner) = &run.throwaway {
            labels.insert(LABEL_THROWAWAY.to_string(), "true".to_string());
            labels.insert(LABEL_RUNNER.to_string(), runner.clone());
        }
        let body = ContainerCreateBody {
            image: Some(run.image.clone()),
            env: Some(run.env),
            cmd: run.cmd,
            labels: Some(labels),
            exposed_ports: Some(vec![port_key]),
            host_config: Some(host_config),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default()
            .name(&run.name)
            .build();
        let created = docker.create_container(Some(options), body).await?;
        if let Some(seed) = run.seed {
            let options = bollard::query_parameters::UploadToContainerOptionsBuilder::default()
                .path(&run.data_dir)
                .build();
            let tar = seed.into_tar().map_err(|e| EngineError::Unreachable {
                endpoint: self.endpoint.clone(),
                reason: format!("cannot make the seed archive: {e}"),
            })?;
            docker
                .upload_to_container(&created.id, Some(options), bollard::body_try_stream(tar))
                .await?;
        }
        docker
            .start_container(
                &created.id,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await?;
        Ok(created.id)
    }

    /// Removes every throwaway container of this installation (left by a crash mid-check).
    pub async fn remove_throwaways(&self, runner: &str) -> Result<usize, EngineError> {
        let filters = self.owned_filter(Some(format!("{LABEL_THROWAWAY}=true")));
        let containers = self.containers_matching(&filters).await?;
        // Another instance's are its own to remove (it may be checking with them now); those
        // of versions before runners were named are anyone's.
        let mine: Vec<String> = containers
            .into_iter()
            .filter(|c| {
                let labels = c.labels.as_ref();
                labels
                    .and_then(|l| l.get(LABEL_RUNNER))
                    .is_none_or(|r| r == runner)
            })
            .filter_map(|c| c.id)
            .collect();
        for id in &mine {
            self.remove_container(id).await?;
        }
        Ok(mine.len())
    }

    /// Removes every container of database (or throwaway copy) `id`, whatever its name
    /// (names from older versions too): never two on one volume.
    async fn remove_labelled(&self, id: Uuid) -> Result<(), EngineError> {
        let filters = self.owned_filter(Some(format!("{LABEL_DATABASE}={id}")));
        for container in self.container_ids(&filters).await? {
            self.remove_container(&container).await?;
        }
        Ok(())
    }

    /// Removes the container called `name` (and its anonymous volumes), if there is one.
    pub async fn remove_named(&self, name: &str) -> Result<(), EngineError> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self
            .client()
            .await?
            .remove_container(name, Some(options))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Joins `container` to `network`, reachable there as `alias`; already joined is fine.
    pub async fn connect_network(
        &self,
        network: &str,
        container: &str,
        alias: &str,
    ) -> Result<(), EngineError> {
        let request = NetworkConnectRequest {
            container: container.to_string(),
            endpoint_config: Some(EndpointSettings {
                aliases: Some(vec![alias.to_string()]),
                ..Default::default()
            }),
        };
        match self.client().await?.connect_network(network, request).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError { message, .. })
                if message.contains("already exists") =>
            {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Takes `container` off `network`; not joined (or either gone) is fine.
    pub async fn disconnect_network(
        &self,
        network: &str,
        container: &str,
    ) -> Result<(), EngineError> {
        let request = NetworkDisconnectRequest {
            container: container.to_string(),
            force: Some(true),
        };
        match self
            .client()
            .await?
            .disconnect_network(network, request)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError { message, .. })
                if message.contains("is not connected") =>
            {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Runs `cmd` in the running `container` and answers its exit code (the output is
    /// discarded).
    pub async fn exec_status(&self, container: &str, cmd: &[&str]) -> Result<i64, EngineError> {
        use futures_util::StreamExt;
        let docker = self.client().await?;
        let exec = docker
            .create_exec(
                container,
                bollard::exec::CreateExecOptions {
                    cmd: Some(cmd.iter().map(|c| c.to_string()).collect::<Vec<_>>()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await?;
        if let bollard::exec::StartExecResults::Attached { mut output, .. } =
            docker.start_exec(&exec.id, None).await?
        {
            while output.next().await.is_some() {}
        }
        let inspect = docker.inspect_exec(&exec.id).await?;
        Ok(inspect.exit_code.unwrap_or(-1))
    }

    async fn create_exec(
        &self,
        container: &str,
        cmd: &[&str],
        stdin: bool,
    ) -> Result<String, EngineError> {
        let exec = self
            .client()
            .await?
            .create_exec(
                container,
                bollard::exec::CreateExecOptions {
                    cmd: Some(cmd.iter().map(|c| c.to_string()).collect::<Vec<_>>()),
                    attach_stdin: Some(stdin),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await?;
        Ok(exec.id)
    }

    /// Runs `cmd` in `container`, its standard output streamed into `out` as it comes (never
    /// held whole); answers its exit code and the end of its error output.
    pub async fn exec_to<W: tokio::io::AsyncWrite + Unpin>(
        &self,
        container: &str,
        cmd: &[&str],
        out: &mut W,
    ) -> Result<(i64, String), ExecError> {
        use futures_util::StreamExt;
        use tokio::io::AsyncWriteExt;
        let docker = self.client().await?;
        let id = self.create_exec(container, cmd, false).await?;
        let mut errors = Tail::default();
        if let bollard::exec::StartExecResults::Attached { mut output, .. } = docker
            .start_exec(&id, None)
            .await
            .map_err(EngineError::from)?
        {
            while let Some(frame) = output.next().await {
                match frame.map_err(EngineError::from)? {
                    bollard::container::LogOutput::StdOut { message } => {
                        out.write_all(&message).await.map_err(ExecError::Write)?;
                    }
                    other => errors.push(&other.into_bytes()),
                }
            }
        }
        out.flush().await.map_err(ExecError::Write)?;
        let code = docker
            .inspect_exec(&id)
            .await
            .map_err(EngineError::from)?
            .exit_code
            .unwrap_or(-1);
        Ok((code, errors.text()))
    }

    /// Runs `cmd` in `container` with `input` as its standard input; answers its exit code and
    /// the end of its output.
    pub async fn exec_from<R: tokio::io::AsyncRead + Unpin>(
        &self,
        container: &str,
        cmd: &[&str],
        input: &mut R,
    ) -> Result<(i64, String), ExecError> {
        use futures_util::StreamExt;
        use tokio::io::AsyncWriteExt;
        let docker = self.client().await?;
        let id = self.create_exec(container, cmd, true).await?;
        let mut said = Tail::default();
        if let bollard::exec::StartExecResults::Attached {
            mut output,
            input: mut stdin,
        } = docker
            .start_exec(&id, None)
            .await
            .map_err(EngineError::from)?
        {
            let feed = async {
                let copied = tokio::io::copy(input, &mut stdin).await;
                let _ = stdin.shutdown().await;
                copied
            };
            let drain = async {
                while let Some(Ok(frame)) = output.next().await {
                    said.push(&frame.into_bytes());
                }
            };
            let (copied, ()) = tokio::join!(feed, drain);
            copied.map_err(ExecError::Write)?;
        }
        let code = docker
            .inspect_exec(&id)
            .await
            .map_err(EngineError::from)?
            .exit_code
            .unwrap_or(-1);
        Ok((code, said.text()))
    }

    /// Runs `cmd` in `container` and answers its exit code and output (at most 1 MiB).
    pub async fn exec_output(
        &self,
        container: &str,
        cmd: &[&str],
    ) -> Result<(i64, String), ExecError> {
        let mut out = Vec::new();
        let mut bounded = (&mut out).take_at_most(1 << 20);
        let (code, errors) = self.exec_to(container, cmd, &mut bounded).await?;
        let mut text = String::from_utf8_lossy(&out).into_owned();
        if code != 0 {
            text.push_str(&errors);
        }
        Ok((code, text))
    }

    /// Removes a database's container, network and (with `data`) volume; missing ones are fine.
    pub async fn remove_database(
        &self,
        id: Uuid,
        container_name: &str,
        volume: Option<&str>,
    ) -> Result<(), EngineError> {
        self.remove_named(container_name).await?;
        self.remove_labelled(id).await?;
        match self
            .client()
            .await?
            .remove_network(&format!("shard-db-{}", id.simple()))
            .await
        {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(volume) = volume {
            self.remove_volume(volume).await.map_err(|e| match e {
                super::RemoveVolumeError::Engine(e) => e,
                super::RemoveVolumeError::InUse => EngineError::Unreachable {
                    endpoint: self.endpoint.clone(),
                    reason: "the database's volume is still in use".into(),
                },
            })?;
        }
        Ok(())
    }
}
