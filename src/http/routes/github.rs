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
use crate::error::{AppError, AppResult};
use crate::github::{GithubError, RepoName};
use crate::http::auth::{Authenticated, REFRESH_COOKIE};
use crate::state::AppState;
use crate::{secrets, validate};

const STATE_COOKIE: &str = "shard_github_oauth";
const STATE_COOKIE_PATH: &str = "/api/v1/auth/github";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/github/start", web::get().to(start))
        .route("/auth/github/callback", web::get().to(callback))
        .route("/auth/providers", web::get().to(providers))
        .route("/github/repos", web::get().to(repos))
        .route(
            "/github/repos/{owner}/{repo}/branches",
            web::get().to(branches),
        )
        .route("/github/import", web::post().to(import))
        .route("/projects/{id}/github", web::delete().to(unlink_project))
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
        match db::users::create(&state.db, &name, &hash, db::users::ROLE_MEMBER).await {
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

/// The caller's GitHub token in clear, or 409 when GitHub is not connected.
async fn token_of(state: &AppState, user: uuid::Uuid) -> AppResult<String> {
    let account = git_accounts::for_user(&state.db, user)
        .await?
        .ok_or_else(|| AppError::Conflict("connect GitHub first (Account → GitHub)".into()))?;
    Ok(crate::github::open_token(&state.sealer, &account)?)
}

#[derive(Deserialize, IntoParams)]
pub struct RepoQuery {
    /// Keeps repositories whose full name contains this (any case).
    pub q: Option<String>,
}

/// The connected account's repositories (every page), newest activity first, filtered by `q`.
#[utoipa::path(get, path = "/api/v1/github/repos", tag = "github", params(RepoQuery),
    responses((status = 200, body = [crate::github::Repo]), (status = 409, description = "GitHub not connected")),
    security(("bearer" = [])))]
pub async fn repos(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
    query: web::Query<RepoQuery>,
) -> AppResult<web::Json<Vec<crate::github::Repo>>> {
    let token = token_of(&state, actor.user_id).await?;
    let mut list = state.github.repos(&token).await?;
    if let Some(q) = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        let q = q.to_lowercase();
        list.retain(|r| r.full_name.to_lowercase().contains(&q));
    }
    Ok(web::Json(list))
}

#[utoipa::path(get, path = "/api/v1/github/repos/{owner}/{repo}/branches", tag = "github",
    responses((status = 200, body = [crate::github::Branch]), (status = 404), (status = 409, description = "GitHub not connected"), (status = 422)),
    security(("bearer" = [])))]
pub async fn branches(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
    path: web::Path<(String, String)>,
) -> AppResult<web::Json<Vec<crate::github::Branch>>> {
    let (owner, repo) = path.into_inner();
    if !RepoName::valid_part(&owner) {
        return Err(AppError::validation("owner", "is not a GitHub owner name"));
    }
    let repo = RepoName::new(&owner, &repo)
        .ok_or_else(|| AppError::validation("repo", "is not a GitHub repository name"))?;
    let token = token_of(&state, actor.user_id).await?;
    Ok(web::Json(state.github.branches(&token, &repo).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// `owner/name` of a repository the connected account can see.
    pub repo: String,
    /// Default: the repository's default branch.
    pub branch: Option<String>,
    /// Project name; default: the repository's name.
    pub name: Option<String>,
    /// Default `Dockerfile`.
    pub dockerfile: Option<String>,
    pub port: Option<i32>,
}

#[derive(Serialize, ToSchema)]
pub struct ImportView {
    pub project: super::projects::ProjectView,
    pub private: bool,
    /// Whether the Dockerfile exists at the chosen path on the chosen branch.
    pub dockerfile_found: bool,
    /// `created` (GitHub sends pushes) or `manual` (see `GET /projects/{id}/webhook`).
    pub webhook: &'static str,
    pub webhook_error: Option<String>,
}

/// Creates a project from a GitHub repository: fetched with the account's token, checked for
/// its Dockerfile, and given a push webhook when the token may create one.
#[utoipa::path(post, path = "/api/v1/github/import", tag = "github", request_body = ImportRequest,
    responses((status = 201, body = ImportView), (status = 404), (status = 409, description = "GitHub not connected, or the name is taken"), (status = 422)),
    security(("bearer" = [])))]
