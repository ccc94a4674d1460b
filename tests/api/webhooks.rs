//! GitHub push webhooks with a manual setup: the project's URL and secret, signed deliveries
//! (HMAC-SHA256 in `X-Hub-Signature-256`), ping, a push that deploys the pushed commit end to
//! end, bad and missing signatures (401, nothing stored), a replayed delivery id, pushes that
//! must not deploy, and the deliveries list.

use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::deploy::app_files;
use crate::gitserver::GitServer;
use crate::helpers::*;

pub(crate) fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Delivers `body` as GitHub would: to the hook's `url`, signed with its `secret`.
pub(crate) async fn deliver_signed(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    event: &str,
    delivery: &str,
    body: &Value,
) -> reqwest::Response {
    let bytes = serde_json::to_vec(body).unwrap();
    client
        .post(url)
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", signature(secret, &bytes))
        .body(bytes)
        .send()
        .await
        .unwrap()
}

/// GitHub's `push` payload, with the fields its documentation lists.
pub(crate) fn push_payload(
    git_ref: &str,
    before: &str,
    after: &str,
    deleted: bool,
    message: &str,
) -> Value {
    json!({
        "ref": git_ref,
        "before": before,
        "after": after,
        "created": false,
        "deleted": deleted,
        "forced": false,
        "base_ref": null,
        "compare": format!("https://github.com/acme/app/compare/{}...{}", &before[..12], &after[..12]),
        "commits": if deleted { json!([]) } else { json!([{"id": after, "message": message, "distinct": true}]) },
        "head_commit": if deleted { Value::Null } else { json!({
            "id": after,
            "tree_id": "0000000000000000000000000000000000000000",
            "message": message,
            "timestamp": "2026-11-23T12:00:00Z",
            "author": {"name": "Mona Octocat", "email": "mona@example.com", "username": "octocat"},
        }) },
        "pusher": {"name": "octocat", "email": "mona@example.com"},
        "repository": {"id": 1296269, "name": "app", "full_name": "acme/app", "private": true,
            "clone_url": "https://github.com/acme/app.git", "default_branch": "main"},
        "sender": {"login": "octocat", "id": 1},
    })
}

struct Hook<'a> {
    app: &'a TestApp,
    url: String,
    secret: String,
}

impl Hook<'_> {
    async fn send(
        &self,
        event: &str,
        delivery: &str,
        body: &Value,
        signature: Option<String>,
    ) -> reqwest::Response {
        let body = serde_json::to_vec(body).unwrap();
        let mut request = self
            .app
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-github-event", event)
            .header("x-github-delivery", delivery)
            .header("user-agent", "GitHub-Hookshot/test");
        if let Some(signature) = signature {
            request = request.header("x-hub-signature-256", signature);
        }
        request.body(body).send().await.unwrap()
    }

    async fn signed(&self, event: &str, delivery: &str, body: &Value) -> reqwest::Response {
        let sig = signature(&self.secret, &serde_json::to_vec(body).unwrap());
        self.send(event, delivery, body, Some(sig)).await
    }
}

async fn deployments(app: &TestApp, session: &Session, project: &str) -> Vec<Value> {
    app.get(
        &format!("/api/v1/projects/{project}/deployments"),
        Some(&session.token),
    )
    .await
    .json()
    .await
    .unwrap()
}

