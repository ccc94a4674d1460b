//! Replay sources: where a topic's events after a cursor come from when the live stream
//! cannot supply them (a new subscriber's `since`, a lagged receiver, a gap). Each topic owns
//! its source — the deployment log table, the topic-event table, the runtime-log buffer — and
//! this module renders a page of it in wire form, so the WebSocket layer only transports.

use serde_json::{Value, json};
use uuid::Uuid;

use super::runtime::{BUFFER_LINES, RuntimeLogs};
use super::wire::{persisted_text, runtime_text, topic_message};
use super::{Hub, Published, Topic};
use crate::db::{self, Db, deployment_logs};

/// Events read from a source per page.
pub const PAGE: u64 = 1000;

/// One page of a topic's source after a cursor.
#[derive(Default)]
pub struct Page {
    /// Set when the cursor no longer means anything (runtime-log numbering restarted): the
    /// caller moves its cursor here before delivering `events`.
    pub reset_cursor: Option<i64>,
    /// Notices to send before the events (`{"type":"notice",...}`).
    pub notices: Vec<Value>,
    /// `(seq, message)` in seq order.
    pub events: Vec<(i64, String)>,
    /// More may follow after the last event.
    pub more: bool,
}

/// Whether `topic`'s events are persisted (a persisted topic never skips a gap).
pub fn is_persisted(topic: Topic) -> bool {
    matches!(
        topic,
        Topic::Deployment(_) | Topic::Project(_) | Topic::User(_) | Topic::Run(_)
    )
}

/// Everything after `cursor` from the hub's recent ring, when it covers the cursor with no
/// gap (messages already rendered); `None` when the source must be read.
pub fn from_memory(hub: &Hub, topic: Topic, cursor: i64) -> Option<Vec<std::sync::Arc<Published>>> {
    if !is_persisted(topic) {
        return None;
    }
    hub.recent_since(topic, cursor)
}

/// Reads one page after `cursor` from `topic`'s source.
pub async fn page(
    db: &Db,
    runtime: &RuntimeLogs,
    topic: Topic,
    cursor: i64,
) -> Result<Page, sea_orm::DbErr> {
    match topic {
        Topic::Deployment(id) => {
            let lines = deployment_logs::since(db, id, cursor, PAGE).await?;
            let name = topic.to_string();
            Ok(Page {
                more: lines.len() as u64 == PAGE,
                events: lines
                    .iter()
                    .map(|l| (l.seq, persisted_text(&name, l)))
                    .collect(),
                ..Page::default()
            })
        }
        Topic::Project(_) | Topic::User(_) | Topic::Run(_) => {
            let events = db::topic_events::since(db, &topic.to_string(), cursor, PAGE).await?;
            Ok(Page {
                more: events.len() as u64 == PAGE,
                events: events
                    .into_iter()
                    .map(|e| {
                        let payload = serde_json::from_str(&e.payload).unwrap_or(Value::Null);
                        let message = topic_message(&topic, e.seq, e.ts, &e.kind, payload);
                        (e.seq, message.to_string())
                    })
                    .collect(),
                ..Page::default()
            })
        }
        // Live only: a snapshot every few seconds, a sample every interval.
        Topic::System | Topic::ProjectMetrics(_) => Ok(Page::default()),
        Topic::ProjectLogs(project) => Ok(runtime_page(runtime, topic, project, cursor)),
    }
}

/// Runtime logs live in memory: the buffer keeps the last lines, and the numbering restarts
/// with each follower (and with shard). A cursor past the current last line would freeze a
/// reconnecting client's log, so it starts over from the buffer with a notice.
fn runtime_page(runtime: &RuntimeLogs, topic: Topic, project: Uuid, cursor: i64) -> Page {
    let mut page = Page::default();
    let (mut lines, last) = runtime.since(project, cursor);
    let mut cursor = cursor;
    if cursor > last {
        page.notices.push(json!({"type": "notice", "topic": topic.to_string(), "message": format!("runtime log numbering restarted; line {cursor} is gone, resuming from the lines kept now")}));
        cursor = 0;
        page.reset_cursor = Some(0);
        lines = runtime.since(project, cursor).0;
    }
    if let Some(first) = lines.first()
        && first.seq > cursor + 1
    {
        page.notices.push(json!({"type": "notice", "topic": topic.to_string(), "message": format!("lines {}..{} are no longer kept (runtime logs keep the last {BUFFER_LINES})", cursor + 1, first.seq - 1)}));
    }
    page.events = lines
        .iter()
        .map(|l| (l.seq, runtime_text(&topic, l.seq, l.ts, l.stream, &l.line)))
        .collect();
    page
}
