//! Deploy benchmarks (issue: deploy pipeline). Run: `bench/run-deploy` (or
//! `cargo run --release --example deploy-bench`). Prints a table.
//!
//! 1. Deploy overhead: shard (request → `live`) against the same steps by hand in one script
//!    (`git clone --depth 1` + `docker build` + `docker run` + poll until the page answers),
//!    alternated, each on a fresh commit so both builds are cold; median of 5 each.
//! 2. Redeploy of an unchanged commit (layer cache warm): request → `live`, median of 5.
//! 3. Queue: 100 deploy requests across 20 projects; all must end final; total time.

#[path = "../tests/api/gitserver.rs"]
mod gitserver;

use std::process::Command;
use std::time::{Duration, Instant};

use shard::app::App;
use shard::auth::Actor;
use shard::config::Config;
use shard::db;
use shard::state::AppState;
use std::sync::Arc;

#[path = "app.rs"]
mod app;
use app::files;

const ROUNDS: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

async fn until_final(state: &AppState, id: uuid::Uuid) -> String {
    loop {
        let d = db::deployments::find(&state.db, id).await.unwrap().unwrap();
        if ["live", "failed", "cancelled", "superseded"].contains(&d.status.as_str()) {
            return d.status.to_string();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn shard_deploy(state: &Arc<AppState>, project: uuid::Uuid) -> f64 {
    let started = Instant::now();
    let p = db::projects::find(&state.db, project)
        .await
        .unwrap()
        .unwrap();
    let d = state.deployer.request(&p, None, None).await.unwrap();
    let status = until_final(state, d.id).await;
    assert_eq!(status, "live", "shard deploy ended {status}");
    started.elapsed().as_secs_f64()
}

fn manual_deploy(url: &str, n: usize) -> f64 {
    let script = r#"set -e
dir=$(mktemp -d)
git clone -q --depth 1 -b main "$1" "$dir/src"
docker build -q -t "shard-bench/manual:$2" "$dir/src" >/dev/null
id=$(docker run -d --init -p 127.0.0.1::8080 "shard-bench/manual:$2")
port=$(docker port "$id" 8080/tcp | head -1 | sed 's/.*://')
until curl -sf "http://127.0.0.1:$port/" >/dev/null; do sleep 0.02; done
docker rm -f "$id" >/dev/null
rm -rf "$dir""#;
    let started = Instant::now();
    let status = Command::new("bash")
        .args(["-c", script, "manual", url, &n.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    config.log.level = "warn".into();
    config.deploy.grace_secs = 0;
    shard::telemetry::init(&config.log);
    let app = App::build(config).await.expect("app");
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    let git = gitserver::GitServer::start().await;
    let repo = git.repo("bench", &files("0"));
    let admin = db::users::create(&state.db, "bench", "x", shard::model::UserRole::Admin)
        .await
        .unwrap();
    let actor = Actor {
        user_id: admin.id,
        username: admin.username.clone(),
        role: admin.role,
        token: None,
    };
    let settings = |name: &str| db::projects::Settings::new(name, &repo.url).set_by_admin();
    let project = db::projects::insert(&state.db, actor.user_id, settings("bench"))
        .await
        .unwrap()
        .id;

    // 1. Cold deploys, alternated, each on its own new commit.
    let (mut ours, mut manual) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        repo.commit(
            &files(&format!("shard-{round}-{}", uuid::Uuid::new_v4())),
            "shard round",
        );
        ours.push(shard_deploy(&state, project).await);
        repo.commit(
            &files(&format!("manual-{round}-{}", uuid::Uuid::new_v4())),
            "manual round",
        );
        manual.push(manual_deploy(&repo.url, round));
    }
    // 2. Unchanged commit: the layers are cached.
    let mut warm = Vec::new();
    for _ in 0..ROUNDS {
        warm.push(shard_deploy(&state, project).await);
    }
    // 3. Queue: 100 requests across 20 projects.
    let mut projects = Vec::new();
    for i in 0..20 {
        projects.push(
            db::projects::insert(&state.db, actor.user_id, settings(&format!("q{i}")))
                .await
                .unwrap(),
        );
    }
    let started = Instant::now();
    let mut ids = Vec::new();
    for round in 0..5 {
        for p in &projects {
            let _ = round;
            ids.push(state.deployer.request(p, None, None).await.unwrap().id);
        }
    }
    let mut outcomes = std::collections::BTreeMap::new();
    for id in &ids {
        *outcomes.entry(until_final(&state, *id).await).or_insert(0) += 1;
    }
    let queue_secs = started.elapsed().as_secs_f64();
    let lost = 100 - outcomes.values().sum::<usize>();

    let (m_ours, m_manual, m_warm) = (
        median(ours.clone()),
        median(manual.clone()),
        median(warm.clone()),
    );
    println!("\n| measure | shard | by hand | ratio / goal |");
    println!("|---|---|---|---|");
    println!(
        "| cold deploy, request → live (median of {ROUNDS}) | {m_ours:.2} s | {m_manual:.2} s | {:.2}× (goal ≤ 1.05) |",
        m_ours / m_manual
    );
    println!("| redeploy, unchanged commit (median of {ROUNDS}) | {m_warm:.2} s | | goal ≤ 2 s |");
    println!(
        "| queue: 100 requests, 20 projects | {queue_secs:.1} s, {lost} lost, {outcomes:?} | | all final |"
    );
    println!("\nsamples: shard {ours:.2?}, manual {manual:.2?}, warm {warm:.2?}");
    for p in projects.iter().map(|p| p.id).chain([project]) {
        let _ = state.docker.remove_project(p).await;
    }
    let _ = Command::new("bash")
        .args([
            "-c",
            "docker images -q 'shard-bench/manual' | xargs -r docker rmi -f >/dev/null",
        ])
        .status();
}
