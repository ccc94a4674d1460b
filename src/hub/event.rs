//! What the hub carries: an `Event` (a deployment's status or log line, a running app's
//! output line, a `project:`/`user:`/`system` event), shared as `Published` with its wire
//! form rendered once, and grouped into `Delivery` runs for subscribers.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Topic, wire};

#[derive(Debug, Clone)]
pub enum Event {
    /// A deployment changed status (`seq` is its position in the deployment's log).
    Status {
        deployment_id: Uuid,
        seq: i64,
        ts: DateTime<Utc>,
        status: crate::model::DeploymentStatus,
    },
    /// A persisted line of a deployment's log.
    Log {
        deployment_id: Uuid,
        seq: i64,
        ts: DateTime<Utc>,
        stream: crate::model::LogStream,
        line: String,
    },
    /// A line of a project's running container (not persisted).
    Runtime {
        project_id: Uuid,
        seq: i64,
        ts: DateTime<Utc>,
        stream: crate::model::LogStream,
        line: String,
    },
    /// An event of a `project:`, `user:` or `system` topic: `kind` and a JSON payload.
    Topic {
        topic: Topic,
        seq: i64,
        ts: DateTime<Utc>,
        kind: String,
        payload: serde_json::Value,
    },
}

/// Now, to the microsecond: what both databases store, so a replayed line equals the live one.
pub fn timestamp() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}

impl Event {
    /// The topic this event is delivered on, and its sequence number there.
    pub fn topic(&self) -> (Topic, i64) {
        match self {
            Event::Status {
                deployment_id, seq, ..
            }
            | Event::Log {
                deployment_id, seq, ..
            } => (Topic::Deployment(*deployment_id), *seq),
            Event::Runtime {
                project_id, seq, ..
            } => (Topic::ProjectLogs(*project_id), *seq),
            Event::Topic { topic, seq, .. } => (*topic, *seq),
        }
    }
}

/// An event as subscribers receive it: shared, with its wire form rendered once on first use.
pub struct Published {
    pub event: Event,
    pub(super) wire: std::sync::OnceLock<bytestring::ByteString>,
}

impl Published {
    /// The JSON text sent to WebSocket subscribers (cheap to clone: reference-counted).
    pub fn wire(&self) -> bytestring::ByteString {
        self.wire
            .get_or_init(|| wire::event_text(&self.event).into())
            .clone()
    }
}

/// What a topic's receivers get from one publish: one event, or a run of consecutive events
/// of the topic (a persisted batch of build log lines). Its wire form — the event itself, or
/// one `batch` message of them — is rendered once and shared by every subscriber whose cursor
/// is right before it, so fan-out does its rendering work once per batch, not per subscriber.
pub struct Delivery {
    pub events: Vec<Arc<Published>>,
    pub(super) wire: std::sync::OnceLock<bytestring::ByteString>,
}

/// At most this many events, and about this many bytes, go in one delivery.
pub const DELIVERY_EVENTS: usize = 512;
pub const DELIVERY_BYTES: usize = 256 * 1024;

impl Delivery {
    pub fn topic(&self) -> Topic {
        self.events[0].event.topic().0
    }

    pub fn first_seq(&self) -> i64 {
        self.events[0].event.topic().1
    }

    pub fn last_seq(&self) -> i64 {
        self.events[self.events.len() - 1].event.topic().1
    }

    /// True when the seqs run without a gap.
    pub fn contiguous(&self) -> bool {
        let first = self.first_seq();
        self.events
            .iter()
            .enumerate()
            .all(|(i, p)| p.event.topic().1 == first + i as i64)
    }

    /// The message for all of it (shared; cheap to clone).
    pub fn wire(&self) -> bytestring::ByteString {
        self.wire
            .get_or_init(|| {
                if self.events.len() == 1 {
                    self.events[0].wire()
                } else {
                    let parts: Vec<bytestring::ByteString> =
                        self.events.iter().map(|p| p.wire()).collect();
                    wire::batch(&self.topic(), &parts)
                }
            })
            .clone()
    }
}

/// The hub event of a persisted deployment log line (a status line's text read back as its
/// status; one that is not a status is an error naming it).
pub fn log_event(
    deployment_id: Uuid,
    line: crate::db::deployment_logs::LogLine,
) -> Result<Event, crate::model::Unknown> {
    Ok(match line.stream {
        crate::model::LogStream::Status => Event::Status {
            deployment_id,
            seq: line.seq,
            ts: line.ts,
            status: line.line.parse()?,
        },
        stream => Event::Log {
            deployment_id,
            seq: line.seq,
            ts: line.ts,
            stream,
            line: line.line,
        },
    })
}
