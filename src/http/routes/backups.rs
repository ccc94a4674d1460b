//! Backups: destinations (`/backups/destinations`, instance admins), a database's backups
//! (`/databases/{id}/backups`: take one now, list them) and `/backups/{id}/verify`. See
//! `storage::backups` for what a backup is and when it is `verified`.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::access::{self, Action};
use crate::db::{self, backups::Backup, backups::Destination};
use crate::http::access::{DatabaseFor, Deploy, Read};
use crate::http::auth::Authenticated;
use crate::http::body::JsonBody;
use crate::http::error::{AppError, AppResult};
use crate::model::DestinationKind;
use crate::state::AppState;
use crate::storage::destinations::NewDestination;
use crate::validate;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/backups/destinations", web::get().to(list_destinations))
        .route("/backups/destinations", web::post().to(add_destination))
        .route(
            "/backups/destinations/{id}",
            web::delete().to(delete_destination),
        )
        .route("/databases/{id}/backups", web::get().to(list_backups))
        .route("/databases/{id}/backups", web::post().to(take_backup))
        .route(
            "/databases/{id}/backup-schedule",
            web::get().to(get_schedule),
        )
        .route(
            "/databases/{id}/backup-schedule",
            web::put().to(put_schedule),
        )
        .route(
            "/databases/{id}/backup-schedule",
            web::delete().to(delete_schedule),
        )
        .route("/backups/{id}/verify", web::post().to(verify_backup))
        .route("/backups/{id}/restore", web::post().to(restore_backup));
}

#[derive(Serialize, ToSchema)]
pub struct DestinationView {
    pub id: Uuid,
    pub name: String,
    /// `local` or `s3`.
    pub kind: String,
    /// A local destination's directory.
    pub path: Option<String>,
    /// An S3 destination's endpoint (none: AWS), bucket, key prefix and region.
    pub endpoint: Option<String>,
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    pub region: Option<String>,
    /// Its access key id, masked (its first four characters); the secret key is never shown.
    pub access_key: Option<String>,
    pub created_at: DateTime<Utc>,
}

fn destination_view(d: Destination) -> DestinationView {
    DestinationView {
        id: d.id,
        name: d.name,
        kind: d.kind.to_string(),
        path: d.path,
        endpoint: d.endpoint,
        bucket: d.bucket,
        prefix: d.prefix,
        region: d.region,
        access_key: d
            .access_key
            .map(|k| format!("{}…", k.chars().take(4).collect::<String>())),
        created_at: d.created_at,
    }
}

#[derive(Serialize, ToSchema)]
pub struct BackupView {
    pub id: Uuid,
    /// `running`, `succeeded`, `verified` or `failed`.
    pub status: String,
    /// The step that failed: `dump`, `upload` or `verify`.
    pub step: Option<String>,
    pub error: Option<String>,
    pub database_id: Option<Uuid>,
    /// The database's name when it was taken.
    pub source_name: String,
    pub destination_id: Option<Uuid>,
    /// Where it is in its destination.
    pub key: String,
    pub size_bytes: Option<i64>,
    pub sha256: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// When a restore of it was last checked.
    pub verified_at: Option<DateTime<Utc>>,
}

