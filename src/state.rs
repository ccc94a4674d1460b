//! `AppState`: what request handlers share, built once per app by `App::build` (no
//! globals, so tests start many apps in one process). Lower layers take the narrow handles
//! they need (db, hub, engine, deployer, `jobs::Parts`), never the whole state.

use std::sync::Arc;

use crate::auth::{ActiveLogins, ApiLimiter, LoginLimiter, PasswordHasher, TokenKeys};
use crate::config::Config;
use crate::db::Db;
use crate::deploy::Deployer;
use crate::docker::Engine;
use crate::hub::{Hub, RuntimeLogs};
use crate::proxy::Proxy;
use crate::secrets::Sealer;

pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub sealer: Arc<Sealer>,
    pub tokens: TokenKeys,
    pub limiter: LoginLimiter,
    /// Every background loop, named and restarted when it fails (`crate::supervisor`).
    pub supervisor: Arc<crate::supervisor::Supervisor>,
    /// Requests per user per minute (`quotas.api_requests_per_minute`).
    pub api_limiter: ApiLimiter,
    /// Argon2id with bounded concurrency and memory.
    pub passwords: PasswordHasher,
    /// Logins recently found active (access-token checks), forgotten on revocation.
    pub logins: ActiveLogins,
    pub docker: Arc<Engine>,
    /// Serialises first-run setup so two racing requests cannot both create an admin.
    pub setup_lock: tokio::sync::Mutex<()>,
    /// The port actually bound (differs from the config when it asked for port 0).
    pub port: u16,
    /// Status and log events, published after they are persisted.
    pub hub: Arc<Hub>,
    /// Followers of running containers' output, while someone listens.
    pub runtime_logs: Arc<RuntimeLogs>,
    /// Wakes idle job workers when a job is enqueued.
    pub job_signal: Arc<tokio::sync::Notify>,
    /// The deploy domain: deploys, rollbacks, cancels, runtime control, project deletion.
    pub deployer: Arc<Deployer>,
    /// One-click databases.
    pub databases: Arc<crate::storage::Databases>,
    /// Pull-request previews.
    pub previews: Arc<crate::previews::Previews>,
    /// One-off commands and scheduled jobs.
    pub tasks: Arc<crate::tasks::Tasks>,
    /// The app proxy's route table (which host reaches which container).
    pub proxy: Arc<Proxy>,
    /// Asks DNS whether a custom domain points at shard.
    pub dns: crate::proxy::dns::Checker,
    /// GitHub OAuth and REST calls.
    pub github: Arc<crate::github::Github>,
    /// shard's own Prometheus metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Notification channels: emitting events and sending them.
    pub notifier: Arc<crate::notifications::Notifier>,
    /// CLI sign-ins waiting for a user's approval.
    pub device_logins: crate::auth::device::DeviceLogins,
    /// Whether this instance runs the singletons (always, on SQLite).
    pub leadership: crate::cluster::Leadership,
    /// Whether the instances on this database drive one Docker engine (plain containers).
    pub engines: crate::cluster::Engines,
    /// Cancelled when this process starts to drain after handing its sockets to a successor
    /// (`app::upgrade`): responses close their connections, dashboard WebSockets close.
    pub draining: tokio_util::sync::CancellationToken,
    /// The newest `shard doctor` report of this host (daily, or on request).
    pub doctor: std::sync::Mutex<Option<crate::doctor::Report>>,
}

impl AppState {
    /// Runs the doctor's checks on this host, keeps the report and returns it.
    pub async fn run_doctor(&self) -> crate::doctor::Report {
        let host = crate::doctor::Host {
            config: &self.config,
            db: Some(&self.db),
            db_error: None,
            docker: &self.docker,
            serving: true,
        };
        let report = crate::doctor::run(&host).await;
        *self
            .doctor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(report.clone());
        report
    }
}

impl AppState {
    /// The dashboard's external URL: `public_url`, else the listen address with the port
    /// actually bound (so links are right when listening on port 0).
    pub fn public_base(&self) -> String {
        self.config.public_base(self.port)
    }
}
