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

use super::runtime::Probe;
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

impl Watch {
    /// Takes in what the runtime reports of `deployment` and answers how many restarts
    /// happened since the last look. A new deployment starts with a clean slate, but the
    /// restart history stays: a restart deployment that crashes again is still the same loop.
    /// At the first look at a deployment not `seen_start`, the counts are only taken in.
    fn take_in(&mut self, deployment: Uuid, probe: &Probe, seen_start: bool) -> i64 {
        let first_look = self.deployment != Some(deployment);
        if first_look {
            self.deployment = Some(deployment);
            self.failures = 0;
            self.docker_restarts = 0;
            self.ended.clear();
        }
        let listed: HashSet<String> = probe.ended.iter().cloned().collect();
        if first_look && !seen_start {
            self.docker_restarts = probe.restart_count.unwrap_or(0);
            self.ended = listed;
            return 0;
        }
        let mut new = 0;
        if let Some(count) = probe.restart_count {
            new += (count - self.docker_restarts).max(0);
            self.docker_restarts = count;
        }
        new += listed.difference(&self.ended).count() as i64;
        self.ended = listed;
        new
    }
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
    // The deployments already live when this instance began watching (at start or on taking
    // the lead): restarts they had before are history, not news.
    let mut inherited: Option<HashSet<Uuid>> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        // One watchdog per installation: the leading instance's.
        if !leadership.is_leader() {
            watches.clear();
            inherited = None;
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
        let inherited = inherited.get_or_insert_with(|| live.iter().map(|d| d.id).collect());
        for deployment in live {
            let watch = watches.entry(deployment.project_id).or_default();
            let seen_start = !inherited.contains(&deployment.id);
            if let Err(e) = deployer.check(&deployment, watch, seen_start).await {
                tracing::debug!(deployment = %deployment.id, error = %e, "watchdog check failed");
            }
        }
    }
}

impl Deployer {
    /// Judges one live deployment. `seen_start`: it went live while this watchdog watched, so
    /// every restart its runtime reports happened since (otherwise the first look only takes
    /// the counts in, so a restart of shard or a new leader does not take a running app's old
    /// restarts for a crash loop).
    async fn check(
        &self,
        deployment: &Deployment,
        watch: &mut Watch,
        seen_start: bool,
    ) -> anyhow::Result<()> {
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
        let Some(probe) = self.runtime.probe(deployment).await? else {
            return Ok(()); // nothing running to judge (a static site, a removed container)
        };
        let new = watch.take_in(deployment.id, &probe, seen_start);
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
        self.runtime.halt(deployment).await?;
        match (&deployment.service_id, &deployment.container_id) {
            // Unrouted now: a replica being stopped may run for its stop grace period, and the
            // swarm marks its tasks unwanted only a moment after the scale.
            (Some(_), _) => {
                self.proxy
                    .set_deployment_replicas(deployment.id, Vec::new());
            }
            (None, Some(container)) => {
                self.proxy.container_event(container, false);
            }
            (None, None) => {}
        }
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

    /// In-app notification (the `user:` topic of everyone on the project's team who hears of
    /// it) and their listening channels.
    async fn notify_owner(
        &self,
        project: &Project,
        deployment: &Deployment,
        event: &str,
        text: String,
    ) {
        let url = format!("{}/projects/{}", self.base, project.id);
        let payload = json!({
            "level": if event == "app.restarted" { "warning" } else { "error" },
            "title": text,
            "body": "",
            "project": project.id,
            "deployment": deployment.id,
            "event": event,
        });
        let recipients = db::teams::notice_recipients(&self.db, project)
            .await
            .unwrap_or_else(|_| vec![project.owner_id]);
        record::notify_users(&self.db, &self.hub, &recipients, payload).await;
        self.notifier
            .emit_to_all(
                &recipients,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(restart_count: Option<i64>, ended: &[&str]) -> Probe {
        Probe {
            endpoints: Vec::new(),
            restart_count,
            ended: ended.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn restarts_are_counted_once_and_from_the_right_start() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        // Live before the watchdog began: its past restarts are taken in, not counted.
        let mut watch = Watch::default();
        assert_eq!(watch.take_in(a, &probe(Some(7), &[]), false), 0);
        assert_eq!(watch.take_in(a, &probe(Some(7), &[]), false), 0);
        assert_eq!(watch.take_in(a, &probe(Some(9), &[]), false), 2);
        // A deployment seen going live: everything its container reports is new.
        assert_eq!(watch.take_in(b, &probe(Some(3), &[]), true), 3);
        assert_eq!(watch.take_in(b, &probe(Some(3), &[]), true), 0);
        // Swarm: ended tasks count once each, old ones of an inherited service not at all.
        let mut swarm = Watch::default();
        assert_eq!(swarm.take_in(a, &probe(None, &["t1", "t2"]), false), 0);
        assert_eq!(
            swarm.take_in(a, &probe(None, &["t1", "t2", "t3"]), false),
            1
        );
        assert_eq!(swarm.take_in(a, &probe(None, &["t2", "t3"]), false), 0);
        assert_eq!(swarm.take_in(b, &probe(None, &["u1"]), true), 1);
    }
}
