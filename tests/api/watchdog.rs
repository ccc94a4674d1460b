//! The watchdog of running apps, against real containers: an app whose health path starts
//! failing is restarted through the health-gated switch (a `restart` deployment) with
//! `app.unhealthy` and `app.restarted` notices; an app that keeps crashing is stopped after
//! the configured restarts, shown as crashed, its owner notified, and the recovery sweep does
//! not start it again.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::gitserver::GitServer;
use crate::helpers::*;
use crate::notifications::start_receiver;

pub(crate) fn app_running(cmd: &str) -> Vec<(&'static str, Vec<u8>, bool)> {
    let dockerfile = format!(
        "FROM scratch\nLABEL test.build={}\nCOPY busybox /bin/busybox\nCOPY www /www\nEXPOSE 8080\n\
         CMD [\"/bin/busybox\", \"sh\", \"-c\", \"{cmd}\"]\n",
        uuid::Uuid::new_v4().simple()
    );
    vec![
        ("busybox", std::fs::read("/bin/busybox").unwrap(), true),
        ("Dockerfile", dockerfile.into_bytes(), false),
        ("www/index.html", b"up\n".to_vec(), false),
        ("www/health.html", b"ok\n".to_vec(), false),
    ]
}

/// The events the receiver got, in order.
fn events(received: &crate::notifications::Shared) -> Vec<String> {
    received
        .lock()
        .unwrap()
        .requests
        .iter()
        .filter_map(|(_, _, body)| serde_json::from_slice::<Value>(body).ok())
        .filter_map(|v| v["event"].as_str().map(String::from))
        .collect()
}

pub(crate) async fn until<T>(
    what: &str,
    secs: u64,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn setup(
    cmd: &str,
    restarts: u32,
) -> (
    TestApp,
    Session,
    String,
    crate::notifications::Shared,
    GitServer,
) {
    let app = spawn_app_with(move |c| {
        c.deploy.grace_secs = 0;
        c.health.interval_secs = 1;
        c.health.failures = 2;
        c.health.crash_loop_restarts = restarts;
        c.health.crash_loop_window_secs = 120;
    })
    .await;
    let admin = app.setup_admin().await;
    let (base, received) = start_receiver();
    let channel = app
        .post(
            "/api/v1/notifications/channels",
            Some(&admin.token),
            json!({"kind": "webhook", "target": format!("{base}/watch")}),
        )
        .await;
    assert_eq!(channel.status(), StatusCode::CREATED);
    let git = GitServer::start().await;
    let repo = git.repo("watched", &app_running(cmd));
    let created = app
        .post(
            "/api/v1/projects",
            Some(&admin.token),
            json!({"name": "watched", "git_url": repo.url, "health_path": "/health.html", "health_timeout_secs": 20}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let project = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let id = app.deploy(&admin, &project, json!({})).await;
    let live = app
        .wait_for(&admin, &id, FINAL, Duration::from_secs(120))
        .await;
    assert_eq!(live["status"], "live", "{live}");
    (app, admin, project, received, git)
}

#[tokio::test]
async fn an_app_that_turns_unhealthy_is_restarted_through_the_health_gate() {
    let (app, admin, project, received, _git) = setup(
        "/bin/busybox httpd -f -p 8080 -h /www & /bin/busybox sleep 4; /bin/busybox rm /www/health.html; wait",
        10,
    )
    .await;
    let restart = until("a restart deployment", 60, async || {
        let list: Vec<Value> = app
            .get(
                &format!("/api/v1/projects/{project}/deployments"),
                Some(&admin.token),
            )
            .await
            .json()
            .await
            .unwrap();
        list.into_iter()
            .find(|d| d["trigger"] == "restart" && d["status"] == "live")
    })
    .await;
    assert_eq!(restart["trigger"], "restart");
    let seen = until("the notices", 20, async || {
        let seen = events(&received);
        (seen.contains(&"app.unhealthy".to_string()) && seen.contains(&"app.restarted".to_string()))
            .then_some(seen)
    })
    .await;
    let unhealthy = seen.iter().position(|e| e == "app.unhealthy").unwrap();
    let restarted = seen.iter().position(|e| e == "app.restarted").unwrap();
    assert!(unhealthy < restarted, "{seen:?}");
    // The restarted app serves again.
    let page = crate::proxy::get_host(&app, "watched.localhost", "/").await;
    assert_eq!(page.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_crash_loop_is_stopped_shown_as_crashed_and_not_started_again() {
    let (app, admin, project, received, _git) = setup(
        "/bin/busybox httpd -p 8080 -h /www; /bin/busybox sleep 2; exit 1",
        3,
    )
    .await;
    until("the crash loop notice", 90, async || {
        events(&received)
            .contains(&"app.crash_loop".to_string())
            .then_some(())
    })
    .await;
    let view: Value = app
        .get(&format!("/api/v1/projects/{project}"), Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["runtime"], "crashed", "{view}");
    let page = crate::proxy::get_host(&app, "watched.localhost", "/").await;
    assert!(page.status().is_server_error(), "{}", page.status());
    // The recovery sweep leaves it stopped; Docker does not restart it either.
    shard::deploy::recover::sweep(&app.state.deployer)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let live = app
        .get(&format!("/api/v1/projects/{project}"), Some(&admin.token))
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(live["runtime"], "crashed", "{live}");
    let deployment = app
        .deployment(&admin, live["live_deployment"].as_str().unwrap())
        .await;
    let running = std::process::Command::new("docker")
        .args(["inspect", "-f", "{{.State.Running}}"])
        .arg(deployment["container_id"].as_str().unwrap())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&running.stdout).trim(), "false");
    let seen = events(&received);
    assert!(seen.contains(&"app.restarted".to_string()), "{seen:?}");
}