pub(super) fn backup_view(b: Backup) -> BackupView {
    BackupView {
        id: b.id,
        status: b.status.to_string(),
        step: b.step,
        error: b.error,
        database_id: b.database_id,
        source_name: b.source_name,
        destination_id: b.destination_id,
        key: b.object_key,
        size_bytes: b.size_bytes,
        sha256: b.sha256,
        started_at: b.started_at,
        finished_at: b.finished_at,
        verified_at: b.verified_at,
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddDestination {
    pub name: String,
    /// `local` (a directory on this host) or `s3` (an S3-compatible bucket: `bucket`,
    /// `access_key` and `secret_key`; `endpoint` for other than AWS, `prefix`, `region`).
    /// A destination is added only once a test write to it worked.
    pub kind: String,
    pub path: Option<String>,
    pub endpoint: Option<String>,
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    pub region: Option<String>,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct TakeBackup {
    /// Where to (the first destination when none).
    pub destination_id: Option<Uuid>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreBackup {
    /// `same`: into the database it is of (a safety backup first); `new`: into a new database.
    pub target: String,
}

/// A backup schedule; `cron` is null when the database has none.
#[derive(Serialize, ToSchema)]
pub struct ScheduleView {
    /// A cron expression in UTC (`0 3 * * *`: daily at 03:00).
    pub cron: Option<String>,
    pub destination_ids: Vec<Uuid>,
    /// Keep the newest N backups per destination.
    pub keep_last: Option<i32>,
    /// Keep backups younger than N days. (Either rule keeps a backup; with neither, the
    /// newest 7. The newest verified backup is always kept.)
    pub keep_days: Option<i32>,
    pub next_run_at: Option<DateTime<Utc>>,
    pub last_run_at: Option<DateTime<Utc>>,
    /// The instance's schedule: the age public keys its archives are encrypted to.
    pub recipients: Vec<String>,
}

pub(super) fn schedule_view(s: Option<db::backups::Schedule>) -> ScheduleView {
    match s {
        Some(s) => ScheduleView {
            destination_ids: crate::storage::schedules::destinations_of(&s),
            recipients: crate::storage::schedules::recipients_of(&s),
            cron: Some(s.cron),
            keep_last: s.keep_last,
            keep_days: s.keep_days,
            next_run_at: Some(s.next_run_at),
            last_run_at: s.last_run_at,
        },
        None => ScheduleView {
            cron: None,
            destination_ids: Vec::new(),
            keep_last: None,
            keep_days: None,
            next_run_at: None,
            last_run_at: None,
            recipients: Vec::new(),
        },
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSchedule {
    pub cron: String,
    /// Where each run goes (1 to 5; the first destination when none).
    pub destination_ids: Option<Vec<Uuid>>,
    pub keep_last: Option<i32>,
    pub keep_days: Option<i32>,
    /// The instance's schedule only (`/system/backup-schedule`, required there): the age
    /// public keys (`age1…`) its archives are encrypted to.
    pub recipients: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct Started {
    pub id: Uuid,
    pub status: String,
}

#[utoipa::path(get, path = "/api/v1/backups/destinations", tag = "backups",
    responses((status = 200, body = [DestinationView]), (status = 403)), security(("bearer" = [])))]
pub async fn list_destinations(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
) -> AppResult<web::Json<Vec<DestinationView>>> {
    access::instance_admin(&actor)?;
    let all = db::backups::destinations(&state.db).await?;
    Ok(web::Json(all.into_iter().map(destination_view).collect()))
}

#[utoipa::path(post, path = "/api/v1/backups/destinations", tag = "backups", request_body = AddDestination,
    responses((status = 201, body = DestinationView), (status = 403), (status = 409, description = "the name is taken"), (status = 422)),
    security(("bearer" = [])))]
pub async fn add_destination(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    body: JsonBody<AddDestination>,
) -> AppResult<HttpResponse> {
    access::instance_admin(&actor)?;
    let body = body.parse()?;
    validate::slug(&body.name).map_err(|m| AppError::validation("name", m))?;
    let kind = DestinationKind::parse(&body.kind)
        .ok_or_else(|| AppError::validation("kind", "must be local or s3"))?;
    let destination = state
        .databases
        .add_destination(
            NewDestination {
                name: body.name,
                kind,
                path: body.path,
                endpoint: body.endpoint,
                bucket: body.bucket,
                prefix: body.prefix,
                region: body.region,
                access_key: body.access_key,
                secret_key: body.secret_key,
            },
            Some(actor.user_id),
        )
        .await?;
    crate::http::audit::action(
        &req,
        "backup_destination.add",
        "backup_destination",
        destination.id,
    );
    Ok(HttpResponse::Created().json(destination_view(destination)))
}

/// Removes a destination from the list; the files already in it stay where they are.
#[utoipa::path(delete, path = "/api/v1/backups/destinations/{id}", tag = "backups", params(("id" = uuid::Uuid, Path, description = "the destination id")),
    responses((status = 204), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn delete_destination(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    path: web::Path<Uuid>,
) -> AppResult<HttpResponse> {
    access::instance_admin(&actor)?;
    let id = path.into_inner();
    if !db::backups::delete_destination(&state.db, id).await? {
        return Err(AppError::not_found("destination"));
    }
    crate::http::audit::action(&req, "backup_destination.delete", "backup_destination", id);
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/api/v1/databases/{id}/backups", tag = "backups", params(("id" = uuid::Uuid, Path, description = "the database id")),
    responses((status = 200, body = [BackupView]), (status = 404)), security(("bearer" = ["role:viewer", "scope:read"])))]
pub async fn list_backups(
    state: web::Data<AppState>,
    DatabaseFor(_actor, database, _need): DatabaseFor<Read>,
) -> AppResult<web::Json<Vec<BackupView>>> {
    let backups =
        db::backups::for_source(&state.db, db::backups::Source::Database(database.id)).await?;
    Ok(web::Json(backups.into_iter().map(backup_view).collect()))
}

/// Takes a backup now: 202 `running`; it is stored, then verified, in the background.
#[utoipa::path(post, path = "/api/v1/databases/{id}/backups", tag = "backups", params(("id" = uuid::Uuid, Path, description = "the database id")), request_body = TakeBackup,
    responses((status = 202, body = Started), (status = 404), (status = 409, description = "no destination, the database is not running, or its kind has no backups yet"), (status = 422)),
    security(("bearer" = ["role:member", "scope:deploy"])))]
pub async fn take_backup(
    state: web::Data<AppState>,
    req: HttpRequest,
    DatabaseFor(actor, database, _need): DatabaseFor<Deploy>,
    body: JsonBody<TakeBackup>,
) -> AppResult<HttpResponse> {
    let body = body.parse()?;
    let backup = state
        .databases
        .backup_now(&database, body.destination_id, Some(actor.user_id))
        .await?;
    crate::http::audit::action(&req, "backup.take", "backup", backup.id);
    Ok(HttpResponse::Accepted().json(Started {
        id: backup.id,
        status: backup.status.to_string(),
    }))
}

#[utoipa::path(get, path = "/api/v1/databases/{id}/backup-schedule", tag = "backups", params(("id" = uuid::Uuid, Path, description = "the database id")),
    responses((status = 200, body = ScheduleView), (status = 404)), security(("bearer" = ["role:viewer", "scope:read"])))]
