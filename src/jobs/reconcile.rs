//! Startup reconcile: make Docker's `shard.managed` containers agree with the database.
//! Live deployments whose container stopped are started again (and their published port
//! re-read); containers of no live or in-progress deployment are removed. Deploys a dead
//! process left in progress are recovered by the queue and end `failed` (see `deploy::run`).

use crate::app::AppState;
use crate::db::{self, deployments as deps};

pub async fn at_startup(state: &AppState) {
    if !db::is_postgres(&state.db) {
        // With SQLite no other process shares the queue: every running job is an orphan.
        match db::jobs::expire_running_leases(&state.db).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(jobs = n, "recovering jobs interrupted by a restart"),
            Err(e) => tracing::error!(error = %e, "cannot recover interrupted jobs"),
        }
    }
    if let Err(e) = containers(state).await {
        tracing::warn!(error = %format!("{e:#}"), "container reconcile skipped");
    }
}

async fn containers(state: &AppState) -> anyhow::Result<()> {
    let managed = state.docker.managed_containers().await?;
    for container in managed {
        let deployment = match container.deployment {
            Some(id) => deps::find(&state.db, id).await?,
            None => None,
        };
        let keep = deployment.as_ref().map(|d| d.status.as_str());
        match (deployment.as_ref(), keep) {
            (Some(d), Some(deps::LIVE)) => {
                if !container.running {
                    tracing::info!(deployment = %d.id, "starting the stopped live container");
                    state.docker.start_container(&container.id).await?;
                }
                if let Some(status) = state.docker.container_status(&container.id).await?
                    && let Some(port) = status.host_port
                {
                    let upstream = format!("127.0.0.1:{port}");
                    if d.upstream.as_deref() != Some(upstream.as_str()) {
                        deps::set_upstream(&state.db, d.id, &upstream).await?;
                    }
                }
            }
            // Stopped by its owner, or a deploy the queue will conclude: leave it.
            (Some(_), Some(status))
                if status == deps::STOPPED || deps::IN_PROGRESS.contains(&status) => {}
            _ => {
                tracing::info!(container = %container.id, "removing orphan container");
                state.docker.remove_container(&container.id).await?;
            }
        }
    }
    Ok(())
}
