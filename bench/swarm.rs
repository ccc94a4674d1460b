//! Swarm benchmarks (issue 13). Run: `bench/run-swarm`. Prints a table.
//!
//! Needs the two-node swarm of `scripts/swarm-lab up` (the script runs it).
//!
//! 1. Deploy to two nodes against one: shard with `runtime.kind = "swarm"` deploying a
//!    two-replica project (request → both replicas healthy and live; the image is pushed to the
//!    registry and pulled by node 2) against shard with plain Docker deploying the same app as
//!    one container, alternated, each on a fresh commit; median of 5 each.
//! 2. Node loss: a two-replica app under load (4 clients in a loop through shard's proxy), then
//!    node 2's engine stops. Measured: requests that failed, the slowest request, the time until
//!    the route table no longer lists node 2 (the swarm's detection) and until the swarm has
//!    both replicas running on node 1 again. 3 rounds (node 2 restarted between them).

#[path = "../tests/api/gitserver.rs"]
mod gitserver;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use shard::app::App;
use shard::config::{Config, RuntimeKind};
use shard::db;
use shard::state::AppState;

#[path = "app.rs"]
mod app;
use app::files;

const ROUNDS: usize = 5;
const LOSS_ROUNDS: usize = 3;
const NODE2: &str = "10.251.0.2";

