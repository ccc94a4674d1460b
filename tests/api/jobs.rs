use chrono::{Duration, Utc};
use shard::db::jobs::{self, NewJob};

use crate::helpers::*;

#[tokio::test]
async fn maintenance_job_runs_and_reschedules_itself() {
    let app = spawn_app().await;
    let db = &app.state.db;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let done = shard::db::jobs::pending_of_kind(db, shard::model::JobKind::Maintenance)
            .await
            .unwrap();
        let rows = <shard::db::entities::jobs::Entity as sea_orm::EntityTrait>::find()
            .all(db)
            .await
            .unwrap();
        let succeeded = rows
            .iter()
            .filter(|j| j.kind == "maintenance" && j.status == jobs::JobState::Succeeded)
            .count();
        let queued_later = rows.iter().any(|j| {
            j.kind == "maintenance"
                && j.status == jobs::JobState::Queued
                && j.run_after > Utc::now() + Duration::minutes(30)
        });
        if done && succeeded == 1 && queued_later {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "maintenance job did not run: {rows:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_job_is_claimed_once_and_recovered_after_its_lease_expires() {
    // The queue alone, without workers: a migrated database of its own.
    let dir = tempfile::TempDir::new().unwrap();
    let db = shard::app::open_database(&test_config(&dir).await, None)
        .await
        .unwrap();
    let new = |run_after| NewJob {
        kind: shard::model::JobKind::Notify,
        payload: "{}".into(),
        project_id: None,
        max_attempts: 2,
        run_after,
    };
    let future = jobs::enqueue(&db, new(Utc::now() + Duration::days(1)))
        .await
        .unwrap();
    assert!(
        jobs::claim(&db, "a", Utc::now() + Duration::seconds(60))
            .await
            .unwrap()
            .is_none(),
        "a job is not claimed before run_after"
    );
    let due = jobs::enqueue(&db, new(Utc::now() - Duration::seconds(1)))
        .await
        .unwrap();

    // Two claims at once: exactly one wins.
    let lease = Utc::now() + Duration::seconds(60);
    let (a, b) = tokio::join!(
        jobs::claim(&db, "owner-a", lease),
        jobs::claim(&db, "owner-b", lease)
    );
    let winners: Vec<_> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
    assert_eq!(winners.len(), 1);
    assert_eq!(winners[0].id, due.id);
    assert_eq!(winners[0].attempts, 1);
    let owner = winners[0].lease_owner.clone().unwrap();
    assert!(jobs::renew(&db, due.id, &owner, lease).await.unwrap());
    assert!(!jobs::renew(&db, due.id, "intruder", lease).await.unwrap());

    // The owner "dies": once its lease has expired the job is claimed again.
    assert!(
        jobs::renew(&db, due.id, &owner, Utc::now() - Duration::seconds(1))
            .await
            .unwrap()
    );
    let recovered = jobs::claim(&db, "owner-c", lease)
        .await
        .unwrap()
        .expect("expired lease is recovered");
    assert_eq!((recovered.id, recovered.attempts), (due.id, 2));
    // The old owner can no longer finish it.
    jobs::finish(&db, due.id, &owner, jobs::JobState::Succeeded, None, None)
        .await
        .unwrap();
    assert_eq!(
        jobs::find(&db, due.id).await.unwrap().unwrap().status,
        jobs::JobState::Running
    );
    jobs::finish(
        &db,
        due.id,
        "owner-c",
        jobs::JobState::Succeeded,
        None,
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        jobs::find(&db, due.id).await.unwrap().unwrap().status,
        jobs::JobState::Succeeded
    );
    assert_eq!(
        jobs::find(&db, future.id).await.unwrap().unwrap().status,
        jobs::JobState::Queued
    );
    db.close().await.unwrap();
}

/// Many writers appending to one topic while other tables are written too: every append
/// succeeds (no "database is locked" on SQLite, no lost event) and the seqs are exactly 1..=N.
#[tokio::test]
async fn concurrent_topic_appends_all_land_with_gapless_seqs() {
    let app = spawn_app().await;
    let db = app.state.db.clone();
    let topic = format!("project:{}", uuid::Uuid::now_v7());
    let mut tasks = Vec::new();
    for i in 0..40 {
        let db = db.clone();
        let topic = topic.clone();
        tasks.push(tokio::spawn(async move {
            // A competing writer on another table between appends.
            jobs::enqueue(
                &db,
                NewJob {
                    kind: shard::model::JobKind::Notify,
                    project_id: None,
                    payload: format!("{{\"i\":{i}}}"),
                    run_after: Utc::now() + Duration::days(1),
                    max_attempts: 1,
                },
            )
            .await
            .unwrap();
            shard::db::topic_events::append(&db, &topic, "status", "{}", Utc::now()).await
        }));
    }
    let mut seqs = Vec::new();
    for task in tasks {
        let event = task.await.unwrap().expect("append failed");
        seqs.push(event.seq);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=40).collect::<Vec<i64>>());
    let stored = shard::db::topic_events::since(&db, &topic, 0, 100)
        .await
        .unwrap();
    assert_eq!(stored.len(), 40);
}

