//! Pull-request previews of a project (`/projects/{id}/previews`): listed with their state
//! and URL, approved (a fork's head commit), redeployed or deleted; and the project's preview
//! settings (`previews` on `PATCH /projects/{id}`). See `crate::previews`.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::project_view::PreviewSettingsInput as PreviewSettings;
use crate::db::{self, previews::Preview, projects::Project};
use crate::http::access::{Configure, Deploy, ProjectFor, Read};
use crate::http::error::{AppError, AppResult};
use crate::model::PreviewState;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/projects/{id}/previews", web::get().to(list_previews))
        .route(
            "/projects/{id}/previews/{pr}/approve",
            web::post().to(approve_preview),
        )
        .route(
            "/projects/{id}/previews/{pr}/redeploy",
            web::post().to(redeploy_preview),
        )
        .route(
            "/projects/{id}/previews/{pr}",
            web::delete().to(delete_preview),
        );
}

#[derive(Serialize, ToSchema)]
pub struct PreviewView {
    pub id: Uuid,
    pub pr_number: i32,
    pub title: String,
    pub author: Option<String>,
    pub head_sha: String,
    pub head_ref: String,
    /// `owner/name` of the head's repository.
    pub head_repo: String,
    /// From a fork: builds only an approved commit.
    pub fork: bool,
    /// `awaiting_approval`, `deploying`, `live`, `failed` or `closed`.
    #[schema(value_type = String)]
    pub state: PreviewState,
    pub approved_sha: Option<String>,
    /// Where it answers while it has a build.
    pub url: Option<String>,
    /// The project serving it (its deployments, logs and environment), while it has one.
    pub preview_project_id: Option<Uuid>,
    /// Its newest deployment (the build log).
    pub deployment_id: Option<Uuid>,
    /// Why it is in its state.
    pub note: Option<String>,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    /// When it is removed if nothing changes (open previews).
    pub expires_at: Option<DateTime<Utc>>,
}

fn view(state: &AppState, project: &Project, p: Preview) -> PreviewView {
    let open = p.state != PreviewState::Closed;
    PreviewView {
        url: p.preview_project_id.map(|_| {
            state
                .deployer
                .app_url(&crate::previews::child_slug(p.pr_number, &project.slug))
        }),
        expires_at: open
            .then(|| p.updated_at + chrono::Duration::days(project.previews_ttl_days.into())),
        id: p.id,
        pr_number: p.pr_number,
        title: p.title,
        author: p.author,
        head_sha: p.head_sha,
        head_ref: p.head_ref,
        head_repo: p.head_repo,
        fork: p.fork,
        state: p.state,
        approved_sha: p.approved_sha,
        preview_project_id: p.preview_project_id,
        deployment_id: p.deployment_id,
        note: p.note,
        opened_at: p.opened_at,
        updated_at: p.updated_at,
        closed_at: p.closed_at,
    }
}

/// Checks settings before anything is saved.
pub(super) fn check_settings(
    state: &AppState,
    project: &Project,
    p: &PreviewSettings,
) -> AppResult<()> {
    let limits = &state.config.previews;
    if project.preview_of.is_some() && p.enabled {
        return Err(AppError::validation(
            "previews.enabled",
            "a preview has no previews of its own",
        ));
    }
    if !(1..=limits.max_ttl_days).contains(&p.ttl_days) {
        return Err(AppError::validation(
            "previews.ttl_days",
            format!(
                "must be 1 to {} (previews.max_ttl_days)",
                limits.max_ttl_days
            ),
        ));
    }
    if let Some(Some(credentials)) = &p.basic_auth {
        let (user, password) = credentials.split_once(':').unwrap_or(("", ""));
        if user.is_empty()
            || password.is_empty()
            || credentials.len() > 200
            || credentials.chars().any(char::is_control)
        {
            return Err(AppError::validation(
                "previews.basic_auth",
                "must be user:password (both non-empty, at most 200 characters, no control characters)",
            ));
        }
    }
    if !(1..=limits.max_per_project).contains(&p.max) {
        return Err(AppError::validation(
            "previews.max",
            format!(
                "must be 1 to {} (previews.max_per_project)",
                limits.max_per_project
            ),
        ));
    }
    Ok(())
}

/// Saves the settings; turning previews off removes every preview.
pub(super) async fn apply_settings(
    state: &AppState,
    project: Project,
    p: PreviewSettings,
) -> AppResult<Project> {
    use base64::Engine as _;
    let was = project.previews_enabled;
    if let Some(credentials) = &p.basic_auth {
        // What a browser sends for these credentials, hashed: the proxy compares hashes.
        let hash = credentials.as_ref().map(|c| {
            let header = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(c)
            );
            crate::secrets::token_hash(&header)
        });
        db::previews::set_auth(&state.db, project.id, hash).await?;
        state.proxy.refresh_or_log().await;
    }
    let project = db::projects::find(&state.db, project.id)
        .await?
        .ok_or_else(|| AppError::not_found("project"))?;
    let project =
        db::previews::set_settings(&state.db, project, p.enabled, p.ttl_days, p.max).await?;
    if was && !p.enabled {
        state
            .previews
            .close_all(&project, "previews were turned off")
            .await?;
    }
    Ok(project)
}

