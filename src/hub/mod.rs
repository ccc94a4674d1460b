//! The hub: in-process pub/sub of everything live. Deployment status changes and log lines
//! are published after they are persisted (so a subscriber can always fill a gap from the
//! database); runtime container logs are followed from Docker only while someone listens and
//! kept in a bounded in-memory buffer. Each topic has its own broadcast channel, created by its
//! first subscriber and dropped with its last. Publishing never blocks: a receiver that falls
//! behind gets `Lagged` and resyncs.
//!
//! # Live hub (WebSocket)
//!
//! `/api/v1/ws` authenticates with a first `{"op":"auth"}` message or the refresh cookie (checked,
//! not rotated). Topics and where their messages come from:
//!
//! | topic | persisted in | replay with `since` |
//! |---|---|---|
//! | `deployment:<id>` | `deployment_logs` (lines and status rows, one seq space) | from the DB |
//! | `project:<id>` | `topic_events` (deployment status, container start/stop/restart) | from the DB |
//! | `user:<id>` | `topic_events` (deploy succeeded / failed notifications) | from the DB |
//! | `project:<id>:logs` | not persisted (`"persisted": false`); last 1,000 lines in memory | from the buffer |
//! | `system` (admins) | not persisted; a snapshot every 5 s | live only |
//! | `project:<id>:metrics` | not persisted (`"persisted": false`); the samples are in `metrics_samples`, read through `GET /projects/{id}/metrics` | live only |
//!
//! Every message is written before it is published. A connection subscribes to the hub before it
//! reads the backlog and keeps a cursor (last seq sent) per topic: older events are dropped as
//! duplicates, a jump ahead is filled from the source first, and a `Lagged` receiver (the client
//! read too slowly and the bounded channel moved on) gets a `lagged` message and a resync from its
//! cursor. A topic's channel exists only while it has listeners (created by the first subscriber,
//! dropped with the last), so a connection wakes only for its own topics and publishing to an
//! unwatched topic is one map lookup. Resyncs are served from the topic's recent ring (for build logs up to 65,536 events and
//! about 16 MiB, for quiet topics 256 events; pointers to the shared events; runtime logs use
//! their own 1,000-line buffer) when it
//! still covers the cursor without a gap; otherwise the database pages until the cursor reaches the
//! ring. A crowd of slow clients thus does not turn into a crowd of database replays.
//! Runtime-log numbering lives only in memory and restarts with each follower (and with shard):
//! a subscriber whose `since` is past the current last line gets a `notice` and restarts from the
//! buffer, instead of a cursor that would hold back every new line. Sends have a timeout (30 s: a peer
//! that stopped reading is closed); pings every 15 s; a connection that neither sent a frame nor
//! took one of our messages for 60 s, or is unauthenticated after 10 s, is closed (a client far
//! behind on a busy log answers pings late but is still reading). Subscriptions are authorized through `access` on subscribe and again on
//! every ping tick (a deleted or re-owned project ends them), and so is the credential: a login
//! that was signed out or revoked, or a deleted API token, ends the connection (`session_ended`) —
//! at once when the revocation happened in this process (it is broadcast), else at the next tick;
//! an access token that expired drops the subscriptions and asks for a fresh `{"op":"auth"}`.
//! A WebSocket authenticated by the cookie must come from the dashboard's origin (checked at the
//! handshake). Limits: 50 subscriptions and 16 KiB frames per connection.
//!
//! Delivery is batched, and the batching is done once, not per subscriber: the log writer
//! gathers lines for 20 ms after the first one, then publishes each persisted batch as one hub
//! `Delivery` (at most 512 events or about 256 KiB), whose message `{"type":"batch","topic":…,"events":[…]}` is rendered once and shared
//! (reference-counted bytes) by every subscriber whose cursor is right before it — the common case.
//! A subscriber elsewhere (catching up, or after a gap) takes the delivery's events one by one
//! through its cursor; a connection handles every hub delivery already waiting (up to 1,024) before
//! it writes, and consecutive single events of one topic, and replays from the database, leave as
//! batch messages too. A lone event goes out as itself. The elements of a batch are exactly the
//! objects single messages carry.
//!
//! Several instances on one Postgres: an instance announces each run of persisted events it
//! publishes (`NOTIFY shard_hub` with the topic and the seq range); an instance with listeners on
//! that topic reads the range back from the database and publishes it locally
//! (`hub::relay`), so a subscriber on B sees a deploy run by A. Live-only topics stay with
//! the instance that produces them (the leader's metrics samples, each instance's own system
//! snapshot and runtime-log followers).

