//! The hub: in-process pub/sub of everything live. Deployment status changes and log lines
//! are published after they are persisted (so a subscriber can always fill a gap from the
//! database); runtime container logs are followed from Docker only while someone listens and
//! kept in a bounded in-memory buffer. Each topic has its own broadcast channel, created by its
//! first subscriber and dropped with its last. Publishing never blocks: a receiver that falls
//! behind gets `Lagged` and resyncs.

pub mod record;
pub mod runtime;
mod topic;
pub mod wire;

pub use runtime::RuntimeLogs;
pub use topic::Topic;

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

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

/// Topic → its broadcast channel. A channel exists only while someone listens, so publishing
/// to a topic nobody watches costs one map lookup, and a connection wakes only for the topics
/// it subscribed to.
pub struct Hub {
    topics: RwLock<HashMap<Topic, broadcast::Sender<Arc<Published>>>>,
    capacity: usize,
}

impl Hub {
    /// `capacity`: events kept per topic for receivers that are behind; one further behind
    /// gets `Lagged` and resyncs from the source (the database or the runtime buffer).
    pub fn new(capacity: usize) -> Self {
        Self {
            topics: RwLock::default(),
            capacity,
        }
    }

    /// Never blocks; with no subscriber the event is dropped (persisted events stay in the DB).
    pub fn publish(&self, event: Event) {
        let (topic, _) = event.topic();
        let topics = self.topics.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = topics.get(&topic) {
            let _ = sender.send(Arc::new(Published {
                event,
                wire: std::sync::OnceLock::new(),
            }));
        }
    }

    /// A receiver of every event published on `topic` from now on. Drop it, then call
    /// [`Hub::release`], when done.
    pub fn subscribe(&self, topic: Topic) -> broadcast::Receiver<Arc<Published>> {
        let mut topics = self.topics.write().unwrap_or_else(PoisonError::into_inner);
        topics
            .entry(topic)
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe()
    }

    /// Forgets `topic`'s channel (and the events it holds) once its last receiver is dropped.
    pub fn release(&self, topic: Topic) {
        let mut topics = self.topics.write().unwrap_or_else(PoisonError::into_inner);
        if topics.get(&topic).is_some_and(|s| s.receiver_count() == 0) {
            topics.remove(&topic);
        }
    }

    /// Topics with at least one listener.
    pub fn topics_listened(&self) -> usize {
        self.topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(deployment_id: Uuid, seq: i64) -> Event {
        Event::Log {
            deployment_id,
            seq,
            ts: timestamp(),
            stream: "stdout",
            line: format!("line {seq}"),
        }
    }

    #[test]
    fn receivers_get_only_their_topic_and_channels_go_with_the_last_listener() {
        let hub = Hub::new(16);
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        hub.publish(log(a, 1)); // nobody listens: dropped
        let mut rx_a = hub.subscribe(Topic::Deployment(a));
        let mut rx_a2 = hub.subscribe(Topic::Deployment(a));
        let mut rx_b = hub.subscribe(Topic::Deployment(b));
        hub.publish(log(a, 2));
        hub.publish(log(b, 1));
        assert_eq!(rx_a.try_recv().unwrap().event.topic().1, 2);
        assert!(rx_a.try_recv().is_err());
        assert_eq!(rx_a2.try_recv().unwrap().event.topic().1, 2);
        assert_eq!(
            rx_b.try_recv().unwrap().event.topic(),
            (Topic::Deployment(b), 1)
        );
        assert_eq!(hub.topics_listened(), 2);
        drop(rx_a);
        hub.release(Topic::Deployment(a));
        assert_eq!(hub.topics_listened(), 2, "a is still listened to by rx_a2");
        drop(rx_a2);
        hub.release(Topic::Deployment(a));
        drop(rx_b);
        hub.release(Topic::Deployment(b));
        assert_eq!(hub.topics_listened(), 0);
    }

    #[test]
    fn a_receiver_too_far_behind_is_told_it_lagged() {
        let hub = Hub::new(4);
        let d = Uuid::now_v7();
        let mut rx = hub.subscribe(Topic::Deployment(d));
        for seq in 1..=10 {
            hub.publish(log(d, seq));
        }
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(6))
        ));
        assert_eq!(rx.try_recv().unwrap().event.topic().1, 7);
    }
}
