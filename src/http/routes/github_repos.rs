//! GitHub repositories of the connected account: listing them and their branches, importing
//! one as a project (Dockerfile check, push webhook), and untying a project from GitHub (its
//! webhook deleted). Sign-in and the account link are in `github.rs`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::db::{self, git_accounts};
use crate::github::RepoName;
use crate::http::access::{Configure, ProjectFor};
use crate::http::auth::Authenticated;
use crate::http::body::JsonBody;
use crate::http::error::{AppError, AppResult};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/github/repos", web::get().to(repos))
        .route(
            "/github/repos/{owner}/{repo}/branches",
            web::get().to(branches),
        )
        .route("/github/import", web::post().to(import))
        .route("/projects/{id}/github", web::delete().to(unlink_project));
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
    crate::access::personal(&actor)?;
    let token = token_of(&state, actor.user_id).await?;
    let mut list = state.github.repos(&token).await?;
    if let Some(q) = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        let q = q.to_lowercase();
        list.retain(|r| r.full_name.to_lowercase().contains(&q));
    }
    Ok(web::Json(list))
}

#[utoipa::path(get, path = "/api/v1/github/repos/{owner}/{repo}/branches", tag = "github", params(("owner" = String, Path, description = "the GitHub owner"), ("repo" = String, Path, description = "the GitHub repository name")),
    responses((status = 200, body = [crate::github::Branch]), (status = 404), (status = 409, description = "GitHub not connected"), (status = 422)),
    security(("bearer" = [])))]
pub async fn branches(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
    path: web::Path<(String, String)>,
) -> AppResult<web::Json<Vec<crate::github::Branch>>> {
    crate::access::personal(&actor)?;
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
    /// The team it goes to; default: the caller's personal team.
    pub team_id: Option<uuid::Uuid>,
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
    body: JsonBody<ImportRequest>,
) -> AppResult<HttpResponse> {
    let body = body.parse()?;
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
        team_id: body.team_id,
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
        root_dir: None,
        install_command: None,
        build_command: None,
        start_command: None,
        replicas: None,
        placement: None,
    };
    let project = super::projects::create(&state, &req, &actor, create).await?;
    let mut link = db::projects::GithubLink {
        account: Some(account.id),
        repo: Some(full.to_string()),
        hook_id: None,
        // The account's token goes to where GitHub said the repository is cloned from.
        origin: crate::egress::origin(&repo.clone_url),
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
#[utoipa::path(delete, path = "/api/v1/projects/{id}/github", tag = "github", params(("id" = uuid::Uuid, Path, description = "the project id")),
    responses((status = 200, body = UnlinkView), (status = 403), (status = 404)), security(("bearer" = ["role:admin", "scope:admin"])))]
pub async fn unlink_project(
    state: web::Data<AppState>,
    req: HttpRequest,
    ProjectFor(_actor, project, _need): ProjectFor<Configure>,
) -> AppResult<web::Json<UnlinkView>> {
    if project.github_repo.is_none() && project.git_account_id.is_none() {
        return Err(AppError::not_found("GitHub link of this project"));
    }
    let webhook_error = remove_hook(&state, &project).await;
    db::projects::set_github(&state.db, project.id, db::projects::GithubLink::default()).await?;
    crate::http::audit::action(&req, "project.github_unlink", "project", project.id);
    Ok(web::Json(UnlinkView {
        unlinked: true,
        webhook_error,
    }))
}
