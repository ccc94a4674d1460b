//! `/auth/*`: first-run setup, login, refresh-token rotation, logout, whoami, password.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::{self, sessions::NewSession, users::User};
use crate::http::auth::{
    Authenticated, REFRESH_COOKIE, client_ip, expired_refresh_cookie, refresh_cookie,
};
use crate::http::body::JsonBody;
use crate::http::error::{AppError, AppResult, FieldCheck};
use crate::state::AppState;
use crate::{secrets, setup, validate};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/setup", web::post().to(setup_admin))
        .route("/auth/login", web::post().to(login))
        .route("/auth/refresh", web::post().to(refresh))
        .route("/auth/logout", web::post().to(logout))
        .route("/auth/me", web::get().to(me))
        .route("/auth/password", web::post().to(change_password));
}

#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub username: String,
    pub role: String,
    pub created_at: chrono::DateTime<Utc>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            username: u.username,
            role: u.role.to_string(),
            created_at: u.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub user: UserView,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupRequest {
    pub token: String,
    pub username: String,
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// Creates the first admin with the one-time setup token, and signs them in.
#[utoipa::path(post, path = "/api/v1/auth/setup", tag = "auth", request_body = SetupRequest,
    responses((status = 201, body = TokenResponse), (status = 403, description = "wrong token"),
              (status = 409, description = "setup already done"), (status = 422)))]
pub async fn setup_admin(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody<SetupRequest>,
) -> AppResult<HttpResponse> {
    let body = body.parse()?;
    let _guard = state.setup_lock.lock().await;
    if db::users::count(&state.db).await? > 0 {
        return Err(AppError::Conflict(
            "setup is already complete; sign in instead".into(),
        ));
    }
    let expected =
        setup::read_token(&setup::token_path(&state.config.data_dir)).ok_or_else(|| {
            AppError::Forbidden("no setup token is pending; restart shard to create one".into())
        })?;
    if !secrets::constant_time_eq(body.token.trim().as_bytes(), expected.as_bytes()) {
        return Err(AppError::Forbidden("invalid setup token".into()));
    }
    let username = body.username.trim().to_lowercase();
    validate::username(&username).field("username")?;
    validate::password(&body.password).field("password")?;
    let hash = state.passwords.hash(body.password).await?;
    // Another instance on the same Postgres may have finished setup meanwhile.
    let user = db::users::create_first(&state.db, &username, &hash)
        .await?
        .ok_or_else(|| AppError::Conflict("setup is already complete; sign in instead".into()))?;
    setup::remove_token(&state.config.data_dir)?;
    crate::http::audit::action(&req, "setup", "user", user.id);
    crate::http::audit::note(&req, |f| {
        f.user = Some(user.id);
        f.name = Some(user.username.clone());
    });
    tracing::info!(user = %user.username, "first admin created; setup closed");
    let (body, cookie) = start_session(&state, &req, user).await?;
    Ok(HttpResponse::Created().cookie(cookie).json(body))
}

/// Signs in with username and password; sets the refresh cookie.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401), (status = 429, description = "rate limited; see Retry-After")))]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody<LoginRequest>,
) -> AppResult<HttpResponse> {
    let body = body.parse()?;
    let username = body.username.trim().to_lowercase();
    let limited = |retry_after_secs| AppError::RateLimited { retry_after_secs };
    let ip = client_ip(&req);
    state.limiter.attempt_from(&ip).map_err(limited)?;
    state.limiter.check_user(&username, &ip).map_err(limited)?;
    let user = if body.password.len() <= validate::MAX_PASSWORD_LEN {
        db::users::find_by_username(&state.db, &username).await?
    } else {
        None
    };
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let password_ok = state.passwords.verify(body.password, hash).await;
    let Some(user) = user.filter(|_| password_ok) else {
        state.limiter.record_failure(&username, &ip);
        return Err(AppError::Unauthorized("wrong username or password".into()));
    };
    state.limiter.clear_user(&username, &ip);
    crate::http::audit::action(&req, "login", "user", user.id);
    crate::http::audit::note(&req, |f| {
        f.user = Some(user.id);
        f.name = Some(user.username.clone());
    });
    let (body, cookie) = start_session(&state, &req, user).await?;
    Ok(HttpResponse::Ok().cookie(cookie).json(body))
}

/// Trades the refresh cookie for a new access token and a new refresh cookie. A refresh token
/// that was already used revokes its whole login (it was stolen or replayed).
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth",
    responses((status = 200, body = TokenResponse), (status = 401), (status = 403, description = "another origin")))]
