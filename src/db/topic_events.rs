//! Numbered events of `project:<id>` and `user:<id>` topics.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, NotSet, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};

use super::Db;
use super::entities::topic_events::{self, Column, Entity as TopicEvents};

pub use topic_events::Model as TopicEvent;

/// Appends one event after the topic's last; returns it. A concurrent writer that took the
/// same seq makes the unique index fail, and the append is retried.
pub async fn append(
    db: &Db,
    topic: &str,
    kind: &str,
    payload: &str,
    ts: DateTime<Utc>,
) -> Result<TopicEvent, DbErr> {
    let mut attempt = 0;
    loop {
        let tx = db.begin().await?;
        let last = TopicEvents::find()
            .filter(Column::Topic.eq(topic))
            .order_by_desc(Column::Seq)
            .one(&tx)
            .await?
            .map_or(0, |e| e.seq);
        let inserted = topic_events::ActiveModel {
            id: NotSet,
            topic: Set(topic.to_string()),
            seq: Set(last + 1),
            ts: Set(ts),
            kind: Set(kind.to_string()),
            payload: Set(payload.to_string()),
        }
        .insert(&tx)
        .await;
        match inserted {
            Ok(event) => {
                tx.commit().await?;
                return Ok(event);
            }
            Err(e) if super::is_unique_violation(&e) && attempt < 5 => {
                attempt += 1;
                let _ = tx.rollback().await;
            }
            Err(e) => return Err(e),
        }
    }
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
