//! Volume backups: an app writes to its volume; a backup of the volume (a gzip-compressed tar
//! through the engine's archive API) is verified; more writes happen; the backup is restored:
//! the app serves the files as they were at the backup, through a redeploy of its live image,
//! and the files it held before the restore are kept as a detached volume. A scheduled volume
//! backup runs like a database's.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::backups::wait_backup_at;
use crate::gitserver::GitServer;
use crate::helpers::*;
use crate::volumes::{WITHIN, log, writer_files};

#[tokio::test]
async fn a_volume_backup_restores_the_files_and_keeps_what_it_replaced() {
    let git = GitServer::start().await;
    let repo = git.repo("keeper", &writer_files("1"));
    let app = spawn_app_with(|c| c.deploy.grace_secs = 0).await;
    let admin = app.setup_admin().await;
    let project = app.project_for(&admin, "keeper", &repo.url).await;
    app.post(
        &format!("/api/v1/projects/{project}/volumes"),
        Some(&admin.token),
        json!({"name": "data", "mount_path": "/data"}),
    )
    .await;
    let dir = app.dir.path().join("backups");
    app.post(
        "/api/v1/backups/destinations",
        Some(&admin.token),
        json!({"name": "here", "kind": "local", "path": dir.to_str().unwrap()}),
    )
    .await;
    let host = "keeper.localhost";
    app.deploy_live(&admin, &project, json!({}), WITHIN).await;
    assert_eq!(log(&app, host, "one").await, "one\n");
    assert_eq!(log(&app, host, "two").await, "one\ntwo\n");

    let backups = format!("/api/v1/projects/{project}/volumes/data/backups");
    let missing = app
        .post(
            &format!("/api/v1/projects/{project}/volumes/nope/backups"),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let outsider = app.member(&admin, "outsider").await;
    let hidden = app.get(&backups, Some(&outsider.token)).await;
    assert_eq!(hidden.status(), StatusCode::NOT_FOUND);
    let taken = app.post(&backups, Some(&admin.token), json!({})).await;
    assert_eq!(taken.status(), StatusCode::ACCEPTED);
    let backup = taken.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = wait_backup_at(&app, &admin, &backups, &backup, &["verified", "failed"]).await;
    assert_eq!(done["status"], "verified", "{done}");
    let key = done["key"].as_str().unwrap();
    assert!(key.ends_with(".tar.gz"), "{key}");
    assert_eq!(done["source_name"], "keeper/data");
    let bytes = std::fs::read(dir.join(key)).unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip");

    // More writes, then the restore: the app serves the files as they were.
    assert_eq!(log(&app, host, "three").await, "one\ntwo\nthree\n");
    let restored = app
        .post(
            &format!("/api/v1/backups/{backup}/restore"),
            Some(&admin.token),
            json!({"target": "new"}),
        )
        .await;
    assert_invalid(restored, "target").await;
    let restored = app
        .post(
            &format!("/api/v1/backups/{backup}/restore"),
            Some(&admin.token),
            json!({"target": "same"}),
        )
        .await;
    assert_eq!(restored.status(), StatusCode::ACCEPTED);
    let restored: Value = restored.json().await.unwrap();
    let redeploy = restored["deployment_id"]
        .as_str()
        .expect("a redeploy")
        .to_string();
    assert_eq!(
        app.wait_for(&admin, &redeploy, FINAL, WITHIN).await["status"],
        "live"
    );
    assert_eq!(log(&app, host, "").await, "one\ntwo\n");
    // What the volume held before is kept, detached, for admins to reattach or purge.
    let all: Vec<Value> = app
        .get("/api/v1/volumes", Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    let kept: Vec<&Value> = all
        .iter()
        .filter(|v| v["name"] == "data" && v["project_id"].is_null())
        .collect();
    assert_eq!(kept.len(), 1, "{all:?}");

    // A tampered backup is refused before anything changes.
    std::fs::write(dir.join(key), &bytes[..bytes.len() / 2]).unwrap();
    let refused = app
        .post(
            &format!("/api/v1/backups/{backup}/restore"),
            Some(&admin.token),
            json!({"target": "same"}),
        )
        .await;
    let body = assert_error(
        refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("truncated or changed"),
        "{body}"
    );
    assert_eq!(log(&app, host, "").await, "one\ntwo\n");

    // A schedule for the volume, run when due.
    let schedule = format!("/api/v1/projects/{project}/volumes/data/backup-schedule");
    let set = app
        .put(
            &schedule,
            Some(&admin.token),
            json!({"cron": "0 4 * * *", "keep_last": 1}),
        )
        .await;
    assert_eq!(set.status(), StatusCode::OK);
    let set: Value = set.json().await.unwrap();
    let next: chrono::DateTime<chrono::Utc> = set["next_run_at"].as_str().unwrap().parse().unwrap();
    app.state
        .databases
        .run_due(next + chrono::Duration::seconds(1))
        .await
        .unwrap();
    let listed: Vec<Value> = app
        .get(&backups, Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    let newest = listed[0]["id"].as_str().unwrap().to_string();
    assert_ne!(newest, backup);
    let done = wait_backup_at(&app, &admin, &backups, &newest, &["verified", "failed"]).await;
    assert_eq!(done["status"], "verified", "{done}");
}
