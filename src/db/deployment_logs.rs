//! The persisted log of a deployment: build output, step headers and status changes, numbered
//! from 1 per deployment with no gaps.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, DbErr, EntityTrait, NotSet, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
};
use uuid::Uuid;

use super::Db;
use super::entities::deployment_logs::{self, Column, Entity as DeploymentLogs};

/// A line as it is read back: what a log line says, without the row's id and deployment
/// (the reader knows which deployment it asked for). Replays read 100,000s of these, and every
/// column read is a value copied out of SQLite.
#[derive(Debug, Clone, PartialEq, sea_orm::FromQueryResult)]
pub struct LogLine {
    pub seq: i64,
    pub ts: DateTime<Utc>,
    pub stream: crate::model::LogStream,
    pub line: String,
}

/// One line before it is numbered (borrowed from what the writer holds, copied once into the
/// statement).
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub ts: DateTime<Utc>,
    /// For a `Status` entry, `line` is the status's text.
    pub stream: crate::model::LogStream,
    pub line: std::borrow::Cow<'a, str>,
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

/// Inserts entries numbered `first_seq..` in one statement. Idempotent: a seq already written
/// is left as it is, so a writer retrying a batch whose first try committed but whose answer
/// was lost (a connection broken after the commit) does not fail on its own rows forever.
pub async fn insert(
    db: &Db,
    deployment_id: Uuid,
    first_seq: i64,
    entries: &[Entry<'_>],
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
            stream: Set(e.stream),
            line: Set(e.line.to_string()),
        });
    DeploymentLogs::insert_many(models)
        .on_conflict(
            OnConflict::columns([Column::DeploymentId, Column::Seq])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Appends entries after the current last seq (for writers outside a running pipeline);
/// returns the seq of the first.
pub async fn append(db: &Db, deployment_id: Uuid, entries: &[Entry<'_>]) -> Result<i64, DbErr> {
    use sea_orm::ConnectionTrait;
    use sea_orm::sea_query::{Expr, ExprTrait, Func, Query};
    // Each line is one INSERT ... SELECT that numbers itself, so the transaction's first
    // statement is a write. (A SELECT first would open a read snapshot on SQLite, and a write
    // by another connection before our INSERT then fails it at once with SQLITE_BUSY_SNAPSHOT,
    // "database is locked", which busy_timeout does not retry: status lines were lost so.)
    let tx = db.begin().await?;
    let mut first = None;
    for e in entries {
        let next = Query::select()
            .expr(Expr::val(deployment_id))
            .expr(Func::coalesce([Expr::col(Column::Seq).max(), Expr::val(0i64)]).add(1i64))
            .expr(Expr::val(e.ts))
            .expr(Expr::val(e.stream))
            .expr(Expr::val(e.line.as_ref()))
            .from(DeploymentLogs)
            .and_where(Expr::col(Column::DeploymentId).eq(deployment_id))
            .to_owned();
        let insert = Query::insert()
            .into_table(DeploymentLogs)
            .columns([
                Column::DeploymentId,
                Column::Seq,
                Column::Ts,
                Column::Stream,
                Column::Line,
            ])
            .select_from(next)
            .map_err(|e| DbErr::Custom(e.to_string()))?
            .returning_col(Column::Seq)
            .to_owned();
        let row = tx
            .query_one(&insert)
            .await?
            .ok_or(DbErr::RecordNotInserted)?;
        let seq: i64 = row.try_get("", "seq")?;
        first.get_or_insert(seq);
    }
    tx.commit().await?;
    Ok(first.unwrap_or(0))
}

/// Lines with seq > `since`, in order, at most `limit`.
pub async fn since(
    db: &Db,
    deployment_id: Uuid,
    since: i64,
    limit: u64,
) -> Result<Vec<LogLine>, DbErr> {
    DeploymentLogs::find()
        .select_only()
        .columns([Column::Seq, Column::Ts, Column::Stream, Column::Line])
        .filter(Column::DeploymentId.eq(deployment_id))
        .filter(Column::Seq.gt(since))
        .order_by_asc(Column::Seq)
        .limit(limit)
        .into_model::<LogLine>()
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
