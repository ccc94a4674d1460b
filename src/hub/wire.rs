//! The wire form of topic messages (the WebSocket protocol of api.md): one JSON object per
//! message with `topic`, `seq` and `type`. Live events are rendered once and shared by every
//! subscriber.

use serde_json::{Value, json};

use super::{Event, Topic};
use crate::db::deployment_logs;

/// The message for a live event.
pub fn event_message(event: &Event) -> Value {
    let (topic, seq) = event.topic();
    match event {
        Event::Status { ts, status, .. } => {
            json!({"topic": topic.to_string(), "seq": seq, "type": "status", "ts": ts, "status": status.as_str()})
        }
        Event::Log {
            ts, stream, line, ..
        } => {
            json!({"topic": topic.to_string(), "seq": seq, "type": "log", "ts": ts, "stream": stream, "line": line})
        }
        Event::Runtime {
            ts, stream, line, ..
        } => runtime_message(&topic, seq, *ts, *stream, line),
        Event::Topic {
            ts, kind, payload, ..
        } => topic_message(&topic, seq, *ts, kind, payload.clone()),
    }
}

pub fn persisted_message(topic: &Topic, line: &deployment_logs::LogLine) -> Value {
    if line.stream == crate::model::LogStream::Status {
        json!({"topic": topic.to_string(), "seq": line.seq, "type": "status", "ts": line.ts, "status": line.line})
    } else {
        json!({"topic": topic.to_string(), "seq": line.seq, "type": "log", "ts": line.ts, "stream": line.stream, "line": line.line})
    }
}

pub fn runtime_message(
    topic: &Topic,
    seq: i64,
    ts: chrono::DateTime<chrono::Utc>,
    stream: crate::model::LogStream,
    line: &str,
) -> Value {
    json!({"topic": topic.to_string(), "seq": seq, "type": "log", "ts": ts, "stream": stream, "line": line, "persisted": false})
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
