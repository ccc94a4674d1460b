//! Numbered events of `project:<id>`, `user:<id>` and `run:<id>` topics.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Func, Query};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::Db;
use super::entities::topic_events::{self, Column, Entity as TopicEvents};

pub use topic_events::Model as TopicEvent;

/// Appends one event after the topic's last; returns it.
///
/// The next seq is computed and inserted by one `INSERT … SELECT` statement: on SQLite a
/// read-then-write transaction fails with `SQLITE_BUSY_SNAPSHOT` whenever another writer commits
/// in between (the busy timeout does not cover that case), while a single write statement takes
/// the write lock first and waits its turn. On Postgres appends to one topic take turns under an
/// advisory lock (READ COMMITTED would let two pick the same seq).
pub async fn append(
    db: &Db,
    topic: &str,
    kind: &str,
    payload: &str,
    ts: DateTime<Utc>,
) -> Result<TopicEvent, DbErr> {
    let next_seq = Query::select()
        .expr(Expr::val(topic))
        .expr(Func::coalesce([Expr::col(Column::Seq).max(), Expr::val(0i64)]).add(1i64))
        .expr(Expr::val(ts))
        .expr(Expr::val(kind))
        .expr(Expr::val(payload))
        .from(TopicEvents)
        .and_where(Expr::col(Column::Topic).eq(topic))
        .to_owned();
    let insert = Query::insert()
        .into_table(TopicEvents)
        .columns([
            Column::Topic,
            Column::Seq,
            Column::Ts,
            Column::Kind,
            Column::Payload,
        ])
        .select_from(next_seq)
        .map_err(|e| DbErr::Custom(e.to_string()))?
        .returning_all()
        .to_owned();
    let stmt = db.get_database_backend().build(&insert);
    if !super::is_postgres(db) {
        return TopicEvents::find()
            .from_raw_sql(stmt)
            .one(db)
            .await?
            .ok_or(DbErr::RecordNotInserted);
    }
    // Postgres: appends to one topic take turns under a transaction-scoped advisory lock on
    // the topic, so two never pick the same seq (retrying on the unique index alone lost
    // events when dozens raced).
    use sea_orm::{ConnectionTrait, Statement, TransactionTrait};
    let tx = db.begin().await?;
    tx.execute_raw(Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock(hashtext($1))",
        [topic.into()],
    ))
    .await?;
    let event = TopicEvents::find().from_raw_sql(stmt).one(&tx).await?;
    tx.commit().await?;
    event.ok_or(DbErr::RecordNotInserted)
}

/// Appends events numbered by their only writer (a run's output task): `first_seq` onwards,
/// in one statement.
pub async fn append_numbered(
    db: &Db,
    topic: &str,
    first_seq: i64,
    events: &[(DateTime<Utc>, &str, String)],
) -> Result<(), DbErr> {
    use sea_orm::ActiveValue::{NotSet, Set};
    if events.is_empty() {
        return Ok(());
    }
    let rows =
        events
            .iter()
            .enumerate()
            .map(|(i, (ts, kind, payload))| topic_events::ActiveModel {
                id: NotSet,
                topic: Set(topic.to_string()),
                seq: Set(first_seq + i as i64),
                ts: Set(*ts),
                kind: Set(kind.to_string()),
                payload: Set(payload.clone()),
            });
    TopicEvents::insert_many(rows)
        .exec_without_returning(db)
        .await?;
    Ok(())
}

pub async fn since(db: &Db, topic: &str, since: i64, limit: u64) -> Result<Vec<TopicEvent>, DbErr> {
    TopicEvents::find()
        .filter(Column::Topic.eq(topic))
        .filter(Column::Seq.gt(since))
        .order_by_asc(Column::Seq)
        .limit(limit)
        .all(db)
        .await
}

/// The highest seq of `topic` so far (0 for none).
pub async fn last_seq(db: &Db, topic: &str) -> Result<i64, DbErr> {
    let last = TopicEvents::find()
        .filter(Column::Topic.eq(topic))
        .order_by_desc(Column::Seq)
        .one(db)
        .await?;
    Ok(last.map_or(0, |e| e.seq))
}

/// The id of the newest event of any `project:` topic (0 for none): it moves whenever some
/// process changes what a project serves.
pub async fn last_project_event(db: &Db) -> Result<i64, DbErr> {
    let last = TopicEvents::find()
        .filter(Column::Topic.starts_with("project:"))
        .order_by_desc(Column::Id)
        .one(db)
        .await?;
    Ok(last.map_or(0, |e| e.id))
}

/// Removes every event of `topic` (its owner was deleted).
pub async fn delete_topic(db: &Db, topic: &str) -> Result<u64, DbErr> {
    let result = TopicEvents::delete_many()
        .filter(Column::Topic.eq(topic))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Removes events older than `before` (retention).
pub async fn prune(db: &Db, before: DateTime<Utc>) -> Result<u64, DbErr> {
    let result = TopicEvents::delete_many()
        .filter(Column::Ts.lt(before))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
