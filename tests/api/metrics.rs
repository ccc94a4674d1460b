//! Metrics: the collector against real containers (an app burning a CPU shows over 50 %, its
//! memory limit is read back, samples stream on `project:<id>:metrics`), the series API's
//! validation, the admin overview, and downsampling with retention on a synthetic 90-day
//! series (the table stays bounded).

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::gitserver::GitServer;
use crate::helpers::*;

/// An app that keeps one CPU busy while it serves.
fn burner_files() -> Vec<(&'static str, Vec<u8>, bool)> {
    let dockerfile = format!(
        "FROM scratch\nLABEL test.build={}\nCOPY busybox /bin/busybox\nCOPY www /www\nEXPOSE 8080\n\
         CMD [\"/bin/busybox\", \"sh\", \"-c\", \"while :; do :; done & exec /bin/busybox httpd -f -p 8080 -h /www\"]\n",
        uuid::Uuid::new_v4().simple()
    );
    vec![
        ("busybox", std::fs::read("/bin/busybox").unwrap(), true),
        ("Dockerfile", dockerfile.into_bytes(), false),
        ("www/index.html", b"burning\n".to_vec(), false),
    ]
}

#[tokio::test]
async fn the_collector_samples_a_busy_container_and_streams_it() {
    let app = spawn_app_with(|c| c.metrics.interval_secs = 1).await;
    let admin = app.setup_admin().await;
    let git = GitServer::start().await;
    let repo = git.repo("burner", &burner_files());
    let created = app
        .post(
            "/api/v1/projects",
            Some(&admin.token),
            json!({"name": "burner", "git_url": repo.url, "memory_limit_mb": 96, "cpu_limit_millis": 1000}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let project = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let id = app.deploy(&admin, &project, json!({})).await;
    let live = app
        .wait_for(&admin, &id, FINAL, Duration::from_secs(120))
        .await;
    assert_eq!(live["status"], "live", "{live}");

    // Live: a sample arrives on the project's metrics topic.
    let url = app.base.replace("http://", "ws://") + "/api/v1/ws";
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    for message in [
        json!({"op": "auth", "token": admin.token}),
        json!({"op": "subscribe", "topic": format!("project:{project}:metrics"), "since": 0}),
    ] {
        ws.send(Message::Text(message.to_string().into()))
            .await
            .unwrap();
    }
    let streamed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let Some(Ok(Message::Text(text))) = ws.next().await else {
                panic!("the socket closed");
            };
            let message: Value = serde_json::from_str(&text).unwrap();
            let events = match message["type"].as_str() {
                Some("batch") => message["events"].as_array().unwrap().clone(),
                _ => vec![message],
            };
            if let Some(event) = events.into_iter().find(|e| e["type"] == "metrics") {
                return event;
            }
        }
    })
    .await
    .expect("a metrics event within 30 s");
    assert_eq!(streamed["topic"], format!("project:{project}:metrics"));
    assert!(
        streamed["memory_limit_bytes"].as_i64().unwrap() > 0,
        "{streamed}"
    );

    // Stored: the series shows the busy CPU and the limit the project asked for.
    let deadline = Instant::now() + Duration::from_secs(60);
    let points = loop {
        let from = (Utc::now() - chrono::Duration::minutes(5)).timestamp();
        let view: Value = app
            .get(
                &format!("/api/v1/projects/{project}/metrics?from={from}&step=1"),
                Some(&admin.token),
            )
            .await
            .json()
            .await
            .unwrap();
        let points = view["points"].as_array().unwrap().clone();
        let busy = points
            .iter()
            .filter(|p| p["cpu_percent"].as_f64().unwrap() > 50.0)
            .count();
        if busy >= 3 || Instant::now() > deadline {
            break points;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let busy: Vec<f64> = points
        .iter()
        .map(|p| p["cpu_percent"].as_f64().unwrap())
        .collect();
    assert!(
        busy.iter().filter(|c| **c > 50.0).count() >= 3,
        "a busy loop shows over 50 % CPU: {busy:?}"
    );
    assert!(
        busy.iter().all(|c| *c <= 110.0),
        "capped at one CPU: {busy:?}"
    );
    let last = points.last().unwrap();
    assert_eq!(last["memory_limit_bytes"], 96 * 1024 * 1024);
    let memory = last["memory_bytes"].as_i64().unwrap();
    assert!(memory > 0 && memory < 96 * 1024 * 1024, "{last}");
    assert_eq!(last["restart_count"], 0);
    let times: Vec<&str> = points.iter().map(|p| p["ts"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "oldest first");

    // A day's view (1-minute averages) already shows the samples not yet rolled up.
    let day_ago = (Utc::now() - chrono::Duration::days(1)).timestamp();
    let day: Value = app
        .get(
            &format!("/api/v1/projects/{project}/metrics?from={day_ago}"),
            Some(&admin.token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(day["step"], 288);
    assert!(!day["points"].as_array().unwrap().is_empty(), "{day}");

    // Someone else's project is a 404, bad parameters a 422.
    let stranger = app.member(&admin, "stranger").await;
    let hidden = app
        .get(
            &format!("/api/v1/projects/{project}/metrics"),
            Some(&stranger.token),
        )
        .await;
    assert_error(hidden, StatusCode::NOT_FOUND, "not_found").await;
    for (query, field) in [
        ("from=yesterday", "from"),
        ("from=2000&to=1000", "from"),
        ("step=0", "step"),
        ("from=0&step=1", "step"),
        ("to=-1", "to"),
        ("to=-9999999999999", "to"),
        ("from=99999999999999", "from"),
    ] {
        let bad = app
            .get(
                &format!("/api/v1/projects/{project}/metrics?{query}"),
                Some(&admin.token),
            )
            .await;
        assert_invalid(bad, field).await;
    }
    let member = app
        .get("/api/v1/system/overview", Some(&stranger.token))
        .await;
    assert_error(member, StatusCode::FORBIDDEN, "forbidden").await;
    let overview: Value = app
        .get("/api/v1/system/overview", Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(overview["docker_reachable"], true, "{overview}");
    assert!(overview["containers_running"].as_u64().unwrap() >= 1);
    assert!(overview["shard_rss_bytes"].as_u64().unwrap() > 1 << 20);
    assert!(overview["memory_total_bytes"].as_u64().unwrap() > 1 << 20);
    assert!(overview["metrics_samples"].as_u64().unwrap() >= 3);
}

#[tokio::test]
async fn ninety_days_of_samples_are_rolled_up_and_the_table_stays_bounded() {
    use shard::db::metrics::{self, HOUR, MINUTE, Point, RAW};
    let app = spawn_app_with(|c| c.metrics.interval_secs = 0).await;
    let admin = app.setup_admin().await;
    let project: uuid::Uuid = app.create_project(&admin, "history").await["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let db = &app.state.db;
    let retention = shard::metrics::retention(&app.state.config.metrics);
    // 100 days of a sample every 5 minutes, CPU = the day's number, maintenance every 12 h.
    let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let step = chrono::Duration::minutes(5);
    let mut t = start;
    let end = start + chrono::Duration::days(100);
    let mut rx = 0;
    while t < end {
        let until = t + chrono::Duration::hours(12);
        let mut batch = Vec::new();
        while t < until {
            rx += 1000;
            let day = (t - start).num_days() as f64;
            batch.push((
                project,
                Point {
                    ts: t,
                    cpu_percent: day,
                    memory_bytes: 1 << 20,
                    memory_limit_bytes: 1 << 26,
                    net_rx_bytes: rx,
                    net_tx_bytes: 0,
                    block_read_bytes: 0,
                    block_write_bytes: 0,
                    restart_count: 0,
                },
            ));
            t += step;
        }
        metrics::insert(db, &batch).await.unwrap();
        shard::metrics::maintain(db, t, &retention).await.unwrap();
    }

    let count = |resolution: i32| async move {
        use sea_orm::{ConnectionTrait, Statement};
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                format!(
                    "SELECT COUNT(*) AS n FROM metrics_samples WHERE resolution_secs = {resolution}"
                ),
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<i64>("", "n").unwrap()
    };
    let (raw, minute, hour) = (count(RAW).await, count(MINUTE).await, count(HOUR).await);
    // Raw: a day (plus the 12 h not yet past retention); minute: a week; hour: 90 days.
    assert!(raw <= 36 * 12, "raw rows {raw}");
    assert!(
        (7 * 288 - 288..=7 * 288 + 12 * 12).contains(&minute),
        "minute rows {minute}"
    );
    assert!(
        (90 * 24 - 24..=90 * 24 + 12).contains(&hour),
        "hour rows {hour}"
    );
    assert!(metrics::count(db).await.unwrap() <= 36 * 12 + 7 * 288 + 144 + 90 * 24 + 12);

    // The series over the whole range comes from the hourly averages, one point a day,
    // each day's CPU being that day's number; the counters keep their last value.
    let from = end - chrono::Duration::days(89);
    let points = metrics::series(db, project, from, end, 86_400, end, &retention)
        .await
        .unwrap();
    assert!((88..=90).contains(&points.len()), "{}", points.len());
    for p in &points {
        let day = (p.ts - start).num_days() as f64;
        assert!((p.cpu_percent - day).abs() < 1e-9, "{p:?}");
    }
    assert!(
        points
            .windows(2)
            .all(|w| w[0].net_rx_bytes < w[1].net_rx_bytes)
    );
    // Nothing older than the hourly retention remains.
    let oldest = metrics::series(db, project, start, end, 86_400, end, &retention)
        .await
        .unwrap();
    assert!(
        oldest[0].ts >= end - chrono::Duration::days(91),
        "{:?}",
        oldest[0].ts
    );
}

/// Migration 21 made the samples' owner a *subject* (a project or a database). Down, a
/// project's samples are kept and a database's dropped; up again, the project's are read back.
#[tokio::test]
async fn the_subject_migration_keeps_an_apps_samples_both_ways() {
    use migration::{Migrator, MigratorTrait};
    use sea_orm::ConnectionTrait;
    let app = spawn_app_with(|c| c.metrics.interval_secs = 0).await;
    let admin = app.setup_admin().await;
    let project: uuid::Uuid = app
        .project_for(&admin, "sampled", "https://example.com/a.git")
        .await
        .parse()
        .unwrap();
    let database = uuid::Uuid::new_v4();
    let at = |secs: i64| shard::db::metrics::Point {
        ts: Utc::now() - chrono::Duration::seconds(secs),
        cpu_percent: 1.5,
        memory_bytes: 1000 + secs,
        memory_limit_bytes: 4000,
        net_rx_bytes: 0,
        net_tx_bytes: 0,
        block_read_bytes: 0,
        block_write_bytes: 0,
        restart_count: 0,
    };
    let db = &app.state.db;
    shard::db::metrics::insert(
        db,
        &[(project, at(30)), (project, at(20)), (database, at(10))],
    )
    .await
    .unwrap();

    // Back to schema 20, before the subject migration (21) and any after it.
    let after_20 = Migrator::migrations().len() as u32 - 20;
    Migrator::down(db, Some(after_20)).await.unwrap();
    let count = |column: &'static str, id: uuid::Uuid| async move {
        let sql = format!("SELECT COUNT(*) AS n FROM metrics_samples WHERE {column} = $1");
        let row = db
            .query_one_raw(sea_orm::Statement::from_sql_and_values(
                db.get_database_backend(),
                sql,
                [id.into()],
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<i64>("", "n").unwrap()
    };
    assert_eq!(count("project_id", project).await, 2);
    assert_eq!(count("project_id", database).await, 0);

    Migrator::up(db, None).await.unwrap();
    let series = shard::db::metrics::series(
        db,
        project,
        Utc::now() - chrono::Duration::hours(1),
        Utc::now(),
        1,
        Utc::now(),
        &shard::metrics::retention(&app.state.config.metrics),
    )
    .await
    .unwrap();
    let memory: Vec<i64> = series.iter().map(|p| p.memory_bytes).collect();
    assert_eq!(memory, [1030, 1020]);
}
