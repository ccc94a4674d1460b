//! File mounts: `/projects/{id}/files` (the list, the version and which version each running
//! replica mounts) and `/projects/{id}/files/{path}` (PUT the body as the file, GET it back,
//! DELETE it). A change is a new version that the next deployment mounts read-only at
//! `/{path}`; see `deploy::files`.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db;
use crate::http::access::{Configure, ProjectFor, Read};
use crate::http::body::RawBody;
use crate::http::error::{AppError, AppResult};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/projects/{id}/files", web::get().to(list_files))
        .route("/projects/{id}/files/{path:.+}", web::put().to(put_file))
        .route("/projects/{id}/files/{path:.+}", web::get().to(get_file))
        .route(
            "/projects/{id}/files/{path:.+}",
            web::delete().to(delete_file),
        );
}

#[derive(Serialize, ToSchema)]
pub struct FileView {
    /// Where the app sees it, e.g. `/etc/app/config.toml`.
    pub path: String,
    pub size_bytes: i64,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    /// The files version that wrote this content.
    pub version: i32,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Option<Uuid>,
}

#[derive(Serialize, ToSchema)]
pub struct ReplicaFiles {
    pub deployment_id: Uuid,
    /// The deployment's status (`live`, `health_checking`, `stopped`, ...).
    pub status: String,
    /// The replica's number (plain Docker runs one per deployment).
    pub replica: u32,
    /// The files version it mounts; none for a deployment from before file mounts.
    pub files_version: Option<i32>,
    /// Whether it mounts the current version.
    pub current: bool,
}

#[derive(Serialize, ToSchema)]
pub struct FilesView {
    /// The project's files version: every upload or deletion makes a new one.
    pub version: i32,
    pub files: Vec<FileView>,
    /// The running replicas and the version each mounts; a redeploy brings them up to date.
    pub replicas: Vec<ReplicaFiles>,
}

#[derive(Serialize, ToSchema)]
pub struct FileWritten {
    pub path: String,
    pub version: i32,
    pub size_bytes: i64,
    pub sha256: String,
}

#[utoipa::path(get, path = "/api/v1/projects/{id}/files", tag = "files", params(("id" = uuid::Uuid, Path, description = "the project id")),
    responses((status = 200, body = FilesView), (status = 404)), security(("bearer" = ["role:viewer", "scope:read"])))]
pub async fn list_files(
    state: web::Data<AppState>,
    ProjectFor(_actor, project, _need): ProjectFor<Read>,
) -> AppResult<web::Json<FilesView>> {
    let mut history = db::files::history(&state.db, project.id).await?;
    let version = db::files::version_of(&history);
    history.sort_by(|a, b| a.path.cmp(&b.path));
    let files = history
        .into_iter()
        .filter(|f| f.is_current())
        .map(|f| FileView {
            path: format!("/{}", f.path),
            size_bytes: f.size_bytes,
            sha256: f.sha256.unwrap_or_default(),
            version: f.version,
            updated_at: f.created_at,
            updated_by: f.created_by,
        })
        .collect();
    let replicas = db::deployments::with_containers(&state.db, project.id)
        .await?
        .into_iter()
        .filter(|d| d.status != crate::model::DeploymentStatus::Stopped)
        .flat_map(|d| {
            let count = if d.service_id.is_some() {
                project.replicas.max(1) as u32
            } else {
                1
            };
            (1..=count).map(move |replica| ReplicaFiles {
                deployment_id: d.id,
                status: d.status.to_string(),
                replica,
                files_version: d.files_version,
                current: d.files_version.unwrap_or(0) == version,
            })
        })
        .collect();
    Ok(web::Json(FilesView {
        version,
        files,
        replicas,
    }))
}

/// The file's `{path}` from the request.
fn file_path(req: &HttpRequest) -> String {
    req.match_info().get("path").unwrap_or_default().to_string()
}

/// Stores the request body as the file at `/{path}` (a new files version); the next deployment
/// mounts it read-only. 413 over `quotas.file_mount_kib` or the project's total.
#[utoipa::path(put, path = "/api/v1/projects/{id}/files/{path}", tag = "files", params(("id" = uuid::Uuid, Path, description = "the project id"), ("path" = String, Path, description = "where the app sees the file, without the leading '/'")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = FileWritten), (status = 404), (status = 409, description = "too many files, or a volume is mounted at that path"), (status = 413), (status = 422)),
    security(("bearer" = ["role:admin", "scope:admin"])))]
pub async fn put_file(
    state: web::Data<AppState>,
    req: HttpRequest,
    ProjectFor(actor, project, _need): ProjectFor<Configure>,
    body: RawBody,
) -> AppResult<web::Json<FileWritten>> {
    let path = file_path(&req);
    // The path first: a bad one is refused whatever the body.
    let absolute = crate::deploy::files::mount_path(&path)?;
    let content = body.bytes()?;
    let (version, sha256) = state
        .deployer
        .put_file(&project, &path, &content, Some(actor.user_id))
        .await?;
    crate::http::audit::action(&req, "file.put", "project", project.id);
    crate::http::audit::detail(
        &req,
        serde_json::json!({ "path": absolute, "version": version, "sha256": sha256 }),
    );
    Ok(web::Json(FileWritten {
        path: absolute,
        version,
        size_bytes: content.len() as i64,
        sha256,
    }))
}

/// The file's content (team admins: files often hold keys).
#[utoipa::path(get, path = "/api/v1/projects/{id}/files/{path}", tag = "files", params(("id" = uuid::Uuid, Path, description = "the project id"), ("path" = String, Path, description = "the file's path, without the leading '/'")),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 404), (status = 422)),
    security(("bearer" = ["role:admin", "scope:admin"])))]
pub async fn get_file(
    state: web::Data<AppState>,
    req: HttpRequest,
    ProjectFor(_actor, project, _need): ProjectFor<Configure>,
) -> AppResult<HttpResponse> {
    let content = state
        .deployer
        .read_file(&project, &file_path(&req))
        .await?
        .ok_or_else(|| AppError::not_found("file"))?;
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header(("Cache-Control", "no-store"))
        .body(content))
}

/// Deletes the file (a new files version without it); the next deployment no longer mounts it.
#[utoipa::path(delete, path = "/api/v1/projects/{id}/files/{path}", tag = "files", params(("id" = uuid::Uuid, Path, description = "the project id"), ("path" = String, Path, description = "the file's path, without the leading '/'")),
    responses((status = 204), (status = 404), (status = 422)), security(("bearer" = ["role:admin", "scope:admin"])))]
pub async fn delete_file(
    state: web::Data<AppState>,
    req: HttpRequest,
    ProjectFor(actor, project, _need): ProjectFor<Configure>,
) -> AppResult<HttpResponse> {
    let path = file_path(&req);
    let version = state
        .deployer
        .delete_file(&project, &path, Some(actor.user_id))
        .await?
        .ok_or_else(|| AppError::not_found("file"))?;
    crate::http::audit::action(&req, "file.delete", "project", project.id);
    crate::http::audit::detail(
        &req,
        serde_json::json!({ "path": format!("/{}", path.trim_start_matches('/')), "version": version }),
    );
    Ok(HttpResponse::NoContent().finish())
}
