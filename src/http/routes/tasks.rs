//! One-off commands (`/projects/{id}/runs`) and scheduled jobs (`/projects/{id}/jobs`). See
//! `crate::tasks` for how they run. A run's output is the WebSocket topic `run:<id>`; its last
//! event is `{"type":"status","status","exit_code"}`.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::{self, runs::Run, runs::ScheduledJob};
use crate::http::access::{Configure, Deploy, ProjectFor, Read};
use crate::http::body::JsonBody;
use crate::http::error::{AppError, AppResult, FieldCheck};
use crate::model::{Concurrency, RunState, RunTrigger};
use crate::state::AppState;
use crate::tasks::run::Request;
use crate::tasks::schedule::NewJob;
use crate::validate;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/projects/{id}/runs", web::post().to(start_run))
        .route("/projects/{id}/runs", web::get().to(list_runs))
        .route("/projects/{id}/runs/{run}", web::get().to(get_run))
        .route(
            "/projects/{id}/runs/{run}/cancel",
            web::post().to(cancel_run),
        )
        .route("/projects/{id}/jobs", web::get().to(list_jobs))
        .route("/projects/{id}/jobs", web::post().to(put_job))
        .route("/projects/{id}/jobs/{name}", web::delete().to(delete_job))
        .route("/projects/{id}/jobs/{name}/run", web::post().to(run_job))
        .route("/projects/{id}/jobs/{name}/runs", web::get().to(job_runs));
}

/// Runs listed at most.
const LIST_LIMIT: u64 = 100;

#[derive(Serialize, ToSchema)]
pub struct RunView {
    pub id: Uuid,
    pub project_id: Uuid,
    /// The job it ran for; none for a one-off command.
    pub job_id: Option<Uuid>,
    pub command: Vec<String>,
    /// `command`, `schedule` or `manual` (a job's "Run now").
    #[schema(value_type = String)]
    pub trigger: RunTrigger,
    /// `running`, `succeeded` or `failed`.
    #[schema(value_type = String)]
    pub status: RunState,
    pub exit_code: Option<i64>,
    /// Why it failed other than by its exit code (timeout, start, interrupted).
    pub error: Option<String>,
    /// The live deployment whose image it ran.
    pub deployment_id: Option<Uuid>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    /// The WebSocket topic of its output (`run:<id>`).
    pub topic: String,
}

fn run_view(run: Run) -> RunView {
    RunView {
        duration_ms: run
            .finished_at
            .map(|f| (f - run.started_at).num_milliseconds()),
        topic: crate::hub::Topic::Run(run.id).to_string(),
        command: db::runs::command_of(&run.command),
        id: run.id,
        project_id: run.project_id,
        job_id: run.job_id,
        trigger: run.trigger,
        status: run.status,
        exit_code: run.exit_code,
        error: run.error,
        deployment_id: run.deployment_id,
        started_at: run.started_at,
        finished_at: run.finished_at,
    }
}

#[derive(Serialize, ToSchema)]
pub struct JobView {
    pub id: Uuid,
    pub name: String,
    /// Cron, in UTC (5 fields, or 6 with seconds first).
    pub schedule: String,
    pub command: Vec<String>,
    pub timeout_secs: i32,
    /// `forbid` or `allow`.
    #[schema(value_type = String)]
    pub concurrency: Concurrency,
    pub next_run_at: DateTime<Utc>,
    pub last_run_at: Option<DateTime<Utc>>,
    /// Its newest run.
    pub last_run: Option<RunView>,
}

