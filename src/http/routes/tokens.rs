//! `/tokens`: API tokens for scripts, CI and the CLI. A token is named and scoped (`read`,
//! `deploy`, `admin`), may be limited to some projects and given an expiry; it is shown once,
//! stored as a hash, and its last use is recorded. A token may mint tokens, never wider than
//! itself. Its owner revokes it, and so may instance admins.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::access::{self, Action, Scope};
use crate::auth::API_TOKEN_PREFIX;
use crate::db::{self, api_tokens::ApiToken};
use crate::http::auth::{Authenticated, Caller};
use crate::http::body::JsonBody;
use crate::http::error::{AppError, AppResult};
use crate::secrets;
use crate::state::AppState;

/// Tokens one user may hold.
const MAX_TOKENS_PER_USER: u64 = 100;
/// Projects one token may be limited to.
const MAX_PROJECTS: usize = 100;
const MAX_DAYS: u32 = 3650;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/tokens", web::get().to(list_tokens))
        .route("/tokens", web::post().to(create_token))
        .route("/tokens/{id}", web::delete().to(delete_token));
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    pub name: String,
    /// `read`, `deploy` or `admin` (default `admin`, what tokens were before scopes).
    pub scope: Option<String>,
    /// Only these projects (default: every project the user reaches).
    pub project_ids: Option<Vec<Uuid>>,
    /// Expires after this many days (1 to 3650; default: never).
    pub expires_in_days: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct ApiTokenView {
    pub id: Uuid,
    pub name: String,
    /// The first characters, to recognise the token.
    pub prefix: String,
    pub scope: String,
    pub project_ids: Option<Vec<Uuid>>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Whose token it is (listed for admins).
    pub user_id: Uuid,
    /// The full token; only in the creation response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl From<ApiToken> for ApiTokenView {
    fn from(t: ApiToken) -> Self {
        Self {
            project_ids: db::api_tokens::project_ids(&t),
            id: t.id,
            name: t.name,
            prefix: t.prefix,
            scope: t.scope.to_string(),
            created_at: t.created_at,
            last_used_at: t.last_used_at,
            expires_at: t.expires_at,
            user_id: t.user_id,
            token: None,
        }
    }
}

/// Creates an API token; the token is in this answer only.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = CreateTokenRequest,
    responses((status = 201, body = ApiTokenView), (status = 403, description = "wider than the token used to ask"),
        (status = 404, description = "a project that is not visible"), (status = 409, description = "too many tokens"), (status = 422)),
    security(("bearer" = [])))]
pub async fn create_token(
    state: web::Data<AppState>,
    req: HttpRequest,
    Caller(actor): Caller,
    body: JsonBody<CreateTokenRequest>,
) -> AppResult<HttpResponse> {
    let body = body.parse()?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AppError::validation(
            "name",
            "must be 1 to 100 printable characters",
        ));
    }
    let scope = match body.scope.as_deref() {
        None => Scope::Admin,
        Some(s) => Scope::parse(s)
            .ok_or_else(|| AppError::validation("scope", "must be read, deploy or admin"))?,
    };
    let expires_at = match body.expires_in_days {
        None => None,
        Some(days @ 1..=MAX_DAYS) => Some(Utc::now() + Duration::days(i64::from(days))),
        Some(_) => {
            return Err(AppError::validation(
                "expires_in_days",
                format!("must be between 1 and {MAX_DAYS}"),
            ));
        }
    };
    let mut projects = body.project_ids;
    if let Some(ids) = &mut projects {
        ids.sort();
        ids.dedup();
        if ids.is_empty() || ids.len() > MAX_PROJECTS {
            return Err(AppError::validation(
                "project_ids",
                format!("must list 1 to {MAX_PROJECTS} projects (or be left out for all)"),
            ));
        }
        for id in ids.iter() {
            access::project(&state.db, &actor, *id, Action::Read).await?;
        }
    }
    // A token never mints a wider one.
    if let Some(parent) = &actor.token {
        if scope > parent.scope {
            return Err(AppError::Forbidden(format!(
                "this API token's scope is '{}'; it cannot create a '{}' token",
                parent.scope.as_str(),
                scope.as_str()
            )));
        }
        if let Some(limit) = parent.expires_at
            && expires_at.is_none_or(|e| e > limit)
        {
            return Err(AppError::Forbidden(format!(
                "this API token expires at {limit}; a token it creates must expire no later \
                 (set expires_in_days)"
            )));
        }
        if parent.projects.is_some() && projects.is_none() {
            return Err(AppError::Forbidden(
                "this API token is limited to some projects; list project_ids (a subset of its own)"
                    .into(),
            ));
        }
    }
    if db::api_tokens::count_for(&state.db, actor.user_id).await? >= MAX_TOKENS_PER_USER {
        return Err(AppError::Conflict(format!(
            "a user can hold at most {MAX_TOKENS_PER_USER} tokens; revoke some first"
        )));
    }
    let (row, token) = mint(&state, actor.user_id, name, scope, projects, expires_at).await?;
    crate::http::audit::action(&req, "token.create", "token", row.id);
    crate::http::audit::detail(&req, serde_json::json!({ "scope": scope.as_str() }));
    let mut view = ApiTokenView::from(row);
    view.token = Some(token);
    Ok(HttpResponse::Created().json(view))
}

/// Creates a token row and returns it with the token (never stored in the clear).
pub(crate) async fn mint(
    state: &AppState,
    user: Uuid,
    name: &str,
    scope: Scope,
    projects: Option<Vec<Uuid>>,
    expires_at: Option<DateTime<Utc>>,
) -> AppResult<(ApiToken, String)> {
    let token = secrets::random_token(API_TOKEN_PREFIX);
    let prefix: String = token.chars().take(API_TOKEN_PREFIX.len() + 6).collect();
    let row = db::api_tokens::create(
        &state.db,
        db::api_tokens::New {
            user_id: user,
            name,
            token_hash: &secrets::token_hash(&token),
            prefix: &prefix,
            scope,
            project_ids: projects,
            expires_at,
        },
    )
    .await?;
    Ok((row, token))
}

#[derive(Deserialize, IntoParams)]
pub struct ListQuery {
    /// Every user's tokens (instance admins only).
    #[serde(default)]
    pub all: bool,
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", params(ListQuery),
    responses((status = 200, body = [ApiTokenView]), (status = 403)), security(("bearer" = [])))]
pub async fn list_tokens(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
    query: web::Query<ListQuery>,
) -> AppResult<web::Json<Vec<ApiTokenView>>> {
    let user = if query.all {
        access::instance_admin(&actor)?;
        None
    } else {
        Some(actor.user_id)
    };
    let tokens = db::api_tokens::list(&state.db, user).await?;
    Ok(web::Json(tokens.into_iter().map(Into::into).collect()))
}

/// Revokes a token at once: its owner may, and so may instance admins.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = uuid::Uuid, Path, description = "the API token id")), responses((status = 204), (status = 404)), security(("bearer" = [])))]
pub async fn delete_token(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    id: web::Path<Uuid>,
) -> AppResult<HttpResponse> {
    let token = db::api_tokens::find(&state.db, id.into_inner())
        .await?
        .ok_or_else(|| AppError::not_found("token"))?;
    access::owned_by(&actor, token.user_id, true, "token")?;
    db::api_tokens::delete(&state.db, token.id).await?;
    crate::http::audit::action(&req, "token.delete", "token", token.id);
    Ok(HttpResponse::NoContent().finish())
}
