//! Deployments and their lifecycle. Status changes are conditional updates (`transition`), so
//! a cancel racing a worker cannot resurrect a finished deployment.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

use super::entities::deployments::{self, Column, Entity as Deployments};
use super::{Db, new_id, now};

pub use deployments::Model as Deployment;

pub const QUEUED: &str = "queued";
pub const FETCHING: &str = "fetching";
pub const BUILDING: &str = "building";
pub const STARTING: &str = "starting";
pub const HEALTH_CHECKING: &str = "health_checking";
pub const LIVE: &str = "live";
pub const SUPERSEDED: &str = "superseded";
pub const STOPPED: &str = "stopped";
pub const FAILED: &str = "failed";
pub const CANCELLED: &str = "cancelled";

/// Statuses of a deployment a worker is moving forward.
pub const IN_PROGRESS: &[&str] = &[FETCHING, BUILDING, STARTING, HEALTH_CHECKING];

pub struct NewDeployment {
    pub project_id: Uuid,
    pub trigger: &'static str,
    pub from_deployment_id: Option<Uuid>,
    pub image: Option<String>,
    pub commit_sha: Option<String>,
    pub created_by: Option<Uuid>,
}

pub async fn create(db: &Db, new: NewDeployment) -> Result<Deployment, DbErr> {
    let at = now();
    deployments::ActiveModel {
        id: Set(new_id()),
        project_id: Set(new.project_id),
        status: Set(QUEUED.into()),
        trigger: Set(new.trigger.into()),
        from_deployment_id: Set(new.from_deployment_id),
        created_by: Set(new.created_by),
        commit_sha: Set(new.commit_sha),
        commit_message: Set(None),
        image: Set(new.image),
        container_id: Set(None),
        upstream: Set(None),
        error_step: Set(None),
        error: Set(None),
        created_at: Set(at),
        started_at: Set(None),
        finished_at: Set(None),
        updated_at: Set(at),
    }
    .insert(db)
    .await
}

pub async fn find(db: &Db, id: Uuid) -> Result<Option<Deployment>, DbErr> {
    Deployments::find_by_id(id).one(db).await
}

/// A project's deployments, newest first.
pub async fn list_for_project(
    db: &Db,
    project_id: Uuid,
    limit: u64,
) -> Result<Vec<Deployment>, DbErr> {
    Deployments::find()
        .filter(Column::ProjectId.eq(project_id))
        .order_by_desc(Column::CreatedAt)
        .limit(limit)
        .all(db)
        .await
}

pub async fn live_for_project(db: &Db, project_id: Uuid) -> Result<Option<Deployment>, DbErr> {
    Deployments::find()
        .filter(Column::ProjectId.eq(project_id))
        .filter(Column::Status.is_in([LIVE, STOPPED]))
        .order_by_desc(Column::CreatedAt)
        .one(db)
        .await
}

pub async fn with_status(db: &Db, statuses: &[&str]) -> Result<Vec<Deployment>, DbErr> {
    Deployments::find()
        .filter(Column::Status.is_in(statuses.iter().copied()))
        .all(db)
        .await
}

/// Optional columns written together with a status change.
#[derive(Default)]
pub struct Fields {
    pub commit_sha: Option<String>,
    pub commit_message: Option<String>,
    pub image: Option<String>,
    pub container_id: Option<String>,
    pub upstream: Option<String>,
    pub error_step: Option<String>,
    pub error: Option<String>,
    pub started: bool,
}

/// Moves `id` to `to` if its status is one of `from`; false when it was not (someone else
/// changed it first). Final statuses stamp `finished_at`.
pub async fn transition(
    db: &Db,
    id: Uuid,
    from: &[&str],
    to: &str,
    fields: Fields,
) -> Result<bool, DbErr> {
    let at: DateTime<Utc> = now();
    let mut update = Deployments::update_many()
        .col_expr(Column::Status, Expr::value(to))
        .col_expr(Column::UpdatedAt, Expr::value(at));
    let final_status = [LIVE, FAILED, CANCELLED].contains(&to);
    if final_status {
        update = update.col_expr(Column::FinishedAt, Expr::value(at));
    }
    if fields.started {
        update = update.col_expr(Column::StartedAt, Expr::value(at));
    }
    let optional = [
        (Column::CommitSha, fields.commit_sha),
        (Column::CommitMessage, fields.commit_message),
        (Column::Image, fields.image),
        (Column::ContainerId, fields.container_id),
        (Column::Upstream, fields.upstream),
        (Column::ErrorStep, fields.error_step),
        (Column::Error, fields.error),
    ];
    for (column, value) in optional {
        if let Some(value) = value {
            update = update.col_expr(column, Expr::value(value));
        }
    }
    let result = update
        .filter(Column::Id.eq(id))
        .filter(Column::Status.is_in(from.iter().copied()))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Updates the upstream address of a deployment (after a restart re-published its port).
pub async fn set_upstream(db: &Db, id: Uuid, upstream: &str) -> Result<(), DbErr> {
    Deployments::update_many()
        .col_expr(Column::Upstream, Expr::value(upstream))
        .col_expr(Column::UpdatedAt, Expr::value(now()))
        .filter(Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Queued deployments of a project other than `keep`, oldest first.
pub async fn queued_for_project(
    db: &Db,
    project_id: Uuid,
    keep: Uuid,
) -> Result<Vec<Deployment>, DbErr> {
    Deployments::find()
        .filter(Column::ProjectId.eq(project_id))
        .filter(Column::Status.eq(QUEUED))
        .filter(Column::Id.ne(keep))
        .order_by_asc(Column::CreatedAt)
        .all(db)
        .await
}

/// Deployments of a project that have an image, newest first (images kept for rollback).
pub async fn with_images(db: &Db, project_id: Uuid) -> Result<Vec<Deployment>, DbErr> {
    Deployments::find()
        .filter(Column::ProjectId.eq(project_id))
        .filter(Column::Image.is_not_null())
        .order_by_desc(Column::CreatedAt)
        .all(db)
        .await
}

/// Forgets an image that was removed from Docker, so rollback cannot pick it.
pub async fn clear_image(db: &Db, id: Uuid) -> Result<(), DbErr> {
    Deployments::update_many()
        .col_expr(Column::Image, Expr::value(Option::<String>::None))
        .filter(Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}