mod announce;
mod event;
pub mod record;
pub mod relay;
pub mod replay;
pub mod runtime;
mod topic;
pub mod wire;

pub use runtime::RuntimeLogs;
pub use topic::Topic;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

pub use announce::Announcement;
use announce::announce;
pub use event::{
    DELIVERY_BYTES, DELIVERY_EVENTS, Delivery, Event, Published, log_event, timestamp,
};

use tokio::sync::broadcast;

/// Events buffered per busy topic (deployment build logs, runtime logs) in the broadcast
/// channel; a receiver further behind gets `Lagged` and resyncs.
pub const BUSY_TOPIC_EVENTS: usize = 4096;
/// The recent ring a lagged receiver of a build log resyncs from before it falls back to the
/// database: at most this many events and about [`BUSY_TOPIC_RECENT_BYTES`] of them. The ring
/// holds pointers; the events are the ones every subscriber shares.
pub const BUSY_TOPIC_RECENT: usize = 65536;
pub const BUSY_TOPIC_RECENT_BYTES: usize = 16 << 20;
/// The same for quiet topics (project status, notifications, system).
const QUIET_TOPIC_EVENTS: usize = 64;
const QUIET_TOPIC_RECENT: usize = 256;
const QUIET_TOPIC_RECENT_BYTES: usize = 256 << 10;

/// Roughly what an event and its rendered message occupy, for the ring's byte budget.
fn footprint(event: &Event) -> usize {
    let text = match event {
        Event::Log { line, .. } | Event::Runtime { line, .. } => line.len(),
        Event::Status { status, .. } => status.as_str().len(),
        Event::Topic { payload, .. } => match payload {
            serde_json::Value::Object(map) => map.len() * 32,
            _ => 32,
        },
    };
    // The event, the Arc and OnceLock around it, and the JSON message (text plus framing).
    2 * text + 320
}

struct Recent {
    events: VecDeque<Arc<Published>>,
    bytes: usize,
}

struct Channel {
    sender: broadcast::Sender<Arc<Delivery>>,
    /// The newest events in seq order, within `keep` events and `keep_bytes`.
    recent: Mutex<Recent>,
    keep: usize,
    keep_bytes: usize,
}

/// Puts an event in its topic's recent ring (kept in seq order, within the ring's bounds);
/// false for a persisted event the ring already holds (an upgrade's tail relaying an event
/// published here: it is not delivered again). Live-only topics' numbering may restart.
fn remember(channel: &Channel, published: &Arc<Published>) -> bool {
    let mut recent = channel
        .recent
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    // Kept in seq order: concurrent publishers of a quiet topic may hand events over out of
    // order (a busy topic has one publisher, so this is a push at the back).
    let seq = published.event.topic().1;
    let at = recent
        .events
        .iter()
        .rposition(|p| p.event.topic().1 <= seq)
        .map_or(0, |i| i + 1);
    if at > 0
        && recent.events[at - 1].event.topic().1 == seq
        && replay::is_persisted(published.event.topic().0)
    {
        return false;
    }
    recent.bytes += footprint(&published.event);
    recent.events.insert(at, published.clone());
    while recent.events.len() > channel.keep || recent.bytes > channel.keep_bytes {
        match recent.events.pop_front() {
            Some(old) => recent.bytes -= footprint(&old.event),
            None => break,
        }
    }
    true
}

fn send(channel: &Channel, events: Vec<Arc<Published>>) {
    if events.is_empty() {
        return;
    }
    // The ring's lock also serializes the broadcast sends of concurrent publishers.
    let _order = channel
        .recent
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let _ = channel.sender.send(Arc::new(Delivery {
        events,
        wire: std::sync::OnceLock::new(),
    }));
}

/// Topic → its channel. A channel exists only while someone listens, so publishing to a topic
/// nobody watches costs one map lookup, and a connection wakes only for the topics it
/// subscribed to.
#[derive(Default)]
pub struct Hub {
    topics: RwLock<HashMap<Topic, Channel>>,
    /// Where events just published are announced to other instances (`hub::relay`);
    /// unset with one instance.
    outbox: std::sync::OnceLock<tokio::sync::mpsc::Sender<Announcement>>,
}

