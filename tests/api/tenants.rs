//! Hostile tenants: what a team admin, a repository or a web page must not get through.
//! Each test here failed on the code before the hostile-tenants work.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{FINAL, assert_invalid, spawn_app_with};

/// An HTTP server on 127.0.0.1 that answers 404 to everything and records every
/// `Authorization` header it was sent: where a credential must never arrive.
pub struct Catcher {
    pub base: String,
    pub seen: Arc<Mutex<Vec<String>>>,
}

impl Catcher {
    pub fn start() -> Catcher {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let data = web::Data::new(seen.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            App::new().app_data(data.clone()).default_service(web::to(
                |req: HttpRequest, seen: web::Data<Arc<Mutex<Vec<String>>>>| async move {
                    let auth = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    seen.lock().unwrap().push(auth);
                    HttpResponse::NotFound().finish()
                },
            ))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Catcher {
            base: format!("http://127.0.0.1:{port}"),
            seen,
        }
    }

    /// Whether any request reached it, and whether any carried a credential.
    pub fn requests(&self) -> (usize, usize) {
        let seen = self.seen.lock().unwrap();
        (seen.len(), seen.iter().filter(|a| !a.is_empty()).count())
    }
}

#[tokio::test]
async fn a_git_token_is_sent_only_to_the_host_it_was_saved_for() {
    let app = spawn_app_with(|c| c.git.allow_private_networks = true).await;
    let admin = app.setup_admin().await;
    let member = app.member(&admin, "mallory").await;
    let catcher = Catcher::start();
    let project = app
        .project_for(&member, "tokened", "http://localhost:9/acme/app.git")
        .await;
    let env_path = format!("/api/v1/projects/{project}/env");
    let env = |vars: Value| {
        app.send(
            reqwest::Method::PUT,
            &env_path,
            Some(&member.token),
            Some(json!({ "vars": vars })),
        )
    };
    let saved = env(
        json!([{"key": "SHARD_GIT_TOKEN", "value": "ghp_secret_for_localhost_9", "secret": true}]),
    )
    .await;
    assert_eq!(saved.status(), StatusCode::OK);

    // The URL moves to another origin: the token is not carried along.
    let moved = app
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/projects/{project}"),
            Some(&member.token),
            Some(json!({"git_url": format!("{}/steal.git", catcher.base)})),
        )
        .await;
    assert_eq!(moved.status(), StatusCode::OK);
    let listed: Value = app
        .get(
            &format!("/api/v1/projects/{project}/env"),
            Some(&member.token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["vars"], json!([]), "{listed}");

    let id = app.deploy(&member, &project, json!({})).await;
    let done = app
        .wait_for(&member, &id, FINAL, Duration::from_secs(60))
        .await;
    assert_eq!(done["status"], "failed", "{done}");
    let (requests, with_credentials) = catcher.requests();
    assert!(requests > 0, "the fetch never reached the new URL");
    assert_eq!(with_credentials, 0, "a credential was sent to the new host");
}

#[tokio::test]
async fn a_secret_turns_plain_only_with_a_new_value() {
    let app = spawn_app_with(|_| {}).await;
    let admin = app.setup_admin().await;
    let project = app.create_project(&admin, "sealed").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let env_path = format!("/api/v1/projects/{project}/env");
    let put = |vars: Value| {
        app.send(
            reqwest::Method::PUT,
            &env_path,
            Some(&admin.token),
            Some(json!({ "vars": vars })),
        )
    };
    let saved = put(json!([{"key": "API_KEY", "value": "hunter2-hunter2", "secret": true}])).await;
    assert_eq!(saved.status(), StatusCode::OK);
    // Unsealing without a value would show the stored secret to every reader.
    assert_invalid(
        put(json!([{"key": "API_KEY", "secret": false}])).await,
        "vars[0].secret",
    )
    .await;
    let listed: Value = app
        .get(
            &format!("/api/v1/projects/{project}/env"),
            Some(&admin.token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["vars"][0]["secret"], true, "{listed}");
    assert_eq!(listed["vars"][0]["value"], Value::Null, "{listed}");
    // With a new value it may.
    let plain = put(json!([{"key": "API_KEY", "value": "public", "secret": false}])).await;
    assert_eq!(plain.status(), StatusCode::OK);
    let listed: Value = plain.json().await.unwrap();
    assert_eq!(listed["vars"][0]["value"], "public", "{listed}");
}

#[tokio::test]
async fn the_dashboard_refuses_to_be_framed_and_runs_under_a_strict_policy() {
    let app = spawn_app_with(|_| {}).await;
    for path in ["/", "/cli", "/api/v1/auth/me", "/health"] {
        let response = app.get(path, None).await;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        let csp = header("content-security-policy");
        for part in [
            "frame-ancestors 'none'",
            "script-src 'self'",
            "object-src 'none'",
        ] {
            assert!(csp.contains(part), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert!(!header("referrer-policy").is_empty(), "{path}");
    }
    // A CLI sign-in's link carries no code: it is typed from the terminal.
    let started: Value = app
        .post("/api/v1/cli/logins", None, json!({"name": "laptop"}))
        .await
        .json()
        .await
        .unwrap();
    let code = started["code"].as_str().unwrap();
    let link = started["verify_url"].as_str().unwrap();
    assert!(link.ends_with("/cli"), "{link}");
    assert!(!link.contains(code), "{link}");
}

#[tokio::test]
async fn the_outbound_guard_fails_closed_and_checks_at_connect_time() {
    let app = spawn_app_with(|_| {}).await;
    let admin = app.setup_admin().await;
    let member = app.member(&admin, "mallory").await;

    // A name that does not resolve yet may be saved (its DNS may come later), but nothing
    // connects to it: the fetch and the delivery refuse it, failing closed.
    let project = app
        .project_for(&member, "nowhere", "https://no-such-host.invalid/a.git")
        .await;
    let id = app.deploy(&member, &project, json!({})).await;
    let done = app
        .wait_for(&member, &id, FINAL, Duration::from_secs(60))
        .await;
    assert_eq!(done["status"], "failed", "{done}");
    let error = done["error"].to_string();
    assert!(error.contains("does not resolve"), "{done}");
    let unresolved: Value = app
        .post(
            "/api/v1/notifications/channels",
            Some(&member.token),
            json!({"kind": "webhook", "target": "https://no-such-host.invalid/hook"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let unresolved = unresolved["id"].as_str().unwrap().to_string();
    let error = delivery_error(&app, &member, &unresolved).await;
    assert!(error.starts_with("refused"), "{error}");

    // A destination that passed its check and now resolves to loopback (a rebinding name, here
    // `localhost` saved under a member's name) is refused when the delivery connects, and the
    // member learns only that it was refused.
    let catcher = Catcher::start();
    let port = catcher.base.rsplit(':').next().unwrap().to_string();
    let created: Value = app
        .post(
            "/api/v1/notifications/channels",
            Some(&admin.token),
            json!({"kind": "webhook", "target": format!("http://localhost:{port}/hook")}),
        )
        .await
        .json()
        .await
        .unwrap();
    let channel = created["id"].as_str().unwrap().to_string();
    let member_id: Value = app
        .get("/api/v1/auth/me", Some(&member.token))
        .await
        .json()
        .await
        .unwrap();
    let member_id = uuid::Uuid::parse_str(member_id["id"].as_str().unwrap()).unwrap();
    crate::helpers::execute_sql(
        &app,
        "UPDATE notification_channels SET user_id = $1 WHERE id = $2",
        vec![
            member_id.into(),
            uuid::Uuid::parse_str(&channel).unwrap().into(),
        ],
    )
    .await;
    let error = delivery_error(&app, &member, &channel).await;
    assert!(error.starts_with("refused"), "{error}");
    assert!(!error.contains(&port), "{error}");
    assert_eq!(catcher.requests().0, 0, "the delivery reached loopback");
}

/// Sends a test notice through `channel` as `who` and answers the first attempt's error.
async fn delivery_error(
    app: &crate::helpers::TestApp,
    who: &crate::helpers::Session,
    channel: &str,
) -> String {
    let queued = app
        .post(
            &format!("/api/v1/notifications/channels/{channel}/test"),
            Some(&who.token),
            json!({}),
        )
        .await;
    assert_eq!(queued.status(), StatusCode::ACCEPTED);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let list: Value = app
            .get(
                &format!("/api/v1/notifications/channels/{channel}/deliveries"),
                Some(&who.token),
            )
            .await
            .json()
            .await
            .unwrap();
        if let Some(error) = list[0]["last_error"].as_str() {
            return error.to_string();
        }
        assert!(std::time::Instant::now() < deadline, "no attempt: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Deploys the fixture's project (it fails at fetch: its URL does not resolve here) and waits.
async fn failed_deploy(app: &crate::helpers::TestApp, f: &crate::teams::Fixture) {
    let olive = crate::helpers::Session {
        token: f.person("olive").token.clone(),
        refresh: String::new(),
    };
    let id = app.deploy(&olive, &f.project, json!({})).await;
    let done = app
        .wait_for(&olive, &id, FINAL, Duration::from_secs(60))
        .await;
    assert_eq!(done["status"], "failed", "{done}");
}

#[tokio::test]
async fn a_projects_notices_go_to_its_team_by_role_and_stop_for_those_who_left() {
    // Receivers on loopback: this test is about who hears, not about egress.
    let app = spawn_app_with(|c| c.git.allow_private_networks = true).await;
    let f = crate::teams::fixture(&app).await;
    let olive = crate::helpers::Session {
        token: f.person("olive").token.clone(),
        refresh: String::new(),
    };
    // The fixture's own deploy ends before anyone listens.
    app.wait_for(&olive, &f.deployment, FINAL, Duration::from_secs(60))
        .await;
    // Its notices are queued a moment after the status is written.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut receivers = Vec::new();
    for name in ["olive", "mia", "vic"] {
        let (base, received) = crate::notifications::start_receiver();
        let created = app
            .post(
                "/api/v1/notifications/channels",
                Some(&f.person(name).token),
                json!({"kind": "webhook", "target": format!("{base}/{name}"), "events": ["deploy.failed"]}),
            )
            .await;
        assert_eq!(created.status(), StatusCode::CREATED);
        receivers.push((name, received));
    }
    let count = |name: &str| {
        let received = &receivers.iter().find(|(n, _)| *n == name).unwrap().1;
        received.lock().unwrap().requests.len()
    };
    let wait_for = |name: &'static str, at_least: usize| {
        let count = &count;
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while count(name) < at_least {
                assert!(std::time::Instant::now() < deadline, "{name} heard nothing");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    failed_deploy(&app, &f).await;
    // The creator and a member hear of it through their own channels; a viewer does not.
    wait_for("olive", 1).await;
    wait_for("mia", 1).await;
    assert_eq!(count("vic"), 0);

    // Mia leaves the team: the next failure reaches olive, not her.
    let removed = app
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/teams/{}/members/{}", f.team, f.person("mia").id),
            Some(&f.person("olive").token),
            None,
        )
        .await;
    assert!(removed.status().is_success(), "{}", removed.status());
    failed_deploy(&app, &f).await;
    wait_for("olive", 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        count("mia"),
        1,
        "a former member still hears of the team's project"
    );
}

#[tokio::test]
async fn a_token_limited_to_projects_reads_nothing_of_the_account() {
    let app = spawn_app_with(|_| {}).await;
    let f = crate::teams::fixture(&app).await;
    let olive = &f.person("olive");
    let minted: Value = app
        .post(
            "/api/v1/tokens",
            Some(&olive.token),
            json!({"name": "ci", "scope": "read", "project_ids": [f.project]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let narrow = minted["token"].as_str().unwrap().to_string();
    // Its project, yes; the account's GitHub repositories, no.
    let project = app
        .get(&format!("/api/v1/projects/{}", f.project), Some(&narrow))
        .await;
    assert_eq!(project.status(), StatusCode::OK);
    let repos = app.get("/api/v1/github/repos", Some(&narrow)).await;
    assert_eq!(repos.status(), StatusCode::FORBIDDEN);

    // Nor the notices of every project on the user's topic.
    use futures_util::{SinkExt, StreamExt};
    let url = app.base.replace("http://", "ws://") + "/api/v1/ws";
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut ask = async |value: Value| -> Value {
        ws.send(tokio_tungstenite::tungstenite::Message::Text(
            value.to_string().into(),
        ))
        .await
        .unwrap();
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
                return serde_json::from_str(&text).unwrap();
            }
        }
    };
    assert_eq!(
        ask(json!({"op": "auth", "token": narrow})).await["type"],
        "authenticated"
    );
    let answer =
        ask(json!({"op": "subscribe", "topic": format!("user:{}", olive.id), "since": 0})).await;
    assert_eq!(answer["type"], "error", "{answer}");
    assert_eq!(answer["code"], "forbidden", "{answer}");
}

#[tokio::test]
async fn an_apps_output_shows_its_secrets_masked_to_every_reader() {
    let app = spawn_app_with(|c| c.deploy.grace_secs = 0).await;
    let admin = app.setup_admin().await;
    let git = crate::gitserver::GitServer::start().await;
    let mut files = crate::deploy::app_files("masked", "");
    let dockerfile = format!(
        "FROM scratch\nLABEL test.build={}\nCOPY busybox /bin/busybox\nCOPY www /www\nEXPOSE 8080\n\
         CMD [\"/bin/busybox\", \"sh\", \"-c\", \"while true; do echo key=$API_KEY; /bin/busybox sleep 0.2; done & exec /bin/busybox httpd -f -p 8080 -h /www\"]\n",
        uuid::Uuid::new_v4().simple()
    );
    files.retain(|(path, _, _)| *path != "Dockerfile");
    files.push(("Dockerfile", dockerfile.into_bytes(), false));
    let repo = git.repo("masked", &files);
    let project = app.project_for(&admin, "masked", &repo.url).await;
    let env = app
        .send(
            reqwest::Method::PUT,
            &format!("/api/v1/projects/{project}/env"),
            Some(&admin.token),
            Some(json!({"vars": [{"key": "API_KEY", "value": "sk-live-0123456789", "secret": true}]})),
        )
        .await;
    assert_eq!(env.status(), StatusCode::OK);
    app.deploy_live(&admin, &project, json!({}), Duration::from_secs(120))
        .await;

    use futures_util::{SinkExt, StreamExt};
    let url = app.base.replace("http://", "ws://") + "/api/v1/ws";
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    for op in [
        json!({"op": "auth", "token": admin.token}),
        json!({"op": "subscribe", "topic": format!("project:{project}:logs"), "since": 0}),
    ] {
        ws.send(tokio_tungstenite::tungstenite::Message::Text(
            op.to_string().into(),
        ))
        .await
        .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let line = loop {
        assert!(std::time::Instant::now() < deadline, "no runtime line");
        let message = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let tokio_tungstenite::tungstenite::Message::Text(text) = message else {
            continue;
        };
        assert!(
            !text.contains("sk-live-0123456789"),
            "a secret in the app's log: {text}"
        );
        let value: Value = serde_json::from_str(&text).unwrap();
        let events = if value["type"] == "batch" {
            value["events"].as_array().unwrap().clone()
        } else {
            vec![value]
        };
        if let Some(line) = events
            .iter()
            .filter_map(|e| e["line"].as_str())
            .find(|l| l.starts_with("key="))
        {
            break line.to_string();
        }
    };
    assert_eq!(line, "key=********");
    app.delete_project(&admin, &project).await;
}

#[tokio::test]
async fn quotas_answer_429_with_retry_after_and_hold_members_not_admins() {
    let app = spawn_app_with(|c| {
        c.quotas.projects_per_user = 2;
        c.quotas.deploys_per_hour_per_user = 2;
    })
    .await;
    let admin = app.setup_admin().await;
    let member = app.member(&admin, "mallory").await;
    let mut projects = Vec::new();
    for name in ["one", "two"] {
        projects.push(
            app.create_project(&member, name).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let third = app
        .post(
            "/api/v1/projects",
            Some(&member.token),
            json!({"name": "three", "git_url": "https://example.com/a/b.git"}),
        )
        .await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(third.headers().get("retry-after").is_some());
    let body: Value = third.json().await.unwrap();
    assert_eq!(body["error"]["code"], "quota_exceeded", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("projects_per_user"),
        "{body}"
    );
    // Admins are not held to it.
    for name in ["a1", "a2", "a3"] {
        app.create_project(&admin, name).await;
    }

    for _ in 0..2 {
        app.deploy(&member, &projects[0], json!({})).await;
    }
    let over = app
        .post(
            &format!("/api/v1/projects/{}/deployments", projects[1]),
            Some(&member.token),
            json!({}),
        )
        .await;
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = over.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0);
}

#[tokio::test]
async fn the_api_rate_limit_holds_per_user() {
    let app = spawn_app_with(|c| c.quotas.api_requests_per_minute = 5).await;
    let admin = app.setup_admin().await;
    let member = app.member(&admin, "chatty").await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(
            app.get("/api/v1/auth/me", Some(&member.token))
                .await
                .status(),
        );
    }
    assert!(
        statuses[..4].iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let limited = app.get("/api/v1/auth/me", Some(&member.token)).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().get("retry-after").is_some());
    // Someone else is not slowed down by it.
    assert_eq!(
        app.get("/api/v1/projects", Some(&admin.token))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn names_cannot_take_preview_hosts_and_unverified_domains_expire() {
    let app = spawn_app_with(|_| {}).await;
    let admin = app.setup_admin().await;
    for name in ["0123abcd-blog", "pr-12-shop"] {
        let refused = app
            .post(
                "/api/v1/projects",
                Some(&admin.token),
                json!({"name": name, "git_url": "https://example.com/a/b.git"}),
            )
            .await;
        assert_invalid(refused, "name").await;
    }

    let alice = app.member(&admin, "alice").await;
    let bob = app.member(&admin, "bob").await;
    let a = app.create_project(&alice, "alices").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = app.create_project(&bob, "bobs").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let add = |who: String, project: String| {
        let app = &app;
        async move {
            app.post(
                &format!("/api/v1/projects/{project}/domains"),
                Some(&who),
                json!({"domain": "shop.example.net"}),
            )
            .await
        }
    };
    assert_eq!(
        add(alice.token.clone(), a.clone()).await.status(),
        StatusCode::CREATED
    );
    // A fresh claim holds the name...
    assert_eq!(
        add(bob.token.clone(), b.clone()).await.status(),
        StatusCode::CONFLICT
    );
    // ...one left unverified past domains.pending_days does not.
    crate::helpers::execute_sql(
        &app,
        "UPDATE domains SET created_at = $1 WHERE domain = $2",
        vec![
            (chrono::Utc::now() - chrono::Duration::days(8)).into(),
            "shop.example.net".into(),
        ],
    )
    .await;
    assert_eq!(
        add(bob.token.clone(), b.clone()).await.status(),
        StatusCode::CREATED
    );
    let alices: Value = app
        .get(&format!("/api/v1/projects/{a}/domains"), Some(&alice.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(alices, json!([]), "{alices}");
}

#[tokio::test]
async fn metrics_behind_a_trusted_proxy_need_the_token() {
    let app = spawn_app_with(|c| {
        c.http.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    assert_eq!(
        app.get("/metrics", None).await.status(),
        StatusCode::FORBIDDEN
    );
    let app = spawn_app_with(|c| {
        c.http.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        c.metrics.token = Some(shard::config::Secret::new("metrics-token-0123456789"));
    })
    .await;
    assert_eq!(
        app.get("/metrics", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let ok = app.get("/metrics", Some("metrics-token-0123456789")).await;
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_rotated_webhook_secret_no_longer_signs_deliveries() {
    let app = spawn_app_with(|_| {}).await;
    let admin = app.setup_admin().await;
    let project = app.create_project(&admin, "hooked").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let hook: Value = app
        .get(
            &format!("/api/v1/projects/{project}/webhook"),
            Some(&admin.token),
        )
        .await
        .json()
        .await
        .unwrap();
    let old = hook["secret"].as_str().unwrap().to_string();
    let url = hook["url"].as_str().unwrap().to_string();
    let ping = |secret: String| {
        let client = app.client.clone();
        let url = url.clone();
        async move {
            client
                .post(&url)
                .header("content-type", "application/json")
                .header("x-github-event", "ping")
                .header("x-github-delivery", uuid::Uuid::new_v4().to_string())
                .header(
                    "x-hub-signature-256",
                    crate::webhooks::signature(&secret, b"{}"),
                )
                .body("{}")
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert!(ping(old.clone()).await.is_success());
    let rotated = app
        .post(
            &format!("/api/v1/projects/{project}/webhook/rotate"),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let fresh = rotated.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(fresh, old);
    assert_eq!(ping(old).await, StatusCode::UNAUTHORIZED);
    assert!(ping(fresh).await.is_success());
}

/// Bytes under `dir` (apparent sizes; directories not followed through links).
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

#[tokio::test]
async fn a_checkout_bomb_is_refused_before_it_reaches_the_disk() {
    let app = spawn_app_with(|c| c.deploy.max_checkout_mb = 64).await;
    let admin = app.setup_admin().await;
    let git = crate::gitserver::GitServer::start().await;
    let repo = git.repo("bomb", &crate::deploy::app_files("bomb", ""));
    // 2 GiB on disk from one 1 MiB blob named 2048 times.
    repo.commit_bomb(2048, 1 << 20);
    let project = app.project_for(&admin, "bomb", &repo.url).await;
    let before = tree_bytes(app.dir.path());
    let id = app.deploy(&admin, &project, json!({})).await;
    let mut peak = before;
    let done = loop {
        peak = peak.max(tree_bytes(app.dir.path()));
        let d = app.deployment(&admin, &id).await;
        if FINAL.contains(&d["status"].as_str().unwrap_or("")) {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        done["error"].to_string().contains("more than 64 MiB"),
        "{done}"
    );
    let growth = peak.saturating_sub(before);
    println!(
        "checkout bomb: data dir grew by at most {} KiB",
        growth / 1024
    );
    assert!(growth <= 2 * 64 * 1024 * 1024, "grew {growth} bytes");
}

/// Refuses to run a fork bomb where the build's process limit could not hold it (it would take
/// the machine down): the engine must use the cgroupfs driver and the pids hierarchy must be
/// writable. A clear failure, never a skip.
fn assert_process_limit_enforceable() {
    let out = std::process::Command::new("docker")
        .args(["info", "--format", "{{.CgroupDriver}}"])
        .output()
        .expect("docker CLI");
    let driver = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(
        driver, "cgroupfs",
        "the fork-bomb test needs Docker's cgroupfs driver to hold a build to its process limit"
    );
    let v1 = std::path::Path::new("/sys/fs/cgroup/pids");
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers");
    assert!(v1.is_dir() || v2.exists(), "no pids cgroup controller here");
}

#[tokio::test]
async fn a_fork_bomb_build_fails_while_shard_and_the_other_apps_keep_answering() {
    assert_process_limit_enforceable();
    let app = spawn_app_with(|c| {
        c.deploy.grace_secs = 0;
        c.deploy.build_pids = 64;
        c.deploy.build_memory_mb = 256;
        c.jobs.concurrency = 2;
    })
    .await;
    let admin = app.setup_admin().await;
    let git = crate::gitserver::GitServer::start().await;
    let steady = git.repo("steady", &crate::deploy::app_files("steady", ""));
    let steady = app.project_for(&admin, "steady", &steady.url).await;
    let live = app
        .deploy_live(&admin, &steady, json!({}), Duration::from_secs(120))
        .await;
    let upstream = app.deployment(&admin, &live).await["upstream"]
        .as_str()
        .unwrap()
        .to_string();

    // Each call forks two more until the build's process limit stops it.
    let bomb = "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"b() { b | b; }; b\"]\n";
    let repo = git.repo("bomb", &crate::deploy::app_files("bomb", bomb));
    let project = app.project_for(&admin, "bomb", &repo.url).await;
    let id = app.deploy(&admin, &project, json!({})).await;
    let (mut worst_app, mut worst_shard, mut requests) = (Duration::ZERO, Duration::ZERO, 0);
    let done = loop {
        let started = std::time::Instant::now();
        let page = crate::deploy::get_page(&upstream, "/").await;
        worst_app = worst_app.max(started.elapsed());
        assert_eq!(page.map(|p| p.1).as_deref(), Some("version steady\n"));
        let started = std::time::Instant::now();
        assert_eq!(app.get("/health", None).await.status(), StatusCode::OK);
        worst_shard = worst_shard.max(started.elapsed());
        requests += 1;
        let d = app.deployment(&admin, &id).await;
        if FINAL.contains(&d["status"].as_str().unwrap_or("")) {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done["status"], "failed", "{done}");
    let log = app.logs_text(&admin, &id).await;
    assert!(log.contains("fork"), "the bomb never met the limit:\n{log}");
    assert!(!log.contains("not enforced"), "{log}");
    println!(
        "fork bomb: {requests} rounds, slowest app answer {worst_app:?}, slowest /health {worst_shard:?}"
    );
    assert!(worst_app < Duration::from_secs(2), "{worst_app:?}");
    assert!(worst_shard < Duration::from_secs(2), "{worst_shard:?}");
    app.delete_project(&admin, &project).await;
    app.delete_project(&admin, &steady).await;
}
