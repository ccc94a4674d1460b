//! One-click databases and their attachments to projects. Credentials arrive sealed; nothing
//! here removes a database's data (the engine's volume goes only with an explicit delete).

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    SqlErr,
};
use uuid::Uuid;

use super::Db;
use super::entities::database_attachments::{self, Entity as Attachments};
use super::entities::databases::{self, Column, Entity as Databases};
use crate::model::{DatabaseKind, DatabaseState};

pub use databases::Model as Database;

/// The engine's name of database `id`'s volume.
pub fn docker_volume(id: Uuid) -> String {
    format!("shard-db-{}", id.simple())
}

/// A database to record.
pub struct NewDatabase {
    pub id: Uuid,
    pub team_id: Option<Uuid>,
    pub name: String,
    pub kind: DatabaseKind,
    pub version: String,
    pub image: String,
    pub credentials: Vec<u8>,
    pub memory_limit_mb: i32,
    pub created_by: Option<Uuid>,
}

/// Why a database could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    #[error("the team already has a database of that name")]
    Taken,
    #[error(transparent)]
    Db(#[from] DbErr),
}

pub async fn add(db: &Db, new: NewDatabase) -> Result<Database, AddError> {
    let now = Utc::now();
    let row = databases::ActiveModel {
        id: Set(new.id),
        team_id: Set(new.team_id),
        name: Set(new.name),
        kind: Set(new.kind),
        version: Set(new.version),
        image: Set(new.image),
        status: Set(DatabaseState::Starting),
        message: Set(None),
        container_id: Set(None),
        docker_volume: Set(docker_volume(new.id)),
        credentials: Set(new.credentials),
        public_port: Set(None),
        memory_limit_mb: Set(new.memory_limit_mb),
        created_by: Set(new.created_by),
        created_at: Set(now),
        updated_at: Set(now),
    };
    match row.insert(db).await {
        Ok(database) => Ok(database),
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Err(AddError::Taken)
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn find(db: &Db, id: Uuid) -> Result<Option<Database>, DbErr> {
    Databases::find_by_id(id).one(db).await
}

/// Databases of these teams (`None`: every one), oldest first.
pub async fn list(db: &Db, teams: Option<Vec<Uuid>>) -> Result<Vec<Database>, DbErr> {
    let mut query = Databases::find();
    if let Some(teams) = teams {
        query = query.filter(Column::TeamId.is_in(teams));
    }
    query.order_by_asc(Column::CreatedAt).all(db).await
}

/// Records where the database is: its state, a message and (when known) its container.
pub async fn set_state(
    db: &Db,
    id: Uuid,
    status: DatabaseState,
    message: Option<String>,
    container_id: Option<String>,
) -> Result<(), DbErr> {
    let mut update = Databases::update_many()
        .col_expr(Column::Status, Expr::value(status.as_str()))
        .col_expr(Column::Message, Expr::value(message))
        .col_expr(Column::UpdatedAt, Expr::value(Utc::now()));
    if let Some(container) = container_id {
        update = update.col_expr(Column::ContainerId, Expr::value(container));
    }
    update.filter(Column::Id.eq(id)).exec(db).await?;
    Ok(())
}

pub async fn set_public_port(db: &Db, id: Uuid, port: Option<i32>) -> Result<(), DbErr> {
    Databases::update_many()
        .col_expr(Column::PublicPort, Expr::value(port))
        .col_expr(Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn delete(db: &Db, id: Uuid) -> Result<(), DbErr> {
    use sea_orm::TransactionTrait;
    let txn = db.begin().await?;
    super::metrics::delete_subject(&txn, id).await?;
    Databases::delete_by_id(id).exec(&txn).await?;
    txn.commit().await
}

/// The projects `database` is attached to.
pub async fn attached_projects(db: &Db, database: Uuid) -> Result<Vec<Uuid>, DbErr> {
    Ok(Attachments::find()
        .filter(database_attachments::Column::DatabaseId.eq(database))
        .order_by_asc(database_attachments::Column::CreatedAt)
        .all(db)
        .await?
        .into_iter()
        .map(|a| a.project_id)
        .collect())
}

/// The databases attached to `project`.
pub async fn attached_to(db: &Db, project: Uuid) -> Result<Vec<Database>, DbErr> {
    let ids: Vec<Uuid> = Attachments::find()
        .filter(database_attachments::Column::ProjectId.eq(project))
        .all(db)
        .await?
        .into_iter()
        .map(|a| a.database_id)
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Databases::find()
        .filter(Column::Id.is_in(ids))
        .order_by_asc(Column::CreatedAt)
        .all(db)
        .await
}

/// Attaches; false when it was attached already.
pub async fn attach(db: &Db, database: Uuid, project: Uuid) -> Result<bool, DbErr> {
    let row = database_attachments::ActiveModel {
        database_id: Set(database),
        project_id: Set(project),
        created_at: Set(Utc::now()),
    };
    match row.insert(db).await {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Detaches; false when it was not attached.
pub async fn detach(db: &Db, database: Uuid, project: Uuid) -> Result<bool, DbErr> {
    let result = Attachments::delete_many()
        .filter(database_attachments::Column::DatabaseId.eq(database))
        .filter(database_attachments::Column::ProjectId.eq(project))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}
