//! In-process events: every persisted deployment status change and log line is published here
//! after it is written. Receivers that fall behind get `Lagged` and resync from the database.

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
}

pub struct Hub {
    sender: broadcast::Sender<Event>,
}

impl Hub {
    pub fn new(capacity: usize) -> Self {
        Self {
            sender: broadcast::channel(capacity).0,
        }
    }

    /// Never blocks; with no subscriber the event is dropped (it is already persisted).
    pub fn publish(&self, event: Event) {
        let _ = self.sender.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }
}
