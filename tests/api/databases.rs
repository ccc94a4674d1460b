//! One-click databases end to end: a Postgres database made through the API comes up in its
//! own container, an attached app writes rows to it through `DATABASE_URL`, the rows survive a
//! stop and start, another project cannot reach it, and detaching takes the variables and the
//! route away. Images are the local stand-ins (`scripts/test-images`) with the official
//! images' interface.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::deploy::{Files, docker_ids};
use crate::gitserver::GitServer;
use crate::helpers::*;
use crate::proxy::get_host;

const WITHIN: Duration = Duration::from_secs(180);

/// An app on the Postgres test image (for `psql`) served by busybox httpd: `/cgi-bin/rows?x`
/// adds row `x` through `DATABASE_URL` and lists the rows; `/cgi-bin/reach` tries the
/// database by name with no credentials of its own.
fn sql_app() -> Files {
    let unique = uuid::Uuid::new_v4().simple();
    vec![
        (
            "busybox",
            std::fs::read("/bin/busybox").expect("busybox-static at /bin/busybox"),
            true,
        ),
        (
            "Dockerfile",
            format!(
                "FROM shard-test/postgres:15\nLABEL test.build={unique}\nCOPY busybox /bin/busybox\n\
                 COPY www /www\nEXPOSE 8080\n\
                 CMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n"
            )
            .into_bytes(),
            false,
        ),
        ("www/index.html", b"sql app\n".to_vec(), false),
        (
            "www/cgi-bin/rows",
            b"#!/bin/sh\necho 'Content-Type: text/plain'\necho\n\
              if [ -n \"$QUERY_STRING\" ]; then\n\
              psql \"$DATABASE_URL\" -qtAc \"CREATE TABLE IF NOT EXISTS notes (v text)\" >/dev/null 2>&1\n\
              psql \"$DATABASE_URL\" -qtAc \"INSERT INTO notes VALUES ('$QUERY_STRING')\" 2>&1\n\
              fi\n\
              psql \"$DATABASE_URL\" -qtAc 'SELECT v FROM notes ORDER BY v' 2>&1\n"
                .to_vec(),
            true,
        ),
        (
            "www/cgi-bin/reach",
            b"#!/bin/sh\necho 'Content-Type: text/plain'\necho\n\
              pg_isready -h main-db -p 5432 -t 3 2>&1\n"
                .to_vec(),
            true,
        ),
    ]
}

async fn database(app: &TestApp, session: &Session, id: &str) -> Value {
    app.get(&format!("/api/v1/databases/{id}"), Some(&session.token))
        .await
        .json()
        .await
        .unwrap()
}

