//! The long-running background loops, each started through the supervisor by name (see
//! `crate::supervisor`): the leader campaign and the hub relay (several instances on one
//! Postgres), the route follower, the engines check, and those that run beside a built state
//! (backup schedules, job schedules, the preview reconciler, sweep, commit statuses, watchdog, Docker events, Swarm watch, metrics collector, system
//! heartbeat). ACME starts with the server, and the job workers in `jobs::Workers`.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use futures_util::FutureExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::cluster::leader::{self, Leadership};
use crate::db::{self, Db};
use crate::deploy;
use crate::hub::Hub;
use crate::proxy::Proxy;
use crate::state::AppState;
use crate::supervisor::Supervisor;

/// Leadership for this instance, its campaign supervised when there is one (Postgres).
pub(super) fn leadership(
    supervisor: &Arc<Supervisor>,
    db: &Db,
    url: &str,
    shutdown: &CancellationToken,
) -> Leadership {
    let (leadership, campaign) = leader::campaign(db, url);
    if let Some(campaign) = campaign {
        let stop = shutdown.clone();
        supervisor.spawn("leader", move || campaign.clone().run(stop.clone()));
    }
    leadership
}

/// This instance's announcements to the others. They outlive `shutdown`: a stopping or
/// upgraded instance still finishes its running deploys, and the other instances' viewers
/// (the new process's, after an upgrade) must go on seeing them.
pub(super) struct Outbox {
    stop: CancellationToken,
    flushed: tokio::sync::oneshot::Receiver<()>,
}

impl Outbox {
    /// Sends what is queued (waiting at most 5 s) and stops: call it once the jobs are done.
    pub(super) async fn close(mut self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.flushed).await;
    }
}

