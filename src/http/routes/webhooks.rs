//! GitHub push webhooks. Each project has its own secret (sealed at rest, project id as
//! associated data); `GET /projects/{id}/webhook` gives the URL and secret to paste into the
//! repository's webhook settings. `POST /webhooks/github?project=<id>` checks
//! `X-Hub-Signature-256` (HMAC-SHA256 of the raw body, compared in constant time) before it
//! reads anything else: a wrong or missing signature is a 401 and nothing is stored. A verified
//! delivery is recorded once by its `X-GitHub-Delivery` id (a replay does nothing), `ping` is
//! answered, and a push to the project's branch queues a deploy (trigger `push`); pushes to
//! other branches, tags and branch deletions are recorded and deploy nothing.

use actix_web::{HttpRequest, HttpResponse, web};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::db::{self, webhooks};
use crate::deploy::Pushed;
use crate::http::access::{Configure, ProjectFor, Read};
use crate::http::error::{AppError, AppResult};
use crate::model::WebhookOutcome;
use crate::secrets;
use crate::state::AppState;

/// GitHub caps payloads at 25 MB; a push of a normal size is a few KiB, a huge one a few MiB.
const MAX_PAYLOAD: usize = 5 << 20;
/// Deliveries listed on a project.
const LIST_LIMIT: u64 = 50;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/projects/{id}/webhook", web::get().to(get_webhook))
        .route(
            "/projects/{id}/webhook/rotate",
            web::post().to(rotate_webhook),
        )
        .route(
            "/projects/{id}/webhook/deliveries",
            web::get().to(list_deliveries),
        )
        .service(
            web::resource("/webhooks/github")
                .app_data(web::PayloadConfig::new(MAX_PAYLOAD))
                .route(web::post().to(github)),
        );
}

#[derive(Serialize, ToSchema)]
pub struct WebhookView {
    /// Payload URL for the repository's webhook (content type `application/json`, event `push`).
    pub url: String,
    /// The secret GitHub signs deliveries with.
    pub secret: String,
    pub content_type: &'static str,
    pub events: Vec<&'static str>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryView {
    pub delivery_id: String,
    pub event: String,
    /// `deployed`, `ignored`, `pong` (or `received` while being handled).
    pub outcome: String,
    pub detail: Option<String>,
    pub deployment_id: Option<Uuid>,
    pub received_at: chrono::DateTime<chrono::Utc>,
}

impl From<webhooks::Delivery> for DeliveryView {
    fn from(d: webhooks::Delivery) -> Self {
        Self {
            delivery_id: d.delivery_id,
            event: d.event,
            outcome: d.outcome.to_string(),
            detail: d.detail,
            deployment_id: d.deployment_id,
            received_at: d.created_at,
        }
    }
}

/// Where GitHub delivers a project's pushes.
pub(crate) fn hook_url(state: &AppState, project: Uuid) -> String {
    format!(
        "{}/api/v1/webhooks/github?project={project}",
        state.public_base()
    )
}

/// The project's webhook secret in clear, creating it on first use.
pub(crate) async fn secret_of(
    state: &AppState,
    project: &db::projects::Project,
) -> AppResult<String> {
    let aad = project.id.as_bytes();
    let sealed = match &project.webhook_secret_sealed {
        Some(sealed) => sealed.clone(),
        None => {
            let fresh = secrets::random_token("");
            let sealed = state.sealer.seal(fresh.as_bytes(), aad);
            webhooks::ensure_secret(&state.db, project.id, sealed).await?
        }
    };
    let open = state
        .sealer
        .open(&sealed, aad)
        .map_err(|e| anyhow::anyhow!("cannot open the webhook secret: {e:?}"))?;
    String::from_utf8(open).map_err(|_| anyhow::anyhow!("webhook secret is not UTF-8").into())
}

#[utoipa::path(get, path = "/api/v1/projects/{id}/webhook", tag = "webhooks", params(("id" = uuid::Uuid, Path, description = "the project id")),
    responses((status = 200, body = WebhookView), (status = 403), (status = 404)), security(("bearer" = ["role:admin", "scope:admin"])))]
pub async fn get_webhook(
    state: web::Data<AppState>,
    ProjectFor(_actor, project, _need): ProjectFor<Configure>,
) -> AppResult<web::Json<WebhookView>> {
    let secret = secret_of(&state, &project).await?;
    Ok(web::Json(WebhookView {
        url: hook_url(&state, project.id),
        secret,
        content_type: "application/json",
        events: vec!["push"],
    }))
}