#[tokio::test]
async fn signed_pushes_deploy_the_pushed_commit_and_nothing_else_does() {
    let app = spawn_app_with(|c| c.deploy.grace_secs = 0).await;
    let admin = app.setup_admin().await;
    let git = GitServer::start().await;
    let repo = git.repo("hooked", &app_files("1", ""));
    let project = app.project_for(&admin, "hooked", &repo.url).await;

    // The webhook's URL and secret, the same on every read, and only for the project's owner.
    let view: Value = app
        .get(
            &format!("/api/v1/projects/{project}/webhook"),
            Some(&admin.token),
        )
        .await
        .json()
        .await
        .unwrap();
    // The URL is the public URL's (here the configured listen address, port 0 in tests).
    let path = format!("/api/v1/webhooks/github?project={project}");
    assert!(view["url"].as_str().unwrap().ends_with(&path), "{view}");
    let url = app.url(&path);
    let secret = view["secret"].as_str().unwrap().to_string();
    assert!(secret.len() >= 32, "{secret}");
    assert_eq!(view["events"], json!(["push"]));
    let again: Value = app
        .get(
            &format!("/api/v1/projects/{project}/webhook"),
            Some(&admin.token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["secret"], secret.as_str());
    let stranger = app.member(&admin, "stranger").await;
    let hidden = app
        .get(
            &format!("/api/v1/projects/{project}/webhook"),
            Some(&stranger.token),
        )
        .await;
    assert_error(hidden, StatusCode::NOT_FOUND, "not_found").await;
    // Sealed at rest: the secret is nowhere in the database file in clear.
    if std::env::var("SHARD_TEST_DATABASE_URL").is_err() {
        let db = std::fs::read(app.dir.path().join("shard.db")).unwrap();
        assert!(
            !db.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "secret stored in clear"
        );
    }
    let hook = Hook {
        app: &app,
        url,
        secret,
    };

    // Ping.
    let ping = hook
        .signed(
            "ping",
            "d-ping",
            &json!({"zen": "Design for failure.", "hook_id": 1}),
        )
        .await;
    assert_eq!(ping.status(), StatusCode::OK);
    assert_eq!(ping.json::<Value>().await.unwrap()["outcome"], "pong");

    // A new commit pushed; a wrong, a missing and a foreign signature are refused and leave nothing.
    let before = repo.commit(&app_files("1", ""), "noop").to_string();
    let after = repo.commit(&app_files("2", ""), "version 2\n\nwith a body");
    // The branch moves on before the delivery arrives: the deploy must still be of `after`.
    let newer = repo.commit(&app_files("3", ""), "version 3");
    let push = push_payload(
        "refs/heads/main",
        &before,
        &after,
        false,
        "version 2\n\nwith a body",
    );
    let forged = hook
        .send(
            "push",
            "d-forged",
            &push,
            Some(signature(
                "not-the-secret",
                &serde_json::to_vec(&push).unwrap(),
            )),
        )
        .await;
    assert_error(forged, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let unsigned = hook.send("push", "d-unsigned", &push, None).await;
    assert_error(unsigned, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let tampered = {
        let sig = signature(&hook.secret, &serde_json::to_vec(&push).unwrap());
        let mut changed = push.clone();
        changed["after"] = json!("1".repeat(40));
        hook.send("push", "d-tampered", &changed, Some(sig)).await
    };
    assert_error(tampered, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let nowhere = app
        .client
        .post(app.url(&format!(
            "/api/v1/webhooks/github?project={}",
            uuid::Uuid::new_v4()
        )))
        .header("x-github-event", "ping")
        .header("x-github-delivery", "d-nowhere")
        .header("x-hub-signature-256", signature(&hook.secret, b"{}"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(nowhere.status(), StatusCode::UNAUTHORIZED);
    assert!(
        deployments(&app, &admin, &project).await.is_empty(),
        "nothing deployed by refused deliveries"
    );
    let listed: Vec<Value> = app
        .get(
            &format!("/api/v1/projects/{project}/webhook/deliveries"),
            Some(&admin.token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "only the ping is stored: {listed:?}");

    // The signed push deploys exactly that commit, naming the pusher and the message.
    let accepted = hook.signed("push", "d-push-1", &push).await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let result: Value = accepted.json().await.unwrap();
    assert_eq!(result["outcome"], "deployed");
    let id = result["deployment_id"].as_str().unwrap().to_string();
    let live = app
        .wait_for(&admin, &id, FINAL, Duration::from_secs(120))
        .await;
    assert_eq!(live["status"], "live", "{live}");
    assert_eq!(live["trigger"], "push");
    assert_eq!(live["pusher"], "octocat");
    assert_eq!(live["commit_sha"], after.as_str());
    assert_eq!(live["commit_message"], "version 2");
    let upstream = live["upstream"].as_str().unwrap();
    let page = crate::deploy::get_page(upstream, "/").await.unwrap().1;
    assert_eq!(page, "version 2\n", "the pushed commit, not the branch tip");
    assert!(app.logs_text(&admin, &id).await.contains("pushed to main"));

    // The same delivery again (GitHub's redelivery, or a replay): no second deploy.
    let replay = hook.signed("push", "d-push-1", &push).await;
    assert_eq!(replay.status(), StatusCode::OK);
    assert_eq!(
        replay.json::<Value>().await.unwrap()["outcome"],
        "duplicate"
    );

    // Other branches, tags, deletions and other events deploy nothing but are recorded.
    let zero = "0".repeat(40);
    for (delivery, event, body, why) in [
        (
            "d-other",
            "push",
            push_payload("refs/heads/feature", &before, &after, false, "wip"),
            "feature",
        ),
        (
            "d-tag",
            "push",
            push_payload("refs/tags/v1.0", &zero, &after, false, "tag"),
            "not a branch",
        ),
        (
            "d-delete",
            "push",
            push_payload("refs/heads/main", &after, &zero, true, ""),
            "deleted",
        ),
        (
            "d-issue",
            "issues",
            json!({"action": "opened"}),
            "deploy nothing",
        ),
    ] {
        let response = hook.signed(event, delivery, &body).await;
        assert_eq!(response.status(), StatusCode::OK, "{delivery}");
        let result: Value = response.json().await.unwrap();
        assert_eq!(result["outcome"], "ignored", "{delivery}: {result}");
        assert!(
            result["detail"].as_str().unwrap().contains(why),
            "{delivery}: {result}"
        );
    }
    assert_eq!(deployments(&app, &admin, &project).await.len(), 1);

    // A signed delivery without its id or with a body that is not a push payload: 400.
    let no_id = app
        .client
        .post(&hook.url)
        .header("x-github-event", "ping")
        .header("x-hub-signature-256", signature(&hook.secret, b"{}"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_error(no_id, StatusCode::BAD_REQUEST, "bad_request").await;
    let not_push = hook.signed("push", "d-bad", &json!({"ref": 5})).await;
    assert_error(not_push, StatusCode::BAD_REQUEST, "bad_request").await;

    // The project lists what arrived and what was done with it, newest first.
    let listed: Vec<Value> = app
        .get(
            &format!("/api/v1/projects/{project}/webhook/deliveries"),
            Some(&admin.token),
        )
        .await
        .json()
        .await
        .unwrap();
    let outcomes: Vec<(&str, &str)> = listed
        .iter()
        .map(|d| {
            (
                d["delivery_id"].as_str().unwrap(),
                d["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("d-issue", "ignored"),
            ("d-delete", "ignored"),
            ("d-tag", "ignored"),
            ("d-other", "ignored"),
            ("d-push-1", "deployed"),
            ("d-ping", "pong")
        ]
    );
    assert_eq!(listed[4]["deployment_id"], id.as_str());

    // The push of the newer commit then deploys that one.
    let second = hook
        .signed(
            "push",
            "d-push-2",
            &push_payload("refs/heads/main", &after, &newer, false, "version 3"),
        )
        .await;
    assert_eq!(second.status(), StatusCode::ACCEPTED);
    let id2 = second.json::<Value>().await.unwrap()["deployment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let live2 = app
        .wait_for(&admin, &id2, FINAL, Duration::from_secs(120))
        .await;
    assert_eq!(live2["status"], "live", "{live2}");
    assert_eq!(live2["commit_sha"], newer.as_str());
    let upstream = live2["upstream"].as_str().unwrap();
    let page = crate::deploy::get_page(upstream, "/").await.unwrap().1;
    assert_eq!(page, "version 3\n");
}
