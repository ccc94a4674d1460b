//! `/users`: admins list and create accounts (members or admins).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::{UserView, require_admin};
use crate::db::{self, users};
use crate::error::{AppError, AppResult, FieldCheck};
use crate::http::auth::Authenticated;
use crate::state::AppState;
use crate::validate;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/users", web::get().to(list_users))
        .route("/users", web::post().to(create_user));
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub username: String,
    pub password: String,
    /// `admin` or `member` (default).
    #[serde(default)]
    pub role: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users", responses((status = 200, body = [UserView]), (status = 403)), security(("bearer" = [])))]
pub async fn list_users(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
) -> AppResult<web::Json<Vec<UserView>>> {
    require_admin(&actor)?;
    Ok(web::Json(
        users::list(&state.db)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUserRequest,
    responses((status = 201, body = UserView), (status = 403), (status = 409), (status = 422)), security(("bearer" = [])))]
pub async fn create_user(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
    body: web::Json<CreateUserRequest>,
) -> AppResult<HttpResponse> {
    require_admin(&actor)?;
    let body = body.into_inner();
    let username = body.username.trim().to_lowercase();
    validate::username(&username).field("username")?;
    validate::password(&body.password).field("password")?;
    let role = match body.role.as_deref() {
        None | Some(users::ROLE_MEMBER) => users::ROLE_MEMBER,
        Some(users::ROLE_ADMIN) => users::ROLE_ADMIN,
        Some(_) => return Err(AppError::validation("role", "must be 'admin' or 'member'")),
    };
    let hash = state.passwords.hash(body.password).await?;
    match users::create(&state.db, &username, &hash, role).await {
        Ok(user) => Ok(HttpResponse::Created().json(UserView::from(user))),
        Err(e) if db::is_unique_violation(&e) => Err(AppError::Conflict(format!(
            "user '{username}' already exists"
        ))),
        Err(e) => Err(e.into()),
    }
}
