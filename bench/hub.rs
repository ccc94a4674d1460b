//! Hub benchmarks (issue: live log hub). Run: `bench/run-hub`. Prints a table.
//!
//! 1. Fan-out: N WebSocket subscribers (default 1,000) on one deployment topic while the build
//!    log writer (the same `LogWriter` a deploy uses) takes 5,000 lines/s for 10 s. Every
//!    client must receive every line, in order; delivery latency is measured from the moment
//!    the line was handed to the writer. shard's RSS is sampled during the run.
//!    `lagged` notices are counted: each is a resync from the hub ring or the database.
//! 2. Replay: a 100,000-line log replayed to a new subscriber, subscribe → last line.
//!
//! Clients, server and producer share this machine's cores, so the figures include the
//! clients' own cost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use shard::app::App;
use shard::config::Config;
use shard::db;
use shard::deploy::log::LogWriter;
use tokio_tungstenite::tungstenite::Message;

const RATE: usize = 5_000;
const SECONDS: usize = 10;
const REPLAY_LINES: usize = 100_000;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time (clock ticks) used so far by this process's threads: (server, clients). The
/// server's are actix's workers (the WebSocket connections) and sqlx's SQLite threads; the rest
/// (the runtime the clients and the log writer share, main) count as clients.
fn cpu_ticks() -> (u64, u64) {
    let mut server = 0;
    let mut clients = 0;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return (0, 0);
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ...`: comm may hold spaces, so split after its closing paren.
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let comm = head.split_once('(').map_or("", |(_, c)| c);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
            + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
        if comm.starts_with("actix") || comm.starts_with("sqlx") {
            server += ticks;
        } else {
            clients += ticks;
        }
    }
    (server, clients)
}

/// Linux reports thread times in USER_HZ clock ticks: 100 a second on every mainstream build.
const TICKS_PER_SECOND: f64 = 100.0;

/// Log-scale latency histogram (2% wide buckets from 1 µs), small enough for 1,000 clients.
const BUCKETS: usize = 1200;
fn bucket(ms: f64) -> usize {
    let us = (ms * 1000.0).max(1.0);
    (us.ln() / 1.02f64.ln()) as usize
}
fn bucket_ms(b: usize) -> f64 {
    1.02f64.powi(b as i32 + 1) / 1000.0
}
fn percentile(hist: &[u64], p: f64) -> f64 {
    let total: u64 = hist.iter().sum();
    let target = (total as f64 * p).ceil() as u64;
    let mut seen = 0;
    for (b, count) in hist.iter().enumerate() {
        seen += count;
        if seen >= target {
            return bucket_ms(b);
        }
    }
    bucket_ms(BUCKETS - 1)
}

/// Pulls every log event's seq and line (a nanosecond timestamp) out of a message cheaply —
/// a single event or a `batch` of them (keys are sorted, so `line` comes before `seq`).
/// Notices (`subscribed`, `lagged`) carry no line and yield nothing.
fn parse(text: &str) -> Vec<(i64, Option<u128>)> {
    text.split("\"line\":\"")
        .skip(1)
        .filter_map(|part| {
            let line = part.split('"').next().and_then(|l| l.parse().ok());
            let seq = part
                .split("\"seq\":")
                .nth(1)?
                .split([',', '}'])
                .next()?
                .parse()
                .ok()?;
            Some((seq, line))
        })
        .collect()
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn subscriber(url: &str, token: &str, topic: &str) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    ws.send(Message::Text(
        format!("{{\"op\":\"auth\",\"token\":\"{token}\"}}").into(),
    ))
    .await
    .unwrap();
    ws.send(Message::Text(
        format!("{{\"op\":\"subscribe\",\"topic\":\"{topic}\",\"since\":0}}").into(),
    ))
    .await
    .unwrap();
    loop {
        if let Some(Ok(Message::Text(t))) = ws.next().await
            && t.contains("\"subscribed\"")
        {
            return ws;
        }
    }
}

#[tokio::main]
async fn main() {
    let clients: usize = std::env::var("HUB_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let dir = tempfile::TempDir::new().unwrap();
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    config.log.level = "error".into();
    shard::telemetry::init(&config.log);
    let app = App::build(config).await.expect("app");
    let port = app.port();
    let state = app.state();
    tokio::spawn(app.run_until_stopped());

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
    let settings = |slug: &str| {
        db::projects::Settings::new(slug, "https://example.com/a/b.git").set_by_admin()
    };
    let project = db::projects::insert(&state.db, user.id, settings("fanout"))
        .await
        .unwrap();
    let new_deployment = || db::deployments::NewDeployment::manual(project.id);
    let deployment = db::deployments::create(&state.db, new_deployment())
        .await
        .unwrap();
    let topic = format!("deployment:{}", deployment.id);
    let url = format!("ws://127.0.0.1:{port}/api/v1/ws");

    // 1. Fan-out.
    let total = RATE * SECONDS;
    let mut handles = Vec::new();
    let ready = Arc::new(tokio::sync::Barrier::new(clients + 1));
    let lagged = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..clients {
        let (url, token, topic, ready) = (url.clone(), token.clone(), topic.clone(), ready.clone());
        let lagged = lagged.clone();
        handles.push(tokio::spawn(async move {
            let mut ws = subscriber(&url, &token, &topic).await;
            ready.wait().await;
            let mut latencies = vec![0u64; BUCKETS];
            let mut expected = 1i64;
            while expected <= total as i64 {
                let Some(Ok(message)) = ws.next().await else {
                    panic!("socket closed at seq {expected}")
                };
                let Message::Text(text) = message else {
                    continue;
                };
                if text.contains("\"type\":\"lagged\"") {
                    lagged.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                let now = now_nanos();
                for (seq, sent) in parse(&text) {
                    assert_eq!(seq, expected, "out of order or lost");
                    expected += 1;
                    if let Some(sent) = sent {
                        let ms = now.saturating_sub(sent) as f64 / 1e6;
                        latencies[bucket(ms).min(BUCKETS - 1)] += 1;
                    }
                }
            }
            latencies
        }));
    }
    ready.wait().await;
    let rss_before = rss_kib();
    let cpu_before = cpu_ticks();
    let sink = state.deployer.sink();
    let mut writer = LogWriter::start(sink, &deployment, 16 * 1024, u64::MAX)
        .await
        .unwrap();
    let started = Instant::now();
    let mut peak_rss = rss_before;
    let per_tick = RATE / 100;
    for tick in 0..(SECONDS * 100) {
        for _ in 0..per_tick {
            writer.stdout(now_nanos().to_string()).await;
        }
        if tick % 50 == 0 {
            peak_rss = peak_rss.max(rss_kib());
        }
        let next = started + Duration::from_millis(10 * (tick as u64 + 1));
        tokio::time::sleep_until(next.into()).await;
    }
    let produced_in = started.elapsed();
    let mut all = vec![0u64; BUCKETS];
    for handle in handles {
        peak_rss = peak_rss.max(rss_kib());
        for (b, count) in handle
            .await
            .expect("a client failed")
            .into_iter()
            .enumerate()
        {
            all[b] += count;
        }
    }
    let delivered_in = started.elapsed();
    let cpu_after = cpu_ticks();
    let server_cpu = (cpu_after.0 - cpu_before.0) as f64 / TICKS_PER_SECOND;
    let clients_cpu = (cpu_after.1 - cpu_before.1) as f64 / TICKS_PER_SECOND;
    writer.finish().await;

    // 2. Replay of a 100,000-line log.
    let replay = db::deployments::create(&state.db, new_deployment())
        .await
        .unwrap();
    let entries: Vec<db::deployment_logs::Entry> = (0..REPLAY_LINES)
        .map(|i| db::deployment_logs::Entry {
            ts: chrono::Utc::now(),
            stream: shard::model::LogStream::Stdout,
            line: format!("line {i} of a long build log, with some typical length to it").into(),
        })
        .collect();
    for (i, chunk) in entries.chunks(1000).enumerate() {
        db::deployment_logs::insert(&state.db, replay.id, 1 + (i * 1000) as i64, chunk)
            .await
            .unwrap();
    }
    let replay_topic = format!("deployment:{}", replay.id);
    let replay_started = Instant::now();
    let mut ws = subscriber(&url, &token, &replay_topic).await;
    let mut last = 0i64;
    while last < REPLAY_LINES as i64 {
        if let Some(Ok(Message::Text(text))) = ws.next().await {
            for (seq, _) in parse(&text) {
                assert_eq!(seq, last + 1);
                last = seq;
            }
        }
    }
    let replay_secs = replay_started.elapsed().as_secs_f64();

    if std::env::var("HUB_ROW").is_ok() {
        // One row of bench/run-hub's table (every client asserted it got every line in order).
        println!(
            "| {clients} | {:.1} ms | {:.1} ms | {:.1} ms | {} | yes | {server_cpu:.1} s / {clients_cpu:.1} s | {} MiB | {replay_secs:.2} s |",
            percentile(&all, 0.5),
            percentile(&all, 0.99),
            percentile(&all, 1.0),
            lagged.load(std::sync::atomic::Ordering::Relaxed),
            peak_rss / 1024
        );
        return;
    }
    println!("\n| measure | shard | goal |");
    println!("|---|---|---|");
    println!(
        "| fan-out: {clients} subscribers × {total} lines ({RATE}/s for {SECONDS} s), all delivered in order | p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms | p99 ≤ 50 ms |",
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        percentile(&all, 1.0)
    );
    println!(
        "| fan-out: production took / last delivery at | {:.1} s / {:.1} s | |",
        produced_in.as_secs_f64(),
        delivered_in.as_secs_f64()
    );
    println!(
        "| CPU during fan-out: server (actix workers, SQLite threads) / clients and writer | {server_cpu:.1} s / {clients_cpu:.1} s | |"
    );
    println!(
        "| process RSS (server + clients) before / peak | {} / {} MiB | |",
        rss_before / 1024,
        peak_rss / 1024
    );
    println!(
        "| `lagged` notices received by fan-out clients (each resynced from the ring or the DB) | {} | |",
        lagged.load(std::sync::atomic::Ordering::Relaxed)
    );
    println!(
        "| replay of {REPLAY_LINES} lines to a new subscriber | {replay_secs:.2} s | ≤ 0.3 s |"
    );
}
