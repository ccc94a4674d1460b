//! What each client command does.

use std::time::Duration;

use serde_json::{Value, json};

use super::api::Api;
use super::follow::{FINAL, Output, follow};
use super::{ClientError, credentials, login};
use crate::cli::{ClientCommand, EnvCommand};

pub async fn dispatch(command: ClientCommand, json: bool) -> Result<(), ClientError> {
    if let ClientCommand::Login { url, token } = command {
        return login::login(&url, token, json).await;
    }
    let api = Api::new(&credentials::load()?)?;
    match command {
        ClientCommand::Login { .. } => unreachable!("handled above"),
        ClientCommand::Projects => projects(&api, json).await,
        ClientCommand::Deploy { project, follow } => {
            let project = api.project(&project).await?;
            let id = project_id(&project)?;
            let queued: Value = api
                .post(&format!("/projects/{id}/deployments"), &json!({}))
                .await?;
            settle(&api, &project, queued, follow, json).await
        }
        ClientCommand::Rollback {
            project,
            deployment,
            follow,
        } => {
            let project = api.project(&project).await?;
            let id = project_id(&project)?;
            let target = match deployment {
                Some(d) => d,
                None => rollback_target(&api, &project).await?,
            };
            let queued: Value = api
                .post(
                    &format!("/projects/{id}/deployments"),
                    &json!({"from_deployment": target}),
                )
                .await?;
            settle(&api, &project, queued, follow, json).await
        }
        ClientCommand::Logs { project, follow } => logs(&api, &project, follow, json).await,
        ClientCommand::Env(command) => env(&api, command, json).await,
        ClientCommand::Open { project } => open(&api, &project, json).await,
        ClientCommand::Db(command) => super::databases::run(&api, command, json).await,
        ClientCommand::Run {
            project,
            timeout,
            command,
        } => super::tasks::run(&api, &project, command, timeout, json).await,
        ClientCommand::Jobs { project, run } => super::tasks::jobs(&api, &project, run, json).await,
        ClientCommand::Previews { project } => super::tasks::previews(&api, &project, json).await,
        ClientCommand::Exec {
            project,
            fresh,
            shell,
        } => super::tasks::exec(&api, &project, fresh, shell).await,
    }
}

