//! Terminals (`GET /api/v1/projects/{id}/exec`), driven like a terminal: keystrokes in binary
//! frames, `echo $HOSTNAME` answered from the app's own container, a resize seen by `stty`,
//! the shell's exit code at the end; a fresh container; viewers and members refused; the
//! sessions-per-user and idle limits; every session in the audit log with its start and end.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::deploy::{app_files, docker_ids};
use crate::gitserver::GitServer;
use crate::helpers::*;
use crate::instances::Ws;
use crate::teams::{invite, person};

/// The app image with `/bin/sh` (busybox's shell).
const WITH_SH: &str = "RUN [\"/bin/busybox\", \"ln\", \"-s\", \"/bin/busybox\", \"/bin/sh\"]\n";

async fn open(app: &TestApp, token: &str, project: &str, query: &str) -> Ws {
    let url = format!(
        "{}/api/v1/projects/{project}/exec?{query}",
        app.base.replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let auth = json!({"op": "auth", "token": token}).to_string();
    ws.send(Message::Text(auth.into())).await.unwrap();
    ws
}

async fn type_in(ws: &mut Ws, text: &str) {
    ws.send(Message::Binary(text.as_bytes().to_vec().into()))
        .await
        .unwrap();
}

/// Reads the terminal until its output contains `want`; all it read.
async fn read_until(ws: &mut Ws, want: &str) -> String {
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.contains(want) {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no '{want}' in: {seen:?}"))
            .expect("open")
            .unwrap();
        match message {
            Message::Binary(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            Message::Text(text) => panic!("{text} (output so far: {seen:?})"),
            _ => {}
        }
    }
    seen
}

/// The text frame that ends the session (exit or error), skipping output.
async fn ending(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("an end within 30 s")
            .expect("open")
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

#[tokio::test]
async fn a_terminal_answers_like_a_shell_in_the_apps_container_for_admins_only() {
    let app = spawn_app_with(|c| {
        c.deploy.grace_secs = 0;
        c.exec.sessions_per_user = 2;
        c.exec.idle_secs = 10;
    })
    .await;
    let admin = app.setup_admin().await;
    let team: Value = app
        .post("/api/v1/teams", Some(&admin.token), json!({"name": "Ops"}))
        .await
        .json()
        .await
        .unwrap();
    let team = team["id"].as_str().unwrap().to_string();
    let mut roles = Vec::new();
    for (name, role) in [("vic", "viewer"), ("mia", "member")] {
        let p = person(&app, &admin, name).await;
        let invitation = invite(&app, &admin.token, &team, name, role).await;
        let accepted = app
            .post(
                &format!(
                    "/api/v1/invitations/{}/accept",
                    invitation["token"].as_str().unwrap()
                ),
                Some(&p.token),
                json!({}),
            )
            .await;
        assert_eq!(accepted.status(), StatusCode::OK);
        roles.push(p);
    }
    let git = GitServer::start().await;
    let repo = git.repo("shell", &app_files("1", WITH_SH));
    let created = app
        .post(
            "/api/v1/projects",
            Some(&admin.token),
            json!({"name": "shell", "git_url": repo.url, "team_id": team, "health_timeout_secs": 20}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let project = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let live = app
        .deploy_live(&admin, &project, json!({}), Duration::from_secs(120))
        .await;
    let container = app.deployment(&admin, &live).await["container_id"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| {
            docker_ids(&[
                "ps",
                "-q",
                "--filter",
                &format!("label=shard.deployment={live}"),
            ])
        });
    let hostname = docker_ids(&["inspect", "-f", "{{.Config.Hostname}}", container.trim()]);
    assert!(!hostname.is_empty());

    // Viewers and members are refused; someone outside the team does not see the project.
    for (who, code) in [(&roles[0], "forbidden"), (&roles[1], "forbidden")] {
        let mut ws = open(&app, &who.token, &project, "").await;
        let end = ending(&mut ws).await;
        assert_eq!(end["type"], "error", "{end}");
        assert_eq!(end["code"], code, "{} {end}", who.name);
    }
    let otto = person(&app, &admin, "otto").await;
    let mut ws = open(&app, &otto.token, &project, "").await;
    assert_eq!(ending(&mut ws).await["code"], "not_found");
    // No credential at all.
    let url = format!(
        "{}/api/v1/projects/{project}/exec",
        app.base.replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::Text(json!({"op": "subscribe"}).to_string().into()))
        .await
        .unwrap();
    assert_eq!(ending(&mut ws).await["code"], "unauthorized");
    // A shell that is not a plain absolute path is refused before the upgrade.
    let bad = app
        .get(
            &format!("/api/v1/projects/{project}/exec?shell=sh%20-c"),
            Some(&admin.token),
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // The admin's terminal: the app's container answers, a resize reaches the TTY, and the
    // shell's exit code ends the session.
    let mut term = open(&app, &admin.token, &project, "cols=100&rows=30").await;
    type_in(&mut term, "echo \"[$HOSTNAME]\"\n").await;
    read_until(&mut term, &format!("[{hostname}]")).await;
    term.send(Message::Text(
        json!({"op": "resize", "cols": 132, "rows": 43})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    type_in(&mut term, "/bin/busybox stty size\n").await;
    read_until(&mut term, "43 132").await;
    // While it is open: a second session is allowed, a third refused.
    let mut second = open(&app, &admin.token, &project, "").await;
    type_in(&mut second, "echo second-$((40+2))\n").await;
    read_until(&mut second, "second-42").await;
    let mut third = open(&app, &admin.token, &project, "").await;
    assert_eq!(ending(&mut third).await["code"], "conflict");
    type_in(&mut second, "exit\n").await;
    assert_eq!(ending(&mut second).await["exit_code"], 0);
    type_in(&mut term, "exit 5\n").await;
    let end = ending(&mut term).await;
    assert_eq!(end["type"], "exit", "{end}");
    assert_eq!(end["exit_code"], 5, "{end}");

    // A fresh container: another host, the app's environment, removed at the end.
    let mut fresh = open(&app, &admin.token, &project, "fresh=true").await;
    type_in(&mut fresh, "echo \"<$HOSTNAME>\" port=$PORT\n").await;
    let seen = read_until(&mut fresh, "port=8080").await;
    assert!(!seen.contains(&format!("<{hostname}>")), "{seen}");
    type_in(&mut fresh, "exit 3\n").await;
    assert_eq!(ending(&mut fresh).await["exit_code"], 3);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !docker_ids(&["ps", "-aq", "--filter", "label=shard.run"]).is_empty() {
        assert!(Instant::now() < deadline, "the fresh container stayed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A terminal nobody types into is closed after exec.idle_secs.
    let started = Instant::now();
    let mut idle = open(&app, &admin.token, &project, "").await;
    let end = ending(&mut idle).await;
    assert_eq!(end["reason"], "idle", "{end}");
    assert!(started.elapsed() >= Duration::from_secs(9), "closed early");

    // Each session is in the audit log: its start and its end, by the admin.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let entries: Value = app
            .get(
                &format!("/api/v1/audit?project_id={project}&limit=100"),
                Some(&admin.token),
            )
            .await
            .json()
            .await
            .unwrap();
        let entries = entries
            .as_array()
            .cloned()
            .or_else(|| entries["entries"].as_array().cloned())
            .unwrap_or_default();
        let count = |action: &str| entries.iter().filter(|e| e["action"] == action).count();
        if count("exec.start") >= 4 && count("exec.end") >= 4 {
            let end = entries.iter().find(|e| e["action"] == "exec.end").unwrap();
            assert_eq!(end["actor"], "admin", "{end}");
            assert!(end["detail"]["seconds"].is_u64(), "{end}");
            break;
        }
        assert!(Instant::now() < deadline, "audit: {entries:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
