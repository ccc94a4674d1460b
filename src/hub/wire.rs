//! The wire form of topic messages (the WebSocket protocol of api.md): one JSON object per
//! message with `topic`, `seq` and `type`. Live events are rendered once and shared by every
//! subscriber.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::{Event, Topic};
use crate::db::deployment_logs;
use crate::model::LogStream;

// Log lines and statuses are most of what the hub sends (a long build log, a replay of one):
// they are written straight from borrowed fields, with their keys in the order every other
// message has them (sorted, as serde_json's map keeps them).

#[derive(Serialize)]
struct LogText<'a> {
    line: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    persisted: Option<bool>,
    seq: i64,
    stream: LogStream,
    topic: &'a str,
    ts: &'a DateTime<Utc>,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct StatusText<'a> {
    seq: i64,
    status: &'a str,
    topic: &'a str,
    ts: &'a DateTime<Utc>,
    #[serde(rename = "type")]
    kind: &'static str,
}

fn render(message: &impl Serialize) -> String {
    serde_json::to_string(message).unwrap_or_default()
}

fn log_text(
    topic: &str,
    seq: i64,
    ts: &DateTime<Utc>,
    stream: LogStream,
    line: &str,
    persisted: bool,
) -> String {
    render(&LogText {
        line,
        persisted: (!persisted).then_some(false),
        seq,
        stream,
        topic,
        ts,
        kind: "log",
    })
}

fn status_text(topic: &str, seq: i64, ts: &DateTime<Utc>, status: &str) -> String {
    render(&StatusText {
        seq,
        status,
        topic,
        ts,
        kind: "status",
    })
}

/// The message for a live event.
pub fn event_text(event: &Event) -> String {
    let (topic, seq) = event.topic();
    let name = topic.to_string();
    match event {
        Event::Status { ts, status, .. } => status_text(&name, seq, ts, status.as_str()),
        Event::Log {
            ts, stream, line, ..
        } => log_text(&name, seq, ts, *stream, line, true),
        Event::Runtime {
            ts, stream, line, ..
        } => log_text(&name, seq, ts, *stream, line, false),
        Event::Topic {
            ts, kind, payload, ..
        } => topic_message(&topic, seq, *ts, kind, payload.clone()).to_string(),
    }
}

/// The message for a line of a deployment's persisted log (`topic` is its name).
pub fn persisted_text(topic: &str, line: &deployment_logs::LogLine) -> String {
    if line.stream == LogStream::Status {
        status_text(topic, line.seq, &line.ts, &line.line)
    } else {
        log_text(topic, line.seq, &line.ts, line.stream, &line.line, true)
    }
}

/// The message for a runtime log line (never persisted).
pub fn runtime_text(
    topic: &Topic,
    seq: i64,
    ts: DateTime<Utc>,
    stream: LogStream,
    line: &str,
) -> String {
    log_text(&topic.to_string(), seq, &ts, stream, line, false)
}

/// A `project:`/`user:`/`system` event: its payload's fields plus topic, seq, type and ts.
pub fn topic_message(
    topic: &Topic,
    seq: i64,
    ts: chrono::DateTime<chrono::Utc>,
    kind: &str,
    payload: Value,
) -> Value {
    let mut message = match payload {
        Value::Object(map) => Value::Object(map),
        other => json!({"data": other}),
    };
    message["topic"] = json!(topic.to_string());
    message["seq"] = json!(seq);
    message["type"] = json!(kind);
    message["ts"] = json!(ts);
    if matches!(topic, Topic::System | Topic::ProjectMetrics(_)) {
        message["persisted"] = json!(false);
    }
    message
}

/// Several rendered events of `topic` as one `batch` message (the elements are the very same
/// objects the single messages carry).
pub fn batch(topic: &Topic, events: &[bytestring::ByteString]) -> bytestring::ByteString {
    let name = topic.to_string();
    let mut text =
        String::with_capacity(events.iter().map(|e| e.len() + 1).sum::<usize>() + name.len() + 48);
    text.push_str("{\"type\":\"batch\",\"topic\":\"");
    text.push_str(&name);
    text.push_str("\",\"events\":[");
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(event);
    }
    text.push_str("]}");
    text.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DeploymentStatus;
    use uuid::Uuid;

    /// The direct renderings say exactly what the generic JSON form of the protocol says.
    #[test]
    fn log_and_status_texts_are_the_json_objects_of_the_protocol() {
        let (deployment, project) = (Uuid::now_v7(), Uuid::now_v7());
        let ts = super::super::timestamp();
        let topic = Topic::Deployment(deployment).to_string();
        let line = "a \"quoted\" line\twith\u{1}control\\ and ünïcode";
        let log = Event::Log {
            deployment_id: deployment,
            seq: 7,
            ts,
            stream: LogStream::Stderr,
            line: line.into(),
        };
        let want = json!({"topic": topic, "seq": 7, "type": "log", "ts": ts, "stream": "stderr", "line": line});
        assert_eq!(event_text(&log), want.to_string());
        let status = Event::Status {
            deployment_id: deployment,
            seq: 8,
            ts,
            status: DeploymentStatus::Live,
        };
        let want = json!({"topic": topic, "seq": 8, "type": "status", "ts": ts, "status": "live"});
        assert_eq!(event_text(&status), want.to_string());
        let runtime = Event::Runtime {
            project_id: project,
            seq: 3,
            ts,
            stream: LogStream::Stdout,
            line: "up".into(),
        };
        let name = Topic::ProjectLogs(project).to_string();
        let want = json!({"topic": name, "seq": 3, "type": "log", "ts": ts, "stream": "stdout", "line": "up", "persisted": false});
        assert_eq!(event_text(&runtime), want.to_string());
        let stored = deployment_logs::LogLine {
            seq: 8,
            ts,
            stream: LogStream::Status,
            line: "live".into(),
        };
        assert_eq!(persisted_text(&topic, &stored), event_text(&status));
    }
}
