//! GitHub sign-in and account linking (OAuth web flow).
//!
//! `GET /auth/github/start` sends the browser to GitHub with a random `state` and a PKCE
//! challenge; both are kept in a short-lived HttpOnly cookie on this browser only, sealed
//! (AES-GCM) so it cannot be read or altered. The callback accepts the code only with that
//! cookie's exact state, and clears the cookie, so a callback from another browser or a
//! replayed one is refused. A browser signed in when it starts (valid refresh cookie, which
//! reaches `/start` because the dashboard links to it) links the GitHub account to that user
//! ("connect"): the user is recorded in the sealed cookie, since the SameSite=Strict refresh
//! cookie does not come back with GitHub's cross-site redirect. Otherwise the GitHub account
//! signs in its linked user, or — only with `github.allow_signup` — creates one.
//! The access token is sealed at rest (row id as associated data) and never returned.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::header::LOCATION;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::db::{self, git_accounts};
use crate::github::GithubError;
use crate::http::auth::{Authenticated, REFRESH_COOKIE};
use crate::http::error::{AppError, AppResult};
use crate::state::AppState;
use crate::{secrets, validate};

const STATE_COOKIE: &str = "shard_github_oauth";
const STATE_COOKIE_PATH: &str = "/api/v1/auth/github";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/github/start", web::get().to(start))
        .route("/auth/github/callback", web::get().to(callback))
        .route("/auth/providers", web::get().to(providers))
        .route("/auth/github", web::get().to(account))
        .route("/auth/github", web::delete().to(disconnect));
}

impl From<GithubError> for AppError {
    fn from(e: GithubError) -> Self {
        match e {
            GithubError::NotConfigured => AppError::NotFound(e.to_string()),
            GithubError::Refused(_) => AppError::Unauthorized(e.to_string()),
            GithubError::Unreachable(_) => AppError::Unavailable(e.to_string()),
            GithubError::NotFound => AppError::NotFound(e.to_string()),
            // Not a 401: the caller's shard session is fine, GitHub's grant is not.
            GithubError::TokenRejected => AppError::Conflict(e.to_string()),
        }
    }
}

fn state_cookie(state: &AppState, value: String, max_age: CookieDuration) -> Cookie<'static> {
    Cookie::build(STATE_COOKIE, value)
        .path(STATE_COOKIE_PATH)
        .http_only(true)
        // Lax: the browser comes back from GitHub by a top-level GET, which Lax lets through.
        .same_site(SameSite::Lax)
        .secure(state.public_base().starts_with("https://"))
        .max_age(max_age)
        .finish()
}

/// Sends the browser to GitHub's authorize page.
#[utoipa::path(get, path = "/api/v1/auth/github/start", tag = "github",
    responses((status = 302, description = "to GitHub's authorize URL"), (status = 404, description = "GitHub sign-in is not configured")))]
pub async fn start(state: web::Data<AppState>, req: HttpRequest) -> AppResult<HttpResponse> {
    let (url, csrf, verifier) = state.github.authorize(&state.public_base())?;
    let linking = match req.cookie(REFRESH_COOKIE) {
        Some(c) => crate::http::ws::credential::login_for_refresh_cookie(&state, c.value())
            .await?
            .map(|(actor, _)| actor.user_id),
        None => None,
    };
    let flow = Flow {
        csrf,
        verifier,
        linking,
    };
    Ok(HttpResponse::Found()
        .insert_header((LOCATION, url))
        .cookie(state_cookie(
            &state,
            flow.seal(&state.sealer),
            CookieDuration::minutes(10),
        ))
        .finish())
}

/// What the state cookie carries from `/start` to the callback.
struct Flow {
    csrf: String,
    verifier: String,
    /// The user signed in when the flow started: GitHub is being connected to them.
    linking: Option<uuid::Uuid>,
}

/// Associated data of the sealed state cookie (nothing else sealed can pass for it).
const FLOW_AAD: &[u8] = b"shard github oauth flow";

