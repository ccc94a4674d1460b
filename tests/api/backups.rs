//! Backups that restore: a one-click Postgres with rows in it is backed up to a local
//! destination (streamed, checksummed), the backup is verified by a restore into a throwaway
//! copy whose rows match, restored into the same database (after a safety backup) and into a
//! new one, and a truncated file is refused by verification and by restore, naming why.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::client::{Client, api_token};
use crate::deploy::docker_ids;
use crate::helpers::*;

const WITHIN: Duration = Duration::from_secs(180);

pub(crate) async fn wait_running(app: &TestApp, admin: &Session, id: &str) {
    let deadline = Instant::now() + WITHIN;
    loop {
        let db: Value = app
            .get(&format!("/api/v1/databases/{id}"), Some(&admin.token))
            .await
            .json()
            .await
            .unwrap();
        if db["status"] == "running" {
            return;
        }
        assert!(
            db["status"] != "failed" && Instant::now() < deadline,
            "{db}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until backup `backup` of database `db` is no longer running (nor being checked into
/// `verified`) and answers it.
pub(crate) async fn wait_backup(
    app: &TestApp,
    admin: &Session,
    db: &str,
    backup: &str,
    until: &[&str],
) -> Value {
    let list = format!("/api/v1/databases/{db}/backups");
    wait_backup_at(app, admin, &list, backup, until).await
}

/// Waits until backup `backup`, listed at `list`, has a status in `until`; answers it.
pub(crate) async fn wait_backup_at(
    app: &TestApp,
    admin: &Session,
    list: &str,
    backup: &str,
    until: &[&str],
) -> Value {
    let deadline = Instant::now() + WITHIN;
    loop {
        let all: Vec<Value> = app
            .get(list, Some(&admin.token))
            .await
            .json()
            .await
            .unwrap();
        let found = all.into_iter().find(|b| b["id"] == backup).expect("listed");
        if until.contains(&found["status"].as_str().unwrap()) {
            return found;
        }
        assert!(Instant::now() < deadline, "{found}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until database `id` is running with a message containing `says`.
pub(crate) async fn wait_message(app: &TestApp, admin: &Session, id: &str, says: &str) -> Value {
    let deadline = Instant::now() + WITHIN;
    loop {
        let db: Value = app
            .get(&format!("/api/v1/databases/{id}"), Some(&admin.token))
            .await
            .json()
            .await
            .unwrap();
        let message = db["message"].as_str().unwrap_or_default();
        if db["status"] == "running" && message.contains(says) {
            return db;
        }
        assert!(
            !message.contains("failed") && Instant::now() < deadline,
            "{db}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The container of one-click database `db`.
pub(crate) fn container_of(db: &str) -> String {
    docker_ids(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=shard.database={db}"),
    ])
    .trim()
    .to_string()
}

/// A one-click database of `kind` named `name`, once running: its id and its container.
pub(crate) async fn running_database(
    app: &TestApp,
    admin: &Session,
    kind: &str,
    name: &str,
) -> (String, String) {
    let created: Value = app
        .post(
            "/api/v1/databases",
            Some(&admin.token),
            json!({"kind": kind, "name": name}),
        )
        .await
        .json()
        .await
        .unwrap();
    let db = created["id"].as_str().unwrap().to_string();
    wait_running(app, admin, &db).await;
    let container = container_of(&db);
    (db, container)
}

/// A local backup destination `name` at `path`: its id.
pub(crate) async fn local_destination(
    app: &TestApp,
    admin: &Session,
    name: &str,
    path: &std::path::Path,
) -> String {
    let added = app
        .post(
            "/api/v1/backups/destinations",
            Some(&admin.token),
            json!({"name": name, "kind": "local", "path": path.to_str().unwrap()}),
        )
        .await;
    assert_eq!(added.status(), StatusCode::CREATED);
    added.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Takes a backup through `list` (a `…/backups` path) with `body`: 202, its id.
pub(crate) async fn take_backup(app: &TestApp, admin: &Session, list: &str, body: Value) -> String {
    let taken = app.post(list, Some(&admin.token), body).await;
    assert_eq!(taken.status(), StatusCode::ACCEPTED);
    let taken: Value = taken.json().await.unwrap();
    assert_eq!(taken["status"], "running");
    taken["id"].as_str().unwrap().to_string()
}

pub(crate) fn psql(container: &str, sql: &str) -> String {
    docker_ids(&[
        "exec", container, "psql", "-qtA", "-U", "app", "-d", "shop", "-c", sql,
    ])
}

#[tokio::test]
async fn a_backup_verifies_restores_in_place_and_anew_and_a_truncated_one_is_refused() {
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    let created: Value = app
        .post(
            "/api/v1/databases",
            Some(&admin.token),
            json!({"kind": "postgres", "name": "shop"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let db = created["id"].as_str().unwrap().to_string();
    wait_running(&app, &admin, &db).await;

    // No destination yet: a clear refusal.
    let none = app
        .post(
            &format!("/api/v1/databases/{db}/backups"),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_eq!(none.status(), StatusCode::CONFLICT);

    // Destinations are the instance admins'; a bad one is refused in words.
    let dir = app.dir.path().join("backups");
    for (body, field) in [
        (
            json!({"name": "here", "kind": "local", "path": "relative/dir"}),
            "path",
        ),
        (
            json!({"name": "here", "kind": "local", "path": "/a/../b"}),
            "path",
        ),
        (json!({"name": "here", "kind": "local"}), "path"),
        (
            json!({"name": "Bad Name", "kind": "local", "path": "/tmp"}),
            "name",
        ),
        (
            json!({"name": "here", "kind": "ftp", "path": "/tmp"}),
            "kind",
        ),
    ] {
        let response = app
            .post("/api/v1/backups/destinations", Some(&admin.token), body)
            .await;
        assert_invalid(response, field).await;
    }
    let member = app.member(&admin, "member").await;
    let refused = app
        .post(
            "/api/v1/backups/destinations",
            Some(&member.token),
            json!({"name": "mine", "kind": "local", "path": "/tmp/mine"}),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let destination = app
        .post(
            "/api/v1/backups/destinations",
            Some(&admin.token),
            json!({"name": "here", "kind": "local", "path": dir.to_str().unwrap()}),
        )
        .await;
    assert_eq!(destination.status(), StatusCode::CREATED);

    // Rows in two tables.
    let container = docker_ids(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=shard.database={db}"),
    ]);
    let container = container.trim();
    psql(
        container,
        "CREATE TABLE orders (id serial, item text); CREATE TABLE empty (x int); \
         INSERT INTO orders (item) SELECT 'item ' || n FROM generate_series(1, 500) n",
    );

    let taken = app
        .post(
            &format!("/api/v1/databases/{db}/backups"),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_eq!(taken.status(), StatusCode::ACCEPTED);
    let taken: Value = taken.json().await.unwrap();
    assert_eq!(taken["status"], "running");
    let backup = taken["id"].as_str().unwrap().to_string();
    let done = wait_backup(&app, &admin, &db, &backup, &["verified", "failed"]).await;
    assert_eq!(done["status"], "verified", "{done}");
    assert!(done["verified_at"].is_string(), "{done}");

    // The file is whole, where the backup says, with the size and checksum it says; nothing
    // partial is left, and the throwaway copy is gone.
    let file = dir.join(done["key"].as_str().unwrap());
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(done["size_bytes"], bytes.len());
    assert_eq!(done["sha256"], hex::encode(Sha256::digest(&bytes)));
    assert_eq!(&bytes[..5], b"PGDMP", "a pg_dump custom-format archive");
    let leftovers: Vec<_> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let instance = app.state.docker.instance().to_string();
    let throwaways = docker_ids(&[
        "ps",
        "-aq",
        "--filter",
        "label=shard.throwaway=true",
        "--filter",
        &format!("label=shard.instance={instance}"),
    ]);
    assert!(throwaways.trim().is_empty(), "{throwaways}");

    // Restored into the same database: the lost table comes back, a safety backup was taken
    // first, and the message says so.
    psql(container, "DROP TABLE orders");
    let bad = app
        .post(
            &format!("/api/v1/backups/{backup}/restore"),
            Some(&admin.token),
            json!({"target": "elsewhere"}),
        )
        .await;
    assert_invalid(bad, "target").await;
    let restoring = app
        .post(
            &format!("/api/v1/backups/{backup}/restore"),
            Some(&admin.token),
            json!({"target": "same"}),
        )
        .await;
    assert_eq!(restoring.status(), StatusCode::ACCEPTED);
    let restoring: Value = restoring.json().await.unwrap();
    assert_eq!(restoring["status"], "restoring", "{restoring}");
    let restored = wait_message(&app, &admin, &db, "restored backup").await;
    assert!(
        restored["message"]
            .as_str()
            .unwrap()
            .contains("safety backup"),
        "{restored}"
    );
    assert_eq!(psql(container, "SELECT count(*) FROM orders").trim(), "500");
    let all: Vec<Value> = app
        .get(
            &format!("/api/v1/databases/{db}/backups"),
            Some(&admin.token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all.len(), 2, "the safety backup is listed: {all:?}");
    assert!(
        all[0]["key"].as_str().unwrap().ends_with("-safety.dump"),
        "{all:?}"
    );

    // Into a new database: a copy with the same rows, the source untouched.
    let copy = app
        .post(
            &format!("/api/v1/backups/{backup}/restore"),
            Some(&admin.token),
            json!({"target": "new"}),
        )
        .await;
    assert_eq!(copy.status(), StatusCode::ACCEPTED);
    let copy: Value = copy.json().await.unwrap();
    let copy_id = copy["id"].as_str().unwrap().to_string();
    assert!(
        copy["name"].as_str().unwrap().starts_with("shop-restored-"),
        "{copy}"
    );
    wait_message(&app, &admin, &copy_id, "restored from backup").await;
    let copy_container = docker_ids(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=shard.database={copy_id}"),
    ]);
    let count = docker_ids(&[
        "exec",
        copy_container.trim(),
        "psql",
        "-qtA",
        "-U",
        "app",
        "-d",
        copy["connection"]["database"].as_str().unwrap(),
        "-c",
        "SELECT count(*) FROM orders",
    ]);
    assert_eq!(count.trim(), "500");

    // From the command line: `shard db restore` waits for the end and exits 0 when restored;
    // a backup of another database is refused before anything happens.
    let client = Client::new();
    let token = api_token(&app, &admin, json!({"name": "cli", "scope": "admin"})).await;
    client.login(&app, &token).await;
    let (code, out, err) = client.run(&["db", "restore", "shop", &backup]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("restored backup"), "{out}");
    let (code, _, err) = client
        .run(&[
            "db",
            "restore",
            "shop",
            "01234567-89ab-7def-8123-456789abcdef",
        ])
        .await;
    assert_eq!(code, 2, "{err}");

    // Cut short, it no longer verifies, says why, and tells the admin's backup.failed channel.
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
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let again = app
        .post(
            &format!("/api/v1/backups/{backup}/verify"),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    let refused = wait_backup(&app, &admin, &db, &backup, &["failed"]).await;
    assert_eq!(refused["step"], "verify", "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("truncated or changed"),
        "{refused}"
    );
    assert!(refused["verified_at"].is_null(), "{refused}");
    // The notice is queued right after the failure is recorded.
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
    // Nor is it restored: refused before anything is touched.
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
    assert_eq!(psql(container, "SELECT count(*) FROM orders").trim(), "500");
    let (code, _, err) = client.run(&["db", "restore", "shop", &backup]).await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("truncated or changed"), "{err}");

    // Someone outside the team can neither list nor verify it.
    let listed = app
        .get(
            &format!("/api/v1/databases/{db}/backups"),
            Some(&member.token),
        )
        .await;
    assert_eq!(listed.status(), StatusCode::NOT_FOUND);
    let verify = app
        .post(
            &format!("/api/v1/backups/{backup}/verify"),
            Some(&member.token),
            json!({}),
        )
        .await;
    assert_eq!(verify.status(), StatusCode::NOT_FOUND);

    // A stopped database is not backed up.
    app.post(
        &format!("/api/v1/databases/{db}/stop"),
        Some(&admin.token),
        json!({}),
    )
    .await;
    let stopped = app
        .post(
            &format!("/api/v1/databases/{db}/backups"),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_eq!(stopped.status(), StatusCode::CONFLICT);
}

/// Every `*.partial` file under `dir`, at any depth.
fn partial_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(partial_files(&path));
        } else if path.to_string_lossy().ends_with(".partial") {
            found.push(path);
        }
    }
    found
}

#[tokio::test]
async fn a_backup_cut_off_by_a_sigkill_is_failed_after_the_restart_and_leaves_nothing_partial() {
    use crate::process::Serve;
    use reqwest::Method;
    let dir = tempfile::TempDir::new().unwrap();
    let store = dir.path().join("store");
    let mut serve = Serve::start(
        dir.path(),
        fresh_database_url().await,
        &[
            (
                "SHARD_DATABASES__IMAGES__POSTGRES",
                "shard-test/postgres:{version}",
            ),
            ("SHARD_DATABASES__VERSIONS__POSTGRES", "15"),
        ],
    )
    .await;
    let token = serve.setup_admin().await;
    let destination = json!({"name": "here", "kind": "local", "path": store.to_str().unwrap()});
    serve
        .api(
            &token,
            Method::POST,
            "/backups/destinations",
            Some(destination),
        )
        .await;
    let created = serve
        .api(
            &token,
            Method::POST,
            "/databases",
            Some(json!({"kind": "postgres", "name": "big"})),
        )
        .await;
    let db = created["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + WITHIN;
    while serve
        .api(&token, Method::GET, &format!("/databases/{db}"), None)
        .await["status"]
        != "running"
    {
        assert!(Instant::now() < deadline, "the database never came up");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Enough data (about 150 MiB, half of it random) that a dump takes a while.
    let container = docker_ids(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=shard.database={db}"),
    ]);
    let container = container.trim().to_string();
    docker_ids(&[
        "exec",
        &container,
        "psql",
        "-qtA",
        "-U",
        "app",
        "-d",
        "big",
        "-c",
        "CREATE TABLE t AS SELECT g, md5(random()::text) || md5(random()::text) \
         || md5(random()::text) || md5(random()::text) || repeat(md5(g::text), 8) AS v \
         FROM generate_series(1, 400000) g",
    ]);

    let started = serve
        .api(
            &token,
            Method::POST,
            &format!("/databases/{db}/backups"),
            Some(json!({})),
        )
        .await;
    let backup = started["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + WITHIN;
    loop {
        let growing = partial_files(&store)
            .iter()
            .any(|p| std::fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false));
        if growing {
            break;
        }
        assert!(Instant::now() < deadline, "the dump never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    serve.kill();
    serve.spawn().await;
    let token = serve.login().await;

    // After the restart: failed, saying why, with no size; nothing partial left anywhere.
    let all = serve
        .api(
            &token,
            Method::GET,
            &format!("/databases/{db}/backups"),
            None,
        )
        .await;
    let cut = all
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == backup.as_str())
        .unwrap()
        .clone();
    assert_eq!(cut["status"], "failed", "{cut}");
    assert!(cut["error"].as_str().unwrap().contains("stopped"), "{cut}");
    assert!(cut["size_bytes"].is_null(), "{cut}");
    assert_eq!(partial_files(&store), Vec::<std::path::PathBuf>::new());

    // The database is unharmed: the next backup is verified.
    let again = serve
        .api(
            &token,
            Method::POST,
            &format!("/databases/{db}/backups"),
            Some(json!({})),
        )
        .await;
    let again = again["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + WITHIN;
    loop {
        let all = serve
            .api(
                &token,
                Method::GET,
                &format!("/databases/{db}/backups"),
                None,
            )
            .await;
        let row = all
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["id"] == again.as_str())
            .unwrap()
            .clone();
        if row["status"] == "verified" {
            break;
        }
        assert!(
            row["status"] != "failed" && Instant::now() < deadline,
            "{row}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let deleted = reqwest::Client::new()
        .delete(format!("{}/api/v1/databases/{db}", serve.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
}
