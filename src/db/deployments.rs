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

pub use crate::model::DeploymentStatus;
use DeploymentStatus as S;

impl Deployment {
    /// The stored status (a stored value outside `DeploymentStatus` fails the read that
    /// loaded the row, naming the value).
    pub fn state(&self) -> DeploymentStatus {
        self.status
    }
}

fn names(statuses: &[DeploymentStatus]) -> Vec<&'static str> {
    statuses.iter().map(|s| s.as_str()).collect()
}

pub struct NewDeployment {
    pub project_id: Uuid,
    pub trigger: crate::model::Trigger,
    pub from_deployment_id: Option<Uuid>,
    pub image: Option<String>,
    pub commit_sha: Option<String>,
    pub commit_message: Option<String>,
    pub created_by: Option<Uuid>,
    /// The GitHub login whose push started it.
    pub pusher: Option<String>,
}

impl NewDeployment {
    /// A manual deploy of the branch tip by nobody in particular (rows made directly, as
    /// tests and benchmarks do).
    pub fn manual(project_id: Uuid) -> Self {
        NewDeployment {
            project_id,
            trigger: crate::model::Trigger::Manual,
            from_deployment_id: None,
            image: None,
            commit_sha: None,
            commit_message: None,
            created_by: None,
            pusher: None,
        }
    }
}

