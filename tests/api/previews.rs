//! Pull-request previews against the GitHub stand-in: an opened pull request goes live at
//! `pr-<n>-<slug>` with its head commit and without the production secrets; a push to it
//! redeploys it with the same comment edited; a fork's builds nothing until a maintainer
//! approves; the oldest is evicted past `max`; a closed one is gone (containers, routes) at
//! once; one past its TTL is removed by the reconciler.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::deploy::{app_files, docker_ids};
use crate::github::{Private, private_repo};
use crate::helpers::*;

/// A `pull_request` payload as GitHub sends it (the fields shard reads, and a few more).
fn pull(action: &str, number: u32, sha: &str, head_repo: &str, title: &str) -> Value {
    json!({
        "action": action,
        "number": number,
        "pull_request": {
            "number": number,
            "title": title,
            "state": if action == "closed" { "closed" } else { "open" },
            "user": {"login": "contributor"},
            "head": {"sha": sha, "ref": format!("feature-{number}"), "repo": {"full_name": head_repo}},
            "base": {"sha": "0".repeat(40), "ref": "main", "repo": {"full_name": "acme/pr-app"}},
        },
        "repository": {"full_name": "acme/pr-app"},
    })
}

fn comment(number: u32, body: &str, association: &str) -> Value {
    json!({
        "action": "created",
        "issue": {"number": number, "pull_request": {"url": "https://example.invalid"}},
        "comment": {"body": body, "author_association": association, "user": {"login": "maintainer"}},
        "repository": {"full_name": "acme/pr-app"},
    })
}

async fn previews(app: &TestApp, s: &Session, project: &str) -> Vec<Value> {
    app.get(
        &format!("/api/v1/projects/{project}/previews"),
        Some(&s.token),
    )
    .await
    .json()
    .await
    .unwrap()
}

async fn preview(app: &TestApp, s: &Session, project: &str, number: u32) -> Value {
    previews(app, s, project)
        .await
        .into_iter()
        .find(|p| p["pr_number"] == number)
        .unwrap_or_else(|| panic!("no preview of #{number}"))
}

