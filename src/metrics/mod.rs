//! Metrics of the apps and databases: the collector samples every running app container and
//! every running one-click database each `metrics.interval_secs` (Docker stats, one-shot; under
//! Swarm the replicas on this machine, summed, since an engine reports stats of its own
//! containers only), stores the samples, publishes an app's live on `project:<id>:metrics`, and every few minutes rolls raw samples up into 1-minute and 1-hour
//! averages and drops what is past its retention. With nothing running a tick is two queries.

pub mod host;
pub mod prom;
pub mod volumes;

pub use prom::Metrics;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::db::metrics::{self, Point, Retention};
use crate::db::{self, Db};
use crate::docker::{Engine, StatsReading};
use crate::hub::{Event, Hub, Topic};
use crate::model::DeploymentStatus;

/// Containers read at once.
const CONCURRENCY: usize = 8;
/// Projects whose topic seq is remembered regardless of whether they run.
const MAX_COUNTERS: usize = 10_000;
/// How often samples are rolled up and old ones dropped.
const MAINTAIN_EVERY: Duration = Duration::from_secs(300);

/// Where a live deployment's samples come from: the containers on this machine that make it
/// up (the deploy domain's runtimes answer it; plain Docker has one, Swarm its local replicas).
#[async_trait::async_trait]
pub trait ContainerSource: Send + Sync {
    async fn local_containers(
        &self,
        engine: &Engine,
        deployment: &crate::db::deployments::Deployment,
    ) -> Result<Vec<String>, crate::docker::EngineError>;
}

/// How long each resolution of samples is kept, from `[metrics]`.
pub fn retention(config: &crate::config::MetricsConfig) -> Retention {
    Retention {
        raw: chrono::Duration::hours(i64::from(config.raw_retention_hours)),
        minute: chrono::Duration::days(i64::from(config.minute_retention_days)),
        hour: chrono::Duration::days(i64::from(config.hour_retention_days)),
    }
}

pub struct Collector {
    db: Db,
    docker: Arc<Engine>,
    /// Says which containers make up each live deployment.
    runtime: Arc<dyn ContainerSource>,
    hub: Arc<Hub>,
    interval: Duration,
    retention: Retention,
    /// The previous reading of each running container (CPU % needs two).
    previous: HashMap<String, StatsReading>,
    /// The last seq published on each project's metrics topic.
    seqs: HashMap<Uuid, i64>,
}

impl Collector {
    pub fn new(
        db: Db,
        docker: Arc<Engine>,
        runtime: Arc<dyn ContainerSource>,
        hub: Arc<Hub>,
        config: &crate::config::Config,
    ) -> Self {
        Self {
            db,
            docker,
            runtime,
            hub,
            interval: Duration::from_secs(config.metrics.interval_secs),
            retention: retention(&config.metrics),
            previous: HashMap::new(),
            seqs: HashMap::new(),
        }
    }

