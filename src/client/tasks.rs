//! `shard run`: a one-off command on the server, its output streamed as it printed it, and
//! the command's own exit code as this process's.

use serde_json::{Value, json};

use super::ClientError;
use super::api::Api;
use super::follow::{Output, follow};

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