pub async fn refresh(state: web::Data<AppState>, req: HttpRequest) -> AppResult<HttpResponse> {
    crate::http::auth::check_same_origin(&req)?;
    let unauthorized = || AppError::Unauthorized("sign in again".into());
    let token = req.cookie(REFRESH_COOKIE).ok_or_else(unauthorized)?;
    let session = db::sessions::find_by_hash(&state.db, &secrets::token_hash(token.value()))
        .await?
        .ok_or_else(unauthorized)?;
    if session.revoked_at.is_some() || session.expires_at <= Utc::now() {
        return Err(unauthorized());
    }
    if session.rotated_at.is_some() || !db::sessions::mark_rotated(&state.db, session.id).await? {
        tracing::warn!(user = %session.user_id, family = %session.family_id, "refresh token reuse; revoking the session");
        db::sessions::revoke_family(&state.db, session.family_id).await?;
        state.logins.forget(session.family_id);
        return Err(AppError::Unauthorized(
            "refresh token reuse detected; the session was revoked, sign in again".into(),
        ));
    }
    let user = db::users::find(&state.db, session.user_id)
        .await?
        .ok_or_else(unauthorized)?;
    if db::sessions::family_revoked(&state.db, session.family_id).await? {
        return Err(unauthorized());
    }
    let (body, cookie) = issue(&state, &req, user, session.family_id).await?;
    // A logout or a reuse detection that raced this refresh: the family is revoked for good,
    // so the token just issued is dead; say so instead of handing it out.
    if db::sessions::family_revoked(&state.db, session.family_id).await? {
        db::sessions::revoke_family(&state.db, session.family_id).await?;
        state.logins.forget(session.family_id);
        return Err(unauthorized());
    }
    Ok(HttpResponse::Ok().cookie(cookie).json(body))
}

/// Revokes the current login (refresh cookie or bearer token) and clears the cookie.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses((status = 204)))]
pub async fn logout(state: web::Data<AppState>, req: HttpRequest) -> AppResult<HttpResponse> {
    if req.cookie(REFRESH_COOKIE).is_some() {
        crate::http::auth::check_same_origin(&req)?;
    }
    if let Some(cookie) = req.cookie(REFRESH_COOKIE)
        && let Some(session) =
            db::sessions::find_by_hash(&state.db, &secrets::token_hash(cookie.value())).await?
    {
        db::sessions::revoke_family(&state.db, session.family_id).await?;
        state.logins.forget(session.family_id);
    }
    let bearer = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(claims) = bearer.and_then(|t| state.tokens.verify(t)) {
        db::sessions::revoke_family(&state.db, claims.sid).await?;
        state.logins.forget(claims.sid);
    }
    Ok(HttpResponse::NoContent()
        .cookie(expired_refresh_cookie(&state))
        .finish())
}

#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", responses((status = 200, body = UserView), (status = 401)),
    security(("bearer" = [])))]
pub async fn me(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
) -> AppResult<web::Json<UserView>> {
    let user = db::users::find(&state.db, actor.user_id)
        .await?
        .ok_or_else(|| AppError::not_found("user"))?;
    Ok(web::Json(user.into()))
}

pub(crate) async fn start_session(
    state: &AppState,
    req: &HttpRequest,
    user: User,
) -> AppResult<(TokenResponse, actix_web::cookie::Cookie<'static>)> {
    issue(state, req, user, db::new_id()).await
}

/// Stores a new refresh token in `family` and signs an access token for it.
async fn issue(
    state: &AppState,
    req: &HttpRequest,
    user: User,
    family_id: Uuid,
) -> AppResult<(TokenResponse, actix_web::cookie::Cookie<'static>)> {
    let refresh_token = secrets::random_token("");
    let user_agent = req
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(512).collect());
    db::sessions::insert(
        &state.db,
        NewSession {
            user_id: user.id,
            family_id,
            token_hash: &secrets::token_hash(&refresh_token),
            expires_at: Utc::now()
                + Duration::seconds(state.config.auth.refresh_token_ttl_secs as i64),
            user_agent,
            ip: Some(client_ip(req)),
        },
    )
    .await?;
    let access_token = state.tokens.issue(user.id, family_id, user.role)?;
    let body = TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: state.tokens.ttl_secs,
        user: user.into(),
    };
    Ok((body, refresh_cookie(state, &refresh_token)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

/// Changes the caller's password. Every other login of the user ends; this one stays.
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", request_body = ChangePasswordRequest,
    responses((status = 204), (status = 401), (status = 422, description = "wrong current password or a weak new one")),
    security(("bearer" = [])))]
pub async fn change_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    body: JsonBody<ChangePasswordRequest>,
) -> AppResult<HttpResponse> {
    let body = body.parse()?;
    let user = db::users::find(&state.db, actor.user_id)
        .await?
        .ok_or_else(|| AppError::not_found("user"))?;
    if !state
        .passwords
        .verify(body.current_password, Some(user.password_hash.clone()))
        .await
    {
        return Err(AppError::validation(
            "current_password",
            "the current password is wrong",
        ));
    }
    crate::validate::password(&body.new_password).field("new_password")?;
    let hash = state.passwords.hash(body.new_password).await?;
    db::users::set_password(&state.db, user.id, &hash).await?;
    let current = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| state.tokens.verify(t))
        .map(|claims| claims.sid);
    super::users::end_logins(&state, user.id, current).await?;
    crate::http::audit::action(&req, "password", "user", user.id);
    Ok(HttpResponse::NoContent().finish())
}
