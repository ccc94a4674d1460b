//! One-off commands and scheduled jobs, run for real in containers from the live busybox
//! image: output in order on the run's topic with its exit code, secrets masked, the app's
//! volume mounted, timeouts killed, overlapping runs refused under `forbid`, a failing job
//! notified, a firing missed while shard was down caught up (or skipped when too old).

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::deploy::docker_ids;
use crate::gitserver::GitServer;
use crate::helpers::*;
use crate::instances::{events_until, subscribe};
use crate::volumes::{WITHIN, writer_files};

const SH: &str = "/bin/busybox";

/// A deployed app (busybox httpd) with a volume at `/data` and a secret variable; the
/// project id and the secret's value.
async fn live_app(app: &TestApp, admin: &Session, name: &str) -> (String, String) {
    let git = GitServer::start().await;
    let repo = git.repo(name, &writer_files("1"));
    let project = app.project_for(admin, name, &repo.url).await;
    let added = app
        .post(
            &format!("/api/v1/projects/{project}/volumes"),
            Some(&admin.token),
            json!({"name": "data", "mount_path": "/data"}),
        )
        .await;
    assert_eq!(added.status(), StatusCode::CREATED);
    let secret = format!("hush-{}", uuid::Uuid::new_v4().simple());
    let env = json!({"vars": [{"key": "API_KEY", "value": secret, "secret": true}, {"key": "GREETING", "value": "hello"}]});
    let put = app
        .send(
            Method::PUT,
            &format!("/api/v1/projects/{project}/env"),
            Some(&admin.token),
            Some(env),
        )
        .await;
    assert_eq!(put.status(), StatusCode::OK);
    app.deploy_live(admin, &project, json!({}), WITHIN).await;
    // The git server must outlive the deploy only.
    drop(git);
    (project, secret)
}

fn sh(script: &str) -> Value {
    json!([SH, "sh", "-c", script])
}

/// Starts a one-off run; its id.
async fn start_run(app: &TestApp, session: &Session, project: &str, body: Value) -> String {
    let response = app
        .post(
            &format!("/api/v1/projects/{project}/runs"),
            Some(&session.token),
            body,
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let started: Value = response.json().await.unwrap();
    assert_eq!(started["status"], "running");
    let id = started["id"].as_str().unwrap().to_string();
    assert_eq!(started["topic"], format!("run:{id}"));
    id
}

/// The run's output lines and its status event, read from its topic from the start.
async fn output(app: &TestApp, session: &Session, run: &str) -> (Vec<String>, Value) {
    let mut ws = subscribe(app, &session.token, &format!("run:{run}")).await;
    let events = events_until(&mut ws, |e| e["type"] == "status").await;
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "gapless");
    let status = events.last().unwrap().clone();
    let lines = events[..events.len() - 1]
        .iter()
        .map(|e| {
            assert_eq!(e["type"], "log", "{e}");
            e["line"].as_str().unwrap().to_string()
        })
        .collect();
    (lines, status)
}

async fn run_record(app: &TestApp, session: &Session, project: &str, run: &str) -> Value {
    app.get(
        &format!("/api/v1/projects/{project}/runs/{run}"),
        Some(&session.token),
    )
    .await
    .json()
    .await
    .unwrap()
}

