//! Assembly: `App::build` opens the database, runs migrations, loads keys, binds the listener
//! (port 0 in tests) and prepares the HTTP server and job workers; `run_until_stopped` runs them
//! until a signal (or one of them ends) and then shuts down gracefully.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpServer, web};
use anyhow::Context;
use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;

use crate::auth::{LoginLimiter, PasswordHasher, TokenKeys};
use crate::config::Config;
use crate::db::{self, Db};
use crate::deploy::{self, Deployer};
use crate::docker::Engine;
use crate::hub::{Hub, RuntimeLogs};
use crate::proxy::acme::Acme;
use crate::proxy::tls::Certificates;
use crate::proxy::{Destination, Https, Proxy};
use crate::secrets::{self, Sealer};
use crate::state::AppState;
use crate::{http, jobs, setup};

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

/// Opens the database named by the config and applies pending migrations.
pub async fn open_database(config: &Config) -> anyhow::Result<Db> {
    install_crypto_provider();
    create_private_dir(&config.data_dir)?;
    if config
        .database_url
        .as_ref()
        .is_none_or(|u| u.expose().is_empty())
    {
        create_private_file(&config.data_dir.join("shard.db"))?;
    }
    let db = db::connect(&config.database_url()).await?;
    db::migrate(&db).await?;
    Ok(db)
}

