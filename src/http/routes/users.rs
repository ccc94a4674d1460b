//! `/users`: admins list and create accounts (members or admins), change a role, remove one.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::UserView;
use crate::access;
use crate::db::{self, users};
use crate::http::auth::Authenticated;
use crate::http::body::JsonBody;
use crate::http::error::{AppError, AppResult, FieldCheck};
use crate::state::AppState;
use crate::validate;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/users", web::get().to(list_users))
        .route("/users", web::post().to(create_user))
        .route("/users/{id}", web::patch().to(update_user))
        .route("/users/{id}", web::delete().to(delete_user));
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
    access::instance_admin(&actor)?;
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
    body: JsonBody<CreateUserRequest>,
) -> AppResult<HttpResponse> {
    let body = body.parse()?;
    access::instance_admin(&actor)?;
    let username = body.username.trim().to_lowercase();
    validate::username(&username).field("username")?;
    validate::password(&body.password).field("password")?;
    let role = parse_role(body.role.as_deref())?;
    let hash = state.passwords.hash(body.password).await?;
    match users::create(&state.db, &username, &hash, role).await {
        Ok(user) => Ok(HttpResponse::Created().json(UserView::from(user))),
        Err(e) if db::is_unique_violation(&e) => Err(AppError::Conflict(format!(
            "user '{username}' already exists"
        ))),
        Err(e) => Err(e.into()),
    }
}

fn parse_role(role: Option<&str>) -> AppResult<crate::model::UserRole> {
    match role {
        None => Ok(crate::model::UserRole::Member),
        Some(text) => crate::model::UserRole::parse(text)
            .ok_or_else(|| AppError::validation("role", "must be 'admin' or 'member'")),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    /// `admin` or `member`.
    pub role: String,
}

/// The user `id`, or 404; and 409 when the change would leave no admin.
async fn target_user(
    state: &AppState,
    id: Uuid,
    leaves_admin_role: bool,
) -> AppResult<users::User> {
    let user = users::find(&state.db, id)
        .await?
        .ok_or_else(|| AppError::not_found("user"))?;
    if leaves_admin_role
        && user.role == crate::model::UserRole::Admin
        && users::count_admins(&state.db).await? <= 1
    {
        return Err(AppError::Conflict(format!(
            "'{}' is the only admin; make another user admin first",
            user.username
        )));
    }
    Ok(user)
}

/// Ends every login of a user at once (role change, removal, password change).
pub(crate) async fn end_logins(state: &AppState, user: Uuid, keep: Option<Uuid>) -> AppResult<()> {
    for family in db::sessions::active_families(&state.db, user).await? {
        if Some(family) == keep {
            continue;
        }
        db::sessions::revoke_family(&state.db, family).await?;
        state.logins.forget(family);
    }
    Ok(())
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", params(("id" = uuid::Uuid, Path, description = "the user id")), request_body = UpdateUserRequest,
    responses((status = 200, body = UserView), (status = 403), (status = 404), (status = 409, description = "the last admin"), (status = 422)),
    security(("bearer" = [])))]
pub async fn update_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    path: web::Path<Uuid>,
    body: JsonBody<UpdateUserRequest>,
) -> AppResult<web::Json<UserView>> {
    let body = body.parse()?;
    access::instance_admin(&actor)?;
    let role = parse_role(Some(body.role.as_str()))?;
    let user = target_user(&state, *path, role != crate::model::UserRole::Admin).await?;
    if user.role != role {
        users::set_role(&state.db, user.id, role).await?;
        // Access tokens carry the role: sign the user in again so the new one applies now.
        end_logins(&state, user.id, None).await?;
        crate::http::audit::action(&req, "user.role", "user", user.id);
    }
    let user = users::find(&state.db, user.id)
        .await?
        .ok_or_else(|| AppError::not_found("user"))?;
    Ok(web::Json(user.into()))
}

#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", params(("id" = uuid::Uuid, Path, description = "the user id")),
    responses((status = 204), (status = 403), (status = 404), (status = 409, description = "the last admin, yourself, or a user who owns projects")),
    security(("bearer" = [])))]
pub async fn delete_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    path: web::Path<Uuid>,
) -> AppResult<HttpResponse> {
    access::instance_admin(&actor)?;
    if *path == actor.user_id {
        return Err(AppError::Conflict(
            "you cannot remove yourself; ask another admin".into(),
        ));
    }
    let user = target_user(&state, *path, true).await?;
    let owned = db::projects::list(&state.db, Some(user.id)).await?.len();
    if owned > 0 {
        return Err(AppError::Conflict(format!(
            "'{}' owns {owned} project(s); delete them first",
            user.username
        )));
    }
    end_logins(&state, user.id, None).await?;
    users::delete(&state.db, user.id).await?;
    crate::http::audit::action(&req, "user.delete", "user", user.id);
    Ok(HttpResponse::NoContent().finish())
}
