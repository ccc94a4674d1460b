//! `GET /projects/{id}/metrics`: a project's container metrics as one aligned series (a
//! database's are read through the same [`series`]);
//! `GET /system/overview`: the host at a glance, and `GET /system/doctor`: what is wrong with
//! it, for admins; `GET /metrics` (at the root):
//! shard's own metrics in the Prometheus text format, for loopback clients, or with
//! `metrics.token` set for any client that sends it as a bearer token.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::access;
use crate::db::{self, metrics::Point};
use crate::http::access::{ProjectFor, Read};
use crate::http::auth::Authenticated;
use crate::http::error::{AppError, AppResult};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/projects/{id}/metrics", web::get().to(project_metrics))
        .route("/system/overview", web::get().to(overview))
        .route("/system/doctor", web::get().to(doctor));
}

/// Points one series may have.
const MAX_POINTS: i64 = 5000;

#[derive(Deserialize, IntoParams)]
pub struct MetricsQuery {
    /// Start (RFC 3339 or Unix seconds); default one hour before `to`.
    pub from: Option<String>,
    /// End (RFC 3339 or Unix seconds); default now.
    pub to: Option<String>,
    /// Seconds between points; default the range split in about 300 points.
    pub step: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct MetricsView {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub step: i64,
    /// Oldest first, one per `step`-second bucket that has samples (aligned to the epoch).
    /// CPU and memory are averages over the bucket; the limit, network and block I/O
    /// (cumulative since the container started) and the restart count are the last values.
    pub points: Vec<Point>,
}

/// Times from 1970 to 9999 (so no arithmetic on them can leave chrono's range).
fn parse_time(field: &'static str, text: &str) -> AppResult<DateTime<Utc>> {
    let time = match text.parse::<i64>() {
        Ok(secs) => Utc.timestamp_opt(secs, 0).single(),
        Err(_) => DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
    }
    .ok_or_else(|| AppError::validation(field, "must be RFC 3339 or Unix seconds"))?;
    if !(0..=253_402_300_799).contains(&time.timestamp()) {
        return Err(AppError::validation(field, "must be between 1970 and 9999"));
    }
    Ok(time)
}

#[utoipa::path(get, path = "/api/v1/projects/{id}/metrics", tag = "metrics", params(("id" = uuid::Uuid, Path, description = "the project id"), MetricsQuery),
    responses((status = 200, body = MetricsView), (status = 404), (status = 422)),
    security(("bearer" = ["role:viewer", "scope:read"])))]
pub async fn project_metrics(
    state: web::Data<AppState>,
    ProjectFor(_actor, project, _need): ProjectFor<Read>,
    query: web::Query<MetricsQuery>,
) -> AppResult<web::Json<MetricsView>> {
    Ok(web::Json(series(&state, project.id, &query).await?))
}

/// The series of one subject (a project or a database) the query asks for: 422 for a range
/// or step that makes no sense or too many points.
pub async fn series(
    state: &AppState,
    subject: uuid::Uuid,
    query: &MetricsQuery,
) -> AppResult<MetricsView> {
    let to = match &query.to {
        Some(t) => parse_time("to", t)?,
        None => Utc::now(),
    };
    let from = match &query.from {
        Some(t) => parse_time("from", t)?,
        None => to - Duration::hours(1),
    };
    if from >= to {
        return Err(AppError::validation("from", "must be before to"));
    }
    let span = (to - from).num_seconds().max(1);
    let interval = state.config.metrics.interval_secs.max(1) as i64;
    let step = match query.step {
        Some(step) if step < 1 => return Err(AppError::validation("step", "must be at least 1")),
        Some(step) => step,
        None => (span / 300).max(interval),
    };
    if span / step > MAX_POINTS {
        return Err(AppError::validation(
            "step",
            format!("gives more than {MAX_POINTS} points for this range; use a larger step"),
        ));
    }
    let retention = crate::metrics::retention(&state.config.metrics);
    let points =
        db::metrics::series(&state.db, subject, from, to, step, Utc::now(), &retention).await?;
    Ok(MetricsView {
        from,
        to,
        step,
        points,
    })
}

