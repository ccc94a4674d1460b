//! The watchdog of running apps: every `health.interval_secs` it probes each live app's
//! health path (every replica's under Swarm; the runtime says where they answer).
//! `health.failures` failed probes in a row restart the app through the health-gated switch
//! (a `restart` deployment, never `docker restart`), with an `app.unhealthy` and an
//! `app.restarted` notification. Restarts — the watchdog's, those Docker's restart policy
//! makes after a crash, and replicas the swarm starts again after one ended — are counted per
//! project; reaching `health.crash_loop_restarts` within the window stops the app (the
//! container, or the service scaled to none) and leaves it `crashed` (the recovery sweep does
//! not start it again) with an `app.crash_loop` notification, until someone starts, restarts
//! or deploys it.

use std::collections::{HashMap, HashSet, VecDeque};
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
    /// Swarm tasks already counted as restarts (only those the swarm still lists are kept).
    ended: HashSet<String>,
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
            watch.ended.clear();
        }
        let Some(probe) = self.runtime.probe(self, deployment).await? else {
            return Ok(()); // nothing running to judge (a static site, a removed container)
        };
        let mut new = 0;
        if let Some(count) = probe.restart_count {
            new += (count - watch.docker_restarts).max(0);
            watch.docker_restarts = count;
        }
        let listed: HashSet<String> = probe.ended.iter().cloned().collect();
        new += listed.difference(&watch.ended).count() as i64;
        watch.ended = listed;
        if new > 0 {
            for _ in 0..new.min(i64::from(h.crash_loop_restarts)) {
                watch.restarts.push_back(Instant::now());
            }
            let text = match probe.restart_count {
                Some(count) => format!(
                    "{} crashed and Docker restarted it ({count} times so far)",
                    project.name
                ),
                None => format!(
                    "{} crashed and the swarm started {new} replica(s) again",
                    project.name
                ),
            };
            self.notify_owner(&project, deployment, "app.restarted", text)
                .await;
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
            return self.stop_crash_loop(&project, deployment).await;
        }
        if probe.endpoints.is_empty() {
            // Down between restarts: the restart count tells the story.
            return Ok(());
        }
        let timeout = Duration::from_secs(self.config.health.interval_secs.clamp(1, 10));
        let mut healthy = true;
        for endpoint in &probe.endpoints {
            let url = format!("http://{endpoint}{}", project.health_path);
            healthy &= matches!(
                self.http.get(&url).timeout(timeout).send().await,
                Ok(r) if r.status().is_success() || r.status().is_redirection()
            );
        }
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
    ) -> anyhow::Result<()> {
        tracing::warn!(project = %project.id, "crash loop: stopping the app");
        self.crash_looped().insert(deployment.id);
        self.runtime.halt(self, deployment).await?;
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
