//! Writer of the persisted `project:` and `user:` topics (persist, then publish), and the
//! `system` heartbeat.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{Event, Hub, Topic};
use crate::db::{self, Db};

/// Persists an event of a `project:` or `user:` topic, then publishes it.
/// An in-app notification on the `user:` topic of each of `users`.
pub async fn notify_users(db: &Db, hub: &Hub, users: &[uuid::Uuid], payload: Value) {
    for user in users {
        publish(db, hub, Topic::User(*user), "notification", payload.clone()).await;
    }
}

pub async fn publish(db: &Db, hub: &Hub, topic: Topic, kind: &str, payload: Value) {
    let ts = super::timestamp();
    match db::topic_events::append(db, &topic.to_string(), kind, &payload.to_string(), ts).await {
        Ok(event) => hub.publish(Event::Topic {
            topic,
            seq: event.seq,
            ts,
            kind: kind.to_string(),
            payload,
        }),
        Err(e) => tracing::error!(%topic, error = %e, "cannot record topic event"),
    }
}

/// Publishes a `system` snapshot for admins every `every` until shutdown (not persisted).
pub struct Heartbeat {
    pub db: Db,
    pub hub: Arc<Hub>,
    pub docker: Arc<crate::docker::Engine>,
    pub data_dir: std::path::PathBuf,
    pub runtime_logs: Arc<super::runtime::RuntimeLogs>,
}

pub async fn system_heartbeat(state: Arc<Heartbeat>, every: Duration, shutdown: CancellationToken) {
    let seq = AtomicI64::new(0);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return,
        }
        let queued = db::jobs::count_pending(&state.db).await.ok();
        let docker = state.docker.version().await.ok();
        let disk_free = disk_free_bytes(&state.data_dir);
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