/// Replaces the webhook secret (someone who knew it left the team). When shard created the
/// repository's webhook, GitHub gets the new secret first; if it cannot, nothing changes (409),
/// so pushes never start failing their signature check.
#[utoipa::path(post, path = "/api/v1/projects/{id}/webhook/rotate", tag = "webhooks", params(("id" = uuid::Uuid, Path, description = "the project id")),
    responses((status = 200, body = WebhookView), (status = 403), (status = 404), (status = 409, description = "GitHub's webhook could not be updated; the secret is unchanged")), security(("bearer" = ["role:admin", "scope:admin"])))]
pub async fn rotate_webhook(
    state: web::Data<AppState>,
    req: HttpRequest,
    ProjectFor(_actor, project, _need): ProjectFor<Configure>,
) -> AppResult<web::Json<WebhookView>> {
    let fresh = secrets::random_token("");
    let url = hook_url(&state, project.id);
    if let (Some(hook), Some(repo)) = (
        project.github_hook_id,
        project
            .github_repo
            .as_deref()
            .and_then(crate::github::RepoName::parse),
    ) {
        let account = match project.git_account_id {
            Some(id) => db::git_accounts::find(&state.db, id).await?,
            None => None,
        };
        let Some(account) = account else {
            return Err(AppError::Conflict(format!(
                "the GitHub account that created {repo}'s webhook is disconnected: update the \
                 secret there by hand, or unlink the repository first"
            )));
        };
        let token = crate::github::open_token(&state.sealer, &account)?;
        state
            .github
            .update_hook_secret(&token, &repo, hook, &url, &fresh)
            .await
            .map_err(|e| {
                AppError::Conflict(format!(
                    "GitHub's webhook was not updated ({e}); the secret is unchanged"
                ))
            })?;
    }
    let sealed = state.sealer.seal(fresh.as_bytes(), project.id.as_bytes());
    webhooks::set_secret(&state.db, project.id, sealed).await?;
    crate::http::audit::action(&req, "webhook.rotate", "project", project.id);
    Ok(web::Json(WebhookView {
        url,
        secret: fresh,
        content_type: "application/json",
        events: vec!["push"],
    }))
}

#[utoipa::path(get, path = "/api/v1/projects/{id}/webhook/deliveries", operation_id = "list_webhook_deliveries", tag = "webhooks", params(("id" = uuid::Uuid, Path, description = "the project id")),
    responses((status = 200, body = [DeliveryView]), (status = 404)), security(("bearer" = ["role:viewer", "scope:read"])))]
pub async fn list_deliveries(
    state: web::Data<AppState>,
    ProjectFor(_actor, project, _need): ProjectFor<Read>,
) -> AppResult<web::Json<Vec<DeliveryView>>> {
    let list = webhooks::list(&state.db, project.id, LIST_LIMIT).await?;
    Ok(web::Json(list.into_iter().map(Into::into).collect()))
}

