//! Crash recovery. What a killed process left behind is found by Docker label and by build
//! directory, not by what it managed to record: containers of no serving deployment (a
//! container created but not yet recorded included), images no deployment records, build
//! directories of no running deploy. The sweep runs at startup — retried with backoff while
//! Docker is unreachable — and after every deploy. A deploy found in progress by its re-claimed
//! job ends `failed` ("interrupted by restart") before anything else is tried, so nothing
//! stays in progress even when Docker is down.
//!
//! ## Crash safety
//!
//! What a killed process left is found by label and by directory, not by what it recorded:
//!
//! - a deploy job whose lease expired is claimed again; finding its deployment in progress, the
//!   handler first marks it `failed` ("interrupted by restart") — so nothing stays in progress even
//!   with Docker down — then removes every container labelled with that deployment (one created
//!   but not yet recorded included);
//! - the sweep (`recover::sweep`) removes containers of no live/stopped deployment (unfinished
//!   deploys are kept while this process runs them or their job holds a live lease; superseded
//!   ones while they drain here), images no deployment records (unless a running deploy built it
//!   a moment ago), and build directories of no deploy running here; it also starts stopped live
//!   containers and re-reads their ports. After the first one, `revive` replaces live apps
//!   whose container is gone (a restored installation). It runs at startup (in the background, with backoff while
//!   Docker is unreachable), every 30 s, and after each deploy;
//! - on SQLite (one process per database, enforced by `shard.lock`) startup expires running
//!   leases at once.
//!
//! The crash tests (`tests/api/crash.rs`) SIGKILL a real `shard serve` at each step and at random
//! moments, restart it, and check: nothing in progress, exactly one live deployment that answers,
//! no leftover container, image or build dir.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Deployer, DeploymentStatus as S};
use crate::db;
use crate::db::deployments::{self as deps, Deployment, Fields};

/// What a sweep removed (or started again).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub containers: usize,
    /// Swarm services (`runtime.kind = "swarm"`).
    pub services: usize,
    pub images: usize,
    pub dirs: usize,
    pub restarted: usize,
}

/// How often the sweep runs once it has succeeded (it also runs after every deploy).
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Startup: on SQLite (one process per database, guarded by the data-dir lock) every running
/// job is an orphan, so its lease ends now, unless this process `succeeds` another by an
/// upgrade (that one still runs its jobs and renews their leases). The sweep then runs in the
/// background (`keep_swept`).
pub async fn at_startup(d: &Arc<Deployer>, succeeds: bool) {
    if !db::is_postgres(&d.db) && !succeeds {
        match db::jobs::expire_running_leases(&d.db).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(jobs = n, "recovering jobs interrupted by a restart"),
            Err(e) => tracing::error!(error = %e, "cannot recover interrupted jobs"),
        }
    }
}

/// The background sweep (app.rs runs it under the supervisor as `sweep`): at once, retried
/// with backoff (1 s doubling to 60 s) while Docker cannot be reached, and every
/// `SWEEP_EVERY` after that, until shutdown.
pub async fn keep_swept(d: Arc<Deployer>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut retry = Duration::from_secs(1);
    let mut delay = Duration::ZERO;
    let mut revived = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => return Ok(()),
        }
        delay = match sweep(&d).await {
            Ok(swept) => {
                log_swept(swept);
                if !revived {
                    revived = true;
                    if let Err(e) = revive(&d).await {
                        tracing::error!(error = %format!("{e:#}"), "cannot look for live apps whose container is gone");
                    }
                }
                retry = Duration::from_secs(1);
                SWEEP_EVERY
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), retry_in_secs = retry.as_secs(), "reconcile with Docker failed; retrying");
                let wait = retry;
                retry = (retry * 2).min(Duration::from_secs(60));
                wait
            }
        };
    }
}

/// Brings back the apps whose live container is gone from the engine (an installation
/// restored on a new machine by `shard restore`, or a container removed by hand): each is
/// replaced the way every replacement happens, by a deployment of its own — from its image
/// when the engine has it (a restart), else a build of its commit (trigger `rebuild`). Static
/// sites (no container), projects with a deploy queued or running, and Swarm services (the
/// swarm keeps them) are left alone. Runs once per start, after the first sweep, so a
/// replacement that fails is not retried in a loop. Returns how many were queued.
pub async fn revive(d: &Deployer) -> anyhow::Result<usize> {
    if d.runtime.kind() != crate::config::RuntimeKind::Docker {
        return Ok(0);
    }
    let present: HashSet<Uuid> = d
        .docker
        .managed_containers()
        .await?
        .into_iter()
        .filter_map(|c| c.deployment)
        .collect();
    let mut queued = 0;
    for live in deps::with_status(&d.db, &[S::Live]).await? {
        if live.container_id.is_none()
            || present.contains(&live.id)
            || db::jobs::project_busy(&d.db, live.project_id).await?
        {
            continue;
        }
        let Some(project) = db::projects::find(&d.db, live.project_id).await? else {
            continue;
        };
        let image = match &live.image {
            Some(image) => d.docker.has_image(image).await?,
            None => false,
        };
        let outcome = match image {
            true => d.restart(&project, None).await,
            false => d.rebuild(&project, &live).await,
        };
        match outcome {
            Ok(dep) => {
                queued += 1;
                tracing::warn!(project = %project.name, deployment = %dep.id, image = ?live.image, from_image = image, "the live container is not on this engine; replacing it");
            }
            Err(e) => {
                tracing::error!(project = %project.name, error = %e, "cannot replace a missing live container")
            }
        }
    }
    Ok(queued)
}