fn lab(action: &str) {
    let status = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/swarm-lab"))
        .arg(action)
        .status()
        .expect("scripts/swarm-lab");
    assert!(status.success(), "swarm-lab {action}");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

async fn start(swarm: bool) -> (Arc<AppState>, tempfile::TempDir) {
    let dir = tempfile::TempDir::new().unwrap();
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    config.log.level = "error".into();
    config.deploy.grace_secs = 2;
    if swarm {
        // The shipped watcher: Docker's events, with the default poll as the fallback.
        config.runtime.kind = RuntimeKind::Swarm;
        config.registry.url = Some("10.251.0.1:5000".into());
    }
    let app = App::build(config).await.expect("app");
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    (state, dir)
}

async fn project(state: &AppState, name: &str, url: &str, replicas: i32) -> db::projects::Project {
    let owner = match db::users::find_by_username(&state.db, "bench")
        .await
        .unwrap()
    {
        Some(user) => user,
        None => db::users::create(&state.db, "bench", "x", shard::model::UserRole::Admin)
            .await
            .unwrap(),
    };
    let settings = db::projects::Settings {
        health_timeout_secs: 120,
        replicas,
        ..db::projects::Settings::new(name, url).set_by_admin()
    };
    db::projects::insert(&state.db, owner.id, settings)
        .await
        .unwrap()
}

/// Request → `live`, in seconds.
async fn deploy(state: &AppState, project: &db::projects::Project) -> (f64, uuid::Uuid) {
    let started = Instant::now();
    let d = state.deployer.request(project, None, None).await.unwrap();
    loop {
        let now = db::deployments::find(&state.db, d.id)
            .await
            .unwrap()
            .unwrap();
        match now.status.as_str() {
            "live" => return (started.elapsed().as_secs_f64(), d.id),
            "failed" | "cancelled" => panic!("deploy ended {}: {:?}", now.status, now.error),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    slowest_ms: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(port: u16, host: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let (ok, failed, slowest_ms) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let tasks = (0..4)
            .map(|_| {
                let (stop, ok, failed, slowest_ms) =
                    (stop.clone(), ok.clone(), failed.clone(), slowest_ms.clone());
                let (url, host) = (format!("http://127.0.0.1:{port}/"), host.to_string());
                tokio::spawn(async move {
                    let client = reqwest::Client::new();
                    while !stop.load(Ordering::Relaxed) {
                        let at = Instant::now();
                        let answer = client
                            .get(&url)
                            .header("host", &host)
                            .timeout(Duration::from_secs(30))
                            .send()
                            .await;
                        let good = matches!(&answer, Ok(r) if r.status().is_success());
                        if good {
                            ok.fetch_add(1, Ordering::Relaxed);
                        } else {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                        slowest_ms.fetch_max(at.elapsed().as_millis() as usize, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            slowest_ms,
            tasks,
        }
    }

    async fn finish(self) -> (usize, usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let _ = task.await;
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.slowest_ms.load(Ordering::Relaxed),
        )
    }
}

/// Whether the route table sends `deployment`'s requests to a replica on node 2.
fn on_node2(state: &AppState, deployment: uuid::Uuid) -> bool {
    state
        .proxy
        .replica_endpoints(deployment)
        .iter()
        .any(|e| e.starts_with(NODE2))
}

/// Polls `done` (on a blocking thread) until it holds, for at most 3 minutes.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    lab("up");
    let (single, _single_dir) = start(false).await;
    let (swarm, _swarm_dir) = start(true).await;
    let git = gitserver::GitServer::start().await;
    let repo_single = git.repo("single", &files("0"));
    let repo_pair = git.repo("pair", &files("0"));
    let one = project(&single, "single", &repo_single.url, 1).await;
    let pair = project(&swarm, "pair", &repo_pair.url, 2).await;

    // 1. Alternated cold deploys.
    let (mut ones, mut pairs) = (Vec::new(), Vec::new());
    let mut live = uuid::Uuid::nil();
    for round in 0..ROUNDS {
        let stamp = format!("{round}-{}", uuid::Uuid::new_v4());
        repo_single.commit(&files(&format!("single-{stamp}")), "round");
        ones.push(deploy(&single, &one).await.0);
        repo_pair.commit(&files(&format!("pair-{stamp}")), "round");
        let (secs, id) = deploy(&swarm, &pair).await;
        pairs.push(secs);
        live = id;
    }

    // 2. Node loss under load.
    tokio::time::sleep(Duration::from_secs(3)).await; // past the last drain
    let host = format!("pair.localhost:{}", swarm.port);
    let mut losses = Vec::new();
    for _ in 0..LOSS_ROUNDS {
        // Both replicas spread again (after a restart of node 2 the swarm does not move one
        // back by itself): redeploy until one runs on node 2.
        if !on_node2(&swarm, live) {
            repo_pair.commit(&files(&uuid::Uuid::new_v4().to_string()), "respread");
            live = deploy(&swarm, &pair).await.1;
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        assert!(
            on_node2(&swarm, live),
            "a replica runs on node 2 before the loss"
        );
        let load = Load::start(swarm.port, &host);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let lost = Instant::now();
        lab("stop-node2");
        let stopped = lost.elapsed().as_secs_f64();
        let s = swarm.clone();
        let routed = {
            let s = s.clone();
            tokio::task::spawn_blocking(move || {
                wait_until("routing around node 2", || !on_node2(&s, live));
                lost.elapsed().as_secs_f64()
            })
            .await
            .unwrap()
        };
        let rescheduled = tokio::task::spawn_blocking(move || {
            wait_until("both replicas on node 1", || {
                let e = s.proxy.replica_endpoints(live);
                e.len() == 2 && e.iter().all(|a| a.starts_with("127.0.0.1:"))
            });
            lost.elapsed().as_secs_f64()
        })
        .await
        .unwrap();
        let (ok, failed, slowest) = load.finish().await;
        losses.push((stopped, routed, rescheduled, ok, failed, slowest));
        lab("start-node2");
    }

    let (m_one, m_pair) = (median(ones.clone()), median(pairs.clone()));
    println!("\n| measure | value |");
    println!("|---|---|");
    println!("| deploy, plain Docker, 1 container (median of {ROUNDS}) | {m_one:.2} s |");
    println!(
        "| deploy, Swarm, 2 replicas on 2 nodes, push + pull (median of {ROUNDS}) | {m_pair:.2} s |"
    );
    println!("| ratio two-node / single-node | {:.2}× |", m_pair / m_one);
    for (i, (stopped, routed, rescheduled, ok, failed, slowest)) in losses.iter().enumerate() {
        println!(
            "| node loss {}: engine stop took {stopped:.1} s; routes drop node 2 at {routed:.1} s; both replicas on node 1 at {rescheduled:.1} s | {failed} failed of {} requests, slowest {slowest} ms |",
            i + 1,
            ok + failed
        );
    }
    println!("\nsamples: single {ones:.2?}, swarm {pairs:.2?}");
    let _ = swarm.deployer.delete_project(&pair).await;
    let _ = single.deployer.delete_project(&one).await;
}
