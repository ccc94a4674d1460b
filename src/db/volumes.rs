//! Volumes: a project's named volumes (`name`, `mount_path`), and the detached ones a deleted
//! project left. Nothing here removes a volume's data: a row goes only with `purge`, after the
//! engine removed the volume.

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, SqlErr,
};
use uuid::Uuid;

use super::Db;
use super::entities::volumes::{self, Column, Entity as Volumes};

pub use volumes::Model as Volume;

/// Why a volume could not be added.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    #[error("the project already has a volume of that name")]
    Taken,
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// The engine's name of volume `id`.
pub fn docker_name(id: Uuid) -> String {
    format!("shard-vol-{}", id.simple())
}

/// Records a new volume of `project` (in `team`); `id` names it in the engine.
pub async fn add(
    db: &Db,
    id: Uuid,
    project: &super::projects::Project,
    name: &str,
    mount_path: &str,
) -> Result<Volume, AddError> {
    let row = volumes::ActiveModel {
        id: Set(id),
        project_id: Set(Some(project.id)),
        team_id: Set(project.team_id),
        name: Set(name.to_string()),
        mount_path: Set(mount_path.to_string()),
        docker_name: Set(docker_name(id)),
        project_name: Set(Some(project.name.clone())),
        created_at: Set(Utc::now()),
        detached_at: Set(None),
        size_bytes: Set(None),
    };
    match row.insert(db).await {
        Ok(volume) => Ok(volume),
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Err(AddError::Taken)
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn find(db: &Db, id: Uuid) -> Result<Option<Volume>, DbErr> {
    Volumes::find_by_id(id).one(db).await
}

/// The volumes `project` mounts, by name.
pub async fn for_project(db: &Db, project: Uuid) -> Result<Vec<Volume>, DbErr> {
    Volumes::find()
        .filter(Column::ProjectId.eq(project))
        .order_by_asc(Column::Name)
        .all(db)
        .await
}

/// Every volume (attached and detached), newest first.
pub async fn list(db: &Db) -> Result<Vec<Volume>, DbErr> {
    Volumes::find()
        .order_by_desc(Column::CreatedAt)
        .all(db)
        .await
}

/// Detaches every volume of `project` (before the project goes): kept, listed for admins.
pub async fn detach_all(db: &Db, project: Uuid) -> Result<u64, DbErr> {
    Ok(Volumes::update_many()
        .col_expr(Column::ProjectId, Expr::value(Option::<Uuid>::None))
        .col_expr(Column::DetachedAt, Expr::value(Some(Utc::now())))
        .filter(Column::ProjectId.eq(project))
        .exec(db)
        .await?
        .rows_affected)
}

/// Detaches one volume.
pub async fn detach(db: &Db, volume: Volume) -> Result<Volume, DbErr> {
    let mut active = volume.into_active_model();
    active.project_id = Set(None);
    active.detached_at = Set(Some(Utc::now()));
    active.update(db).await
}

/// Attaches a detached volume to `project` under its name (the project's names stay unique).
pub async fn attach(
    db: &Db,
    volume: Volume,
    project: &super::projects::Project,
) -> Result<Volume, AddError> {
    let mut active = volume.into_active_model();
    active.project_id = Set(Some(project.id));
    active.team_id = Set(project.team_id);
    active.project_name = Set(Some(project.name.clone()));
    active.detached_at = Set(None);
    match active.update(db).await {
        Ok(volume) => Ok(volume),
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Err(AddError::Taken)
        }
        Err(e) => Err(e.into()),
    }
}

/// Volumes detached before `before` (retention).
pub async fn detached_before(db: &Db, before: chrono::DateTime<Utc>) -> Result<Vec<Volume>, DbErr> {
    Volumes::find()
        .filter(Column::ProjectId.is_null())
        .filter(Column::DetachedAt.lt(before))
        .all(db)
        .await
}

/// Forgets a volume whose engine volume was removed.
pub async fn forget(db: &Db, id: Uuid) -> Result<(), DbErr> {
    Volumes::delete_by_id(id).exec(db).await?;
    Ok(())
}

/// Records the bytes a volume held when last sampled.
pub async fn set_size(db: &Db, id: Uuid, bytes: i64) -> Result<(), DbErr> {
    Volumes::update_many()
        .col_expr(Column::SizeBytes, Expr::value(Some(bytes)))
        .filter(Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// After a restore: `volume` uses engine volume `engine_name` from now on, and the engine
/// volume it used is kept as a detached volume of the same name (an admin may reattach or
/// purge it; retention removes it in time). Answers `volume` as it now is.
pub async fn swap_engine_volume(
    db: &Db,
    volume: &Volume,
    engine_name: &str,
) -> Result<Volume, DbErr> {
    use sea_orm::TransactionTrait;
    let txn = db.begin().await?;
    let mut active = volume.clone().into_active_model();
    active.docker_name = Set(engine_name.to_string());
    active.size_bytes = Set(None);
    let updated = active.update(&txn).await?;
    volumes::ActiveModel {
        id: Set(Uuid::now_v7()),
        project_id: Set(None),
        team_id: Set(volume.team_id),
        name: Set(volume.name.clone()),
        mount_path: Set(volume.mount_path.clone()),
        docker_name: Set(volume.docker_name.clone()),
        project_name: Set(volume.project_name.clone()),
        created_at: Set(volume.created_at),
        detached_at: Set(Some(Utc::now())),
        size_bytes: Set(volume.size_bytes),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(updated)
}