/// Waits until the preview of `number` is in one of `states`.
async fn until(app: &TestApp, s: &Session, project: &str, number: u32, states: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let p = preview(app, s, project, number).await;
        if states.contains(&p["state"].as_str().unwrap_or("")) {
            return p;
        }
        assert!(Instant::now() < deadline, "preview stuck: {p}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// GET `path` at `host` through shard's proxy.
async fn through_proxy(app: &TestApp, host: &str, path: &str) -> (StatusCode, String) {
    let response = app
        .client
        .get(app.url(path))
        .header("host", host)
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

fn host_of(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_start_matches("https://")
        .to_string()
}

#[tokio::test]
async fn pull_requests_get_previews_that_redeploy_wait_for_approval_and_go_away() {
    let Private {
        served,
        standin,
        app,
        dev,
        _git,
        ..
    } = private_repo("pr-app", "main").await;
    let imported: Value = app
        .post(
            "/api/v1/github/import",
            Some(&dev.token),
            json!({"repo": "acme/pr-app"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let project = imported["project"]["id"].as_str().unwrap().to_string();
    let (hook_url, secret) = {
        let hub = standin.hub.lock().unwrap();
        let (_, url, secret) = hub.hooks.last().unwrap().clone();
        (url, secret)
    };
    let deliver = |event: &'static str, delivery: String, body: Value| {
        let (app, url, secret) = (&app, hook_url.clone(), secret.clone());
        async move {
            crate::webhooks::deliver_signed(&app.client, &url, &secret, event, &delivery, &body)
                .await
        }
    };
    let head = served.commit_pull(7, &app_files("pr-seven", ""), "pr seven");

    // Previews are off by default: the delivery changes nothing.
    let off = deliver(
        "pull_request",
        "pr-0".into(),
        pull("opened", 7, &head, "acme/pr-app", "Seven"),
    )
    .await;
    assert_eq!(off.status(), StatusCode::OK);
    assert!(
        off.json::<Value>().await.unwrap()["detail"]
            .as_str()
            .unwrap()
            .contains("off")
    );

    // Turned on (bad values refused); production has a secret previews must not get, one
    // marked for previews, and a plain variable.
    let path = format!("/api/v1/projects/{project}");
    for bad in [
        json!({"previews": {"enabled": true, "ttl_days": 0, "max": 2}}),
        json!({"previews": {"enabled": true, "ttl_days": 7, "max": 1000}}),
    ] {
        let response = app
            .send(Method::PATCH, &path, Some(&dev.token), Some(bad))
            .await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    let on = app
        .send(
            Method::PATCH,
            &path,
            Some(&dev.token),
            Some(json!({"previews": {"enabled": true, "ttl_days": 7, "max": 2}})),
        )
        .await;
    assert_eq!(on.status(), StatusCode::OK);
    assert_eq!(
        on.json::<Value>().await.unwrap()["previews"],
        json!({"enabled": true, "ttl_days": 7, "max": 2, "basic_auth": false})
    );
    let env = json!({"vars": [
        {"key": "PROD_ONLY", "value": "prod-secret-value", "secret": true},
        {"key": "SHARED_KEY", "value": "shared-secret-value", "secret": true, "preview": true},
        {"key": "PLAIN", "value": "plain-value"},
    ]});
    let put = app
        .send(
            Method::PUT,
            &format!("/api/v1/projects/{project}/env"),
            Some(&dev.token),
            Some(env),
        )
        .await;
    assert_eq!(put.status(), StatusCode::OK);

    // Opened: the head commit goes live at pr-7-pr-app.
    let opened = deliver(
        "pull_request",
        "pr-1".into(),
        pull("opened", 7, &head, "acme/pr-app", "Seven"),
    )
    .await;
    assert_eq!(opened.status(), StatusCode::ACCEPTED);
    let live = until(&app, &dev, &project, 7, &["live", "failed"]).await;
    assert_eq!(live["state"], "live", "{live}");
    assert_eq!(live["head_sha"], head.as_str());
    let url = live["url"].as_str().unwrap().to_string();
    let host = host_of(&url);
    assert!(host.starts_with("pr-7-pr-app."), "{url}");
    assert_eq!(
        through_proxy(&app, &host, "/").await,
        (StatusCode::OK, "version pr-seven\n".into())
    );
    let (_, env) = through_proxy(&app, &host, "/cgi-bin/env").await;
    assert!(env.contains("PLAIN=plain-value"), "{env}");
    assert!(env.contains("SHARED_KEY=shared-secret-value"), "{env}");
    assert!(
        !env.contains("prod-secret-value") && !env.contains("PROD_ONLY"),
        "{env}"
    );
    // Production is untouched, and the preview is not a project of its own in the list.
    let projects: Vec<Value> = app
        .get("/api/v1/projects", Some(&dev.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(projects.len(), 1, "{projects:?}");
    // The pull request shows one comment with the URL, and a GitHub deployment that succeeded.
    let (comments, states) = {
        let hub = standin.hub.lock().unwrap();
        (hub.comments.clone(), hub.deployment_states.clone())
    };
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert_eq!(comments[0].1, 7);
    assert!(
        comments[0].2.contains(&url) && comments[0].2.contains("Live"),
        "{comments:?}"
    );
    let kinds: Vec<&str> = states.iter().map(|s| s.1.as_str()).collect();
    assert_eq!(kinds, ["in_progress", "success"], "{states:?}");
    assert_eq!(states[1].2.as_deref(), Some(url.as_str()));
    // The head commit's status links to the preview's build log.
    let deployment = live["deployment_id"].as_str().unwrap().to_string();
    let child = live["preview_project_id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let statuses: Vec<Value> = standin
            .hub
            .lock()
            .unwrap()
            .statuses
            .iter()
            .filter(|(_, sha, _)| *sha == head)
            .map(|(_, _, body)| body.clone())
            .collect();
        if let Some(success) = statuses.iter().find(|b| b["state"] == "success") {
            let target = success["target_url"].as_str().unwrap();
            assert!(
                target.ends_with(&format!("/projects/{child}/deployments/{deployment}")),
                "{success}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "statuses: {statuses:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A push to the pull request: redeployed, the same comment edited.
    let second = served.commit_pull(7, &app_files("pr-seven-b", ""), "pr seven again");
    let sync = deliver(
        "pull_request",
        "pr-2".into(),
        pull("synchronize", 7, &second, "acme/pr-app", "Seven"),
    )
    .await;
    assert_eq!(sync.status(), StatusCode::ACCEPTED);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let p = preview(&app, &dev, &project, 7).await;
        if p["state"] == "live" && p["head_sha"] == second.as_str() {
            break;
        }
        assert!(Instant::now() < deadline && p["state"] != "failed", "{p}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        through_proxy(&app, &host, "/").await.1,
        "version pr-seven-b\n"
    );
    assert_eq!(
        standin.hub.lock().unwrap().comments.len(),
        1,
        "edited in place"
    );

    // Basic auth in front of the previews: asked for, refused when wrong, kept out of the view.
    let guard = |auth: Value| {
        let body =
            json!({"previews": {"enabled": true, "ttl_days": 7, "max": 2, "basic_auth": auth}});
        app.send(Method::PATCH, &path, Some(&dev.token), Some(body))
    };
    assert_eq!(
        guard(json!("no-colon")).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let guarded = guard(json!("team:s3cret-pw")).await;
    assert_eq!(guarded.status(), StatusCode::OK);
    let shown = guarded.text().await.unwrap();
    assert!(
        !shown.contains("s3cret-pw") && shown.contains("\"basic_auth\":true"),
        "{shown}"
    );
    let preview_as = |password: Option<&'static str>| {
        let mut request = app.client.get(app.url("/")).header("host", &host);
        if let Some(password) = password {
            request = request.basic_auth("team", Some(password));
        }
        async move { request.send().await.unwrap() }
    };
    let asked = preview_as(None).await;
    assert_eq!(asked.status(), StatusCode::UNAUTHORIZED);
    assert!(
        asked.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    let wrong = preview_as(Some("nope")).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let right = preview_as(Some("s3cret-pw")).await;
    assert_eq!(right.status(), StatusCode::OK);
    // Production is never behind it (not deployed here: its own page, not a password prompt).
    let production = format!("pr-app.{}", host.split_once('.').unwrap().1);
    assert_eq!(
        through_proxy(&app, &production, "/").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(guard(Value::Null).await.status(), StatusCode::OK);
    assert_eq!(through_proxy(&app, &host, "/").await.0, StatusCode::OK);

    // A fork: nothing is built until a maintainer approves; a stranger's comment does not.
    let fork_head = served.commit_pull(8, &app_files("fork", ""), "from a fork");
    let fork = deliver(
        "pull_request",
        "pr-3".into(),
        pull("opened", 8, &fork_head, "mallory/pr-app", "Fork"),
    )
    .await;
    assert_eq!(fork.status(), StatusCode::OK);
    let waiting = preview(&app, &dev, &project, 8).await;
    assert_eq!(waiting["state"], "awaiting_approval", "{waiting}");
    assert!(waiting["url"].is_null());
    let nobody = deliver(
        "issue_comment",
        "pr-4".into(),
        comment(8, "/shard preview", "NONE"),
    )
    .await;
    assert_eq!(nobody.status(), StatusCode::OK);
    assert_eq!(
        preview(&app, &dev, &project, 8).await["state"],
        "awaiting_approval"
    );
    let approved = deliver(
        "issue_comment",
        "pr-5".into(),
        comment(8, "/shard preview please", "MEMBER"),
    )
    .await;
    assert_eq!(approved.status(), StatusCode::ACCEPTED);
    let fork_live = until(&app, &dev, &project, 8, &["live", "failed"]).await;
    assert_eq!(fork_live["state"], "live", "{fork_live}");
    assert_eq!(fork_live["approved_sha"], fork_head.as_str());
    // A new push to the fork waits for approval again (the approved build keeps serving).
    let fork_next = served.commit_pull(8, &app_files("fork-2", ""), "fork again");
    deliver(
        "pull_request",
        "pr-6".into(),
        pull("synchronize", 8, &fork_next, "mallory/pr-app", "Fork"),
    )
    .await;
    assert_eq!(
        preview(&app, &dev, &project, 8).await["state"],
        "awaiting_approval"
    );
    let redeploy = app
        .post(
            &format!("/api/v1/projects/{project}/previews/8/redeploy"),
            Some(&dev.token),
            json!({}),
        )
        .await;
    assert_eq!(redeploy.status(), StatusCode::CONFLICT);

    // A third pull request with max = 2: the oldest preview (#7) is evicted.
    let third = served.commit_pull(9, &app_files("nine", ""), "nine");
    deliver(
        "pull_request",
        "pr-7".into(),
        pull("opened", 9, &third, "acme/pr-app", "Nine"),
    )
    .await;
    until(&app, &dev, &project, 9, &["live"]).await;
    let evicted = preview(&app, &dev, &project, 7).await;
    assert_eq!(evicted["state"], "closed", "{evicted}");
    assert!(
        evicted["note"].as_str().unwrap().contains("evicted"),
        "{evicted}"
    );
    assert_eq!(
        through_proxy(&app, &host, "/").await.0,
        StatusCode::NOT_FOUND
    );

    // Closed: within 60 s nothing of it runs or routes.
    let nine = preview(&app, &dev, &project, 9).await;
    let child = nine["preview_project_id"].as_str().unwrap().to_string();
    let nine_host = host_of(nine["url"].as_str().unwrap());
    let closed = deliver(
        "pull_request",
        "pr-8".into(),
        pull("closed", 9, &third, "acme/pr-app", "Nine"),
    )
    .await;
    assert_eq!(closed.status(), StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let containers = docker_ids(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=shard.project={child}"),
        ]);
        let images = docker_ids(&[
            "images",
            "-q",
            "--filter",
            &format!("label=shard.project={child}"),
        ]);
        let routed = through_proxy(&app, &nine_host, "/").await.0;
        if containers.is_empty() && images.is_empty() && routed == StatusCode::NOT_FOUND {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left: {containers} {images} {routed}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(preview(&app, &dev, &project, 9).await["state"], "closed");
    let child_gone = app
        .get(&format!("/api/v1/projects/{child}"), Some(&dev.token))
        .await;
    assert_eq!(child_gone.status(), StatusCode::NOT_FOUND);

    // Past its TTL (no change for 8 days with ttl_days = 7), the reconciler removes #8.
    execute_sql(
        &app,
        "UPDATE previews SET updated_at = $1 WHERE pr_number = 8",
        vec![(chrono::Utc::now() - chrono::Duration::days(8)).into()],
    )
    .await;
    app.state.previews.reconcile().await.unwrap();
    let expired = preview(&app, &dev, &project, 8).await;
    assert_eq!(expired["state"], "closed", "{expired}");
    assert!(
        expired["note"].as_str().unwrap().contains("expired"),
        "{expired}"
    );

    // Deleting the project takes whatever previews remain.
    assert_eq!(
        app.delete_project(&dev, &project).await.status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn a_preview_past_its_ttl_is_removed_when_shard_starts_again() {
    let git = crate::gitserver::GitServer::start().await;
    let repo = git.repo("ttl-app", &app_files("main", ""));
    let dir = tempfile::TempDir::new().unwrap();
    let mut serve = crate::process::Serve::start(dir.path(), fresh_database_url().await, &[]).await;
    let client = reqwest::Client::new();
    let base = serve.base.clone();
    let bearer = serve.setup_admin().await;
    let api = |method: Method, path: &str| {
        client
            .request(method, format!("{base}/api/v1{path}"))
            .bearer_auth(&bearer)
    };
    let project = serve
        .create_project(
            &bearer,
            json!({"name": "ttl-app", "git_url": repo.url, "health_timeout_secs": 20}),
        )
        .await;
    let on = api(Method::PATCH, &format!("/projects/{project}"))
        .json(&json!({"previews": {"enabled": true, "ttl_days": 3, "max": 5}}))
        .send()
        .await
        .unwrap();
    assert_eq!(on.status(), StatusCode::OK);
    let hook: Value = api(Method::GET, &format!("/projects/{project}/webhook"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let head = repo.commit_pull(5, &app_files("five", ""), "five");
    let delivered = crate::webhooks::deliver_signed(
        &client,
        hook["url"].as_str().unwrap(),
        hook["secret"].as_str().unwrap(),
        "pull_request",
        "ttl-1",
        &pull("opened", 5, &head, "acme/pr-app", "Five"),
    )
    .await;
    assert_eq!(delivered.status(), StatusCode::ACCEPTED);
    let listed = || {
        let request = api(Method::GET, &format!("/projects/{project}/previews"));
        async move {
            request
                .send()
                .await
                .unwrap()
                .json::<Vec<Value>>()
                .await
                .unwrap()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let child = loop {
        let rows = listed().await;
        if rows[0]["state"] == "live" {
            break rows[0]["preview_project_id"].as_str().unwrap().to_string();
        }
        assert!(
            Instant::now() < deadline && rows[0]["state"] != "failed",
            "{rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // shard stops; while it is down the preview outlives its TTL (no change for 4 days).
    serve.kill();
    let url = serve
        .db_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}/shard.db", dir.path().display()));
    let db = sea_orm::Database::connect(url.as_str()).await.unwrap();
    let aged = (chrono::Utc::now() - chrono::Duration::days(4)).to_rfc3339();
    let sql = if url.starts_with("postgres") {
        format!("UPDATE previews SET updated_at = '{aged}'::timestamptz")
    } else {
        format!("UPDATE previews SET updated_at = '{aged}'")
    };
    use sea_orm::ConnectionTrait;
    db.execute_unprepared(&sql).await.unwrap();
    db.close().await.unwrap();

    // Started again: the reconciler removes it at once.
    serve.spawn().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = listed().await;
        let containers = docker_ids(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=shard.project={child}"),
        ]);
        if rows[0]["state"] == "closed" && containers.is_empty() {
            assert!(
                rows[0]["note"].as_str().unwrap().contains("expired"),
                "{rows:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not removed: {rows:?} {containers}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let deleted = api(Method::DELETE, &format!("/projects/{project}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
}