async fn job_view(state: &AppState, job: ScheduledJob) -> AppResult<JobView> {
    let last = db::runs::runs_of_job(&state.db, job.id, 1).await?;
    Ok(JobView {
        command: db::runs::command_of(&job.command),
        last_run: last.into_iter().next().map(run_view),
        id: job.id,
        name: job.name,
        schedule: job.schedule,
        timeout_secs: job.timeout_secs,
        concurrency: job.concurrency,
        next_run_at: job.next_run_at,
        last_run_at: job.last_run_at,
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    /// The program and its arguments (no shell: `["sh", "-c", "..."]` for one).
    pub command: Vec<String>,
    /// Killed past it (default 3600, at most `jobs.max_timeout_secs`).
    pub timeout_secs: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct Started {
    pub id: Uuid,
    pub status: String,
    /// Subscribe to it on `/api/v1/ws` for the output and the end.
    pub topic: String,
}

/// Runs a command in a new container from the live image, with the app's environment,
/// network, volumes and limits. Answers at once; the output is on the topic `run:<id>`.
#[utoipa::path(post, path = "/api/v1/projects/{id}/runs", tag = "tasks", params(("id" = uuid::Uuid, Path, description = "the project id")), request_body = StartRun,
    responses((status = 202, body = Started), (status = 404), (status = 409, description = "nothing is live, or too many runs are running"), (status = 422)),
    security(("bearer" = ["role:member", "scope:deploy"])))]
pub async fn start_run(
    state: web::Data<AppState>,
    req: HttpRequest,
    ProjectFor(actor, project, _need): ProjectFor<Deploy>,
    body: JsonBody<StartRun>,
) -> AppResult<HttpResponse> {
    let body = body.parse()?;
    let timeout = body
        .timeout_secs
        .unwrap_or(crate::tasks::DEFAULT_TIMEOUT_SECS.min(state.config.jobs.max_timeout_secs));
    crate::tasks::check_timeout(&state.config, timeout)?;
    let program = body.command.first().cloned().unwrap_or_default();
    let run = state
        .tasks
        .start(Request {
            project: &project,
            command: body.command,
            timeout: std::time::Duration::from_secs(timeout),
            trigger: RunTrigger::Command,
            job: None,
            by: Some(actor.user_id),
        })
        .await?;
    crate::http::audit::action(&req, "run.start", "project", project.id);
    crate::http::audit::detail(
        &req,
        serde_json::json!({ "run": run.id, "program": program }),
    );
    Ok(HttpResponse::Accepted().json(Started {
        id: run.id,
        status: run.status.as_str().into(),
        topic: crate::hub::Topic::Run(run.id).to_string(),
    }))
}

/// The project's one-off runs, newest first (at most 100).
#[utoipa::path(get, path = "/api/v1/projects/{id}/runs", tag = "tasks", params(("id" = uuid::Uuid, Path, description = "the project id")),
    responses((status = 200, body = [RunView]), (status = 404)), security(("bearer" = ["role:viewer", "scope:read"])))]
pub async fn list_runs(
    state: web::Data<AppState>,
    ProjectFor(_actor, project, _need): ProjectFor<Read>,
) -> AppResult<web::Json<Vec<RunView>>> {
    let runs = db::runs::one_offs(&state.db, project.id, LIST_LIMIT).await?;
    Ok(web::Json(runs.into_iter().map(run_view).collect()))
}

async fn project_run(state: &AppState, project: Uuid, raw: &str) -> AppResult<Run> {
    let id = Uuid::parse_str(raw).map_err(|_| AppError::not_found("run"))?;
    db::runs::find_run(&state.db, id)
        .await?
        .filter(|r| r.project_id == project)
        .ok_or_else(|| AppError::not_found("run"))
}

/// One run (a one-off or a job's).
#[utoipa::path(get, path = "/api/v1/projects/{id}/runs/{run}", tag = "tasks", params(("id" = uuid::Uuid, Path, description = "the project id"), ("run" = uuid::Uuid, Path, description = "the run id")),
    responses((status = 200, body = RunView), (status = 404)), security(("bearer" = ["role:viewer", "scope:read"])))]
pub async fn get_run(
    state: web::Data<AppState>,
    ProjectFor(_actor, project, _need): ProjectFor<Read>,
    path: web::Path<(Uuid, String)>,
) -> AppResult<web::Json<RunView>> {
    let run = project_run(&state, project.id, &path.1).await?;
    Ok(web::Json(run_view(run)))
}

