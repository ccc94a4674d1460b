//! `/cli/logins`: device-style sign-in for `shard login <url>` (see `auth::device`). The CLI
//! starts one and polls; a signed-in user approves its code on the dashboard's `/cli` page,
//! which mints an `admin`-scope API token named after the CLI's machine.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::{self, Scope};
use crate::auth::device::{LIFETIME, Stage};
use crate::http::auth::Authenticated;
use crate::http::body::JsonBody;
use crate::http::error::{AppError, AppResult};
use crate::secrets;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/cli/logins", web::post().to(start))
        .route("/cli/logins/poll", web::post().to(poll))
        .route("/cli/logins/{code}", web::get().to(show))
        .route("/cli/logins/{code}/approve", web::post().to(approve))
        .route("/cli/logins/{code}/deny", web::post().to(deny));
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// What the CLI calls itself (its host name); shown to the approver.
    pub name: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Started {
    /// The code the user approves, `XXXX-XXXX`.
    pub code: String,
    /// The secret the CLI polls with.
    pub poll_token: String,
    /// The dashboard page that approves it; the user types the code there (it is not in the
    /// URL, so a link alone approves nothing).
    pub verify_url: String,
    pub expires_in: u64,
    /// Seconds between polls.
    pub interval: u64,
}

/// Starts a CLI sign-in (no authentication: the approval is what signs in).
#[utoipa::path(post, path = "/api/v1/cli/logins", operation_id = "start_cli_login", tag = "cli", request_body = StartRequest,
    responses((status = 201, body = Started), (status = 409, description = "too many sign-ins pending")))]
pub async fn start(
    state: web::Data<AppState>,
    body: JsonBody<StartRequest>,
) -> AppResult<HttpResponse> {
    let body = body.parse()?;
    let name: String = body
        .name
        .unwrap_or_else(|| "shard CLI".into())
        .chars()
        .filter(|c| !c.is_control())
        .take(60)
        .collect();
    let poll_token = secrets::random_token("shcli_");
    let code = state
        .device_logins
        .start(name.trim(), &secrets::token_hash(&poll_token))
        .await?
        .ok_or_else(|| {
            AppError::Conflict("too many CLI sign-ins are pending; retry in a few minutes".into())
        })?;
    Ok(HttpResponse::Created().json(Started {
        verify_url: format!("{}/cli", state.public_base()),
        code,
        poll_token,
        expires_in: LIFETIME.as_secs(),
        interval: 2,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PollRequest {
    pub poll_token: String,
}

#[derive(Serialize, ToSchema)]
pub struct PollView {
    /// `pending`, `approved` (with the token, this once) or `denied`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/cli/logins/poll", tag = "cli", request_body = PollRequest,
    responses((status = 200, body = PollView), (status = 404, description = "unknown or expired")))]
pub async fn poll(
    state: web::Data<AppState>,
    body: JsonBody<PollRequest>,
) -> AppResult<web::Json<PollView>> {
    let body = body.parse()?;
    let stage = state
        .device_logins
        .poll(&secrets::token_hash(&body.poll_token))
        .await?
        .ok_or_else(|| AppError::not_found("CLI sign-in (it may have expired)"))?;
    Ok(web::Json(match stage {
        Stage::Waiting => PollView {
            status: "pending",
            token: None,
            username: None,
        },
        Stage::Approved { token, username } => PollView {
            status: "approved",
            token: Some(token),
            username: Some(username),
        },
        Stage::Denied => PollView {
            status: "denied",
            token: None,
            username: None,
        },
    }))
}

#[derive(Serialize, ToSchema)]
pub struct RequestView {
    pub code: String,
    pub name: String,
    pub expires_in: u64,
}

/// The waiting sign-in with this code, for the approval page.
#[utoipa::path(get, path = "/api/v1/cli/logins/{code}", operation_id = "show_cli_login", tag = "cli", params(("code" = String, Path, description = "the sign-in code shown by the CLI")),
    responses((status = 200, body = RequestView), (status = 404)), security(("bearer" = [])))]
pub async fn show(
    state: web::Data<AppState>,
    Authenticated(_actor): Authenticated,
    code: web::Path<String>,
) -> AppResult<web::Json<RequestView>> {
    let request = state
        .device_logins
        .request(&code)
        .await?
        .ok_or_else(|| AppError::not_found("CLI sign-in (it may have expired)"))?;
    Ok(web::Json(RequestView {
        code: request.code,
        name: request.name,
        expires_in: request.expires_in.as_secs(),
    }))
}

/// Approves a CLI sign-in: an API token (scope `admin`) is minted for the caller.
#[utoipa::path(post, path = "/api/v1/cli/logins/{code}/approve", tag = "cli", params(("code" = String, Path, description = "the sign-in code shown by the CLI")),
    responses((status = 204), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn approve(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    code: web::Path<String>,
) -> AppResult<HttpResponse> {
    // Only a full sign-in hands out a full token.
    access::account(&actor, true)?;
    let request = state
        .device_logins
        .request(&code)
        .await?
        .ok_or_else(|| AppError::not_found("CLI sign-in (it may have expired)"))?;
    let name = format!("CLI: {}", request.name);
    let (row, token) =
        super::tokens::mint(&state, actor.user_id, &name, Scope::Admin, None, None).await?;
    let stage = Stage::Approved {
        token,
        username: actor.username.clone(),
    };
    if !state.device_logins.settle(&request.code, stage).await? {
        crate::db::api_tokens::delete(&state.db, row.id).await?;
        return Err(AppError::not_found("CLI sign-in (it may have expired)"));
    }
    crate::http::audit::action(&req, "token.create", "token", row.id);
    crate::http::audit::detail(
        &req,
        serde_json::json!({ "scope": "admin", "via": "cli login" }),
    );
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/api/v1/cli/logins/{code}/deny", tag = "cli", params(("code" = String, Path, description = "the sign-in code shown by the CLI")),
    responses((status = 204), (status = 404)), security(("bearer" = [])))]
pub async fn deny(
    state: web::Data<AppState>,
    Authenticated(_actor): Authenticated,
    code: web::Path<String>,
) -> AppResult<HttpResponse> {
    if state.device_logins.settle(&code, Stage::Denied).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(AppError::not_found("CLI sign-in (it may have expired)"))
    }
}
