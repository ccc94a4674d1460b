//! Request authentication: the `Authenticated` extractor accepts a JWT access token or an API
//! token as `Authorization: Bearer`, and the refresh cookie helpers.

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use crate::app::AppState;
use crate::auth::{API_TOKEN_PREFIX, Actor};
use crate::db;
use crate::error::AppError;

pub const REFRESH_COOKIE: &str = "shard_refresh";
/// The API root, so the cookie also reaches `/api/v1/ws` (cookie-authenticated WebSockets).
const COOKIE_PATH: &str = "/api/v1";

/// The caller, proven by a valid access token (whose login is not revoked) or API token.
pub struct Authenticated(pub Actor);

impl FromRequest for Authenticated {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer_token(req);
        Box::pin(async move {
            let state =
                state.ok_or_else(|| AppError::Internal(anyhow::anyhow!("app state missing")))?;
            let token = token.ok_or_else(|| {
                AppError::Unauthorized("missing Authorization: Bearer token".into())
            })?;
            actor_for_token(&state, &token)
                .await?
                .map(Authenticated)
                .ok_or_else(|| AppError::Unauthorized("invalid or expired token".into()))
        })
    }
}

/// Resolves an access or API token to its user; `None` if the token is not valid now.
pub async fn actor_for_token(state: &AppState, token: &str) -> Result<Option<Actor>, AppError> {
    let user = if token.starts_with(API_TOKEN_PREFIX) {
        db::users::find_by_api_token(&state.db, &crate::secrets::token_hash(token)).await?
    } else {
        let Some(claims) = state.tokens.verify(token) else {
            return Ok(None);
        };
        db::users::find_with_active_login(&state.db, claims.sub, claims.sid).await?
    };
    Ok(user.map(|user| Actor {
        user_id: user.id,
        username: user.username,
        role: user.role,
    }))
}

fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .then(|| token.trim().to_string())
}

/// The client address used for rate limiting: the TCP peer (shard does not trust
/// forwarding headers it cannot verify).
pub fn client_ip(req: &HttpRequest) -> String {
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

pub fn refresh_cookie(state: &AppState, token: &str) -> Cookie<'static> {
    Cookie::build(REFRESH_COOKIE, token.to_string())
        .path(COOKIE_PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.config.public_url().starts_with("https://"))
        .max_age(CookieDuration::seconds(
            state.config.auth.refresh_token_ttl_secs as i64,
        ))
        .finish()
}

pub fn expired_refresh_cookie(state: &AppState) -> Cookie<'static> {
    let mut cookie = refresh_cookie(state, "");
    cookie.make_removal();
    cookie
}