/// sqlx (ring) and reqwest/gix (aws-lc-rs) both bring a rustls backend; with two compiled in,
/// rustls cannot pick one by itself, so shard names one before any TLS is used.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Creates the data dir readable by its owner only (it holds keys and the database).
fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data dir {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Creates the SQLite file readable by its owner only before SQLite opens it (its WAL and
/// shared-memory files take the same mode), and tightens an existing one.
fn create_private_file(path: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", path.display()))?;
    Ok(())
}

/// An exclusive lock on `<data_dir>/shard.lock`, released when the process ends (even by
/// SIGKILL). A second `shard serve` on the same data dir would run every job twice and
/// break SQLite's one-writer assumption of the queue; it exits at once instead.
pub struct DataDirLock {
    _file: std::fs::File,
}

impl DataDirLock {
    pub fn acquire(data_dir: &std::path::Path) -> anyhow::Result<Self> {
        use rustix::fs::{FlockOperation, flock};
        use std::os::unix::fs::OpenOptionsExt;
        let path = data_dir.join("shard.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Self { _file: file }),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => anyhow::bail!(
                "the data dir {} is in use by another shard process; stop it first or choose another --data-dir",
                data_dir.display()
            ),
            Err(e) => {
                Err(anyhow::Error::from(e)).context(format!("cannot lock {}", path.display()))
            }
        }
    }
}

/// Refuses to start when the stored env vars were sealed with another key (a changed
/// `SHARD_SECRET_KEY` or a replaced `secret.key`): otherwise every deploy and env read would
/// fail later, far from the cause.
async fn check_secret_key(db: &db::Db, sealer: &Sealer, config: &Config) -> anyhow::Result<()> {
    let sample = db::env_vars::any(db)
        .await
        .context("cannot read env vars to check the secret key")?;
    if let Some(var) = sample
        && sealer.open(&var.value_sealed, var.id.as_bytes()).is_err()
    {
        anyhow::bail!(
            "the secret key cannot open the env vars stored in this database: they were sealed \
             with another key. Start shard with the key it used before (SHARD_SECRET_KEY, or the \
             file {}); the key is never stored in the database",
            config.data_dir.join("secret.key").display()
        );
    }
    Ok(())
}

impl App {
    pub async fn build(config: Config) -> anyhow::Result<App> {
        tracing::info!(config = ?config, "starting shard {}", env!("CARGO_PKG_VERSION"));
        create_private_dir(&config.data_dir)?;
        let lock = DataDirLock::acquire(&config.data_dir)?;
        let db = open_database(&config).await?;
        let secret_key = match &config.secret_key {
            Some(key) if !key.expose().is_empty() => crate::config::parse_secret_key(key.expose())
                .context("secret_key is not a 32-byte key")?,
            _ => secrets::load_or_create_key_file(&config.data_dir.join("secret.key"))?,
        };
        // Derived, not stored: instances that share the secret key accept each other's
        // access tokens. (A `jwt.key` file from earlier versions is no longer read.)
        let jwt_key = secrets::derive_key(&secret_key, "access tokens v1");
        let sealer = Arc::new(Sealer::new(&secret_key));
        check_secret_key(&db, &sealer, &config).await?;

        let listener = TcpListener::bind(config.listen).with_context(|| {
            format!(
                "cannot listen on {} (is it in use? set --listen)",
                config.listen
            )
        })?;
        let port = listener.local_addr()?.port();

        announce_setup(&config, &db, port).await?;

        let config = Arc::new(config);
        let shutdown = CancellationToken::new();
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let supervisor = {
            let metrics = metrics.clone();
            crate::supervisor::Supervisor::new(
                shutdown.clone(),
                Box::new(move |task| metrics.task_restarted(task)),
            )
        };
        let hub = Arc::new(Hub::new());
        // Several instances on one Postgres: one leads the singletons; hub events fan out.
        let (leadership, campaign) = crate::cluster::leader::campaign(&db, &config.database_url());
        if let Some(campaign) = campaign {
            let stop = shutdown.clone();
            supervisor.spawn("leader", move || campaign.clone().run(stop.clone()));
        }
        // Woken when another instance changed what a project serves (its route table follows).
        let routes_changed = Arc::new(tokio::sync::Notify::new());
        if db::is_postgres(&db) {
            use crate::hub::relay;
            let instance = uuid::Uuid::now_v7();
            let (outbox, published) = tokio::sync::mpsc::channel(relay::QUEUE);
            hub.announce_to(outbox);
            let (send_db, stop) = (db.clone(), shutdown.clone());
            supervisor.spawn_once("relay-send", async move {
                relay::send(send_db, instance, published, stop).await;
                Ok(())
            });
            let (listen_db, listen_hub, changed, stop) = (
                db.clone(),
                hub.clone(),
                routes_changed.clone(),
                shutdown.clone(),
            );
            supervisor.spawn("relay-listen", move || {
                relay::listen(
                    listen_db.clone(),
                    listen_hub.clone(),
                    instance,
                    changed.clone(),
                    stop.clone(),
                )
                .map(Ok)
            });
        }
        let docker = Arc::new(Engine::new(
            config.docker.host.as_deref(),
            secrets::instance_id(&secret_key),
        ));
        let job_signal = Arc::new(tokio::sync::Notify::new());
        let notifier = Arc::new(crate::notifications::Notifier::new(
            db.clone(),
            sealer.clone(),
            job_signal.clone(),
            &config,
        )?);
        let https_listener = match config.proxy.https_listen {
            Some(addr) => Some(TcpListener::bind(addr).with_context(|| {
                format!("cannot listen on {addr} for HTTPS (is it in use? set proxy.https_listen)")
            })?),
            None => None,
        };
        let https = match &https_listener {
            Some(listener) => {
                let certs = Arc::new(Certificates::load(
                    &config.data_dir,
                    &config.proxy.certificates,
                ));
                let acme = config.acme.directory_url.as_ref().map(|_| {
                    Arc::new(Acme::new(
                        db.clone(),
                        sealer.clone(),
                        config.clone(),
                        certs.clone(),
                        notifier.clone(),
                    ))
                });
                Some(Https {
                    certs,
                    acme,
                    port: listener.local_addr()?.port(),
                })
            }
            None => None,
        };
        let tls_config = https.as_ref().map(|h| h.certs.server_config());
        let acme = https.as_ref().and_then(|h| h.acme.clone());
        let proxy = Arc::new(Proxy::new(db.clone(), &config, https, metrics.clone()));
        if db::is_postgres(&db) {
            let (routes_proxy, stop) = (proxy.clone(), shutdown.clone());
            supervisor.spawn("route-follower", move || {
                routes_proxy
                    .clone()
                    .follow(routes_changed.clone(), stop.clone())
                    .map(Ok)
            });
        }
        let engines = crate::cluster::Engines::new(
            db.clone(),
            sealer.clone(),
            docker.clone(),
            config.runtime.kind,
        );
        {
            let (engines, stop) = (engines.clone(), shutdown.clone());
            supervisor.spawn("engines", move || {
                engines.clone().watch(stop.clone()).map(Ok)
            });
        }
        let runtime_logs = Arc::new(RuntimeLogs::new(
            config.deploy.max_log_line_bytes,
            docker.clone(),
            hub.clone(),
        ));
        let github = Arc::new(crate::github::Github::new(config.github.clone())?);
        let deployer = Arc::new(Deployer::new(deploy::Parts {
            github: github.clone(),
            metrics: metrics.clone(),
            notifier: notifier.clone(),
            db: db.clone(),
            hub: hub.clone(),
            docker: docker.clone(),
            sealer: sealer.clone(),
            config: config.clone(),
            port,
            job_signal: job_signal.clone(),
            proxy: proxy.clone(),
        })?);
        let device_logins = crate::auth::device::DeviceLogins::new(db.clone(), sealer.clone());
        let state = web::Data::new(AppState {
            tokens: TokenKeys::new(&jwt_key, config.auth.access_token_ttl_secs),
            limiter: LoginLimiter::new(
                config.auth.login_attempts_per_ip,
                config.auth.login_failures_per_username,
                Duration::from_secs(config.auth.login_window_secs),
            ),
            api_limiter: crate::auth::ApiLimiter::new(config.quotas.api_requests_per_minute),
            passwords: PasswordHasher::new(config.auth.hash_concurrency),
            logins: Default::default(),
            sealer,
            setup_lock: tokio::sync::Mutex::new(()),
            hub,
            runtime_logs,
            job_signal,
            deployer,
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
        deploy::recover::at_startup(&state.deployer).await;
        let (sweep_deployer, stop) = (state.deployer.clone(), shutdown.clone());
        supervisor.spawn("sweep", move || {
            deploy::recover::keep_swept(sweep_deployer.clone(), stop.clone())
        });
        if let Some(poster) = state.deployer.commit_status_poster() {
            supervisor.spawn_once("commit-statuses", poster.map(Ok));
        }
        let (deployer, leadership, stop) = (
            state.deployer.clone(),
            state.leadership.clone(),
            shutdown.clone(),
        );
        supervisor.spawn("watchdog", move || {
            deploy::watchdog::watch(deployer.clone(), leadership.clone(), stop.clone()).map(Ok)
        });
        let (deployer, stop) = (state.deployer.clone(), shutdown.clone());
        supervisor.spawn("docker-events", move || {
            deploy::events::watch(deployer.clone(), stop.clone()).map(Ok)
        });
        if state.deployer.runtime().kind() == crate::config::RuntimeKind::Swarm {
            let (deployer, stop) = (state.deployer.clone(), shutdown.clone());
            supervisor.spawn("swarm-watch", move || {
                let (deployer, stop) = (deployer.clone(), stop.clone());
                async move {
                    tokio::select! {
                        () = deploy::swarm::watch(deployer) => {}
                        () = stop.cancelled() => {}
                    }
                    Ok(())
                }
            });
        }
        let (collector_state, stop) = (state.clone().into_inner(), shutdown.clone());
        supervisor.spawn("metrics-collector", move || {
            let s = &collector_state;
            crate::metrics::Collector::new(
                s.db.clone(),
                s.docker.clone(),
                s.deployer.runtime(),
                s.hub.clone(),
                &s.config,
            )
            .run(s.leadership.clone(), stop.clone())
            .map(Ok)
        });
        let heartbeat_state = Arc::new(crate::hub::record::Heartbeat {
            db: state.db.clone(),
            hub: state.hub.clone(),
            docker: state.docker.clone(),
            data_dir: state.config.data_dir.clone(),
            runtime_logs: state.runtime_logs.clone(),
        });
        let stop = shutdown.clone();
        supervisor.spawn("system-heartbeat", move || {
            crate::hub::record::system_heartbeat(
                heartbeat_state.clone(),
                Duration::from_secs(5),
                stop.clone(),
            )
            .map(Ok)
        });
        let job_parts = Arc::new(jobs::Parts {
            db: state.db.clone(),
            config: state.config.clone(),
            signal: state.job_signal.clone(),
            deployer: state.deployer.clone(),
            notifier: state.notifier.clone(),
        });
        let workers = jobs::Workers::start(job_parts, &supervisor, shutdown.clone()).await?;

        let server_state = state.clone();
        let mut server = HttpServer::new(move || {
            // The host decides first: app hosts go to the proxy (with this worker's upstream
            // pool) and never reach the dashboard's routes or middleware.
            let proxy = server_state.proxy.clone();
            let client = std::rc::Rc::new(Proxy::client(&server_state.config));
            actix_web::App::new()
                .wrap_fn(move |req, srv| {
                    use actix_web::dev::Service;
                    use futures_util::future::{Either, FutureExt};
                    if let Some((acme, token)) = proxy.acme_challenge(&req) {
                        return Either::Right(
                            async move {
                                let answer = Proxy::answer_challenge(&acme, &token).await;
                                Ok(req.into_response(answer))
                            }
                            .boxed_local(),
                        );
                    }
                    if let Some(answer) = proxy.early_answer(&req) {
                        let response = req.into_response(answer);
                        return Either::Right(async move { Ok(response) }.boxed_local());
                    }
                    match proxy.destination_of(&req) {
                        Destination::Dashboard => Either::Left(srv.call(req)),
                        destination => {
                            let (proxy, client) = (proxy.clone(), client.clone());
                            Either::Right(
                                async move {
                                    Ok(proxy
                                        .serve(req, destination, &client)
                                        .await
                                        .map_into_boxed_body())
                                }
                                .boxed_local(),
                            )
                        }
                    }
                })
                .configure(|cfg| http::configure(cfg, server_state.clone()))
        })
        .disable_signals()
        // Idle keep-alive connections stay open longer than clients keep them pooled, so a
        // client never sends on a connection the server is closing at that very moment.
        .keep_alive(Duration::from_secs(75))
        .shutdown_timeout(state.config.http.shutdown_timeout_secs);
        if state.config.http.workers > 0 {
            server = server.workers(state.config.http.workers);
        }
        server = server.listen(listener)?;
        if let (Some(listener), Some(tls)) = (https_listener, tls_config) {
            tracing::info!("listening on https://{}", listener.local_addr()?);
            server = server.listen_rustls_0_23(listener, tls)?;
        }
        let server = server.run();
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

/// With no users yet, makes sure a setup token exists and logs the URL that uses it;
/// once a user exists, removes any stale token.
async fn announce_setup(config: &Config, db: &Db, port: u16) -> anyhow::Result<()> {
    if db::users::count(db).await? > 0 {
        return setup::remove_token(&config.data_dir);
    }
    let token = setup::ensure_token(&config.data_dir)?;
    let base = match &config.public_url {
        Some(_) => config.public_url(),
        None => format!("http://{}:{}", config.listen.ip(), port),
    };
    tracing::warn!(
        "no users yet: finish setup at {base}/setup?token={token} (token also in {})",
        setup::token_path(&config.data_dir).display()
    );
    Ok(())
}