impl Hub {
    pub fn new() -> Self {
        Self::default()
    }

    /// Never blocks; with no subscriber the event is dropped (persisted events stay in the DB).
    pub fn publish(&self, event: Event) {
        self.publish_all(vec![event]);
    }

    /// Announces this instance's persisted events to the others from now on.
    pub fn announce_to(&self, outbox: tokio::sync::mpsc::Sender<Announcement>) {
        let _ = self.outbox.set(outbox);
    }

    /// Publishes events in seq order; consecutive events of one topic reach receivers as one
    /// `Delivery` (split at `DELIVERY_EVENTS` / `DELIVERY_BYTES`). Persisted ones are also
    /// announced to other instances, listened to here or not.
    pub fn publish_all(&self, events: Vec<Event>) {
        if let Some(outbox) = self.outbox.get() {
            announce(outbox, &events);
        }
        self.deliver(events);
    }

    /// Publishes events another instance announced (read back from the database).
    pub fn publish_relayed(&self, events: Vec<Event>) {
        self.deliver(events);
    }

    /// Whether anyone here listens to `topic`.
    pub fn is_listened(&self, topic: Topic) -> bool {
        self.topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&topic)
    }

    fn deliver(&self, events: Vec<Event>) {
        let topics = self.topics.read().unwrap_or_else(PoisonError::into_inner);
        let mut run: Vec<Arc<Published>> = Vec::new();
        let mut run_bytes = 0;
        let mut run_topic = None;
        for event in events {
            let (topic, _) = event.topic();
            let Some(channel) = topics.get(&topic) else {
                continue;
            };
            if run_topic != Some(topic)
                || run.len() >= DELIVERY_EVENTS
                || run_bytes >= DELIVERY_BYTES
            {
                if let Some(previous) = run_topic.and_then(|t| topics.get(&t)) {
                    send(previous, std::mem::take(&mut run));
                }
                run.clear();
                run_bytes = 0;
                run_topic = Some(topic);
            }
            let bytes = footprint(&event);
            let published = Arc::new(Published {
                event,
                wire: std::sync::OnceLock::new(),
            });
            if !remember(channel, &published) {
                continue;
            }
            run_bytes += bytes;
            run.push(published);
        }
        if let Some(channel) = run_topic.and_then(|t| topics.get(&t)) {
            send(channel, run);
        }
    }

    /// A receiver of every event published on `topic` from now on. Drop it, then call
    /// [`Hub::release`], when done.
    pub fn subscribe(&self, topic: Topic) -> broadcast::Receiver<Arc<Delivery>> {
        let mut topics = self.topics.write().unwrap_or_else(PoisonError::into_inner);
        topics
            .entry(topic)
            .or_insert_with(|| {
                let (capacity, keep, keep_bytes) = match topic {
                    Topic::Deployment(_) => (
                        BUSY_TOPIC_EVENTS,
                        BUSY_TOPIC_RECENT,
                        BUSY_TOPIC_RECENT_BYTES,
                    ),
                    // Runtime logs resync from their own buffer (`RuntimeLogs`): no ring.
                    Topic::ProjectLogs(_) => (BUSY_TOPIC_EVENTS, 0, 0),
                    _ => (
                        QUIET_TOPIC_EVENTS,
                        QUIET_TOPIC_RECENT,
                        QUIET_TOPIC_RECENT_BYTES,
                    ),
                };
                Channel {
                    sender: broadcast::channel(capacity).0,
                    recent: Mutex::new(Recent {
                        events: VecDeque::new(),
                        bytes: 0,
                    }),
                    keep,
                    keep_bytes,
                }
            })
            .sender
            .subscribe()
    }

    /// Forgets `topic`'s channel (and the events it holds) once its last receiver is dropped.
    /// A busy topic's ring held many small blocks: the allocator is asked to give them back.
    pub fn release(&self, topic: Topic) {
        let mut topics = self.topics.write().unwrap_or_else(PoisonError::into_inner);
        if topics
            .get(&topic)
            .is_some_and(|c| c.sender.receiver_count() == 0)
            && let Some(channel) = topics.remove(&topic)
            && channel.keep == BUSY_TOPIC_RECENT
        {
            drop(topics);
            drop(channel);
            shard_malloc::release_soon();
        }
    }

    /// Every event of `topic` after seq `after`, in order, when the recent ring still holds
    /// all of them without a gap; `None` when the caller must read its source instead.
    pub fn recent_since(&self, topic: Topic, after: i64) -> Option<Vec<Arc<Published>>> {
        let topics = self.topics.read().unwrap_or_else(PoisonError::into_inner);
        let channel = topics.get(&topic)?;
        let (oldest, events) = {
            let recent = channel
                .recent
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let oldest = recent.events.front()?.event.topic().1;
            let start = recent
                .events
                .partition_point(|p| p.event.topic().1 <= after);
            let events: Vec<Arc<Published>> = recent.events.range(start..).cloned().collect();
            (oldest, events)
        };
        drop(topics);
        if oldest > after + 1 {
            // The ring starts after the cursor: what lies between is only in the source.
            return None;
        }
        // A seq never published here (a failed write) leaves a gap only the source can fill.
        let contiguous = events
            .iter()
            .enumerate()
            .all(|(i, p)| p.event.topic().1 == after + 1 + i as i64);
        contiguous.then_some(events)
    }

    /// Subscriptions open across all topics.
    pub fn subscribers(&self) -> usize {
        self.topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|c| c.sender.receiver_count())
            .sum()
    }

    /// The persisted topics someone here listens to.
    pub fn persisted_listened(&self) -> Vec<Topic> {
        self.topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .copied()
            .filter(|t| replay::is_persisted(*t))
            .collect()
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
    use uuid::Uuid;

    fn log(deployment_id: Uuid, seq: i64) -> Event {
        Event::Log {
            deployment_id,
            seq,
            ts: timestamp(),
            stream: crate::model::LogStream::Stdout,
            line: format!("line {seq}"),
        }
    }

    #[test]
    fn receivers_get_only_their_topic_and_channels_go_with_the_last_listener() {
        let hub = Hub::new();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        hub.publish(log(a, 1)); // nobody listens: dropped
        let mut rx_a = hub.subscribe(Topic::Deployment(a));
        let mut rx_a2 = hub.subscribe(Topic::Deployment(a));
        let mut rx_b = hub.subscribe(Topic::Deployment(b));
        hub.publish(log(a, 2));
        hub.publish(log(b, 1));
        assert_eq!(rx_a.try_recv().unwrap().first_seq(), 2);
        assert!(rx_a.try_recv().is_err());
        assert_eq!(rx_a2.try_recv().unwrap().first_seq(), 2);
        let for_b = rx_b.try_recv().unwrap();
        assert_eq!(
            (for_b.topic(), for_b.first_seq()),
            (Topic::Deployment(b), 1)
        );
        // A run of events reaches receivers as one delivery with one shared message.
        hub.publish_all((3..=5).map(|seq| log(a, seq)).collect());
        let run = rx_a2.try_recv().unwrap();
        assert_eq!(
            (run.first_seq(), run.last_seq(), run.contiguous()),
            (3, 5, true)
        );
        let text = run.wire();
        assert!(text.starts_with("{\"type\":\"batch\""), "{text}");
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["events"].as_array().unwrap().len(), 3);
        assert_eq!(parsed["events"][0]["seq"], 3);
        assert!(
            std::ptr::eq(text.as_ptr(), run.wire().as_ptr()),
            "rendered once"
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
    fn a_persisted_event_relayed_again_is_neither_kept_nor_delivered_twice() {
        let hub = Hub::new();
        let d = Uuid::now_v7();
        let mut rx = hub.subscribe(Topic::Deployment(d));
        hub.publish_all(vec![log(d, 1), log(d, 2)]);
        // An upgrade's tail reads 2 and 3 back from the database: only 3 is new.
        hub.publish_relayed(vec![log(d, 2), log(d, 3)]);
        let first = rx.try_recv().unwrap();
        assert_eq!((first.first_seq(), first.events.len()), (1, 2));
        let second = rx.try_recv().unwrap();
        assert_eq!((second.first_seq(), second.events.len()), (3, 1));
        hub.publish_relayed(vec![log(d, 3)]);
        assert!(rx.try_recv().is_err());
        let ring: Vec<i64> = hub
            .recent_since(Topic::Deployment(d), 0)
            .unwrap()
            .iter()
            .map(|p| p.event.topic().1)
            .collect();
        assert_eq!(ring, vec![1, 2, 3]);
        // A live-only topic's numbering may restart: the same seq is delivered again.
        let m = Uuid::now_v7();
        let mut rx = hub.subscribe(Topic::ProjectMetrics(m));
        for _ in 0..2 {
            hub.publish(Event::Topic {
                topic: Topic::ProjectMetrics(m),
                seq: 1,
                ts: timestamp(),
                kind: "metrics".into(),
                payload: serde_json::Value::Null,
            });
        }
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_ok());
    }

    #[test]
    fn a_receiver_too_far_behind_is_told_it_lagged_and_the_ring_fills_the_gap() {
        let hub = Hub::new();
        let d = Uuid::now_v7();
        let mut rx = hub.subscribe(Topic::Deployment(d));
        let total = (BUSY_TOPIC_EVENTS + 10) as i64;
        for seq in 1..=total {
            hub.publish(log(d, seq));
        }
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(10))
        ));
        let resync = hub.recent_since(Topic::Deployment(d), 3).unwrap();
        assert_eq!(resync.len(), (total - 3) as usize);
        assert_eq!(resync[0].event.topic().1, 4);
        assert!(
            hub.recent_since(Topic::Deployment(d), total)
                .unwrap()
                .is_empty()
        );
        // Past what the ring keeps: the caller must go to the database.
        let last = BUSY_TOPIC_RECENT as i64 + 10;
        for seq in total + 1..=last {
            hub.publish(log(d, seq));
        }
        assert!(hub.recent_since(Topic::Deployment(d), 3).is_none());
        assert_eq!(
            hub.recent_since(Topic::Deployment(d), last - 100)
                .unwrap()
                .len(),
            100
        );
        // Long lines: the byte budget bounds the ring before the event count does.
        let big = Uuid::now_v7();
        let _rx = hub.subscribe(Topic::Deployment(big));
        for seq in 1..=1000 {
            hub.publish(Event::Log {
                deployment_id: big,
                seq,
                ts: timestamp(),
                stream: crate::model::LogStream::Stdout,
                line: "x".repeat(64 << 10),
            });
        }
        let kept = (BUSY_TOPIC_RECENT_BYTES / (2 * (64 << 10) + 320)) as i64;
        assert!(
            hub.recent_since(Topic::Deployment(big), 1000 - kept - 1)
                .is_none()
        );
        assert_eq!(
            hub.recent_since(Topic::Deployment(big), 1000 - kept)
                .unwrap()
                .len() as i64,
            kept
        );
        // A gap (an event never published here) also sends the caller to the source.
        let p = Uuid::now_v7();
        let _rx = hub.subscribe(Topic::Deployment(p));
        hub.publish(log(p, 1));
        hub.publish(log(p, 3));
        assert!(hub.recent_since(Topic::Deployment(p), 0).is_none());
        assert_eq!(hub.recent_since(Topic::Deployment(p), 2).unwrap().len(), 1);
        // Two publishers that hand over 5 before 4: the ring still serves both in order.
        let r = Uuid::now_v7();
        let _rx = hub.subscribe(Topic::Deployment(r));
        for seq in [1, 2, 3, 5, 4, 6] {
            hub.publish(log(r, seq));
        }
        let seqs = |after| {
            hub.recent_since(Topic::Deployment(r), after)
                .unwrap()
                .iter()
                .map(|p| p.event.topic().1)
                .collect::<Vec<_>>()
        };
        assert_eq!(seqs(3), vec![4, 5, 6]);
        assert_eq!(seqs(4), vec![5, 6]);
        // Unknown topic, or a ring that starts after the cursor: nothing to serve from memory.
        assert!(hub.recent_since(Topic::User(p), 0).is_none());
        let q = Uuid::now_v7();
        let _rx = hub.subscribe(Topic::Deployment(q));
        assert!(hub.recent_since(Topic::Deployment(q), 0).is_none());
        hub.publish(log(q, 101));
        assert!(hub.recent_since(Topic::Deployment(q), 0).is_none());
        assert_eq!(
            hub.recent_since(Topic::Deployment(q), 100).unwrap().len(),
            1
        );
        assert!(
            hub.recent_since(Topic::Deployment(q), 101)
                .unwrap()
                .is_empty()
        );
    }
}