fn number(raw: &str) -> AppResult<i32> {
    raw.parse::<i32>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| AppError::not_found("preview"))
}

async fn preview(state: &AppState, project: &Project, raw: &str) -> AppResult<Preview> {
    db::previews::find(&state.db, project.id, number(raw)?)
        .await?
        .ok_or_else(|| AppError::not_found("preview"))
}

/// The project's pull-request previews, newest pull request first.
#[utoipa::path(get, path = "/api/v1/projects/{id}/previews", tag = "previews", params(("id" = uuid::Uuid, Path, description = "the project id")),
    responses((status = 200, body = [PreviewView]), (status = 404)), security(("bearer" = ["role:viewer", "scope:read"])))]
pub async fn list_previews(
    state: web::Data<AppState>,
    ProjectFor(_actor, project, _need): ProjectFor<Read>,
) -> AppResult<web::Json<Vec<PreviewView>>> {
    let rows = db::previews::of_project(&state.db, project.id).await?;
    Ok(web::Json(
        rows.into_iter()
            .map(|p| view(&state, &project, p))
            .collect(),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct PreviewDeploy {
    pub preview: PreviewView,
    pub deployment_id: Uuid,
}

async fn deployed(
    state: &AppState,
    project: &Project,
    number: i32,
    deployment: Uuid,
) -> AppResult<HttpResponse> {
    state.previews.watch(project.clone(), deployment);
    let row = db::previews::find(&state.db, project.id, number)
        .await?
        .ok_or_else(|| AppError::not_found("preview"))?;
    Ok(HttpResponse::Accepted().json(PreviewDeploy {
        preview: view(state, project, row),
        deployment_id: deployment,
    }))
}

/// Approves the pull request's head commit (a fork's builds only once approved) and deploys it.
#[utoipa::path(post, path = "/api/v1/projects/{id}/previews/{pr}/approve", tag = "previews", params(("id" = uuid::Uuid, Path, description = "the project id"), ("pr" = i32, Path, description = "the pull request's number")),
    responses((status = 202, body = PreviewDeploy), (status = 404), (status = 409, description = "the pull request is closed, or previews are off")),
    security(("bearer" = ["role:admin", "scope:admin"])))]
pub async fn approve_preview(
    state: web::Data<AppState>,
    req: HttpRequest,
    ProjectFor(_actor, project, _need): ProjectFor<Configure>,
    path: web::Path<(Uuid, String)>,
) -> AppResult<HttpResponse> {
    let row = preview(&state, &project, &path.1).await?;
    let deployment = state.previews.approve(&project, row.pr_number).await?;
    crate::http::audit::action(&req, "preview.approve", "project", project.id);
    crate::http::audit::detail(
        &req,
        serde_json::json!({"pr": row.pr_number, "sha": row.head_sha}),
    );
    deployed(&state, &project, row.pr_number, deployment.id).await
}

/// Deploys the pull request's head commit again.
#[utoipa::path(post, path = "/api/v1/projects/{id}/previews/{pr}/redeploy", tag = "previews", params(("id" = uuid::Uuid, Path, description = "the project id"), ("pr" = i32, Path, description = "the pull request's number")),
    responses((status = 202, body = PreviewDeploy), (status = 404), (status = 409, description = "a fork's commit is not approved, or previews are off")),
    security(("bearer" = ["role:member", "scope:deploy"])))]
pub async fn redeploy_preview(
    state: web::Data<AppState>,
    ProjectFor(_actor, project, _need): ProjectFor<Deploy>,
    path: web::Path<(Uuid, String)>,
) -> AppResult<HttpResponse> {
    let row = preview(&state, &project, &path.1).await?;
    let deployment = state.previews.redeploy(&project, row.pr_number).await?;
    deployed(&state, &project, row.pr_number, deployment.id).await
}

/// Removes the preview now (its containers, image and routes); a new push deploys it again.
#[utoipa::path(delete, path = "/api/v1/projects/{id}/previews/{pr}", tag = "previews", params(("id" = uuid::Uuid, Path, description = "the project id"), ("pr" = i32, Path, description = "the pull request's number")),
    responses((status = 204), (status = 404)), security(("bearer" = ["role:member", "scope:deploy"])))]
pub async fn delete_preview(
    state: web::Data<AppState>,
    req: HttpRequest,
    ProjectFor(_actor, project, _need): ProjectFor<Deploy>,
    path: web::Path<(Uuid, String)>,
) -> AppResult<HttpResponse> {
    let row = preview(&state, &project, &path.1).await?;
    let pr = row.pr_number;
    state
        .previews
        .close(&project, row, "deleted from shard")
        .await?;
    crate::http::audit::action(&req, "preview.delete", "project", project.id);
    crate::http::audit::detail(&req, serde_json::json!({"pr": pr}));
    Ok(HttpResponse::NoContent().finish())
}
