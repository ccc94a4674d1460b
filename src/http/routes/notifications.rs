//! `/notifications/channels`: the caller's notification channels (webhook, Slack, Discord,
//! email), for all of their projects or one, with the events they listen to; a "send test"
//! action and the deliveries of each channel with their attempts. Destinations and secrets
//! are sealed and never returned: a list shows a masked hint.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::access;
use crate::auth::Actor;
use crate::db::notification_channels::{self as channels, Channel, MAX_CHANNELS};
use crate::http::auth::Authenticated;
use crate::http::body::JsonBody;
use crate::http::error::{AppError, AppResult};
use crate::model::ChannelKind;
use crate::notifications::{EVENTS, Notice, hint};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/notifications/channels", web::get().to(list_channels))
        .route("/notifications/channels", web::post().to(create_channel))
        .route(
            "/notifications/channels/{id}",
            web::delete().to(delete_channel),
        )
        .route(
            "/notifications/channels/{id}/test",
            web::post().to(test_channel),
        )
        .route(
            "/notifications/channels/{id}/deliveries",
            web::get().to(list_deliveries),
        );
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChannel {
    /// `webhook`, `slack`, `discord` or `email`.
    pub kind: String,
    /// The URL to POST to, or for `email` the address.
    pub target: String,
    /// For `webhook`: the key of the `X-Shard-Signature-256` HMAC (16+ characters).
    pub secret: Option<String>,
    /// Only this project's events (default: all of the caller's projects).
    pub project_id: Option<Uuid>,
    /// Event names to send (default: all).
    pub events: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct ChannelView {
    pub id: Uuid,
    pub kind: String,
    /// The destination, masked.
    pub target: String,
    pub has_secret: bool,
    pub project_id: Option<Uuid>,
    /// Empty: every event.
    pub events: Vec<String>,
    pub created_at: DateTime<Utc>,
}

impl From<Channel> for ChannelView {
    fn from(c: Channel) -> Self {
        Self {
            id: c.id,
            kind: c.kind.to_string(),
            target: c.target_hint,
            has_secret: c.secret_sealed.is_some(),
            project_id: c.project_id,
            events: c
                .events
                .split(',')
                .filter(|e| !e.is_empty())
                .map(String::from)
                .collect(),
            created_at: c.created_at,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/notifications/channels", tag = "notifications",
    responses((status = 200, body = [ChannelView])), security(("bearer" = [])))]
pub async fn list_channels(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
) -> AppResult<web::Json<Vec<ChannelView>>> {
    let list = channels::for_user(&state.db, actor.user_id).await?;
    Ok(web::Json(list.into_iter().map(ChannelView::from).collect()))
}

fn valid_email(s: &str) -> bool {
    s.len() <= 254
        && !s.contains(['<', '>', ',', ' ', '\n', '\r'])
        && s.parse::<lettre::Address>().is_ok()
}

#[utoipa::path(post, path = "/api/v1/notifications/channels", tag = "notifications",
    request_body = CreateChannel,
    responses((status = 201, body = ChannelView), (status = 404), (status = 409), (status = 422)),
    security(("bearer" = [])))]
pub async fn create_channel(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    body: JsonBody<CreateChannel>,
) -> AppResult<HttpResponse> {
    let body = body.parse()?;
    let Some(kind) = ChannelKind::parse(body.kind.trim()) else {
        return Err(AppError::validation(
            "kind",
            "must be webhook, slack, discord or email",
        ));
    };
    if let Some(project) = body.project_id {
        access::project(&state.db, &actor, project, access::Action::Read).await?;
    }
    let target = body.target.trim().to_string();
    if kind == ChannelKind::Email {
        if !valid_email(&target) {
            return Err(AppError::validation("target", "is not an email address"));
        }
        if !state.notifier.sender().email_configured() {
            return Err(AppError::Conflict(
                "email needs a mail server: an admin sets smtp.host".into(),
            ));
        }
    } else {
        let parsed = url::Url::parse(&target)
            .map_err(|_| AppError::validation("target", "must be an http(s) URL"))?;
        if !matches!(parsed.scheme(), "http" | "https")
            || parsed.host_str().is_none()
            || target.len() > 2000
            || !parsed.username().is_empty()
        {
            return Err(AppError::validation("target", "must be an http(s) URL"));
        }
        // Like a member's git URL: no reaching into the host's own networks.
        if !(actor.is_admin() || state.config.git.allow_private_networks) {
            crate::egress::check_saved(&target)
                .await
                .map_err(|why| AppError::validation("target", why.to_string()))?;
        }
    }
    let secret = match body.secret.map(|s| s.trim().to_string()) {
        Some(s) if kind != ChannelKind::Webhook => {
            let _ = s;
            return Err(AppError::validation(
                "secret",
                "only webhook channels sign their deliveries",
            ));
        }
        Some(s) if s.len() < 16 || s.len() > 200 => {
            return Err(AppError::validation(
                "secret",
                "must be 16 to 200 characters",
            ));
        }
        other => other,
    };
    let events = body.events.unwrap_or_default();
    if let Some(bad) = events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
        return Err(AppError::validation(
            "events",
            format!("unknown event '{bad}' (known: {})", EVENTS.join(", ")),
        ));
    }
    if channels::for_user(&state.db, actor.user_id).await?.len() >= MAX_CHANNELS {
        return Err(AppError::Conflict(format!(
            "at most {MAX_CHANNELS} channels per user"
        )));
    }
    let id = channels::next_id();
    let channel = channels::insert(
        &state.db,
        channels::NewChannel {
            id,
            user_id: actor.user_id,
            project_id: body.project_id,
            kind,
            target_hint: hint(kind, &target),
            target_sealed: state.notifier.seal(id, &target),
            secret_sealed: secret.map(|s| state.notifier.seal(id, &s)),
            events: events.join(","),
        },
    )
    .await?;
    crate::http::audit::action(
        &req,
        "notification_channel.create",
        "notification_channel",
        id,
    );
    Ok(HttpResponse::Created().json(ChannelView::from(channel)))
}

