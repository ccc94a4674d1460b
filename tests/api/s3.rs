//! Backups to an S3-compatible store (moto's S3 server, started by the test): a Postgres
//! database is backed up to a bucket in parts (a multipart upload), verified from there,
//! restored from there after its table is dropped; a destination that cannot be written is
//! refused when added, and one whose credentials the store later refuses gives a backup that
//! is failed at `upload` and announced as `backup.failed`.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::backups::{psql, running_database, take_backup, wait_backup, wait_message};
use crate::helpers::*;
use crate::peers::Moto;

const SECRET: &str = "moto-secret-key-never-shown";

/// A backup of database `db` to `destination`: its id.
async fn take(app: &TestApp, admin: &Session, db: &str, destination: &str) -> String {
    let list = format!("/api/v1/databases/{db}/backups");
    take_backup(app, admin, &list, json!({"destination_id": destination})).await
}

#[tokio::test]
async fn a_backup_goes_to_s3_in_parts_verifies_and_restores_a_dropped_table() {
    let moto = Moto::start("backups", None).await;
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    let (db, container) = running_database(&app, &admin, "postgres", "shop").await;
    // Enough rows that the dump (compressed) is several 5 MiB parts.
    psql(
        &container,
        "CREATE TABLE orders (id serial, item text); \
         INSERT INTO orders (item) SELECT md5(random()::text) || md5(random()::text) \
         || md5(random()::text) FROM generate_series(1, 200000)",
    );

    // Bad destinations are refused in words, field by field; one that cannot be written
    // (no such bucket) is refused when added.
    let good = json!({
        "name": "s3", "kind": "s3", "endpoint": moto.endpoint, "bucket": "backups",
        "prefix": "shard/prod", "region": "us-east-1", "access_key": "AKIAMOTOEXAMPLE",
        "secret_key": SECRET,
    });
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        body[field] = value;
        body
    };
    for (body, field) in [
        (with("bucket", Value::Null), "bucket"),
        (with("bucket", json!("Bad_Bucket")), "bucket"),
        (with("endpoint", json!("ftp://127.0.0.1:1")), "endpoint"),
        (with("prefix", json!("a/../b")), "prefix"),
        (with("secret_key", Value::Null), "secret_key"),
        (with("region", json!("eu west")), "region"),
        (with("bucket", json!("no-such-bucket")), "bucket"),
    ] {
        let response = app
            .post("/api/v1/backups/destinations", Some(&admin.token), body)
            .await;
        assert_invalid(response, field).await;
    }
    let added = app
        .post("/api/v1/backups/destinations", Some(&admin.token), good)
        .await;
    assert_eq!(added.status(), StatusCode::CREATED);
    let added = added.text().await.unwrap();
    assert!(!added.contains(SECRET), "{added}");
    let added: Value = serde_json::from_str(&added).unwrap();
    assert_eq!(added["bucket"], "backups");
    assert_eq!(added["access_key"], "AKIA…");
    let listed = app
        .get("/api/v1/backups/destinations", Some(&admin.token))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !listed.contains(SECRET) && !listed.contains("AKIAMOTO"),
        "{listed}"
    );
    let destination = added["id"].as_str().unwrap().to_string();
    // The write that checked it left nothing behind.
    assert!(moto.keys("backups").await.is_empty());

    let backup = take(&app, &admin, &db, &destination).await;
    let done = wait_backup(&app, &admin, &db, &backup, &["verified", "failed"]).await;
    assert_eq!(done["status"], "verified", "{done}");
    let key = format!("shard/prod/{}", done["key"].as_str().unwrap());
    assert_eq!(moto.keys("backups").await, vec![key.clone()]);
    let object = reqwest::get(format!("{}/backups/{key}", moto.endpoint))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(object.len() > 10 << 20, "{} bytes", object.len());
    assert_eq!(done["size_bytes"], object.len());
    assert_eq!(done["sha256"], hex::encode(Sha256::digest(&object)));
    assert_eq!(&object[..5], b"PGDMP");

    // The table is dropped; the backup in the bucket brings every row back.
    psql(&container, "DROP TABLE orders");
    let restoring = app
        .post(
            &format!("/api/v1/backups/{backup}/restore"),
            Some(&admin.token),
            json!({"target": "same"}),
        )
        .await;
    assert_eq!(restoring.status(), StatusCode::ACCEPTED);
    wait_message(&app, &admin, &db, "restored backup").await;
    assert_eq!(
        psql(&container, "SELECT count(*) FROM orders").trim(),
        "200000"
    );
}

#[tokio::test]
async fn a_backup_whose_credentials_the_store_refuses_is_failed_and_announced() {
    // moto checks credentials after three requests: the bucket's creation and the test write
    // of the destination pass; the backup's upload, with a key moto never issued, does not.
    let moto = Moto::start("locked", Some(3)).await;
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    let (db, container) = running_database(&app, &admin, "postgres", "shop").await;
    psql(
        &container,
        "CREATE TABLE entries AS SELECT n FROM generate_series(1, 100) n",
    );
    let added = app
        .post(
            "/api/v1/backups/destinations",
            Some(&admin.token),
            json!({"name": "locked", "kind": "s3", "endpoint": moto.endpoint,
                   "bucket": "locked", "access_key": "AKIANOTISSUED", "secret_key": SECRET}),
        )
        .await;
    assert_eq!(added.status(), StatusCode::CREATED);
    let added: Value = added.json().await.unwrap();
    let channel: Value = app
        .post(
            "/api/v1/notifications/channels",
            Some(&admin.token),
            json!({"kind": "webhook", "target": "http://127.0.0.1:9/hook", "events": ["backup.failed"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let channel = channel["id"].as_str().expect("a channel").to_string();

    let backup = take(&app, &admin, &db, added["id"].as_str().unwrap()).await;
    let failed = wait_backup(&app, &admin, &db, &backup, &["failed", "verified"]).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["step"], "upload", "{failed}");
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("403") || error.contains("Forbidden"),
        "{error}"
    );
    assert!(!error.contains(SECRET), "{error}");
    assert!(failed["size_bytes"].is_null(), "{failed}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let deliveries: Vec<Value> = app
            .get(
                &format!("/api/v1/notifications/channels/{channel}/deliveries"),
                Some(&admin.token),
            )
            .await
            .json()
            .await
            .unwrap();
        if deliveries.iter().any(|d| d["event"] == "backup.failed") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no backup.failed: {deliveries:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A failed backup is not restored.
    let refused = app
        .post(
            &format!("/api/v1/backups/{backup}/restore"),
            Some(&admin.token),
            json!({"target": "same"}),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
}