pub async fn create(db: &Db, new: NewDeployment) -> Result<Deployment, DbErr> {
    let at = now();
    deployments::ActiveModel {
        id: Set(new_id()),
        project_id: Set(new.project_id),
        status: Set(S::Queued),
        trigger: Set(new.trigger),
        from_deployment_id: Set(new.from_deployment_id),
        created_by: Set(new.created_by),
        commit_sha: Set(new.commit_sha),
        commit_message: Set(new.commit_message),
        pusher: Set(new.pusher),
        image: Set(new.image),
        container_id: Set(None),
        upstream: Set(None),
        error_step: Set(None),
        error: Set(None),
        created_at: Set(at),
        started_at: Set(None),
        finished_at: Set(None),
        updated_at: Set(at),
        commit_status: Set(None),
        commit_status_error: Set(None),
        service_id: Set(None),
        files_version: Set(None),
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

/// Every deployment id of a project.
pub async fn ids_for_project(db: &Db, project_id: Uuid) -> Result<Vec<Uuid>, DbErr> {
    use sea_orm::QuerySelect;
    Deployments::find()
        .select_only()
        .column(Column::Id)
        .filter(Column::ProjectId.eq(project_id))
        .into_tuple()
        .all(db)
        .await
}

pub async fn live_for_project(db: &Db, project_id: Uuid) -> Result<Option<Deployment>, DbErr> {
    Deployments::find()
        .filter(Column::ProjectId.eq(project_id))
        .filter(Column::Status.is_in(names(&S::CURRENT)))
        .order_by_desc(Column::CreatedAt)
        .one(db)
        .await
}

pub async fn with_status(db: &Db, statuses: &[DeploymentStatus]) -> Result<Vec<Deployment>, DbErr> {
    Deployments::find()
        .filter(Column::Status.is_in(names(statuses)))
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
    pub service_id: Option<String>,
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
    from: &[DeploymentStatus],
    to: DeploymentStatus,
    fields: Fields,
) -> Result<bool, DbErr> {
    let update = transition_update(from, to, fields)
        .filter(Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(update.rows_affected == 1)
}

/// The conditional update of `transition`, without its target row.
fn transition_update(
    from: &[DeploymentStatus],
    to: DeploymentStatus,
    fields: Fields,
) -> sea_orm::UpdateMany<Deployments> {
    debug_assert!(
        from.iter().all(|f| f.can_move_to(to)),
        "illegal move {from:?} -> {to}"
    );
    let from: Vec<DeploymentStatus> = from.iter().copied().filter(|f| f.can_move_to(to)).collect();
    let at: DateTime<Utc> = now();
    let mut update = Deployments::update_many()
        .col_expr(Column::Status, Expr::value(to.as_str()))
        .col_expr(Column::UpdatedAt, Expr::value(at));
    let final_status = matches!(to, S::Live | S::Failed | S::Cancelled);
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
        (Column::ServiceId, fields.service_id),
        (Column::Upstream, fields.upstream),
        (Column::ErrorStep, fields.error_step),
        (Column::Error, fields.error),
    ];
    for (column, value) in optional {
        if let Some(value) = value {
            update = update.col_expr(column, Expr::value(value));
        }
    }
    update.filter(Column::Status.is_in(names(&from)))
}

/// The switch, in one transaction: `new` goes from `health_checking` to `live` and whatever
/// deployment of the project was current (live or stopped) becomes `superseded`. A crash
/// cannot leave two live deployments. Returns the superseded deployments, or `None` when `new`
/// was no longer health-checking (cancelled meanwhile): then nothing changed.
pub async fn switch(
    db: &Db,
    project_id: Uuid,
    new: Uuid,
) -> Result<Option<Vec<Deployment>>, DbErr> {
    use sea_orm::TransactionTrait;
    let tx = db.begin().await?;
    let went_live = transition_update(&[S::HealthChecking], S::Live, Fields::default())
        .filter(Column::Id.eq(new))
        .exec(&tx)
        .await?
        .rows_affected
        == 1;
    if !went_live {
        tx.rollback().await?;
        return Ok(None);
    }
    let previous = Deployments::find()
        .filter(Column::ProjectId.eq(project_id))
        .filter(Column::Status.is_in(names(&S::CURRENT)))
        .filter(Column::Id.ne(new))
        .all(&tx)
        .await?;
    for old in &previous {
        transition_update(&S::CURRENT, S::Superseded, Fields::default())
            .filter(Column::Id.eq(old.id))
            .exec(&tx)
            .await?;
    }
    tx.commit().await?;
    Ok(Some(previous))
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

/// Records the file-mount version a deployment starts with.
pub async fn set_files_version(db: &Db, id: Uuid, version: i32) -> Result<(), DbErr> {
    Deployments::update_many()
        .col_expr(Column::FilesVersion, Expr::value(version))
        .filter(Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// The deployments of `project` whose containers may exist and mount files: starting,
/// checked, live or stopped (a stopped one can be started again), oldest first.
pub async fn with_containers(db: &Db, project: Uuid) -> Result<Vec<Deployment>, DbErr> {
    Deployments::find()
        .filter(Column::ProjectId.eq(project))
        .filter(Column::Status.is_in([S::Starting, S::HealthChecking, S::Live, S::Stopped]))
        .order_by_asc(Column::CreatedAt)
        .all(db)
        .await
}

/// Queued deployments of a project other than `keep`, oldest first.
pub async fn queued_for_project(
    db: &Db,
    project_id: Uuid,
    keep: Uuid,
) -> Result<Vec<Deployment>, DbErr> {
    Deployments::find()
        .filter(Column::ProjectId.eq(project_id))
        .filter(Column::Status.eq(S::Queued.as_str()))
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

/// Every image a deployment still records (any project, any status).
pub async fn recorded_images(db: &Db) -> Result<Vec<String>, DbErr> {
    let rows: Vec<Option<String>> = Deployments::find()
        .select_only()
        .column(Column::Image)
        .filter(Column::Image.is_not_null())
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().flatten().collect())
}

/// Records the commit status last posted to GitHub for a deployment (`state`), or why
/// posting failed (`error`, which keeps the last state that did arrive).
pub async fn set_commit_status(
    db: &Db,
    id: Uuid,
    state: Option<crate::model::CommitState>,
    error: Option<&str>,
) -> Result<(), DbErr> {
    let mut update = Deployments::update_many()
        .col_expr(
            deployments::Column::CommitStatusError,
            Expr::value(error.map(|e| e.chars().take(500).collect::<String>())),
        )
        .filter(deployments::Column::Id.eq(id));
    if let Some(state) = state {
        update = update.col_expr(deployments::Column::CommitStatus, Expr::value(state));
    }
    update.exec(db).await?;
    Ok(())
}

/// Deployments requested by `user` since `since` (a quota's window).
pub async fn count_requested_by(
    db: &Db,
    user: Uuid,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    Deployments::find()
        .filter(deployments::Column::CreatedBy.eq(user))
        .filter(deployments::Column::CreatedAt.gte(since))
        .count(db)
        .await
}

/// Deployments of `projects` created since `since`, and those of them still queued.
pub async fn count_for_projects(
    db: &Db,
    projects: &[Uuid],
    since: chrono::DateTime<chrono::Utc>,
) -> Result<(u64, u64), DbErr> {
    use sea_orm::PaginatorTrait;
    if projects.is_empty() {
        return Ok((0, 0));
    }
    let recent = Deployments::find()
        .filter(deployments::Column::ProjectId.is_in(projects.iter().copied()))
        .filter(deployments::Column::CreatedAt.gte(since))
        .count(db)
        .await?;
    let queued = Deployments::find()
        .filter(deployments::Column::ProjectId.is_in(projects.iter().copied()))
        .filter(deployments::Column::Status.eq(DeploymentStatus::Queued.as_str()))
        .count(db)
        .await?;
    Ok((recent, queued))
}