#[derive(Deserialize, IntoParams)]
pub struct Target {
    /// The project the webhook belongs to (part of the URL `GET …/webhook` gives).
    pub project: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryResult {
    pub outcome: String,
    pub detail: String,
    pub deployment_id: Option<Uuid>,
}

/// The fields of GitHub's `push` event payload shard reads.
#[derive(Deserialize)]
struct PushEvent {
    #[serde(rename = "ref")]
    git_ref: String,
    after: String,
    #[serde(default)]
    deleted: bool,
    pusher: Option<Person>,
    head_commit: Option<HeadCommit>,
}

#[derive(Deserialize)]
struct Person {
    name: Option<String>,
}

#[derive(Deserialize)]
struct HeadCommit {
    message: Option<String>,
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// True when `signature` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`.
pub fn signature_matches(secret: &[u8], body: &[u8], signature: Option<&str>) -> bool {
    let Some(expected) = signature
        .and_then(|s| s.strip_prefix("sha256="))
        .and_then(|h| hex::decode(h.trim()).ok())
    else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

pub(super) fn is_commit_sha(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[utoipa::path(post, path = "/api/v1/webhooks/github", tag = "webhooks", params(Target),
    request_body(content = String, content_type = "application/json", description = "GitHub's event payload, exactly as sent (it is signed)"),
    responses((status = 202, body = DeliveryResult, description = "a deploy was queued"),
        (status = 200, body = DeliveryResult, description = "ping, ignored or an already seen delivery"),
        (status = 400), (status = 401, description = "missing or wrong signature"), (status = 413)))]
pub async fn github(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<Target>,
    body: web::Bytes,
) -> AppResult<HttpResponse> {
    let refused =
        || AppError::Unauthorized("the X-Hub-Signature-256 signature does not match".into());
    // The signature first: nothing about the request is trusted (or stored) before it holds.
    // An unknown project looks exactly like a wrong signature.
    let project_id = query
        .project
        .as_deref()
        .and_then(|p| p.parse::<Uuid>().ok())
        .ok_or_else(refused)?;
    let project = db::projects::find(&state.db, project_id)
        .await?
        .filter(|p| p.webhook_secret_sealed.is_some())
        .ok_or_else(refused)?;
    let secret = secret_of(&state, &project).await?;
    if !signature_matches(
        secret.as_bytes(),
        &body,
        header(&req, "x-hub-signature-256"),
    ) {
        return Err(refused());
    }

    let delivery = header(&req, "x-github-delivery")
        .filter(|d| !d.is_empty() && d.len() <= 64 && d.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| AppError::BadRequest("X-GitHub-Delivery is missing or malformed".into()))?;
    let event = header(&req, "x-github-event")
        .filter(|e| !e.is_empty() && e.len() <= 64 && e.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| AppError::BadRequest("X-GitHub-Event is missing or malformed".into()))?;
    let push = if event == "push" {
        Some(serde_json::from_slice::<PushEvent>(&body).map_err(|e| {
            AppError::BadRequest(format!("the push payload is not what GitHub sends: {e}"))
        })?)
    } else {
        None
    };
    let Some(row) = webhooks::receive(&state.db, delivery, project.id, event).await? else {
        return Ok(HttpResponse::Ok().json(DeliveryResult {
            outcome: WebhookOutcome::Duplicate.to_string(),
            detail: format!("delivery {delivery} was already received; nothing done"),
            deployment_id: None,
        }));
    };

    let (outcome, detail, deployment) = match (event, push) {
        ("ping", _) => (
            WebhookOutcome::Pong,
            "webhook reached shard".to_string(),
            None,
        ),
        (_, Some(push)) => handle_push(&state, &project, push).await?,
        ("pull_request", None) => {
            super::pull_requests::pull_request(&state, &project, &body).await?
        }
        ("issue_comment", None) => {
            super::pull_requests::issue_comment(&state, &project, &body).await?
        }
        (other, None) => (
            WebhookOutcome::Ignored,
            format!("'{other}' events deploy nothing"),
            None,
        ),
    };
    webhooks::settle(&state.db, row.id, outcome, &detail, deployment).await?;
    crate::http::audit::note(&req, |f| {
        f.name = Some("github".into());
        f.action = Some(format!("webhook.{outcome}"));
        f.team = project.team_id;
        f.project = Some(project.id);
        f.target = Some(match deployment {
            Some(d) => ("deployment", d),
            None => ("project", project.id),
        });
    });
    let result = DeliveryResult {
        outcome: outcome.to_string(),
        detail,
        deployment_id: deployment,
    };
    Ok(if deployment.is_some() {
        HttpResponse::Accepted().json(result)
    } else {
        HttpResponse::Ok().json(result)
    })
}

async fn handle_push(
    state: &AppState,
    project: &db::projects::Project,
    push: PushEvent,
) -> AppResult<(WebhookOutcome, String, Option<Uuid>)> {
    let ignored = |why: String| Ok((WebhookOutcome::Ignored, why, None));
    let Some(branch) = push.git_ref.strip_prefix("refs/heads/") else {
        return ignored(format!("{} is not a branch", push.git_ref));
    };
    if branch != project.branch {
        return ignored(format!(
            "push to {branch}; the project deploys {}",
            project.branch
        ));
    }
    if push.deleted || push.after.bytes().all(|b| b == b'0') {
        return ignored(format!("branch {branch} was deleted"));
    }
    if !is_commit_sha(&push.after) {
        return Err(AppError::BadRequest("'after' is not a commit SHA".into()));
    }
    let message = push
        .head_commit
        .and_then(|c| c.message)
        .map(|m| m.lines().next().unwrap_or("").chars().take(500).collect());
    let pusher = push
        .pusher
        .and_then(|p| p.name)
        .map(|n| n.chars().take(100).collect());
    let deployment = state
        .deployer
        .request_push(
            project,
            Pushed {
                commit_sha: push.after.to_ascii_lowercase(),
                message,
                pusher,
            },
        )
        .await?;
    let short = &push.after[..12];
    Ok((
        WebhookOutcome::Deployed,
        format!(
            "push of {short} to {branch} queued deployment {}",
            deployment.id
        ),
        Some(deployment.id),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked_exactly() {
        let body = br#"{"zen":"Keep it logically awesome."}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(body);
        let good = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert!(signature_matches(b"s3cret", body, Some(&good)));
        assert!(!signature_matches(b"other", body, Some(&good)));
        assert!(!signature_matches(b"s3cret", b"{}", Some(&good)));
        assert!(!signature_matches(b"s3cret", body, None));
        assert!(!signature_matches(b"s3cret", body, Some(&good[7..])));
        assert!(!signature_matches(b"s3cret", body, Some("sha256=zz")));
        assert!(!signature_matches(
            b"s3cret",
            body,
            Some(&good[..good.len() - 2])
        ));
    }
}
