//! Hostile-tenant benchmarks (issue: hostile tenants). Run: `bench/run-hostile` (or
//! `cargo run --release --example hostile-bench`). Prints a table; each figure is a ratio to
//! its own baseline measured in the same run.
//!
//! 1. Checkout bomb: one 1 MiB blob under 2048 names (2 GiB on disk) deployed with
//!    `deploy.max_checkout_mb = 64`; the data dir's peak growth while it runs, against the cap.
//! 2. Two concurrent builds of a 1 GiB context: the peak RSS of this process (shard runs in
//!    it) over its idle RSS.
//! 3. A fork-bomb build (default `deploy.build_pids`): another app's request latency while it
//!    runs against the same app idle, p99 of sequential requests.

#[path = "../tests/api/gitserver.rs"]
mod gitserver;

use std::sync::Arc;
use std::time::{Duration, Instant};

use shard::config::Config;
use shard::db;
use shard::state::AppState;

#[path = "app.rs"]
mod app;
use app::files;
use app::{rss_kib, start};

async fn until_final(state: &AppState, id: uuid::Uuid) -> String {
    loop {
        let d = db::deployments::find(&state.db, id).await.unwrap().unwrap();
        if ["live", "failed", "cancelled", "superseded"].contains(&d.status.as_str()) {
            return d.status.to_string();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn tree_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

fn p50(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn p99(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

async fn project(
    state: &AppState,
    owner: uuid::Uuid,
    name: &str,
    url: &str,
) -> db::projects::Project {
    db::projects::insert(
        &state.db,
        owner,
        db::projects::Settings::new(name, url).set_by_admin(),
    )
    .await
    .unwrap()
}

#[tokio::main]
async fn main() {
    let mut quiet = Config::default().log;
    quiet.level = "warn".into();
    shard::telemetry::init(&quiet);
    let git = gitserver::GitServer::start().await;
    println!("\n| measure | measured | baseline | ratio / goal |");
    println!("|---|---|---|---|");

    // 1. Checkout bomb under a 64 MiB cap.
    let (state, dir, owner) = start(|c| c.deploy.max_checkout_mb = 64).await;
    let repo = git.repo("bomb", &files("bomb"));
    repo.commit_bomb(2048, 1 << 20);
    let p = project(&state, owner, "bomb", &repo.url).await;
    let before = tree_bytes(dir.path());
    let d = state.deployer.request(&p, None, None).await.unwrap();
    let mut peak = before;
    loop {
        peak = peak.max(tree_bytes(dir.path()));
        let now = db::deployments::find(&state.db, d.id)
            .await
            .unwrap()
            .unwrap();
        if ["failed", "live", "cancelled"].contains(&now.status.as_str()) {
            assert_eq!(now.status.as_str(), "failed");
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let bomb_growth = peak.saturating_sub(before) as f64 / (1 << 20) as f64;
    println!(
        "| checkout bomb (2 GiB on disk, cap 64 MiB): peak data-dir growth | {bomb_growth:.1} MiB | cap 64 MiB | {:.3}× (goal ≤ 2×) |",
        bomb_growth / 64.0
    );
    drop(state);

    // 2. Two concurrent builds of a 1 GiB context (1,024 files of 1 MiB), the peak RSS split
    // by the step the deployments are in.
    let (state, _dir2, owner) = start(|_| {}).await;
    // Written by the git server's helper one file at a time: this process never holds them.
    let repo = git.repo("big", &files("big"));
    repo.commit_large(1024, 1 << 20);
    let a = project(&state, owner, "big-a", &repo.url).await;
    let b = project(&state, owner, "big-b", &repo.url).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = rss_kib();
    let ids = [
        state.deployer.request(&a, None, None).await.unwrap().id,
        state.deployer.request(&b, None, None).await.unwrap().id,
    ];
    let started = Instant::now();
    // Peak RSS while any deployment fetches, and while any builds.
    let (mut fetching, mut building) = (0, 0);
    loop {
        let mut statuses = Vec::new();
        for id in ids {
            statuses.push(
                db::deployments::find(&state.db, id)
                    .await
                    .unwrap()
                    .unwrap()
                    .status
                    .to_string(),
            );
        }
        let rss = rss_kib();
        if statuses.iter().any(|s| s == "fetching") {
            fetching = fetching.max(rss);
        }
        if statuses.iter().any(|s| s == "building") {
            building = building.max(rss);
        }
        if statuses
            .iter()
            .all(|s| ["live", "failed", "cancelled", "superseded"].contains(&s.as_str()))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let build_secs = started.elapsed().as_secs_f64();
    for id in ids {
        let d = db::deployments::find(&state.db, id).await.unwrap().unwrap();
        assert_eq!(d.status.as_str(), "live", "a 1 GiB build: {:?}", d.error);
    }
    let over = |peak: u64| peak.saturating_sub(idle) as f64 / 1024.0;
    println!(
        "| two concurrent 1 GiB deploys ({build_secs:.0} s): peak RSS over idle while building | +{:.1} MiB | idle {:.1} MiB | goal ≤ +64 MiB |",
        over(building),
        idle as f64 / 1024.0
    );
    println!(
        "| the same, while fetching and checking out (gix) | +{:.1} MiB | idle {:.1} MiB | (the fetch, not the build) |",
        over(fetching),
        idle as f64 / 1024.0
    );
    for p in [a.id, b.id] {
        let _ = state.docker.remove_project(p).await;
    }

    // 3. Another app's latency during a fork-bomb build.
    let steady_repo = git.repo("steady", &files("steady"));
    let steady = project(&state, owner, "steady", &steady_repo.url).await;
    let live = state.deployer.request(&steady, None, None).await.unwrap();
    let status = until_final(&state, live.id).await;
    let d = db::deployments::find(&state.db, live.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, "live", "{:?}", d.error);
    let upstream = db::deployments::find(&state.db, live.id)
        .await
        .unwrap()
        .unwrap()
        .upstream
        .unwrap();
    let client = reqwest::Client::new();
    let url = format!("http://{upstream}/");
    let sample = async |until: &dyn Fn() -> bool| {
        let mut times = Vec::new();
        while !until() || times.len() < 50 {
            let t = Instant::now();
            let ok = client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            assert!(ok, "the other app stopped answering");
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let idle_times = sample(&|| Instant::now() > deadline).await;
    let mut bomb_files = files("forkbomb");
    bomb_files[2].1 = b"FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"b() { b | b; }; b\"]\n".to_vec();
    let bomb_repo = git.repo("forkbomb", &bomb_files);
    let bomb = project(&state, owner, "forkbomb", &bomb_repo.url).await;
    let mut bomb_times = Vec::new();
    let mut bomb_outcomes = Vec::new();
    for _ in 0..3 {
        let d = state.deployer.request(&bomb, None, None).await.unwrap();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = {
            let (state, done) = (state.clone(), done.clone());
            tokio::spawn(async move {
                let status = until_final(&state, d.id).await;
                done.store(true, std::sync::atomic::Ordering::Relaxed);
                status
            })
        };
        let flag = done.clone();
        bomb_times.extend(sample(&|| flag.load(std::sync::atomic::Ordering::Relaxed)).await);
        bomb_outcomes.push(watcher.await.unwrap());
    }
    let (idle_p99, bomb_p99) = (p99(idle_times.clone()), p99(bomb_times.clone()));
    let (idle_p50, bomb_p50) = (p50(idle_times.clone()), p50(bomb_times.clone()));
    for p in [steady.id, bomb.id] {
        let _ = state.docker.remove_project(p).await;
    }

    println!(
        "| other app during fork-bomb builds ({bomb_outcomes:?}): p99 of {} requests | {bomb_p99:.2} ms | idle p99 {idle_p99:.2} ms ({} requests) | {:.2}× (goal ≤ 2×) |",
        bomb_times.len(),
        idle_times.len(),
        bomb_p99 / idle_p99
    );
    println!(
        "| the same, median | {bomb_p50:.2} ms | idle median {idle_p50:.2} ms | {:.2}× |",
        bomb_p50 / idle_p50
    );
}
