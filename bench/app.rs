//! The app the deploy benches build: busybox httpd serving one page, from `FROM scratch`
//! (nothing to pull). `stamp` goes into the image and the page, so each round builds anew.

#[allow(dead_code)]
pub fn files(stamp: &str) -> Vec<(&'static str, Vec<u8>, bool)> {
    vec![
        ("stamp", stamp.as_bytes().to_vec(), false),
        ("busybox", std::fs::read("/bin/busybox").expect("busybox-static"), true),
        (
            "Dockerfile",
            b"FROM scratch\nCOPY stamp /stamp\nCOPY busybox /bin/busybox\nCOPY www /www\nEXPOSE 8080\nCMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n".to_vec(),
            false,
        ),
        ("www/index.html", format!("stamp {stamp}\n").into_bytes(), false),
    ]
}

/// Starts shard in this process on a data dir of its own (a free port, warnings only, no
/// grace period, then `adjust`), with an admin; answers its state, the dir and the admin's id.
#[allow(dead_code)]
pub async fn start(
    adjust: impl FnOnce(&mut shard::config::Config),
) -> (
    std::sync::Arc<shard::state::AppState>,
    tempfile::TempDir,
    uuid::Uuid,
) {
    let dir = tempfile::TempDir::new().unwrap();
    let mut config = shard::config::Config {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..shard::config::Config::default()
    };
    config.log.level = "warn".into();
    config.deploy.grace_secs = 0;
    config.jobs.concurrency = 2;
    adjust(&mut config);
    let app = shard::app::App::build(config).await.expect("app");
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    let admin = shard::db::users::create(&state.db, "bench", "x", shard::model::UserRole::Admin)
        .await
        .unwrap();
    (state, dir, admin.id)
}

/// This process's resident memory, KiB (a bench runs shard in its own process).
#[allow(dead_code)]
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
