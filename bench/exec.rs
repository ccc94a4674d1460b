//! Terminal benchmark (issue 28): the round trip of one keystroke — sent, echoed by the
//! shell's TTY, received — through shard's exec WebSocket (`GET /api/v1/projects/{id}/exec`),
//! against the same shell attached straight to Docker's exec API (what `docker exec -it`
//! does), on the same container in the same run. Run: `bench/run-exec`. Prints a table.

#[path = "app.rs"]
mod app;
#[path = "../tests/api/gitserver.rs"]
mod gitserver;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use shard::db;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

const KEYS: usize = 1000;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn row(name: &str, mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (p50, p99) = (percentile(&ms, 0.5), percentile(&ms, 0.99));
    println!(
        "| {name} | {p50:.3} ms | {p99:.3} ms | {:.3} ms |",
        ms[ms.len() - 1]
    );
    (p50, p99)
}

/// The app image with a shell.
fn files() -> Vec<(&'static str, Vec<u8>, bool)> {
    let mut files = app::files("exec");
    for f in files.iter_mut() {
        if f.0 == "Dockerfile" {
            f.1 = b"FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"ln\", \"-s\", \"/bin/busybox\", \"/bin/sh\"]\nCOPY www /www\nEXPOSE 8080\nCMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n".to_vec();
        }
    }
    files
}

#[tokio::main]
async fn main() {
    let (state, _dir, admin) = app::start(|c| c.exec.bytes_per_sec = 64 * 1024 * 1024).await;
    let git = gitserver::GitServer::start().await;
    let repo = git.repo("exec", &files());
    let project = db::projects::insert(
        &state.db,
        admin,
        db::projects::Settings::new("exec", &repo.url).set_by_admin(),
    )
    .await
    .unwrap();
    let deployment = state.deployer.request(&project, None, None).await.unwrap();
    let live = loop {
        let d = db::deployments::find(&state.db, deployment.id)
            .await
            .unwrap()
            .unwrap();
        match d.status.as_str() {
            "live" => break d,
            "failed" | "cancelled" => panic!("deploy {}: {:?}", d.status, d.error),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let container = live.container_id.clone().expect("a container");
    let token = shard::secrets::random_token(shard::auth::API_TOKEN_PREFIX);
    db::api_tokens::create(
        &state.db,
        db::api_tokens::New {
            user_id: admin,
            name: "bench",
            token_hash: &shard::secrets::token_hash(&token),
            prefix: "shard_",
            scope: shard::model::Scope::Admin,
            project_ids: None,
            expires_at: None,
        },
    )
    .await
    .unwrap();

    // Through shard.
    let url = format!(
        "ws://127.0.0.1:{}/api/v1/projects/{}/exec?cols=200&rows=50",
        state.port, project.id
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let auth = format!("{{\"op\":\"auth\",\"token\":\"{token}\"}}");
    ws.send(Message::Text(auth.into())).await.unwrap();
    // Wait for the prompt.
    // Wait for the prompt (ash may follow it with a cursor-position query).
    let mut seen = Vec::new();
    while !seen.windows(2).any(|w| w == b"# ") {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => seen.extend_from_slice(&b),
            Some(Ok(Message::Text(t))) => panic!("the terminal said {t}"),
            Some(Ok(_)) => {}
            other => panic!("the terminal ended: {other:?}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_millis(50), ws.next()).await {}
    let mut through_shard = Vec::with_capacity(KEYS);
    for i in 0..KEYS {
        // A letter, then a backspace: the line never grows.
        let key: &[u8] = if i % 2 == 0 { b"a" } else { b"\x7f" };
        let sent = Instant::now();
        ws.send(Message::Binary(key.to_vec().into())).await.unwrap();
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(_))) => break,
                Some(Ok(_)) => continue,
                other => panic!("terminal ended: {other:?}"),
            }
        }
        through_shard.push(sent.elapsed().as_secs_f64() * 1000.0);
        // Let a multi-byte echo (a backspace is "\b \b") arrive before the next key.
        tokio::time::sleep(Duration::from_millis(2)).await;
        while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_millis(1), ws.next()).await
        {
        }
    }
    ws.send(Message::Binary(b"exit\n".to_vec().into()))
        .await
        .ok();

    // Straight to Docker.
    let mut direct = state
        .docker
        .exec_tty(&container, vec!["/bin/sh".into()], vec![], 200, 50)
        .await
        .unwrap();
    let mut seen = Vec::new();
    while !seen.windows(2).any(|w| w == b"# ") {
        match direct.output.next().await {
            Some(Ok(b)) => seen.extend_from_slice(&b),
            other => panic!("the shell ended: {other:?}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(Some(_)) =
        tokio::time::timeout(Duration::from_millis(50), direct.output.next()).await
    {}
    let mut straight = Vec::with_capacity(KEYS);
    for i in 0..KEYS {
        let key: &[u8] = if i % 2 == 0 { b"a" } else { b"\x7f" };
        let sent = Instant::now();
        direct.input.write_all(key).await.unwrap();
        direct.input.flush().await.unwrap();
        direct.output.next().await.unwrap().unwrap();
        straight.push(sent.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(2)).await;
        while let Ok(Some(_)) =
            tokio::time::timeout(Duration::from_millis(1), direct.output.next()).await
        {}
    }
    direct.input.write_all(b"exit\n").await.ok();

    println!("\n| keystroke round trip ({KEYS} keys) | p50 | p99 | max |");
    println!("|---|---|---|---|");
    let (shard_p50, shard_p99) = row("shard exec WebSocket", through_shard);
    let (docker_p50, docker_p99) = row("Docker exec API, direct", straight);
    println!(
        "\nshard / direct: p50 {:.2}×, p99 {:.2}×; goal: ≤ 20 ms on loopback",
        shard_p50 / docker_p50,
        shard_p99 / docker_p99
    );
    let _ = state.docker.remove_project(project.id).await;
}
