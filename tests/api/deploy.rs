//! The deploy pipeline end to end: a real git server (git http-backend), a real Docker engine,
//! images built FROM scratch with the static busybox.

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::gitserver::GitServer;
use crate::helpers::*;

pub(crate) type Files = Vec<(&'static str, Vec<u8>, bool)>;

/// The test app's Dockerfile. Its first step is unique, so that no layer is shared with the
/// apps of tests running at the same time: each test is its own shard installation, and one
/// removing its image would remove a shared parent layer another's build just took from the
/// cache (inside one installation, removals wait for builds).
pub(crate) fn dockerfile(extra: &str) -> Vec<u8> {
    let unique = uuid::Uuid::new_v4().simple();
    format!(
        "FROM scratch\nLABEL test.build={unique}\nCOPY busybox /bin/busybox\nCOPY www /www\n{extra}EXPOSE 8080\n\
         CMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n"
    )
    .into_bytes()
}

pub(crate) fn app_files(version: &str, extra: &str) -> Files {
    vec![
        (
            "busybox",
            std::fs::read("/bin/busybox").expect("busybox-static at /bin/busybox"),
            true,
        ),
        ("Dockerfile", dockerfile(extra), false),
        (
            "www/index.html",
            format!("version {version}\n").into_bytes(),
            false,
        ),
        (
            "www/cgi-bin/env",
            b"#!/bin/busybox sh\necho 'Content-Type: text/plain'\necho\n/bin/busybox env\n"
                .to_vec(),
            true,
        ),
        (".dockerignore", b"**/*.md\n".to_vec(), false),
        (
            "www/notes.md",
            b"left out of the build context\n".to_vec(),
            false,
        ),
    ]
}

pub(crate) fn docker_ids(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

async fn spawn_deploy_app() -> TestApp {
    spawn_app_with(|c| {
        c.deploy.grace_secs = 0;
        c.jobs.concurrency = 2;
    })
    .await
}

pub(crate) async fn get_page(upstream: &str, path: &str) -> Option<(StatusCode, String)> {
    let response = reqwest::Client::new()
        .get(format!("http://{upstream}{path}"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    Some((response.status(), response.text().await.ok()?))
}

async fn wait_gone(filter: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !docker_ids(&["ps", "-aq", "--filter", filter]).is_empty() {
        assert!(
            Instant::now() < deadline,
            "containers matching {filter} remain"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn deploy_env_redeploy_rollback_and_delete() {
    let git = GitServer::start().await;
    let build_step = "ARG BUILD_MODE\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo mode=$BUILD_MODE > /www/mode.txt\"]\n";
    let repo = git.repo("web", &app_files("1", build_step));
    let app = spawn_deploy_app().await;
    let admin = app.setup_admin().await;
    let project = app.project_for(&admin, "web", &repo.url).await;
    let needle = format!("s3cret-{}", uuid::Uuid::new_v4().simple());
    let env = json!({"vars": [{"key": "GREETING", "value": "hello"}, {"key": "BUILD_MODE", "value": "fast", "build": true}, {"key": "API_SECRET", "value": needle, "secret": true}]});
    let put = app
        .send(
            Method::PUT,
            &format!("/api/v1/projects/{project}/env"),
            Some(&admin.token),
            Some(env),
        )
        .await;
    assert_eq!(put.status(), StatusCode::OK);

    let first = app.deploy(&admin, &project, json!({})).await;
    let live = app
        .wait_for(&admin, &first, FINAL, Duration::from_secs(120))
        .await;
    assert_eq!(live["status"], "live", "{live}");
    let upstream = live["upstream"].as_str().unwrap().to_string();
    assert!(upstream.starts_with("127.0.0.1:"));
    assert_eq!(live["commit_sha"].as_str().unwrap().len(), 40);
    assert_eq!(get_page(&upstream, "/").await.unwrap().1, "version 1\n");
    let (status, env_page) = get_page(&upstream, "/cgi-bin/env").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(env_page.contains("GREETING=hello"), "{env_page}");
    assert!(
        env_page.contains(&format!("API_SECRET={needle}")),
        "the secret reaches the container"
    );
    assert!(env_page.contains("PORT=8080"));
    assert_eq!(
        get_page(&upstream, "/mode.txt").await.unwrap().1,
        "mode=fast\n",
        "build-time vars reach the build"
    );
    assert_eq!(
        get_page(&upstream, "/notes.md").await.unwrap().0,
        StatusCode::NOT_FOUND
    );

    let project_view: Value = app
        .get(&format!("/api/v1/projects/{project}"), Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            project_view["status"].as_str(),
            project_view["live_deployment"].as_str()
        ),
        (Some("live"), Some(first.as_str()))
    );
    // What the projects list shows beside it: the newest deployment, its commit and who ran it.
    let latest = &project_view["latest_deployment"];
    assert_eq!(latest["id"], first.as_str(), "{project_view}");
    assert_eq!(latest["trigger"], "manual");
    assert_eq!(latest["created_by"], "admin");
    assert_eq!(latest["commit_sha"], live["commit_sha"]);
    assert_eq!(live["created_by"], "admin");
    // The status is `live` in the database a moment before the log writer has persisted the
    // last header ("==> Live at", written at the switch): read the log once it has.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut log = app.logs_text(&admin, &first).await;
    while !log.contains("==> Live at") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        log = app.logs_text(&admin, &first).await;
    }
    for header in [
        "==> Fetching",
        "==> Building",
        "==> Starting",
        "==> Health check",
        "==> Live at",
    ] {
        assert!(log.contains(header), "log lacks {header}:\n{log}");
    }
    let api_text = format!(
        "{log}{}{}",
        app.get(&format!("/api/v1/deployments/{first}"), Some(&admin.token))
            .await
            .text()
            .await
            .unwrap(),
        app.get(
            &format!("/api/v1/projects/{project}/env"),
            Some(&admin.token)
        )
        .await
        .text()
        .await
        .unwrap(),
    );
    assert!(
        !api_text.contains(&needle),
        "the secret leaked into logs or API output"
    );

    // A second commit redeploys; the old container goes away.
    let sha2 = repo.commit(
        &[("www/index.html", b"version 2\n".to_vec(), false)],
        "second",
    );
    let second = app.deploy(&admin, &project, json!({})).await;
    let live2 = app
        .wait_for(&admin, &second, FINAL, Duration::from_secs(120))
        .await;
    assert_eq!(live2["status"], "live", "{live2}");
    assert_eq!(live2["commit_sha"], sha2);
    let upstream2 = live2["upstream"].as_str().unwrap().to_string();
    assert_eq!(get_page(&upstream2, "/").await.unwrap().1, "version 2\n");
    assert_eq!(app.deployment(&admin, &first).await["status"], "superseded");
    wait_gone(&format!("label=shard.deployment={first}")).await;

    // Rollback to the first image, through the health gate.
    let rollback = app
        .deploy(&admin, &project, json!({"from_deployment": first}))
        .await;
    let live3 = app
        .wait_for(&admin, &rollback, FINAL, Duration::from_secs(60))
        .await;
    assert_eq!(
        (live3["status"].as_str(), live3["trigger"].as_str()),
        (Some("live"), Some("rollback")),
        "{live3}"
    );
    assert_eq!(live3["commit_sha"], live["commit_sha"]);
    assert_eq!(
        get_page(live3["upstream"].as_str().unwrap(), "/")
            .await
            .unwrap()
            .1,
        "version 1\n"
    );
    let history: Vec<Value> = app
        .get(
            &format!("/api/v1/projects/{project}/deployments"),
            Some(&admin.token),
        )
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = history.iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [rollback.as_str(), second.as_str(), first.as_str()],
        "newest first"
    );
    let bad_rollback = app
        .post(
            &format!("/api/v1/projects/{project}/deployments"),
            Some(&admin.token),
            json!({"from_deployment": uuid::Uuid::now_v7()}),
        )
        .await;
    assert_invalid(bad_rollback, "from_deployment").await;

    // Runtime control.
    let stopped = app
        .post(
            &format!("/api/v1/projects/{project}/stop"),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_eq!(stopped.json::<Value>().await.unwrap()["status"], "stopped");
    let started = app
        .post(
            &format!("/api/v1/projects/{project}/start"),
            Some(&admin.token),
            json!({}),
        )
        .await;
    let started: Value = started.json().await.unwrap();
    assert_eq!(started["status"], "live");
    let deadline = Instant::now() + Duration::from_secs(10);
    while get_page(started["upstream"].as_str().unwrap(), "/")
        .await
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "app did not come back after start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Deleting the project leaves nothing behind.
    let deleted = app.delete_project(&admin, &project).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let label = format!("label=shard.project={project}");
    assert_eq!(docker_ids(&["ps", "-aq", "--filter", &label]), "");
    assert_eq!(docker_ids(&["images", "-q", "--filter", &label]), "");
}

#[tokio::test]
async fn failed_deploys_leave_the_running_version_serving() {
    let git = GitServer::start().await;
    let repo = git.repo("sturdy", &app_files("1", ""));
    let app = spawn_deploy_app().await;
    let admin = app.setup_admin().await;
    let project = app.project_for(&admin, "sturdy", &repo.url).await;
    let good = app.deploy(&admin, &project, json!({})).await;
    let live = app
        .wait_for(&admin, &good, FINAL, Duration::from_secs(120))
        .await;
    assert_eq!(live["status"], "live", "{live}");
    let upstream = live["upstream"].as_str().unwrap().to_string();

    // A Dockerfile step that fails.
    repo.commit(
        &[(
            "Dockerfile",
            dockerfile("RUN [\"/bin/busybox\", \"false\"]\n"),
            false,
        )],
        "broken",
    );
    let broken = app.deploy(&admin, &project, json!({})).await;
    let failed = app
        .wait_for(&admin, &broken, FINAL, Duration::from_secs(120))
        .await;
    assert_eq!(
        (failed["status"].as_str(), failed["error_step"].as_str()),
        (Some("failed"), Some("build")),
        "{failed}"
    );
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("Step") && error.contains("false"),
        "the error names the Dockerfile step: {error}"
    );
    assert_eq!(
        get_page(&upstream, "/").await.unwrap().1,
        "version 1\n",
        "old version still serving"
    );

    // An app that never becomes healthy.
    repo.commit(
        &[
            ("Dockerfile", dockerfile(""), false),
            ("www/index.html", b"version 3\n".to_vec(), false),
        ],
        "fixed",
    );
    let patch = json!({"health_path": "/never-there", "health_timeout_secs": 3});
    app.send(
        Method::PATCH,
        &format!("/api/v1/projects/{project}"),
        Some(&admin.token),
        Some(patch),
    )
    .await;
    let unhealthy = app.deploy(&admin, &project, json!({})).await;
    let failed = app
        .wait_for(&admin, &unhealthy, FINAL, Duration::from_secs(120))
        .await;
    assert_eq!(
        (failed["status"].as_str(), failed["error_step"].as_str()),
        (Some("failed"), Some("health_check")),
        "{failed}"
    );
    assert!(
        failed["error"].as_str().unwrap().contains("404"),
        "{failed}"
    );
    assert_eq!(
        get_page(&upstream, "/").await.unwrap().1,
        "version 1\n",
        "old version still serving"
    );
    wait_gone(&format!("label=shard.deployment={unhealthy}")).await;
    let view: Value = app
        .get(&format!("/api/v1/projects/{project}"), Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["live_deployment"], good.as_str());
    app.delete_project(&admin, &project).await;
}

#[tokio::test]
async fn newer_requests_supersede_queued_ones_and_cancel_stops_a_build() {
    let git = GitServer::start().await;
    let repo = git.repo(
        "slow",
        &app_files("1", "RUN [\"/bin/busybox\", \"sleep\", \"120\"]\n"),
    );
    let app = spawn_deploy_app().await;
    let admin = app.setup_admin().await;
    let project = app.project_for(&admin, "slow", &repo.url).await;
    let started = Instant::now();

    let a = app.deploy(&admin, &project, json!({})).await;
    app.wait_for(&admin, &a, &["building"], Duration::from_secs(60))
        .await;
    let b = app.deploy(&admin, &project, json!({})).await;
    let c = app.deploy(&admin, &project, json!({})).await;
    let b_view = app
        .wait_for(&admin, &b, FINAL, Duration::from_secs(5))
        .await;
    assert_eq!(b_view["status"], "cancelled");
    assert!(
        b_view["error"].as_str().unwrap().contains("superseded"),
        "{b_view}"
    );
    assert_eq!(
        app.deployment(&admin, &c).await["status"],
        "queued",
        "one running deploy per project"
    );

    let cancel = app
        .post(
            &format!("/api/v1/deployments/{a}/cancel"),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_eq!(cancel.status(), StatusCode::ACCEPTED);
    let a_view = app
        .wait_for(&admin, &a, FINAL, Duration::from_secs(15))
        .await;
    assert_eq!(a_view["status"], "cancelled", "{a_view}");
    // C runs next; cancel it too, queued or building.
    let cancel = app
        .post(
            &format!("/api/v1/deployments/{c}/cancel"),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_eq!(cancel.status(), StatusCode::ACCEPTED);
    assert_eq!(
        app.wait_for(&admin, &c, FINAL, Duration::from_secs(15))
            .await["status"],
        "cancelled"
    );
    assert!(
        started.elapsed() < Duration::from_secs(100),
        "the 120 s build step was stopped"
    );
    let again = app
        .post(
            &format!("/api/v1/deployments/{a}/cancel"),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_error(again, StatusCode::CONFLICT, "conflict").await;
    wait_gone(&format!("label=shard.project={project}")).await;
    app.delete_project(&admin, &project).await;
}

#[tokio::test]
async fn other_users_deployments_are_404() {
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    let bob = app.member(&admin, "bob").await;
    let alice = app.member(&admin, "alice").await;
    let project = app.create_project(&bob, "bobs").await;
    let id = project["id"].as_str().unwrap();
    let response = app
        .post(
            &format!("/api/v1/projects/{id}/deployments"),
            Some(&alice.token),
            json!({}),
        )
        .await;
    assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    let deployment = app.deploy(&bob, id, json!({})).await;
    for path in [
        format!("/api/v1/deployments/{deployment}"),
        format!("/api/v1/deployments/{deployment}/logs"),
    ] {
        assert_error(
            app.get(&path, Some(&alice.token)).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    let cancel = app
        .post(
            &format!("/api/v1/deployments/{deployment}/cancel"),
            Some(&alice.token),
            json!({}),
        )
        .await;
    assert_error(cancel, StatusCode::NOT_FOUND, "not_found").await;
    let stop = app
        .post(
            &format!("/api/v1/projects/{id}/stop"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_error(stop, StatusCode::CONFLICT, "conflict").await;
}

#[tokio::test]
async fn a_deploy_killed_mid_build_ends_interrupted_and_the_live_app_survives() {
    let git = GitServer::start().await;
    let repo = git.repo("survivor", &app_files("1", ""));
    let dir = tempfile::TempDir::new().unwrap();
    let mut serve = crate::process::Serve::start(
        dir.path(),
        fresh_database_url().await,
        &[("SHARD_DEPLOY__GRACE_SECS", "0")],
    )
    .await;
    let client = reqwest::Client::new();
    let base = serve.base.clone();
    let bearer = serve.setup_admin().await;
    let api = |method: Method, path: &str| {
        client
            .request(method, format!("{base}/api/v1{path}"))
            .bearer_auth(&bearer)
    };
    let project = serve
        .create_project(&bearer, json!({"name": "survivor", "git_url": repo.url}))
        .await;
    let status_of = |id: String| {
        let request = api(Method::GET, &format!("/deployments/{id}"));
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let wait = |id: String, statuses: &'static [&'static str]| {
        let status_of = &status_of;
        async move {
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let d = status_of(id.clone()).await;
                if statuses.contains(&d["status"].as_str().unwrap_or("")) {
                    return d;
                }
                assert!(Instant::now() < deadline, "stuck: {d}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let deploy = || {
        let request =
            api(Method::POST, &format!("/projects/{project}/deployments")).json(&json!({}));
        async move {
            request.send().await.unwrap().json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };

    let first = deploy().await;
    let live = wait(first.clone(), FINAL).await;
    assert_eq!(live["status"], "live", "{live}");
    let upstream = live["upstream"].as_str().unwrap().to_string();

    repo.commit(
        &[(
            "Dockerfile",
            dockerfile("RUN [\"/bin/busybox\", \"sleep\", \"120\"]\n"),
            false,
        )],
        "slow",
    );
    let slow = deploy().await;
    wait(slow.clone(), &["building"]).await;
    serve.kill(); // SIGKILL
    serve.spawn().await;
    let ended = wait(slow.clone(), FINAL).await;
    assert_eq!(ended["status"], "failed", "{ended}");
    assert!(
        ended["error"].as_str().unwrap().contains("interrupted"),
        "{ended}"
    );
    assert_eq!(
        docker_ids(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=shard.deployment={slow}")
        ]),
        "",
        "no orphan container"
    );
    assert_eq!(status_of(first.clone()).await["status"], "live");
    assert_eq!(
        get_page(&upstream, "/").await.unwrap().1,
        "version 1\n",
        "the live app is still served"
    );

    let deleted = api(Method::DELETE, &format!("/projects/{project}"))
        .send()
        .await
        .unwrap();
    let status = deleted.status();
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "{}",
        deleted.text().await.unwrap()
    );
}

#[tokio::test]
async fn private_repos_limits_restart_and_image_pruning() {
    use base64::Engine as _;
    let token = format!("ghp_{}", uuid::Uuid::new_v4().simple());
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
    let git = GitServer::start_with_auth(Some(format!("Basic {basic}"))).await;
    let repo = git.repo("private", &app_files("1", ""));
    let app = spawn_app_with(|c| {
        c.deploy.grace_secs = 0;
        c.deploy.keep_images = 1;
    })
    .await;
    let admin = app.setup_admin().await;
    let response = app
        .post(
            "/api/v1/projects",
            Some(&admin.token),
            json!({"name": "private", "git_url": repo.url, "memory_limit_mb": 64}),
        )
        .await;
    let project = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Without the token the fetch is refused.
    let refused = app.deploy(&admin, &project, json!({})).await;
    let failed = app
        .wait_for(&admin, &refused, FINAL, Duration::from_secs(60))
        .await;
    assert_eq!(
        (failed["status"].as_str(), failed["error_step"].as_str()),
        (Some("failed"), Some("fetch")),
        "{failed}"
    );

    // With SHARD_GIT_TOKEN (a secret) it deploys, and the token shows up nowhere.
    let env = json!({"vars": [{"key": "SHARD_GIT_TOKEN", "value": token, "secret": true}]});
    app.send(
        Method::PUT,
        &format!("/api/v1/projects/{project}/env"),
        Some(&admin.token),
        Some(env),
    )
    .await;
    let first = app.deploy(&admin, &project, json!({})).await;
    let live = app
        .wait_for(&admin, &first, FINAL, Duration::from_secs(120))
        .await;
    assert_eq!(live["status"], "live", "{live}");
    let upstream = live["upstream"].as_str().unwrap().to_string();
    let (_, env_page) = get_page(&upstream, "/cgi-bin/env").await.unwrap();
    assert!(
        !env_page.contains("SHARD_GIT_TOKEN"),
        "the git token is not injected into the app"
    );
    let everything = format!(
        "{}{}{}",
        app.logs_text(&admin, &first).await,
        app.logs_text(&admin, &refused).await,
        app.get(
            &format!("/api/v1/projects/{project}/deployments"),
            Some(&admin.token)
        )
        .await
        .text()
        .await
        .unwrap()
    );
    assert!(!everything.contains(&token), "the git token leaked");

    // The memory limit reaches the container.
    let container = docker_ids(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=shard.deployment={first}"),
    ]);
    let memory = docker_ids(&["inspect", "-f", "{{.HostConfig.Memory}}", &container]);
    assert_eq!(memory, (64 * 1024 * 1024).to_string());

    // Restart is a new container from the same image through the health gate, then the
    // switch: the old container serves until the new one is live.
    let old_upstream = app.deployment(&admin, &first).await["upstream"]
        .as_str()
        .unwrap()
        .to_string();
    let restarted = app
        .post(
            &format!("/api/v1/projects/{project}/restart"),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_eq!(restarted.status(), StatusCode::OK);
    let restarted: Value = restarted.json().await.unwrap();
    assert_eq!(restarted["trigger"], "restart");
    assert_eq!(restarted["from_deployment"].as_str(), Some(first.as_str()));
    let restart_id = restarted["id"].as_str().unwrap().to_string();
    let live = app
        .wait_for(&admin, &restart_id, FINAL, Duration::from_secs(60))
        .await;
    assert_eq!(live["status"], "live", "{live}");
    let upstream = live["upstream"].as_str().unwrap().to_string();
    assert_ne!(upstream, old_upstream, "a new container serves");
    assert!(
        get_page(&upstream, "/").await.is_some(),
        "the app serves after restart"
    );
    assert_eq!(app.deployment(&admin, &first).await["status"], "superseded");
    // The restart runs the first deployment's image: that image is the one to prune next.
    let first_image = format!("shard/private:{first}");
    let first = restart_id;

    // With keep_images = 1, the next live deploy prunes the first image; rollback to it is refused.
    repo.commit(
        &[(
            "www/index.html",
            format!("version {}\n", uuid::Uuid::new_v4()).into_bytes(),
            false,
        )],
        "second",
    );
    let second = app.deploy(&admin, &project, json!({})).await;
    assert_eq!(
        app.wait_for(&admin, &second, FINAL, Duration::from_secs(120))
            .await["status"],
        "live"
    );
    // Pruning follows the old container's removal (after the grace period, 0 here).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let first_view = app.deployment(&admin, &first).await;
        if first_view["image"].is_null() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old image was not pruned: {first_view}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(docker_ids(&["images", "-q", &first_image]), "");
    let rollback = app
        .post(
            &format!("/api/v1/projects/{project}/deployments"),
            Some(&admin.token),
            json!({"from_deployment": first}),
        )
        .await;
    assert_error(rollback, StatusCode::CONFLICT, "conflict").await;
    app.delete_project(&admin, &project).await;
}
