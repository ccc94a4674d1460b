//! Hub latency across two instances (issue 13). Run: `bench/run-cluster`. Prints a table.
//!
//! Two shard instances on one Postgres (a fresh database on `CLUSTER_BENCH_DATABASE_URL`'s
//! server, default the role `scripts/test` creates). A WebSocket client on each subscribes to
//! one `project:` topic; instance A records `CLUSTER_EVENTS` events (default 300) on it, one
//! every 20 ms, each carrying the time it was handed to the recorder. The table shows the
//! delivery latency to the client on A (the in-process path) and to the client on B (through
//! `NOTIFY`, B's read-back from the database, and B's hub), and checks both got every event
//! in order.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use shard::app::App;
use shard::config::{Config, Secret};
use shard::db;
use shard::hub::{Topic, record};
use tokio_tungstenite::tungstenite::Message;

const KEY: &str = "6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b";

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

async fn fresh_database() -> (String, String) {
    let base = std::env::var("CLUSTER_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://shard_test:shard_test@127.0.0.1:5432/postgres".into());
    // Named like the test databases, so `scripts/test` drops it on its next run.
    let name = format!("shard_t_bench_{}", uuid::Uuid::new_v4().simple());
    let admin = sea_orm::Database::connect(base.as_str())
        .await
        .expect("Postgres");
    use sea_orm::ConnectionTrait;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    admin.close().await.ok();
    let mut url = url::Url::parse(&base).unwrap();
    url.set_path(&name);
    (base, url.to_string())
}

async fn instance(db: &str, dir: &std::path::Path) -> (App, String) {
    let mut config = Config {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: Some(Secret::new(db.to_string())),
        secret_key: Some(Secret::new(KEY.to_string())),
        ..Config::default()
    };
    config.log.level = "error".into();
    config.metrics.interval_secs = 0;
    config.health.interval_secs = 0;
    let app = App::build(config).await.expect("app");
    let base = format!("ws://127.0.0.1:{}/api/v1/ws", app.port());
    (app, base)
}

/// Latencies (ms) of the events received on `topic` until `count` arrived, and whether their
/// seqs ran in order without a gap.
async fn receive(url: String, token: String, topic: String, count: usize) -> (Vec<f64>, bool) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    for m in [
        json!({"op": "auth", "token": token}),
        json!({"op": "subscribe", "topic": topic, "since": 0}),
    ] {
        ws.send(Message::Text(m.to_string().into())).await.unwrap();
    }
    let (mut latencies, mut last, mut in_order) = (Vec::new(), 0i64, true);
    while latencies.len() < count {
        let Some(Ok(Message::Text(text))) = ws.next().await else {
            break;
        };
        let arrived = now_ns();
        let v: Value = serde_json::from_str(&text).unwrap();
        let events = match v["type"].as_str() {
            Some("batch") => v["events"].as_array().cloned().unwrap_or_default(),
            _ => vec![v],
        };
        for e in events {
            let Some(sent) = e["sent_ns"].as_i64() else {
                continue;
            };
            let seq = e["seq"].as_i64().unwrap_or(0);
            in_order &= seq == last + 1;
            last = seq;
            latencies.push((arrived - sent) as f64 / 1e6);
        }
    }
    (latencies, in_order)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() {
    let events: usize = std::env::var("CLUSTER_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let (_, url) = fresh_database().await;
    let (dir_a, dir_b) = (
        tempfile::TempDir::new().unwrap(),
        tempfile::TempDir::new().unwrap(),
    );
    let (a, ws_a) = instance(&url, dir_a.path()).await;
    let (b, ws_b) = instance(&url, dir_b.path()).await;
    let state = a.state();
    tokio::spawn(a.run_until_stopped());
    tokio::spawn(b.run_until_stopped());

    let user = db::users::create(&state.db, "bench", "x", shard::model::UserRole::Admin)
        .await
        .unwrap();
    let token = shard::secrets::random_token(shard::auth::API_TOKEN_PREFIX);
    db::api_tokens::create(
        &state.db,
        db::api_tokens::New {
            user_id: user.id,
            name: "bench",
            token_hash: &shard::secrets::token_hash(&token),
            prefix: "shard_",
            scope: shard::model::Scope::Read,
            project_ids: None,
            expires_at: None,
        },
    )
    .await
    .unwrap();
    let project = db::projects::insert(
        &state.db,
        user.id,
        db::projects::Settings::new("bench", "https://example.com/a/b.git").set_by_admin(),
    )
    .await
    .unwrap();
    let topic = Topic::Project(project.id);
    let on_a = tokio::spawn(receive(ws_a, token.clone(), topic.to_string(), events));
    let on_b = tokio::spawn(receive(ws_b, token.clone(), topic.to_string(), events));
    // Both subscriptions are in place before the first event.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for i in 0..events {
        let payload = json!({"sent_ns": now_ns(), "n": i});
        record::publish(&state.db, &state.hub, topic, "bench", payload).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("| subscriber on | events received | in order | p50 | p95 | p99 | max |");
    println!("|---|---|---|---|---|---|---|");
    let mut p50s = Vec::new();
    for (name, handle) in [("A (same instance)", on_a), ("B (other instance)", on_b)] {
        let (mut l, in_order) = tokio::time::timeout(Duration::from_secs(60), handle)
            .await
            .expect("every event within 60 s")
            .unwrap();
        l.sort_by(f64::total_cmp);
        p50s.push(pct(&l, 0.5));
        println!(
            "| {name} | {}/{events} | {in_order} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
            l.len(),
            pct(&l, 0.5),
            pct(&l, 0.95),
            pct(&l, 0.99),
            l[l.len() - 1]
        );
    }
    println!(
        "p50 across instances / within one: {:.1}x",
        p50s[1] / p50s[0]
    );
}