/// Waits until the database's status is `status`.
async fn wait_status(app: &TestApp, session: &Session, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + WITHIN;
    loop {
        let db = database(app, session, id).await;
        if db["status"] == status {
            return db;
        }
        assert!(
            db["status"] != "failed" && Instant::now() < deadline,
            "waiting for {status}: {db}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The database's metrics once the collector has taken a sample of it.
async fn metrics_with_samples(app: &TestApp, session: &Session, id: &str) -> Value {
    let deadline = Instant::now() + WITHIN;
    loop {
        let usage: Value = app
            .get(
                &format!("/api/v1/databases/{id}/metrics"),
                Some(&session.token),
            )
            .await
            .json()
            .await
            .unwrap();
        if usage["points"].as_array().is_some_and(|p| !p.is_empty()) {
            return usage;
        }
        assert!(Instant::now() < deadline, "no samples: {usage}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn rows(app: &TestApp, host: &str, add: &str) -> String {
    let path = if add.is_empty() {
        "/cgi-bin/rows".to_string()
    } else {
        format!("/cgi-bin/rows?{add}")
    };
    let response = get_host(app, host, &path).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

#[tokio::test]
async fn an_attached_app_keeps_its_rows_in_a_one_click_postgres() {
    let git = GitServer::start().await;
    let repo = git.repo("sql-app", &sql_app());
    let app = spawn_app_with(|c| {
        c.deploy.grace_secs = 0;
        c.metrics.interval_secs = 1;
    })
    .await;
    let admin = app.setup_admin().await;

    let created = app
        .post(
            "/api/v1/databases",
            Some(&admin.token),
            json!({"kind": "postgres", "name": "main-db"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["version"], "15");
    assert_eq!(created["image"], "shard-test/postgres:15");
    let url = created["connection"]["url"].as_str().unwrap();
    assert_eq!(
        url, "postgres://app:********@main-db:5432/main_db",
        "{created}"
    );
    let running = wait_status(&app, &admin, &id, "running").await;
    assert!(running["public_port"].is_null());

    // Its own container, no published port, its volume, the memory limit.
    let container = docker_ids(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=shard.database={id}"),
    ]);
    let container = container.trim();
    assert!(!container.is_empty(), "no container for the database");
    let ports = docker_ids(&["port", container]);
    assert!(ports.trim().is_empty(), "published: {ports}");
    let memory = docker_ids(&["inspect", "-f", "{{.HostConfig.Memory}}", container]);
    assert_eq!(memory.trim(), (512 * 1024 * 1024).to_string());
    let mounts = docker_ids(&["inspect", "-f", "{{json .Mounts}}", container]);
    assert!(
        mounts.contains(&format!("shard-db-{}", id.replace('-', ""))),
        "{mounts}"
    );

    // The password, for the team's admins; never in the list.
    let secret: Value = app
        .get(
            &format!("/api/v1/databases/{id}/connection"),
            Some(&admin.token),
        )
        .await
        .json()
        .await
        .unwrap();
    let password = secret["password"].as_str().unwrap().to_string();
    assert_eq!(password.len(), 32);
    let listed = app
        .get("/api/v1/databases", Some(&admin.token))
        .await
        .text()
        .await
        .unwrap();
    assert!(!listed.contains(&password), "{listed}");

    // Attached, the app's next deployment writes through DATABASE_URL.
    let project = app.project_for(&admin, "sql-app", &repo.url).await;
    let attached = app
        .post(
            &format!("/api/v1/databases/{id}/attachments/{project}"),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_eq!(attached.status(), StatusCode::NO_CONTENT);
    let first = app.deploy_live(&admin, &project, json!({}), WITHIN).await;
    let host = "sql-app.localhost";
    assert_eq!(rows(&app, host, "alpha").await, "alpha\n");
    assert_eq!(rows(&app, host, "beta").await, "alpha\nbeta\n");
    // The build log never shows the password.
    assert!(!app.logs_text(&admin, &first).await.contains(&password));

    // Its use now, like an app's: memory within its limit; and the collector's samples.
    let usage = metrics_with_samples(&app, &admin, &id).await;
    assert_eq!(usage["running"], true, "{usage}");
    assert_eq!(usage["memory_limit_bytes"], 512 * 1024 * 1024, "{usage}");
    let memory = usage["memory_bytes"].as_u64().unwrap();
    assert!(
        memory > 1024 * 1024 && memory < 512 * 1024 * 1024,
        "{usage}"
    );
    assert!(usage["cpu_percent"].as_f64().is_some(), "{usage}");
    let sampled = &usage["points"][0];
    assert!(
        sampled["memory_bytes"].as_i64().unwrap() > 1024 * 1024,
        "{usage}"
    );
    assert_eq!(sampled["memory_limit_bytes"], 512 * 1024 * 1024, "{usage}");

    // Stopped and started again: the rows are in its volume; stopped, it has no use now to
    // show, and its history stays.
    let stopped = app
        .post(
            &format!("/api/v1/databases/{id}/stop"),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_eq!(stopped.status(), StatusCode::ACCEPTED);
    assert_eq!(database(&app, &admin, &id).await["status"], "stopped");
    let idle: Value = app
        .get(
            &format!("/api/v1/databases/{id}/metrics"),
            Some(&admin.token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(idle["running"], false, "{idle}");
    assert!(idle["memory_bytes"].is_null(), "{idle}");
    assert!(!idle["points"].as_array().unwrap().is_empty(), "{idle}");
    let bad = app
        .get(
            &format!("/api/v1/databases/{id}/metrics?from=tomorrow"),
            Some(&admin.token),
        )
        .await;
    assert_invalid(bad, "from").await;
    let started = app
        .post(
            &format!("/api/v1/databases/{id}/start"),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    wait_status(&app, &admin, &id, "running").await;
    assert_eq!(rows(&app, host, "gamma").await, "alpha\nbeta\ngamma\n");

    // Another project cannot reach it, not even by name.
    let other = app.project_for(&admin, "other-app", &repo.url).await;
    app.deploy_live(&admin, &other, json!({}), WITHIN).await;
    let reach = get_host(&app, "other-app.localhost", "/cgi-bin/reach")
        .await
        .text()
        .await
        .unwrap();
    assert!(!reach.contains("accepting connections"), "{reach}");
    let reach = get_host(&app, host, "/cgi-bin/reach")
        .await
        .text()
        .await
        .unwrap();
    assert!(reach.contains("accepting connections"), "{reach}");

    // Its logs, with its password masked.
    let logs: Vec<String> = app
        .get(&format!("/api/v1/databases/{id}/logs"), Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        logs.iter()
            .any(|l| l.contains("ready to accept connections")),
        "{logs:?}"
    );

    // Detached: the route goes at once, the variables with the next deployment.
    let detached = app
        .send(
            Method::DELETE,
            &format!("/api/v1/databases/{id}/attachments/{project}"),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(detached.status(), StatusCode::NO_CONTENT);
    let reach = get_host(&app, host, "/cgi-bin/reach")
        .await
        .text()
        .await
        .unwrap();
    assert!(!reach.contains("accepting connections"), "{reach}");
    app.deploy_live(&admin, &project, json!({}), WITHIN).await;
    let env = get_host(&app, host, "/cgi-bin/rows")
        .await
        .text()
        .await
        .unwrap();
    assert!(!env.contains("alpha"), "{env}");

    // Deleted: the container and the data go.
    let deleted = app
        .send(
            Method::DELETE,
            &format!("/api/v1/databases/{id}"),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let id_uuid: uuid::Uuid = id.parse().unwrap();
    let far = chrono::Utc::now() - chrono::Duration::days(1);
    let kept = shard::db::metrics::series(
        &app.state.db,
        id_uuid,
        far,
        chrono::Utc::now(),
        1,
        chrono::Utc::now(),
        &shard::metrics::retention(&app.state.config.metrics),
    )
    .await
    .unwrap();
    assert!(kept.is_empty(), "samples outlive the database: {kept:?}");
    let volumes = docker_ids(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("name=shard-db-{}", id.replace('-', "")),
    ]);
    assert!(volumes.trim().is_empty(), "{volumes}");
    assert_eq!(
        app.get(&format!("/api/v1/databases/{id}"), Some(&admin.token))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn database_requests_are_checked_and_owned() {
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    for (body, field) in [
        (json!({"kind": "oracle", "name": "x"}), "kind"),
        (json!({"kind": "postgres", "name": "Bad Name"}), "name"),
        (
            json!({"kind": "postgres", "name": "ok", "version": "15; rm"}),
            "version",
        ),
    ] {
        let response = app
            .post("/api/v1/databases", Some(&admin.token), body)
            .await;
        assert_invalid(response, field).await;
    }
    let created: Value = app
        .post(
            "/api/v1/databases",
            Some(&admin.token),
            json!({"kind": "redis", "name": "cache"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(
        created["connection"]["env"],
        json!([
            "REDIS_URL",
            "REDIS_HOST",
            "REDIS_PORT",
            "REDIS_USER",
            "REDIS_PASSWORD"
        ])
    );
    let again = app
        .post(
            "/api/v1/databases",
            Some(&admin.token),
            json!({"kind": "postgres", "name": "cache"}),
        )
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    wait_status(&app, &admin, &id, "running").await;

    // Someone outside the team sees nothing of it.
    let stranger = app.member(&admin, "stranger").await;
    for (method, path) in [
        (Method::GET, format!("/api/v1/databases/{id}")),
        (Method::GET, format!("/api/v1/databases/{id}/connection")),
        (Method::POST, format!("/api/v1/databases/{id}/stop")),
        (Method::DELETE, format!("/api/v1/databases/{id}")),
    ] {
        let response = app
            .send(method, &path, Some(&stranger.token), Some(json!({})))
            .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let theirs: Vec<Value> = app
        .get("/api/v1/databases", Some(&stranger.token))
        .await
        .json()
        .await
        .unwrap();
    assert!(theirs.is_empty(), "{theirs:?}");
    // Nor can they attach it to their own project.
    let their_project = app.create_project(&stranger, "theirs").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let attach = app
        .post(
            &format!("/api/v1/databases/{id}/attachments/{their_project}"),
            Some(&stranger.token),
            json!({}),
        )
        .await;
    assert_eq!(attach.status(), StatusCode::NOT_FOUND);
    // The admin cannot attach it to another team's project either.
    let attach = app
        .post(
            &format!("/api/v1/databases/{id}/attachments/{their_project}"),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_eq!(attach.status(), StatusCode::CONFLICT);
    // A public port is for instance admins, and a low one is refused.
    let low = app
        .send(
            Method::PATCH,
            &format!("/api/v1/databases/{id}"),
            Some(&admin.token),
            Some(json!({"public_port": 80})),
        )
        .await;
    assert_invalid(low, "public_port").await;
    // A second Redis on the same project would fight over REDIS_URL.
    let own_project = app.create_project(&admin, "mine").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let second: Value = app
        .post(
            "/api/v1/databases",
            Some(&admin.token),
            json!({"kind": "redis", "name": "cache-two"}),
        )
        .await
        .json()
        .await
        .unwrap();
    for (db, status) in [
        (&id, StatusCode::NO_CONTENT),
        (
            &second["id"].as_str().unwrap().to_string(),
            StatusCode::CONFLICT,
        ),
    ] {
        let response = app
            .post(
                &format!("/api/v1/databases/{db}/attachments/{own_project}"),
                Some(&admin.token),
                json!({}),
            )
            .await;
        assert_eq!(response.status(), status);
    }
    // Deleting the project undoes its attachments; the database stays.
    assert_eq!(
        app.delete_project(&admin, &own_project).await.status(),
        StatusCode::NO_CONTENT
    );
    let after = database(&app, &admin, &id).await;
    assert_eq!(after["attached_project_ids"], json!([]), "{after}");
}
