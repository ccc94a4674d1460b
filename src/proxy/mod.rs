//! The app proxy on shard's one listener: requests for the dashboard's hosts go on to the
//! dashboard and API; `<slug>.<apps.domain>`, preview hosts and verified custom domains are
//! forwarded to the app's container; anything else gets a small 404 page.
//!
//! The route table (`table.rs`) is immutable and swapped whole (`arc-swap`) by `refresh`,
//! which the deploy domain calls after every switch, stop, start, delete and rename, and
//! after Docker reports a container started or died. Readers never lock.

pub mod acme;
pub mod dns;
mod forward;
pub mod hosts;
mod pages;
mod static_files;
pub mod table;
pub mod tls;
mod websocket;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::HttpResponse;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use arc_swap::ArcSwap;
use uuid::Uuid;

pub use forward::Settings;
pub use table::{RuntimeState, SWARM_UPSTREAM, preview_host, short_id};

use crate::config::Config;
use crate::db::{self, Db};
use crate::model::DeploymentStatus as S;
use hosts::DashboardHosts;
use table::{DeploymentInput, ProjectInput, Route, RouteTable};

/// HTTPS: the certificates served by SNI, ACME when configured, and the port plain-HTTP
/// requests are redirected to.
pub struct Https {
    pub certs: Arc<tls::Certificates>,
    pub acme: Option<Arc<acme::Acme>>,
    pub port: u16,
}

/// One HTTP worker's upstream client (plain requests and WebSocket handshakes).
pub struct Clients {
    http: forward::HttpClient,
}

/// Where a request goes, decided by its host.
pub enum Destination {
    Dashboard,
    App {
        route: Route,
        host: String,
    },
    /// A guarded host (a preview behind basic auth) without the right credentials.
    Locked,
    Unknown,
}

/// How often a route follower rebuilds the table even when nobody says it changed.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

pub struct Proxy {
    db: Db,
    apps_domain: String,
    sites_dir: std::path::PathBuf,
    dashboard: DashboardHosts,
    settings: Settings,
    table: ArcSwap<RouteTable>,
    /// One rebuild at a time, so an older read of the database never replaces a newer one.
    refresh_lock: tokio::sync::Mutex<()>,
    /// In-flight request counts per deployment, shared by every table that routes to it.
    inflight: Mutex<HashMap<Uuid, Arc<AtomicUsize>>>,
    /// Containers Docker reported dead (until they start again).
    exited: Mutex<HashSet<String>>,
    /// Every upstream address the tables route to, with whether it was found refusing.
    endpoints: table::Endpoints,
    /// The running replicas of each Swarm deployment, as the swarm watcher last read them.
    replicas: Mutex<HashMap<Uuid, Vec<String>>>,
    /// Replicas a health gate, a start or a halt handed over, with when: a watcher read that
    /// began earlier cannot know them and must not drop them (see [`apply_pins`]).
    pinned: Mutex<HashMap<Uuid, (Instant, Vec<String>)>>,
    https: Option<Https>,
    /// Requests forwarded and upstream latency, per app.
    metrics: Arc<crate::metrics::Metrics>,
}

impl Proxy {
    pub fn new(
        db: Db,
        config: &Config,
        https: Option<Https>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        Self {
            metrics,
            db,
            apps_domain: config.apps.domain.to_ascii_lowercase(),
            sites_dir: config.data_dir.join("sites"),
            dashboard: DashboardHosts::new(config.listen, config.public_url.as_deref()),
            settings: Settings {
                max_body_bytes: config.proxy.max_body_mb * 1024 * 1024,
                response_timeout: Duration::from_secs(config.proxy.response_timeout_secs),
                trusted_proxies: config.http.trusted_proxies.clone(),
                max_ws_frame_bytes: config.proxy.max_websocket_frame_kb * 1024,
            },
            table: ArcSwap::from_pointee(RouteTable::default()),
            refresh_lock: tokio::sync::Mutex::new(()),
            inflight: Mutex::default(),
            exited: Mutex::default(),
            replicas: Mutex::default(),
            endpoints: table::Endpoints::default(),
            pinned: Mutex::default(),
            https,
        }
    }

