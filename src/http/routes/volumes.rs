//! Volumes: `/projects/{id}/volumes` (a project's, by name) and `/volumes` (every volume, for
//! instance admins: the detached ones a deleted project left, attach and purge). See
//! `deploy::volumes` for what a volume survives.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::access;
use crate::db::{self, volumes::Volume};
use crate::http::access::{Configure, ProjectFor, Read};
use crate::http::auth::Authenticated;
use crate::http::body::JsonBody;
use crate::http::error::{AppError, AppResult, FieldCheck};
use crate::state::AppState;
use crate::validate;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/projects/{id}/volumes", web::get().to(list_volumes))
        .route("/projects/{id}/volumes", web::post().to(add_volume))
        .route(
            "/projects/{id}/volumes/{name}",
            web::delete().to(detach_volume),
        )
        .route("/volumes", web::get().to(all_volumes))
        .route("/volumes/{volume}/attach", web::post().to(attach_volume))
        .route("/volumes/{volume}", web::delete().to(purge_volume));
}

#[derive(Serialize, ToSchema)]
pub struct VolumeView {
    pub id: Uuid,
    pub name: String,
    /// Where the app sees it.
    pub mount_path: String,
    /// The project mounting it; none when detached.
    pub project_id: Option<Uuid>,
    /// The name of the project it belongs (or belonged) to.
    pub project_name: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When its project was deleted or it was detached.
    pub detached_at: Option<DateTime<Utc>>,
    /// When a detached volume is removed with its data (`retention.detached_volumes_days`).
    pub expires_at: Option<DateTime<Utc>>,
    /// Bytes it held when last sampled (every few minutes, with the metrics); none before the
    /// first sample or when the engine's files are not on this host.
    pub size_bytes: Option<i64>,
}

fn view(state: &AppState, v: Volume) -> VolumeView {
    let days = i64::from(state.config.retention.detached_volumes_days);
    VolumeView {
        expires_at: v.detached_at.map(|at| at + chrono::Duration::days(days)),
        id: v.id,
        name: v.name,
        mount_path: v.mount_path,
        project_id: v.project_id,
        project_name: v.project_name,
        created_at: v.created_at,
        detached_at: v.detached_at,
        size_bytes: v.size_bytes,
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddVolume {
    /// Lowercase letters, digits and `-`, e.g. `data`.
    pub name: String,
    /// An absolute path in the app's container, e.g. `/data`.
    pub mount_path: String,
}

#[derive(Deserialize, IntoParams)]
pub struct DetachQuery {
    /// Also remove the volume and its data, for good.
    #[serde(default)]
    pub purge: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachVolume {
    pub project_id: Uuid,
}

/// Paths a volume may not cover: the system's own.
const RESERVED: &[&str] = &[
    "/", "/proc", "/sys", "/dev", "/etc", "/bin", "/sbin", "/usr", "/lib",
];

fn check_mount_path(path: &str) -> Result<(), String> {
    validate::static_dir(path)?;
    let trimmed = path.trim_end_matches('/');
    let under = |r: &&str| {
        trimmed.is_empty() || trimmed == *r || (*r != "/" && trimmed.starts_with(&format!("{r}/")))
    };
    if RESERVED.iter().any(under) {
        return Err(format!(
            "'{path}' is a system directory; use a path like /data"
        ));
    }
    // The plan writes it into a Dockerfile (the directory the app's user owns).
    if !crate::build::plain_path(path) {
        return Err("may only contain letters, digits, '/', '.', '_' and '-'".into());
    }
    Ok(())
}

/// A project's volume by name.
async fn project_volume(state: &AppState, project: Uuid, name: &str) -> AppResult<Volume> {
    db::volumes::for_project(&state.db, project)
        .await?
        .into_iter()
        .find(|v| v.name == name)
        .ok_or_else(|| AppError::not_found("volume"))
}

#[utoipa::path(get, path = "/api/v1/projects/{id}/volumes", tag = "volumes", params(("id" = uuid::Uuid, Path, description = "the project id")),
    responses((status = 200, body = [VolumeView]), (status = 404)), security(("bearer" = ["role:viewer", "scope:read"])))]
pub async fn list_volumes(
    state: web::Data<AppState>,
    ProjectFor(_actor, project, _need): ProjectFor<Read>,
) -> AppResult<web::Json<Vec<VolumeView>>> {
    let volumes = db::volumes::for_project(&state.db, project.id).await?;
    Ok(web::Json(
        volumes.into_iter().map(|v| view(&state, v)).collect(),
    ))
}

/// Adds a volume; the next deployment mounts it (the running app does not see it until then).
#[utoipa::path(post, path = "/api/v1/projects/{id}/volumes", tag = "volumes", params(("id" = uuid::Uuid, Path, description = "the project id")), request_body = AddVolume,
    responses((status = 201, body = VolumeView), (status = 404), (status = 409, description = "the name is taken, or volumes are not possible for this project (Swarm, replicas > 1)"), (status = 422)),
    security(("bearer" = ["role:admin", "scope:admin"])))]