/// Kills a running run's container; the run ends `failed`.
#[utoipa::path(post, path = "/api/v1/projects/{id}/runs/{run}/cancel", tag = "tasks", params(("id" = uuid::Uuid, Path, description = "the project id"), ("run" = uuid::Uuid, Path, description = "the run id")),
    responses((status = 204, description = "its container is being killed"), (status = 404), (status = 409, description = "it is not running, or runs on another instance")), security(("bearer" = ["role:member", "scope:deploy"])))]
pub async fn cancel_run(
    state: web::Data<AppState>,
    req: HttpRequest,
    ProjectFor(_actor, project, _need): ProjectFor<Deploy>,
    path: web::Path<(Uuid, String)>,
) -> AppResult<HttpResponse> {
    let run = project_run(&state, project.id, &path.1).await?;
    if run.status != RunState::Running {
        return Err(AppError::Conflict(format!(
            "the run is already {}",
            run.status
        )));
    }
    if !state.tasks.cancel(run.id) {
        return Err(AppError::Conflict(
            "the run runs on another shard instance; cancel it there".into(),
        ));
    }
    crate::http::audit::action(&req, "run.cancel", "project", project.id);
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutJob {
    /// Lowercase letters, digits and `-`, unique in the project; an existing name is replaced.
    pub name: String,
    /// Cron in UTC: 5 fields (`*/15 * * * *`), 6 with seconds first, or `@daily`-style.
    pub schedule: String,
    /// The program and its arguments (no shell).
    pub command: Vec<String>,
    /// Killed past it (default 3600).
    pub timeout_secs: Option<u64>,
    /// `forbid` (default: a firing while the last run runs is skipped) or `allow`.
    #[schema(value_type = Option<String>)]
    pub concurrency: Option<Concurrency>,
}

/// The project's scheduled jobs, by name.
#[utoipa::path(get, path = "/api/v1/projects/{id}/jobs", tag = "tasks", params(("id" = uuid::Uuid, Path, description = "the project id")),
    responses((status = 200, body = [JobView]), (status = 404)), security(("bearer" = ["role:viewer", "scope:read"])))]
pub async fn list_jobs(
    state: web::Data<AppState>,
    ProjectFor(_actor, project, _need): ProjectFor<Read>,
) -> AppResult<web::Json<Vec<JobView>>> {
    let mut views = Vec::new();
    for job in db::runs::jobs_of(&state.db, project.id).await? {
        views.push(job_view(&state, job).await?);
    }
    Ok(web::Json(views))
}

/// Declares a job (201), or replaces the job of that name (200).
#[utoipa::path(post, path = "/api/v1/projects/{id}/jobs", tag = "tasks", params(("id" = uuid::Uuid, Path, description = "the project id")), request_body = PutJob,
    responses((status = 201, body = JobView), (status = 200, body = JobView), (status = 404), (status = 409, description = "jobs.max_per_project reached"), (status = 422)),
    security(("bearer" = ["role:admin", "scope:admin"])))]
pub async fn put_job(
    state: web::Data<AppState>,
    req: HttpRequest,
    ProjectFor(_actor, project, _need): ProjectFor<Configure>,
    body: JsonBody<PutJob>,
) -> AppResult<HttpResponse> {
    let body = body.parse()?;
    validate::slug(&body.name).field("name")?;
    if body.schedule.len() > 100 {
        return Err(AppError::validation("schedule", "at most 100 characters"));
    }
    let name = body.name.clone();
    let (job, created) = state
        .tasks
        .put_job(
            &project,
            NewJob {
                name: body.name,
                schedule: body.schedule,
                command: body.command,
                timeout_secs: body.timeout_secs,
                concurrency: body.concurrency,
            },
        )
        .await?;
    crate::http::audit::action(&req, "job.put", "project", project.id);
    crate::http::audit::detail(&req, serde_json::json!({ "job": name }));
    let view = job_view(&state, job).await?;
    Ok(if created {
        HttpResponse::Created().json(view)
    } else {
        HttpResponse::Ok().json(view)
    })
}