impl Flow {
    fn seal(&self, sealer: &secrets::Sealer) -> String {
        use base64::Engine as _;
        let linking = self.linking.map(|u| u.to_string()).unwrap_or_default();
        let clear = format!("{}.{}.{linking}", self.csrf, self.verifier);
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sealer.seal(clear.as_bytes(), FLOW_AAD))
    }

    fn open(sealer: &secrets::Sealer, value: &str) -> Option<Flow> {
        use base64::Engine as _;
        let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(value)
            .ok()?;
        let clear = String::from_utf8(sealer.open(&sealed, FLOW_AAD).ok()?).ok()?;
        let mut parts = clear.splitn(3, '.');
        let (csrf, verifier, linking) = (parts.next()?, parts.next()?, parts.next()?);
        let linking = match linking {
            "" => None,
            id => Some(id.parse().ok()?),
        };
        Some(Flow {
            csrf: csrf.to_string(),
            verifier: verifier.to_string(),
            linking,
        })
    }
}

#[derive(Deserialize, IntoParams)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    /// Set by GitHub when the user declined.
    pub error: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/auth/github/callback", tag = "github", params(CallbackQuery),
    responses((status = 302, description = "signed in or linked; back to the dashboard"),
        (status = 400, description = "state missing, wrong or already used"),
        (status = 403, description = "no shard account for this GitHub user and sign-up is off"),
        (status = 409, description = "the GitHub account is linked to another user")))]
pub async fn callback(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<CallbackQuery>,
) -> AppResult<HttpResponse> {
    // The state cookie is single-use: whatever happens next, it is gone.
    let cleared = state_cookie(&state, String::new(), CookieDuration::ZERO);
    let refuse = |why: &str| AppError::BadRequest(why.to_string());
    let cookie = req
        .cookie(STATE_COOKIE)
        .ok_or_else(|| refuse("no GitHub sign-in is under way in this browser; start again"))?;
    let flow = Flow::open(&state.sealer, cookie.value())
        .ok_or_else(|| refuse("the sign-in state is damaged; start again"))?;
    let given = query.state.as_deref().unwrap_or("");
    if given.is_empty() || !secrets::constant_time_eq(given.as_bytes(), flow.csrf.as_bytes()) {
        return Err(refuse("the sign-in state does not match; start again"));
    }
    if let Some(error) = &query.error {
        return Err(refuse(&format!("GitHub did not authorize: {error}")));
    }
    let code = query
        .code
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| refuse("GitHub sent no code"))?;
    let base = state.public_base();
    let grant = state.github.exchange(&base, code, &flow.verifier).await?;
    let gh = state.github.user(&grant.token).await?;
    let github_id = gh.id.to_string();

    let signed_in = match flow.linking {
        Some(id) => Some(
            db::users::find(&state.db, id)
                .await?
                .ok_or_else(|| refuse("the user who started connecting GitHub is gone"))?
                .id,
        ),
        None => None,
    };
    let linked = git_accounts::find_by_github_id(&state.db, &github_id).await?;
    let seal = |id: uuid::Uuid| crate::github::seal_token(&state.sealer, id, &grant.token);

    let user = match (signed_in, linked) {
        // Connect: link this GitHub account to the signed-in user.
        (Some(user_id), Some(account)) if account.user_id != user_id => {
            return Err(AppError::Conflict(format!(
                "GitHub account {} is linked to another shard user",
                gh.login
            )));
        }
        (Some(user_id), existing) => {
            link(
                &state,
                user_id,
                existing,
                &github_id,
                &gh.login,
                &grant.scopes,
                seal,
            )
            .await?;
            return Ok(HttpResponse::Found()
                .insert_header((LOCATION, "/account?github=connected"))
                .cookie(cleared)
                .finish());
        }
        // Sign in as the linked user.
        (None, Some(account)) => {
            git_accounts::update_token(
                &state.db,
                account.id,
                &gh.login,
                seal(account.id),
                &grant.scopes,
            )
            .await?;
            db::users::find(&state.db, account.user_id)
                .await?
                .ok_or_else(|| AppError::not_found("user"))?
        }
        // A new GitHub user: only with sign-up on.
        (None, None) => {
            if !state.github.allow_signup() {
                return Err(AppError::Forbidden(format!(
                    "no shard account is linked to GitHub user {}, and sign-up with GitHub is off; \
                     sign in and connect GitHub from your account page, or ask an admin",
                    gh.login
                )));
            }
            let user = create_user(&state, &gh.login, &github_id).await?;
            link(
                &state,
                user.id,
                None,
                &github_id,
                &gh.login,
                &grant.scopes,
                seal,
            )
            .await?;
            user
        }
    };
    let (_, refresh) = super::auth::start_session(&state, &req, user).await?;
    Ok(HttpResponse::Found()
        .insert_header((LOCATION, "/"))
        .cookie(cleared)
        .cookie(refresh)
        .finish())
}

