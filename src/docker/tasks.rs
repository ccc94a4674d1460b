//! Task containers: one-off commands and scheduled job runs in a fresh container from an app's
//! image, with the app's environment, network, volumes, files and limits, but no published
//! port and no restart policy. They carry `shard.run=<id>` (and their project), never a
//! deployment label, so nothing that manages an app's containers (the sweep, the event
//! follower, the watchdog) mistakes one for the app. Also `exec`: a TTY attached to a
//! running container (the terminal).

use std::pin::Pin;

use bollard::container::LogOutput;
use futures_util::{Stream, StreamExt};
use uuid::Uuid;

use super::{Engine, EngineError, FileMount, Limits, VolumeMount};
use crate::model::LogStream;

/// On a task container: the run it executes.
pub const LABEL_RUN: &str = "shard.run";

/// A command to run in a task container.
pub struct TaskSpec {
    pub project: Uuid,
    pub run: Uuid,
    pub image: String,
    /// Replaces the image's `CMD` (its `ENTRYPOINT`, if any, stays, as with `docker run`).
    pub command: Vec<String>,
    pub env: Vec<String>,
    pub limits: Limits,
    pub network: String,
    pub volumes: Vec<VolumeMount>,
    pub files: Vec<FileMount>,
    /// Allocate a terminal and keep stdin open (an exec session's fresh container).
    pub tty: bool,
}

/// Output of a task container: each chunk with the stream it came from.
pub type TaskOutput =
    Pin<Box<dyn Stream<Item = Result<(LogStream, bytes::Bytes), EngineError>> + Send>>;

/// What a terminal is attached to.
#[derive(Debug, Clone)]
pub enum TtyTarget {
    /// A process started with `docker exec` in a running container.
    Exec(String),
    /// A task container whose main process is the shell.
    Container(String),
}

/// An attached terminal: bytes from the TTY, and where to write keystrokes.
pub struct Attached {
    pub target: TtyTarget,
    pub output: Pin<Box<dyn Stream<Item = Result<bytes::Bytes, EngineError>> + Send>>,
    pub input: Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

impl Engine {
    /// Creates and starts a task container; its id.
    pub async fn start_task(&self, spec: TaskSpec) -> Result<String, EngineError> {
        use bollard::models::ContainerCreateBody;
        let docker = self.client().await?;
        let mut labels = self.labels(spec.project, Uuid::nil());
        labels.remove(super::LABEL_DEPLOYMENT);
        labels.insert(LABEL_RUN.to_string(), spec.run.to_string());
        // One log file: a task's output is read as it is written.
        let host_config = super::containers::safe_host_config(
            &spec.limits,
            1,
            &spec.network,
            &spec.volumes,
            &spec.files,
        );
        let body = ContainerCreateBody {
            image: Some(spec.image),
            cmd: (!spec.command.is_empty()).then_some(spec.command),
            env: Some(spec.env),
            labels: Some(labels),
            tty: Some(spec.tty),
            open_stdin: Some(spec.tty),
            host_config: Some(host_config),
            ..Default::default()
        };
        let options = bollard::query_parameters::CreateContainerOptionsBuilder::default()
            .name(&format!("shard-run-{}", spec.run.simple()))
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
        Ok(created.id)
    }

    /// Everything a task container printed, from its start, until it stops.
    pub async fn task_output(&self, id: &str) -> Result<TaskOutput, EngineError> {
        let docker = self.client().await?;
        let options = bollard::query_parameters::LogsOptionsBuilder::default()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .tail("all")
            .build();
        Ok(docker
            .logs(id, Some(options))
            .filter_map(|chunk| async move {
                match chunk {
                    Ok(LogOutput::StdErr { message }) => Some(Ok((LogStream::Stderr, message))),
                    Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                        Some(Ok((LogStream::Stdout, message)))
                    }
                    Ok(LogOutput::StdIn { .. }) => None,
                    Err(e) => Some(Err(e.into())),
                }
            })
            .boxed())
    }

    /// Waits for a task container to stop; its exit code.
    pub async fn wait_task(&self, id: &str) -> Result<i64, EngineError> {
        let docker = self.client().await?;
        let mut waits =
            docker.wait_container(id, None::<bollard::query_parameters::WaitContainerOptions>);
        match waits.next().await {
            Some(Ok(response)) => Ok(response.status_code),
            // bollard reports a non-zero exit as an error carrying the code.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(e.into()),
            None => Ok(self
                .container_status(id)
                .await?
                .and_then(|s| s.exit_code)
                .unwrap_or(-1)),
        }
    }

