//! Bounds: nothing a repository, a build or a login flood does can grow shard's memory or read
//! outside the checkout. Memory is measured on a real `shard serve` process (/proc).

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::deploy::app_files;
use crate::gitserver::GitServer;
use crate::helpers::*;
use crate::process::Serve;

/// Every hash used to leave its 19 MiB block resident: RSS grew by about that much per login,
/// for good. A hundred logins, ten at a time, must leave RSS where it was.
#[tokio::test]
async fn rss_stays_flat_after_a_hundred_logins_ten_at_a_time() {
    let dir = tempfile::TempDir::new().unwrap();
    let serve = Serve::start(
        dir.path(),
        fresh_database_url().await,
        &[("SHARD_AUTH__LOGIN_ATTEMPTS_PER_IP", "1000")],
    )
    .await;
    serve.setup_admin().await;
    for _ in 0..4 {
        serve.login().await; // warm up: pools, caches, the first arenas
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = serve.status_kib("VmRSS");
    for _ in 0..10 {
        let logins: Vec<_> = (0..10).map(|_| serve.login()).collect();
        futures_util::future::join_all(logins).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = serve.status_kib("VmRSS");
    let peak = serve.status_kib("VmHWM");
    eprintln!("logins: RSS before {before} KiB, after 100 logins {after} KiB, peak {peak} KiB");
    assert!(
        after <= before + 12 * 1024,
        "RSS grew from {before} KiB to {after} KiB over 100 logins"
    );
    // Two hashes at a time (auth.hash_concurrency) of 19 MiB each, not ten.
    assert!(
        peak <= before + 64 * 1024,
        "peak RSS {peak} KiB (before {before} KiB): hashes are not bounded"
    );
}

/// A build that prints 64 MiB without a newline: the line is cut with a marker, shard's peak
/// memory stays small, the deploy finishes; a build printing more lines than the deployment
/// may keep gets a visible "log truncated" line and still goes live.
#[tokio::test]
async fn an_endless_line_is_cut_and_a_deployment_log_has_a_line_cap() {
    let git = GitServer::start().await;
    // The run id defeats Docker's layer cache, so the step really runs.
    let step = format!(
        "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo {}; /bin/busybox head -c 67108864 /dev/zero | /bin/busybox tr '\\\\000' x; echo; /bin/busybox seq 1 500\"]\n",
        uuid::Uuid::new_v4()
    );
    let repo = git.repo("loud", &app_files("1", &step));
    let dir = tempfile::TempDir::new().unwrap();
    let serve = Serve::start(
        dir.path(),
        fresh_database_url().await,
        &[("SHARD_DEPLOY__MAX_LOG_LINES", "300")],
    )
    .await;
    let token = serve.setup_admin().await;
    let project = serve
        .create_project(&token, json!({"name": "loud", "git_url": repo.url}))
        .await;
    let before = serve.status_kib("VmRSS");
    let deployment = serve
        .api(
            &token,
            Method::POST,
            &format!("/projects/{project}/deployments"),
            None,
        )
        .await;
    let id = deployment["id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    let done = loop {
        let d = serve
            .api(&token, Method::GET, &format!("/deployments/{id}"), None)
            .await;
        if FINAL.contains(&d["status"].as_str().unwrap_or("")) {
            break d;
        }
        assert!(std::time::Instant::now() < deadline, "deploy stuck: {d}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let peak = serve.status_kib("VmHWM");
    eprintln!("64 MiB line: RSS before {before} KiB, peak {peak} KiB");
    assert_eq!(done["status"], "live", "{done}");
    assert!(
        peak <= before + 48 * 1024,
        "peak RSS {peak} KiB (before the build {before} KiB)"
    );
    // The deployment turns live when its traffic switches; the log's own `live` line is
    // written right after, so a reader of the REST log may have to ask again.
    let path = format!("/deployments/{id}/logs?limit=10000");
    let mut lines = serve.api(&token, Method::GET, &path, None).await;
    for _ in 0..50 {
        if lines.as_array().unwrap().last().unwrap()["line"] == "live" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        lines = serve.api(&token, Method::GET, &path, None).await;
    }
    let lines = lines.as_array().unwrap();
    let longest = lines
        .iter()
        .map(|l| l["line"].as_str().unwrap().len())
        .max()
        .unwrap();
    assert!(
        longest <= 16 * 1024 + 64,
        "a line of {longest} bytes was kept"
    );
    let text: Vec<&str> = lines.iter().map(|l| l["line"].as_str().unwrap()).collect();
    assert!(
        text.iter()
            .any(|l| l.starts_with("xxxx") && l.ends_with("[line cut: longer than 16384 bytes]")),
        "the cut line is marked: {:?}",
        text.iter()
            .map(|l| &l[..l.len().min(120)])
            .collect::<Vec<_>>()
    );
    let output = lines.iter().filter(|l| l["stream"] == "stdout").count();
    assert!(output <= 300, "{output} output lines kept, the cap is 300");
    assert!(
        text.iter().any(|l| l.contains("log truncated")),
        "the cap is visible in the log"
    );
    assert!(!text.contains(&"500"), "lines past the cap are not kept");
    assert_eq!(
        lines.last().unwrap()["line"],
        "live",
        "status lines still arrive after the cap"
    );
}

/// A `.dockerignore` that is a symlink to a host file: the deploy fails saying so, and nothing
/// of the file appears in the deployment, its log or its error.
#[tokio::test]
async fn a_symlinked_dockerignore_is_refused_and_never_read() {
    let host_file = tempfile::NamedTempFile::new().unwrap();
    let needle = format!("host-only-{}", uuid::Uuid::new_v4().simple());
    std::fs::write(host_file.path(), format!("{needle}\n")).unwrap();
    let git = GitServer::start().await;
    let mut files = app_files("1", "");
    files.retain(|(path, _, _)| *path != ".dockerignore");
    let repo = git.repo("linked", &files);
    repo.symlink(".dockerignore", host_file.path().to_str().unwrap(), "link");
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    let project = app.project_for(&admin, "linked", &repo.url).await;
    let id = app.deploy(&admin, &project, json!({})).await;
    let done = app
        .wait_for(&admin, &id, FINAL, Duration::from_secs(120))
        .await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error_step"], "build");
    let error = done["error"].as_str().unwrap();
    assert!(error.contains("symbolic link"), "{error}");
    let logs = app.logs_text(&admin, &id).await;
    assert!(!done.to_string().contains(&needle));
    assert!(!logs.contains(&needle), "{logs}");
}
