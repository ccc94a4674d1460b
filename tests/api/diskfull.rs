//! A backup whose destination fills up (a 256 KiB tmpfs): the backup is failed at `upload`
//! saying the disk is full, no partial file is left, and nothing else is damaged: the
//! database keeps its rows and the next backup, to a destination with room, is verified. A
//! dump that hangs (a table locked) is failed at `databases.backup_timeout_secs`.

use std::process::Command;

use serde_json::json;

use crate::backups::{local_destination, psql, running_database, take_backup, wait_backup};
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
    let disk = SmallDisk::mount(app.dir.path().join("small"));
    let roomy = app.dir.path().join("roomy");
    let ids = [
        local_destination(&app, &admin, "small", &disk.0).await,
        local_destination(&app, &admin, "roomy", &roomy).await,
    ];
    let (db, container) = running_database(&app, &admin, "postgres", "shop").await;
    let container = container.as_str();
    // Random text: a dump of a few MiB that does not compress below 256 KiB.
    psql(
        container,
        "CREATE TABLE orders AS SELECT n, md5(random()::text) || md5(random()::text) AS v \
         FROM generate_series(1, 40000) n",
    );

    let list = format!("/api/v1/databases/{db}/backups");
    let take = |destination: String| {
        take_backup(&app, &admin, &list, json!({"destination_id": destination}))
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
    let dir = app.dir.path().join("backups");
    local_destination(&app, &admin, "here", &dir).await;
    let (db, container) = running_database(&app, &admin, "postgres", "shop").await;
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
    let list = format!("/api/v1/databases/{db}/backups");
    let backup = take_backup(&app, &admin, &list, json!({})).await;
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