async fn named_job(state: &AppState, project: Uuid, name: &str) -> AppResult<ScheduledJob> {
    db::runs::find_job(&state.db, project, name)
        .await?
        .ok_or_else(|| AppError::not_found("job"))
}

/// Deletes a job with its runs (a running one is left to finish).
#[utoipa::path(delete, path = "/api/v1/projects/{id}/jobs/{name}", tag = "tasks", params(("id" = uuid::Uuid, Path, description = "the project id"), ("name" = String, Path, description = "the job's name")),
    responses((status = 204), (status = 404)), security(("bearer" = ["role:admin", "scope:admin"])))]
pub async fn delete_job(
    state: web::Data<AppState>,
    req: HttpRequest,
    ProjectFor(_actor, project, _need): ProjectFor<Configure>,
    path: web::Path<(Uuid, String)>,
) -> AppResult<HttpResponse> {
    let job = named_job(&state, project.id, &path.1).await?;
    for run in db::runs::runs_of_job(&state.db, job.id, 10_000).await? {
        state.tasks.cancel(run.id);
        let _ =
            db::topic_events::delete_topic(&state.db, &crate::hub::Topic::Run(run.id).to_string())
                .await;
    }
    db::runs::delete_job(&state.db, job.id).await?;
    crate::http::audit::action(&req, "job.delete", "project", project.id);
    crate::http::audit::detail(&req, serde_json::json!({ "job": job.name }));
    Ok(HttpResponse::NoContent().finish())
}

/// Runs a job now ("Run now"); refused while it runs when its concurrency is `forbid`.
#[utoipa::path(post, path = "/api/v1/projects/{id}/jobs/{name}/run", tag = "tasks", params(("id" = uuid::Uuid, Path, description = "the project id"), ("name" = String, Path, description = "the job's name")),
    responses((status = 202, body = Started), (status = 404), (status = 409, description = "it runs and its concurrency is forbid, nothing is live, or too many runs are running")),
    security(("bearer" = ["role:member", "scope:deploy"])))]
pub async fn run_job(
    state: web::Data<AppState>,
    req: HttpRequest,
    ProjectFor(actor, project, _need): ProjectFor<Deploy>,
    path: web::Path<(Uuid, String)>,
) -> AppResult<HttpResponse> {
    let job = named_job(&state, project.id, &path.1).await?;
    let run = state
        .tasks
        .run_job(&project, &job, RunTrigger::Manual, Some(actor.user_id))
        .await?;
    crate::http::audit::action(&req, "job.run", "project", project.id);
    crate::http::audit::detail(&req, serde_json::json!({ "job": job.name, "run": run.id }));
    Ok(HttpResponse::Accepted().json(Started {
        id: run.id,
        status: run.status.as_str().into(),
        topic: crate::hub::Topic::Run(run.id).to_string(),
    }))
}

/// A job's runs, newest first (the newest `jobs.keep_runs` are kept).
#[utoipa::path(get, path = "/api/v1/projects/{id}/jobs/{name}/runs", tag = "tasks", params(("id" = uuid::Uuid, Path, description = "the project id"), ("name" = String, Path, description = "the job's name")),
    responses((status = 200, body = [RunView]), (status = 404)), security(("bearer" = ["role:viewer", "scope:read"])))]
pub async fn job_runs(
    state: web::Data<AppState>,
    ProjectFor(_actor, project, _need): ProjectFor<Read>,
    path: web::Path<(Uuid, String)>,
) -> AppResult<web::Json<Vec<RunView>>> {
    let job = named_job(&state, project.id, &path.1).await?;
    let runs = db::runs::runs_of_job(&state.db, job.id, LIST_LIMIT).await?;
    Ok(web::Json(runs.into_iter().map(run_view).collect()))
}
