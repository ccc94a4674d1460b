//! Several shard instances on one Postgres: access tokens issued by one are accepted by the
//! other (keys derived from the shared secret key), a deploy asked of instance A is watched
//! live from instance B (hub events relayed by LISTEN/NOTIFY, gapless), and exactly one
//! instance leads the singletons, the other taking over when the leader is SIGKILLed; a CLI
//! sign-in started on one is approved on the other and collected once. These
//! run on Postgres in both passes of the suite: the SQLite pass uses the database role that
//! `scripts/test` creates.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use shard::config::Secret;
use tokio_tungstenite::tungstenite::Message;

use crate::deploy::app_files;
use crate::gitserver::GitServer;
use crate::helpers::*;
use crate::process::Serve;

const FALLBACK_POSTGRES: &str = "postgres://shard_test:shard_test@127.0.0.1:5432/postgres";
/// The secret key the instances of one cluster (one database) share: 32 bytes in hex, its
/// own per database. Instances with the same key count as one installation and label their
/// containers alike, so tests running side by side must not share one: each would sweep the
/// others' containers as leftovers.
pub(crate) fn cluster_key(db: &str) -> String {
    use std::hash::{Hash, Hasher};
    (0u8..4)
        .map(|salt| {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            (salt, db).hash(&mut hasher);
            format!("{:016x}", hasher.finish())
        })
        .collect()
}

/// A fresh Postgres database, on the suite's server or the one `scripts/test` prepares.
pub(crate) async fn cluster_database() -> String {
    if let Some(url) = fresh_database_url().await {
        return url;
    }
    let name = format!("shard_t_{}", uuid::Uuid::new_v4().simple());
    let admin = sea_orm::Database::connect(FALLBACK_POSTGRES).await.expect(
        "the two-instance tests need Postgres (scripts/test starts it and creates shard_test)",
    );
    use sea_orm::ConnectionTrait;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    admin.close().await.ok();
    let mut url = url::Url::parse(FALLBACK_POSTGRES).unwrap();
    url.set_path(&name);
    url.to_string()
}

async fn instance(db: &str) -> TestApp {
    let db = db.to_string();
    spawn_app_with(move |c| {
        c.secret_key = Some(Secret::new(cluster_key(&db)));
        c.database_url = Some(Secret::new(db));
        c.metrics.interval_secs = 1;
    })
    .await
}

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn subscribe(app: &TestApp, token: &str, topic: &str) -> Ws {
    let url = app.base.replace("http://", "ws://") + "/api/v1/ws";
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    for message in [
        json!({"op": "auth", "token": token}),
        json!({"op": "subscribe", "topic": topic, "since": 0}),
    ] {
        ws.send(Message::Text(message.to_string().into()))
            .await
            .unwrap();
    }
    loop {
        let v = next_json(&mut ws).await;
        if v["type"] == "subscribed" {
            return ws;
        }
        assert_ne!(v["type"], "error", "{v}");
    }
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(120), ws.next())
            .await
            .expect("a message within 120 s")
            .expect("socket open")
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// Events of one topic until `done` holds for one: (seqs in order, the events).
pub(crate) async fn events_until(ws: &mut Ws, mut done: impl FnMut(&Value) -> bool) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let v = next_json(ws).await;
        let batch = match v["type"].as_str() {
            Some("batch") => v["events"].as_array().unwrap().clone(),
            Some("log" | "status" | "deployment") => vec![v],
            Some("error") => panic!("{v}"),
            _ => vec![v].into_iter().filter(|e| e["seq"].is_i64()).collect(),
        };
        for event in batch {
            let finished = done(&event);
            out.push(event);
            if finished {
                return out;
            }
        }
    }
}

fn gapless(events: &[Value]) {
    let seqs: Vec<i64> = events.iter().filter_map(|e| e["seq"].as_i64()).collect();
    assert!(!seqs.is_empty());
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "seqs with a gap or repeat: {seqs:?}"
    );
}

