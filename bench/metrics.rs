//! Metrics benchmarks (issue: metrics, health checks, notifications). Run: `bench/run-metrics`
//! (or `cargo run --release --example metrics-bench`). Prints a table. Needs a running Docker
//! engine, git and /bin/busybox (busybox-static).
//!
//! 1. Collector overhead with 50 running app containers: shard's process CPU % and RSS over a
//!    quiet window with the collector off (idle), at the default 15 s interval and at 1 s;
//!    dockerd's CPU % alongside (each stats call costs the engine too).
//! 2. Database size after 90 days for 50 apps: the steady state the retention keeps (24 h of
//!    raw samples at 15 s, 7 days of 1-minute and 90 days of 1-hour averages per app), written
//!    and then rolled up and pruned as the collector would, in a SQLite file.
//! 3. `GET /metrics` scrape time with those 50 apps' series, against `GET /health`.

#[path = "../tests/api/gitserver.rs"]
mod gitserver;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use shard::app::App;
use shard::config::Config;
use shard::db;
use shard::db::metrics::{HOUR, MINUTE, Point, RAW};
use shard::state::AppState;
use tokio_util::sync::CancellationToken;

#[path = "app.rs"]
mod app;
use app::files;

const APPS: usize = 50;
const WINDOW: Duration = Duration::from_secs(60);