/// Two shard instances on one database (two connection pools here) claiming at the same time
/// never run two jobs of one project: the second claim waits for the first, sees the project
/// busy, and takes nothing.
#[tokio::test]
async fn two_instances_never_claim_two_jobs_of_one_project() {
    let dir = tempfile::TempDir::new().unwrap();
    let config = test_config(&dir).await;
    let first = shard::app::open_database(&config, None).await.unwrap();
    let second = shard::db::connect(&config.database_url()).await.unwrap();
    let user = shard::db::users::create(&first, "owner", "x", shard::model::UserRole::Member)
        .await
        .unwrap();
    let settings = |name: &str| shard::db::projects::Settings {
        health_timeout_secs: 5,
        ..shard::db::projects::Settings::new(name, "https://example.com/x.git").set_by_admin()
    };
    let lease = || Utc::now() + Duration::seconds(60);
    for round in 0..20 {
        let project = shard::db::projects::insert(&first, user.id, settings(&format!("p{round}")))
            .await
            .unwrap();
        for _ in 0..2 {
            jobs::enqueue(
                &first,
                NewJob {
                    kind: shard::model::JobKind::Notify,
                    payload: "{}".into(),
                    project_id: Some(project.id),
                    max_attempts: 1,
                    run_after: Utc::now() - Duration::seconds(1),
                },
            )
            .await
            .unwrap();
        }
        let (a, b) = tokio::join!(
            jobs::claim(&first, "instance-a", lease()),
            jobs::claim(&second, "instance-b", lease())
        );
        let claimed: Vec<_> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
        assert_eq!(
            claimed.len(),
            1,
            "round {round}: two jobs of one project claimed"
        );
        let job = &claimed[0];
        let owner = job.lease_owner.clone().unwrap();
        jobs::finish(
            &first,
            job.id,
            &owner,
            jobs::JobState::Succeeded,
            None,
            None,
        )
        .await
        .unwrap();
        let next = jobs::claim(&second, "instance-b", lease()).await.unwrap();
        assert!(
            next.is_some(),
            "round {round}: the second job waits its turn, then runs"
        );
        let next = next.unwrap();
        jobs::finish(
            &first,
            next.id,
            "instance-b",
            jobs::JobState::Succeeded,
            None,
            None,
        )
        .await
        .unwrap();
    }
    second.close().await.unwrap();
    first.close().await.unwrap();
}

/// Maintenance enforces `[retention]`: old build logs of ended deployments, old topic events,
/// finished jobs and audit rows go; recent ones and the live deployment's log stay.
#[tokio::test]
async fn maintenance_enforces_retention() {
    use sea_orm::{ConnectionTrait, Statement};
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    let project = app.create_project(&admin, "old").await;
    let project_id = uuid::Uuid::parse_str(project["id"].as_str().unwrap()).unwrap();
    let db = &app.state.db;
    let new_deployment = || shard::db::deployments::NewDeployment::manual(project_id);
    let old = shard::db::deployments::create(db, new_deployment())
        .await
        .unwrap();
    let live = shard::db::deployments::create(db, new_deployment())
        .await
        .unwrap();
    let entry = shard::db::deployment_logs::Entry {
        ts: Utc::now(),
        stream: shard::model::LogStream::Stdout,
        line: "hello".into(),
    };
    for d in [&old, &live] {
        shard::db::deployment_logs::insert(db, d.id, 1, std::slice::from_ref(&entry))
            .await
            .unwrap();
    }
    let backend = db.get_database_backend();
    let long_ago = Utc::now() - Duration::days(400);
    let exec = |sql: &str, values: Vec<sea_orm::Value>| {
        db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
    };
    let p = |n: usize| {
        if shard::db::is_postgres(db) {
            format!("${n}")
        } else {
            "?".into()
        }
    };
    exec(
        &format!(
            "UPDATE deployments SET status = 'failed', finished_at = {} WHERE id = {}",
            p(1),
            p(2)
        ),
        vec![long_ago.into(), old.id.into()],
    )
    .await
    .unwrap();
    exec(
        &format!(
            "UPDATE deployments SET status = 'live', finished_at = {} WHERE id = {}",
            p(1),
            p(2)
        ),
        vec![long_ago.into(), live.id.into()],
    )
    .await
    .unwrap();
    let topic = format!("project:{project_id}");
    shard::db::topic_events::append(db, &topic, "status", "{}", long_ago)
        .await
        .unwrap();
    shard::db::topic_events::append(db, &topic, "status", "{}", Utc::now())
        .await
        .unwrap();
    exec(
        &format!("UPDATE audit_log SET created_at = {}", p(1)),
        vec![long_ago.into()],
    )
    .await
    .unwrap();

    shard::jobs::maintenance::prune(&app.state.db, &app.state.config)
        .await
        .unwrap();

    assert!(
        shard::db::deployment_logs::since(db, old.id, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        shard::db::deployment_logs::since(db, live.id, 0, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    let events = shard::db::topic_events::since(db, &topic, 0, 10)
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "only the recent event stays");
    let audit = db
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT COUNT(*) AS n FROM audit_log",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(audit.try_get::<i64>("", "n").unwrap(), 0);
}
