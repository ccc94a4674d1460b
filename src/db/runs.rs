//! Scheduled jobs and runs (see the migration `scheduled_jobs_and_runs`). A job's next firing
//! is claimed by a conditional update of `next_run_at`, so under several instances each
//! firing runs once; a run leaves `running` exactly once (`finish` is conditional too).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::Db;
use super::entities::runs::{self, Column as R, Entity as Runs};
use super::entities::scheduled_jobs::{self, Column as J, Entity as Jobs};
use crate::model::{Concurrency, RunState, RunTrigger};

pub use runs::Model as Run;
pub use scheduled_jobs::Model as ScheduledJob;

/// A job as declared (created or replaced by name).
pub struct JobSpec {
    pub name: String,
    pub schedule: String,
    pub command: Vec<String>,
    pub timeout_secs: i32,
    pub concurrency: Concurrency,
    pub next_run_at: DateTime<Utc>,
}

/// The command words a job or a run stores.
pub fn command_of(stored: &str) -> Vec<String> {
    serde_json::from_str(stored).unwrap_or_default()
}

/// Creates `spec` in `project`, or replaces the job of the same name; the job, and whether
/// it is new.
pub async fn put_job(db: &Db, project: Uuid, spec: JobSpec) -> Result<(ScheduledJob, bool), DbErr> {
    let now = Utc::now();
    let command = serde_json::to_string(&spec.command).unwrap_or_else(|_| "[]".into());
    if let Some(existing) = find_job(db, project, &spec.name).await? {
        let mut row: scheduled_jobs::ActiveModel = existing.into();
        row.schedule = Set(spec.schedule);
        row.command = Set(command);
        row.timeout_secs = Set(spec.timeout_secs);
        row.concurrency = Set(spec.concurrency);
        row.next_run_at = Set(spec.next_run_at);
        row.updated_at = Set(now);
        return Ok((row.update(db).await?, false));
    }
    let row = scheduled_jobs::ActiveModel {
        id: Set(super::new_id()),
        project_id: Set(project),
        name: Set(spec.name),
        schedule: Set(spec.schedule),
        command: Set(command),
        timeout_secs: Set(spec.timeout_secs),
        concurrency: Set(spec.concurrency),
        next_run_at: Set(spec.next_run_at),
        last_run_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    Ok((row.insert(db).await?, true))
}

pub async fn jobs_of(db: &Db, project: Uuid) -> Result<Vec<ScheduledJob>, DbErr> {
    Jobs::find()
        .filter(J::ProjectId.eq(project))
        .order_by_asc(J::Name)
        .all(db)
        .await
}

pub async fn count_jobs(db: &Db, project: Uuid) -> Result<u64, DbErr> {
    Jobs::find()
        .filter(J::ProjectId.eq(project))
        .count(db)
        .await
}

pub async fn find_job(db: &Db, project: Uuid, name: &str) -> Result<Option<ScheduledJob>, DbErr> {
    Jobs::find()
        .filter(J::ProjectId.eq(project))
        .filter(J::Name.eq(name))
        .one(db)
        .await
}

pub async fn job_by_id(db: &Db, id: Uuid) -> Result<Option<ScheduledJob>, DbErr> {
    Jobs::find_by_id(id).one(db).await
}

/// Deletes a job with its runs; whether it existed.
pub async fn delete_job(db: &Db, id: Uuid) -> Result<bool, DbErr> {
    Runs::delete_many().filter(R::JobId.eq(id)).exec(db).await?;
    Ok(Jobs::delete_by_id(id).exec(db).await?.rows_affected > 0)
}

/// Jobs whose next firing is due at `now`, soonest first.
pub async fn due_jobs(db: &Db, now: DateTime<Utc>, limit: u64) -> Result<Vec<ScheduledJob>, DbErr> {
    Jobs::find()
        .filter(J::NextRunAt.lte(now))
        .order_by_asc(J::NextRunAt)
        .limit(limit)
        .all(db)
        .await
}

/// Moves a job's next firing from `seen` to `next`; false when someone else did first.
pub async fn claim_job(
    db: &Db,
    id: Uuid,
    seen: DateTime<Utc>,
    next: DateTime<Utc>,
    ran: bool,
) -> Result<bool, DbErr> {
    let mut update = Jobs::update_many().col_expr(J::NextRunAt, Expr::value(next));
    if ran {
        update = update.col_expr(J::LastRunAt, Expr::value(Utc::now()));
    }
    let result = update
        .filter(J::Id.eq(id))
        .filter(J::NextRunAt.eq(seen))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// A run to record as started.
pub struct NewRun {
    pub project_id: Uuid,
    pub job_id: Option<Uuid>,
    pub command: Vec<String>,
    pub trigger: RunTrigger,
    pub created_by: Option<Uuid>,
    pub deployment_id: Option<Uuid>,
}

pub async fn create_run(db: &Db, new: NewRun) -> Result<Run, DbErr> {
    let now = Utc::now();
    runs::ActiveModel {
        id: Set(super::new_id()),
        project_id: Set(new.project_id),
        job_id: Set(new.job_id),
        command: Set(serde_json::to_string(&new.command).unwrap_or_else(|_| "[]".into())),
        trigger: Set(new.trigger),
        status: Set(RunState::Running),
        exit_code: Set(None),
        error: Set(None),
        created_by: Set(new.created_by),
        deployment_id: Set(new.deployment_id),
        container_id: Set(None),
        started_at: Set(now),
        finished_at: Set(None),
        heartbeat_at: Set(Some(now)),
    }
    .insert(db)
    .await
}

pub async fn find_run(db: &Db, id: Uuid) -> Result<Option<Run>, DbErr> {
    Runs::find_by_id(id).one(db).await
}

/// A job's runs, newest first.
pub async fn runs_of_job(db: &Db, job: Uuid, limit: u64) -> Result<Vec<Run>, DbErr> {
    Runs::find()
        .filter(R::JobId.eq(job))
        .order_by_desc(R::StartedAt)
        .order_by_desc(R::Id)
        .limit(limit)
        .all(db)
        .await
}

/// A project's one-off runs (not terminals), newest first.
pub async fn one_offs(db: &Db, project: Uuid, limit: u64) -> Result<Vec<Run>, DbErr> {
    Runs::find()
        .filter(R::ProjectId.eq(project))
        .filter(R::JobId.is_null())
        .filter(R::Trigger.ne(RunTrigger::Terminal))
        .order_by_desc(R::StartedAt)
        .order_by_desc(R::Id)
        .limit(limit)
        .all(db)
        .await
}

/// How many runs of `job` are running.
pub async fn running_of_job(db: &Db, job: Uuid) -> Result<u64, DbErr> {
    Runs::find()
        .filter(R::JobId.eq(job))
        .filter(R::Status.eq(RunState::Running))
        .count(db)
        .await
}

pub async fn set_container(db: &Db, id: Uuid, container: &str) -> Result<(), DbErr> {
    Runs::update_many()
        .col_expr(R::ContainerId, Expr::value(container))
        .filter(R::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Ends a running run; false when it had already ended.
pub async fn finish(
    db: &Db,
    id: Uuid,
    status: RunState,
    exit_code: Option<i64>,
    error: Option<&str>,
) -> Result<bool, DbErr> {
    let result = Runs::update_many()
        .col_expr(R::Status, Expr::value(status))
        .col_expr(R::ExitCode, Expr::value(exit_code))
        .col_expr(R::Error, Expr::value(error.map(str::to_string)))
        .col_expr(R::FinishedAt, Expr::value(Utc::now()))
        .col_expr(R::HeartbeatAt, Expr::value(None::<DateTime<Utc>>))
        .filter(R::Id.eq(id))
        .filter(R::Status.eq(RunState::Running))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// The runner of each of `ids` is alive.
pub async fn heartbeat(db: &Db, ids: &[Uuid]) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    Runs::update_many()
        .col_expr(R::HeartbeatAt, Expr::value(Utc::now()))
        .filter(R::Id.is_in(ids.iter().copied()))
        .filter(R::Status.eq(RunState::Running))
        .exec(db)
        .await?;
    Ok(())
}

/// Running runs whose runner has not said it is alive since `before`.
pub async fn stale(db: &Db, before: DateTime<Utc>) -> Result<Vec<Run>, DbErr> {
    Runs::find()
        .filter(R::Status.eq(RunState::Running))
        .filter(R::HeartbeatAt.lt(before))
        .all(db)
        .await
}

/// Deletes the runs past the newest `keep` of `job` (or of `project`'s one-offs); their ids.
pub async fn prune(
    db: &Db,
    project: Uuid,
    job: Option<Uuid>,
    keep: u64,
) -> Result<Vec<Uuid>, DbErr> {
    let mut query = Runs::find()
        .select_only()
        .column(R::Id)
        .filter(R::ProjectId.eq(project))
        .filter(R::Status.ne(RunState::Running));
    query = match job {
        Some(job) => query.filter(R::JobId.eq(job)),
        None => query.filter(R::JobId.is_null()),
    };
    let old: Vec<Uuid> = query
        .order_by_desc(R::StartedAt)
        .order_by_desc(R::Id)
        .offset(keep)
        .limit(1000)
        .into_tuple()
        .all(db)
        .await?;
    if !old.is_empty() {
        Runs::delete_many()
            .filter(R::Id.is_in(old.iter().copied()))
            .exec(db)
            .await?;
    }
    Ok(old)
}
