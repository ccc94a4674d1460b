//! The live WebSocket: replay and live delivery without gap or duplicate, authorization,
//! slow clients, runtime logs.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::gitserver::GitServer;
use crate::helpers::*;

type RawWs =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A client socket that reads messages one event at a time: a `batch` message (several
/// events of one topic) is opened into its events, each checked to carry the batch's topic.
struct Ws {
    socket: RawWs,
    pending: std::collections::VecDeque<Value>,
    /// Batch messages seen so far.
    batches: usize,
}

async fn open(url: String) -> Ws {
    let (socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket connects");
    Ws {
        socket,
        pending: Default::default(),
        batches: 0,
    }
}

const APP_DOCKERFILE: &str = "FROM scratch\nCOPY busybox /bin/busybox\nCOPY www /www\nARG STAMP\n\
RUN [\"/bin/busybox\", \"sh\", \"-c\", \"printf '\\\\033[32mgreen\\\\033[0m\\\\n'; /bin/busybox seq 1 ${LINES:-5}\"]\n\
EXPOSE 8080\nCMD [\"/bin/busybox\", \"sh\", \"-c\", \"while true; do echo tick; /bin/busybox sleep 0.2; done & exec /bin/busybox httpd -f -p 8080 -h /www\"]\n";

fn files(lines: usize) -> Vec<(&'static str, Vec<u8>, bool)> {
    vec![
        ("busybox", std::fs::read("/bin/busybox").unwrap(), true),
        (
            "Dockerfile",
            APP_DOCKERFILE
                .replace("${LINES:-5}", &lines.to_string())
                // A first step of its own: no layer shared with other tests' apps.
                .replacen(
                    "FROM scratch\n",
                    &format!(
                        "FROM scratch\nLABEL test.build={}\n",
                        uuid::Uuid::new_v4().simple()
                    ),
                    1,
                )
                .into_bytes(),
            false,
        ),
        // Unique content, so the RUN step after it never comes from the layer cache.
        (
            "www/index.html",
            format!("hello {}\n", uuid::Uuid::new_v4()).into_bytes(),
            false,
        ),
    ]
}

async fn connect(app: &TestApp, token: &str) -> Ws {
    let url = app.base.replace("http://", "ws://") + "/api/v1/ws";
    let mut ws = open(url).await;
    send(&mut ws, json!({"op": "auth", "token": token})).await;
    assert_eq!(next(&mut ws).await["type"], "authenticated");
    ws
}

async fn send(ws: &mut Ws, value: Value) {
    ws.socket
        .send(Message::Text(value.to_string().into()))
        .await
        .unwrap();
}

/// The next JSON message, or the next event of a batch (pings are answered by the library).
async fn next(ws: &mut Ws) -> Value {
    loop {
        if let Some(value) = ws.pending.pop_front() {
            return value;
        }
        let message = tokio::time::timeout(Duration::from_secs(60), ws.socket.next())
            .await
            .expect("a message within 60 s")
            .expect("socket open")
            .unwrap();
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).unwrap();
            if value["type"] == "batch" {
                let events = value["events"].as_array().expect("a batch has events");
                assert!(events.len() > 1, "a batch of one: {value}");
                for event in events {
                    assert_eq!(event["topic"], value["topic"], "{value}");
                }
                ws.batches += 1;
                ws.pending.extend(events.iter().cloned());
                continue;
            }
            return value;
        }
    }
}

/// Messages of `topic` (log and status) until the status is final.
async fn until_final(ws: &mut Ws, topic: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let message = next(ws).await;
        if message["topic"] != topic
            || !["log", "status"].contains(&message["type"].as_str().unwrap_or(""))
        {
            continue;
        }
        let done = message["type"] == "status"
            && ["live", "failed", "cancelled"].contains(&message["status"].as_str().unwrap());
        out.push(message);
        if done {
            return out;
        }
    }
}

fn assert_contiguous(messages: &[Value], from: i64) {
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(
            m["seq"].as_i64().unwrap(),
            from + i as i64,
            "gap or duplicate at {i}: {m}"
        );
    }
}

