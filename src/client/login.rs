//! `shard login <url>`: with `--token`, checks the token and stores it; without, signs in
//! device style (a code approved on the dashboard) and stores the token that brings.

use std::io::BufRead;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::ClientError;
use super::api::Api;
use super::credentials::{self, Credentials};

pub async fn login(url: &str, token: Option<String>, json: bool) -> Result<(), ClientError> {
    let url = normalize(url)?;
    let token = match token.as_deref() {
        // `--token -` reads it from stdin, out of the process list and shell history.
        Some("-") => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| ClientError::Usage(format!("cannot read the token: {e}")))?;
            line.trim().to_string()
        }
        Some(token) => token.trim().to_string(),
        None => device_login(&url, json).await?,
    };
    let credentials = Credentials { url, token };
    let me: Value = Api::new(&credentials)?.get("/auth/me").await?;
    let path = credentials::save(&credentials)?;
    let user = me["username"].as_str().unwrap_or("?");
    if json {
        println!("{}", json!({"url": credentials.url, "username": user}));
    } else {
        eprintln!(
            "logged in to {} as {user} (saved in {})",
            credentials.url,
            path.display()
        );
    }
    Ok(())
}

fn normalize(url: &str) -> Result<String, ClientError> {
    let url = url.trim().trim_end_matches('/');
    let url = if url.contains("://") {
        url.to_string()
    } else {
        format!("https://{url}")
    };
    let parsed = url::Url::parse(&url)
        .map_err(|e| ClientError::Usage(format!("'{url}' is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(ClientError::Usage(format!(
            "'{url}' is not an http(s) URL of a shard server"
        )));
    }
    Ok(url)
}

async fn device_login(url: &str, json: bool) -> Result<String, ClientError> {
    // Not signed in yet: the same API client, without a token.
    let api = Api::new(&Credentials {
        url: url.to_string(),
        token: String::new(),
    })?;
    let name = hostname();
    let started = api
        .post::<Value>("/cli/logins", &json!({ "name": name }))
        .await?;
    let (Some(code), Some(poll_token), Some(verify)) = (
        started["code"].as_str(),
        started["poll_token"].as_str(),
        started["verify_url"].as_str(),
    ) else {
        return Err(ClientError::Unreachable(format!(
            "{url} is not a shard server"
        )));
    };
    if json {
        println!("{}", json!({"code": code, "verify_url": verify}));
    }
    eprintln!("To sign in, open {verify} and enter the code {code}");
    open_browser(verify);
    let interval = Duration::from_secs(started["interval"].as_u64().unwrap_or(2).clamp(1, 10));
    let deadline =
        Instant::now() + Duration::from_secs(started["expires_in"].as_u64().unwrap_or(600));
    while Instant::now() < deadline {
        tokio::time::sleep(interval).await;
        let answer = api
            .post::<Value>("/cli/logins/poll", &json!({ "poll_token": poll_token }))
            .await?;
        match answer["status"].as_str() {
            Some("approved") => {
                return answer["token"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ClientError::Unreachable("approved without a token".into()));
            }
            Some("denied") => {
                return Err(ClientError::Api {
                    status: 403,
                    code: "denied".into(),
                    message: "the sign-in was denied on the dashboard".into(),
                });
            }
            _ => {}
        }
    }
    Err(ClientError::Api {
        status: 408,
        code: "expired".into(),
        message: format!("the code {code} was not approved in time; run `shard login` again"),
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "shard CLI".into())
}

/// Opens `url` in the desktop's browser when there is a desktop; silently nothing otherwise.
pub fn open_browser(url: &str) {
    use std::io::IsTerminal;
    let desktop =
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    if !desktop || !std::io::stdout().is_terminal() {
        return;
    }
    let _ = std::process::Command::new("xdg-open")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}