impl Drop for Outbox {
    /// An app dropped without being run (tests build many) stops its sender too.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// On Postgres, relays hub events to and from the other instances; returns what is woken
/// when another instance changed what a project serves (the route follower listens to it),
/// and the outbox to close last.
pub(super) fn relay(
    supervisor: &Arc<Supervisor>,
    db: &Db,
    hub: &Arc<Hub>,
    shutdown: &CancellationToken,
) -> (Arc<Notify>, Option<Outbox>) {
    use crate::hub::relay;
    let routes_changed = Arc::new(Notify::new());
    if !db::is_postgres(db) {
        return (routes_changed, None);
    }
    let instance = uuid::Uuid::now_v7();
    let (outbox, published) = tokio::sync::mpsc::channel(relay::QUEUE);
    hub.announce_to(outbox);
    let (send_db, stop) = (db.clone(), CancellationToken::new());
    let (done, flushed) = tokio::sync::oneshot::channel();
    let closing = Outbox {
        stop: stop.clone(),
        flushed,
    };
    supervisor.spawn_once("relay-send", async move {
        relay::send(send_db, instance, published, stop).await;
        let _ = done.send(());
        Ok(())
    });
    let (db, hub, changed, stop) = (
        db.clone(),
        hub.clone(),
        routes_changed.clone(),
        shutdown.clone(),
    );
    supervisor.spawn("relay-listen", move || {
        relay::listen(
            db.clone(),
            hub.clone(),
            instance,
            changed.clone(),
            stop.clone(),
        )
        .map(Ok)
    });
    (routes_changed, Some(closing))
}

/// On SQLite, in a process an upgrade started: relays the events its predecessor still
/// writes (the deploys and runs it finishes) to the subscribers here, and wakes the route
/// follower when it changes what a project serves, until it has exited.
pub(super) fn tail_predecessor(
    supervisor: &Arc<Supervisor>,
    db: &Db,
    hub: &Arc<Hub>,
    routes_changed: &Arc<Notify>,
    predecessor_gone: CancellationToken,
    shutdown: &CancellationToken,
) {
    if db::is_postgres(db) || predecessor_gone.is_cancelled() {
        return;
    }
    let (db, hub, changed, stop) = (
        db.clone(),
        hub.clone(),
        routes_changed.clone(),
        shutdown.clone(),
    );
    supervisor.spawn_once("predecessor-tail", async move {
        crate::hub::relay::tail(db, hub, changed, predecessor_gone, stop).await;
        Ok(())
    });
}

/// On Postgres, keeps the route table in step with other instances' changes; on SQLite too
/// in a process started by an upgrade (`succeeds`: the previous one may still switch a
/// deployment it finishes).
pub(super) fn route_follower(
    supervisor: &Arc<Supervisor>,
    db: &Db,
    proxy: &Arc<Proxy>,
    changed: Arc<Notify>,
    shutdown: &CancellationToken,
    succeeds: bool,
) {
    if !db::is_postgres(db) && !succeeds {
        return;
    }
    let (proxy, stop) = (proxy.clone(), shutdown.clone());
    supervisor.spawn("route-follower", move || {
        proxy.clone().follow(changed.clone(), stop.clone()).map(Ok)
    });
}

/// Compares this instance's Docker engine with the other instances' (see `cluster::engines`).
pub(super) fn engines(
    supervisor: &Arc<Supervisor>,
    engines: &crate::cluster::Engines,
    shutdown: &CancellationToken,
) {
    let (engines, stop) = (engines.clone(), shutdown.clone());
    supervisor.spawn("engines", move || {
        engines.clone().watch(stop.clone()).map(Ok)
    });
}

/// The loops that work on a built state: recovery first (once), then the sweep, the
/// commit-status poster, the watchdog, the Docker event follower, the Swarm watch (Swarm
/// runtime), the metrics collector and the system heartbeat.
pub(super) async fn start(
    state: &web::Data<AppState>,
    supervisor: &Arc<Supervisor>,
    shutdown: &CancellationToken,
    succeeds: bool,
) {
    deploy::recover::at_startup(&state.deployer, succeeds).await;
    let (doctor_state, stop) = (state.clone(), shutdown.clone());
    supervisor.spawn_once("doctor", async move {
        daily_doctor(doctor_state, stop).await;
        Ok(())
    });
    let (databases, stop) = (state.databases.clone(), shutdown.clone());
    supervisor.spawn("backup-schedules", move || {
        databases.clone().run_schedules(stop.clone())
    });
    let (tasks, leadership, stop) = (
        state.tasks.clone(),
        state.leadership.clone(),
        shutdown.clone(),
    );
    let (previews, leadership_p, stop_p) = (
        state.previews.clone(),
        state.leadership.clone(),
        shutdown.clone(),
    );
    supervisor.spawn("previews", move || {
        previews
            .clone()
            .run(leadership_p.clone(), stop_p.clone())
            .map(Ok)
    });
    supervisor.spawn("job-schedules", move || {
        tasks
            .clone()
            .run_schedules(leadership.clone(), stop.clone())
            .map(Ok)
    });
    let (d, stop) = (state.deployer.clone(), shutdown.clone());
    supervisor.spawn("sweep", move || {
        deploy::recover::keep_swept(d.clone(), stop.clone())
    });
    if let Some(poster) = state.deployer.commit_status_poster() {
        supervisor.spawn_once("commit-statuses", poster.map(Ok));
    }
    let (d, leadership, stop) = (
        state.deployer.clone(),
        state.leadership.clone(),
        shutdown.clone(),
    );
    supervisor.spawn("watchdog", move || {
        deploy::watchdog::watch(d.clone(), leadership.clone(), stop.clone()).map(Ok)
    });
    let (d, stop) = (state.deployer.clone(), shutdown.clone());
    supervisor.spawn("docker-events", move || {
        deploy::events::watch(d.clone(), stop.clone()).map(Ok)
    });
    if state.deployer.runtime().kind() == crate::config::RuntimeKind::Swarm {
        let (d, stop) = (state.deployer.clone(), shutdown.clone());
        supervisor.spawn("swarm-watch", move || {
            let (d, stop) = (d.clone(), stop.clone());
            async move {
                tokio::select! {
                    () = deploy::swarm::watch(d) => {}
                    () = stop.cancelled() => {}
                }
                Ok(())
            }
        });
    }
    let (s, stop) = (state.clone().into_inner(), shutdown.clone());
    supervisor.spawn("metrics-collector", move || {
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
    let heartbeat = Arc::new(crate::hub::record::Heartbeat {
        db: state.db.clone(),
        hub: state.hub.clone(),
        docker: state.docker.clone(),
        data_dir: state.config.data_dir.clone(),
        runtime_logs: state.runtime_logs.clone(),
    });
    let stop = shutdown.clone();
    supervisor.spawn("system-heartbeat", move || {
        crate::hub::record::system_heartbeat(
            heartbeat.clone(),
            Duration::from_secs(5),
            stop.clone(),
        )
        .map(Ok)
    });
}

/// The doctor's checks a minute after start and then daily; what fails is logged (and shown
/// on the System page).
async fn daily_doctor(state: web::Data<AppState>, stop: CancellationToken) {
    let mut wait = std::time::Duration::from_secs(60);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return,
        }
        wait = std::time::Duration::from_secs(24 * 3600);
        let report = state.run_doctor().await;
        for check in report
            .checks
            .iter()
            .filter(|c| c.status == crate::doctor::Status::Fail)
        {
            tracing::warn!(check = check.name, fix = ?check.fix, "doctor: {}", check.message);
        }
    }
}
