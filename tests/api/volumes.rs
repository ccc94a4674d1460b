//! Volumes: a project's data survives every lifecycle step — redeploys, a restart, a rollback,
//! the project's deletion (the volume is detached, kept, listed for admins) and its attachment
//! to a new project — and goes only by an explicit purge. The app is busybox httpd with a CGI
//! script that appends its query string to `/data/log` and prints the file.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::deploy::{Files, app_files, docker_ids};
use crate::gitserver::GitServer;
use crate::helpers::*;
use crate::proxy::get_host;

pub(crate) fn writer_files(version: &str) -> Files {
    let mut files = app_files(version, "");
    files.push((
        "www/cgi-bin/log",
        b"#!/bin/busybox sh\necho 'Content-Type: text/plain'\necho\n\
          [ -n \"$QUERY_STRING\" ] && echo \"$QUERY_STRING\" >> /data/log\n\
          /bin/busybox cat /data/log\n"
            .to_vec(),
        true,
    ));
    files
}

pub(crate) const WITHIN: Duration = Duration::from_secs(120);

/// Appends `word` (if any) through the app and answers the whole log it keeps.
pub(crate) async fn log(app: &TestApp, host: &str, word: &str) -> String {
    let path = if word.is_empty() {
        "/cgi-bin/log".to_string()
    } else {
        format!("/cgi-bin/log?{word}")
    };
    let response = get_host(app, host, &path).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

async fn volume_named(app: &TestApp, admin: &Session, project: &str, name: &str) -> Value {
    let all: Vec<Value> = app
        .get(
            &format!("/api/v1/projects/{project}/volumes"),
            Some(&admin.token),
        )
        .await
        .json()
        .await
        .unwrap();
    all.into_iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no volume {name}"))
}

#[tokio::test]
async fn a_volumes_data_survives_redeploys_restart_rollback_and_the_projects_deletion() {
    let git = GitServer::start().await;
    let repo = git.repo("keeper", &writer_files("1"));
    let app = spawn_app_with(|c| c.deploy.grace_secs = 0).await;
    let admin = app.setup_admin().await;
    let project = app.project_for(&admin, "keeper", &repo.url).await;
    let added = app
        .post(
            &format!("/api/v1/projects/{project}/volumes"),
            Some(&admin.token),
            json!({"name": "data", "mount_path": "/data"}),
        )
        .await;
    assert_eq!(added.status(), StatusCode::CREATED);
    let volume: Value = added.json().await.unwrap();
    assert_eq!(volume["mount_path"], "/data");
    let volume_id = volume["id"].as_str().unwrap().to_string();
    let docker_name = format!("shard-vol-{}", volume_id.replace('-', ""));
    let labels = docker_ids(&["volume", "inspect", "-f", "{{json .Labels}}", &docker_name]);
    assert!(
        labels.contains(&format!("\"shard.volume\":\"{volume_id}\"")),
        "{labels}"
    );

    let host = "keeper.localhost";
    let first = app.deploy_live(&admin, &project, json!({}), WITHIN).await;
    assert!(
        app.logs_text(&admin, &first)
            .await
            .contains("==> Volume data at /data")
    );
    assert_eq!(log(&app, host, "one").await, "one\n");
    // Its usage is sampled with the metrics (here directly): the 4 bytes of "one\n".
    shard::metrics::volumes::sample(&app.state.db, &app.state.docker)
        .await
        .unwrap();
    assert_eq!(
        volume_named(&app, &admin, &project, "data").await["size_bytes"],
        4
    );

    // A redeploy of a new commit mounts the same volume.
    repo.commit(&[("www/index.html", b"version 2\n".to_vec(), false)], "v2");
    app.deploy_live(&admin, &project, json!({}), WITHIN).await;
    assert_eq!(log(&app, host, "two").await, "one\ntwo\n");

    // A restart: a new container from the live image, same volume.
    let restarted: Value = app
        .post(
            &format!("/api/v1/projects/{project}/restart"),
            Some(&admin.token),
            json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = restarted["id"].as_str().unwrap();
    assert_eq!(
        app.wait_for(&admin, id, FINAL, WITHIN).await["status"],
        "live"
    );
    assert_eq!(log(&app, host, "three").await, "one\ntwo\nthree\n");

    // A rollback to the first deployment's image: still the same data.
    app.deploy_live(&admin, &project, json!({"from_deployment": first}), WITHIN)
        .await;
    assert_eq!(log(&app, host, "four").await, "one\ntwo\nthree\nfour\n");

    // Deleting the project detaches the volume: kept, listed for admins with its expiry.
    assert_eq!(
        app.delete_project(&admin, &project).await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(
        !docker_ids(&[
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("name={docker_name}")
        ])
        .is_empty()
    );
    let all: Vec<Value> = app
        .get("/api/v1/volumes", Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    let detached = all.iter().find(|v| v["id"] == volume_id.as_str()).unwrap();
    assert!(detached["project_id"].is_null(), "{detached}");
    assert_eq!(detached["project_name"], "keeper");
    assert!(detached["expires_at"].is_string(), "{detached}");

    // Attached to a new project, its first deployment finds everything.
    let again = app.project_for(&admin, "keeper-two", &repo.url).await;
    let attached = app
        .post(
            &format!("/api/v1/volumes/{volume_id}/attach"),
            Some(&admin.token),
            json!({"project_id": again}),
        )
        .await;
    assert_eq!(attached.status(), StatusCode::OK);
    app.deploy_live(&admin, &again, json!({}), WITHIN).await;
    assert_eq!(
        log(&app, "keeper-two.localhost", "").await,
        "one\ntwo\nthree\nfour\n"
    );

    // A purge while the app still mounts it is refused and changes nothing; once the
    // project (and its containers) went, the admin purge removes it and its data.
    let purge = app
        .send(
            Method::DELETE,
            &format!("/api/v1/projects/{again}/volumes/data?purge=true"),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(purge.status(), StatusCode::CONFLICT);
    assert_eq!(
        volume_named(&app, &admin, &again, "data").await["id"],
        volume_id.as_str()
    );
    assert_eq!(
        app.delete_project(&admin, &again).await.status(),
        StatusCode::NO_CONTENT
    );
    let purged = app
        .send(
            Method::DELETE,
            &format!("/api/v1/volumes/{volume_id}"),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(purged.status(), StatusCode::NO_CONTENT);
    assert!(
        docker_ids(&[
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("name={docker_name}")
        ])
        .is_empty()
    );
    let all: Vec<Value> = app
        .get("/api/v1/volumes", Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert!(all.iter().all(|v| v["id"] != volume_id.as_str()));
}

#[tokio::test]
async fn volume_requests_are_checked_and_owned() {
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    let project = app.create_project(&admin, "vols").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/v1/projects/{project}/volumes");
    for (field, body) in [
        ("name", json!({"name": "Data!", "mount_path": "/data"})),
        ("name", json!({"name": "", "mount_path": "/data"})),
        ("mount_path", json!({"name": "data", "mount_path": "data"})),
        (
            "mount_path",
            json!({"name": "data", "mount_path": "/app/../etc"}),
        ),
        (
            "mount_path",
            json!({"name": "data", "mount_path": "/proc/x"}),
        ),
        ("mount_path", json!({"name": "data", "mount_path": "/"})),
    ] {
        assert_invalid(app.post(&path, Some(&admin.token), body).await, field).await;
    }
    let ok = app
        .post(
            &path,
            Some(&admin.token),
            json!({"name": "data", "mount_path": "/data"}),
        )
        .await;
    assert_eq!(ok.status(), StatusCode::CREATED);
    let taken = app
        .post(
            &path,
            Some(&admin.token),
            json!({"name": "data", "mount_path": "/other"}),
        )
        .await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);
    let same_place = app
        .post(
            &path,
            Some(&admin.token),
            json!({"name": "more", "mount_path": "/data"}),
        )
        .await;
    assert_invalid(same_place, "mount_path").await;
    // One machine holds a volume: more replicas are refused while it is attached.
    let more = app
        .send(
            Method::PATCH,
            &format!("/api/v1/projects/{project}"),
            Some(&admin.token),
            Some(json!({"replicas": 2})),
        )
        .await;
    assert_eq!(more.status(), StatusCode::CONFLICT);
    let body: Value = more.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("one replica"),
        "{body}"
    );

    // Another user sees neither the project's volumes nor the admin list.
    let member = app.member(&admin, "mallory").await;
    assert_eq!(
        app.get(&path, Some(&member.token)).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/api/v1/volumes", Some(&member.token))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let volume = volume_named(&app, &admin, &project, "data").await;
    let purge = app
        .send(
            Method::DELETE,
            &format!("/api/v1/volumes/{}", volume["id"].as_str().unwrap()),
            Some(&member.token),
            None,
        )
        .await;
    assert_eq!(purge.status(), StatusCode::FORBIDDEN);
    // An attached volume is not purged by id: detach first.
    let purge = app
        .send(
            Method::DELETE,
            &format!("/api/v1/volumes/{}", volume["id"].as_str().unwrap()),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(purge.status(), StatusCode::CONFLICT);
    let gone = app
        .send(
            Method::DELETE,
            &format!("{path}/nothing"),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let detached = app
        .send(
            Method::DELETE,
            &format!("{path}/data?purge=true"),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(detached.status(), StatusCode::NO_CONTENT);
    let left: Vec<Value> = app
        .get(&path, Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert!(left.is_empty());
}

/// Deployments of `project` still in progress on `serve`.
async fn busy(serve: &crate::process::Serve, token: &str, project: &str) -> usize {
    let list = serve
        .api(
            token,
            Method::GET,
            &format!("/projects/{project}/deployments?limit=100"),
            None,
        )
        .await;
    list.as_array()
        .unwrap()
        .iter()
        .filter(|d| {
            [
                "queued",
                "fetching",
                "building",
                "starting",
                "health_checking",
            ]
            .contains(&d["status"].as_str().unwrap())
        })
        .count()
}

#[tokio::test]
async fn a_volume_keeps_every_write_through_sigkills_of_shard_mid_deploy() {
    let git = GitServer::start().await;
    // A build that takes a moment, so a kill lands mid-deploy.
    let repo = git.repo("sturdy", &{
        let mut files = writer_files("1");
        for file in files.iter_mut().filter(|f| f.0 == "Dockerfile") {
            let text = String::from_utf8(file.1.clone()).unwrap();
            file.1 = text
                .replace(
                    "EXPOSE 8080",
                    "RUN [\"/bin/busybox\", \"sleep\", \"1\"]\nEXPOSE 8080",
                )
                .into_bytes();
        }
        files
    });
    let dir = tempfile::TempDir::new().unwrap();
    let mut serve = crate::process::Serve::start(
        dir.path(),
        fresh_database_url().await,
        &[
            ("SHARD_DEPLOY__GRACE_SECS", "0"),
            ("SHARD_JOBS__LEASE_SECS", "5"),
        ],
    )
    .await;
    let token = serve.setup_admin().await;
    let project = serve
        .create_project(
            &token,
            json!({"name": "sturdy", "git_url": repo.url, "health_timeout_secs": 30}),
        )
        .await;
    serve
        .api(
            &token,
            Method::POST,
            &format!("/projects/{project}/volumes"),
            Some(json!({"name": "data", "mount_path": "/data"})),
        )
        .await;
    let client = reqwest::Client::new();
    let write = async |serve: &crate::process::Serve, word: &str| -> String {
        let deadline = std::time::Instant::now() + WITHIN;
        loop {
            let answer = client
                .get(format!("{}/cgi-bin/log?{word}", serve.base))
                .header("host", "sturdy.localhost")
                .timeout(Duration::from_secs(10))
                .send()
                .await;
            if let Ok(response) = answer
                && response.status() == StatusCode::OK
            {
                return response.text().await.unwrap();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the app never answered"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let deploy = |serve: &crate::process::Serve| {
        let path = format!("/projects/{project}/deployments");
        let token = token.clone();
        let base = serve.base.clone();
        async move {
            let response = reqwest::Client::new()
                .post(format!("{base}/api/v1{path}"))
                .bearer_auth(token)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::ACCEPTED);
        }
    };
    deploy(&serve).await;
    let deadline = std::time::Instant::now() + WITHIN;
    while busy(&serve, &token, &project).await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first deploy never ended"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut words = vec!["w0".to_string()];
    assert_eq!(write(&serve, "w0").await, "w0\n");
    for round in 1..=3 {
        deploy(&serve).await;
        tokio::time::sleep(Duration::from_millis(400 + 500 * round)).await;
        serve.kill();
        serve.spawn().await;
        let deadline = std::time::Instant::now() + WITHIN;
        while busy(&serve, &token, &project).await > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: a deploy stayed in progress"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let word = format!("w{round}");
        words.push(word.clone());
        let expected: String = words.iter().map(|w| format!("{w}\n")).collect();
        assert_eq!(write(&serve, &word).await, expected, "round {round}");
    }
    // Deleting the project keeps the data for a later attach.
    let response = reqwest::Client::new()
        .delete(format!("{}/api/v1/projects/{project}", serve.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let all = serve.api(&token, Method::GET, "/volumes", None).await;
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
    let id = all[0]["id"].as_str().unwrap().replace('-', "");
    let name = format!("shard-vol-{id}");
    assert!(!docker_ids(&["volume", "ls", "-q", "--filter", &format!("name={name}")]).is_empty());
    docker_ids(&["volume", "rm", &name]);
}
