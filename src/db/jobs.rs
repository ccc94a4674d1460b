//! Queries of the durable job queue. A job is `queued` until a worker claims it with a lease
//! (`running`), then ends `succeeded`, `failed`, or goes back to `queued` with a later
//! `run_after` for a retry. A running job whose lease expired is claimable again.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType, Query};
use sea_orm::{ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use super::entities::jobs::{self, Column, Entity as Jobs};
use super::{Db, is_postgres, new_id, now};

pub use jobs::Model as Job;

pub use crate::model::JobState;

pub struct NewJob {
    pub kind: crate::model::JobKind,
    pub payload: String,
    pub project_id: Option<Uuid>,
    pub max_attempts: i32,
    pub run_after: DateTime<Utc>,
}

pub async fn enqueue(db: &Db, new: NewJob) -> Result<Job, DbErr> {
    let at = now();
    jobs::ActiveModel {
        id: Set(new_id()),
        kind: Set(new.kind.to_string()),
        payload: Set(new.payload),
        status: Set(JobState::Queued),
        project_id: Set(new.project_id),
        attempts: Set(0),
        max_attempts: Set(Ord::max(new.max_attempts, 1)),
        run_after: Set(new.run_after),
        lease_owner: Set(None),
        lease_expires_at: Set(None),
        last_error: Set(None),
        created_at: Set(at),
        updated_at: Set(at),
    }
    .insert(db)
    .await
}

/// Atomically claims the oldest due job (or one whose lease expired) for `owner`, never a job
/// of a project that has one running under a live lease. One statement; on Postgres the
/// candidate row is locked `SKIP LOCKED` and claims take turns under an advisory lock, so
/// several shard instances share the queue and still run one deploy per project.
pub async fn claim(db: &Db, owner: &str, lease_until: DateTime<Utc>) -> Result<Option<Job>, DbErr> {
    let at = now();
    // One running job per project: skip jobs whose project has a live lease elsewhere.
    let project_busy = Query::select()
        .expr(Expr::val(1))
        .from_as(Jobs, "j2")
        .and_where(Expr::col(("j2", Column::ProjectId)).equals((Jobs, Column::ProjectId)))
        .and_where(Expr::col(("j2", Column::Status)).eq(JobState::Running))
        .and_where(Expr::col(("j2", Column::LeaseExpiresAt)).gte(at))
        .to_owned();
    let mut candidate = Query::select();
    candidate
        .column(Column::Id)
        .from(Jobs)
        .cond_where(
            Expr::col(Column::Status)
                .eq(JobState::Queued)
                .and(Expr::col(Column::RunAfter).lte(at))
                .or(Expr::col(Column::Status)
                    .eq(JobState::Running)
                    .and(Expr::col(Column::LeaseExpiresAt).lt(at))),
        )
        .and_where(
            Expr::col(Column::ProjectId)
                .is_null()
                .or(Expr::exists(project_busy).not()),
        )
        .order_by(Column::RunAfter, sea_orm::sea_query::Order::Asc)
        .limit(1);
    if is_postgres(db) {
        candidate.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let update = Query::update()
        .table(Jobs)
        .value(Column::Status, JobState::Running)
        .value(Column::LeaseOwner, owner)
        .value(Column::LeaseExpiresAt, lease_until)
        .value(Column::Attempts, Expr::col(Column::Attempts).add(1))
        .value(Column::UpdatedAt, at)
        .and_where(Expr::col(Column::Id).in_subquery(candidate))
        .returning_all()
        .to_owned();
    let stmt = db.get_database_backend().build(&update);
    if !is_postgres(db) {
        // SQLite runs one write statement at a time: the busy check and the claim are one.
        return Jobs::find().from_raw_sql(stmt).one(db).await;
    }
    // Under READ COMMITTED two instances could both find a project idle and claim two of its
    // jobs; a transaction-scoped advisory lock makes claims take turns (they are short).
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let tx = db.begin().await?;
    tx.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({CLAIM_LOCK})"))
        .await?;
    let claimed = Jobs::find().from_raw_sql(stmt).one(&tx).await?;
    tx.commit().await?;
    Ok(claimed)
}

/// The advisory lock key claims take on Postgres ("shard" in ASCII).
pub const CLAIM_LOCK: i64 = 0x73_6861_7264;

/// Extends the lease; false when the job is no longer this owner's (it was recovered).
pub async fn renew(
    db: &Db,
    id: Uuid,
    owner: &str,
    lease_until: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = Jobs::update_many()
        .col_expr(Column::LeaseExpiresAt, Expr::value(lease_until))
        .filter(Column::Id.eq(id))
        .filter(Column::LeaseOwner.eq(owner))
        .filter(Column::Status.eq(JobState::Running))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Ends a job owned by `owner`: `succeeded`, `failed`, or back to `queued` at `retry_at`.
pub async fn finish(
    db: &Db,
    id: Uuid,
    owner: &str,
    status: JobState,
    error: Option<String>,
    retry_at: Option<DateTime<Utc>>,
) -> Result<(), DbErr> {
    let mut update = Jobs::update_many()
        .col_expr(Column::Status, Expr::value(status))
        .col_expr(Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(
            Column::LeaseExpiresAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(Column::LastError, Expr::value(error))
        .col_expr(Column::UpdatedAt, Expr::value(now()));
    if let Some(at) = retry_at {
        update = update.col_expr(Column::RunAfter, Expr::value(at));
    }
    update
        .filter(Column::Id.eq(id))
        .filter(Column::LeaseOwner.eq(owner))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn find(db: &Db, id: Uuid) -> Result<Option<Job>, DbErr> {
    Jobs::find_by_id(id).one(db).await
}

/// True when a job of `kind` is queued or running (used to keep one periodic job in flight).
pub async fn pending_of_kind(db: &Db, kind: crate::model::JobKind) -> Result<bool, DbErr> {
    Ok(Jobs::find()
        .filter(Column::Kind.eq(kind.as_str()))
        .filter(Column::Status.is_in([JobState::Queued, JobState::Running]))
        .one(db)
        .await?
        .is_some())
}

/// Ends the leases of all running jobs so they are recovered now. Only correct when no other
/// process can hold a lease (SQLite: one process per database file).
pub async fn expire_running_leases(db: &Db) -> Result<u64, DbErr> {
    let result = Jobs::update_many()
        .col_expr(
            Column::LeaseExpiresAt,
            Expr::value(now() - chrono::Duration::seconds(1)),
        )
        .filter(Column::Status.eq(JobState::Running))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Jobs queued or running (the `system` topic's queue length).
pub async fn count_pending(db: &Db) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    Jobs::find()
        .filter(Column::Status.is_in([JobState::Queued, JobState::Running]))
        .count(db)
        .await
}

/// True when a job of `project` runs under a lease that has not expired (here or on another
/// instance sharing the database).
pub async fn project_busy(db: &Db, project_id: Uuid) -> Result<bool, DbErr> {
    Ok(Jobs::find()
        .filter(Column::ProjectId.eq(project_id))
        .filter(Column::Status.eq(JobState::Running))
        .filter(Column::LeaseExpiresAt.gte(now()))
        .one(db)
        .await?
        .is_some())
}

/// Removes jobs that ended before `before` (retention).
pub async fn prune_finished(db: &Db, before: DateTime<Utc>) -> Result<u64, DbErr> {
    let result = Jobs::delete_many()
        .filter(Column::Status.is_in([JobState::Succeeded, JobState::Failed]))
        .filter(Column::UpdatedAt.lt(before))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