pub async fn add_volume(
    state: web::Data<AppState>,
    req: HttpRequest,
    ProjectFor(_actor, project, _need): ProjectFor<Configure>,
    body: JsonBody<AddVolume>,
) -> AppResult<HttpResponse> {
    let body = body.parse()?;
    validate::slug(&body.name).field("name")?;
    check_mount_path(&body.mount_path).field("mount_path")?;
    let volume = state
        .deployer
        .add_volume(&project, &body.name, &body.mount_path)
        .await?;
    crate::http::audit::action(&req, "volume.add", "project", project.id);
    Ok(HttpResponse::Created().json(view(&state, volume)))
}

/// Detaches the volume (kept, listed for instance admins; the running app keeps it until its
/// next deployment); `?purge=true` removes it and its data instead, refused with a 409 while a
/// container of the app still mounts it.
#[utoipa::path(delete, path = "/api/v1/projects/{id}/volumes/{name}", tag = "volumes", params(("id" = uuid::Uuid, Path, description = "the project id"), ("name" = String, Path, description = "the volume's name"), DetachQuery),
    responses((status = 204), (status = 404), (status = 409, description = "purge: a container of the app still mounts it")), security(("bearer" = ["role:admin", "scope:admin"])))]
pub async fn detach_volume(
    state: web::Data<AppState>,
    req: HttpRequest,
    ProjectFor(_actor, project, _need): ProjectFor<Configure>,
    path: web::Path<(Uuid, String)>,
    query: web::Query<DetachQuery>,
) -> AppResult<HttpResponse> {
    let (_, name) = path.into_inner();
    let volume = project_volume(&state, project.id, &name).await?;
    if query.purge {
        state.deployer.purge_volume(&volume).await?;
    } else {
        state.deployer.detach_volume(volume).await?;
    }
    crate::http::audit::action(&req, "volume.detach", "project", project.id);
    crate::http::audit::detail(
        &req,
        serde_json::json!({ "volume": name, "purge": query.purge }),
    );
    Ok(HttpResponse::NoContent().finish())
}

/// Every volume, attached or detached (instance admins).
#[utoipa::path(get, path = "/api/v1/volumes", tag = "volumes",
    responses((status = 200, body = [VolumeView]), (status = 403)), security(("bearer" = [])))]
pub async fn all_volumes(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
) -> AppResult<web::Json<Vec<VolumeView>>> {
    access::instance_admin(&actor)?;
    let volumes = db::volumes::list(&state.db).await?;
    Ok(web::Json(
        volumes.into_iter().map(|v| view(&state, v)).collect(),
    ))
}

async fn volume(state: &AppState, id: &str) -> AppResult<Volume> {
    let id = Uuid::parse_str(id).map_err(|_| AppError::not_found("volume"))?;
    db::volumes::find(&state.db, id)
        .await?
        .ok_or_else(|| AppError::not_found("volume"))
}

/// Attaches a detached volume to a project (instance admins); its next deployment mounts it.
#[utoipa::path(post, path = "/api/v1/volumes/{volume}/attach", tag = "volumes", params(("volume" = uuid::Uuid, Path, description = "the volume id")), request_body = AttachVolume,
    responses((status = 200, body = VolumeView), (status = 403), (status = 404), (status = 409)), security(("bearer" = [])))]
pub async fn attach_volume(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
    body: JsonBody<AttachVolume>,
) -> AppResult<web::Json<VolumeView>> {
    access::instance_admin(&actor)?;
    let body = body.parse()?;
    let volume = volume(&state, &path.into_inner()).await?;
    let project = db::projects::find(&state.db, body.project_id)
        .await?
        .ok_or_else(|| AppError::not_found("project"))?;
    let attached = state.deployer.attach_volume(volume, &project).await?;
    crate::http::audit::action(&req, "volume.attach", "project", project.id);
    Ok(web::Json(view(&state, attached)))
}

/// Removes a detached volume and its data, for good (instance admins).
#[utoipa::path(delete, path = "/api/v1/volumes/{volume}", tag = "volumes", params(("volume" = uuid::Uuid, Path, description = "the volume id")),
    responses((status = 204), (status = 403), (status = 404), (status = 409, description = "attached, or still mounted")), security(("bearer" = [])))]
pub async fn purge_volume(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    access::instance_admin(&actor)?;
    let volume = volume(&state, &path.into_inner()).await?;
    if volume.project_id.is_some() {
        return Err(AppError::Conflict(
            "the volume is attached to a project; detach it first".into(),
        ));
    }
    state.deployer.purge_volume(&volume).await?;
    Ok(HttpResponse::NoContent().finish())
}
