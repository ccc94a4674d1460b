//! Deploy notifications: a deployment's status change goes to its project's topic (and, for a
//! project imported from GitHub, to the commit as a commit status), and the end of a deploy
//! (live or failed) becomes a notification on the owner's `user:` topic and goes to the
//! owner's notification channels that listen to it.

use serde_json::json;
use uuid::Uuid;

use super::DeploymentStatus;
use super::log::Sink;
use crate::db;
use crate::hub::{Topic, record};

pub async fn deployment_status(
    sink: &Sink,
    project: Uuid,
    deployment: Uuid,
    status: DeploymentStatus,
    error: Option<&str>,
) {
    sink.commit_statuses.report(deployment, status);
    sink.metrics.deployment_status(deployment, status);
    let payload = json!({"deployment": deployment, "status": status.as_str()});
    record::publish(
        &sink.db,
        &sink.hub,
        Topic::Project(project),
        "status",
        payload,
    )
    .await;
    if !matches!(status, DeploymentStatus::Live | DeploymentStatus::Failed) {
        return;
    }
    let Ok(Some(p)) = db::projects::find(&sink.db, project).await else {
        return;
    };
    let (level, title) = if status == DeploymentStatus::Live {
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
    // Everyone on the project's team who hears of it, not whoever created it (a member who
    // left hears nothing more).
    let recipients = db::teams::notice_recipients(&sink.db, &p)
        .await
        .unwrap_or_else(|_| vec![p.owner_id]);
    record::notify_users(&sink.db, &sink.hub, &recipients, payload).await;
    let notice = crate::notifications::deploy_notice(
        &p,
        deployment,
        status == DeploymentStatus::Live,
        error,
        &sink.base,
    );
    sink.notifier.emit_to_all(&recipients, notice).await;
}