pub async fn get_schedule(
    state: web::Data<AppState>,
    DatabaseFor(_actor, database, _need): DatabaseFor<Read>,
) -> AppResult<web::Json<ScheduleView>> {
    let schedule =
        db::backups::schedule(&state.db, db::backups::Source::Database(database.id)).await?;
    Ok(web::Json(schedule_view(schedule)))
}

/// Sets the database's backup schedule (replacing any): runs from the next time the cron
/// expression fires; retention applies after each backup.
#[utoipa::path(put, path = "/api/v1/databases/{id}/backup-schedule", tag = "backups", params(("id" = uuid::Uuid, Path, description = "the database id")), request_body = PutSchedule,
    responses((status = 200, body = ScheduleView), (status = 404), (status = 409, description = "there is no destination"), (status = 422)),
    security(("bearer" = ["role:member", "scope:deploy"])))]
pub async fn put_schedule(
    state: web::Data<AppState>,
    req: HttpRequest,
    DatabaseFor(actor, database, _need): DatabaseFor<Deploy>,
    body: JsonBody<PutSchedule>,
) -> AppResult<web::Json<ScheduleView>> {
    let source = db::backups::Source::Database(database.id);
    let schedule = set_schedule(&state, source, body.parse()?, actor.user_id).await?;
    crate::http::audit::action(&req, "backup_schedule.set", "database", database.id);
    Ok(web::Json(schedule_view(Some(schedule))))
}

/// Sets `source`'s schedule from a request (no destinations named: the first one).
pub(super) async fn set_schedule(
    state: &AppState,
    source: db::backups::Source,
    body: PutSchedule,
    by: Uuid,
) -> AppResult<db::backups::Schedule> {
    let destination_ids = match body.destination_ids {
        Some(ids) => ids,
        None => match db::backups::destinations(&state.db).await?.first() {
            Some(first) => vec![first.id],
            None => {
                return Err(AppError::Conflict(
                    "there is no backup destination yet; an admin adds one under System".into(),
                ));
            }
        },
    };
    let new = crate::storage::schedules::NewSchedule {
        cron: body.cron,
        destination_ids,
        keep_last: body.keep_last,
        keep_days: body.keep_days,
        recipients: body.recipients.unwrap_or_default(),
    };
    Ok(state.databases.set_schedule(source, new, Some(by)).await?)
}

/// Removes the database's backup schedule; its backups stay.
#[utoipa::path(delete, path = "/api/v1/databases/{id}/backup-schedule", tag = "backups", params(("id" = uuid::Uuid, Path, description = "the database id")),
    responses((status = 204), (status = 404)), security(("bearer" = ["role:member", "scope:deploy"])))]
pub async fn delete_schedule(
    state: web::Data<AppState>,
    req: HttpRequest,
    DatabaseFor(_actor, database, _need): DatabaseFor<Deploy>,
) -> AppResult<HttpResponse> {
    if !db::backups::delete_schedule(&state.db, db::backups::Source::Database(database.id)).await? {
        return Err(AppError::not_found("backup schedule"));
    }
    crate::http::audit::action(&req, "backup_schedule.delete", "database", database.id);
    Ok(HttpResponse::NoContent().finish())
}

/// Checks the backup again: its checksum, a restore into a throwaway copy, the rows per table.
#[utoipa::path(post, path = "/api/v1/backups/{id}/verify", tag = "backups", params(("id" = uuid::Uuid, Path, description = "the backup id")),
    responses((status = 202, body = Started), (status = 404), (status = 409, description = "it is still running, or failed before it was stored")),
    security(("bearer" = [])))]