fn project_id(project: &Value) -> Result<String, ClientError> {
    project["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| ClientError::Unreachable("a project without an id".into()))
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or("-").to_string()
}

async fn projects(api: &Api, json: bool) -> Result<(), ClientError> {
    let list: Vec<Value> = api.get("/projects").await?;
    if json {
        println!("{}", Value::Array(list));
        return Ok(());
    }
    if list.is_empty() {
        println!("no projects yet");
        return Ok(());
    }
    let width = list
        .iter()
        .map(|p| text(p, "slug").len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!("{:width$}  {:10}  {:9}  URL", "NAME", "STATUS", "RUNTIME");
    for p in &list {
        println!(
            "{:width$}  {:10}  {:9}  {}",
            text(p, "slug"),
            text(p, "status"),
            text(p, "runtime"),
            text(p, "url")
        );
    }
    Ok(())
}

/// After queueing a deploy: print it, or follow it to its end and exit by how it ended.
async fn settle(
    api: &Api,
    project: &Value,
    queued: Value,
    follow_it: bool,
    json: bool,
) -> Result<(), ClientError> {
    let id = text(&queued, "id");
    if !follow_it {
        if json {
            println!("{queued}");
        } else {
            println!("deployment {id} {}", text(&queued, "status"));
        }
        return Ok(());
    }
    if !json {
        eprintln!("deploying {} (deployment {id})", text(project, "slug"));
    }
    let output = Output::new(json, "queued");
    let ended = follow(api, &format!("deployment:{id}"), &output, None, |event| {
        event["type"] == "status" && event["status"].as_str().is_some_and(|s| FINAL.contains(&s))
    })
    .await;
    output.finish();
    let status = ended?
        .and_then(|e| e["status"].as_str().map(str::to_string))
        .unwrap_or_default();
    let deployment: Value = api.get(&format!("/deployments/{id}")).await?;
    if json {
        println!(
            "{}",
            json!({"deployment": id, "status": status, "url": project["url"], "error": deployment["error"]})
        );
    }
    if status == "live" {
        if !json {
            eprintln!("live at {}", text(project, "url"));
        }
        Ok(())
    } else {
        let why = deployment["error"].as_str().unwrap_or("no reason given");
        Err(ClientError::DeployFailed(format!(
            "deployment {id} {status}: {why}"
        )))
    }
}

/// The deployment to roll back to: the newest earlier one that still has its image and is not
/// the one live now.
async fn rollback_target(api: &Api, project: &Value) -> Result<String, ClientError> {
    let id = project_id(project)?;
    let list: Vec<Value> = api.get(&format!("/projects/{id}/deployments")).await?;
    let live = project["live_deployment"].as_str();
    list.iter()
        .find(|d| {
            d["id"].as_str() != live
                && matches!(d["status"].as_str(), Some("superseded" | "stopped"))
        })
        .and_then(|d| d["id"].as_str().map(str::to_string))
        .ok_or_else(|| ClientError::Api {
            status: 409,
            code: "conflict".into(),
            message: "no earlier deployment to roll back to".into(),
        })
}

async fn logs(api: &Api, project: &str, follow_it: bool, json: bool) -> Result<(), ClientError> {
    let project = api.project(project).await?;
    let id = project_id(&project)?;
    let output = Output::new(json, "runtime logs");
    // Without --follow: what the app printed recently, until it has been quiet for a moment.
    let idle = (!follow_it).then_some(Duration::from_secs(2));
    let result = follow(api, &format!("project:{id}:logs"), &output, idle, |_| false).await;
    output.finish();
    result.map(|_| ())
}

async fn env(api: &Api, command: EnvCommand, json: bool) -> Result<(), ClientError> {
    let project = match &command {
        EnvCommand::List { project }
        | EnvCommand::Set { project, .. }
        | EnvCommand::Unset { project, .. } => api.project(project).await?,
    };
    let path = format!("/projects/{}/env", project_id(&project)?);
    let current: Value = api.get(&path).await?;
    let mut vars: Vec<Value> = current["vars"].as_array().cloned().unwrap_or_default();
    match command {
        EnvCommand::List { .. } => {
            if json {
                println!("{current}");
            } else {
                for v in &vars {
                    let value = match v["value"].as_str() {
                        Some(value) => value.to_string(),
                        None => "(secret)".into(),
                    };
                    println!("{}={value}", text(v, "key"));
                }
            }
            return Ok(());
        }
        EnvCommand::Set {
            pairs,
            secret,
            build,
            ..
        } => {
            for pair in pairs {
                let (key, value) = pair
                    .split_once('=')
                    .ok_or_else(|| ClientError::Usage(format!("'{pair}' is not KEY=VALUE")))?;
                vars.retain(|v| v["key"] != key);
                vars.push(json!({"key": key, "value": value, "secret": secret, "build": build}));
            }
        }
        EnvCommand::Unset { keys, .. } => {
            for key in &keys {
                if !vars.iter().any(|v| v["key"] == key.as_str()) {
                    return Err(ClientError::Api {
                        status: 404,
                        code: "not_found".into(),
                        message: format!("no variable {key}"),
                    });
                }
            }
            vars.retain(|v| !keys.iter().any(|k| v["key"] == k.as_str()));
        }
    }
    // Secrets come back without their value; sent without one, the server keeps it.
    let vars: Vec<Value> = vars
        .into_iter()
        .map(|mut v| {
            if v["value"].is_null()
                && let Some(map) = v.as_object_mut()
            {
                map.remove("value");
            }
            v
        })
        .collect();
    let saved: Value = api
        .call(reqwest::Method::PUT, &path, Some(&json!({"vars": vars})))
        .await?;
    if json {
        println!("{saved}");
    } else {
        eprintln!("saved; the running app keeps its old environment until the next deploy");
    }
    Ok(())
}

async fn open(api: &Api, project: &str, json: bool) -> Result<(), ClientError> {
    let project = api.project(project).await?;
    let url = text(&project, "url");
    if json {
        println!("{}", json!({"url": url}));
        return Ok(());
    }
    println!("{url}");
    login::open_browser(&url);
    Ok(())
}
