//! Backup schedules: a cron schedule is checked and stored with its next run; each due run is
//! taken once (claimed, so a second look at the same moment starts nothing), and retention
//! after each backup keeps the newest `keep_last`, removing older files and rows. The server's
//! own loop runs a schedule that fires every second.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::backups::{local_destination, psql, wait_backup, wait_running};
use crate::deploy::docker_ids;
use crate::helpers::*;

async fn backups(app: &TestApp, admin: &Session, db: &str) -> Vec<Value> {
    app.get(
        &format!("/api/v1/databases/{db}/backups"),
        Some(&admin.token),
    )
    .await
    .json()
    .await
    .unwrap()
}

/// Runs what is due at `at` and waits for the backup it started to be verified.
async fn run_at(app: &TestApp, admin: &Session, db: &str, at: DateTime<Utc>) -> Value {
    let before: Vec<String> = backups(app, admin, db)
        .await
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect();
    app.state.databases.run_due(at).await.unwrap();
    let all = backups(app, admin, db).await;
    let new: Vec<&Value> = all
        .iter()
        .filter(|b| !before.contains(&b["id"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(new.len(), 1, "one backup per due run: {all:?}");
    let id = new[0]["id"].as_str().unwrap().to_string();
    let done = wait_backup(app, admin, db, &id, &["verified", "failed"]).await;
    assert_eq!(done["status"], "verified", "{done}");
    done
}

#[tokio::test]
async fn a_schedule_runs_each_due_backup_once_and_keeps_the_newest() {
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
    let schedule_url = format!("/api/v1/databases/{db}/backup-schedule");

    // None yet: an empty schedule; without a destination one cannot be set.
    let none: Value = app
        .get(&schedule_url, Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert!(none["cron"].is_null(), "{none}");
    let refused = app
        .put(
            &schedule_url,
            Some(&admin.token),
            json!({"cron": "0 3 * * *"}),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);

    let dir = app.dir.path().join("backups");
    let destination = local_destination(&app, &admin, "here", &dir).await;
    for (body, field) in [
        (json!({"cron": "every night"}), "cron"),
        (json!({"cron": "61 * * * *"}), "cron"),
        (json!({"cron": "0 3 * * *", "keep_last": 0}), "keep_last"),
        (json!({"cron": "0 3 * * *", "keep_days": -1}), "keep_days"),
        (
            json!({"cron": "0 3 * * *", "destination_ids": []}),
            "destination_ids",
        ),
        (
            json!({"cron": "0 3 * * *", "destination_ids": ["01234567-89ab-7def-8123-456789abcdef"]}),
            "destination_ids",
        ),
    ] {
        let response = app.put(&schedule_url, Some(&admin.token), body).await;
        assert_invalid(response, field).await;
    }
    let outsider = app.member(&admin, "outsider").await;
    let hidden = app.get(&schedule_url, Some(&outsider.token)).await;
    assert_eq!(hidden.status(), StatusCode::NOT_FOUND);

    let set = app
        .put(
            &schedule_url,
            Some(&admin.token),
            json!({"cron": "0 3 * * *", "destination_ids": [destination], "keep_last": 2}),
        )
        .await;
    assert_eq!(set.status(), StatusCode::OK);
    let set: Value = set.json().await.unwrap();
    let next: DateTime<Utc> = set["next_run_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(next.format("%H:%M:%S").to_string(), "03:00:00", "{set}");
    assert!(next > Utc::now() && next - Utc::now() <= chrono::Duration::days(1));
    assert_eq!(set["destination_ids"], json!([destination]));
    assert_eq!(set["keep_last"], 2);

    wait_running(&app, &admin, &db).await;
    let container = docker_ids(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=shard.database={db}"),
    ]);
    psql(
        container.trim(),
        "CREATE TABLE notes AS SELECT n FROM generate_series(1, 50) n",
    );

    // Nothing is due before 03:00.
    app.state.databases.run_due(Utc::now()).await.unwrap();
    assert!(backups(&app, &admin, &db).await.is_empty());
    // Three nights: one backup each, the same night looked at twice starts nothing more.
    let mut night = next;
    let mut kept = Vec::new();
    for _ in 0..3 {
        let done = run_at(&app, &admin, &db, night + chrono::Duration::seconds(1)).await;
        app.state
            .databases
            .run_due(night + chrono::Duration::seconds(2))
            .await
            .unwrap();
        kept.push(done["key"].as_str().unwrap().to_string());
        night += chrono::Duration::days(1);
    }
    // Retention after the third: the newest two stay, the first's file and row are gone.
    let deadline = Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let listed = backups(&app, &admin, &db).await;
        if listed.len() == 2 || Instant::now() > deadline {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let keys: Vec<&str> = listed.iter().map(|b| b["key"].as_str().unwrap()).collect();
    assert_eq!(keys, vec![kept[2].as_str(), kept[1].as_str()], "{listed:?}");
    assert!(!dir.join(&kept[0]).exists(), "the oldest file is removed");
    assert!(dir.join(&kept[1]).exists() && dir.join(&kept[2]).exists());

    // A week after its last check, the newest verified backup is verified again; a fresher
    // one is left alone.
    let newest = listed[0]["id"].as_str().unwrap().to_string();
    assert!(
        app.state
            .databases
            .reverify_due(Utc::now())
            .await
            .unwrap()
            .is_empty()
    );
    let checked = app
        .state
        .databases
        .reverify_due(Utc::now() + chrono::Duration::days(8))
        .await
        .unwrap();
    assert_eq!(
        checked.iter().map(|id| id.to_string()).collect::<Vec<_>>(),
        vec![newest.clone()]
    );
    let again = wait_backup(&app, &admin, &db, &newest, &["verified", "failed"]).await;
    assert_eq!(again["status"], "verified", "{again}");
    assert_ne!(
        again["verified_at"], listed[0]["verified_at"],
        "checked again"
    );

    // The server's own loop: a schedule that fires every second gets a backup within its
    // look-around period.
    let every: Value = app
        .put(
            &schedule_url,
            Some(&admin.token),
            json!({"cron": "* * * * * *", "keep_last": 5}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(every["destination_ids"], json!([destination]), "{every}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if backups(&app, &admin, &db).await.len() > 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the loop ran no backup");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let removed = app.delete(&schedule_url, Some(&admin.token)).await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let gone: Value = app
        .get(&schedule_url, Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert!(gone["cron"].is_null(), "{gone}");
}

#[tokio::test]
async fn only_a_gone_runners_backups_are_failed() {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    use shard::db::backups::{NewBackup, Source, start};
    use shard::db::entities::backups::{Column, Entity};
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    let dir = app.dir.path().join("backups");
    let destination: uuid::Uuid = local_destination(&app, &admin, "here", &dir)
        .await
        .parse()
        .unwrap();
    let db = &app.state.db;
    let running = |runner: &str| NewBackup {
        id: uuid::Uuid::now_v7(),
        source: Source::Volume(uuid::Uuid::now_v7()),
        source_name: "app/data".into(),
        source_kind: shard::model::BackupKind::Volume,
        destination_id: destination,
        object_key: format!("volumes/x/{}.tar.gz", uuid::Uuid::now_v7().simple()),
        created_by: None,
        runner: runner.into(),
    };
    // Another instance's: one alive (fresh heartbeat), one silent for ten minutes.
    let alive = start(db, running("another-instance")).await.unwrap();
    let silent = start(db, running("another-instance")).await.unwrap();
    Entity::update_many()
        .col_expr(
            Column::HeartbeatAt,
            Expr::value(Utc::now() - chrono::Duration::minutes(10)),
        )
        .filter(Column::Id.eq(silent.id))
        .exec(db)
        .await
        .unwrap();
    // And one this data dir's process was running before a restart.
    let mine = std::fs::read_to_string(app.dir.path().join("runner-id")).unwrap();
    let cut_off = start(
        db,
        running(
            &uuid::Uuid::parse_str(mine.trim())
                .unwrap()
                .simple()
                .to_string(),
        ),
    )
    .await
    .unwrap();

    app.state.databases.recover_backups().await.unwrap();
    let status = |id: uuid::Uuid| async move {
        shard::db::backups::find(db, id)
            .await
            .unwrap()
            .unwrap()
            .status
            .to_string()
    };
    assert_eq!(status(alive.id).await, "running");
    assert_eq!(status(silent.id).await, "failed");
    assert_eq!(status(cut_off.id).await, "failed");
    let failed = shard::db::backups::find(db, cut_off.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        failed.error.as_deref(),
        Some("shard stopped while the backup ran")
    );
}
