//! File mounts: an uploaded file is versioned, sealed at rest, and reaches the app read-only
//! only through a deployment, so a change that breaks the health check leaves the old
//! deployment serving the old file. Bad paths and oversized files are refused.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::deploy::{app_files, docker_ids};
use crate::gitserver::GitServer;
use crate::helpers::*;
use crate::proxy::get_host;

const WITHIN: Duration = Duration::from_secs(120);

async fn put(
    app: &TestApp,
    token: &str,
    project: &str,
    path: &str,
    body: &[u8],
) -> reqwest::Response {
    app.client
        .put(app.url(&format!("/api/v1/projects/{project}/files/{path}")))
        .bearer_auth(token)
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

async fn listing(app: &TestApp, admin: &Session, project: &str) -> Value {
    let response = app
        .get(
            &format!("/api/v1/projects/{project}/files"),
            Some(&admin.token),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn page(app: &TestApp, path: &str) -> (StatusCode, String) {
    let response = get_host(app, "conf.localhost", path).await;
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_file_reaches_the_app_read_only_through_the_health_gated_switch() {
    let git = GitServer::start().await;
    let repo = git.repo("conf", &app_files("1", ""));
    let app = spawn_app_with(|c| c.deploy.grace_secs = 0).await;
    let admin = app.setup_admin().await;
    let project = app.project_for(&admin, "conf", &repo.url).await;
    let patch = json!({"health_path": "/health.txt", "health_timeout_secs": 4});
    let patched = app
        .send(
            Method::PATCH,
            &format!("/api/v1/projects/{project}"),
            Some(&admin.token),
            Some(patch),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::OK);

    let robots = b"User-agent: *\nDisallow: /private\n";
    let written = put(&app, &admin.token, &project, "www/robots.txt", robots).await;
    assert_eq!(written.status(), StatusCode::OK);
    let written: Value = written.json().await.unwrap();
    assert_eq!(written["path"], "/www/robots.txt");
    assert_eq!(written["version"], 1);
    assert_eq!(written["sha256"], hex::encode(Sha256::digest(robots)));
    let health = put(&app, &admin.token, &project, "/www/health.txt", b"ok\n").await;
    assert_eq!(health.status(), StatusCode::OK);

    // Listed with the version; read back as it was sent; sealed at rest.
    let list = listing(&app, &admin, &project).await;
    assert_eq!(list["version"], 2, "{list}");
    let paths: Vec<&str> = list["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/www/health.txt", "/www/robots.txt"], "{list}");
    assert_eq!(list["replicas"], json!([]), "nothing runs yet: {list}");
    let back = app
        .get(
            &format!("/api/v1/projects/{project}/files/www/robots.txt"),
            Some(&admin.token),
        )
        .await;
    assert_eq!(back.status(), StatusCode::OK);
    assert_eq!(back.bytes().await.unwrap().as_ref(), robots);
    let row = shard::db::files::find(&app.state.db, project.parse().unwrap(), "www/robots.txt")
        .await
        .unwrap()
        .unwrap();
    let sealed = row.content.unwrap();
    assert!(
        !sealed.windows(10).any(|w| w == b"User-agent"),
        "the content is stored in the clear"
    );

    // The first deployment mounts both, read-only.
    let first = app.deploy_live(&admin, &project, json!({}), WITHIN).await;
    let log = app.logs_text(&admin, &first).await;
    assert!(log.contains("==> Files (version 2, read-only)"), "{log}");
    assert_eq!(
        page(&app, "/robots.txt").await.1,
        String::from_utf8_lossy(robots)
    );
    let deployment = app
        .get(&format!("/api/v1/deployments/{first}"), Some(&admin.token))
        .await
        .json::<Value>()
        .await
        .unwrap();
    let container = deployment["container_id"].as_str().unwrap();
    let mounts = docker_ids(&["inspect", "-f", "{{json .Mounts}}", container]);
    let mounts: Vec<Value> = serde_json::from_str(&mounts).unwrap();
    let robots_mount = mounts
        .iter()
        .find(|m| m["Destination"] == "/www/robots.txt")
        .unwrap_or_else(|| panic!("not mounted: {mounts:?}"));
    assert_eq!(robots_mount["RW"], false, "{robots_mount}");
    let list = listing(&app, &admin, &project).await;
    assert_eq!(
        list["replicas"],
        json!([{"deployment_id": first, "status": "live", "replica": 1, "files_version": 2, "current": true}]),
    );

    // A change is a new version; the running app keeps the old one until a switch.
    let changed = put(
        &app,
        &admin.token,
        &project,
        "www/robots.txt",
        b"User-agent: *\n",
    )
    .await;
    assert_eq!(changed.json::<Value>().await.unwrap()["version"], 3);
    assert_eq!(
        page(&app, "/robots.txt").await.1,
        String::from_utf8_lossy(robots)
    );
    let list = listing(&app, &admin, &project).await;
    assert_eq!(list["replicas"][0]["current"], false, "{list}");

    // A change that fails the health check never goes live: the old deployment keeps serving.
    let deleted = app
        .send(
            Method::DELETE,
            &format!("/api/v1/projects/{project}/files/www/health.txt"),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let unhealthy = app.deploy(&admin, &project, json!({})).await;
    let failed = app.wait_for(&admin, &unhealthy, FINAL, WITHIN).await;
    assert_eq!(
        (failed["status"].as_str(), failed["error_step"].as_str()),
        (Some("failed"), Some("health_check")),
        "{failed}"
    );
    assert_eq!(
        page(&app, "/robots.txt").await.1,
        String::from_utf8_lossy(robots)
    );
    assert_eq!(
        page(&app, "/health.txt").await,
        (StatusCode::OK, "ok\n".into())
    );

    // Fixed: the next switch brings the new file.
    let fixed = put(&app, &admin.token, &project, "www/health.txt", b"fine\n").await;
    assert_eq!(fixed.json::<Value>().await.unwrap()["version"], 5);
    app.deploy_live(&admin, &project, json!({}), WITHIN).await;
    assert_eq!(page(&app, "/robots.txt").await.1, "User-agent: *\n");
    assert_eq!(page(&app, "/health.txt").await.1, "fine\n");
    let list = listing(&app, &admin, &project).await;
    let replicas = list["replicas"].as_array().unwrap();
    assert!(
        replicas
            .iter()
            .all(|r| r["current"] == true && r["files_version"] == 5),
        "{list}"
    );
    // Only versions a container may still mount stay on disk: the failed deployment's went at
    // this start, the superseded one's goes at the next.
    let mut on_disk: Vec<String> = std::fs::read_dir(app.dir.path().join("files").join(&project))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    assert_eq!(on_disk, ["2", "5"], "{on_disk:?}");
}

/// The status of a PUT of one byte to `target`, sent byte for byte as written.
async fn raw_put(app: &TestApp, token: &str, target: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "PUT {target} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: 1\r\nConnection: close\r\n\r\nx"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}

#[tokio::test]
async fn bad_paths_oversized_files_and_too_many_files_are_refused() {
    let app = spawn_app_with(|c| {
        c.quotas.file_mount_kib = 4;
        c.quotas.file_mounts_kib_per_project = 8;
        c.quotas.file_mounts_per_project = 3;
    })
    .await;
    let admin = app.setup_admin().await;
    let project = app.create_project(&admin, "limits").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Sent as they are: an HTTP client library would resolve the dots before sending.
    for bad in ["a/../../etc/passwd", "../x", "a/%2E%2E/b", "a/./b"] {
        let status = raw_put(
            &app,
            &admin.token,
            &format!("/api/v1/projects/{project}/files/{bad}"),
        )
        .await;
        assert_eq!(status, 422, "{bad}");
    }
    for bad in ["a//b", "proc/self/environ", "dev/null", "dir/", "sp%20ace"] {
        let response = put(&app, &admin.token, &project, bad, b"x").await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"]["message"].is_string(), "{bad}: {body}");
    }
    let big = vec![b'x'; 4 * 1024 + 1];
    let response = put(&app, &admin.token, &project, "etc/big", &big).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("quotas.file_mount_kib"),
        "{body}"
    );
    let four = vec![b'x'; 4 * 1024];
    for name in ["etc/a", "etc/b"] {
        assert_eq!(
            put(&app, &admin.token, &project, name, &four)
                .await
                .status(),
            StatusCode::OK
        );
    }
    let response = put(&app, &admin.token, &project, "etc/c", b"one more byte").await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Replacing a file counts its new size, not both.
    assert_eq!(
        put(&app, &admin.token, &project, "etc/a", b"small")
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        put(&app, &admin.token, &project, "etc/c", b"c")
            .await
            .status(),
        StatusCode::OK
    );
    let response = put(&app, &admin.token, &project, "etc/d", b"d").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    // Refusals changed nothing: three files, at the version of the last accepted change.
    let list = listing(&app, &admin, &project).await;
    assert_eq!(list["files"].as_array().unwrap().len(), 3, "{list}");
    assert_eq!(list["version"], 4, "{list}");
    // Reading or deleting what is not there is a 404; a volume's path is not a file's.
    let missing = app
        .get(
            &format!("/api/v1/projects/{project}/files/etc/none"),
            Some(&admin.token),
        )
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let missing = app
        .send(
            Method::DELETE,
            &format!("/api/v1/projects/{project}/files/etc/none"),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let volume = app
        .post(
            &format!("/api/v1/projects/{project}/volumes"),
            Some(&admin.token),
            json!({"name": "data", "mount_path": "/data"}),
        )
        .await;
    assert_eq!(volume.status(), StatusCode::CREATED);
    assert_eq!(
        app.send(
            Method::DELETE,
            &format!("/api/v1/projects/{project}/files/etc/c"),
            Some(&admin.token),
            None
        )
        .await
        .status(),
        StatusCode::NO_CONTENT
    );
    let response = put(&app, &admin.token, &project, "data", b"x").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
}