fn log_swept(swept: Swept) {
    if swept != Swept::default() {
        tracing::info!(?swept, "reconciled docker with the database");
    }
}

/// A deploy that was in progress when its process died: fail it first (so it never stays in
/// progress), then remove every container carrying its label. If Docker cannot be reached,
/// the next sweep removes them.
pub async fn interrupted(d: &Deployer, deployment: &Deployment) {
    tracing::warn!(deployment = %deployment.id, status = %deployment.status, "deploy was interrupted by a restart");
    let reason = "interrupted by restart";
    let fields = Fields {
        error: Some(reason.into()),
        error_step: Some(deployment.status.to_string()),
        ..Fields::default()
    };
    match deps::transition(&d.db, deployment.id, &S::UNFINISHED, S::Failed, fields).await {
        Ok(true) => {
            d.record_status(
                deployment.project_id,
                deployment.id,
                S::Failed,
                Some(reason),
            )
            .await
        }
        Ok(false) => {}
        Err(e) => tracing::error!(error = %e, "cannot mark the interrupted deploy failed"),
    }
    d.runtime.remove_deployment(deployment).await;
}

/// Makes Docker and the data dir agree with the database. Errors only when Docker cannot be
/// listed; single removals that fail are logged and retried by the next sweep.
pub async fn sweep(d: &Deployer) -> anyhow::Result<Swept> {
    let mut swept = Swept::default();
    let running_here: HashSet<Uuid> = d.running.ids().into_iter().collect();
    swept.dirs = sweep_build_dirs(d, &running_here).await + sweep_plan_dirs(d).await;
    let grace = chrono::Duration::seconds(d.config.deploy.grace_secs as i64 + 30);
    sweep_containers(d, &running_here, grace, &mut swept).await?;
    if d.runtime.kind() == crate::config::RuntimeKind::Swarm {
        swept.services = sweep_services(d, &running_here, grace).await?;
    }
    let recorded: HashSet<String> = deps::recorded_images(&d.db).await?.into_iter().collect();
    for image in d.docker.managed_images().await? {
        if image.tags.iter().any(|t| recorded.contains(t)) {
            continue;
        }
        if let Some(id) = image.deployment
            && let Some(dep) = deps::find(&d.db, id).await?
            && (dep.state() == S::Queued || dep.state().is_in_progress())
            && (running_here.contains(&id) || db::jobs::project_busy(&d.db, dep.project_id).await?)
        {
            continue; // built, not yet recorded by a deploy that is still running
        }
        tracing::info!(image = %image.id, tags = ?image.tags, "removing a leftover image");
        match d.docker.remove_image(&image.id).await {
            Ok(()) => swept.images += 1,
            Err(e) => tracing::debug!(error = %e, "cannot remove a leftover image"),
        }
    }
    // Intermediate layers of builds that were cut off carry only the deployment label: they
    // are ours when the deployment is, and it has ended.
    for image in d.docker.dangling_build_images().await? {
        let Some(id) = image.deployment else { continue };
        if let Some(dep) = deps::find(&d.db, id).await?
            && matches!(dep.state(), S::Failed | S::Cancelled)
            && d.docker.remove_image(&image.id).await.is_ok()
        {
            swept.images += 1;
        }
    }
    Ok(swept)
}

/// Removes plain containers of no serving deployment and starts a live one Docker left stopped
/// (unless the watchdog stopped it for crash-looping).
pub(super) async fn sweep_containers(
    d: &Deployer,
    running_here: &HashSet<Uuid>,
    grace: chrono::Duration,
    swept: &mut Swept,
) -> anyhow::Result<()> {
    for container in d.docker.managed_containers().await? {
        let deployment = match container.deployment {
            Some(id) => deps::find(&d.db, id).await?,
            None => None,
        };
        let keep = match &deployment {
            None => false,
            Some(dep) => match dep.state() {
                S::Live => {
                    if !container.running && !d.is_crash_looped(dep.id) {
                        tracing::info!(deployment = %dep.id, "starting the stopped live container");
                        if d.docker.start_container(&container.id).await.is_ok() {
                            swept.restarted += 1;
                        }
                    }
                    refresh_upstream(d, dep, &container.id).await;
                    true
                }
                S::Stopped => true,
                // Draining after a switch here (removed once its grace period ends); on a
                // shared Postgres another instance may be draining it, for a while.
                S::Superseded => {
                    d.draining().contains(&container.id)
                        || (db::is_postgres(&d.db) && dep.updated_at + grace > db::now())
                }
                status if status == S::Queued || status.is_in_progress() => {
                    running_here.contains(&dep.id)
                        || db::jobs::project_busy(&d.db, dep.project_id).await?
                }
                _ => false,
            },
        };
        if !keep {
            tracing::info!(container = %container.id, "removing a leftover container");
            match d.docker.remove_container(&container.id).await {
                Ok(()) => swept.containers += 1,
                Err(e) => tracing::warn!(error = %e, "cannot remove a leftover container"),
            }
        }
    }
    Ok(())
}