#[derive(Serialize, ToSchema)]
pub struct Overview {
    pub docker_reachable: bool,
    pub docker_version: Option<String>,
    /// Free space where the data dir is.
    pub disk_free_bytes: Option<u64>,
    pub disk_total_bytes: Option<u64>,
    pub memory_total_bytes: Option<u64>,
    pub memory_available_bytes: Option<u64>,
    /// Jobs queued or running.
    pub queue_depth: Option<u64>,
    /// shard's app containers, and how many of them run.
    pub containers: Option<usize>,
    pub containers_running: Option<usize>,
    /// shard's own resident memory.
    pub shard_rss_bytes: Option<u64>,
    pub metrics_samples: Option<u64>,
    /// Whether this instance runs the singletons (collector, watchdog, renewals); always true
    /// with one instance.
    pub leader: bool,
    /// The supervised background tasks: status, restarts, last error.
    pub tasks: Vec<crate::supervisor::TaskState>,
}

/// The host at a glance (admins).
#[utoipa::path(get, path = "/api/v1/system/overview", tag = "metrics",
    responses((status = 200, body = Overview), (status = 403)), security(("bearer" = [])))]
pub async fn overview(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
) -> AppResult<web::Json<Overview>> {
    access::instance_admin(&actor)?;
    let engine = crate::metrics::host::engine(&state.docker).await;
    let docker_version = engine.version;
    let (disk_free_bytes, disk_total_bytes) = crate::metrics::host::disk(&state.config.data_dir);
    let (memory_total_bytes, memory_available_bytes) = crate::metrics::host::memory();
    Ok(web::Json(Overview {
        docker_reachable: docker_version.is_some(),
        docker_version,
        disk_free_bytes,
        disk_total_bytes,
        memory_total_bytes,
        memory_available_bytes,
        queue_depth: db::jobs::count_pending(&state.db).await.ok(),
        containers_running: engine.containers.map(|c| c.1),
        containers: engine.containers.map(|c| c.0),
        shard_rss_bytes: crate::metrics::host::own_rss(),
        metrics_samples: db::metrics::count(&state.db).await.ok(),
        leader: state.leadership.is_leader(),
        tasks: state.supervisor.snapshot(),
    }))
}

#[derive(Deserialize, IntoParams)]
pub struct DoctorQuery {
    /// Run the checks now (else the newest report, from today's run, when there is one).
    #[serde(default)]
    pub run: bool,
}

/// What `shard doctor` finds on this host (admins): each check with its status, what it
/// found, and what to do.
#[utoipa::path(get, path = "/api/v1/system/doctor", tag = "metrics", params(DoctorQuery),
    responses((status = 200, body = crate::doctor::Report), (status = 403)), security(("bearer" = [])))]
pub async fn doctor(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
    query: web::Query<DoctorQuery>,
) -> AppResult<web::Json<crate::doctor::Report>> {
    access::instance_admin(&actor)?;
    let kept = state
        .doctor
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    Ok(web::Json(match kept {
        Some(report) if !query.run => report,
        _ => state.run_doctor().await,
    }))
}

/// shard's own metrics, Prometheus text format 0.0.4.
#[utoipa::path(get, path = "/metrics", tag = "metrics",
    responses((status = 200, description = "the text exposition", content_type = "text/plain"),
        (status = 401, description = "metrics.token is set and was not sent"),
        (status = 403, description = "not a loopback client and no metrics.token configured")))]
pub async fn prometheus(state: web::Data<AppState>, req: HttpRequest) -> AppResult<HttpResponse> {
    match &state.config.metrics.token {
        Some(token) => {
            let sent = req
                .headers()
                .get(actix_web::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if !crate::secrets::constant_time_eq(sent.as_bytes(), token.expose().as_bytes()) {
                return Err(AppError::Unauthorized(
                    "send metrics.token as a bearer token".into(),
                ));
            }
        }
        None if !state.config.http.trusted_proxies.is_empty() => {
            // Behind a proxy on this host every client arrives from loopback.
            return Err(AppError::Forbidden(
                "with http.trusted_proxies set, metrics need metrics.token (a proxy makes every \
                 client look local)"
                    .into(),
            ));
        }
        None => {
            let loopback = req.peer_addr().is_some_and(|a| a.ip().is_loopback());
            if !loopback {
                return Err(AppError::Forbidden(
                    "metrics are served to loopback clients only (set metrics.token to allow others)"
                        .into(),
                ));
            }
        }
    }
    let depth = db::jobs::count_pending(&state.db).await.ok();
    let text = state.metrics.render(depth, state.hub.subscribers());
    Ok(HttpResponse::Ok()
        .content_type(crate::metrics::prom::CONTENT_TYPE)
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .body(text))
}
