//! Hub fan-out across shard instances sharing one Postgres. Persisted events (deployment logs
//! and statuses, `project:` and `user:` topic events) are written before they are published,
//! so an instance only has to say which seqs of which topic it just published: a `NOTIFY
//! shard_hub` with `{instance, topic, first, last}`. Every other instance that has local
//! listeners on that topic reads exactly that range from the database and publishes it to them.
//! A lost notice (a full queue, a reconnecting listener) is a gap the WebSocket layer already
//! fills from the database at the next event, so delivery stays gapless. Metrics samples
//! (live-only, published by the leader's collector) travel whole inside their notice. A
//! project event from another instance wakes `routes_changed`, which app.rs hands to the
//! proxy's route follower, so any instance routes what another one deployed.

use std::time::Duration;

use sea_orm::sqlx::postgres::PgListener;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Announcement, Event, Hub, Topic};
use crate::db::{deployment_logs, topic_events};

pub const CHANNEL: &str = "shard_hub";
/// Notices waiting to be sent; beyond this they are dropped (the receivers' gap fill covers it).
pub const QUEUE: usize = 4096;
/// At most this many events are read for one notice (a longer run is read by the gap fill).
const RANGE_LIMIT: i64 = 2000;

/// "This instance published seqs `first..=last` of `topic`."
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Notice {
    #[serde(rename = "i")]
    pub instance: Uuid,
    #[serde(rename = "t")]
    pub topic: String,
    #[serde(rename = "a")]
    pub first: i64,
    #[serde(rename = "b")]
    pub last: i64,
    /// A live-only event carried whole (a metrics sample), at seq `first`.
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Carried>,
}

/// The rest of a carried event (`Event::Topic`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Carried {
    pub ts: chrono::DateTime<chrono::Utc>,
    pub kind: String,
    pub payload: serde_json::Value,
}

impl Notice {
    fn of(instance: Uuid, announcement: Announcement) -> Option<Self> {
        let (topic, first, last, event) = match announcement {
            Announcement::Range(topic, first, last) => (topic, first, last, None),
            Announcement::Live(Event::Topic {
                topic,
                seq,
                ts,
                kind,
                payload,
            }) => (topic, seq, seq, Some(Carried { ts, kind, payload })),
            Announcement::Live(_) => return None,
        };
        Some(Notice {
            instance,
            topic: topic.to_string(),
            first,
            last,
            event,
        })
    }
}

/// Sends this instance's notices (one `pg_notify` each, in order): what the hub published.
/// Once `stop` is cancelled, sends what is already queued and returns.
pub async fn send(
    db: DatabaseConnection,
    instance: Uuid,
    mut published: mpsc::Receiver<Announcement>,
    stop: CancellationToken,
) {
    loop {
        let announcement = tokio::select! {
            biased;
            n = published.recv() => match n { Some(n) => n, None => return },
            _ = stop.cancelled() => match published.try_recv() {
                Ok(n) => n,
                Err(_) => return,
            },
        };
        let Some(notice) = Notice::of(instance, announcement) else {
            continue;
        };
        let Ok(payload) = serde_json::to_string(&notice) else {
            continue;
        };
        let statement = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [CHANNEL.into(), payload.into()],
        );
        if let Err(e) = db.execute_raw(statement).await {
            tracing::warn!(error = %e, "cannot notify other instances of hub events");
        }
    }
}

/// Listens for other instances' notices and publishes their events to this instance's
/// listeners. Reconnects when the listening connection drops.
pub async fn listen(
    db: DatabaseConnection,
    hub: std::sync::Arc<Hub>,
    instance: Uuid,
    routes_changed: std::sync::Arc<tokio::sync::Notify>,
    shutdown: CancellationToken,
) {
    loop {
        let listener = async {
            let mut listener = PgListener::connect_with(db.get_postgres_connection_pool()).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sea_orm::sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            _ = shutdown.cancelled() => return,
            l = listener => match l {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for other instances' hub events; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    continue;
                }
            },
        };
        loop {
            let received = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = listener.recv() => r,
            };
            let notification = match received {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "hub listener connection lost; reconnecting");
                    break;
                }
            };
            let Ok(notice) = serde_json::from_str::<Notice>(notification.payload()) else {
                continue;
            };
            if notice.instance == instance {
                continue;
            }
            let Ok(topic) = notice.topic.parse::<Topic>() else {
                continue;
            };
            // A project's status events mark every change of what it serves (a switch, a
            // start or stop, a crash): this instance's route table follows.
            if matches!(topic, Topic::Project(_)) {
                routes_changed.notify_one();
            }
            if !hub.is_listened(topic) {
                continue;
            }
            if let Some(carried) = notice.event {
                hub.publish_relayed(vec![Event::Topic {
                    topic,
                    seq: notice.first,
                    ts: carried.ts,
                    kind: carried.kind,
                    payload: carried.payload,
                }]);
                continue;
            }
            match read(&db, topic, notice.first, notice.last).await {
                Ok(events) => hub.publish_relayed(events),
                Err(e) => tracing::warn!(error = %e, %topic, "cannot read relayed hub events"),
            }
        }
    }
}

/// How often [`tail`] looks for a predecessor's new events.
pub const TAIL_EVERY: Duration = Duration::from_millis(250);

