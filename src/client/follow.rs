//! Following a topic over the WebSocket: a deployment's build log until it ends, or an app's
//! runtime log. A dropped connection is resumed from the last sequence number seen, so no line
//! is lost or printed twice. On a terminal, a spinner (stderr) shows the step and the time.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::ClientError;
use super::api::Api;

/// Statuses after which a deployment changes no more.
pub const FINAL: [&str; 5] = ["live", "failed", "cancelled", "superseded", "stopped"];

/// How many times in a row a lost connection is retried.
const RECONNECTS: u32 = 10;

/// What to print, and where.
pub struct Output {
    json: bool,
    spinner: Option<ProgressBar>,
    /// Lines of the `stderr` stream go to stderr (a command's output, as it printed it).
    split: bool,
}

impl Output {
    pub fn new(json: bool, what: &str) -> Self {
        let spinner = (!json).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message(what.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self {
            json,
            spinner,
            split: false,
        }
    }

    /// A command's output as it printed it: stdout lines to stdout, stderr lines to stderr,
    /// no spinner.
    pub fn streams(json: bool) -> Self {
        Self {
            json,
            spinner: None,
            split: true,
        }
    }

    fn event(&self, event: &Value) {
        if self.json {
            println!("{event}");
            return;
        }
        match event["type"].as_str() {
            Some("log") => {
                let line = event["line"].as_str().unwrap_or_default();
                if self.split && event["stream"] != "stdout" {
                    eprintln!("{line}");
                } else {
                    self.line(line);
                }
            }
            Some("status") => {
                let status = event["status"].as_str().unwrap_or_default();
                if let Some(bar) = &self.spinner {
                    bar.set_message(status.to_string());
                }
            }
            _ => {}
        }
    }

    /// A remark for the person watching (stderr, never in the JSON stream).
    fn note(&self, note: &str) {
        match &self.spinner {
            Some(bar) => bar.suspend(|| eprintln!("{note}")),
            None => eprintln!("{note}"),
        }
    }

    fn line(&self, line: &str) {
        match &self.spinner {
            Some(bar) => bar.suspend(|| println!("{line}")),
            None => println!("{line}"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.spinner {
            bar.finish_and_clear();
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(api: &Api, topic: &str, since: i64) -> Result<Socket, ClientError> {
    let (mut socket, _) = tokio_tungstenite::connect_async(api.ws_url())
        .await
        .map_err(|e| ClientError::Unreachable(format!("cannot open the live log: {e}")))?;
    let send = |v: Value| Message::Text(v.to_string().into());
    let lost = |e: tokio_tungstenite::tungstenite::Error| {
        ClientError::Unreachable(format!("the live log broke off: {e}"))
    };
    socket
        .send(send(json!({"op": "auth", "token": api.token()})))
        .await
        .map_err(lost)?;
    socket
        .send(send(
            json!({"op": "subscribe", "topic": topic, "since": since}),
        ))
        .await
        .map_err(lost)?;
    Ok(socket)
}

/// An `error` message from the server as a client error.
pub(super) fn refusal(v: &Value) -> ClientError {
    let code = v["code"].as_str().unwrap_or("error").to_string();
    let status = match code.as_str() {
        "not_found" => 404,
        "forbidden" => 403,
        "unauthorized" | "session_ended" => 401,
        "conflict" => 409,
        _ => 400,
    };
    ClientError::Api {
        status,
        code,
        message: v["message"].as_str().unwrap_or("refused").to_string(),
    }
}

/// Follows `topic` from `since`, handing every event to `output`, until `done` says the last
/// one ended it (returns it) or, with `idle`, nothing came for that long (returns `None`).
pub async fn follow(
    api: &Api,
    topic: &str,
    output: &Output,
    idle: Option<Duration>,
    done: impl Fn(&Value) -> bool,
) -> Result<Option<Value>, ClientError> {
    let mut last_seq = 0i64;
    let mut failures = 0;
    loop {
        let mut socket = match open(api, topic, last_seq).await {
            Ok(socket) => socket,
            Err(e) if failures < RECONNECTS => {
                failures += 1;
                output.note(&format!("(reconnecting: {})", e.message()));
                tokio::time::sleep(Duration::from_secs(failures.into())).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut quiet_since = Instant::now();
        loop {
            let wait = idle.map_or(Duration::from_secs(3600), |i| {
                i.saturating_sub(quiet_since.elapsed())
            });
            let message = match tokio::time::timeout(wait, socket.next()).await {
                Err(_) if idle.is_some() => return Ok(None),
                Err(_) => continue,
                Ok(Some(Ok(message))) => message,
                Ok(Some(Err(_)) | None) => break,
            };
            let Message::Text(text) = message else {
                continue;
            };
            let Ok(value) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            let events = match value["type"].as_str() {
                Some("batch") => value["events"].as_array().cloned().unwrap_or_default(),
                Some("error") => return Err(refusal(&value)),
                Some("subscribed") => {
                    failures = 0;
                    continue;
                }
                Some("log" | "status") => vec![value],
                _ => continue,
            };
            for event in events {
                let seq = event["seq"].as_i64().unwrap_or(0);
                if seq != 0 && seq <= last_seq {
                    continue; // seen before a reconnect
                }
                last_seq = last_seq.max(seq);
                quiet_since = Instant::now();
                output.event(&event);
                if done(&event) {
                    return Ok(Some(event));
                }
            }
        }
        failures += 1;
        if failures > RECONNECTS {
            return Err(ClientError::Unreachable(
                "the live log keeps breaking off; giving up".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