#[tokio::test]
async fn live_then_replay_then_since_are_identical_and_gapless() {
    let git = GitServer::start().await;
    let repo = git.repo("hub", &files(200));
    let app = spawn_app_with(|c| c.deploy.grace_secs = 0).await;
    let admin = app.setup_admin().await;
    let project = app.project_for(&admin, "hub", &repo.url).await;

    let mut live = connect(&app, &admin.token).await;
    let id = app.deploy(&admin, &project, json!({})).await;
    let topic = format!("deployment:{id}");
    send(
        &mut live,
        json!({"op": "subscribe", "topic": topic, "since": 0}),
    )
    .await;
    assert_eq!(next(&mut live).await["type"], "subscribed");

    // A second client joins mid-way with `since` (whatever it had already seen).
    let first_three = vec![
        next(&mut live).await,
        next(&mut live).await,
        next(&mut live).await,
    ];
    let mut mid = connect(&app, &admin.token).await;
    send(
        &mut mid,
        json!({"op": "subscribe", "topic": topic, "since": 3}),
    )
    .await;
    let mut rest = until_final(&mut live, &topic).await;
    let mut all = first_three;
    all.append(&mut rest);
    assert_contiguous(&all, 1);
    assert_eq!(all.last().unwrap()["status"], "live");
    let statuses: Vec<&str> = all
        .iter()
        .filter(|m| m["type"] == "status")
        .map(|m| m["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "queued",
            "fetching",
            "building",
            "starting",
            "health_checking",
            "live"
        ]
    );
    let lines: Vec<&str> = all.iter().filter_map(|m| m["line"].as_str()).collect();
    assert!(lines.iter().any(|l| l.starts_with("==> Building")));
    assert!(lines.contains(&"200"), "every build output line arrives");
    assert!(
        lines.contains(&"\u{1b}[32mgreen\u{1b}[0m"),
        "ANSI colour codes are kept: {lines:?}"
    );
    for m in all.iter().filter(|m| m["type"] == "log") {
        assert!(m["ts"].is_string() && m["stream"].is_string(), "{m}");
    }

    assert_eq!(next(&mut mid).await["type"], "subscribed");
    let mid_messages = until_final(&mut mid, &topic).await;
    assert_eq!(
        mid_messages,
        all[3..],
        "mid-build subscriber: no gap, no duplicate, same content"
    );

    // After the end: an identical replay, and the REST log agrees.
    let mut late = connect(&app, &admin.token).await;
    send(
        &mut late,
        json!({"op": "subscribe", "topic": topic, "since": 0}),
    )
    .await;
    assert_eq!(next(&mut late).await["type"], "subscribed");
    let replay = until_final(&mut late, &topic).await;
    let strip = |v: &[Value]| {
        v.iter()
            .map(|m| {
                (
                    m["seq"].clone(),
                    m["type"].clone(),
                    m["line"].clone(),
                    m["status"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&replay), strip(&all));
    let rest_log: Vec<Value> = app
        .get(
            &format!("/api/v1/deployments/{id}/logs?since=0"),
            Some(&admin.token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rest_log.len(), all.len());
    let tail: Vec<Value> = app
        .get(
            &format!("/api/v1/deployments/{id}/logs?since=10"),
            Some(&admin.token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tail[0]["seq"], 11);
    app.delete_project(&admin, &project).await;
}

#[tokio::test]
async fn topics_are_authorized_like_rest() {
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    let bob = app.member(&admin, "bob").await;
    let alice = app.member(&admin, "alice").await;
    let bobs = app.create_project(&bob, "bobs").await;
    let bobs_id = bobs["id"].as_str().unwrap();
    let deployment = app.deploy(&bob, bobs_id, json!({})).await;

    // Unauthenticated: nothing but an error.
    let url = app.base.replace("http://", "ws://") + "/api/v1/ws";
    let mut anon = open(url).await;
    send(
        &mut anon,
        json!({"op": "subscribe", "topic": format!("deployment:{deployment}"), "since": 0}),
    )
    .await;
    assert_eq!(next(&mut anon).await["code"], "unauthorized");
    send(&mut anon, json!({"op": "auth", "token": "garbage"})).await;
    assert_eq!(next(&mut anon).await["code"], "unauthorized");

    let mut ws = connect(&app, &alice.token).await;
    for topic in [
        format!("deployment:{deployment}"),
        format!("project:{bobs_id}:logs"),
    ] {
        send(
            &mut ws,
            json!({"op": "subscribe", "topic": topic, "since": 0}),
        )
        .await;
        let error = next(&mut ws).await;
        assert_eq!(
            (
                error["type"].as_str(),
                error["code"].as_str(),
                error["topic"].as_str()
            ),
            (Some("error"), Some("not_found"), Some(topic.as_str())),
            "{error}"
        );
    }
    send(&mut ws, json!({"op": "subscribe", "topic": "bogus:1"})).await;
    assert_eq!(next(&mut ws).await["code"], "bad_topic");
    send(&mut ws, json!({"op": "dance"})).await;
    assert_eq!(next(&mut ws).await["code"], "bad_request");

    // The owner may; the admin too.
    let mut owner = connect(&app, &bob.token).await;
    send(
        &mut owner,
        json!({"op": "subscribe", "topic": format!("deployment:{deployment}"), "since": 0}),
    )
    .await;
    assert_eq!(next(&mut owner).await["type"], "subscribed");
    let first = next(&mut owner).await;
    assert_eq!(
        (first["seq"].as_i64(), first["status"].as_str()),
        (Some(1), Some("queued"))
    );
    // Too many subscriptions are refused.
    let mut admin_ws = connect(&app, &admin.token).await;
    for n in 0..shard::http::ws::MAX_SUBSCRIPTIONS {
        send(&mut admin_ws, json!({"op": "subscribe", "topic": format!("deployment:{}", uuid::Uuid::now_v7()), "since": n})).await;
        assert_eq!(next(&mut admin_ws).await["code"], "not_found");
    }
    send(
        &mut admin_ws,
        json!({"op": "subscribe", "topic": format!("deployment:{deployment}")}),
    )
    .await;
    assert_eq!(next(&mut admin_ws).await["type"], "subscribed");
}

#[tokio::test]
async fn a_stalled_client_does_not_slow_the_build_and_resumes_without_loss() {
    let git = GitServer::start().await;
    let repo = git.repo("loud", &files(10_000));
    let app = spawn_app_with(|c| c.deploy.grace_secs = 0).await;
    let admin = app.setup_admin().await;
    let project = app.project_for(&admin, "loud", &repo.url).await;
    // Without a listener.
    let started = Instant::now();
    let quiet = app.deploy(&admin, &project, json!({})).await;
    assert_eq!(
        app.wait_for(&admin, &quiet, FINAL, Duration::from_secs(120))
            .await["status"],
        "live"
    );
    let alone = started.elapsed();

    // With a client that subscribes and then stops reading. A new commit busts the cache.
    let again = format!("hello again {}\n", uuid::Uuid::new_v4());
    repo.commit(&[("www/index.html", again.into_bytes(), false)], "again");
    let mut stalled = connect(&app, &admin.token).await;
    let started = Instant::now();
    let loud = app.deploy(&admin, &project, json!({})).await;
    let topic = format!("deployment:{loud}");
    send(
        &mut stalled,
        json!({"op": "subscribe", "topic": topic, "since": 0}),
    )
    .await;
    let result = app
        .wait_for(&admin, &loud, FINAL, Duration::from_secs(120))
        .await;
    let with_stalled = started.elapsed();
    assert_eq!(result["status"], "live", "{result}");
    assert!(
        with_stalled < alone * 3 / 2 + Duration::from_secs(3),
        "a stalled client slowed the build: {with_stalled:?} against {alone:?} alone"
    );

    // Now it reads: every line arrives once, in order (a `lagged` notice may come first).
    let mut seqs = Vec::new();
    loop {
        let m = next(&mut stalled).await;
        if m["topic"] != topic.as_str()
            || !["log", "status"].contains(&m["type"].as_str().unwrap_or(""))
        {
            continue;
        }
        seqs.push(m["seq"].as_i64().unwrap());
        if m["type"] == "status" && m["status"] == "live" {
            break;
        }
    }
    let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
    assert_eq!(seqs, expected);
    assert!(
        seqs.len() > 10_000,
        "all 10,000 build lines were delivered ({})",
        seqs.len()
    );
    // A backlog goes out in batch messages, not one frame per line.
    assert!(
        stalled.batches > 0 && stalled.batches * 20 < seqs.len(),
        "{} batches for {} events",
        stalled.batches,
        seqs.len()
    );
    app.delete_project(&admin, &project).await;
}

#[tokio::test]
async fn runtime_logs_arrive_within_a_second() {
    let git = GitServer::start().await;
    let repo = git.repo("ticker", &files(1));
    let app = spawn_app_with(|c| c.deploy.grace_secs = 0).await;
    let admin = app.setup_admin().await;
    let project = app.project_for(&admin, "ticker", &repo.url).await;
    let me: Value = app
        .get("/api/v1/auth/me", Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    let user_topic = format!("user:{}", me["id"].as_str().unwrap());
    let project_topic = format!("project:{project}");
    let mut events = connect(&app, &admin.token).await;
    for topic in [&project_topic, &user_topic, &"system".to_string()] {
        send(
            &mut events,
            json!({"op": "subscribe", "topic": topic, "since": 0}),
        )
        .await;
        let ack = next(&mut events).await;
        assert_eq!(ack["type"], "subscribed", "{ack}");
    }
    let id = app.deploy(&admin, &project, json!({})).await;
    let mut ws = connect(&app, &admin.token).await;
    send(
        &mut ws,
        json!({"op": "subscribe", "topic": format!("deployment:{id}"), "since": 0}),
    )
    .await;
    let messages = until_final(&mut ws, &format!("deployment:{id}")).await;
    assert_eq!(messages.last().unwrap()["status"], "live");

    let topic = format!("project:{project}:logs");
    send(
        &mut ws,
        json!({"op": "subscribe", "topic": topic, "since": 0}),
    )
    .await;
    let mut last_seq = 0;
    let mut fresh = 0;
    let mut previous = Instant::now();
    while fresh < 5 {
        let m = next(&mut ws).await;
        if m["topic"] != topic.as_str() || m["type"] != "log" {
            continue;
        }
        assert_eq!(
            m["persisted"], false,
            "runtime lines say they are not persisted"
        );
        assert_eq!(m["line"], "tick");
        let seq = m["seq"].as_i64().unwrap();
        assert_eq!(seq, last_seq + 1, "runtime seq is gapless");
        last_seq = seq;
        if previous.elapsed() < Duration::from_secs(1) {
            fresh += 1;
        }
        assert!(
            previous.elapsed() < Duration::from_secs(1),
            "a runtime line took over a second"
        );
        previous = Instant::now();
    }
    assert_eq!(app.state.runtime_logs.active(), 1);

    // The project topic saw every status, the owner got a notification, admins see `system`.
    let (mut statuses, mut notified, mut system) = (Vec::new(), None, None);
    let mut project_seq = 0;
    while statuses.last().map(String::as_str) != Some("live")
        || notified.is_none()
        || system.is_none()
    {
        let m = next(&mut events).await;
        match m["topic"].as_str().unwrap_or("") {
            t if t == project_topic => {
                let seq = m["seq"].as_i64().unwrap();
                assert_eq!(seq, project_seq + 1, "project topic is gapless");
                project_seq = seq;
                // Besides deployment statuses the topic carries `runtime` events (the Docker
                // follower saw the container start), in any order relative to them.
                if m["type"] == "status" {
                    assert_eq!(m["deployment"], id.as_str());
                    statuses.push(m["status"].as_str().unwrap().to_string());
                } else {
                    assert_eq!(m["type"], "runtime", "{m}");
                }
            }
            t if t == user_topic => notified = Some(m),
            "system" => system = Some(m),
            _ => {}
        }
    }
    assert_eq!(
        statuses,
        [
            "queued",
            "fetching",
            "building",
            "starting",
            "health_checking",
            "live"
        ]
    );
    let notified = notified.unwrap();
    assert_eq!(
        (notified["type"].as_str(), notified["level"].as_str()),
        (Some("notification"), Some("success")),
        "{notified}"
    );
    let system = system.unwrap();
    assert_eq!(system["docker_reachable"], true, "{system}");
    assert!(system["disk_free_bytes"].as_u64().unwrap() > 0);
    // Replay of the project topic after the fact is the same sequence.
    let mut late = connect(&app, &admin.token).await;
    send(
        &mut late,
        json!({"op": "subscribe", "topic": project_topic, "since": 2}),
    )
    .await;
    assert_eq!(next(&mut late).await["type"], "subscribed");
    let third = next(&mut late).await;
    assert_eq!(
        (third["seq"].as_i64(), third["status"].as_str()),
        (Some(3), Some("building"))
    );
    // Members cannot watch `system` or another user's notifications.
    let bob = app.member(&admin, "bob").await;
    let mut bobs = connect(&app, &bob.token).await;
    send(&mut bobs, json!({"op": "subscribe", "topic": "system"})).await;
    assert_eq!(next(&mut bobs).await["code"], "forbidden");
    send(&mut bobs, json!({"op": "subscribe", "topic": user_topic})).await;
    assert_eq!(next(&mut bobs).await["code"], "not_found");
    send(
        &mut bobs,
        json!({"op": "subscribe", "topic": project_topic}),
    )
    .await;
    assert_eq!(next(&mut bobs).await["code"], "not_found");
    send(&mut ws, json!({"op": "unsubscribe", "topic": topic})).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.state.runtime_logs.active() != 0 {
        assert!(
            Instant::now() < deadline,
            "the follower stops with its last subscriber"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Coming back with the old cursor: a new follower numbers from 1 again, so the cursor is
    // reset with a notice instead of silently holding back every new line.
    send(
        &mut ws,
        json!({"op": "subscribe", "topic": topic, "since": last_seq + 1000}),
    )
    .await;
    // Lines sent before the unsubscribe may still be in flight: start at the new ack.
    while next(&mut ws).await["type"] != "subscribed" {}
    let (mut noticed, mut resumed) = (false, 0);
    while resumed < 3 {
        let m = next(&mut ws).await;
        if m["topic"] != topic.as_str() {
            continue;
        }
        match m["type"].as_str() {
            Some("notice") => noticed = true,
            Some("log") => {
                assert!(noticed, "the reset is announced before the lines: {m}");
                resumed += 1;
                assert_eq!(
                    m["seq"].as_i64().unwrap(),
                    resumed,
                    "numbering restarts at 1"
                );
            }
            _ => {}
        }
    }
    app.delete_project(&admin, &project).await;
}

/// A log batch retried after its first try committed (the answer lost with a broken
/// connection) is written once and the retry succeeds: the writer never stalls on its own
/// rows, so the deploy it belongs to goes on.
#[tokio::test]
async fn a_retried_log_batch_is_written_once() {
    use shard::db::deployment_logs::{self, Entry};
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    let project = app.create_project(&admin, "retried").await;
    let db = &app.state.db;
    let deployment = shard::db::deployments::create(
        db,
        shard::db::deployments::NewDeployment::manual(
            uuid::Uuid::parse_str(project["id"].as_str().unwrap()).unwrap(),
        ),
    )
    .await
    .unwrap();
    let line = |text: &'static str| Entry {
        ts: chrono::Utc::now(),
        stream: shard::model::LogStream::Stdout,
        line: text.into(),
    };
    let batch = [line("one"), line("two")];
    deployment_logs::insert(db, deployment.id, 1, &batch)
        .await
        .unwrap();
    deployment_logs::insert(db, deployment.id, 1, &batch)
        .await
        .expect("the retry of a committed batch succeeds");
    deployment_logs::insert(db, deployment.id, 3, &[line("three")])
        .await
        .unwrap();
    let logs = app
        .get(
            &format!("/api/v1/deployments/{}/logs", deployment.id),
            Some(&admin.token),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    let lines: Vec<(i64, &str)> = logs
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["seq"].as_i64().unwrap(), l["line"].as_str().unwrap()))
        .collect();
    assert_eq!(lines, [(1, "one"), (2, "two"), (3, "three")]);
}
