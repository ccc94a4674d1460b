//! Assembly: `App::build` opens the database, runs migrations, loads keys, binds the listener
//! (port 0 in tests) and prepares the HTTP server and job workers; `run_until_stopped` runs them
//! until a signal (or one of them ends) and then shuts down gracefully.

mod data_dir;
mod loops;
pub mod notify;
mod server;
pub mod upgrade;

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use anyhow::Context;
use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;

pub use data_dir::{DataDirLock, install_crypto_provider, open_database, open_database_retiring};

use crate::auth::{LoginLimiter, PasswordHasher, TokenKeys};
use crate::config::Config;
use crate::db;
use crate::deploy::{self, Deployer};
use crate::docker::Engine;
use crate::hub::{Hub, RuntimeLogs};
use crate::jobs;
use crate::proxy::Proxy;
use crate::proxy::acme::Acme;
use crate::secrets;
use crate::state::AppState;
use crate::supervisor::Supervisor;

/// After an upgrade, how long this process keeps answering its keep-alive connections (each
/// answer closing its connection) before it closes the idle ones.
const DRAIN_LINGER: Duration = Duration::from_secs(2);

/// After pausing the accept loop, how long before WebSockets are told to reconnect.
const PAUSE_SETTLE: Duration = Duration::from_millis(150);

pub struct App {
    /// Held for the life of the process: one `shard serve` per data dir.
    lock: DataDirLock,
    /// This process's copies of its sockets, for a successor (`upgrade`).
    handover: upgrade::Handover,
    /// Whether an upgrade started this process.
    succeeds: bool,
    /// The binary's path as started (an upgrade starts what is at this path then).
    exe: std::path::PathBuf,
    server: actix_web::dev::Server,
    state: web::Data<AppState>,
    workers: jobs::Workers,
    shutdown: CancellationToken,
    /// Closed after the workers: what they finish is still announced to other instances.
    outbox: Option<loops::Outbox>,
    /// Started with the server, so that it can answer its own challenges.
    acme: Option<Arc<Acme>>,
    /// Retires the pool's connections once the server's worker runtimes end.
    retirement: db::Retirement,
}

