//! `shard db`: one-click databases from the command line.

use std::time::Duration;

use serde_json::{Value, json};

use super::ClientError;
use super::api::Api;
use crate::cli::DbCommand;

/// How long a restore may take before the command gives up waiting (it goes on on the server).
const RESTORE_WAIT: Duration = Duration::from_secs(3600);

pub async fn run(api: &Api, command: DbCommand, json: bool) -> Result<(), ClientError> {
    match command {
        DbCommand::Restore {
            database,
            backup,
            new,
        } => restore(api, &database, &backup, new, json).await,
    }
}

/// The database named `name_or_id` among those the token sees.
async fn database(api: &Api, name_or_id: &str) -> Result<Value, ClientError> {
    let list: Vec<Value> = api.get("/databases").await?;
    let wanted = name_or_id.trim();
    list.into_iter()
        .find(|d| {
            ["id", "name"].iter().any(|k| {
                d[k].as_str()
                    .is_some_and(|v| v.eq_ignore_ascii_case(wanted))
            })
        })
        .ok_or_else(|| ClientError::Api {
            status: 404,
            code: "not_found".into(),
            message: format!("no database '{wanted}'"),
        })
}

async fn restore(
    api: &Api,
    name_or_id: &str,
    backup: &str,
    new: bool,
    json: bool,
) -> Result<(), ClientError> {
    let source = database(api, name_or_id).await?;
    let id = source["id"].as_str().unwrap_or_default().to_string();
    // The backup must be this database's: a typo must not restore another one's data here.
    let backups: Vec<Value> = api.get(&format!("/databases/{id}/backups")).await?;
    if !backups
        .iter()
        .any(|b| b["id"].as_str() == Some(backup.trim()))
    {
        return Err(ClientError::Usage(format!(
            "backup {backup} is not one of {}'s (GET /api/v1/databases/{id}/backups)",
            source["name"].as_str().unwrap_or(name_or_id)
        )));
    }
    let target = if new { "new" } else { "same" };
    let started: Value = api
        .post(
            &format!("/backups/{}/restore", backup.trim()),
            &json!({ "target": target }),
        )
        .await?;
    let target_id = started["id"].as_str().unwrap_or_default().to_string();
    if !json {
        eprintln!(
            "restoring backup {backup} into {} ...",
            started["name"].as_str().unwrap_or_default()
        );
    }
    let deadline = tokio::time::Instant::now() + RESTORE_WAIT;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now: Value = api.get(&format!("/databases/{target_id}")).await?;
        let message = now["message"].as_str().unwrap_or_default().to_string();
        let done = now["status"] == "running" && message.contains("restore");
        if done || now["status"] == "failed" {
            if json {
                println!("{now}");
            } else {
                println!("{message}");
            }
            return if now["status"] == "running" && !message.contains("failed") {
                Ok(())
            } else {
                Err(ClientError::DeployFailed(message))
            };
        }
        if tokio::time::Instant::now() > deadline {
            return Err(ClientError::Unreachable(
                "the restore is still running; see the database's page".into(),
            ));
        }
    }
}
