//! A backup whose destination fills up (a 256 KiB tmpfs): the backup is failed at `upload`
//! saying the disk is full, no partial file is left, and nothing else is damaged: the
//! database keeps its rows and the next backup, to a destination with room, is verified. A
//! dump that hangs (a table locked) is failed at `databases.backup_timeout_secs`.

use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::backups::{psql, wait_backup, wait_running};
use crate::deploy::docker_ids;
use crate::helpers::*;

/// A small tmpfs, unmounted on drop.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(at: std::path::PathBuf) -> SmallDisk {
        std::fs::create_dir_all(&at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
            .arg(&at)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "cannot mount a tmpfs (the tests run as root)"
        );
        SmallDisk(at)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_backup_that_fills_its_disk_is_failed_and_damages_nothing() {
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
    let disk = SmallDisk::mount(app.dir.path().join("small"));
    let roomy = app.dir.path().join("roomy");
    let mut ids = Vec::new();
    for (name, path) in [("small", &disk.0), ("roomy", &roomy)] {
        let added = app
            .post(
                "/api/v1/backups/destinations",
                Some(&admin.token),
                json!({"name": name, "kind": "local", "path": path.to_str().unwrap()}),
            )
            .await;
        assert_eq!(added.status(), StatusCode::CREATED);
        ids.push(
            added.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    wait_running(&app, &admin, &db).await;
    let container = docker_ids(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=shard.database={db}"),
    ]);
    let container = container.trim();
    // Random text: a dump of a few MiB that does not compress below 256 KiB.
    psql(
        container,
        "CREATE TABLE orders AS SELECT n, md5(random()::text) || md5(random()::text) AS v \
         FROM generate_series(1, 40000) n",
    );

    let take = |destination: String| {
        let app = &app;
        let (token, url) = (
            admin.token.clone(),
            format!("/api/v1/databases/{db}/backups"),
        );
        async move {
            let taken = app
                .post(&url, Some(&token), json!({"destination_id": destination}))
                .await;
            assert_eq!(taken.status(), StatusCode::ACCEPTED);
            taken.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let full = take(ids[0].clone()).await;
    let failed = wait_backup(&app, &admin, &db, &full, &["failed", "verified"]).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["step"], "upload", "{failed}");
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("No space left on device"), "{error}");
    let left: Vec<_> = walk(&disk.0);
    assert!(
        left.is_empty(),
        "nothing partial stays on the full disk: {left:?}"
    );

    // Nothing else is damaged: the rows are there, and a backup with room is verified.
    assert_eq!(
        psql(container, "SELECT count(*) FROM orders").trim(),
        "40000"
    );
    let ok = take(ids[1].clone()).await;
    let verified = wait_backup(&app, &admin, &db, &ok, &["failed", "verified"]).await;
    assert_eq!(verified["status"], "verified", "{verified}");
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[tokio::test]
async fn a_dump_that_hangs_is_failed_at_its_time_limit_and_leaves_nothing() {
    let app = spawn_app_with(|c| c.databases.backup_timeout_secs = 10).await;
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
    let dir = app.dir.path().join("backups");
    app.post(
        "/api/v1/backups/destinations",
        Some(&admin.token),
        json!({"name": "here", "kind": "local", "path": dir.to_str().unwrap()}),
    )
    .await;
    wait_running(&app, &admin, &db).await;
    let container = docker_ids(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=shard.database={db}"),
    ]);
    let container = container.trim().to_string();
    psql(&container, "CREATE TABLE orders AS SELECT 1 AS n");
    // A transaction holds the table locked for a minute: pg_dump waits for it.
    let mut locker = Command::new("docker")
        .args([
            "exec",
            &container,
            "psql",
            "-U",
            "app",
            "-d",
            "shop",
            "-c",
            "BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60);",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let started = std::time::Instant::now();
    let taken = app
        .post(
            &format!("/api/v1/databases/{db}/backups"),
            Some(&admin.token),
            json!({}),
        )
        .await;
    let backup = taken.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let failed = wait_backup(&app, &admin, &db, &backup, &["failed", "verified"]).await;
    let _ = locker.kill();
    let _ = locker.wait();
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["step"], "dump", "{failed}");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("took longer than 10 s"),
        "{failed}"
    );
    let took = started.elapsed().as_secs();
    assert!((9..40).contains(&took), "failed after {took} s");
    let left = if dir.exists() { walk(&dir) } else { Vec::new() };
    assert!(left.is_empty(), "{left:?}");
}
