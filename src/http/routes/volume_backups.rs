//! Backups of a project's volumes (`/projects/{id}/volumes/{name}/backups` and
//! `…/backup-schedule`), like a database's: taken now or on a schedule, verified, listed.
//! A volume backup is restored through `POST /backups/{id}/restore` with `target: same`: into
//! a new engine volume that the volume then uses (the files it held are kept as a detached
//! volume), and the live deployment is deployed again so the app mounts them.

use actix_web::{HttpRequest, HttpResponse, web};
use uuid::Uuid;

use super::backups::{PutSchedule, ScheduleView, Started, TakeBackup, backup_view, schedule_view};
use crate::db::{self, backups::Backup, backups::Source, volumes::Volume};
use crate::http::access::{Deploy, ProjectFor, Read};
use crate::http::body::JsonBody;
use crate::http::error::{AppError, AppResult};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    let backups = "/projects/{id}/volumes/{name}/backups";
    let schedule = "/projects/{id}/volumes/{name}/backup-schedule";
    cfg.route(backups, web::get().to(list_volume_backups))
        .route(backups, web::post().to(take_volume_backup))
        .route(schedule, web::get().to(get_volume_schedule))
        .route(schedule, web::put().to(put_volume_schedule))
        .route(schedule, web::delete().to(delete_volume_schedule));
}

/// The project's volume named in the path.
async fn volume_of(state: &AppState, req: &HttpRequest, project: Uuid) -> AppResult<Volume> {
    let name = req.match_info().get("name").unwrap_or_default();
    db::volumes::for_project(&state.db, project)
        .await?
        .into_iter()
        .find(|v| v.name == name)
        .ok_or_else(|| AppError::not_found("volume"))
}

#[utoipa::path(get, path = "/api/v1/projects/{id}/volumes/{name}/backups", tag = "backups",
    params(("id" = uuid::Uuid, Path, description = "the project id"), ("name" = String, Path, description = "the volume's name")),
    responses((status = 200, body = [super::backups::BackupView]), (status = 404)), security(("bearer" = ["role:viewer", "scope:read"])))]
pub async fn list_volume_backups(
    state: web::Data<AppState>,
    req: HttpRequest,
    ProjectFor(_actor, project, _need): ProjectFor<Read>,
) -> AppResult<web::Json<Vec<super::backups::BackupView>>> {
    let volume = volume_of(&state, &req, project.id).await?;
    let backups = db::backups::for_source(&state.db, Source::Volume(volume.id)).await?;
    Ok(web::Json(backups.into_iter().map(backup_view).collect()))
}

/// Takes a backup of the volume now: 202 `running`; a tar of its files, gzip-compressed,
/// stored then verified in the background.
#[utoipa::path(post, path = "/api/v1/projects/{id}/volumes/{name}/backups", tag = "backups",
    params(("id" = uuid::Uuid, Path, description = "the project id"), ("name" = String, Path, description = "the volume's name")), request_body = TakeBackup,
    responses((status = 202, body = Started), (status = 404), (status = 409, description = "no destination"), (status = 422)),
    security(("bearer" = ["role:member", "scope:deploy"])))]
pub async fn take_volume_backup(
    state: web::Data<AppState>,
    req: HttpRequest,
    ProjectFor(actor, project, _need): ProjectFor<Deploy>,
    body: JsonBody<TakeBackup>,
) -> AppResult<HttpResponse> {
    let body = body.parse()?;
    let volume = volume_of(&state, &req, project.id).await?;
    let backup = state
        .databases
        .volume_backup_now(&volume, body.destination_id, Some(actor.user_id))
        .await?;
    crate::http::audit::action(&req, "backup.take", "backup", backup.id);
    Ok(HttpResponse::Accepted().json(Started {
        id: backup.id,
        status: backup.status.to_string(),
    }))
}

#[utoipa::path(get, path = "/api/v1/projects/{id}/volumes/{name}/backup-schedule", tag = "backups",
    params(("id" = uuid::Uuid, Path, description = "the project id"), ("name" = String, Path, description = "the volume's name")),
    responses((status = 200, body = ScheduleView), (status = 404)), security(("bearer" = ["role:viewer", "scope:read"])))]