    /// Samples until `shutdown`, while this instance leads (one collector per installation).
    pub async fn run(
        mut self,
        leadership: crate::cluster::Leadership,
        shutdown: CancellationToken,
    ) {
        if self.interval.is_zero() {
            return;
        }
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut maintained: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            if !leadership.is_leader() {
                continue;
            }
            if let Err(e) = self.tick().await {
                tracing::debug!(error = %e, "metrics sample skipped");
            }
            if maintained.is_none_or(|at| at.elapsed() >= MAINTAIN_EVERY) {
                maintained = Some(Instant::now());
                if let Err(e) = maintain(&self.db, chrono::Utc::now(), &self.retention).await {
                    tracing::warn!(error = %e, "metrics roll-up failed");
                }
                if let Err(e) = volumes::sample(&self.db, &self.docker).await {
                    tracing::debug!(error = %e, "volume sizes not sampled");
                }
            }
        }
    }

    /// One sample of every live app: each of its containers on this machine (one, or the
    /// Swarm replicas that run here), summed per project.
    async fn tick(&mut self) -> anyhow::Result<()> {
        let live = db::deployments::with_status(&self.db, &[DeploymentStatus::Live]).await?;
        let mut containers: Vec<(Uuid, String)> = Vec::new();
        for deployment in &live {
            match self
                .runtime
                .local_containers(&self.docker, deployment)
                .await
            {
                Ok(ids) => containers.extend(ids.into_iter().map(|c| (deployment.project_id, c))),
                Err(e) => {
                    tracing::debug!(deployment = %deployment.id, error = %e, "no containers to sample")
                }
            }
        }
        let live: HashSet<Uuid> = live.iter().map(|d| d.project_id).collect();
        // One-click databases: one container each, on plain Docker (samples, no live topic).
        let databases = db::databases::list(&self.db, None).await?;
        let databases: HashSet<Uuid> = databases
            .into_iter()
            .filter(|d| d.status == crate::model::DatabaseState::Running)
            .filter_map(|d| {
                let id = d.id;
                containers.push((id, d.container_id?));
                Some(id)
            })
            .collect();
        if containers.is_empty() && self.previous.is_empty() {
            return Ok(());
        }
        let docker = &self.docker;
        let readings: Vec<(Uuid, String, _)> = futures_util::stream::iter(containers)
            .map(|(project, container)| async move {
                let reading = docker.stats(&container).await;
                (project, container, reading)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let ts = crate::hub::timestamp();
        let mut seen = HashSet::new();
        let mut sums: HashMap<Uuid, (f64, StatsReading)> = HashMap::new();
        for (project, container, reading) in readings {
            let reading = match reading {
                Ok(Some(reading)) => reading,
                Ok(None) => continue,
                Err(e) => {
                    tracing::debug!(%project, error = %e, "no stats for the container");
                    continue;
                }
            };
            seen.insert(container.clone());
            let before = self.previous.insert(container, reading);
            let Some(cpu) = before.and_then(|b| reading.cpu_percent(&b)) else {
                continue;
            };
            match sums.entry(project) {
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert((cpu, reading));
                }
                std::collections::hash_map::Entry::Occupied(mut e) => {
                    let (sum_cpu, sum) = e.get_mut();
                    *sum_cpu += cpu;
                    sum.add(&reading);
                }
            }
        }
        let points: Vec<(Uuid, Point)> = sums
            .into_iter()
            .map(|(project, (cpu, reading))| (project, point(ts, cpu, &reading)))
            .collect();
        self.previous.retain(|c, _| seen.contains(c));
        metrics::insert(&self.db, &points).await?;
        // Seqs only grow while shard runs (a subscriber drops what is not past its cursor),
        // so a project's counter is kept while it has a live container, and beyond that
        // while there are fewer than MAX_COUNTERS.
        if self.seqs.len() > MAX_COUNTERS {
            self.seqs.retain(|p, _| live.contains(p));
        }
        for (project, p) in points.into_iter().filter(|(s, _)| !databases.contains(s)) {
            let seq = self.seqs.entry(project).or_default();
            *seq += 1;
            self.hub.publish(Event::Topic {
                topic: Topic::ProjectMetrics(project),
                seq: *seq,
                ts,
                kind: "metrics".into(),
                payload: serde_json::to_value(&p).unwrap_or_default(),
            });
        }
        Ok(())
    }
}

fn point(ts: chrono::DateTime<chrono::Utc>, cpu: f64, r: &StatsReading) -> Point {
    let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    Point {
        ts,
        cpu_percent: (cpu * 100.0).round() / 100.0,
        memory_bytes: i(r.memory_bytes),
        memory_limit_bytes: i(r.memory_limit_bytes),
        net_rx_bytes: i(r.net_rx_bytes),
        net_tx_bytes: i(r.net_tx_bytes),
        block_read_bytes: i(r.block_read_bytes),
        block_write_bytes: i(r.block_write_bytes),
        restart_count: r.restart_count,
    }
}

/// Rolls samples up (raw → 1 min → 1 h) and drops those past their retention.
pub async fn maintain(
    db: &Db,
    now: chrono::DateTime<chrono::Utc>,
    retention: &Retention,
) -> Result<(), sea_orm::DbErr> {
    metrics::roll_up(
        db,
        metrics::RAW,
        metrics::MINUTE,
        now,
        chrono::Duration::days(2),
    )
    .await?;
    metrics::roll_up(
        db,
        metrics::MINUTE,
        metrics::HOUR,
        now,
        chrono::Duration::days(14),
    )
    .await?;
    metrics::prune(db, now, retention).await?;
    Ok(())
}
