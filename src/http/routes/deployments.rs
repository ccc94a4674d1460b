//! Deployments: deploy now (or roll back), history, one deployment, cancel, its persisted log,
//! and runtime control of a project's live container (start, stop, restart).

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::db::deployments::{self as deps, Deployment};
use crate::db::projects::Project;
use crate::db::{self, deployment_logs};
use crate::deploy::{Control, DeploymentStatus};
use crate::http::access::{Deploy, DeploymentFor, ProjectFor, Read};
use crate::http::error::AppResult;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/projects/{id}/deployments",
        web::post().to(create_deployment),
    )
    .route(
        "/projects/{id}/deployments",
        web::get().to(list_deployments),
    )
    .route("/projects/{id}/start", web::post().to(start_project))
    .route("/projects/{id}/stop", web::post().to(stop_project))
    .route("/projects/{id}/restart", web::post().to(restart_project))
    .route("/deployments/{id}", web::get().to(get_deployment))
    .route(
        "/deployments/{id}/cancel",
        web::post().to(cancel_deployment),
    )
    .route("/deployments/{id}/logs", web::get().to(deployment_logs));
}

#[derive(Serialize, ToSchema)]
pub struct DeploymentView {
    pub id: Uuid,
    pub project_id: Uuid,
    /// queued fetching building starting health_checking live superseded stopped failed cancelled
    pub status: String,
    /// `manual`, `rollback`, `restart` (a new container from the live image) or `push`.
    pub trigger: String,
    /// The user who started it (absent for automatic ones and removed users).
    pub created_by: Option<String>,
    /// For trigger `push`: the GitHub login that pushed.
    pub pusher: Option<String>,
    pub from_deployment: Option<Uuid>,
    pub commit_sha: Option<String>,
    pub commit_message: Option<String>,
    pub image: Option<String>,
    /// `127.0.0.1:<port>` where the container's app port is published.
    pub upstream: Option<String>,
    /// The Docker container serving it, while one exists.
    pub container_id: Option<String>,
    /// `http://<short-id>-<slug>.<apps.domain>`: this deployment's own URL while its
    /// container runs (health-checking or live).
    pub preview_url: Option<String>,
    /// The step that failed.
    pub error_step: Option<String>,
    pub error: Option<String>,
    /// For a project imported from GitHub: the commit status last posted on the commit
    /// (`pending`, `success`, `failure`).
    pub commit_status: Option<String>,
    /// Why the last commit status could not be posted (the deploy is not affected).
    pub commit_status_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl DeploymentView {
    fn of(state: &AppState, d: Deployment, project: &Project) -> Self {
        let running = matches!(
            d.state(),
            DeploymentStatus::Live | DeploymentStatus::HealthChecking
        );
        Self {
            preview_url: running.then(|| state.deployer.preview_url(d.id, &project.slug)),
            container_id: d.container_id,
            commit_status: d.commit_status.map(|s| s.to_string()),
            commit_status_error: d.commit_status_error,
            id: d.id,
            project_id: d.project_id,
            status: d.status.to_string(),
            trigger: d.trigger.to_string(),
            created_by: None,
            pusher: d.pusher,
            from_deployment: d.from_deployment_id,
            commit_sha: d.commit_sha,
            commit_message: d.commit_message,
            image: d.image,
            upstream: d.upstream,
            error_step: d.error_step,
            error: d.error,
            created_at: d.created_at,
            started_at: d.started_at,
            finished_at: d.finished_at,
        }
    }
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateDeployment {
    /// Roll back: start this earlier deployment's image again.
    pub from_deployment: Option<Uuid>,
}

#[derive(Serialize, ToSchema)]
pub struct Accepted {
    pub id: Uuid,
    pub status: String,
}

/// Queues a deploy of the project's branch, or a rollback to an earlier deployment's image.
#[utoipa::path(post, path = "/api/v1/projects/{id}/deployments", tag = "deployments", params(("id" = uuid::Uuid, Path, description = "the project id")), request_body(content = CreateDeployment, description = "optional"),
    responses((status = 202, body = Accepted), (status = 400, description = "malformed JSON"), (status = 404), (status = 409, description = "rollback image no longer kept"), (status = 422, description = "unknown field, or not a deployment of this project"), (status = 429, description = "a deploy quota is used up; see Retry-After")), security(("bearer" = ["role:member", "scope:deploy"])))]
