//! MariaDB backups: `mariadb-dump --single-transaction`, gzipped by shard on its way to the
//! store, verified by a throwaway MariaDB that runs the dump and has the same rows per table;
//! restored into the same database after a table is dropped, and into a new one.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::backups::{
    container_of, local_destination, running_database, take_backup, wait_backup, wait_message,
};
use crate::deploy::docker_ids;
use crate::helpers::*;

async fn sql(app: &TestApp, admin: &Session, db: &str, query: &str) -> String {
    let secret: Value = app
        .get(
            &format!("/api/v1/databases/{db}/connection"),
            Some(&admin.token),
        )
        .await
        .json()
        .await
        .unwrap();
    let password = format!("-p{}", secret["password"].as_str().unwrap());
    let view: Value = app
        .get(&format!("/api/v1/databases/{db}"), Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    let database = view["connection"]["database"].as_str().unwrap().to_string();
    let container = container_of(db);
    docker_ids(&[
        "exec",
        &container,
        "mariadb",
        "-h",
        "127.0.0.1",
        "-uapp",
        &password,
        "-N",
        "-B",
        "-e",
        query,
        &database,
    ])
    .trim()
    .to_string()
}

#[tokio::test]
async fn a_mariadb_dump_verifies_and_restores_in_place_and_anew() {
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    let dir = app.dir.path().join("backups");
    local_destination(&app, &admin, "here", &dir).await;
    let (db, _) = running_database(&app, &admin, "mariadb", "shop").await;
    sql(
        &app,
        &admin,
        &db,
        "CREATE TABLE orders (id INT PRIMARY KEY AUTO_INCREMENT, item TEXT); \
         INSERT INTO orders (item) SELECT CONCAT('item ', seq) FROM seq_1_to_300; \
         CREATE TABLE empty (x INT)",
    )
    .await;
    assert_eq!(
        sql(&app, &admin, &db, "SELECT COUNT(*) FROM orders").await,
        "300"
    );

    let list = format!("/api/v1/databases/{db}/backups");
    let backup = take_backup(&app, &admin, &list, json!({})).await;
    let done = wait_backup(&app, &admin, &db, &backup, &["verified", "failed"]).await;
    assert_eq!(done["status"], "verified", "{done}");
    let key = done["key"].as_str().unwrap();
    assert!(key.ends_with(".sql.gz"), "{key}");
    let bytes = std::fs::read(dir.join(key)).unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip");

    // The table is dropped; the restore brings its rows back (a safety backup first).
    sql(&app, &admin, &db, "DROP TABLE orders").await;
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
        sql(&app, &admin, &db, "SELECT COUNT(*) FROM orders").await,
        "300"
    );
    assert_eq!(
        sql(&app, &admin, &db, "SELECT item FROM orders WHERE id = 42").await,
        "item 42"
    );

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
    assert_eq!(
        sql(&app, &admin, &copy_id, "SELECT COUNT(*) FROM orders").await,
        "300"
    );
}