/// The SQLite counterpart of [`listen`], for the short time two processes share one SQLite
/// database: a process an upgrade started, while its predecessor still finishes the deploys
/// and runs it had. SQLite has no notices, so every [`TAIL_EVERY`] this reads what was
/// appended to the topics listened to here after the last event it published, and publishes
/// it. A topic seen for the first time gets its newest event (a subscriber's cursor before it
/// fills the gap from the database; one at it drops it as a duplicate), so an event written
/// between a subscriber's replay and this task's first look is never stranded. A new event of
/// any project (the old process switched, started or stopped an app) wakes `routes_changed`,
/// so the proxy here routes to what the old process just deployed. Ends with one last look
/// once `predecessor_gone` (the old process has exited, so nothing more comes).
pub async fn tail(
    db: DatabaseConnection,
    hub: std::sync::Arc<Hub>,
    routes_changed: std::sync::Arc<tokio::sync::Notify>,
    predecessor_gone: CancellationToken,
    shutdown: CancellationToken,
) {
    let mut relayed: std::collections::HashMap<Topic, i64> = std::collections::HashMap::new();
    // Unknown at first: the first look refreshes the routes once, which covers a switch made
    // between this process's first route table and the tail's start.
    let mut project_event = -1;
    let mut ticks = tokio::time::interval(TAIL_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let last_look = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = predecessor_gone.cancelled() => true,
            _ = ticks.tick() => false,
        };
        match topic_events::last_project_event(&db).await {
            Ok(last) if last != project_event => {
                project_event = last;
                routes_changed.notify_one();
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the previous process's project events")
            }
        }
        let listened = hub.persisted_listened();
        relayed.retain(|topic, _| listened.contains(topic));
        for topic in listened {
            let events = match relayed.get(&topic) {
                Some(&after) => read(&db, topic, after + 1, after + RANGE_LIMIT).await,
                None => newest(&db, topic).await,
            };
            match events {
                Ok(events) => {
                    let last = events.last().map_or(0, |e| e.topic().1);
                    let cursor = relayed.entry(topic).or_insert(0);
                    *cursor = (*cursor).max(last);
                    hub.publish_relayed(events);
                }
                Err(e) => {
                    tracing::warn!(error = %e, %topic, "cannot read the previous process's events")
                }
            }
        }
        if last_look {
            tracing::debug!("the previous process has exited; its events are all relayed");
            return;
        }
    }
}

/// The newest event of a persisted topic (none for an empty one).
async fn newest(db: &DatabaseConnection, topic: Topic) -> Result<Vec<Event>, sea_orm::DbErr> {
    let last = match topic {
        Topic::Deployment(id) => deployment_logs::last_seq(db, id).await?,
        _ => topic_events::last_seq(db, &topic.to_string()).await?,
    };
    read(db, topic, last, last).await
}

/// Events `first..=last` of a persisted topic, from the database (none for `last` < 1).
async fn read(
    db: &DatabaseConnection,
    topic: Topic,
    first: i64,
    last: i64,
) -> Result<Vec<Event>, sea_orm::DbErr> {
    let count = (last - first + 1).clamp(0, RANGE_LIMIT) as u64;
    if count == 0 || last < 1 {
        return Ok(Vec::new());
    }
    match topic {
        Topic::Deployment(id) => {
            let lines = deployment_logs::since(db, id, first - 1, count).await?;
            lines
                .into_iter()
                .map(|l| super::log_event(id, l))
                .collect::<Result<_, _>>()
                .map_err(|e| sea_orm::DbErr::Type(e.to_string()))
        }
        Topic::Project(_) | Topic::User(_) | Topic::Run(_) => {
            let rows = topic_events::since(db, &topic.to_string(), first - 1, count).await?;
            Ok(rows
                .into_iter()
                .map(|e| Event::Topic {
                    topic,
                    seq: e.seq,
                    ts: e.ts,
                    kind: e.kind,
                    payload: serde_json::from_str(&e.payload).unwrap_or_default(),
                })
                .collect())
        }
        // Live-only topics are not relayed.
        _ => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_are_small_and_read_back() {
        let notice = Notice {
            instance: Uuid::now_v7(),
            topic: format!("deployment:{}", Uuid::now_v7()),
            first: 1,
            last: 512,
            event: None,
        };
        let text = serde_json::to_string(&notice).unwrap();
        // pg_notify payloads must stay under 8000 bytes.
        assert!(text.len() < 200, "{text}");
        assert_eq!(serde_json::from_str::<Notice>(&text).unwrap(), notice);
    }

    #[test]
    fn a_carried_sample_fits_a_notice() {
        let point = crate::db::metrics::Point {
            ts: chrono::Utc::now(),
            cpu_percent: 199.99,
            memory_bytes: i64::MAX,
            memory_limit_bytes: i64::MAX,
            net_rx_bytes: i64::MAX,
            net_tx_bytes: i64::MAX,
            block_read_bytes: i64::MAX,
            block_write_bytes: i64::MAX,
            restart_count: i64::MAX,
        };
        let event = Event::Topic {
            topic: Topic::ProjectMetrics(Uuid::now_v7()),
            seq: i64::MAX,
            ts: point.ts,
            kind: "metrics".into(),
            payload: serde_json::to_value(&point).unwrap(),
        };
        let notice = Notice::of(Uuid::now_v7(), Announcement::Live(event)).unwrap();
        let text = serde_json::to_string(&notice).unwrap();
        assert!(text.len() < 1000, "{text}");
        assert_eq!(serde_json::from_str::<Notice>(&text).unwrap(), notice);
    }
}