pub async fn create_deployment(
    state: web::Data<AppState>,
    req: HttpRequest,
    ProjectFor(actor, project, _need): ProjectFor<Deploy>,
    body: web::Bytes,
) -> AppResult<HttpResponse> {
    let body: CreateDeployment = crate::http::optional_json(&body)?;
    crate::http::quotas::deploy(&state, &actor, &project).await?;
    let deployment = state
        .deployer
        .request(&project, Some(actor.user_id), body.from_deployment)
        .await?;
    let action = match body.from_deployment {
        Some(_) => "rollback",
        None => "deploy",
    };
    crate::http::audit::action(&req, action, "deployment", deployment.id);
    if let Some(from) = body.from_deployment {
        crate::http::audit::detail(&req, serde_json::json!({ "from_deployment": from }));
    }
    Ok(HttpResponse::Accepted().json(Accepted {
        id: deployment.id,
        status: deployment.status.to_string(),
    }))
}

#[derive(Deserialize, IntoParams)]
pub struct ListQuery {
    /// At most this many (default 50, max 500).
    pub limit: Option<u64>,
}

#[utoipa::path(get, path = "/api/v1/projects/{id}/deployments", tag = "deployments", params(("id" = uuid::Uuid, Path, description = "the project id"), ListQuery),
    responses((status = 200, body = [DeploymentView]), (status = 404)), security(("bearer" = ["role:viewer", "scope:read"])))]
pub async fn list_deployments(
    state: web::Data<AppState>,
    ProjectFor(_actor, project, _need): ProjectFor<Read>,
    query: web::Query<ListQuery>,
) -> AppResult<web::Json<Vec<DeploymentView>>> {
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let list = deps::list_for_project(&state.db, project.id, limit).await?;
    let names = db::users::usernames(&state.db, list.iter().filter_map(|d| d.created_by)).await?;
    Ok(web::Json(
        list.into_iter()
            .map(|d| {
                let by = d.created_by.and_then(|u| names.get(&u).cloned());
                DeploymentView {
                    created_by: by,
                    ..DeploymentView::of(&state, d, &project)
                }
            })
            .collect(),
    ))
}

#[utoipa::path(get, path = "/api/v1/deployments/{id}", tag = "deployments", params(("id" = uuid::Uuid, Path, description = "the deployment id")), responses((status = 200, body = DeploymentView), (status = 404)), security(("bearer" = ["role:viewer", "scope:read"])))]
pub async fn get_deployment(
    state: web::Data<AppState>,
    DeploymentFor(_actor, deployment, project, _need): DeploymentFor<Read>,
) -> AppResult<web::Json<DeploymentView>> {
    let created_by = match deployment.created_by {
        Some(user) => db::users::find(&state.db, user).await?.map(|u| u.username),
        None => None,
    };
    Ok(web::Json(DeploymentView {
        created_by,
        ..DeploymentView::of(&state, deployment, &project)
    }))
}

/// Cancels a queued deploy at once, or stops a running one within seconds.
#[utoipa::path(post, path = "/api/v1/deployments/{id}/cancel", tag = "deployments", params(("id" = uuid::Uuid, Path, description = "the deployment id")),
    responses((status = 202, body = Accepted), (status = 403), (status = 404), (status = 409, description = "already finished")), security(("bearer" = ["role:member", "scope:deploy"])))]
pub async fn cancel_deployment(
    state: web::Data<AppState>,
    DeploymentFor(_actor, deployment, _project, _need): DeploymentFor<Deploy>,
) -> AppResult<HttpResponse> {
    let after = state.deployer.cancel(&deployment).await?;
    Ok(HttpResponse::Accepted().json(Accepted {
        id: after.id,
        status: after.status.to_string(),
    }))
}