    /// The ACME server asking for a challenge's answer (any host, before any routing).
    pub fn acme_challenge(&self, req: &ServiceRequest) -> Option<(Arc<acme::Acme>, String)> {
        let acme = self.https.as_ref()?.acme.clone()?;
        let token = req.path().strip_prefix("/.well-known/acme-challenge/")?;
        Some((acme, token.to_string()))
    }

    /// The answer to an ACME HTTP-01 challenge: the key authorization, or 404.
    pub async fn answer_challenge(acme: &acme::Acme, token: &str) -> HttpResponse {
        match acme.challenge_response(token).await {
            Some(answer) => HttpResponse::Ok()
                .content_type("application/octet-stream")
                .body(answer),
            None => HttpResponse::NotFound().body("no such challenge\n"),
        }
    }

    /// The redirect of plain HTTP to HTTPS for a name that has a certificate (before routing).
    pub fn early_answer(&self, req: &ServiceRequest) -> Option<HttpResponse> {
        let https = self.https.as_ref()?;
        if req.app_config().secure() {
            return None;
        }
        let raw = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())?;
        let host = hosts::normalize(raw)?;
        if !https.certs.has(&host) {
            return None;
        }
        let port = if https.port == 443 {
            String::new()
        } else {
            format!(":{}", https.port)
        };
        let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
        Some(
            HttpResponse::PermanentRedirect()
                .insert_header((header::LOCATION, format!("https://{host}{port}{target}")))
                .finish(),
        )
    }

    /// The upstream clients each HTTP worker keeps (its own keep-alive pool).
    pub fn client(config: &Config) -> Clients {
        let connect = Duration::from_secs(config.proxy.connect_timeout_secs);
        let idle = Duration::from_secs(config.proxy.upstream_idle_secs);
        Clients {
            http: forward::http_client(connect, idle),
        }
    }

    /// Decides where a request with this `Host` goes (no host at all: the dashboard).
    pub fn destination(&self, raw_host: Option<&str>) -> Destination {
        let Some(host) = raw_host.and_then(hosts::normalize) else {
            return Destination::Dashboard;
        };
        if self.dashboard.contains(&host) {
            return Destination::Dashboard;
        }
        let table = self.table.load();
        // An exact name first, then a wildcard domain one level up (`*.example.com`).
        let route = table
            .get(&host)
            .or_else(|| table.get(&hosts::wildcard_of(&host)?));
        match route {
            Some(route) => Destination::App {
                route: route.clone(),
                host: host.into_owned(),
            },
            None => Destination::Unknown,
        }
    }

    /// True for a host name (normalised) that is the dashboard's.
    pub fn is_dashboard_host(&self, host: &str) -> bool {
        self.dashboard.contains(host)
    }

    /// A project's runtime state as the current table has it.
    pub fn runtime(&self, project: Uuid) -> RuntimeState {
        self.table.load().runtime(project)
    }

    /// Rebuilds the route table from the database and swaps it in.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let _one_at_a_time = self.refresh_lock.lock().await;
        self.rebuild(None).await
    }

    /// The switch of `project` to `deployment`, seen from the proxy: the table routes to the
    /// new deployment before `switch` (the database's switch) commits, and is rebuilt from
    /// the database once it has, with other rebuilds held off meanwhile. So whoever reads the
    /// deployment as `live` finds it routed. If the switch fails, the rebuild after it puts
    /// the routes back.
    pub async fn switch<T>(
        &self,
        project: Uuid,
        deployment: Uuid,
        switch: impl std::future::Future<Output = T>,
    ) -> T {
        let _one_at_a_time = self.refresh_lock.lock().await;
        if let Err(e) = self.rebuild(Some((project, deployment))).await {
            tracing::error!(error = %e, "cannot route to the new deployment ahead of the switch");
        }
        let result = switch.await;
        if let Err(e) = self.rebuild(None).await {
            tracing::error!(error = %e, "cannot rebuild the route table after the switch");
        }
        result
    }

    /// Builds the table from the database (`promote`: as if that project's switch to that
    /// deployment had committed) and swaps it in; callers hold `refresh_lock`.
    async fn rebuild(&self, promote: Option<(Uuid, Uuid)>) -> anyhow::Result<()> {
        let projects = db::projects::all(&self.db).await?;
        let domains = db::domains::verified_by_project(&self.db).await?;
        let deployments =
            db::deployments::with_status(&self.db, &[S::HealthChecking, S::Live, S::Stopped])
                .await?;
        let projects: Vec<ProjectInput> = projects
            .into_iter()
            .map(|p| ProjectInput {
                guard: p
                    .preview_of
                    .and(p.previews_auth_hash.as_deref())
                    .map(Arc::from),
                domains: domains.get(&p.id).cloned().unwrap_or_default(),
                id: p.id,
                name: p.name,
                slug: p.slug,
            })
            .collect();
        let deployments: Vec<DeploymentInput> = deployments
            .into_iter()
            .filter_map(|d| {
                let promoted = match promote {
                    // The project's other deployments are superseded by the switch.
                    Some((project, id)) if d.project_id == project => Some(d.id == id),
                    _ => None,
                };
                (promoted != Some(false)).then_some((d, promoted == Some(true)))
            })
            .map(|(d, promoted)| DeploymentInput {
                live: promoted || d.state() == S::Live,
                stopped: !promoted && d.state() == S::Stopped,
                id: d.id,
                project_id: d.project_id,
                container_id: d.container_id,
                upstream: d.upstream,
            })
            .collect();
        let exited = {
            // Only containers of deployments that can still serve are worth remembering.
            let mut exited = self.exited();
            let known: HashSet<&str> = deployments
                .iter()
                .filter_map(|d| d.container_id.as_deref())
                .collect();
            exited.retain(|c| known.contains(c.as_str()));
            exited.clone()
        };
        let table = {
            let mut counters = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
            let table = RouteTable::build(
                &self.apps_domain,
                &self.sites_dir,
                &projects,
                &deployments,
                &exited,
                &self.replicas.lock().unwrap_or_else(PoisonError::into_inner),
                &self.endpoints,
                |id| counters.entry(id).or_default().clone(),
            );
            // Counters of deployments no table routes to any more go once they are idle.
            let serving: HashSet<Uuid> = deployments.iter().map(|d| d.id).collect();
            counters.retain(|id, c| serving.contains(id) || c.load(Ordering::Acquire) > 0);
            table
        };
        tracing::debug!(hosts = table.len(), "route table swapped");
        self.table.store(Arc::new(table));
        self.endpoints.prune();
        if let Some(acme) = self.https.as_ref().and_then(|h| h.acme.as_ref()) {
            acme.wake.notify_one();
        }
        Ok(())
    }

    /// Refreshes, logging instead of failing: callers have already done their work.
    pub async fn refresh_or_log(&self) {
        if let Err(e) = self.refresh().await {
            tracing::error!(error = %e, "cannot rebuild the route table");
        }
    }

    /// Keeps the route table in step with changes other instances make: rebuilt when `changed`
    /// is woken (app.rs wires it to the hub relay's project events) and every `FOLLOW_EVERY`.
    pub async fn follow(
        self: Arc<Self>,
        changed: Arc<tokio::sync::Notify>,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = changed.notified() => {}
                _ = tokio::time::sleep(FOLLOW_EVERY) => {}
            }
            self.refresh_or_log().await;
        }
    }

    fn exited(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.exited.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the running replicas of Swarm deployments (`host:port` each, sorted) with a
    /// read of the swarm that began at `read_at`, except deployments set since it began (by
    /// `set_deployment_replicas`: newer knowledge wins); true when that changes anything (the
    /// caller then refreshes).
    pub fn set_replicas(&self, mut replicas: HashMap<Uuid, Vec<String>>, read_at: Instant) -> bool {
        {
            let mut pinned = self.pinned.lock().unwrap_or_else(PoisonError::into_inner);
            apply_pins(&mut replicas, &mut pinned, read_at, Instant::now());
        }
        let mut current = self.replicas.lock().unwrap_or_else(PoisonError::into_inner);
        if *current == replicas {
            return false;
        }
        *current = replicas;
        true
    }

    /// The replicas a Swarm deployment is routed to right now.
    pub fn replica_endpoints(&self, deployment: Uuid) -> Vec<String> {
        self.replicas
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&deployment)
            .cloned()
            .unwrap_or_default()
    }

    /// Sets one deployment's replicas now (its health gate just checked them), ahead of the
    /// watcher's next read.
    pub fn set_deployment_replicas(&self, deployment: Uuid, endpoints: Vec<String>) {
        self.pinned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(deployment, (Instant::now(), endpoints.clone()));
        self.replicas
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(deployment, endpoints);
    }

    /// Records what Docker said about a container; true when that changes anything.
    pub fn container_event(&self, container: &str, running: bool) -> bool {
        if running {
            self.exited().remove(container)
        } else {
            self.exited().insert(container.to_string())
        }
    }

    /// Waits until no request is in flight to `deployment` (after `settle`, for requests that
    /// picked the old route just before the swap), or until `max` has passed.
    pub async fn drain(&self, deployment: Uuid, settle: Duration, max: Duration) {
        let started = Instant::now();
        let counter = self
            .inflight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&deployment)
            .cloned();
        let Some(counter) = counter else { return };
        tokio::time::sleep(settle.min(max)).await;
        while counter.load(Ordering::Acquire) > 0 && started.elapsed() < max {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let left = counter.load(Ordering::Acquire);
        if left > 0 {
            tracing::info!(%deployment, requests = left, "drain ended with requests still open");
        }
    }

    /// Where this request goes: the `Host` header, or the URI's authority (HTTP/2).
    pub fn destination_of(&self, req: &ServiceRequest) -> Destination {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()));
        let destination = self.destination(host);
        if let Destination::App { host, .. } = &destination
            && let Some(guard) = self.table.load().guard(host).cloned()
        {
            let sent = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(crate::secrets::token_hash)
                .unwrap_or_default();
            use subtle::ConstantTimeEq;
            if !bool::from(sent.as_bytes().ct_eq(guard.as_bytes())) {
                return Destination::Locked;
            }
        }
        destination
    }

    /// Answers a request whose destination is not the dashboard.
    pub async fn serve(
        &self,
        req: ServiceRequest,
        destination: Destination,
        client: &Clients,
    ) -> ServiceResponse {
        let (req, payload) = req.into_parts();
        let response = match destination {
            Destination::Dashboard | Destination::Unknown => pages::unknown_host(),
            Destination::Locked => pages::locked(),
            Destination::App {
                route: Route::Down { project, state },
                ..
            } => pages::down(&project, state),
            Destination::App {
                route: Route::Static(site),
                ..
            } => static_files::serve(&req, &site).await,
            Destination::App {
                route: Route::App(upstream),
                host,
            } => {
                if websocket::is_upgrade(&req) {
                    websocket::forward(
                        &req,
                        payload,
                        &upstream,
                        &host,
                        &client.http,
                        &self.settings,
                    )
                    .await
                } else {
                    let started = std::time::Instant::now();
                    let response = forward::forward(
                        &req,
                        payload,
                        &upstream,
                        &host,
                        &client.http,
                        &self.settings,
                    )
                    .await;
                    self.metrics.proxy_request(
                        upstream.project_id,
                        response.status().as_u16(),
                        started.elapsed(),
                    );
                    response
                }
            }
        };
        ServiceResponse::new(req, response)
    }
}