/// The caller's own channel `id` (a channel holds its owner's secrets: nobody else reaches it).
async fn own_channel(state: &AppState, actor: &Actor, id: Uuid) -> AppResult<Channel> {
    let what = "notification channel";
    let channel = channels::find(&state.db, id)
        .await?
        .ok_or_else(|| AppError::not_found(what))?;
    access::owned_by(actor, channel.user_id, false, what)?;
    Ok(channel)
}

#[utoipa::path(delete, path = "/api/v1/notifications/channels/{id}", tag = "notifications", params(("id" = uuid::Uuid, Path, description = "the notification channel id")),
    responses((status = 204), (status = 404)), security(("bearer" = [])))]
pub async fn delete_channel(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    id: web::Path<Uuid>,
) -> AppResult<HttpResponse> {
    let channel = own_channel(&state, &actor, id.into_inner()).await?;
    channels::delete(&state.db, channel.id).await?;
    crate::http::audit::action(
        &req,
        "notification_channel.delete",
        "notification_channel",
        channel.id,
    );
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Serialize, ToSchema)]
pub struct TestQueued {
    pub delivery_id: Uuid,
}

/// Sends a test notification through the channel (as a queued delivery, like any other).
#[utoipa::path(post, path = "/api/v1/notifications/channels/{id}/test", tag = "notifications", params(("id" = uuid::Uuid, Path, description = "the notification channel id")),
    responses((status = 202, body = TestQueued), (status = 404)), security(("bearer" = [])))]
pub async fn test_channel(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
    id: web::Path<Uuid>,
) -> AppResult<HttpResponse> {
    let channel = own_channel(&state, &actor, id.into_inner()).await?;
    let notice = Notice {
        event: "test".into(),
        title: "Test notification from shard".into(),
        body: format!("Sent by {} to check this channel.", actor.username),
        project_id: channel.project_id,
        project: None,
        deployment_id: None,
        url: Some(format!("{}/account", state.public_base())),
    };
    let delivery_id = state.notifier.queue(&channel, &notice).await?;
    Ok(HttpResponse::Accepted().json(TestQueued { delivery_id }))
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: Uuid,
    pub event: String,
    /// `pending` (an attempt is due), `delivered` or `failed` (attempts used up).
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The channel's deliveries, newest first (at most 100).
#[utoipa::path(get, path = "/api/v1/notifications/channels/{id}/deliveries", operation_id = "list_channel_deliveries", tag = "notifications", params(("id" = uuid::Uuid, Path, description = "the notification channel id")),
    responses((status = 200, body = [DeliveryView]), (status = 404)), security(("bearer" = [])))]
pub async fn list_deliveries(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
    id: web::Path<Uuid>,
) -> AppResult<web::Json<Vec<DeliveryView>>> {
    let channel = own_channel(&state, &actor, id.into_inner()).await?;
    let list = channels::deliveries(&state.db, channel.id, 100).await?;
    Ok(web::Json(
        list.into_iter()
            .map(|d| DeliveryView {
                id: d.id,
                event: d.event,
                status: d.status.to_string(),
                attempts: d.attempts,
                last_error: d.last_error,
                created_at: d.created_at,
                updated_at: d.updated_at,
            })
            .collect(),
    ))
}