impl App {
    /// Builds every part, in order: the data dir (lock, database, keys), the listener, the
    /// shared handles (supervisor, hub, leadership and relay, Docker, notifier, HTTPS, proxy,
    /// engines, runtime logs, GitHub, deployer), the state that holds them, the background
    /// loops, the job workers, and the server. Nothing serves until `run_until_stopped`.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        Self::build_with(config, upgrade::Inherited::default()).await
    }

    /// `build`, on sockets this process was started with (`upgrade::Inherited::from_env`).
    pub async fn build_with(config: Config, inherited: upgrade::Inherited) -> anyhow::Result<App> {
        tracing::info!(
            data_dir = %config.data_dir.display(),
            postgres = config.database_url().starts_with("postgres"),
            "starting shard {}",
            env!("CARGO_PKG_VERSION")
        );
        tracing::debug!(config = ?config, "configuration");
        data_dir::create_private_dir(&config.data_dir)?;
        let exe = std::env::current_exe().context("cannot tell where this binary is")?;
        let succeeds = inherited.upgrade;
        let lock = match succeeds {
            true => DataDirLock::after_predecessor(&config.data_dir)?,
            false => DataDirLock::acquire(&config.data_dir)?,
        };
        let listener = match inherited.listen {
            Some(listener) => listener,
            None => server::bind(config.listen, "--listen")?,
        };
        let https_inherited = inherited.https;
        // Taken over by an upgrade, the database is open in the old process too: no snapshot
        // is put back over it.
        let (db, retirement) =
            open_database_retiring(&config, (!succeeds).then_some(&lock)).await?;
        let keys = data_dir::Keys::load(&config, &db).await?;
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
        let (routes_changed, outbox) = loops::relay(&supervisor, &db, &hub, &shutdown);
        loops::tail_predecessor(
            &supervisor,
            &db,
            &hub,
            &routes_changed,
            lock.predecessor_gone(),
            &shutdown,
        );
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
        let (https_listener, https) =
            server::https(&config, &db, &keys.sealer, &notifier, https_inherited)?.unzip();
        let tls = https.as_ref().map(|h| h.certs.server_config());
        let acme = https.as_ref().and_then(|h| h.acme.clone());
        let proxy = Arc::new(Proxy::new(db.clone(), &config, https, metrics.clone()));
        loops::route_follower(
            &supervisor,
            &db,
            &proxy,
            routes_changed,
            &shutdown,
            succeeds,
        );
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
        let previews = crate::previews::Previews::new(crate::previews::Parts {
            db: db.clone(),
            deployer: deployer.clone(),
            github: github.clone(),
            sealer: keys.sealer.clone(),
            config: config.clone(),
            base: config.public_base(port),
        });
        let tasks = crate::tasks::Tasks::new(crate::tasks::Parts {
            db: db.clone(),
            hub: hub.clone(),
            docker: docker.clone(),
            deployer: deployer.clone(),
            notifier: notifier.clone(),
            base: config.public_base(port),
            config: config.clone(),
            shutdown: shutdown.clone(),
        });
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
            previews,
            tasks,
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
            draining: CancellationToken::new(),
            doctor: std::sync::Mutex::new(None),
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
        // Backups cut off by the last stop are failed, never left running (not the ones a
        // predecessor still runs: they are failed once their heartbeat is stale).
        if !succeeds && let Err(e) = state.databases.recover_backups().await {
            tracing::warn!(error = %format!("{e:#}"), "cannot look at the backups yet");
        }
        loops::start(&state, &supervisor, &shutdown, succeeds).await;
        let job_parts = Arc::new(jobs::Parts {
            db: state.db.clone(),
            config: state.config.clone(),
            signal: state.job_signal.clone(),
            deployer: state.deployer.clone(),
            notifier: state.notifier.clone(),
        });
        let workers = jobs::Workers::start(job_parts, &supervisor, shutdown.clone()).await?;
        let handover = upgrade::Handover {
            listen: listener.try_clone()?,
            https: https_listener.as_ref().map(|l| l.try_clone()).transpose()?,
            lock_path: state.config.data_dir.join("shard.lock"),
        };
        let server = server::http(&state, listener, https_listener.zip(tls))?;
        tracing::info!("listening on http://{}:{}", state.config.listen.ip(), port);
        Ok(App {
            lock,
            handover,
            succeeds,
            exe,
            server,
            state,
            workers,
            shutdown,
            outbox,
            acme,
            retirement,
        })
    }

    pub fn port(&self) -> u16 {
        self.state.port
    }

    pub fn state(&self) -> Arc<AppState> {
        self.state.clone().into_inner()
    }

    /// Serves until SIGINT/SIGTERM (or the server ends), or until SIGUSR2 has handed the
    /// sockets to a new process (`upgrade`); then stops accepting, lets in-flight requests and
    /// jobs finish, and closes the database.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let App {
            lock,
            handover,
            succeeds,
            exe,
            server,
            state,
            workers,
            shutdown,
            outbox,
            acme,
            retirement,
        } = self;
        let handle = server.handle();
        let mut server = tokio::spawn(server);
        if let Some(acme) = acme {
            let (leadership, stop) = (state.leadership.clone(), shutdown.clone());
            state.supervisor.spawn("acme", move || {
                acme.clone().run(leadership.clone(), stop.clone()).map(Ok)
            });
        }
        // The server accepts from here on.
        if let Err(e) = lock.record_pid() {
            tracing::warn!(error = %e, "cannot write the pid into the lock file");
        }
        if succeeds {
            notify::notify(&format!("MAINPID={}\nREADY=1", std::process::id()));
            tracing::info!("took over from the previous process");
        } else {
            notify::notify("READY=1");
        }
        let watchdog = tokio::spawn(notify::watchdog(shutdown.clone()));
        let mut signals = Signals::new();
        let ended_by = loop {
            tokio::select! {
                result = &mut server => {
                    result.context("http server task")?.context("http server")?;
                    break "http server";
                }
                signal = signals.next() => match signal {
                    Signal::Stop(name) => break name,
                    Signal::Upgrade => {
                        tracing::info!(binary = %exe.display(), "upgrading: starting the new process");
                        match handover.start_successor(&exe).await {
                            Ok(pid) => {
                                tracing::info!(pid, "the new process serves; draining");
                                break "upgrade";
                            }
                            Err(e) => tracing::error!(error = %format!("{e:#}"), "upgrade failed"),
                        }
                    }
                },
            }
        };
        tracing::info!(cause = ended_by, "shutting down");
        if ended_by != "upgrade" {
            notify::notify("STOPPING=1");
        }
        drop(handover);
        let mut workers = Some(workers);
        if ended_by == "upgrade" {
            // New connections go to the new process from now on (the sockets are shared), so
            // a dashboard WebSocket closed below reconnects there; keep-alive clients of this
            // one get `Connection: close` on their next answer and reconnect there too. Only
            // then are the idle ones closed. actix answers `pause` before its accept thread
            // has acted on it, so the sockets are closed a moment later: a viewer told to
            // reconnect then lands on the new process (one that still lands here is told again).
            handle.pause().await;
            tokio::time::sleep(PAUSE_SETTLE).await;
            state.draining.cancel();
            tokio::time::sleep(DRAIN_LINGER).await;
            // The jobs this process runs are finished while the paused server's workers are
            // still alive: database connections their requests opened stay usable (see
            // `db::Retirement`), and in-flight proxied traffic keeps flowing meanwhile. Its
            // routes follow the database meanwhile (the new process changes them now), for a
            // keep-alive client that comes back here after the linger.
            let following = CancellationToken::new();
            let follower = tokio::spawn(
                state
                    .proxy
                    .clone()
                    .follow(Arc::new(tokio::sync::Notify::new()), following.clone()),
            );
            shutdown.cancel();
            if let Some(workers) = workers.take() {
                workers.join().await;
            }
            following.cancel();
            let _ = follower.await;
        } else {
            // The jobs run on while the server stops: they stop taking connections its workers
            // opened so far (one a handler opens while it finishes is retired below).
            retirement.retire();
        }
        state.draining.cancel();
        handle.stop(true).await;
        let _ = server.await;
        // Every worker runtime has ended: the connections its requests opened are dead.
        retirement.retire();
        shutdown.cancel();
        if let Some(workers) = workers.take() {
            workers.join().await;
        }
        if let Some(outbox) = outbox {
            outbox.close().await;
        }
        let _ = watchdog.await;
        if let Ok(state) = Arc::try_unwrap(state.into_inner()) {
            state.db.close().await.context("closing the database")?;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

enum Signal {
    /// SIGTERM or SIGINT: drain and exit.
    Stop(&'static str),
    /// SIGUSR2: hand the sockets to the binary now at our path.
    Upgrade,
}

/// The signals `shard serve` acts on (none but Ctrl-C off Unix).
struct Signals {
    #[cfg(unix)]
    streams: Option<[tokio::signal::unix::Signal; 3]>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let streams = (|| {
                Some([
                    signal(SignalKind::terminate()).ok()?,
                    signal(SignalKind::interrupt()).ok()?,
                    signal(SignalKind::user_defined2()).ok()?,
                ])
            })();
            Self { streams }
        }
        #[cfg(not(unix))]
        Self {}
    }

    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            let Some([term, int, usr2]) = &mut self.streams else {
                return std::future::pending().await;
            };
            tokio::select! {
                _ = term.recv() => Signal::Stop("SIGTERM"),
                _ = int.recv() => Signal::Stop("SIGINT"),
                _ = usr2.recv() => Signal::Upgrade,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Stop("Ctrl-C")
        }
    }
}