/// Removes services whose deployment no longer runs (a crash between create and record, a
/// removal that failed); a superseded one is kept while it may still be draining.
pub(super) async fn sweep_services(
    d: &Deployer,
    running_here: &HashSet<Uuid>,
    grace: chrono::Duration,
) -> anyhow::Result<usize> {
    let mut removed = 0;
    for (service, _, deployment) in d.docker.managed_services(None).await? {
        let deployment = match deployment {
            Some(id) => deps::find(&d.db, id).await?,
            None => None,
        };
        let keep = match &deployment {
            None => false,
            Some(dep) => match dep.state() {
                S::Live | S::Stopped => true,
                S::Superseded => dep.updated_at + grace > db::now(),
                status if status == S::Queued || status.is_in_progress() => {
                    running_here.contains(&dep.id)
                        || db::jobs::project_busy(&d.db, dep.project_id).await?
                }
                _ => false,
            },
        };
        if !keep {
            tracing::info!(%service, "removing a leftover service");
            match d.docker.remove_service(&service).await {
                Ok(()) => removed += 1,
                Err(e) => tracing::warn!(error = %e, "cannot remove a leftover service"),
            }
        }
    }
    Ok(removed)
}

pub(super) async fn refresh_upstream(d: &Deployer, dep: &Deployment, container: &str) {
    if let Ok(Some(status)) = d.docker.container_status(container).await {
        record_port(d, dep, status.host_port).await;
    }
}

/// Records the port Docker published for `dep`'s container, when it moved.
pub(super) async fn record_port(d: &Deployer, dep: &Deployment, port: Option<u16>) {
    let Some(port) = port else { return };
    let upstream = format!("127.0.0.1:{port}");
    if dep.upstream.as_deref() != Some(upstream.as_str())
        && let Err(e) = deps::set_upstream(&d.db, dep.id, &upstream).await
    {
        tracing::warn!(error = %e, "cannot record the new upstream");
    }
}

/// Removes `<data_dir>/builds/*` (checkouts and context tars) that belong to no deploy
/// running in this process. Whether one runs is asked again for each entry: a sweep follows
/// every deploy, so it overlaps deploys that start meanwhile, and a deploy registers before it
/// makes its dir, so a dir listed here is either registered by now or a leftover.
async fn sweep_build_dirs(d: &Deployer, running_here: &HashSet<Uuid>) -> usize {
    let builds = d.config.data_dir.join("builds");
    let Ok(mut entries) = tokio::fs::read_dir(&builds).await else {
        return 0;
    };
    // The cgroups of builds that ended with a killed shard go too.
    let running: HashSet<String> = running_here.iter().map(Uuid::to_string).collect();
    tokio::task::spawn_blocking(move || crate::docker::sweep_build_cgroups(&running));
    let mut removed = 0;
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name();
        // A build's checkout `<id>/` and its context `<id>.tar`.
        let id = name
            .to_str()
            .and_then(|n| Uuid::parse_str(n.trim_end_matches(".tar")).ok());
        if id.is_some_and(|id| running_here.contains(&id) || d.running.contains(id)) {
            continue;
        }
        let path = entry.path();
        let result = match entry.file_type().await {
            Ok(t) if t.is_dir() => tokio::fs::remove_dir_all(&path).await,
            _ => tokio::fs::remove_file(&path).await,
        };
        match result {
            Ok(()) => removed += 1,
            Err(e) => {
                tracing::warn!(dir = %path.display(), error = %e, "cannot remove a leftover build dir")
            }
        }
    }
    removed
}

/// Removes checkouts of plans (`<data_dir>/plans/*`) older than a fetch may take: a plan
/// removes its own, so these were left by a crash.
async fn sweep_plan_dirs(d: &Deployer) -> usize {
    let dir = super::build::plans_dir(&d.config.data_dir);
    let max_age = Duration::from_secs(d.config.deploy.fetch_timeout_secs + 600);
    tokio::task::spawn_blocking(move || {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > max_age);
            if old && std::fs::remove_dir_all(entry.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    })
    .await
    .unwrap_or(0)
}
