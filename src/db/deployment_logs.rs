//! The persisted log of a deployment: build output, step headers and status changes, numbered
//! from 1 per deployment with no gaps.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, NotSet, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};
use uuid::Uuid;

use super::Db;
use super::entities::deployment_logs::{self, Column, Entity as DeploymentLogs};

pub use deployment_logs::Model as LogLine;

/// One line before it is numbered.
#[derive(Debug, Clone)]
pub struct Entry {
    pub ts: DateTime<Utc>,
    /// `stdout`, `stderr`, `system` or `status`.
    pub stream: &'static str,
    pub line: String,
}

/// The highest seq written so far (0 for none).
pub async fn last_seq(db: &Db, deployment_id: Uuid) -> Result<i64, DbErr> {
    let last = DeploymentLogs::find()
        .filter(Column::DeploymentId.eq(deployment_id))
        .order_by_desc(Column::Seq)
        .one(db)
        .await?;
    Ok(last.map_or(0, |l| l.seq))
}

/// Inserts entries numbered `first_seq..` in one transaction.
pub async fn insert(
    db: &Db,
    deployment_id: Uuid,
    first_seq: i64,
    entries: &[Entry],
) -> Result<(), DbErr> {
    if entries.is_empty() {
        return Ok(());
    }
    let models = entries
        .iter()
        .enumerate()
        .map(|(i, e)| deployment_logs::ActiveModel {
            id: NotSet,
            deployment_id: Set(deployment_id),
            seq: Set(first_seq + i as i64),
            ts: Set(e.ts),
            stream: Set(e.stream.to_string()),
            line: Set(e.line.clone()),
        });
    DeploymentLogs::insert_many(models).exec(db).await?;
    Ok(())
}

/// Appends entries after the current last seq (for writers outside a running pipeline);
/// returns the seq of the first.
pub async fn append(db: &Db, deployment_id: Uuid, entries: &[Entry]) -> Result<i64, DbErr> {
    let tx = db.begin().await?;
    let last = DeploymentLogs::find()
        .filter(Column::DeploymentId.eq(deployment_id))
        .order_by_desc(Column::Seq)
        .one(&tx)
        .await?
        .map_or(0, |l| l.seq);
    for (i, e) in entries.iter().enumerate() {
        deployment_logs::ActiveModel {
            id: NotSet,
            deployment_id: Set(deployment_id),
            seq: Set(last + 1 + i as i64),
            ts: Set(e.ts),
            stream: Set(e.stream.to_string()),
            line: Set(e.line.clone()),
        }
        .insert(&tx)
        .await?;
    }
    tx.commit().await?;
    Ok(last + 1)
}

/// Lines with seq > `since`, in order, at most `limit`.
pub async fn since(
    db: &Db,
    deployment_id: Uuid,
    since: i64,
    limit: u64,
) -> Result<Vec<LogLine>, DbErr> {
    DeploymentLogs::find()
        .filter(Column::DeploymentId.eq(deployment_id))
        .filter(Column::Seq.gt(since))
        .order_by_asc(Column::Seq)
        .limit(limit)
        .all(db)
        .await
}

/// Removes the logs of deployments that ended before `before` and no longer serve (retention;
/// the deployments themselves stay in the history).
pub async fn prune(db: &Db, before: DateTime<Utc>) -> Result<u64, DbErr> {
    use super::entities::deployments::{self, Entity as Deployments};
    use sea_orm::sea_query::Query;
    let ended = Query::select()
        .column(deployments::Column::Id)
        .from(Deployments)
        .and_where(deployments::Column::FinishedAt.lt(before))
        .and_where(deployments::Column::Status.is_not_in(["live", "stopped"]))
        .to_owned();
    let result = DeploymentLogs::delete_many()
        .filter(Column::DeploymentId.in_subquery(ended))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