pub async fn get_volume_schedule(
    state: web::Data<AppState>,
    req: HttpRequest,
    ProjectFor(_actor, project, _need): ProjectFor<Read>,
) -> AppResult<web::Json<ScheduleView>> {
    let volume = volume_of(&state, &req, project.id).await?;
    let schedule = db::backups::schedule(&state.db, Source::Volume(volume.id)).await?;
    Ok(web::Json(schedule_view(schedule)))
}

/// Sets the volume's backup schedule (replacing any).
#[utoipa::path(put, path = "/api/v1/projects/{id}/volumes/{name}/backup-schedule", tag = "backups",
    params(("id" = uuid::Uuid, Path, description = "the project id"), ("name" = String, Path, description = "the volume's name")), request_body = PutSchedule,
    responses((status = 200, body = ScheduleView), (status = 404), (status = 409, description = "there is no destination"), (status = 422)),
    security(("bearer" = ["role:member", "scope:deploy"])))]
pub async fn put_volume_schedule(
    state: web::Data<AppState>,
    req: HttpRequest,
    ProjectFor(actor, project, _need): ProjectFor<Deploy>,
    body: JsonBody<PutSchedule>,
) -> AppResult<web::Json<ScheduleView>> {
    let volume = volume_of(&state, &req, project.id).await?;
    let schedule = super::backups::set_schedule(
        &state,
        Source::Volume(volume.id),
        body.parse()?,
        actor.user_id,
    )
    .await?;
    crate::http::audit::action(&req, "backup_schedule.set", "volume", volume.id);
    Ok(web::Json(schedule_view(Some(schedule))))
}

/// Removes the volume's backup schedule; its backups stay.
#[utoipa::path(delete, path = "/api/v1/projects/{id}/volumes/{name}/backup-schedule", tag = "backups",
    params(("id" = uuid::Uuid, Path, description = "the project id"), ("name" = String, Path, description = "the volume's name")),
    responses((status = 204), (status = 404)), security(("bearer" = ["role:member", "scope:deploy"])))]
pub async fn delete_volume_schedule(
    state: web::Data<AppState>,
    req: HttpRequest,
    ProjectFor(_actor, project, _need): ProjectFor<Deploy>,
) -> AppResult<HttpResponse> {
    let volume = volume_of(&state, &req, project.id).await?;
    if !db::backups::delete_schedule(&state.db, Source::Volume(volume.id)).await? {
        return Err(AppError::not_found("backup schedule"));
    }
    crate::http::audit::action(&req, "backup_schedule.delete", "volume", volume.id);
    Ok(HttpResponse::NoContent().finish())
}

/// Restores volume backup `backup` into its volume, then deploys the live deployment again
/// (its image, no build) so the app mounts the restored files. Answers the backup's volume.
pub(super) async fn restore_into_volume(
    state: &AppState,
    actor: &crate::auth::Actor,
    backup: &Backup,
    target: &str,
) -> AppResult<HttpResponse> {
    if target != "same" {
        return Err(AppError::validation(
            "target",
            "a volume backup is restored into its volume: use same",
        ));
    }
    let volume = match backup.volume_id {
        Some(id) => db::volumes::find(&state.db, id).await?,
        None => None,
    }
    .ok_or_else(|| AppError::Conflict("the volume of this backup was purged".into()))?;
    let restored = state.databases.restore_volume(backup, &volume).await?;
    let mut redeploy = None;
    if let Some(project) = restored.project_id
        && let Some(project) = db::projects::find(&state.db, project).await?
        && let Some(live) = db::deployments::live_for_project(&state.db, project.id).await?
    {
        let deployment = state
            .deployer
            .request(&project, Some(actor.user_id), Some(live.id))
            .await?;
        redeploy = Some(deployment.id);
    }
    Ok(HttpResponse::Accepted().json(serde_json::json!({
        "volume_id": restored.id,
        "status": "restored",
        "deployment_id": redeploy,
    })))
}
