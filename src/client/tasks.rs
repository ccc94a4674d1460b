//! `shard run`: a one-off command on the server, its output streamed as it printed it, and
//! the command's own exit code as this process's.

use serde_json::{Value, json};

use super::ClientError;
use super::api::Api;
use super::follow::{Output, follow};

fn text(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

async fn project_id(api: &Api, project: &str) -> Result<String, ClientError> {
    let project = api.project(project).await?;
    project["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| ClientError::Unreachable("a project without an id".into()))
}

/// `shard jobs PROJECT [--run NAME]`.
pub async fn jobs(
    api: &Api,
    project: &str,
    run: Option<String>,
    json: bool,
) -> Result<(), ClientError> {
    let id = project_id(api, project).await?;
    if let Some(name) = run {
        let started: Value = api
            .post(&format!("/projects/{id}/jobs/{name}/run"), &json!({}))
            .await?;
        let run = text(&started, "id");
        return follow_run(api, &run, json).await;
    }
    let list: Vec<Value> = api.get(&format!("/projects/{id}/jobs")).await?;
    if json {
        println!("{}", Value::Array(list));
        return Ok(());
    }
    if list.is_empty() {
        println!("no scheduled jobs");
        return Ok(());
    }
    println!(
        "{:20}  {:16}  {:10}  {:25}  COMMAND",
        "NAME", "SCHEDULE", "LAST", "NEXT RUN"
    );
    for job in &list {
        let command: Vec<String> = job["command"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|w| w.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "{:20}  {:16}  {:10}  {:25}  {}",
            text(job, "name"),
            text(job, "schedule"),
            job["last_run"]["status"].as_str().unwrap_or("never"),
            text(job, "next_run_at"),
            command.join(" ")
        );
    }
    Ok(())
}

/// `shard previews PROJECT`.
pub async fn previews(api: &Api, project: &str, json: bool) -> Result<(), ClientError> {
    let id = project_id(api, project).await?;
    let list: Vec<Value> = api.get(&format!("/projects/{id}/previews")).await?;
    if json {
        println!("{}", Value::Array(list));
        return Ok(());
    }
    if list.is_empty() {
        println!("no previews");
        return Ok(());
    }
    println!("{:6}  {:18}  {:8}  URL", "PR", "STATE", "COMMIT");
    for p in &list {
        println!(
            "{:6}  {:18}  {:8}  {}",
            format!("#{}", text(p, "pr_number")),
            text(p, "state"),
            text(p, "head_sha").chars().take(7).collect::<String>(),
            text(p, "url")
        );
    }
    Ok(())
}

pub async fn run(
    api: &Api,
    project: &str,
    command: Vec<String>,
    timeout: Option<u64>,
    json: bool,
) -> Result<(), ClientError> {
    let project = api.project(project).await?;
    let id = project["id"]
        .as_str()
        .ok_or_else(|| ClientError::Unreachable("a project without an id".into()))?;
    let mut body = json!({ "command": command });
    if let Some(timeout) = timeout {
        body["timeout_secs"] = json!(timeout);
    }
    let started: Value = api.post(&format!("/projects/{id}/runs"), &body).await?;
    let run = started["id"].as_str().unwrap_or_default().to_string();
    follow_run(api, &run, json).await
}

/// Streams a run's output to its end; its exit code as the error.
async fn follow_run(api: &Api, run: &str, json: bool) -> Result<(), ClientError> {
    let output = Output::streams(json);
    let ended = follow(api, &format!("run:{run}"), &output, None, |event| {
        event["type"] == "status"
    })
    .await?;
    let ended = ended.unwrap_or_default();
    match (ended["status"].as_str(), ended["exit_code"].as_i64()) {
        (Some("succeeded"), _) => Ok(()),
        (_, Some(code)) if (1..=255).contains(&code) => {
            let why = ended["error"].as_str().unwrap_or_default().to_string();
            Err(ClientError::Exited(code as u8, why))
        }
        _ => Err(ClientError::Exited(
            1,
            ended["error"]
                .as_str()
                .unwrap_or("the command failed")
                .to_string(),
        )),
    }
}

/// The terminal's settings, put back when dropped.
struct RawMode {
    before: Option<rustix::termios::Termios>,
}

impl RawMode {
    /// Raw mode on stdin when it is a terminal (keystrokes go to the remote shell as typed).
    fn enter() -> Self {
        use rustix::termios::{OptionalActions, isatty, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        if !isatty(&stdin) {
            return Self { before: None };
        }
        let Ok(before) = tcgetattr(&stdin) else {
            return Self { before: None };
        };
        let mut raw = before.clone();
        raw.make_raw();
        if tcsetattr(&stdin, OptionalActions::Now, &raw).is_err() {
            return Self { before: None };
        }
        Self {
            before: Some(before),
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(before) = &self.before {
            let _ = rustix::termios::tcsetattr(
                std::io::stdin(),
                rustix::termios::OptionalActions::Now,
                before,
            );
        }
    }
}

fn window_size() -> (u16, u16) {
    match rustix::termios::tcgetwinsize(std::io::stdout()) {
        Ok(size) if size.ws_col > 0 && size.ws_row > 0 => (size.ws_col, size.ws_row),
        _ => (80, 24),
    }
}

/// `shard exec PROJECT`: a terminal in the app, until its shell exits.
pub async fn exec(
    api: &Api,
    project: &str,
    fresh: bool,
    shell: Option<String>,
) -> Result<(), ClientError> {
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::Message;
    let project = api.project(project).await?;
    let id = project["id"]
        .as_str()
        .ok_or_else(|| ClientError::Unreachable("a project without an id".into()))?;
    let (cols, rows) = window_size();
    let mut path = format!("/api/v1/projects/{id}/exec?cols={cols}&rows={rows}&fresh={fresh}");
    if let Some(shell) = shell {
        path.push_str("&shell=");
        path.push_str(
            &percent_encoding::utf8_percent_encode(&shell, percent_encoding::NON_ALPHANUMERIC)
                .to_string(),
        );
    }
    let (mut socket, _) = tokio_tungstenite::connect_async(api.ws_path(&path))
        .await
        .map_err(|e| ClientError::Unreachable(format!("cannot open the terminal: {e}")))?;
    let auth = json!({"op": "auth", "token": api.token()}).to_string();
    let lost = |e: tokio_tungstenite::tungstenite::Error| {
        ClientError::Unreachable(format!("the terminal broke off: {e}"))
    };
    socket
        .send(Message::Text(auth.into()))
        .await
        .map_err(lost)?;
    let raw = RawMode::enter();
    let mut stdin = tokio::io::stdin();
    let mut stdout = tokio::io::stdout();
    let mut resized = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        .map_err(|e| ClientError::Unreachable(format!("cannot watch the window size: {e}")))?;
    let mut buf = vec![0u8; 4096];
    let mut stdin_open = true;
    let outcome = loop {
        tokio::select! {
            read = stdin.read(&mut buf), if stdin_open => match read {
                Ok(0) | Err(_) => {
                    // Input ended (a pipe): the shell sees end of input.
                    stdin_open = false;
                    let _ = socket.send(Message::Binary(vec![4u8].into())).await;
                }
                Ok(n) => socket.send(Message::Binary(buf[..n].to_vec().into())).await.map_err(lost)?,
            },
            _ = resized.recv() => {
                let (cols, rows) = window_size();
                let resize = json!({"op": "resize", "cols": cols, "rows": rows}).to_string();
                socket.send(Message::Text(resize.into())).await.map_err(lost)?;
            }
            message = socket.next() => match message {
                Some(Ok(Message::Binary(bytes))) => {
                    let _ = stdout.write_all(&bytes).await;
                    let _ = stdout.flush().await;
                }
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(&text).unwrap_or_default();
                    match value["type"].as_str() {
                        Some("exit") => break Ok(value["exit_code"].as_i64()),
                        Some("error") => break Err(super::follow::refusal(&value)),
                        _ => {}
                    }
                }
                Some(Ok(Message::Close(_))) | None => break Ok(None),
                Some(Ok(_)) => {}
                Some(Err(e)) => break Err(lost(e)),
            },
        }
    };
    drop(raw);
    match outcome? {
        Some(0) | None => Ok(()),
        Some(code) => Err(ClientError::Exited(code.clamp(1, 255) as u8, String::new())),
    }
}