/// How long a halt shard made (no replica) outlasts reads of the swarm that still list the
/// deployment running: the swarm marks a scaled-down service's tasks unwanted a moment after
/// the scale, later still on a busy manager. A replica listed after this is believed.
const HALT_HOLD: Duration = Duration::from_secs(10);

/// Puts into a read of the swarm that began at `read_at` the deployments set since (their
/// endpoints win), and forgets the settings that read already covers. A halt is kept until a
/// read agrees with it (or [`HALT_HOLD`] has passed), since a read that began after it may
/// still see the tasks the swarm has not yet marked unwanted.
fn apply_pins(
    replicas: &mut HashMap<Uuid, Vec<String>>,
    pinned: &mut HashMap<Uuid, (Instant, Vec<String>)>,
    read_at: Instant,
    now: Instant,
) {
    pinned.retain(|id, (at, endpoints)| {
        let newer = *at > read_at;
        let unconfirmed_halt = endpoints.is_empty()
            && replicas.get(id).is_some_and(|listed| !listed.is_empty())
            && now.saturating_duration_since(*at) < HALT_HOLD;
        let keep = newer || unconfirmed_halt;
        if keep {
            replicas.insert(*id, endpoints.clone());
        }
        keep
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_set_after_a_read_began_keeps_what_it_was_set_to() {
        let (halted, started, other) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let before = Instant::now();
        let mut pinned = HashMap::from([
            (halted, (Instant::now(), Vec::new())),
            (started, (Instant::now(), vec!["127.0.0.1:1".to_string()])),
        ]);
        // A read that began before both: the halted one still listed, the started one not yet.
        let mut read = HashMap::from([
            (halted, vec!["127.0.0.1:2".to_string()]),
            (other, vec!["127.0.0.1:3".to_string()]),
        ]);
        apply_pins(&mut read, &mut pinned, before, Instant::now());
        assert_eq!(read[&halted], Vec::<String>::new());
        assert_eq!(read[&started], vec!["127.0.0.1:1".to_string()]);
        assert_eq!(read[&other], vec!["127.0.0.1:3".to_string()]);
        assert_eq!(pinned.len(), 2, "kept for reads that began before them");
        // A read that began after: it knows better, the settings go.
        let mut later = HashMap::new();
        let now = Instant::now();
        apply_pins(&mut later, &mut pinned, now, now);
        assert!(later.is_empty() && pinned.is_empty());
    }

    #[test]
    fn a_halt_holds_until_the_swarm_agrees_or_for_a_bounded_time() {
        let (halted, stale) = (Uuid::now_v7(), Uuid::now_v7());
        let listed = || vec!["127.0.0.1:2".to_string()];
        let mut pinned = HashMap::from([(halted, (Instant::now(), Vec::new()))]);
        // Reads that began after the halt but still list its replica running: still halted.
        for _ in 0..3 {
            let mut read = HashMap::from([(halted, listed())]);
            let now = Instant::now();
            apply_pins(&mut read, &mut pinned, now, now);
            assert_eq!(read[&halted], Vec::<String>::new());
            assert_eq!(pinned.len(), 1, "kept until a read agrees");
        }
        // A read that agrees ends it; later reads are believed as they are.
        let now = Instant::now();
        apply_pins(&mut HashMap::new(), &mut pinned, now, now);
        assert!(pinned.is_empty());
        let mut read = HashMap::from([(halted, listed())]);
        apply_pins(&mut read, &mut pinned, now, now);
        assert_eq!(read[&halted], listed());
        // A replica the swarm still lists once the hold has passed is believed.
        let at = Instant::now();
        let mut pinned = HashMap::from([(stale, (at, Vec::new()))]);
        let mut read = HashMap::from([(stale, listed())]);
        let later = at + HALT_HOLD + Duration::from_secs(1);
        apply_pins(&mut read, &mut pinned, later, later);
        assert_eq!(read[&stale], listed());
        assert!(pinned.is_empty());
    }
}
