//! Backups of the installation itself, taken by the server (`/system/backups`,
//! `/system/backup-schedule`; instance admins only): the archive `shard backup` writes,
//! encrypted to age public keys, into the backup destinations, with a schedule and retention
//! like a database's. Restored with `shard restore` (never through the API: it makes a new
//! installation).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::backups::{BackupView, PutSchedule, ScheduleView, Started, backup_view, schedule_view};
use crate::access;
use crate::db::{self, backups::Source};
use crate::http::auth::Authenticated;
use crate::http::body::JsonBody;
use crate::http::error::{AppError, AppResult};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/system/backups", web::get().to(list_instance_backups))
        .route("/system/backups", web::post().to(take_instance_backup))
        .route(
            "/system/backup-schedule",
            web::get().to(get_instance_schedule),
        )
        .route(
            "/system/backup-schedule",
            web::put().to(put_instance_schedule),
        )
        .route(
            "/system/backup-schedule",
            web::delete().to(delete_instance_schedule),
        );
}

/// A backup of the installation now.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TakeInstanceBackup {
    /// Where to (the first destination when none).
    pub destination_id: Option<Uuid>,
    /// The age public keys (`age1…`) to encrypt to; the schedule's when none.
    pub recipients: Option<Vec<String>>,
}

#[utoipa::path(get, path = "/api/v1/system/backups", tag = "backups",
    responses((status = 200, body = [BackupView]), (status = 403)), security(("bearer" = [])))]
pub async fn list_instance_backups(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
) -> AppResult<web::Json<Vec<BackupView>>> {
    access::instance_admin(&actor)?;
    let backups = db::backups::for_source(&state.db, Source::Instance).await?;
    Ok(web::Json(backups.into_iter().map(backup_view).collect()))
}

/// Backs up the installation now: 202 `running`; archived, stored and read back in the
/// background (`succeeded`, or `failed` with the step and a `backup.failed` notice).
#[utoipa::path(post, path = "/api/v1/system/backups", tag = "backups", request_body = TakeInstanceBackup,
    responses((status = 202, body = Started), (status = 403), (status = 409, description = "no destination, or one is running"), (status = 422, description = "no or bad recipients")),
    security(("bearer" = [])))]
pub async fn take_instance_backup(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    body: JsonBody<TakeInstanceBackup>,
) -> AppResult<HttpResponse> {
    access::instance_admin(&actor)?;
    let body = body.parse()?;
    let recipients = match body.recipients {
        Some(recipients) => recipients,
        None => db::backups::schedule(&state.db, Source::Instance)
            .await?
            .map(|s| crate::storage::schedules::recipients_of(&s))
            .unwrap_or_default(),
    };
    let backup = state
        .databases
        .instance_backup_now(body.destination_id, recipients, Some(actor.user_id))
        .await?;
    crate::http::audit::action(&req, "backup.take", "backup", backup.id);
    Ok(HttpResponse::Accepted().json(Started {
        id: backup.id,
        status: backup.status.to_string(),
    }))
}

#[utoipa::path(get, path = "/api/v1/system/backup-schedule", tag = "backups",
    responses((status = 200, body = ScheduleView), (status = 403)), security(("bearer" = [])))]
pub async fn get_instance_schedule(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
) -> AppResult<web::Json<ScheduleView>> {
    access::instance_admin(&actor)?;
    let schedule = db::backups::schedule(&state.db, Source::Instance).await?;
    Ok(web::Json(schedule_view(schedule)))
}

/// Sets the installation's backup schedule (replacing any); `recipients` is required.
#[utoipa::path(put, path = "/api/v1/system/backup-schedule", tag = "backups", request_body = PutSchedule,
    responses((status = 200, body = ScheduleView), (status = 403), (status = 409, description = "there is no destination"), (status = 422)),
    security(("bearer" = [])))]
pub async fn put_instance_schedule(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    body: JsonBody<PutSchedule>,
) -> AppResult<web::Json<ScheduleView>> {
    access::instance_admin(&actor)?;
    let schedule =
        super::backups::set_schedule(&state, Source::Instance, body.parse()?, actor.user_id)
            .await?;
    crate::http::audit::action(&req, "backup_schedule.set", "instance", Uuid::nil());
    Ok(web::Json(schedule_view(Some(schedule))))
}

/// Removes the installation's backup schedule; its backups stay.
#[utoipa::path(delete, path = "/api/v1/system/backup-schedule", tag = "backups",
    responses((status = 204), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn delete_instance_schedule(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
) -> AppResult<HttpResponse> {
    access::instance_admin(&actor)?;
    if !db::backups::delete_schedule(&state.db, Source::Instance).await? {
        return Err(AppError::not_found("backup schedule"));
    }
    crate::http::audit::action(&req, "backup_schedule.delete", "instance", Uuid::nil());
    Ok(HttpResponse::NoContent().finish())
}
