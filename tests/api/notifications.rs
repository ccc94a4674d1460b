//! Notification channels against local receivers: a generic webhook (its HMAC-SHA256
//! signature checked), Slack's and Discord's incoming-webhook shapes, email through a small
//! SMTP sink (the message read back), all for a real deploy; retries with each attempt
//! recorded; the "send test" action; validation, masking and ownership.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::deploy::app_files;
use crate::gitserver::GitServer;
use crate::helpers::*;

/// One request a receiver got: path, headers, body.
pub(crate) type Request = (String, Vec<(String, String)>, Vec<u8>);

#[derive(Default)]
pub(crate) struct Received {
    pub(crate) requests: Vec<Request>,
    /// Answer 500 to this many requests before answering 200.
    fail_first: usize,
}

pub(crate) type Shared = Arc<Mutex<Received>>;

async fn receive(state: web::Data<Shared>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let mut state = state.lock().unwrap();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    state
        .requests
        .push((req.path().to_string(), headers, body.to_vec()));
    if state.fail_first > 0 {
        state.fail_first -= 1;
        return HttpResponse::InternalServerError().body("try again");
    }
    HttpResponse::Ok().body("ok")
}

/// A local HTTP receiver taking every POST; returns its base URL and what it got.
pub(crate) fn start_receiver() -> (String, Shared) {
    let shared: Shared = Arc::default();
    let data = web::Data::new(shared.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .default_service(web::post().to(receive))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    (format!("http://127.0.0.1:{port}"), shared)
}

/// A minimal SMTP server that accepts every message (RFC 5321's happy path, no TLS).
async fn start_smtp_sink() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let messages: Arc<Mutex<Vec<String>>> = Arc::default();
    let kept = messages.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let kept = kept.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 sink ESMTP\r\n").await.ok();
                let mut envelope = String::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                        b"250-sink\r\n250 8BITMIME\r\n"
                    } else if upper.starts_with("MAIL") || upper.starts_with("RCPT") {
                        envelope.push_str(&line);
                        envelope.push('\n');
                        b"250 ok\r\n"
                    } else if upper == "DATA" {
                        write.write_all(b"354 go on\r\n").await.ok();
                        let mut data = envelope.clone();
                        while let Ok(Some(line)) = lines.next_line().await {
                            if line == "." {
                                break;
                            }
                            data.push_str(&line);
                            data.push('\n');
                        }
                        kept.lock().unwrap().push(data);
                        b"250 queued\r\n"
                    } else if upper == "QUIT" {
                        write.write_all(b"221 bye\r\n").await.ok();
                        return;
                    } else {
                        b"250 ok\r\n"
                    };
                    write.write_all(reply).await.ok();
                }
            });
        }
    });
    (port, messages)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

async fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_deploy_reaches_every_channel_signed_and_in_each_services_shape() {
    let (smtp_port, mails) = start_smtp_sink().await;
    let app = spawn_app_with(move |c| {
        c.deploy.grace_secs = 0;
        c.smtp.host = Some("127.0.0.1".into());
        c.smtp.port = smtp_port;
        c.smtp.tls = shard::config::SmtpTls::None;
        c.smtp.from = "shard <shard@example.test>".into();
    })
    .await;
    let admin = app.setup_admin().await;
    let (base, received) = start_receiver();
    let git = GitServer::start().await;
    let repo = git.repo("noisy", &app_files("1", ""));
    let project = app.project_for(&admin, "noisy", &repo.url).await;
    let other = app.create_project(&admin, "quiet").await["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Bad input is a 422 naming the field; someone else's project a 404.
    let post = |body: Value| app.post("/api/v1/notifications/channels", Some(&admin.token), body);
    for (body, field) in [
        (json!({"kind": "pager", "target": base}), "kind"),
        (json!({"kind": "webhook", "target": "ftp://x/y"}), "target"),
        (json!({"kind": "webhook", "target": "not a url"}), "target"),
        (
            json!({"kind": "slack", "target": base, "secret": "0123456789abcdef"}),
            "secret",
        ),
        (
            json!({"kind": "webhook", "target": base, "secret": "short"}),
            "secret",
        ),
        (
            json!({"kind": "webhook", "target": base, "events": ["deploy.exploded"]}),
            "events",
        ),
        (
            json!({"kind": "email", "target": "not-an-address"}),
            "target",
        ),
    ] {
        assert_invalid(post(body).await, field).await;
    }
    let member = app.member(&admin, "member").await;
    let foreign = app
        .post(
            "/api/v1/notifications/channels",
            Some(&member.token),
            json!({"kind": "webhook", "target": format!("{base}/m"), "project_id": project}),
        )
        .await;
    assert_error(foreign, StatusCode::NOT_FOUND, "not_found").await;
    // A member's webhook may not point into the host's own networks.
    let inside = app
        .post(
            "/api/v1/notifications/channels",
            Some(&member.token),
            json!({"kind": "webhook", "target": format!("{base}/m")}),
        )
        .await;
    assert_invalid(inside, "target").await;

    let secret = "hook-secret-0123456789";
    let slack_url = format!("{base}/services/T000/B000/slacksecrettoken");
    let mut ids = Vec::new();
    for body in [
        json!({"kind": "webhook", "target": format!("{base}/hook"), "secret": secret}),
        json!({"kind": "slack", "target": slack_url}),
        json!({"kind": "discord", "target": format!("{base}/api/webhooks/1/discordtoken")}),
        json!({"kind": "email", "target": "ops@example.test"}),
        // Scoped elsewhere, or to failures only: must stay silent on this success.
        json!({"kind": "webhook", "target": format!("{base}/other"), "project_id": other}),
        json!({"kind": "webhook", "target": format!("{base}/failures"), "events": ["deploy.failed"]}),
    ] {
        let created = post(body.clone()).await;
        assert_eq!(created.status(), StatusCode::CREATED, "{body}");
        ids.push(
            created.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let listed = app
        .get("/api/v1/notifications/channels", Some(&admin.token))
        .await
        .text()
        .await
        .unwrap();
    assert!(!listed.contains("slacksecrettoken"), "{listed}");
    assert!(!listed.contains(secret), "{listed}");
    assert!(listed.contains("\"has_secret\":true"), "{listed}");
    let mine = app
        .get("/api/v1/notifications/channels", Some(&member.token))
        .await;
    assert_eq!(mine.json::<Vec<Value>>().await.unwrap().len(), 0);
    let not_theirs = app
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/notifications/channels/{}", ids[0]),
            Some(&member.token),
            None,
        )
        .await;
    assert_error(not_theirs, StatusCode::NOT_FOUND, "not_found").await;

    let id = app.deploy(&admin, &project, json!({})).await;
    let live = app
        .wait_for(&admin, &id, FINAL, Duration::from_secs(120))
        .await;
    assert_eq!(live["status"], "live", "{live}");

    let got = |path: &'static str| {
        let received = received.clone();
        move || {
            received
                .lock()
                .unwrap()
                .requests
                .iter()
                .find(|(p, _, _)| p.as_str() == path)
                .cloned()
        }
    };
    // Generic webhook: JSON, signed over the exact body, with the time inside and outside.
    let (_, headers, body) = wait_for("the webhook", got("/hook")).await;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        header(&headers, "x-shard-signature-256"),
        Some(expected.as_str())
    );
    assert_eq!(header(&headers, "x-shard-event"), Some("deploy.succeeded"));
    let payload: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(payload["event"], "deploy.succeeded");
    assert_eq!(payload["title"], "noisy is live");
    assert_eq!(payload["project_id"], project.as_str());
    assert_eq!(payload["deployment_id"], id.as_str());
    assert_eq!(
        header(&headers, "x-shard-timestamp").unwrap(),
        payload["timestamp"].to_string()
    );
    // Slack: {"text"} in mrkdwn with a link.
    let (_, _, body) = wait_for("slack", got("/services/T000/B000/slacksecrettoken")).await;
    let slack: Value = serde_json::from_slice(&body).unwrap();
    let text = slack["text"].as_str().unwrap();
    assert!(text.starts_with("*noisy is live*"), "{text}");
    assert!(
        text.contains(&format!("/deployments/{id}|Open in shard>")),
        "{text}"
    );
    // Discord: content plus one embed.
    let (_, _, body) = wait_for("discord", got("/api/webhooks/1/discordtoken")).await;
    let discord: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(discord["content"], "noisy is live");
    assert_eq!(discord["embeds"][0]["title"], "noisy is live");
    assert!(discord["embeds"][0]["url"].as_str().unwrap().ends_with(&id));
    assert!(discord["embeds"][0]["color"].is_number());
    // Email, read back from the sink.
    let mail = wait_for("the email", || mails.lock().unwrap().first().cloned()).await;
    assert!(mail.contains("RCPT TO:<ops@example.test>"), "{mail}");
    assert!(mail.contains("Subject: noisy is live"), "{mail}");
    assert!(mail.contains("From: shard <shard@example.test>"), "{mail}");
    // The body is quoted-printable: soft line breaks end in '='.
    let unfolded = mail.replace("=\n", "");
    assert!(unfolded.contains(&format!("/deployments/{id}")), "{mail}");
    // The other project's channel and the failures-only one heard nothing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let paths: Vec<String> = received
        .lock()
        .unwrap()
        .requests
        .iter()
        .map(|r| r.0.clone())
        .collect();
    assert!(
        !paths.iter().any(|p| p == "/other" || p == "/failures"),
        "{paths:?}"
    );

    // A receiver that fails twice: the test delivery is retried and each attempt recorded.
    received.lock().unwrap().fail_first = 2;
    let before = received.lock().unwrap().requests.len();
    let test = app
        .post(
            &format!("/api/v1/notifications/channels/{}/test", ids[0]),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_eq!(test.status(), StatusCode::ACCEPTED);
    let delivery = test.json::<Value>().await.unwrap()["delivery_id"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(40);
    let done = loop {
        let list: Vec<Value> = app
            .get(
                &format!("/api/v1/notifications/channels/{}/deliveries", ids[0]),
                Some(&admin.token),
            )
            .await
            .json()
            .await
            .unwrap();
        let row = list
            .into_iter()
            .find(|d| d["id"] == delivery.as_str())
            .unwrap();
        if row["status"] == "delivered" || Instant::now() > deadline {
            break row;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(done["status"], "delivered", "{done}");
    assert_eq!(done["attempts"], 3, "{done}");
    assert_eq!(done["event"], "test");
    assert_eq!(done["last_error"], Value::Null);
    assert_eq!(received.lock().unwrap().requests.len() - before, 3);

    // Deleted: gone from the list, and its deliveries with it.
    let deleted = app
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/notifications/channels/{}", ids[0]),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = app
        .get(
            &format!("/api/v1/notifications/channels/{}/deliveries", ids[0]),
            Some(&admin.token),
        )
        .await;
    assert_error(gone, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn email_channels_need_a_mail_server() {
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    let refused = app
        .post(
            "/api/v1/notifications/channels",
            Some(&admin.token),
            json!({"kind": "email", "target": "ops@example.test"}),
        )
        .await;
    assert_error(refused, StatusCode::CONFLICT, "conflict").await;
}