fn settings(name: &str, git_url: &str, memory_limit_mb: Option<i64>) -> db::projects::Settings {
    db::projects::Settings {
        memory_limit_mb,
        ..db::projects::Settings::new(name, git_url).set_by_admin()
    }
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_mib() -> f64 {
    shard::metrics::host::own_rss().unwrap_or(0) as f64 / (1024.0 * 1024.0)
}

fn dockerd_pid() -> String {
    let out = std::process::Command::new("pidof")
        .arg("dockerd")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("0")
        .to_string()
}

/// (shard CPU %, dockerd CPU %, RSS MiB) over a quiet window.
async fn measure(window: Duration) -> (f64, f64, f64) {
    let docker = dockerd_pid();
    let (s0, d0, t0) = (cpu_seconds("self"), cpu_seconds(&docker), Instant::now());
    tokio::time::sleep(window).await;
    let secs = t0.elapsed().as_secs_f64();
    (
        (cpu_seconds("self") - s0) / secs * 100.0,
        (cpu_seconds(&docker) - d0) / secs * 100.0,
        rss_mib(),
    )
}

fn collector(state: &Arc<AppState>, interval: u64) -> CancellationToken {
    let mut config = (*state.config).clone();
    config.metrics.interval_secs = interval;
    let stop = CancellationToken::new();
    let collector = shard::metrics::Collector::new(
        state.db.clone(),
        state.docker.clone(),
        state.deployer.runtime(),
        state.hub.clone(),
        &config,
    );
    tokio::spawn(collector.run(shard::cluster::Leadership::single(), stop.clone()));
    stop
}

async fn overhead_and_scrape() -> Vec<(String, String)> {
    let dir = tempfile::TempDir::new().unwrap();
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    config.log.level = "warn".into();
    config.metrics.interval_secs = 0;
    config.health.interval_secs = 0;
    config.jobs.concurrency = 2;
    shard::telemetry::init(&config.log);
    let app = App::build(config).await.expect("app");
    let state = app.state();
    let port = app.port();
    tokio::spawn(app.run_until_stopped());
    let git = gitserver::GitServer::start().await;
    let repo = git.repo("bench", &files("bench"));
    let admin = db::users::create(&state.db, "bench", "x", shard::model::UserRole::Admin)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..APPS {
        let name = format!("metrics-{i:02}");
        let project =
            db::projects::insert(&state.db, admin.id, settings(&name, &repo.url, Some(32)))
                .await
                .unwrap();
        ids.push(
            state
                .deployer
                .request(&project, Some(admin.id), None)
                .await
                .unwrap()
                .id,
        );
    }
    let started = Instant::now();
    loop {
        let mut done = 0;
        for id in &ids {
            let d = db::deployments::find(&state.db, *id)
                .await
                .unwrap()
                .unwrap();
            match d.status.as_str() {
                "live" => done += 1,
                "failed" | "cancelled" => panic!("deploy {id} ended {}: {:?}", d.status, d.error),
                _ => {}
            }
        }
        if done == APPS {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "deploys too slow"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "{APPS} apps live in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let mut rows = Vec::new();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (idle_cpu, idle_docker, idle_rss) = measure(WINDOW).await;
    rows.push((
        "collector off (idle), 50 apps".to_string(),
        format!("shard {idle_cpu:.2} % CPU, {idle_rss:.1} MiB RSS; dockerd {idle_docker:.2} %"),
    ));
    for interval in [15u64, 1] {
        let stop = collector(&state, interval);
        tokio::time::sleep(Duration::from_secs(interval + 2)).await;
        let (cpu, docker, rss) = measure(WINDOW).await;
        stop.cancel();
        rows.push((
            format!("collector every {interval} s, 50 apps"),
            format!(
                "shard {cpu:.2} % CPU ({:+.2}), {rss:.1} MiB RSS ({:+.1}); dockerd {docker:.2} % ({:+.2})",
                cpu - idle_cpu,
                rss - idle_rss,
                docker - idle_docker
            ),
        ));
    }
    // Some proxied traffic per app, so /metrics carries every app's series.
    let client = reqwest::Client::new();
    for i in 0..APPS {
        for _ in 0..5 {
            let _ = client
                .get(format!("http://127.0.0.1:{port}/"))
                .header("host", format!("metrics-{i:02}.localhost"))
                .send()
                .await;
        }
    }
    for (path, label) in [
        ("/metrics", "GET /metrics"),
        ("/health", "GET /health (baseline)"),
    ] {
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..200 {
            let t = Instant::now();
            let body = client
                .get(format!("http://127.0.0.1:{port}{path}"))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            size = body.len();
        }
        times.sort_by(f64::total_cmp);
        rows.push((
            label.to_string(),
            format!(
                "median {:.2} ms, p99 {:.2} ms, {:.1} KiB",
                times[times.len() / 2],
                times[times.len() * 99 / 100],
                size as f64 / 1024.0
            ),
        ));
    }
    for project in db::projects::list(&state.db, None).await.unwrap() {
        let _ = state.deployer.delete_project(&project).await;
    }
    rows
}

async fn database_size() -> Vec<(String, String)> {
    let dir = tempfile::TempDir::new().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("shard.db").display()
    );
    let db = db::connect(&url).await.unwrap();
    let db = db::migrate(db, &url, None).await.unwrap();
    let owner = db::users::create(&db, "bench", "x", shard::model::UserRole::Admin)
        .await
        .unwrap();
    let now = Utc::now();
    let retention = shard::metrics::retention(&Config::default().metrics);
    let started = Instant::now();
    for i in 0..APPS {
        let name = format!("app-{i:02}");
        let project = db::projects::insert(
            &db,
            owner.id,
            settings(&name, "https://example.com/x.git", None),
        )
        .await
        .unwrap()
        .id;
        let point = |ts, n: i64| Point {
            ts,
            cpu_percent: (n % 100) as f64 / 3.0,
            memory_bytes: 20_000_000 + n,
            memory_limit_bytes: 536_870_912,
            net_rx_bytes: n * 1000,
            net_tx_bytes: n * 700,
            block_read_bytes: n * 10,
            block_write_bytes: n * 5,
            restart_count: 0,
        };
        // What the retention keeps after 90 days: 90 d of hours, 7 d of minutes, 24 h raw.
        for (resolution, step, span) in [
            (HOUR, 3600, 90 * 86_400),
            (MINUTE, 60, 7 * 86_400),
            (RAW, 15, 86_400),
        ] {
            let points: Vec<_> = (0..span / step)
                .map(|k| {
                    let ts = now - chrono::Duration::seconds(span - k * step);
                    (project, point(db::metrics::bucket_of(ts, step.max(1)), k))
                })
                .collect();
            db::metrics::insert_resolution(&db, resolution, &points)
                .await
                .unwrap();
        }
    }
    let written = started.elapsed();
    shard::metrics::maintain(&db, now, &retention)
        .await
        .unwrap();
    let rows = db::metrics::count(&db).await.unwrap();
    use sea_orm::ConnectionTrait;
    db.execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
        .await
        .unwrap();
    let bytes = std::fs::metadata(dir.path().join("shard.db"))
        .unwrap()
        .len();
    vec![(
        format!("database after 90 days, {APPS} apps (SQLite)"),
        format!(
            "{rows} sample rows, {:.1} MiB file ({:.0} KiB per app); written in {:.0} s",
            bytes as f64 / (1024.0 * 1024.0),
            bytes as f64 / 1024.0 / APPS as f64,
            written.as_secs_f64()
        ),
    )]
}

#[tokio::main]
async fn main() {
    let mut rows = database_size().await;
    rows.extend(overhead_and_scrape().await);
    println!("\n| measurement | result |\n|---|---|");
    for (what, result) in rows {
        println!("| {what} | {result} |");
    }
}