#[tokio::test]
async fn one_off_commands_stream_in_order_exit_with_their_code_and_are_bounded() {
    let app = spawn_app_with(|c| c.deploy.grace_secs = 0).await;
    let admin = app.setup_admin().await;

    // Nothing live yet: refused with a reason.
    let empty = app.create_project(&admin, "empty").await;
    let empty = empty["id"].as_str().unwrap();
    let refused = app
        .post(
            &format!("/api/v1/projects/{empty}/runs"),
            Some(&admin.token),
            json!({"command": ["true"]}),
        )
        .await;
    let body = assert_error(refused, StatusCode::CONFLICT, "conflict").await;
    assert!(body.to_string().contains("no live deployment"), "{body}");

    let (project, secret) = live_app(&app, &admin, "runner").await;
    let runs = format!("/api/v1/projects/{project}/runs");
    // Bad input: an empty command, a zero timeout, an unknown field, broken JSON, no auth.
    for body in [
        json!({"command": []}),
        json!({"command": [""]}),
        json!({"command": ["true"], "timeout_secs": 0}),
        json!({"command": ["true"], "timeout_secs": 10_000_000}),
        json!({"command": "true"}),
        json!({"command": ["true"], "shell": true}),
    ] {
        let response = app.post(&runs, Some(&admin.token), body.clone()).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}"
        );
    }
    let broken = app
        .client
        .post(app.url(&runs))
        .bearer_auth(&admin.token)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), StatusCode::BAD_REQUEST);
    let anonymous = app.post(&runs, None, json!({"command": ["true"]})).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // 300 lines on stdout, one on stderr, the secret (masked), the app's environment, exit 3.
    let script = "i=1; while [ $i -le 300 ]; do echo line $i; i=$((i+1)); done; \
                  echo oops >&2; echo key=$API_KEY; echo greeting=$GREETING; exit 3";
    let run = start_run(&app, &admin, &project, json!({"command": sh(script)})).await;
    let (lines, status) = output(&app, &admin, &run).await;
    // In order within a stream (Docker copies stdout and stderr apart, so their interleaving
    // is not kept).
    let numbered: Vec<String> = (1..=300).map(|i| format!("line {i}")).collect();
    let stdout: Vec<String> = lines
        .iter()
        .filter(|l| l.starts_with("line "))
        .cloned()
        .collect();
    assert_eq!(stdout, numbered, "stdout in order");
    assert!(lines.contains(&"oops".to_string()), "{lines:?}");
    assert!(lines.contains(&"key=********".to_string()), "{lines:?}");
    assert!(lines.contains(&"greeting=hello".to_string()), "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains(&secret)), "secret leaked");
    assert_eq!(status["status"], "failed", "{status}");
    assert_eq!(status["exit_code"], 3, "{status}");
    let record = run_record(&app, &admin, &project, &run).await;
    assert_eq!(record["status"], "failed");
    assert_eq!(record["exit_code"], 3);
    assert_eq!(record["trigger"], "command");
    assert!(record["duration_ms"].as_i64().unwrap() >= 0, "{record}");

    // The app's volume is mounted: one run writes, the next reads; exit 0 succeeds.
    let write = start_run(
        &app,
        &admin,
        &project,
        json!({"command": sh("echo from-a-run > /data/note")}),
    )
    .await;
    assert_eq!(output(&app, &admin, &write).await.1["status"], "succeeded");
    let read = start_run(
        &app,
        &admin,
        &project,
        json!({"command": [SH, "cat", "/data/note"]}),
    )
    .await;
    let (lines, status) = output(&app, &admin, &read).await;
    assert_eq!(lines, vec!["from-a-run".to_string()]);
    assert_eq!(status["exit_code"], 0);

    // A command that prints without newlines is cut into bounded lines; one that hangs is
    // killed at its timeout.
    let started = Instant::now();
    let hang = start_run(
        &app,
        &admin,
        &project,
        json!({"command": [SH, "sleep", "60"], "timeout_secs": 1}),
    )
    .await;
    let (_, status) = output(&app, &admin, &hang).await;
    assert_eq!(status["status"], "failed");
    assert!(
        status["error"].as_str().unwrap().contains("timed out"),
        "{status}"
    );
    assert!(started.elapsed() < Duration::from_secs(30), "killed late");

    // A program that does not exist fails with a reason, never hangs.
    let missing = start_run(
        &app,
        &admin,
        &project,
        json!({"command": ["/no/such/program"]}),
    )
    .await;
    let (_, status) = output(&app, &admin, &missing).await;
    assert_eq!(status["status"], "failed", "{status}");

    // Listed newest first; no task container is left behind.
    let listed: Vec<Value> = app
        .get(&runs, Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = listed.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids[..4],
        [
            missing.as_str(),
            hang.as_str(),
            read.as_str(),
            write.as_str()
        ]
    );
    assert_eq!(
        docker_ids(&["ps", "-aq", "--filter", "label=shard.run"])
            .lines()
            .filter(|id| !id.is_empty())
            .count(),
        0,
        "task containers left"
    );
    let unknown = app
        .get(
            &format!("/api/v1/projects/{project}/runs/{}", uuid::Uuid::new_v4()),
            Some(&admin.token),
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    // A member of nothing cannot run in someone else's project, nor read its runs' output.
    let stranger = app.member(&admin, "stranger").await;
    let denied = app
        .post(&runs, Some(&stranger.token), json!({"command": ["true"]}))
        .await;
    assert_eq!(denied.status(), StatusCode::NOT_FOUND);
    let url = app.base.replace("http://", "ws://") + "/api/v1/ws";
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    for message in [
        json!({"op": "auth", "token": stranger.token}),
        json!({"op": "subscribe", "topic": format!("run:{run}"), "since": 0}),
    ] {
        ws.send(Message::Text(message.to_string().into()))
            .await
            .unwrap();
    }
    loop {
        let Some(Ok(Message::Text(text))) = ws.next().await else {
            panic!("socket closed")
        };
        let v: Value = serde_json::from_str(&text).unwrap();
        if v["type"] == "error" {
            assert_eq!(v["code"], "not_found", "{v}");
            break;
        }
        assert_ne!(v["type"], "subscribed", "{v}");
    }
}

async fn job_runs(app: &TestApp, admin: &Session, project: &str, name: &str) -> Vec<Value> {
    app.get(
        &format!("/api/v1/projects/{project}/jobs/{name}/runs"),
        Some(&admin.token),
    )
    .await
    .json()
    .await
    .unwrap()
}

/// Waits until `done` holds for the job's runs (newest first).
async fn wait_runs(
    app: &TestApp,
    admin: &Session,
    project: &str,
    name: &str,
    within: Duration,
    mut done: impl FnMut(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let runs = job_runs(app, admin, project, name).await;
        if done(&runs) {
            return runs;
        }
        assert!(Instant::now() < deadline, "runs of {name}: {runs:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn scheduled_jobs_fire_write_to_volumes_refuse_overlap_time_out_and_notify() {
    let app = spawn_app_with(|c| {
        c.deploy.grace_secs = 0;
        c.jobs.schedule_tick_ms = 200;
    })
    .await;
    let admin = app.setup_admin().await;
    let (project, _) = live_app(&app, &admin, "cron").await;
    let jobs = format!("/api/v1/projects/{project}/jobs");

    // Bad declarations.
    for (body, field) in [
        (
            json!({"name": "x", "schedule": "every minute", "command": ["true"]}),
            "schedule",
        ),
        (
            json!({"name": "Bad Name", "schedule": "* * * * *", "command": ["true"]}),
            "name",
        ),
        (
            json!({"name": "x", "schedule": "* * * * *", "command": []}),
            "command",
        ),
        (
            json!({"name": "x", "schedule": "* * * * *", "command": ["true"], "timeout_secs": 0}),
            "timeout_secs",
        ),
    ] {
        let response = app.post(&jobs, Some(&admin.token), body).await;
        assert_invalid(response, field).await;
    }
    let bad_concurrency = app
        .post(
            &jobs,
            Some(&admin.token),
            json!({"name": "x", "schedule": "* * * * *", "command": ["true"], "concurrency": "sometimes"}),
        )
        .await;
    assert_eq!(bad_concurrency.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Every second (the test's shortened clock: cron with a seconds field), a line to the volume.
    let created = app
        .post(
            &jobs,
            Some(&admin.token),
            json!({"name": "tick", "schedule": "* * * * * *", "command": sh("date +%s >> /data/ticks"), "timeout_secs": 30}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let job: Value = created.json().await.unwrap();
    assert_eq!(job["concurrency"], "forbid");
    let runs = wait_runs(
        &app,
        &admin,
        &project,
        "tick",
        Duration::from_secs(60),
        |runs| runs.iter().filter(|r| r["status"] == "succeeded").count() >= 2,
    )
    .await;
    assert!(runs.iter().all(|r| r["trigger"] == "schedule"), "{runs:?}");
    // Replacing it by name (200) with a yearly schedule stops it firing.
    let replaced = app
        .post(
            &jobs,
            Some(&admin.token),
            json!({"name": "tick", "schedule": "0 0 1 1 *", "command": sh("date +%s >> /data/ticks")}),
        )
        .await;
    assert_eq!(replaced.status(), StatusCode::OK);
    let read = start_run(
        &app,
        &admin,
        &project,
        json!({"command": [SH, "cat", "/data/ticks"]}),
    )
    .await;
    let (lines, _) = output(&app, &admin, &read).await;
    assert!(lines.len() >= 2, "{lines:?}");

    // Overlap under forbid: a slow job every second never has two runs at once, and "Run now"
    // is refused while it runs.
    let slow = app
        .post(
            &jobs,
            Some(&admin.token),
            json!({"name": "slow", "schedule": "* * * * * *", "command": [SH, "sleep", "3"]}),
        )
        .await;
    assert_eq!(slow.status(), StatusCode::CREATED);
    wait_runs(
        &app,
        &admin,
        &project,
        "slow",
        Duration::from_secs(30),
        |runs| runs.first().is_some_and(|r| r["status"] == "running"),
    )
    .await;
    let now = app
        .post(&format!("{jobs}/slow/run"), Some(&admin.token), json!({}))
        .await;
    assert_error(now, StatusCode::CONFLICT, "conflict").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let runs = job_runs(&app, &admin, &project, "slow").await;
        let running = runs.iter().filter(|r| r["status"] == "running").count();
        assert!(running <= 1, "overlapping runs: {runs:?}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let deleted = app
        .delete(&format!("{jobs}/slow"), Some(&admin.token))
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = app
        .delete(&format!("{jobs}/slow"), Some(&admin.token))
        .await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);

    // A job past its timeout is killed, reported, and raises job.failed.
    let channel: Value = app
        .post(
            "/api/v1/notifications/channels",
            Some(&admin.token),
            json!({"kind": "webhook", "target": "http://127.0.0.1:9/hook", "events": ["job.failed"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let channel = channel["id"].as_str().expect("a channel").to_string();
    let hang = app
        .post(
            &jobs,
            Some(&admin.token),
            json!({"name": "hang", "schedule": "0 0 1 1 *", "command": [SH, "sleep", "60"], "timeout_secs": 1}),
        )
        .await;
    assert_eq!(hang.status(), StatusCode::CREATED);
    let now = app
        .post(&format!("{jobs}/hang/run"), Some(&admin.token), json!({}))
        .await;
    assert_eq!(now.status(), StatusCode::ACCEPTED);
    let runs = wait_runs(
        &app,
        &admin,
        &project,
        "hang",
        Duration::from_secs(30),
        |runs| runs.first().is_some_and(|r| r["status"] != "running"),
    )
    .await;
    assert_eq!(runs[0]["status"], "failed");
    assert_eq!(runs[0]["trigger"], "manual");
    assert!(
        runs[0]["error"].as_str().unwrap().contains("timed out"),
        "{runs:?}"
    );
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
        if deliveries.iter().any(|d| d["event"] == "job.failed") {
            break;
        }
        assert!(Instant::now() < deadline, "no job.failed: {deliveries:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Listed by name with their last run.
    let listed: Vec<Value> = app
        .get(&jobs, Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = listed.iter().map(|j| j["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["hang", "tick"]);
    assert_eq!(listed[0]["last_run"]["status"], "failed");
}

#[tokio::test]
async fn a_firing_missed_while_down_is_caught_up_once_or_skipped_when_too_old() {
    let app = spawn_app_with(|c| {
        c.deploy.grace_secs = 0;
        c.jobs.schedule_tick_ms = 200;
        c.jobs.catch_up_secs = 600;
    })
    .await;
    let admin = app.setup_admin().await;
    let (project, _) = live_app(&app, &admin, "later").await;
    let jobs = format!("/api/v1/projects/{project}/jobs");
    for name in ["recent", "ancient"] {
        let created = app
            .post(
                &jobs,
                Some(&admin.token),
                json!({"name": name, "schedule": "0 0 1 1 *", "command": ["/bin/busybox", "true"]}),
            )
            .await;
        assert_eq!(created.status(), StatusCode::CREATED);
    }
    // As if shard had been down: one firing missed 2 minutes ago, one 2 hours ago.
    for (name, ago) in [("recent", 120), ("ancient", 7200)] {
        execute_sql(
            &app,
            "UPDATE scheduled_jobs SET next_run_at = $1 WHERE name = $2",
            vec![
                (chrono::Utc::now() - chrono::Duration::seconds(ago)).into(),
                name.into(),
            ],
        )
        .await;
    }
    let runs = wait_runs(
        &app,
        &admin,
        &project,
        "recent",
        Duration::from_secs(30),
        |runs| runs.first().is_some_and(|r| r["status"] == "succeeded"),
    )
    .await;
    assert_eq!(runs.len(), 1, "caught up once: {runs:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(job_runs(&app, &admin, &project, "recent").await.len(), 1);
    assert!(job_runs(&app, &admin, &project, "ancient").await.is_empty());
    let listed: Vec<Value> = app
        .get(&jobs, Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    for job in &listed {
        let next: chrono::DateTime<chrono::Utc> =
            serde_json::from_value(job["next_run_at"].clone()).unwrap();
        assert!(next > chrono::Utc::now(), "moved to its next firing: {job}");
    }
}

#[tokio::test]
async fn shard_run_streams_the_output_in_order_and_exits_with_the_commands_code() {
    use crate::client::{Client, api_token};
    let app = spawn_app_with(|c| c.deploy.grace_secs = 0).await;
    let admin = app.setup_admin().await;
    let (_, secret) = live_app(&app, &admin, "cli-run").await;
    let client = Client::new();
    client
        .login(&app, &api_token(&app, &admin, json!({"name": "cli"})).await)
        .await;

    let script = "i=1; while [ $i -le 50 ]; do echo out $i; i=$((i+1)); done; echo problem >&2; \
                  echo $API_KEY; exit 7";
    let (code, out, err) = client
        .run(&["run", "cli-run", "--", SH, "sh", "-c", script])
        .await;
    assert_eq!(code, 7, "the command's exit code; stderr: {err}");
    let mut want: Vec<String> = (1..=50).map(|i| format!("out {i}")).collect();
    want.push("********".into());
    assert_eq!(out.lines().collect::<Vec<_>>(), want, "stdout, in order");
    assert!(err.contains("problem"), "stderr goes to stderr: {err}");
    assert!(!out.contains(&secret) && !err.contains(&secret));

    let (code, out, err) = client
        .run(&["run", "cli-run", "--", SH, "echo", "fine"])
        .await;
    assert_eq!((code, out.as_str()), (0, "fine\n"), "{err}");
    // A timeout ends with the killed command's code, and says why.
    let (code, _, err) = client
        .run(&["run", "cli-run", "--timeout", "1", "--", SH, "sleep", "30"])
        .await;
    assert_eq!(code, 137, "{err}");
    assert!(err.contains("timed out"), "{err}");
    // Jobs from the CLI: listed, one run now with its output and its exit code.
    let (code, out, _) = client.run(&["jobs", "cli-run"]).await;
    assert_eq!((code, out.as_str()), (0, "no scheduled jobs\n"));
    let project = app
        .get("/api/v1/projects", Some(&admin.token))
        .await
        .json::<Vec<Value>>()
        .await
        .unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let created = app
        .post(
            &format!("/api/v1/projects/{project}/jobs"),
            Some(&admin.token),
            json!({"name": "report", "schedule": "0 0 1 1 *", "command": sh("echo reported; exit 4")}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let (code, out, _) = client.run(&["jobs", "cli-run"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("report") && out.contains("0 0 1 1 *"), "{out}");
    let (code, out, err) = client.run(&["jobs", "cli-run", "--run", "report"]).await;
    assert_eq!((code, out.as_str()), (4, "reported\n"), "{err}");
    let (code, out, _) = client.run(&["previews", "cli-run"]).await;
    assert_eq!((code, out.as_str()), (0, "no previews\n"));

    // Nothing to run, or no such project: usage (2) and refusal (3) codes.
    let (code, _, _) = client.run(&["run", "cli-run"]).await;
    assert_eq!(code, 2);
    let (code, _, err) = client.run(&["run", "nope", "--", "true"]).await;
    assert_eq!(code, 3, "{err}");
}