pub async fn verify_backup(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    path: web::Path<Uuid>,
) -> AppResult<HttpResponse> {
    let (backup, _) = backup_for(&state, &actor, path.into_inner(), Action::Deploy).await?;
    refuse_instance(&backup)?;
    if backup.sha256.is_none() {
        return Err(AppError::Conflict(
            "the backup was never stored whole; nothing to verify".into(),
        ));
    }
    let (databases, id) = (state.databases.clone(), backup.id);
    tokio::spawn(async move { databases.verify_now(&id).await });
    crate::http::audit::action(&req, "backup.verify", "backup", backup.id);
    Ok(HttpResponse::Accepted().json(Started {
        id: backup.id,
        status: backup.status.to_string(),
    }))
}

/// An instance backup is encrypted to keys shard does not hold: it is checked and restored
/// by `shard restore`, on the command line.
fn refuse_instance(backup: &Backup) -> AppResult<()> {
    if backup.source_kind == crate::model::BackupKind::Instance {
        return Err(AppError::Conflict(
            "an instance backup is encrypted to your age key, which shard does not hold: \
             download it and check or restore it with `shard restore FILE --data-dir DIR \
             --identity KEYFILE`"
                .into(),
        ));
    }
    Ok(())
}

/// Backup `id` and its database, if the actor may take `action` on that database (a backup
/// whose database is gone is the instance admins').
async fn backup_for(
    state: &AppState,
    actor: &crate::auth::Actor,
    id: Uuid,
    action: Action,
) -> AppResult<(Backup, Option<db::databases::Database>)> {
    let backup = db::backups::find(&state.db, id)
        .await?
        .ok_or_else(|| AppError::not_found("backup"))?;
    let database = match backup.database_id {
        Some(id) => db::databases::find(&state.db, id).await?,
        None => None,
    };
    let project = match backup.volume_id {
        Some(id) => match db::volumes::find(&state.db, id)
            .await?
            .and_then(|v| v.project_id)
        {
            Some(project) => db::projects::find(&state.db, project).await?,
            None => None,
        },
        None => None,
    };
    let checked = match (&database, &project) {
        (Some(database), _) => access::check_database(&state.db, actor, database, action).await,
        (None, Some(project)) => access::check_project(&state.db, actor, project, action).await,
        (None, None) => access::instance_admin(actor),
    };
    match checked {
        Err(access::Denied::NotFound(_)) => return Err(AppError::not_found("backup")),
        other => other?,
    }
    Ok((backup, database))
}

/// Restores the backup: `same` into its database (a safety backup first, the other connections
/// ended, one transaction), or `new` into a new database. The file is checked first: a
/// truncated or changed one is refused (422). Answers the target database, `restoring` or
/// `starting`; its message says how the restore ended.
#[utoipa::path(post, path = "/api/v1/backups/{id}/restore", tag = "backups", params(("id" = uuid::Uuid, Path, description = "the backup id")), request_body = RestoreBackup,
    responses((status = 202, body = crate::http::routes::databases::DatabaseView), (status = 404), (status = 409, description = "the database is not running, or the backup is of another database"), (status = 422, description = "a bad target, or the file is truncated or changed")),
    security(("bearer" = [])))]
pub async fn restore_backup(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    path: web::Path<Uuid>,
    body: JsonBody<RestoreBackup>,
) -> AppResult<HttpResponse> {
    let (backup, database) =
        backup_for(&state, &actor, path.into_inner(), Action::Configure).await?;
    let body = body.parse()?;
    refuse_instance(&backup)?;
    if backup.source_kind == crate::model::BackupKind::Volume {
        let answer =
            super::volume_backups::restore_into_volume(&state, &actor, &backup, &body.target)
                .await?;
        crate::http::audit::action(&req, "backup.restore", "backup", backup.id);
        return Ok(answer);
    }
    let target = match (body.target.as_str(), database) {
        ("same", Some(database)) => state.databases.restore_same(&backup, database).await?,
        ("same", None) => {
            return Err(AppError::Conflict(
                "the database of this backup was deleted; restore it into a new one".into(),
            ));
        }
        ("new", _) => {
            state
                .databases
                .restore_new(&backup, Some(actor.user_id))
                .await?
        }
        _ => return Err(AppError::validation("target", "must be same or new")),
    };
    crate::http::audit::action(&req, "backup.restore", "backup", backup.id);
    crate::http::audit::detail(
        &req,
        serde_json::json!({ "target": body.target, "database": target.id }),
    );
    Ok(HttpResponse::Accepted().json(crate::http::routes::databases::view(&state, target).await?))
}
