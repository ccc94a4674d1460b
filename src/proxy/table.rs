//! The route table: an immutable map from a normalised host name to what answers it, built in
//! one piece from the database (and the containers Docker reported dead) and swapped in whole.
//! Readers look a host up with one hash probe and never lock.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use uuid::Uuid;

use crate::model::Upstream as Stored;

/// How a project's app runs right now, as users see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeState {
    /// Never went live (or its live deployment was removed).
    NotDeployed,
    Running,
    /// Stopped by a user.
    Stopped,
    /// Its container exited without being asked to.
    Crashed,
}

impl RuntimeState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotDeployed => "not_deployed",
            Self::Running => "running",
            Self::Stopped => "stopped",
            Self::Crashed => "crashed",
        }
    }
}

/// What serves one deployment: its container, or its Swarm service's running replicas. The
/// in-flight count is shared by every table that routes to it so that it survives table
/// swaps (a drain waits on it).
#[derive(Debug)]
pub struct Upstream {
    pub project_id: Uuid,
    pub deployment_id: Uuid,
    /// Each replica (one for a container: `127.0.0.1:<published port>`).
    endpoints: Vec<Arc<Endpoint>>,
    /// Round-robin position over `endpoints`.
    next: AtomicUsize,
    inflight: Arc<AtomicUsize>,
}

impl Upstream {
    /// `endpoints` must not be empty.
    pub fn new(
        project_id: Uuid,
        deployment_id: Uuid,
        endpoints: Vec<Arc<Endpoint>>,
        inflight: Arc<AtomicUsize>,
    ) -> Self {
        Self {
            project_id,
            deployment_id,
            endpoints,
            next: AtomicUsize::new(0),
            inflight,
        }
    }

    /// Where the next request goes first (round robin over the replicas not marked down;
    /// over all of them when every one is), then how many endpoints there are: a caller that
    /// cannot connect tries `endpoint(first + 1)`, and so on.
    pub fn pick(&self) -> (usize, usize) {
        let count = self.endpoints.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        if count > 1 {
            let now = Endpoint::now_ms();
            if let Some(up) =
                (start..start + count).find(|i| !self.endpoints[i % count].is_down(now))
            {
                return (up, count);
            }
        }
        (start, count)
    }

    /// The endpoint at position `i` (wrapping).
    pub fn endpoint(&self, i: usize) -> &str {
        &self.endpoints[i % self.endpoints.len()].addr
    }

    /// The endpoint at position `i` refused a connection: requests skip it for a while (the
    /// swarm takes seconds to notice a lost node; a dead host's connect would time out).
    pub fn mark_down(&self, i: usize) {
        self.endpoints[i % self.endpoints.len()].mark_down();
    }

    /// Counts a request as in flight until the guard (kept with its response body) drops.
    pub fn enter(&self) -> InflightGuard {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        load::enter();
        InflightGuard(self.inflight.clone())
    }
}

/// One address of an upstream, shared by every table that lists it, so a replica found
/// refusing connections stays skipped across table swaps.
#[derive(Debug)]
pub struct Endpoint {
    pub addr: String,
    /// Milliseconds (since `now_ms`'s epoch) until which requests skip it.
    down_until: AtomicU64,
}

impl Endpoint {
    /// How long a replica that refused a connection is skipped.
    pub const DOWN_FOR_MS: u64 = 5_000;

    pub fn new(addr: String) -> Self {
        Self {
            addr,
            down_until: AtomicU64::new(0),
        }
    }

    fn now_ms() -> u64 {
        static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        EPOCH
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_millis() as u64
            + 1
    }

    fn is_down(&self, now: u64) -> bool {
        self.down_until.load(Ordering::Relaxed) > now
    }

    fn mark_down(&self) {
        self.down_until
            .store(Self::now_ms() + Self::DOWN_FOR_MS, Ordering::Relaxed);
    }
}

/// The endpoints in use, by address (see `Endpoint`).
#[derive(Debug, Default)]
pub struct Endpoints(std::sync::Mutex<HashMap<String, Arc<Endpoint>>>);

impl Endpoints {
    fn get(&self, addr: &str) -> Arc<Endpoint> {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(addr.to_string())
            .or_insert_with(|| Arc::new(Endpoint::new(addr.to_string())))
            .clone()
    }

    /// Forgets the endpoints no table holds any more.
    pub fn prune(&self) {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, e| Arc::strong_count(e) > 1);
    }
}

/// Decrements its upstream's in-flight count when dropped.
pub struct InflightGuard(Arc<AtomicUsize>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        load::leave();
    }
}

