//! Terminals: a TTY attached to the live deployment's running container (`docker exec`), or
//! to a fresh task container whose main process is the shell (`fresh`). The fresh one is
//! recorded as a run (trigger `terminal`, no output kept) so the sweep removes it if its
//! session's process dies. At most `exec.sessions_per_user` terminals per user here.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::Tasks;
use crate::db::{self, projects::Project, runs::NewRun};
use crate::deploy::DeployError;
use crate::docker::{Attached, TaskSpec, TtyTarget};
use crate::model::RunTrigger;

/// What a terminal asks for.
pub struct Ask<'a> {
    pub project: &'a Project,
    pub user: Uuid,
    /// A new container from the live image instead of the running one.
    pub fresh: bool,
    pub shell: String,
    pub cols: u16,
    pub rows: u16,
}

/// An open terminal; dropping it frees the user's slot (and `close` removes a fresh
/// container).
pub struct Terminal {
    pub attached: Attached,
    /// The container it runs in.
    pub container: String,
    /// The run recording a fresh container.
    pub run: Option<Uuid>,
    slot: Slot,
}

struct Slot {
    tasks: Arc<Tasks>,
    user: Uuid,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.tasks.terminals();
        if let Some(n) = open.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.user);
            }
        }
    }
}

impl Tasks {
    fn terminals(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<Uuid, usize>> {
        self.terminals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn take_slot(self: &Arc<Self>, user: Uuid) -> Result<Slot, DeployError> {
        let limit = self.config.exec.sessions_per_user;
        let mut open = self.terminals();
        let n = open.entry(user).or_insert(0);
        if *n >= limit {
            return Err(DeployError::Conflict(format!(
                "you have {limit} terminals open (exec.sessions_per_user); close one first"
            )));
        }
        *n += 1;
        Ok(Slot {
            tasks: self.clone(),
            user,
        })
    }

    /// Opens a terminal as `ask` says.
    pub async fn open_terminal(self: &Arc<Self>, ask: Ask<'_>) -> Result<Terminal, DeployError> {
        let slot = self.take_slot(ask.user)?;
        let unavailable = |e: crate::docker::EngineError| DeployError::Unavailable(e.to_string());
        if !ask.fresh {
            let live = db::deployments::live_for_project(&self.db, ask.project.id)
                .await?
                .ok_or_else(|| {
                    DeployError::Conflict(
                        "the project has no live deployment; deploy it first".into(),
                    )
                })?;
            let container = live.container_id.clone().ok_or_else(|| {
                DeployError::Conflict(
                    "the app runs as a Swarm service (or a static site): open a fresh container with ?fresh=true".into(),
                )
            })?;
            let running = self
                .docker
                .container_status(&container)
                .await
                .map_err(unavailable)?
                .is_some_and(|s| s.running);
            if !running {
                return Err(DeployError::Conflict(
                    "the app's container is not running; start it, or open a fresh container with ?fresh=true".into(),
                ));
            }
            let attached = self
                .docker
                .exec_tty(
                    &container,
                    vec![ask.shell],
                    vec!["TERM=xterm-256color".into()],
                    ask.cols,
                    ask.rows,
                )
                .await
                .map_err(unavailable)?;
            return Ok(Terminal {
                attached,
                container,
                run: None,
                slot,
            });
        }
        let context = self.deployer.task_context(ask.project).await?;
        let run = db::runs::create_run(
            &self.db,
            NewRun {
                project_id: ask.project.id,
                job_id: None,
                command: vec![ask.shell.clone()],
                trigger: RunTrigger::Terminal,
                created_by: Some(ask.user),
                deployment_id: Some(context.deployment),
            },
        )
        .await?;
        let mut env = context.env;
        env.push("TERM=xterm-256color".into());
        let started = self
            .docker
            .start_task(TaskSpec {
                project: ask.project.id,
                run: run.id,
                image: context.image,
                command: vec![ask.shell],
                env,
                limits: context.limits,
                network: context.network,
                volumes: context.volumes,
                files: context.files,
                tty: true,
            })
            .await;
        let container = match started {
            Ok(container) => container,
            Err(e) => {
                self.end(&run, None, Some(&format!("cannot start: {e}")))
                    .await;
                return Err(unavailable(e));
            }
        };
        let _ = db::runs::set_container(&self.db, run.id, &container).await;
        match self.docker.attach_tty(&container, ask.cols, ask.rows).await {
            Ok(attached) => Ok(Terminal {
                attached,
                container,
                run: Some(run.id),
                slot,
            }),
            Err(e) => {
                let _ = self.docker.remove_container(&container).await;
                self.end(&run, None, Some(&format!("cannot attach: {e}")))
                    .await;
                Err(unavailable(e))
            }
        }
    }

    /// Sets a terminal's size.
    pub async fn resize_terminal(&self, terminal: &Terminal, cols: u16, rows: u16) {
        if let Err(e) = self
            .docker
            .resize_tty(&terminal.attached.target, cols, rows)
            .await
        {
            tracing::debug!(error = %e, "cannot resize a terminal");
        }
    }

    /// The runner of a fresh terminal is alive.
    pub async fn terminal_alive(&self, terminal: &Terminal) {
        if let Some(run) = terminal.run {
            let _ = db::runs::heartbeat(&self.db, &[run]).await;
        }
    }

    /// Ends a terminal: its exit code (when its process ended), and for a fresh one, its
    /// container removed and its run ended.
    pub async fn close_terminal(&self, terminal: Terminal) -> Option<i64> {
        let mut code = None;
        for _ in 0..10 {
            code = self
                .docker
                .tty_exit(&terminal.attached.target)
                .await
                .ok()
                .flatten();
            if code.is_some() || matches!(terminal.attached.target, TtyTarget::Container(_)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if let Some(run) = terminal.run {
            let _ = self.docker.remove_container(&terminal.container).await;
            if let Ok(Some(record)) = db::runs::find_run(&self.db, run).await {
                let error = match code {
                    Some(0) => None,
                    Some(code) => Some(format!("exited with code {code}")),
                    None => Some("closed".to_string()),
                };
                self.end(&record, code, error.as_deref()).await;
            }
        }
        drop(terminal.slot);
        code
    }
}
