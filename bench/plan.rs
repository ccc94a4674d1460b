//! Build-plan benchmarks (builds without a Dockerfile). Run: `bench/run-plan` (or
//! `cargo run --release --example plan-bench`). Prints a table; each figure is set against a
//! baseline measured in the same run.
//!
//! 1. Planning a 10,000-file tree (a Vite app with 10,000 source files): the median and p99 of
//!    100 plans, against tarring the same tree's build context once (what every build does).
//! 2. The Express app of `tests/apps/node-express` built cold (its manifests made unique, so no
//!    layer of an earlier run helps), then rebuilt after a code-only change: the build step's
//!    time, as a fraction of the cold one.
//! 3. The same app built from its plan (`auto`) and from the ejected Dockerfile committed to the
//!    repository (`dockerfile`), both cold: shard's peak RSS over idle during each build step.
//!
//! Needs a running Docker engine and the local base images of `scripts/test-images`
//! (`shard-test/node:18`), made from Debian packages (nothing is pulled).

#[path = "../tests/api/gitserver.rs"]
mod gitserver;

#[path = "../tests/api/apps.rs"]
mod apps;
use apps::{Files, app_files, edited};

#[path = "app.rs"]
mod app;
use app::{rss_kib, start};

use std::time::{Duration, Instant};

use shard::config::Config;
use shard::db;
use shard::state::AppState;

fn percentile(mut v: Vec<f64>, p: usize) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[(v.len() * p / 100).min(v.len() - 1)]
}

/// The Express app with a unique package name (so its install layer is nobody's cache).
fn express(stamp: &str) -> Files {
    app_files("node-express")
        .into_iter()
        .map(|(name, bytes, x)| {
            if name == "package.json" {
                let text = String::from_utf8(bytes).unwrap();
                let text = text.replace("shard-test-express", &format!("bench-express-{stamp}"));
                (name, text.into_bytes(), x)
            } else {
                (name, bytes, x)
            }
        })
        .collect()
}

/// One deploy: the build step's seconds and the peak RSS (KiB) while it built.
async fn deploy(state: &AppState, project: &db::projects::Project) -> (f64, u64) {
    let d = state.deployer.request(project, None, None).await.unwrap();
    let (mut building_since, mut build_secs, mut peak) = (None::<Instant>, 0.0, 0);
    loop {
        let now = db::deployments::find(&state.db, d.id)
            .await
            .unwrap()
            .unwrap();
        let status = now.status.to_string();
        match (status.as_str(), building_since) {
            ("building", None) => building_since = Some(Instant::now()),
            ("building", Some(_)) => peak = peak.max(rss_kib()),
            (_, Some(since)) if build_secs == 0.0 => build_secs = since.elapsed().as_secs_f64(),
            _ => {}
        }
        if ["live", "failed", "cancelled"].contains(&status.as_str()) {
            assert_eq!(status, "live", "the bench app failed: {:?}", now.error);
            return (build_secs, peak);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main]
async fn main() {
    let mut quiet = Config::default().log;
    quiet.level = "warn".into();
    shard::telemetry::init(&quiet);
    println!("\n| measure | measured | baseline | ratio / goal |");
    println!("|---|---|---|---|");

    // 1. Plan time on a 10,000-file tree.
    let tree = tempfile::TempDir::new().unwrap();
    for (name, bytes, _) in app_files("vite-site") {
        let path = tree.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    for i in 0..10_000 {
        let path = tree.path().join(format!("src/d{}/m{i}.js", i % 100));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, format!("export const v{i} = {i};\n")).unwrap();
    }
    let config = Config::default().build;
    let settings = shard::build::Settings::default();
    let mut times = Vec::new();
    for _ in 0..100 {
        let t = Instant::now();
        let plan = shard::build::plan(tree.path(), &settings, &config).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(plan.framework.as_deref(), Some("vite"));
    }
    let t = Instant::now();
    shard::docker::context::tar_context(
        tree.path(),
        shard::docker::context::Dockerfile::Generated("FROM scratch\n"),
        std::io::sink(),
    )
    .unwrap();
    let tar_ms = t.elapsed().as_secs_f64() * 1000.0;
    let (p50, p99) = (percentile(times.clone(), 50), percentile(times, 99));
    println!(
        "| plan a 10,000-file tree: median / p99 of 100 | {p50:.2} / {p99:.2} ms | tar its context once: {tar_ms:.0} ms | {:.4}× of the tar (goal ≤ 50 ms) |",
        p50 / tar_ms
    );

    // 2. Cold build and a code-only rebuild.
    let git = gitserver::GitServer::start().await;
    let (state, _dir, owner) = start(|c| {
        c.build.images.node = "shard-test/node:{version}".into();
        c.build.versions.node = vec!["18".into()];
    })
    .await;
    let stamp = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let repo = git.repo("auto", &express(&format!("a{stamp}")));
    let settings = db::projects::Settings::new("auto", &repo.url).set_by_admin();
    let auto = db::projects::insert(&state.db, owner, settings)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_kib();
    let (cold, auto_peak) = deploy(&state, &auto).await;
    repo.commit(
        &[edited(
            "node-express",
            "server.js",
            "VERSION-1",
            "VERSION-2",
        )],
        "a code-only change",
    );
    let (warm, _) = deploy(&state, &auto).await;
    println!(
        "| Express app: build step after a code-only change | {warm:.1} s | cold build {cold:.1} s | {:.3}× (goal ≤ 0.25) |",
        warm / cold
    );

    // 3. The same app from its ejected Dockerfile, cold: peak RSS while building.
    let checkout = tempfile::TempDir::new().unwrap();
    for (name, bytes, _) in express("x") {
        std::fs::write(checkout.path().join(name), bytes).unwrap();
    }
    let plan = shard::build::plan(
        checkout.path(),
        &shard::build::Settings::default(),
        &state.config.build,
    )
    .unwrap();
    let mut ejected = express(&format!("d{stamp}"));
    ejected.push(("Dockerfile", plan.dockerfile.into_bytes(), false));
    let repo = git.repo("ejected", &ejected);
    let mut settings = db::projects::Settings::new("ejected", &repo.url).set_by_admin();
    settings.build_type = shard::model::BuildType::Dockerfile;
    let own = db::projects::insert(&state.db, owner, settings)
        .await
        .unwrap();
    let (own_secs, own_peak) = deploy(&state, &own).await;
    let over = |peak: u64| peak.saturating_sub(idle) as f64 / 1024.0;
    println!(
        "| peak RSS over idle while building: auto (plan) | +{:.1} MiB ({cold:.1} s) | Dockerfile build of the same app +{:.1} MiB ({own_secs:.1} s) | idle {:.1} MiB |",
        over(auto_peak),
        over(own_peak),
        idle as f64 / 1024.0
    );
    for p in [auto.id, own.id] {
        let _ = state.docker.remove_project(p).await;
    }
}