pub async fn import(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    body: web::Json<ImportRequest>,
) -> AppResult<HttpResponse> {
    let body = body.into_inner();
    let full = RepoName::parse(&body.repo)
        .ok_or_else(|| AppError::validation("repo", "must be owner/name"))?;
    let account = git_accounts::for_user(&state.db, actor.user_id)
        .await?
        .ok_or_else(|| AppError::Conflict("connect GitHub first (Account → GitHub)".into()))?;
    let token = token_of(&state, actor.user_id).await?;
    let repo = state.github.repo(&token, &full).await?;
    let branch = body
        .branch
        .or(repo.default_branch.clone())
        .unwrap_or_else(|| "main".into());
    let dockerfile = body.dockerfile.unwrap_or_else(|| "Dockerfile".into());
    let dockerfile_found = state
        .github
        .file_exists(&token, &full, &dockerfile, &branch)
        .await?;
    let create = super::projects::CreateProject {
        name: body.name.unwrap_or_else(|| repo.name.clone()),
        git_url: repo.clone_url.clone(),
        branch: Some(branch),
        dockerfile: Some(dockerfile),
        port: body.port,
        health_path: None,
        health_timeout_secs: None,
        memory_limit_mb: None,
        cpu_limit_millis: None,
        build_type: None,
        static_dir: None,
    };
    let project = super::projects::create(&state, &req, &actor, create).await?;
    let mut link = db::projects::GithubLink {
        account: Some(account.id),
        repo: Some(full.to_string()),
        hook_id: None,
    };
    db::projects::set_github(&state.db, project.id, link.clone()).await?;
    let project = db::projects::find(&state.db, project.id)
        .await?
        .ok_or_else(|| AppError::not_found("project"))?;
    let secret = super::webhooks::secret_of(&state, &project).await?;
    let url = super::webhooks::hook_url(&state, project.id);
    let webhook_error = match state.github.create_hook(&token, &full, &url, &secret).await {
        Ok(id) => {
            link.hook_id = Some(id);
            db::projects::set_github(&state.db, project.id, link).await?;
            None
        }
        Err(e) => Some(e.to_string()),
    };
    let project = db::projects::find(&state.db, project.id)
        .await?
        .ok_or_else(|| AppError::not_found("project"))?;
    Ok(HttpResponse::Created().json(ImportView {
        private: repo.private,
        dockerfile_found,
        webhook: if webhook_error.is_none() {
            "created"
        } else {
            "manual"
        },
        webhook_error,
        project: super::projects::created_view(&state, project),
    }))
}

/// Deletes the push webhook shard created on a project's repository, when the project still
/// has a connected account to do it with; says why not otherwise.
pub(crate) async fn remove_hook(
    state: &AppState,
    project: &db::projects::Project,
) -> Option<String> {
    let hook = project.github_hook_id?;
    let repo = project.github_repo.as_deref().and_then(RepoName::parse)?;
    let account = match project.git_account_id {
        Some(id) => git_accounts::find(&state.db, id).await.ok().flatten(),
        None => None,
    };
    let Some(account) = account else {
        return Some(format!(
            "the GitHub account is disconnected: delete the webhook in {repo}'s settings by hand"
        ));
    };
    let token = match crate::github::open_token(&state.sealer, &account) {
        Ok(token) => token,
        Err(e) => return Some(e.to_string()),
    };
    state
        .github
        .delete_hook(&token, &repo, hook)
        .await
        .err()
        .map(|e| e.to_string())
}

#[derive(Serialize, ToSchema)]
pub struct UnlinkView {
    pub unlinked: bool,
    /// Why the webhook on GitHub could not be deleted, if it could not.
    pub webhook_error: Option<String>,
}

/// Unties a project from GitHub: the webhook shard created is deleted from the repository,
/// commit statuses stop and fetches no longer use the account's token. The project keeps its
/// git URL and its webhook secret (for a manual webhook).
#[utoipa::path(delete, path = "/api/v1/projects/{id}/github", tag = "github",
    responses((status = 200, body = UnlinkView), (status = 404)), security(("bearer" = [])))]
pub async fn unlink_project(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    id: web::Path<uuid::Uuid>,
) -> AppResult<web::Json<UnlinkView>> {
    let project = crate::access::project(&state.db, &actor, id.into_inner()).await?;
    if project.github_repo.is_none() && project.git_account_id.is_none() {
        return Err(AppError::not_found("GitHub link of this project"));
    }
    let webhook_error = remove_hook(&state, &project).await;
    db::projects::set_github(&state.db, project.id, db::projects::GithubLink::default()).await?;
    crate::http::audit(
        &state,
        &req,
        actor.user_id,
        "project.github_unlink",
        "project",
        project.id,
    )
    .await;
    Ok(web::Json(UnlinkView {
        unlinked: true,
        webhook_error,
    }))
}