#[tokio::test]
async fn a_deploy_asked_of_one_instance_is_watched_live_from_another() {
    let db = cluster_database().await;
    let a = instance(&db).await;
    let b = instance(&db).await;
    let admin = a.setup_admin().await;
    // An access token from A works on B: the signing key comes from the shared secret key.
    let me = b.get("/api/v1/auth/me", Some(&admin.token)).await;
    assert_eq!(me.status(), reqwest::StatusCode::OK);

    let git = GitServer::start().await;
    let repo = git.repo(
        "relayed",
        &app_files("one", "RUN [\"/bin/busybox\", \"seq\", \"1\", \"300\"]\n"),
    );
    let project = a.project_for(&admin, "relayed", &repo.url).await;
    // B listens to the project before anything happens: all it gets comes through the relay.
    let mut project_ws = subscribe(&b, &admin.token, &format!("project:{project}")).await;
    let deployment = a.deploy(&admin, &project, json!({})).await;
    let mut build_ws = subscribe(&b, &admin.token, &format!("deployment:{deployment}")).await;

    let build = events_until(&mut build_ws, |e| {
        e["type"] == "status" && FINAL.contains(&e["status"].as_str().unwrap_or(""))
    })
    .await;
    gapless(&build);
    let tail: Vec<&str> = build
        .iter()
        .rev()
        .take(6)
        .filter_map(|e| e["line"].as_str())
        .collect();
    assert_eq!(
        build.last().unwrap()["status"],
        "live",
        "{:?}; last lines (newest first): {tail:?}",
        build.last()
    );
    let lines: Vec<&str> = build.iter().filter_map(|e| e["line"].as_str()).collect();
    assert!(lines.contains(&"300"), "the whole build log reached B");
    // The same log as A persisted, line for line (status changes included).
    let seen: Vec<&str> = build
        .iter()
        .map(|e| e["line"].as_str().or(e["status"].as_str()).unwrap())
        .collect();
    assert_eq!(
        seen.join("\n").trim_end(),
        a.logs_text(&admin, &deployment).await.trim_end(),
        "B saw A's log exactly"
    );

    let statuses = events_until(&mut project_ws, |e| e["status"] == "live").await;
    gapless(&statuses);
    let seen: Vec<&str> = statuses
        .iter()
        .filter_map(|e| e["status"].as_str())
        .collect();
    assert!(
        seen.contains(&"building") && seen.last() == Some(&"live"),
        "{seen:?}"
    );

    // B routes the app A deployed: the relayed `live` rebuilt B's route table.
    let host = format!("relayed.localhost:{}", b.state.port);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let response = crate::proxy::get_host(&b, &host, "/").await;
        if response.status() == reqwest::StatusCode::OK {
            assert_eq!(response.text().await.unwrap(), "version one\n");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B does not route A's deployment: {}",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The leader samples the app; a subscriber on the other instance gets the samples live.
    let deadline = Instant::now() + Duration::from_secs(30);
    let follower = loop {
        match (
            a.state.leadership.is_leader(),
            b.state.leadership.is_leader(),
        ) {
            (true, false) => break &b,
            (false, true) => break &a,
            _ => {
                assert!(Instant::now() < deadline, "exactly one leader");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let topic = format!("project:{project}:metrics");
    let mut metrics_ws = subscribe(follower, &admin.token, &topic).await;
    let samples = events_until(&mut metrics_ws, |e| e["type"] == "metrics").await;
    let sample = samples.last().unwrap();
    assert_eq!(sample["topic"], topic.as_str(), "{sample}");
    assert!(sample["memory_bytes"].as_i64() > Some(0), "{sample}");
}

#[tokio::test]
async fn two_instances_racing_through_setup_make_exactly_one_admin() {
    let db = cluster_database().await;
    let a = instance(&db).await;
    let b = instance(&db).await;
    let body = |app: &TestApp, name: &str| json!({"token": app.setup_token(), "username": name, "password": PASSWORD});
    let (first, second) = tokio::join!(
        a.post("/api/v1/auth/setup", None, body(&a, "alpha")),
        b.post("/api/v1/auth/setup", None, body(&b, "beta"))
    );
    let mut statuses = [first.status().as_u16(), second.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [201, 409], "exactly one instance ran setup");
    let users: i64 = {
        use sea_orm::ConnectionTrait;
        let row = a
            .state
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT COUNT(*) AS n FROM users",
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get("", "n").unwrap()
    };
    assert_eq!(users, 1);
}

/// Instances on one database with plain containers must share one Docker engine: two on this
/// machine's engine say nothing; an engine another instance reported lately (written as that
/// instance would) makes admins see a warning on the Nodes page, naming both engines, which
/// goes when that engine's report does.
#[tokio::test]
async fn instances_on_different_docker_engines_are_told_apart() {
    let db = cluster_database().await;
    let a = instance(&db).await;
    let b = instance(&db).await;
    let admin = a.setup_admin().await;
    async fn warnings_on(app: &TestApp, token: &str) -> Vec<Value> {
        let join = app.get("/api/v1/nodes/join", Some(token)).await;
        assert_eq!(join.status(), StatusCode::OK);
        join.json::<Value>().await.unwrap()["warnings"]
            .as_array()
            .unwrap()
            .clone()
    }
    let warnings = |app| warnings_on(app, &admin.token);
    assert!(warnings(&a).await.is_empty(), "one engine, no warning");
    assert!(warnings(&b).await.is_empty(), "one engine, no warning");
    let reported = shard::db::shared::versions(&a.state.db, "docker-engine:")
        .await
        .unwrap();
    assert_eq!(
        reported.len(),
        1,
        "both report the same engine: {reported:?}"
    );

    let elsewhere = "docker-engine:ELSEWHERE0000:AAAA:BBBB";
    let expires = chrono::Utc::now() + chrono::Duration::minutes(3);
    shard::db::shared::put(
        &a.state.db,
        &a.state.sealer,
        elsewhere,
        b"vps-2",
        Some(expires),
    )
    .await
    .unwrap();
    for app in [&a, &b] {
        let seen = warnings(app).await;
        assert_eq!(seen.len(), 1, "{seen:?}");
        let text = seen[0].as_str().unwrap();
        assert!(
            text.contains("2 Docker engines") && text.contains("'vps-2'"),
            "{text}"
        );
        assert!(text.contains("runtime.kind = \"swarm\""), "{text}");
    }
    shard::db::shared::delete(&a.state.db, elsewhere)
        .await
        .unwrap();
    assert!(
        warnings(&a).await.is_empty(),
        "the other engine gone, so is the warning"
    );
}

#[tokio::test]
async fn a_cli_sign_in_started_on_one_instance_is_approved_on_another_and_collected_once() {
    let db = cluster_database().await;
    let a = instance(&db).await;
    let b = instance(&db).await;
    let admin = b.setup_admin().await;
    let started = a
        .post("/api/v1/cli/logins", None, json!({"name": "laptop"}))
        .await;
    assert_eq!(started.status(), StatusCode::CREATED);
    let started: Value = started.json().await.unwrap();
    let code = started["code"].as_str().unwrap().to_string();
    let poll = json!({"poll_token": started["poll_token"]});
    let pending: Value = b
        .post("/api/v1/cli/logins/poll", None, poll.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(pending["status"], "pending");
    let shown: Value = b
        .get(&format!("/api/v1/cli/logins/{code}"), Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["name"], "laptop");
    let approved = b
        .post(
            &format!("/api/v1/cli/logins/{code}/approve"),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_eq!(approved.status(), StatusCode::NO_CONTENT);
    // Polled on both at once: exactly one collects the token.
    let (on_a, on_b) = tokio::join!(
        a.post("/api/v1/cli/logins/poll", None, poll.clone()),
        b.post("/api/v1/cli/logins/poll", None, poll.clone())
    );
    let mut answers = Vec::new();
    for response in [on_a, on_b] {
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        answers.push((status, body));
    }
    answers.sort_by_key(|(status, _)| status.as_u16());
    assert_eq!(answers[0].0, StatusCode::OK, "{answers:?}");
    assert_eq!(
        answers[1].0,
        StatusCode::NOT_FOUND,
        "collected twice: {answers:?}"
    );
    let token = answers[0].1["token"].as_str().unwrap().to_string();
    assert_eq!(answers[0].1["username"], "admin");
    let me = a.get("/api/v1/auth/me", Some(&token)).await;
    assert_eq!(
        me.status(),
        StatusCode::OK,
        "the token works on the other instance"
    );
    // The token never rests in clear: the row is gone, and while it waited it was sealed.
    use sea_orm::ConnectionTrait;
    let rows = a
        .state
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT COUNT(*) AS n FROM cli_logins",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rows.try_get::<i64>("", "n").unwrap(), 0);
}

#[tokio::test]
async fn pending_cli_sign_ins_are_bounded_across_instances() {
    let db = cluster_database().await;
    let a = instance(&db).await;
    let b = instance(&db).await;
    for i in 0..200 {
        let app = if i % 2 == 0 { &a } else { &b };
        let response = app.post("/api/v1/cli/logins", None, json!({})).await;
        assert_eq!(response.status(), StatusCode::CREATED, "sign-in {i}");
    }
    for app in [&a, &b] {
        let refused = app.post("/api/v1/cli/logins", None, json!({})).await;
        assert_error(refused, StatusCode::CONFLICT, "conflict").await;
    }
}

async fn overview(serve: &Serve, token: &str) -> Option<Value> {
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/system/overview", serve.base))
        .bearer_auth(token)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    response.json().await.ok()
}

/// Which of the servers lead now (waits until exactly one does).
async fn the_leader(servers: &[&Serve], token: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut leaders = Vec::new();
        for (i, s) in servers.iter().enumerate() {
            if overview(s, token)
                .await
                .is_some_and(|o| o["leader"] == true)
            {
                leaders.push(i);
            }
        }
        if leaders.len() == 1 {
            return leaders[0];
        }
        assert!(leaders.len() < 2, "two leaders at once: {leaders:?}");
        assert!(Instant::now() < deadline, "no leader within 20 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_sigkilled_leader_hands_its_singletons_to_the_other_instance() {
    let db = cluster_database().await;
    let (dir_a, dir_b) = (
        tempfile::TempDir::new().unwrap(),
        tempfile::TempDir::new().unwrap(),
    );
    let key = cluster_key(&db);
    let env = [("SHARD_SECRET_KEY", key.as_str())];
    let mut a = Serve::start(dir_a.path(), Some(db.clone()), &env).await;
    let token = a.setup_admin().await;
    let mut b = Serve::start(dir_b.path(), Some(db.clone()), &env).await;
    let first = the_leader(&[&a, &b], &token).await;
    // Stays put while both run.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(the_leader(&[&a, &b], &token).await, first);

    let killed_at = Instant::now();
    if first == 0 {
        a.kill()
    } else {
        b.kill()
    }
    let survivor = if first == 0 { &b } else { &a };
    let deadline = Instant::now() + Duration::from_secs(15);
    while !overview(survivor, &token)
        .await
        .is_some_and(|o| o["leader"] == true)
    {
        assert!(
            Instant::now() < deadline,
            "the survivor did not take the lead within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let handover = killed_at.elapsed();
    eprintln!("leader handover after SIGKILL: {handover:?}");
    assert!(handover < Duration::from_secs(10), "took {handover:?}");
    // The killed one comes back as a follower.
    if first == 0 {
        a.spawn().await
    } else {
        b.spawn().await
    }
    let now = the_leader(&[&a, &b], &token).await;
    assert_eq!(now, 1 - first, "the new leader keeps the lead");
}
