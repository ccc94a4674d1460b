//! Assembly: `App::build` opens the database, runs migrations, loads keys, binds the listener
//! (port 0 in tests) and prepares the HTTP server and job workers; `run_until_stopped` runs them
//! until a signal (or one of them ends) and then shuts down gracefully.

mod data_dir;
mod loops;
mod server;

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use anyhow::Context;
use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;

pub use data_dir::{DataDirLock, install_crypto_provider, open_database};

use crate::auth::{LoginLimiter, PasswordHasher, TokenKeys};
use crate::config::Config;
use crate::deploy::{self, Deployer};
use crate::docker::Engine;
use crate::hub::{Hub, RuntimeLogs};
use crate::jobs;
use crate::proxy::Proxy;
use crate::proxy::acme::Acme;
use crate::secrets;
use crate::state::AppState;
use crate::supervisor::Supervisor;

pub struct App {
    /// Held for the life of the process: one `shard serve` per data dir.
    _lock: DataDirLock,
    server: actix_web::dev::Server,
    state: web::Data<AppState>,
    workers: jobs::Workers,
    shutdown: CancellationToken,
    /// Started with the server, so that it can answer its own challenges.
    acme: Option<Arc<Acme>>,
}

impl App {
    /// Builds every part, in order: the data dir (lock, database, keys), the listener, the
    /// shared handles (supervisor, hub, leadership and relay, Docker, notifier, HTTPS, proxy,
    /// engines, runtime logs, GitHub, deployer), the state that holds them, the background
    /// loops, the job workers, and the server. Nothing serves until `run_until_stopped`.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        tracing::info!(config = ?config, "starting shard {}", env!("CARGO_PKG_VERSION"));
        data_dir::create_private_dir(&config.data_dir)?;
        let lock = DataDirLock::acquire(&config.data_dir)?;
        let db = open_database(&config, Some(&lock)).await?;
        let keys = data_dir::Keys::load(&config, &db).await?;
        let listener = server::bind(config.listen, "--listen")?;
        let port = listener.local_addr()?.port();
        data_dir::announce_setup(&config, &db, port).await?;

        let config = Arc::new(config);
        let shutdown = CancellationToken::new();
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let supervisor = {
            let metrics = metrics.clone();
            Supervisor::new(
                shutdown.clone(),
                Box::new(move |task| metrics.task_restarted(task)),
            )
        };
        let hub = Arc::new(Hub::new());
        // Several instances on one Postgres: one leads the singletons; hub events fan out.
        let leadership = loops::leadership(&supervisor, &db, &config.database_url(), &shutdown);
        let routes_changed = loops::relay(&supervisor, &db, &hub, &shutdown);
        let docker = Arc::new(Engine::new(
            config.docker.host.as_deref(),
            secrets::instance_id(&keys.secret_key),
        ));
        let job_signal = Arc::new(tokio::sync::Notify::new());
        let notifier = Arc::new(crate::notifications::Notifier::new(
            db.clone(),
            keys.sealer.clone(),
            job_signal.clone(),
            &config,
        )?);
        let (https_listener, https) = server::https(&config, &db, &keys.sealer, &notifier)?.unzip();
        let tls = https.as_ref().map(|h| h.certs.server_config());
        let acme = https.as_ref().and_then(|h| h.acme.clone());
        let proxy = Arc::new(Proxy::new(db.clone(), &config, https, metrics.clone()));
        loops::route_follower(&supervisor, &db, &proxy, routes_changed, &shutdown);
        let engines = crate::cluster::Engines::new(
            db.clone(),
            keys.sealer.clone(),
            docker.clone(),
            config.runtime.kind,
        );
        loops::engines(&supervisor, &engines, &shutdown);
        let runtime_logs = Arc::new(RuntimeLogs::new(
            config.deploy.max_log_line_bytes,
            docker.clone(),
            hub.clone(),
        ));
        let github = Arc::new(crate::github::Github::new(config.github.clone())?);
        let databases = Arc::new(crate::storage::Databases::new(
            db.clone(),
            docker.clone(),
            keys.sealer.clone(),
            config.clone(),
            notifier.clone(),
        ));
        let deployer = Arc::new(Deployer::new(deploy::Parts {
            databases: databases.clone(),
            github: github.clone(),
            metrics: metrics.clone(),
            notifier: notifier.clone(),
            db: db.clone(),
            hub: hub.clone(),
            docker: docker.clone(),
            sealer: keys.sealer.clone(),
            config: config.clone(),
            port,
            job_signal: job_signal.clone(),
            proxy: proxy.clone(),
        })?);
        let device_logins = crate::auth::device::DeviceLogins::new(db.clone(), keys.sealer.clone());
        let state = web::Data::new(AppState {
            tokens: TokenKeys::new(&keys.jwt_key, config.auth.access_token_ttl_secs),
            limiter: LoginLimiter::new(
                config.auth.login_attempts_per_ip,
                config.auth.login_failures_per_username,
                Duration::from_secs(config.auth.login_window_secs),
            ),
            api_limiter: crate::auth::ApiLimiter::new(config.quotas.api_requests_per_minute),
            passwords: PasswordHasher::new(config.auth.hash_concurrency),
            logins: Default::default(),
            sealer: keys.sealer,
            setup_lock: tokio::sync::Mutex::new(()),
            hub,
            runtime_logs,
            job_signal,
            deployer,
            databases,
            proxy,
            dns: crate::proxy::dns::Checker::new(config.dns.resolver.as_deref())?,
            github,
            metrics,
            notifier,
            device_logins,
            leadership,
            engines,
            docker,
            db,
            port,
            config,
            supervisor: supervisor.clone(),
        });

