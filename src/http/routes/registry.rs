//! `/registry`: where Swarm deploys send images (`registry.url`, from the config) and the
//! credentials they push and pull with. Instance admins only; the password is write-only
//! (sealed in the database, never answered back).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access;
use crate::deploy::registry::{self, Credentials};
use crate::http::auth::Authenticated;
use crate::http::body::JsonBody;
use crate::http::error::{AppError, AppResult};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/registry", web::get().to(show))
        .route("/registry/credentials", web::put().to(set_credentials))
        .route("/registry/credentials", web::delete().to(clear_credentials));
}

#[derive(Serialize, ToSchema)]
pub struct RegistryView {
    /// `registry.url` (images of Swarm deploys are pushed there and pulled by every node).
    pub url: Option<String>,
    /// `registry.ca_file`, the CA its TLS certificate is checked against.
    pub ca_file: Option<String>,
    /// The user deploys sign in as, when credentials are set.
    pub username: Option<String>,
    /// Whether a password is stored (it is never shown).
    pub password_set: bool,
}

async fn view(state: &AppState) -> AppResult<RegistryView> {
    let stored = registry::load(&state.db, &state.sealer).await?;
    Ok(RegistryView {
        url: state.config.registry.url.clone(),
        ca_file: state
            .config
            .registry
            .ca_file
            .as_ref()
            .map(|p| p.display().to_string()),
        password_set: stored.is_some(),
        username: stored.map(|c| c.username),
    })
}

/// The registry and whether credentials are set (instance admins).
#[utoipa::path(get, path = "/api/v1/registry", tag = "nodes",
    responses((status = 200, body = RegistryView), (status = 403)), security(("bearer" = [])))]
pub async fn show(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
) -> AppResult<web::Json<RegistryView>> {
    access::instance_admin(&actor)?;
    Ok(web::Json(view(&state).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetCredentials {
    pub username: String,
    pub password: String,
}

/// Sets the user and password deploys push and pull with (instance admins); they replace
/// any earlier ones and apply from the next deploy.
#[utoipa::path(put, path = "/api/v1/registry/credentials", tag = "nodes",
    request_body = SetCredentials,
    responses((status = 200, body = RegistryView), (status = 403), (status = 422)),
    security(("bearer" = [])))]
pub async fn set_credentials(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
    body: JsonBody<SetCredentials>,
) -> AppResult<web::Json<RegistryView>> {
    access::instance_admin(&actor)?;
    let body = body.parse()?;
    let username = body.username.trim();
    if username.is_empty() || username.len() > 255 || username.chars().any(char::is_control) {
        return Err(AppError::validation(
            "username",
            "must be 1 to 255 characters, without control characters",
        ));
    }
    if body.password.is_empty() || body.password.len() > 4096 {
        return Err(AppError::validation("password", "must be 1 to 4096 bytes"));
    }
    crate::http::audit::note(&req, |f| f.action = Some("registry.credentials".into()));
    crate::http::audit::detail(&req, serde_json::json!({"username": username}));
    let credentials = Credentials {
        username: username.to_string(),
        password: body.password,
    };
    registry::store(&state.db, &state.sealer, &credentials)
        .await
        .map_err(AppError::Internal)?;
    Ok(web::Json(view(&state).await?))
}

/// Forgets the credentials (instance admins): deploys reach the registry without them.
#[utoipa::path(delete, path = "/api/v1/registry/credentials", tag = "nodes",
    responses((status = 204), (status = 403)), security(("bearer" = [])))]
pub async fn clear_credentials(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
) -> AppResult<HttpResponse> {
    access::instance_admin(&actor)?;
    crate::http::audit::note(&req, |f| {
        f.action = Some("registry.credentials.clear".into())
    });
    registry::clear(&state.db).await?;
    Ok(HttpResponse::NoContent().finish())
}
