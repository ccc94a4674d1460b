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

/// What backups are of: a database or a volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Database(Uuid),
    Volume(Uuid),
    /// The installation itself (neither a database nor a volume).
    Instance,
}

impl Source {
    pub fn database(self) -> Option<Uuid> {
        match self {
            Source::Database(id) => Some(id),
            _ => None,
        }
    }

    pub fn volume(self) -> Option<Uuid> {
        match self {
            Source::Volume(id) => Some(id),
            _ => None,
        }
    }

    /// Backup `b`'s source.
    pub fn of(b: &Backup) -> Option<Source> {
        if b.source_kind == crate::model::BackupKind::Instance {
            return Some(Source::Instance);
        }
        b.database_id
            .map(Source::Database)
            .or(b.volume_id.map(Source::Volume))
    }

    /// The source a schedule is of.
    pub fn of_schedule(s: &Schedule) -> Source {
        match (s.database_id, s.volume_id) {
            (Some(id), _) => Source::Database(id),
            (None, Some(id)) => Source::Volume(id),
            (None, None) => Source::Instance,
        }
    }

    fn backups(self) -> sea_orm::sea_query::SimpleExpr {
        match self {
            Source::Database(id) => Column::DatabaseId.eq(id),
            Source::Volume(id) => Column::VolumeId.eq(id),
            Source::Instance => Column::SourceKind.eq(crate::model::BackupKind::Instance),
        }
    }

    fn schedules(self) -> sea_orm::sea_query::SimpleExpr {
        match self {
            Source::Database(id) => schedules::Column::DatabaseId.eq(id),
            Source::Volume(id) => schedules::Column::VolumeId.eq(id),
            Source::Instance => sea_orm::Condition::all()
                .add(schedules::Column::DatabaseId.is_null())
                .add(schedules::Column::VolumeId.is_null())
                .into(),
        }
    }
}

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
    pub source: Source,
    pub source_name: String,
    pub source_kind: crate::model::BackupKind,
    pub destination_id: Uuid,
    pub object_key: String,
    pub created_by: Option<Uuid>,
    /// The process taking it.
    pub runner: String,
}

