//! Redis backups: an RDB snapshot streamed from the server (`redis-cli --rdb -`), verified by
//! a throwaway server that starts from it with the same number of keys, restored into the same
//! database after a `FLUSHALL` (and still there after a restart, from the append-only file
//! Redis rewrote) and into a new one.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::backups::{
    container_of, local_destination, running_database, take_backup, wait_backup, wait_message,
    wait_running,
};
use crate::deploy::docker_ids;
use crate::helpers::*;

fn redis(container: &str, password: &str, words: &[&str]) -> String {
    let mut args = vec![
        "exec",
        container,
        "redis-cli",
        "--no-auth-warning",
        "-a",
        password,
    ];
    args.extend_from_slice(words);
    docker_ids(&args).trim().to_string()
}

async fn password(app: &TestApp, admin: &Session, db: &str) -> String {
    let secret: Value = app
        .get(
            &format!("/api/v1/databases/{db}/connection"),
            Some(&admin.token),
        )
        .await
        .json()
        .await
        .unwrap();
    secret["password"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_redis_snapshot_verifies_and_restores_in_place_and_anew() {
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    let dir = app.dir.path().join("backups");
    local_destination(&app, &admin, "here", &dir).await;
    let (db, container) = running_database(&app, &admin, "redis", "cache").await;
    let secret = password(&app, &admin, &db).await;
    redis(
        &container,
        &secret,
        &[
            "EVAL",
            "for i = 1, 300 do redis.call('SET', 'key:' .. i, i) end return 1",
            "0",
        ],
    );
    assert_eq!(redis(&container, &secret, &["DBSIZE"]), "300");

    let list = format!("/api/v1/databases/{db}/backups");
    let backup = take_backup(&app, &admin, &list, json!({})).await;
    let done = wait_backup(&app, &admin, &db, &backup, &["verified", "failed"]).await;
    assert_eq!(done["status"], "verified", "{done}");
    let key = done["key"].as_str().unwrap();
    assert!(key.ends_with(".rdb"), "{key}");
    let bytes = std::fs::read(dir.join(key)).unwrap();
    assert_eq!(&bytes[..5], b"REDIS", "an RDB snapshot");
    assert_eq!(done["size_bytes"], bytes.len());

    // Flushed, then restored in place: the keys come back, and stay after a restart (Redis
    // loads its rewritten append-only file then).
    redis(&container, &secret, &["FLUSHALL"]);
    let restoring = app
        .post(
            &format!("/api/v1/backups/{backup}/restore"),
            Some(&admin.token),
            json!({"target": "same"}),
        )
        .await;
    assert_eq!(restoring.status(), StatusCode::ACCEPTED);
    wait_message(&app, &admin, &db, "restored backup").await;
    let container = container_of(&db);
    assert_eq!(redis(&container, &secret, &["DBSIZE"]), "300");
    assert_eq!(redis(&container, &secret, &["GET", "key:42"]), "42");
    redis(&container, &secret, &["SET", "after", "restore"]);
    docker_ids(&["restart", &container]);
    wait_running(&app, &admin, &db).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while redis(&container, &secret, &["PING"]) != "PONG" {
        assert!(
            std::time::Instant::now() < deadline,
            "redis did not come back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    assert_eq!(redis(&container, &secret, &["DBSIZE"]), "301");

    // Into a new database: the same 300 keys.
    let copy = app
        .post(
            &format!("/api/v1/backups/{backup}/restore"),
            Some(&admin.token),
            json!({"target": "new"}),
        )
        .await;
    assert_eq!(copy.status(), StatusCode::ACCEPTED);
    let copy_id = copy.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_message(&app, &admin, &copy_id, "restored from backup").await;
    let copy_secret = password(&app, &admin, &copy_id).await;
    assert_eq!(
        redis(&container_of(&copy_id), &copy_secret, &["DBSIZE"]),
        "300"
    );
}