/// The proxy's load, all apps together, to give memory back once a crowd has gone. A crowd of
/// requests leaves its buffers free but scattered through glibc's heaps (100 KiB responses at
/// 256 connections: 81 MiB after the load, 58 after a trim); the idle upstream connections it
/// opened keep theirs until they expire.
pub mod load {
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    use std::time::Duration;

    /// Requests in flight through the proxy that make a crowd.
    pub const CROWD: usize = 32;

    static INFLIGHT: AtomicUsize = AtomicUsize::new(0);
    static CROWDED: AtomicBool = AtomicBool::new(false);
    /// How long an idle upstream connection is kept (the client's pool setting), in ms.
    static IDLE_MS: AtomicU64 = AtomicU64::new(0);

    pub(crate) fn set_idle(idle: Duration) {
        IDLE_MS.store(idle.as_millis() as u64, Ordering::Relaxed);
    }

    pub(super) fn enter() {
        let now = INFLIGHT.fetch_add(1, Ordering::AcqRel) + 1;
        if now >= CROWD && !CROWDED.load(Ordering::Relaxed) {
            CROWDED.store(true, Ordering::Relaxed);
        }
    }

    /// The last request of a crowd ended: memory goes back now, and again once the idle
    /// upstream connections it left have expired. The pool checks for expired connections
    /// once per idle timeout, so they are gone within two.
    pub(super) fn leave() {
        if INFLIGHT.fetch_sub(1, Ordering::AcqRel) == 1 && CROWDED.swap(false, Ordering::AcqRel) {
            shard_malloc::release_soon();
            let idle = Duration::from_millis(IDLE_MS.load(Ordering::Relaxed));
            if !idle.is_zero() {
                shard_malloc::release_after(idle + Duration::from_secs(1));
                shard_malloc::release_after(2 * idle + Duration::from_secs(1));
            }
        }
    }
}

/// The `upstream` of a deployment run as a Swarm service: its addresses are its replicas'.
pub const SWARM_UPSTREAM: &str = crate::model::upstream::REPLICAS;

/// A static site's files, served by shard itself.
#[derive(Debug)]
pub struct Site {
    pub project_id: Uuid,
    pub deployment_id: Uuid,
    pub root: std::path::PathBuf,
}

/// What a host resolves to.
#[derive(Debug, Clone)]
pub enum Route {
    App(Arc<Upstream>),
    Static(Arc<Site>),
    /// A project's host with nothing to forward to; the page says why.
    Down {
        project: Arc<str>,
        state: RuntimeState,
    },
}

/// A project as the table needs it.
pub struct ProjectInput {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    /// Verified custom domains (already normalised).
    pub domains: Vec<String>,
    /// Basic auth every request to its hosts must carry (a preview's): hex SHA-256 of the
    /// `Authorization` value.
    pub guard: Option<Arc<str>>,
}

/// A deployment with a container: live, stopped, or still being health-checked (preview only).
pub struct DeploymentInput {
    pub id: Uuid,
    pub project_id: Uuid,
    pub live: bool,
    pub stopped: bool,
    pub container_id: Option<String>,
    pub upstream: Option<String>,
}

#[derive(Default)]
pub struct RouteTable {
    hosts: HashMap<Box<str>, Route>,
    /// Hosts behind basic auth, with the hash a request's `Authorization` must have.
    guards: HashMap<Box<str>, Arc<str>>,
    runtime: HashMap<Uuid, RuntimeState>,
}

