//! Backup destinations and backups. A backup row is written `running` before anything is
//! dumped and ends `succeeded`, `verified` or `failed` (with its step); one found `running` at
//! startup was cut off and is failed then.

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, SqlErr,
};
use uuid::Uuid;

use super::Db;
use super::entities::backup_destinations::{self, Entity as Destinations};
use super::entities::backups::{self, Column, Entity as Backups};
use crate::model::BackupState;

pub use backup_destinations::Model as Destination;
pub use backups::Model as Backup;

/// Backups listed for one database, newest first.
pub const LIST_LIMIT: u64 = 200;

/// Records a destination; `None` when the name is taken.
pub async fn add_destination(db: &Db, row: Destination) -> Result<Option<Destination>, DbErr> {
    let active = backup_destinations::ActiveModel {
        id: Set(row.id),
        name: Set(row.name),
        kind: Set(row.kind),
        path: Set(row.path),
        endpoint: Set(row.endpoint),
        bucket: Set(row.bucket),
        prefix: Set(row.prefix),
        region: Set(row.region),
        access_key: Set(row.access_key),
        secret_key: Set(row.secret_key),
        created_by: Set(row.created_by),
        created_at: Set(row.created_at),
    };
    match active.insert(db).await {
        Ok(row) => Ok(Some(row)),
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => Ok(None),
        Err(e) => Err(e),
    }
}

pub async fn destinations(db: &Db) -> Result<Vec<Destination>, DbErr> {
    Destinations::find()
        .order_by_asc(backup_destinations::Column::CreatedAt)
        .all(db)
        .await
}

pub async fn destination(db: &Db, id: Uuid) -> Result<Option<Destination>, DbErr> {
    Destinations::find_by_id(id).one(db).await
}

pub async fn delete_destination(db: &Db, id: Uuid) -> Result<bool, DbErr> {
    Ok(Destinations::delete_by_id(id).exec(db).await?.rows_affected > 0)
}

/// A backup about to be taken.
pub struct NewBackup {
    pub id: Uuid,
    pub database_id: Uuid,
    pub source_name: String,
    pub source_kind: crate::model::DatabaseKind,
    pub destination_id: Uuid,
    pub object_key: String,
    pub created_by: Option<Uuid>,
}

pub async fn start(db: &Db, new: NewBackup) -> Result<Backup, DbErr> {
    backups::ActiveModel {
        id: Set(new.id),
        database_id: Set(Some(new.database_id)),
        source_name: Set(new.source_name),
        source_kind: Set(new.source_kind),
        destination_id: Set(Some(new.destination_id)),
        status: Set(BackupState::Running),
        step: Set(None),
        error: Set(None),
        object_key: Set(new.object_key),
        size_bytes: Set(None),
        sha256: Set(None),
        source_counts: Set(None),
        created_by: Set(new.created_by),
        started_at: Set(Utc::now()),
        finished_at: Set(None),
        verified_at: Set(None),
    }
    .insert(db)
    .await
}

pub async fn find(db: &Db, id: Uuid) -> Result<Option<Backup>, DbErr> {
    Backups::find_by_id(id).one(db).await
}

/// The backups of `database`, newest first.
pub async fn for_database(db: &Db, database: Uuid) -> Result<Vec<Backup>, DbErr> {
    Backups::find()
        .filter(Column::DatabaseId.eq(database))
        .order_by_desc(Column::StartedAt)
        .limit(LIST_LIMIT)
        .all(db)
        .await
}

/// Records what the source held when the dump began.
pub async fn set_counts(db: &Db, id: Uuid, counts: &str) -> Result<(), DbErr> {
    Backups::update_many()
        .col_expr(Column::SourceCounts, Expr::value(counts))
        .filter(Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// The dump is stored: its size and checksum.
pub async fn stored(db: &Db, id: Uuid, size: i64, sha256: &str) -> Result<(), DbErr> {
    Backups::update_many()
        .col_expr(Column::Status, Expr::value(BackupState::Succeeded.as_str()))
        .col_expr(Column::SizeBytes, Expr::value(size))
        .col_expr(Column::Sha256, Expr::value(sha256))
        .col_expr(Column::FinishedAt, Expr::value(Utc::now()))
        .filter(Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// A restore of it was checked.
pub async fn verified(db: &Db, id: Uuid) -> Result<(), DbErr> {
    Backups::update_many()
        .col_expr(Column::Status, Expr::value(BackupState::Verified.as_str()))
        .col_expr(Column::Step, Expr::value(None::<String>))
        .col_expr(Column::Error, Expr::value(None::<String>))
        .col_expr(Column::VerifiedAt, Expr::value(Utc::now()))
        .filter(Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// `step` failed with `error`.
pub async fn failed(db: &Db, id: Uuid, step: &str, error: &str) -> Result<(), DbErr> {
    Backups::update_many()
        .col_expr(Column::Status, Expr::value(BackupState::Failed.as_str()))
        .col_expr(Column::Step, Expr::value(step))
        .col_expr(
            Column::Error,
            Expr::value(error.chars().take(4000).collect::<String>()),
        )
        .col_expr(Column::FinishedAt, Expr::value(Utc::now()))
        .col_expr(
            Column::VerifiedAt,
            Expr::value(None::<chrono::DateTime<Utc>>),
        )
        .filter(Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Fails every backup still `running` (at startup: the process that ran them is gone);
/// answers them.
pub async fn fail_interrupted(db: &Db) -> Result<Vec<Backup>, DbErr> {
    let running = Backups::find()
        .filter(Column::Status.eq(BackupState::Running))
        .all(db)
        .await?;
    for backup in &running {
        failed(db, backup.id, "dump", "shard stopped while the backup ran").await?;
    }
    Ok(running)
}