    /// Kills a task container at once (SIGKILL: its exit code is 137); a stopped or missing
    /// one is fine.
    pub async fn kill_task(&self, id: &str) -> Result<(), EngineError> {
        let docker = self.client().await?;
        let options = bollard::query_parameters::KillContainerOptionsBuilder::default()
            .signal("KILL")
            .build();
        match docker.kill_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The task containers of this installation, with their run ids.
    pub async fn task_containers(&self) -> Result<Vec<(String, Uuid)>, EngineError> {
        let filters = self.owned_filter(Some(LABEL_RUN.to_string()));
        Ok(self
            .containers_matching(&filters)
            .await?
            .into_iter()
            .filter_map(|c| {
                let run = c
                    .labels?
                    .get(LABEL_RUN)
                    .and_then(|r| Uuid::parse_str(r).ok())?;
                Some((c.id?, run))
            })
            .collect())
    }

    /// Attaches a new TTY running `command` to a running container.
    pub async fn exec_tty(
        &self,
        container: &str,
        command: Vec<String>,
        env: Vec<String>,
        cols: u16,
        rows: u16,
    ) -> Result<Attached, EngineError> {
        let docker = self.client().await?;
        let exec = docker
            .create_exec(
                container,
                bollard::exec::CreateExecOptions {
                    cmd: Some(command),
                    env: Some(env),
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(true),
                    ..Default::default()
                },
            )
            .await?;
        let started = docker
            .start_exec(
                &exec.id,
                Some(bollard::exec::StartExecOptions {
                    detach: false,
                    tty: true,
                    output_capacity: None,
                }),
            )
            .await?;
        let bollard::exec::StartExecResults::Attached { output, input } = started else {
            return Err(EngineError::Unreachable {
                endpoint: self.endpoint.clone(),
                reason: "the engine did not attach the terminal".into(),
            });
        };
        let target = TtyTarget::Exec(exec.id);
        // A resize before the process reads its size is harmless; one that fails is not fatal.
        let _ = self.resize_tty(&target, cols, rows).await;
        Ok(Attached {
            target,
            output: tty_bytes(output),
            input,
        })
    }

    /// Attaches to a task container started with a TTY (`TaskSpec::tty`), from its first
    /// output on.
    pub async fn attach_tty(
        &self,
        container: &str,
        cols: u16,
        rows: u16,
    ) -> Result<Attached, EngineError> {
        let docker = self.client().await?;
        let options = bollard::query_parameters::AttachContainerOptionsBuilder::default()
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .stream(true)
            .logs(true)
            .build();
        let attached = docker.attach_container(container, Some(options)).await?;
        let target = TtyTarget::Container(container.to_string());
        let _ = self.resize_tty(&target, cols, rows).await;
        Ok(Attached {
            target,
            output: tty_bytes(attached.output),
            input: attached.input,
        })
    }

    /// Sets a terminal's size.
    pub async fn resize_tty(
        &self,
        target: &TtyTarget,
        cols: u16,
        rows: u16,
    ) -> Result<(), EngineError> {
        let docker = self.client().await?;
        match target {
            TtyTarget::Exec(exec) => {
                docker
                    .resize_exec(
                        exec,
                        bollard::exec::ResizeExecOptions {
                            height: rows,
                            width: cols,
                        },
                    )
                    .await?
            }
            TtyTarget::Container(container) => {
                let options =
                    bollard::query_parameters::ResizeContainerTTYOptionsBuilder::default()
                        .h(i32::from(rows))
                        .w(i32::from(cols))
                        .build();
                docker.resize_container_tty(container, options).await?
            }
        }
        Ok(())
    }

    /// A terminal's exit code once its process ended (`None` while it runs).
    pub async fn tty_exit(&self, target: &TtyTarget) -> Result<Option<i64>, EngineError> {
        let docker = self.client().await?;
        match target {
            TtyTarget::Exec(exec) => {
                let inspect = docker.inspect_exec(exec).await?;
                Ok(if inspect.running == Some(true) {
                    None
                } else {
                    inspect.exit_code.or(Some(-1))
                })
            }
            TtyTarget::Container(container) => Ok(self
                .container_status(container)
                .await?
                .filter(|s| !s.running)
                .map(|s| s.exit_code.unwrap_or(-1))),
        }
    }
}

type LogStreamBox = Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;

/// A TTY's output as plain bytes (a TTY merges stdout and stderr).
fn tty_bytes(
    output: LogStreamBox,
) -> Pin<Box<dyn Stream<Item = Result<bytes::Bytes, EngineError>> + Send>> {
    output
        .filter_map(|chunk| async move {
            match chunk {
                Ok(LogOutput::StdIn { .. }) => None,
                Ok(other) => Some(Ok(other.into_bytes())),
                Err(e) => Some(Err(e.into())),
            }
        })
        .boxed()
}