impl RouteTable {
    /// Builds the table. `counter` hands out the in-flight counter of a deployment (the same
    /// one across rebuilds); `exited` holds containers Docker reported dead; `replicas` the
    /// running replicas of Swarm deployments.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        apps_domain: &str,
        sites_dir: &std::path::Path,
        projects: &[ProjectInput],
        deployments: &[DeploymentInput],
        exited: &HashSet<String>,
        replicas: &HashMap<Uuid, Vec<String>>,
        endpoints: &Endpoints,
        mut counter: impl FnMut(Uuid) -> Arc<AtomicUsize>,
    ) -> Self {
        let mut table = RouteTable::default();
        let by_id: HashMap<Uuid, &ProjectInput> = projects.iter().map(|p| (p.id, p)).collect();
        let mut live: HashMap<Uuid, Route> = HashMap::new();
        // Newest last, so that when two previews share the short form the newer one wins.
        let mut ordered: Vec<&DeploymentInput> = deployments.iter().collect();
        ordered.sort_by_key(|d| d.id);
        for d in ordered {
            let Some(project) = by_id.get(&d.project_id) else {
                continue;
            };
            let dead = d.container_id.as_ref().is_some_and(|c| exited.contains(c));
            let stored = d.upstream.as_deref().map(Stored::parse);
            let upstream = match (stored, dead, d.stopped) {
                (Some(Stored::Static), _, false) => Some(Route::Static(Arc::new(Site {
                    project_id: project.id,
                    deployment_id: d.id,
                    root: sites_dir.join(d.id.simple().to_string()),
                }))),
                (Some(Stored::Replicas), _, false) => match replicas.get(&d.id) {
                    Some(addrs) if !addrs.is_empty() => Some(Route::App(Arc::new(Upstream::new(
                        project.id,
                        d.id,
                        addrs.iter().map(|a| endpoints.get(a)).collect(),
                        counter(d.id),
                    )))),
                    _ => None,
                },
                (Some(Stored::Addr(authority)), false, false) => {
                    Some(Route::App(Arc::new(Upstream::new(
                        project.id,
                        d.id,
                        vec![endpoints.get(authority)],
                        counter(d.id),
                    ))))
                }
                _ => None,
            };
            if let Some(upstream) = &upstream {
                for host in preview_hosts(d.id, &project.slug, apps_domain) {
                    if let Some(guard) = &project.guard {
                        table.guards.insert(host.as_str().into(), guard.clone());
                    }
                    table.hosts.insert(host.into(), upstream.clone());
                }
            }
            if !d.live && !d.stopped {
                continue;
            }
            let (route, state) = match upstream {
                Some(route) => (route, RuntimeState::Running),
                None => {
                    let state = if d.stopped {
                        RuntimeState::Stopped
                    } else {
                        RuntimeState::Crashed
                    };
                    let down = Route::Down {
                        project: project.name.as_str().into(),
                        state,
                    };
                    (down, state)
                }
            };
            table.runtime.insert(project.id, state);
            live.insert(project.id, route);
        }
        for project in projects {
            let route = live.remove(&project.id).unwrap_or_else(|| Route::Down {
                project: project.name.as_str().into(),
                state: RuntimeState::NotDeployed,
            });
            let host = format!("{}.{apps_domain}", project.slug);
            if let Some(guard) = &project.guard {
                for name in project.domains.iter().chain(std::iter::once(&host)) {
                    table.guards.insert(name.as_str().into(), guard.clone());
                }
            }
            for domain in &project.domains {
                table.hosts.insert(domain.as_str().into(), route.clone());
            }
            table.hosts.insert(host.into(), route);
        }
        table
    }

    /// The basic-auth hash `host` requires, if it is guarded.
    pub fn guard(&self, host: &str) -> Option<&Arc<str>> {
        self.guards.get(host)
    }

    /// What answers `host` (already normalised), if anything.
    pub fn get(&self, host: &str) -> Option<&Route> {
        self.hosts.get(host)
    }

    pub fn runtime(&self, project: Uuid) -> RuntimeState {
        self.runtime
            .get(&project)
            .copied()
            .unwrap_or(RuntimeState::NotDeployed)
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}

/// A deployment's short id: the last 8 hex digits of its id (the random part of a UUID v7;
/// the first digits are a timestamp and repeat across deployments made within a minute).
pub fn short_id(id: Uuid) -> String {
    let simple = id.simple().to_string();
    simple[simple.len() - 8..].to_string()
}

/// The preview host names of a deployment: `<short-id>-<slug>.<apps domain>`, and the same
/// with the first 8 hex digits (git-style prefix), where a newer deployment wins a clash.
pub fn preview_hosts(id: Uuid, slug: &str, apps_domain: &str) -> [String; 2] {
    let simple = id.simple().to_string();
    [
        format!("{}-{slug}.{apps_domain}", short_id(id)),
        format!("{}-{slug}.{apps_domain}", &simple[..8]),
    ]
}

