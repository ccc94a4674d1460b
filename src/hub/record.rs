//! Writers of the persisted `project:` and `user:` topics, and the `system` heartbeat.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Event, Topic};
use crate::app::AppState;
use crate::db;

/// Persists an event of a `project:` or `user:` topic, then publishes it.
pub async fn publish(state: &AppState, topic: Topic, kind: &str, payload: Value) {
    let ts = super::timestamp();
    match db::topic_events::append(
        &state.db,
        &topic.to_string(),
        kind,
        &payload.to_string(),
        ts,
    )
    .await
    {
        Ok(event) => state.hub.publish(Event::Topic {
            topic,
            seq: event.seq,
            ts,
            kind: kind.to_string(),
            payload,
        }),
        Err(e) => tracing::error!(%topic, error = %e, "cannot record topic event"),
    }
}

/// A deployment of `project` changed status: the project topic, and at the end of a deploy a
/// notification for the project's owner.
pub async fn deployment_status(
    state: &AppState,
    project: Uuid,
    deployment: Uuid,
    status: &str,
    error: Option<&str>,
) {
    let payload = json!({"deployment": deployment, "status": status});
    publish(state, Topic::Project(project), "status", payload).await;
    if status != db::deployments::LIVE && status != db::deployments::FAILED {
        return;
    }
    let Ok(Some(p)) = db::projects::find(&state.db, project).await else {
        return;
    };
    let (level, title) = if status == db::deployments::LIVE {
        ("success", format!("{} is live", p.name))
    } else {
        ("error", format!("deploy of {} failed", p.name))
    };
    let payload = json!({
        "level": level,
        "title": title,
        "body": error.unwrap_or(""),
        "project": project,
        "deployment": deployment,
    });
    publish(state, Topic::User(p.owner_id), "notification", payload).await;
}

/// Publishes a `system` snapshot for admins every `every` until shutdown (not persisted).
pub async fn system_heartbeat(state: Arc<AppState>, every: Duration, shutdown: CancellationToken) {
    let seq = AtomicI64::new(0);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return,
        }
        let queued = db::jobs::count_pending(&state.db).await.ok();
        let docker = state.docker.version().await.ok();
        let disk_free = disk_free_bytes(&state.config.data_dir);
        let payload = json!({
            "jobs_pending": queued,
            "docker_reachable": docker.is_some(),
            "docker_version": docker,
            "disk_free_bytes": disk_free,
            "runtime_log_followers": state.runtime_logs.active(),
        });
        let seq = seq.fetch_add(1, Ordering::Relaxed) + 1;
        state.hub.publish(Event::Topic {
            topic: Topic::System,
            seq,
            ts: super::timestamp(),
            kind: "health".into(),
            payload,
        });
    }
}

fn disk_free_bytes(path: &std::path::Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(path).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}
