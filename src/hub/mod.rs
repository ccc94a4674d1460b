//! The hub: in-process pub/sub of everything live. Deployment status changes and log lines
//! are published after they are persisted (so a subscriber can always fill a gap from the
//! database); runtime container logs are followed from Docker only while someone listens and
//! kept in a bounded in-memory buffer. Publishing never blocks: a receiver that falls behind
//! gets `Lagged` and resyncs.

pub mod record;
pub mod runtime;
mod topic;
pub mod wire;

pub use runtime::RuntimeLogs;
pub use topic::Topic;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub enum Event {
    /// A deployment changed status (`seq` is its position in the deployment's log).
    Status {
        project_id: Uuid,
        deployment_id: Uuid,
        seq: i64,
        ts: DateTime<Utc>,
        status: String,
    },
    /// A persisted line of a deployment's log.
    Log {
        deployment_id: Uuid,
        seq: i64,
        ts: DateTime<Utc>,
        stream: &'static str,
        line: String,
    },
    /// A line of a project's running container (not persisted).
    Runtime {
        project_id: Uuid,
        seq: i64,
        ts: DateTime<Utc>,
        stream: &'static str,
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
    wire: std::sync::OnceLock<bytestring::ByteString>,
}

impl Published {
    /// The JSON text sent to WebSocket subscribers (cheap to clone: reference-counted).
    pub fn wire(&self) -> bytestring::ByteString {
        self.wire
            .get_or_init(|| wire::event_message(&self.event).to_string().into())
            .clone()
    }
}

pub struct Hub {
    sender: broadcast::Sender<std::sync::Arc<Published>>,
}

impl Hub {
    pub fn new(capacity: usize) -> Self {
        Self {
            sender: broadcast::channel(capacity).0,
        }
    }

    /// Never blocks; with no subscriber the event is dropped (persisted events stay in the DB).
    pub fn publish(&self, event: Event) {
        let _ = self.sender.send(std::sync::Arc::new(Published {
            event,
            wire: std::sync::OnceLock::new(),
        }));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<std::sync::Arc<Published>> {
        self.sender.subscribe()
    }
}