#[derive(Deserialize, IntoParams)]
pub struct LogsQuery {
    /// Return lines with a seq greater than this (default 0: from the start).
    pub since: Option<i64>,
    /// At most this many lines (default 1000, max 10000).
    pub limit: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct LogLineView {
    pub seq: i64,
    pub ts: DateTime<Utc>,
    /// `stdout`, `stderr`, `system` (step headers) or `status` (the line is the new status).
    pub stream: String,
    pub line: String,
}

#[utoipa::path(get, path = "/api/v1/deployments/{id}/logs", tag = "deployments", params(("id" = uuid::Uuid, Path, description = "the deployment id"), LogsQuery),
    responses((status = 200, body = [LogLineView]), (status = 404)), security(("bearer" = ["role:viewer", "scope:read"])))]
pub async fn deployment_logs(
    state: web::Data<AppState>,
    DeploymentFor(_actor, deployment, _project, _need): DeploymentFor<Read>,
    query: web::Query<LogsQuery>,
) -> AppResult<web::Json<Vec<LogLineView>>> {
    let since = query.since.unwrap_or(0).max(0);
    let limit = query.limit.unwrap_or(1000).clamp(1, 10_000);
    let lines = deployment_logs::since(&state.db, deployment.id, since, limit).await?;
    Ok(web::Json(
        lines
            .into_iter()
            .map(|l| LogLineView {
                seq: l.seq,
                ts: l.ts,
                stream: l.stream.to_string(),
                line: l.line,
            })
            .collect(),
    ))
}

/// Runs `control` on the project's serving container (through the deployer).
async fn control(
    state: &AppState,
    project: Project,
    control: Control,
) -> AppResult<web::Json<DeploymentView>> {
    let deployment = state.deployer.control(&project, control).await?;
    Ok(web::Json(DeploymentView::of(state, deployment, &project)))
}

#[utoipa::path(post, path = "/api/v1/projects/{id}/start", tag = "deployments", params(("id" = uuid::Uuid, Path, description = "the project id")), responses((status = 200, body = DeploymentView), (status = 403), (status = 404), (status = 409)), security(("bearer" = ["role:member", "scope:deploy"])))]
pub async fn start_project(
    state: web::Data<AppState>,
    ProjectFor(_actor, project, _need): ProjectFor<Deploy>,
) -> AppResult<web::Json<DeploymentView>> {
    control(&state, project, Control::Start).await
}

#[utoipa::path(post, path = "/api/v1/projects/{id}/stop", tag = "deployments", params(("id" = uuid::Uuid, Path, description = "the project id")), responses((status = 200, body = DeploymentView), (status = 403), (status = 404), (status = 409)), security(("bearer" = ["role:member", "scope:deploy"])))]
pub async fn stop_project(
    state: web::Data<AppState>,
    ProjectFor(_actor, project, _need): ProjectFor<Deploy>,
) -> AppResult<web::Json<DeploymentView>> {
    control(&state, project, Control::Stop).await
}

/// Replaces the running container with a new one from the same image through the health gate
/// (zero downtime); answers with that queued deployment.
#[utoipa::path(post, path = "/api/v1/projects/{id}/restart", tag = "deployments", params(("id" = uuid::Uuid, Path, description = "the project id")), responses((status = 200, body = DeploymentView, description = "the queued deployment that replaces the running container"), (status = 403), (status = 404), (status = 409)), security(("bearer" = ["role:member", "scope:deploy"])))]
pub async fn restart_project(
    state: web::Data<AppState>,
    ProjectFor(actor, project, _need): ProjectFor<Deploy>,
) -> AppResult<web::Json<DeploymentView>> {
    let deployment = state
        .deployer
        .restart(&project, Some(actor.user_id))
        .await?;
    Ok(web::Json(DeploymentView::of(&state, deployment, &project)))
}