        state
            .proxy
            .refresh()
            .await
            .context("building the route table")?;
        // Databases left starting, or whose container went, come up again.
        if let Err(e) = state.databases.recover().await {
            tracing::warn!(error = %format!("{e:#}"), "cannot look at the databases yet");
        }
        // Backups cut off by the last stop are failed, never left running.
        if let Err(e) = state.databases.recover_backups().await {
            tracing::warn!(error = %format!("{e:#}"), "cannot look at the backups yet");
        }
        loops::start(&state, &supervisor, &shutdown).await;
        let job_parts = Arc::new(jobs::Parts {
            db: state.db.clone(),
            config: state.config.clone(),
            signal: state.job_signal.clone(),
            deployer: state.deployer.clone(),
            notifier: state.notifier.clone(),
        });
        let workers = jobs::Workers::start(job_parts, &supervisor, shutdown.clone()).await?;
        let server = server::http(&state, listener, https_listener.zip(tls))?;
        tracing::info!("listening on http://{}:{}", state.config.listen.ip(), port);
        Ok(App {
            _lock: lock,
            server,
            state,
            workers,
            shutdown,
            acme,
        })
    }

    pub fn port(&self) -> u16 {
        self.state.port
    }

    pub fn state(&self) -> Arc<AppState> {
        self.state.clone().into_inner()
    }

    /// Serves until SIGINT/SIGTERM (or the server ends), then stops accepting, lets in-flight
    /// requests and jobs finish, and closes the database.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let App {
            _lock,
            server,
            state,
            workers,
            shutdown,
            acme,
        } = self;
        let handle = server.handle();
        let mut server = tokio::spawn(server);
        if let Some(acme) = acme {
            let (leadership, stop) = (state.leadership.clone(), shutdown.clone());
            state.supervisor.spawn("acme", move || {
                acme.clone().run(leadership.clone(), stop.clone()).map(Ok)
            });
        }
        let ended_by = tokio::select! {
            result = &mut server => {
                result.context("http server task")?.context("http server")?;
                "http server"
            }
            signal = wait_for_signal() => signal,
        };
        tracing::info!(cause = ended_by, "shutting down");
        handle.stop(true).await;
        let _ = server.await;
        shutdown.cancel();
        workers.join().await;
        if let Ok(state) = Arc::try_unwrap(state.into_inner()) {
            state.db.close().await.context("closing the database")?;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

async fn wait_for_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            std::future::pending::<()>().await;
            unreachable!()
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
