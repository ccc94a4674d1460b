//! shard's own metrics in the Prometheus text format (`GET /metrics`): HTTP requests by route
//! and status, deploys by outcome and step durations, queue depth, hub subscribers, and the
//! proxy's requests and upstream latency per app. Every label comes from a bounded set (route
//! patterns, status codes, step names, project ids), so the series count is bounded too.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use uuid::Uuid;

use crate::model::DeploymentStatus as S;

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Deployments whose step is being timed at once, at most (past it, steps go untimed).
const TIMED_DEPLOYMENTS: usize = 4096;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    step: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProxyLabels {
    project: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    task: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabels {
    project: String,
}

fn seconds_histogram() -> Histogram {
    // 1 ms .. ~65 s
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

fn step_histogram() -> Histogram {
    // 0.1 s .. ~27 min
    Histogram::new(exponential_buckets(0.1, 2.0, 15))
}

/// The registry and the handles the rest of shard records through.
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    deploys: Family<OutcomeLabels, Counter>,
    step_seconds: Family<StepLabels, Histogram, fn() -> Histogram>,
    proxy_requests: Family<ProxyLabels, Counter>,
    upstream_seconds: Family<AppLabels, Histogram, fn() -> Histogram>,
    queue_depth: Gauge,
    task_restarts: Family<TaskLabels, Counter>,
    hub_subscribers: Gauge,
    rss_bytes: Gauge,
    /// Each running deployment's current status and since when.
    steps: Mutex<HashMap<Uuid, (S, Instant)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("shard");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "Requests to the dashboard and API, by route pattern, method and status",
            http_requests.clone(),
        );
        let deploys = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "deploys",
            "Deploys ended, by outcome (live, failed, cancelled)",
            deploys.clone(),
        );
        let step_seconds = Family::<StepLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            step_histogram,
        );
        registry.register(
            "deploy_step_duration_seconds",
            "Time each deploy step took (fetch, build, start, health_check)",
            step_seconds.clone(),
        );
        let proxy_requests = Family::<ProxyLabels, Counter>::default();
        registry.register(
            "proxy_requests",
            "Requests the proxy forwarded to apps, by project and the app's status",
            proxy_requests.clone(),
        );
        let upstream_seconds =
            Family::<AppLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                seconds_histogram,
            );
        registry.register(
            "proxy_upstream_latency_seconds",
            "Time from forwarding a request to the app's response headers, by project",
            upstream_seconds.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register("queue_depth", "Jobs queued or running", queue_depth.clone());
        let task_restarts = Family::<TaskLabels, Counter>::default();
        registry.register(
            "task_restarts",
            "Restarts of supervised background tasks after they failed, by task",
            task_restarts.clone(),
        );
        let hub_subscribers = Gauge::default();
        registry.register(
            "hub_subscribers",
            "Live WebSocket subscriptions across all topics",
            hub_subscribers.clone(),
        );
        let rss_bytes = Gauge::default();
        registry.register(
            "resident_memory_bytes",
            "shard's resident memory",
            rss_bytes.clone(),
        );
        Self {
            registry,
            http_requests,
            deploys,
            step_seconds,
            proxy_requests,
            upstream_seconds,
            queue_depth,
            task_restarts,
            hub_subscribers,
            rss_bytes,
            steps: Mutex::default(),
        }
    }

    /// A supervised task failed and is being started again.
    pub fn task_restarted(&self, task: &'static str) {
        self.task_restarts.get_or_create(&TaskLabels { task }).inc();
    }

    /// One request answered by the dashboard or the API (`route` is the matched pattern).
    pub fn http_request(&self, route: Option<&str>, method: &str, status: u16) {
        let method = match method {
            "GET" => "GET",
            "POST" => "POST",
            "PUT" => "PUT",
            "PATCH" => "PATCH",
            "DELETE" => "DELETE",
            "HEAD" => "HEAD",
            "OPTIONS" => "OPTIONS",
            _ => "other",
        };
        self.http_requests
            .get_or_create(&HttpLabels {
                route: route.unwrap_or("unmatched").to_string(),
                method,
                status,
            })
            .inc();
    }

    /// One request the proxy forwarded to a project's app.
    pub fn proxy_request(&self, project: Uuid, status: u16, upstream: Duration) {
        let project = project.to_string();
        self.upstream_seconds
            .get_or_create(&AppLabels {
                project: project.clone(),
            })
            .observe(upstream.as_secs_f64());
        self.proxy_requests
            .get_or_create(&ProxyLabels { project, status })
            .inc();
    }

    /// A deployment reached `status`: the step it leaves is timed, a final status counted.
    pub fn deployment_status(&self, deployment: Uuid, status: S) {
        let mut steps = self.steps.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let previous = if !status.is_in_progress() {
            steps.remove(&deployment)
        } else if steps.len() < TIMED_DEPLOYMENTS || steps.contains_key(&deployment) {
            steps.insert(deployment, (status, now))
        } else {
            None
        };
        drop(steps);
        if let Some((left, since)) = previous
            && let Some(step) = step_name(left)
        {
            self.step_seconds
                .get_or_create(&StepLabels { step })
                .observe(now.duration_since(since).as_secs_f64());
        }
        let outcome = match status {
            S::Live => "live",
            S::Failed => "failed",
            S::Cancelled => "cancelled",
            _ => return,
        };
        self.deploys.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// The text exposition, with the gauges read now.
    pub fn render(&self, queue_depth: Option<u64>, hub_subscribers: usize) -> String {
        if let Some(depth) = queue_depth {
            self.queue_depth
                .set(i64::try_from(depth).unwrap_or(i64::MAX));
        }
        self.hub_subscribers
            .set(i64::try_from(hub_subscribers).unwrap_or(i64::MAX));
        if let Some(rss) = super::host::own_rss() {
            self.rss_bytes.set(i64::try_from(rss).unwrap_or(i64::MAX));
        }
        let mut out = String::with_capacity(8192);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

/// The step a deployment was in while it had `status`.
fn step_name(status: S) -> Option<&'static str> {
    match status {
        S::Queued => Some("queue"),
        S::Fetching => Some("fetch"),
        S::Building => Some("build"),
        S::Starting => Some("start"),
        S::HealthChecking => Some("health_check"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_timed_and_outcomes_counted() {
        let m = Metrics::new();
        let d = Uuid::now_v7();
        for s in [
            S::Queued,
            S::Fetching,
            S::Building,
            S::Starting,
            S::HealthChecking,
            S::Live,
        ] {
            m.deployment_status(d, s);
        }
        m.http_request(Some("/api/v1/projects/{id}"), "GET", 200);
        m.http_request(None, "BREW", 404);
        let text = m.render(Some(3), 2);
        assert!(
            text.contains("shard_deploys_total{outcome=\"live\"} 1"),
            "{text}"
        );
        for step in ["fetch", "build", "start", "health_check"] {
            assert!(
                text.contains(&format!(
                    "shard_deploy_step_duration_seconds_count{{step=\"{step}\"}} 1"
                )),
                "{text}"
            );
        }
        assert!(text.contains("shard_queue_depth 3"), "{text}");
        assert!(text.contains("shard_hub_subscribers 2"), "{text}");
        assert!(
            text.contains(r#"route="unmatched",method="other",status="404""#),
            "{text}"
        );
        assert!(
            m.steps.lock().unwrap().is_empty(),
            "a live deployment is no longer timed"
        );
        m.deployment_status(d, S::Stopped);
        assert!(m.steps.lock().unwrap().is_empty(), "nor a stopped one");
    }
}
