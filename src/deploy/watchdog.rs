//! The watchdog of running apps: every `health.interval_secs` it probes each live app's
//! health path. `health.failures` failed probes in a row restart the app through the
//! health-gated switch (a `restart` deployment, never `docker restart`), with an
//! `app.unhealthy` and an `app.restarted` notification. Restarts — the watchdog's and those
//! Docker's restart policy makes after a crash — are counted per project; reaching
//! `health.crash_loop_restarts` within the window stops the container and leaves the app
//! `crashed` (the recovery sweep does not start it again) with an `app.crash_loop`
//! notification, until someone starts, restarts or deploys it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Deployer, DeploymentStatus as S};
use crate::db::{self, deployments::Deployment, projects::Project};
use crate::hub::{Topic, record};
use crate::notifications::Notice;

/// What the watchdog remembers of one project.
#[derive(Default)]
struct Watch {
    /// The deployment the counts below are about.
    deployment: Option<Uuid>,
    failures: u32,
    /// Docker's restart count last seen.
    docker_restarts: i64,
    /// When restarts happened, within the window.
    restarts: VecDeque<Instant>,
}

pub async fn watch(
    deployer: Arc<Deployer>,
    leadership: crate::cluster::Leadership,
    shutdown: CancellationToken,
) {
    let config = deployer.config.health.clone();
    if config.interval_secs == 0 {
        return;
    }
    let mut ticker = tokio::time::interval(Duration::from_secs(config.interval_secs));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut watches: HashMap<Uuid, Watch> = HashMap::new();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        // One watchdog per installation: the leading instance's.
        if !leadership.is_leader() {
            watches.clear();
            continue;
        }
        let live = match db::deployments::with_status(&deployer.db, &[S::Live]).await {
            Ok(live) => live,
            Err(e) => {
                tracing::debug!(error = %e, "watchdog: cannot list live deployments");
                continue;
            }
        };
        watches.retain(|p, _| live.iter().any(|d| d.project_id == *p));
        deployer
            .crash_looped()
            .retain(|id| live.iter().any(|d| d.id == *id));
        for deployment in live {
            let watch = watches.entry(deployment.project_id).or_default();
            if let Err(e) = deployer.check(&deployment, watch).await {
                tracing::debug!(deployment = %deployment.id, error = %e, "watchdog check failed");
            }
        }
    }
}

impl Deployer {
    async fn check(&self, deployment: &Deployment, watch: &mut Watch) -> anyhow::Result<()> {
        let (Some(container), Some(upstream)) = (&deployment.container_id, &deployment.upstream)
        else {
            return Ok(());
        };
        if self.is_crash_looped(deployment.id)
            || db::jobs::project_busy(&self.db, deployment.project_id).await?
            || !db::deployments::queued_for_project(&self.db, deployment.project_id, deployment.id)
                .await?
                .is_empty()
        {
            // Stopped for good, or a deploy or restart is on its way: nothing to judge now.
            return Ok(());
        }
        let Some(project) = db::projects::find(&self.db, deployment.project_id).await? else {
            return Ok(());
        };
        let h = &self.config.health;
        let window = Duration::from_secs(h.crash_loop_window_secs);
        if watch.deployment != Some(deployment.id) {
            // A new deployment starts with a clean slate, but the restart history stays:
            // a restart deployment that crashes again is still the same loop.
            watch.deployment = Some(deployment.id);
            watch.failures = 0;
            watch.docker_restarts = 0;
        }
        let status = self.docker.container_status(container).await?;
        if let Some(status) = &status {
            let new = status.restart_count - watch.docker_restarts;
            if new > 0 {
                for _ in 0..new.min(i64::from(h.crash_loop_restarts)) {
                    watch.restarts.push_back(Instant::now());
                }
                self.notify_owner(
                    &project,
                    deployment,
                    "app.restarted",
                    format!(
                        "{} crashed and Docker restarted it ({} times so far)",
                        project.name, status.restart_count
                    ),
                )
                .await;
            }
            watch.docker_restarts = status.restart_count;
        }
        while watch
            .restarts
            .front()
            .is_some_and(|at| at.elapsed() > window)
        {
            watch.restarts.pop_front();
        }
        if watch.restarts.len() >= h.crash_loop_restarts as usize {
            watch.restarts.clear();
            return self.stop_crash_loop(&project, deployment, container).await;
        }
        if status.as_ref().is_some_and(|s| !s.running) {
            // Down between Docker's restarts: the restart count tells the story.
            return Ok(());
        }
        let url = format!("http://{upstream}{}", project.health_path);
        let timeout = Duration::from_secs(self.config.health.interval_secs.clamp(1, 10));
        let healthy = matches!(
            self.http.get(&url).timeout(timeout).send().await,
            Ok(r) if r.status().is_success() || r.status().is_redirection()
        );
        if healthy {
            watch.failures = 0;
            return Ok(());
        }
        watch.failures += 1;
        if watch.failures < h.failures {
            return Ok(());
        }
        watch.failures = 0;
        watch.restarts.push_back(Instant::now());
        let why = format!(
            "GET {} failed {} times in a row",
            project.health_path, h.failures
        );
        self.notify_owner(
            &project,
            deployment,
            "app.unhealthy",
            format!("{} is unhealthy: {why}", project.name),
        )
        .await;
        match self.restart(&project, None).await {
            Ok(restart) => {
                self.notify_owner(
                    &project,
                    &restart,
                    "app.restarted",
                    format!("{} was restarted because it was unhealthy", project.name),
                )
                .await
            }
            Err(e) => tracing::warn!(project = %project.id, error = %e, "watchdog restart refused"),
        }
        Ok(())
    }

    async fn stop_crash_loop(
        &self,
        project: &Project,
        deployment: &Deployment,
        container: &str,
    ) -> anyhow::Result<()> {
        tracing::warn!(project = %project.id, "crash loop: stopping the app");
        self.crash_looped().insert(deployment.id);
        self.docker.stop_container(container, 5).await?;
        self.proxy.container_event(container, false);
        self.proxy.refresh_or_log().await;
        record::publish(
            &self.db,
            &self.hub,
            Topic::Project(project.id),
            "runtime",
            json!({"runtime": self.proxy.runtime(project.id).as_str()}),
        )
        .await;
        self.notify_owner(
            project,
            deployment,
            "app.crash_loop",
            format!(
                "{} kept crashing ({} restarts within {} s) and was stopped; start, restart or deploy it when fixed",
                project.name,
                self.config.health.crash_loop_restarts,
                self.config.health.crash_loop_window_secs
            ),
        )
        .await;
        Ok(())
    }

    /// In-app notification (the owner's `user:` topic) and the listening channels.
    async fn notify_owner(
        &self,
        project: &Project,
        deployment: &Deployment,
        event: &str,
        text: String,
    ) {
        let url = format!("{}/projects/{}", self.base, project.id);
        record::publish(
            &self.db,
            &self.hub,
            Topic::User(project.owner_id),
            "notification",
            json!({
                "level": if event == "app.restarted" { "warning" } else { "error" },
                "title": text,
                "body": "",
                "project": project.id,
                "deployment": deployment.id,
                "event": event,
            }),
        )
        .await;
        self.notifier
            .emit_logged(
                project.owner_id,
                Notice {
                    event: event.into(),
                    title: text,
                    body: String::new(),
                    project_id: Some(project.id),
                    project: Some(project.name.clone()),
                    deployment_id: Some(deployment.id),
                    url: Some(url),
                },
            )
            .await;
    }
}