async fn link(
    state: &AppState,
    user_id: uuid::Uuid,
    existing: Option<git_accounts::GitAccount>,
    github_id: &str,
    login: &str,
    scopes: &str,
    seal: impl Fn(uuid::Uuid) -> Vec<u8>,
) -> AppResult<()> {
    if let Some(account) = existing {
        git_accounts::update_token(&state.db, account.id, login, seal(account.id), scopes).await?;
        db::projects::attach_git_account(&state.db, user_id, account.id).await?;
        return Ok(());
    }
    if let Some(old) = git_accounts::for_user(&state.db, user_id).await? {
        // One GitHub account per user: connecting another replaces the old link.
        db::projects::detach_git_account(&state.db, old.id).await?;
        git_accounts::delete(&state.db, old.id).await?;
    }
    let id = git_accounts::next_id();
    git_accounts::insert(
        &state.db,
        git_accounts::Link {
            id,
            user_id,
            github_id,
            login,
            token_sealed: seal(id),
            scopes,
        },
    )
    .await?;
    db::projects::attach_git_account(&state.db, user_id, id).await?;
    Ok(())
}

/// A member named after the GitHub login (or `<login>-gh<id>` when taken), with no usable
/// password: they sign in with GitHub.
async fn create_user(state: &AppState, login: &str, github_id: &str) -> AppResult<db::users::User> {
    let base = login.to_lowercase();
    let candidates = [base.clone(), format!("{base}-gh{github_id}")];
    let hash = state.passwords.hash(secrets::random_token("")).await?;
    for name in candidates {
        if validate::username(&name).is_err() {
            continue;
        }
        match db::users::create(&state.db, &name, &hash, crate::model::UserRole::Member).await {
            Ok(user) => return Ok(user),
            Err(e) if db::is_unique_violation(&e) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(AppError::Conflict(format!(
        "cannot create a shard user for GitHub user {login}: the name is taken or not allowed"
    )))
}

#[derive(Serialize, ToSchema)]
pub struct GithubAccountView {
    /// Whether GitHub sign-in is configured on this server.
    pub enabled: bool,
    pub connected: bool,
    pub login: Option<String>,
    pub scopes: Option<String>,
}

/// The caller's GitHub link (never the token).
#[utoipa::path(get, path = "/api/v1/auth/github", tag = "github",
    responses((status = 200, body = GithubAccountView)), security(("bearer" = [])))]
pub async fn account(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
) -> AppResult<web::Json<GithubAccountView>> {
    let account = git_accounts::for_user(&state.db, actor.user_id).await?;
    Ok(web::Json(GithubAccountView {
        enabled: state.github.enabled(),
        connected: account.is_some(),
        login: account.as_ref().map(|a| a.login.clone()),
        scopes: account.map(|a| a.scopes),
    }))
}

/// Unlinks the caller's GitHub account: the sealed token is deleted and the grant revoked at
/// GitHub (a failure to revoke is reported, the link is gone either way).
#[utoipa::path(delete, path = "/api/v1/auth/github", tag = "github",
    responses((status = 200, body = DisconnectView), (status = 404)), security(("bearer" = [])))]
pub async fn disconnect(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
) -> AppResult<web::Json<DisconnectView>> {
    let account = git_accounts::for_user(&state.db, actor.user_id)
        .await?
        .ok_or_else(|| AppError::not_found("GitHub account"))?;
    let token = crate::github::open_token(&state.sealer, &account).ok();
    db::projects::detach_git_account(&state.db, account.id).await?;
    git_accounts::delete(&state.db, account.id).await?;
    let revoked = match token {
        Some(token) => match state.github.revoke(&token).await {
            Ok(()) => None,
            Err(e) => Some(e.to_string()),
        },
        None => Some("the stored token could not be opened".into()),
    };
    Ok(web::Json(DisconnectView {
        disconnected: true,
        revoke_error: revoked,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct DisconnectView {
    pub disconnected: bool,
    /// Why GitHub did not confirm the revocation, if it did not.
    pub revoke_error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ProvidersView {
    /// "Sign in with GitHub" is available.
    pub github: bool,
}

/// Which sign-in methods besides the password this server offers (public: the login page asks).
#[utoipa::path(get, path = "/api/v1/auth/providers", tag = "github", responses((status = 200, body = ProvidersView)))]
pub async fn providers(state: web::Data<AppState>) -> web::Json<ProvidersView> {
    web::Json(ProvidersView {
        github: state.github.enabled(),
    })
}