pub async fn start(db: &Db, new: NewBackup) -> Result<Backup, DbErr> {
    backups::ActiveModel {
        id: Set(new.id),
        database_id: Set(new.source.database()),
        volume_id: Set(new.source.volume()),
        runner: Set(Some(new.runner)),
        heartbeat_at: Set(Some(Utc::now())),
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
pub async fn for_source(db: &Db, source: Source) -> Result<Vec<Backup>, DbErr> {
    Backups::find()
        .filter(source.backups())
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

/// The runner of a running backup is alive.
pub async fn heartbeat(db: &Db, id: Uuid) -> Result<(), DbErr> {
    Backups::update_many()
        .col_expr(Column::HeartbeatAt, Expr::value(Utc::now()))
        .filter(Column::Id.eq(id))
        .filter(Column::Status.eq(BackupState::Running))
        .exec(db)
        .await?;
    Ok(())
}

/// The backups still `running` whose runner is gone: `mine` (at startup: this data dir's
/// process before the restart), or any whose heartbeat is older than `stale_before` (another
/// instance that died).
pub async fn orphans(
    db: &Db,
    mine: Option<&str>,
    stale_before: chrono::DateTime<Utc>,
) -> Result<Vec<Backup>, DbErr> {
    use sea_orm::Condition;
    let mut gone = Condition::any()
        .add(Column::HeartbeatAt.lt(stale_before))
        .add(Column::HeartbeatAt.is_null());
    if let Some(mine) = mine {
        gone = gone.add(Column::Runner.eq(mine));
    }
    Backups::find()
        .filter(Column::Status.eq(BackupState::Running))
        .filter(gone)
        .all(db)
        .await
}

/// Backups of `database` in `destination` that were stored whole (`succeeded` or `verified`),
/// newest first: what retention decides over.
pub async fn stored_in(db: &Db, source: Source, destination: Uuid) -> Result<Vec<Backup>, DbErr> {
    Backups::find()
        .filter(source.backups())
        .filter(Column::DestinationId.eq(destination))
        .filter(Column::Status.is_in([BackupState::Succeeded, BackupState::Verified]))
        .order_by_desc(Column::StartedAt)
        .all(db)
        .await
}

/// Failed backups of `database` beyond the newest `keep` (they hold no file): ids.
pub async fn failed_beyond(db: &Db, source: Source, keep: u64) -> Result<Vec<Uuid>, DbErr> {
    Backups::find()
        .select_only()
        .column(Column::Id)
        .filter(source.backups())
        .filter(Column::Status.eq(BackupState::Failed))
        .order_by_desc(Column::StartedAt)
        // SQLite takes an OFFSET only after a LIMIT.
        .limit(LIST_LIMIT)
        .offset(keep)
        .into_tuple()
        .all(db)
        .await
}

pub async fn delete(db: &Db, id: Uuid) -> Result<(), DbErr> {
    Backups::delete_by_id(id).exec(db).await?;
    Ok(())
}

/// Whether a backup of `database` is running now.
pub async fn running_for(db: &Db, source: Source) -> Result<bool, DbErr> {
    Ok(Backups::find()
        .filter(source.backups())
        .filter(Column::Status.eq(BackupState::Running))
        .one(db)
        .await?
        .is_some())
}

pub use super::entities::backup_schedules::Model as Schedule;
use super::entities::backup_schedules::{self as schedules, Entity as Schedules};

pub async fn schedule(db: &Db, source: Source) -> Result<Option<Schedule>, DbErr> {
    Schedules::find().filter(source.schedules()).one(db).await
}

/// Sets a source's schedule (replacing any).
pub async fn set_schedule(db: &Db, source: Source, row: Schedule) -> Result<Schedule, DbErr> {
    use sea_orm::TransactionTrait;
    let txn = db.begin().await?;
    Schedules::delete_many()
        .filter(source.schedules())
        .exec(&txn)
        .await?;
    let saved = schedules::ActiveModel {
        id: Set(row.id),
        database_id: Set(source.database()),
        volume_id: Set(source.volume()),
        cron: Set(row.cron),
        destination_ids: Set(row.destination_ids),
        keep_last: Set(row.keep_last),
        keep_days: Set(row.keep_days),
        next_run_at: Set(row.next_run_at),
        last_run_at: Set(row.last_run_at),
        updated_by: Set(row.updated_by),
        updated_at: Set(row.updated_at),
        recipients: Set(row.recipients),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(saved)
}

pub async fn delete_schedule(db: &Db, source: Source) -> Result<bool, DbErr> {
    Ok(Schedules::delete_many()
        .filter(source.schedules())
        .exec(db)
        .await?
        .rows_affected
        > 0)
}

/// Every schedule (at most `limit`).
pub async fn schedules(db: &Db, limit: u64) -> Result<Vec<Schedule>, DbErr> {
    Schedules::find()
        .order_by_asc(schedules::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

/// Schedules due at `now`, soonest first (at most 100 a round).
pub async fn due_schedules(db: &Db, now: chrono::DateTime<Utc>) -> Result<Vec<Schedule>, DbErr> {
    Schedules::find()
        .filter(schedules::Column::NextRunAt.lte(now))
        .order_by_asc(schedules::Column::NextRunAt)
        .limit(100)
        .all(db)
        .await
}

/// Claims a due run: moves `next_run_at` from `was` to `next` only if no one else did (another
/// instance); whether this caller won.
pub async fn claim_run(
    db: &Db,
    id: Uuid,
    was: chrono::DateTime<Utc>,
    next: chrono::DateTime<Utc>,
) -> Result<bool, DbErr> {
    let done = Schedules::update_many()
        .col_expr(schedules::Column::NextRunAt, Expr::value(next))
        .col_expr(schedules::Column::LastRunAt, Expr::value(Utc::now()))
        .filter(schedules::Column::Id.eq(id))
        .filter(schedules::Column::NextRunAt.eq(was))
        .exec(db)
        .await?;
    Ok(done.rows_affected == 1)
}