/// The canonical preview URL host of a deployment.
pub fn preview_host(id: Uuid, slug: &str, apps_domain: &str) -> String {
    format!("{}-{slug}.{apps_domain}", short_id(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(slug: &str) -> ProjectInput {
        ProjectInput {
            guard: None,
            id: Uuid::now_v7(),
            name: slug.to_uppercase(),
            slug: slug.into(),
            domains: vec![format!("www.{slug}.example")],
        }
    }

    fn deployment(project: &ProjectInput, live: bool, stopped: bool, port: u16) -> DeploymentInput {
        DeploymentInput {
            id: Uuid::now_v7(),
            project_id: project.id,
            live,
            stopped,
            container_id: Some(format!("c{port}")),
            upstream: Some(format!("127.0.0.1:{port}")),
        }
    }

    fn counters() -> impl FnMut(Uuid) -> Arc<AtomicUsize> {
        |_| Arc::new(AtomicUsize::new(0))
    }

    #[test]
    fn live_apps_stopped_crashed_and_undeployed_projects() {
        let (blog, shop, docs, new) = (
            project("blog"),
            project("shop"),
            project("docs"),
            project("new"),
        );
        let deployments = [
            deployment(&blog, true, false, 1001),
            deployment(&shop, false, true, 1002),
            deployment(&docs, true, false, 1003),
        ];
        let exited = HashSet::from(["c1003".to_string()]);
        let table = RouteTable::build(
            "apps.test",
            std::path::Path::new("/sites"),
            &[blog, shop, docs, new],
            &deployments,
            &exited,
            &HashMap::new(),
            &Endpoints::default(),
            counters(),
        );
        let Some(Route::App(up)) = table.get("blog.apps.test") else {
            panic!("blog routes to its container")
        };
        assert_eq!(up.endpoint(0), "127.0.0.1:1001");
        assert!(matches!(table.get("www.blog.example"), Some(Route::App(_))));
        let state = |host| match table.get(host) {
            Some(Route::Down { state, .. }) => Some(*state),
            _ => None,
        };
        assert_eq!(state("shop.apps.test"), Some(RuntimeState::Stopped));
        assert_eq!(state("docs.apps.test"), Some(RuntimeState::Crashed));
        assert_eq!(state("new.apps.test"), Some(RuntimeState::NotDeployed));
        assert!(table.get("other.apps.test").is_none());
    }

    #[test]
    fn previews_route_while_their_container_runs() {
        let blog = project("blog");
        let old = deployment(&blog, true, false, 1001);
        let new = DeploymentInput {
            live: false,
            ..deployment(&blog, false, false, 1002)
        };
        let new_host = preview_host(new.id, "blog", "localhost");
        let table = RouteTable::build(
            "localhost",
            std::path::Path::new("/sites"),
            &[blog],
            &[old, new],
            &HashSet::new(),
            &HashMap::new(),
            &Endpoints::default(),
            counters(),
        );
        let Some(Route::App(up)) = table.get(&new_host) else {
            panic!("the health-checking deployment has its preview host")
        };
        assert_eq!(up.endpoint(0), "127.0.0.1:1002");
        let Some(Route::App(up)) = table.get("blog.localhost") else {
            panic!("the live one keeps the main host")
        };
        assert_eq!(up.endpoint(0), "127.0.0.1:1001");
    }

    #[test]
    fn swarm_deployments_route_round_robin_over_running_replicas() {
        let (blog, shop) = (project("blog"), project("shop"));
        let swarm = |p: &ProjectInput| DeploymentInput {
            upstream: Some(SWARM_UPSTREAM.into()),
            container_id: None,
            ..deployment(p, true, false, 0)
        };
        let (on_two, on_none) = (swarm(&blog), swarm(&shop));
        let replicas = HashMap::from([(
            on_two.id,
            vec!["127.0.0.1:2001".to_string(), "10.0.0.2:2002".to_string()],
        )]);
        let table = RouteTable::build(
            "apps.test",
            std::path::Path::new("/sites"),
            &[blog, shop],
            &[on_two, on_none],
            &HashSet::new(),
            &replicas,
            &Endpoints::default(),
            counters(),
        );
        let Some(Route::App(up)) = table.get("blog.apps.test") else {
            panic!("blog routes to its replicas")
        };
        let picks: Vec<&str> = (0..4).map(|_| up.endpoint(up.pick().0)).collect();
        assert_eq!(
            picks,
            [
                "127.0.0.1:2001",
                "10.0.0.2:2002",
                "127.0.0.1:2001",
                "10.0.0.2:2002"
            ]
        );
        // A failed connection moves on to the next replica, and the refusing one is skipped.
        let (first, count) = up.pick();
        assert_eq!(count, 2);
        assert_ne!(up.endpoint(first), up.endpoint(first + 1));
        up.mark_down(first);
        let down = up.endpoint(first).to_string();
        for _ in 0..4 {
            assert_ne!(up.endpoint(up.pick().0), down);
        }
        // With every replica down, requests still go somewhere (one may have come back).
        up.mark_down(first + 1);
        let (i, _) = up.pick();
        assert!(["127.0.0.1:2001", "10.0.0.2:2002"].contains(&up.endpoint(i)));
        // A live service without a running replica answers as crashed, not as a dead host.
        assert!(matches!(
            table.get("shop.apps.test"),
            Some(Route::Down {
                state: RuntimeState::Crashed,
                ..
            })
        ));
    }

    #[test]
    fn in_flight_count_follows_guards() {
        let counter = Arc::new(AtomicUsize::new(0));
        let up = Upstream::new(
            Uuid::nil(),
            Uuid::nil(),
            vec![Arc::new(Endpoint::new("x".into()))],
            counter.clone(),
        );
        let a = up.enter();
        let b = up.enter();
        assert_eq!(counter.load(Ordering::Acquire), 2);
        drop(a);
        drop(b);
        assert_eq!(counter.load(Ordering::Acquire), 0);
    }
}
