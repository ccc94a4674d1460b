//! Runtime logs: one Docker log follower per project while at least one client listens,
//! stopped when the last one leaves. Lines get a per-project sequence number and stay in a
//! bounded buffer, so a subscriber's `since` can be served from memory.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Event, Hub};
use crate::docker::Engine;
pub use crate::docker::LogSource;

/// Lines kept per project for replay.
pub const BUFFER_LINES: usize = 1000;

#[derive(Clone)]
pub struct Line {
    pub seq: i64,
    pub ts: chrono::DateTime<Utc>,
    pub stream: crate::model::LogStream,
    pub line: String,
}

struct Follower {
    subscribers: usize,
    cancel: CancellationToken,
    buffer: Arc<Mutex<(i64, VecDeque<Line>)>>,
}

pub struct RuntimeLogs {
    followers: Mutex<HashMap<Uuid, Follower>>,
    /// Longer container output lines are cut.
    max_line: usize,
    engine: Arc<Engine>,
    hub: Arc<Hub>,
}

/// `text` with every secret in `masks` replaced by asterisks.
fn mask(mut text: String, masks: &[String]) -> String {
    for secret in masks {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), "********");
        }
    }
    text
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl RuntimeLogs {
    pub fn new(max_line: usize, engine: Arc<Engine>, hub: Arc<Hub>) -> Self {
        Self {
            followers: Mutex::default(),
            max_line,
            engine,
            hub,
        }
    }

    /// Adds a subscriber to `project`'s logs, starting a follower of `source` if none runs;
    /// every occurrence of a value in `masks` (the project's secrets) is replaced.
    pub fn subscribe(&self, project: Uuid, source: LogSource, masks: Vec<String>) {
        let (engine, hub) = (self.engine.clone(), self.hub.clone());
        let mut followers = lock(&self.followers);
        if let Some(f) = followers.get_mut(&project) {
            f.subscribers += 1;
            return;
        }
        let cancel = CancellationToken::new();
        let buffer = Arc::new(Mutex::new((0i64, VecDeque::with_capacity(BUFFER_LINES))));
        let (task_cancel, task_buffer, max_line) = (cancel.clone(), buffer.clone(), self.max_line);
        tokio::spawn(async move {
            let follow = engine.follow_logs(&source, 100, max_line, |stream, text| {
                let text = mask(text, &masks);
                let mut guard = lock(&task_buffer);
                guard.0 += 1;
                let line = Line {
                    seq: guard.0,
                    ts: Utc::now(),
                    stream,
                    line: text,
                };
                if guard.1.len() == BUFFER_LINES {
                    guard.1.pop_front();
                }
                guard.1.push_back(line.clone());
                drop(guard);
                hub.publish(Event::Runtime {
                    project_id: project,
                    seq: line.seq,
                    ts: line.ts,
                    stream,
                    line: line.line,
                });
            });
            tokio::select! {
                result = follow => if let Err(e) = result { tracing::debug!(error = %e, "runtime log follower ended") },
                _ = task_cancel.cancelled() => {}
            }
        });
        followers.insert(
            project,
            Follower {
                subscribers: 1,
                cancel,
                buffer,
            },
        );
    }

    /// Removes a subscriber; the follower stops with the last one.
    pub fn unsubscribe(&self, project: Uuid) {
        let mut followers = lock(&self.followers);
        if let Some(f) = followers.get_mut(&project) {
            f.subscribers -= 1;
            if f.subscribers == 0 {
                f.cancel.cancel();
                followers.remove(&project);
            }
        }
    }

    /// Buffered lines after `since`, and the last seq.
    pub fn since(&self, project: Uuid, since: i64) -> (Vec<Line>, i64) {
        let followers = lock(&self.followers);
        let Some(f) = followers.get(&project) else {
            return (Vec::new(), 0);
        };
        let guard = lock(&f.buffer);
        (
            guard.1.iter().filter(|l| l.seq > since).cloned().collect(),
            guard.0,
        )
    }

    /// Projects being followed now (for tests and the system topic).
    pub fn active(&self) -> usize {
        lock(&self.followers).len()
    }
}
