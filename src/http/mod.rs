//! The HTTP edge (actix-web): routes under `/api/v1`, `/health`, the OpenAPI document and the
//! embedded dashboard. Only this layer knows HTTP and JSON shapes; it maps every failure to an
//! `AppError` JSON body.

pub mod access;
pub mod audit;
pub mod auth;
pub mod body;
pub mod error;
mod openapi;
pub mod quotas;
pub mod routes;
mod spa;
pub mod ws;

use actix_web::dev::Service;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpMessage, HttpRequest, web};
use tracing_actix_web::{RequestId, TracingLogger};

use crate::http::error::AppError;
use crate::state::AppState;

/// Mounts everything on one actix `App`.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<AppState>) {
    let body_limit = state.config.http.body_limit_bytes;
    let metrics = state.metrics.clone();
    let audit_state = state.clone();
    cfg.app_data(state)
        .app_data(
            web::JsonConfig::default()
                .limit(body_limit)
                .error_handler(json_error),
        )
        .app_data(web::PathConfig::default().error_handler(path_error))
        .app_data(web::QueryConfig::default().error_handler(query_error))
        .service(
            web::scope("")
                .wrap_fn(move |req, srv| {
                    let id = req.extensions().get::<RequestId>().copied();
                    let response = srv.call(req);
                    let metrics = metrics.clone();
                    let state = audit_state.clone();
                    async move {
                        let mut response = response.await?;
                        audit::record(&state, &response).await;
                        metrics.http_request(
                            response.request().match_pattern().as_deref(),
                            response.request().method().as_str(),
                            response.status().as_u16(),
                        );
                        if let Some(id) = id
                            && let Ok(value) = HeaderValue::from_str(&id.to_string())
                        {
                            response
                                .headers_mut()
                                .insert(HeaderName::from_static("x-request-id"), value);
                        }
                        Ok(response)
                    }
                })
                .wrap(TracingLogger::default())
                .wrap(security_headers())
                .route("/health", web::get().to(routes::health::health))
                .route("/metrics", web::get().to(routes::metrics::prometheus))
                .service(
                    web::scope("/api/v1")
                        .configure(routes::auth::configure)
                        .configure(routes::users::configure)
                        .configure(routes::tokens::configure)
                        .configure(routes::teams::configure)
                        .configure(routes::audit::configure)
                        .configure(routes::cli_logins::configure)
                        .configure(routes::projects::configure)
                        .configure(routes::env::configure)
                        .configure(routes::deployments::configure)
                        .configure(routes::domains::configure)
                        .configure(routes::webhooks::configure)
                        .configure(routes::plans::configure)
                        .configure(routes::volumes::configure)
                        .configure(routes::tasks::configure)
                        .configure(routes::previews::configure)
                        .configure(routes::files::configure)
                        .configure(routes::databases::configure)
                        .configure(routes::backups::configure)
                        .configure(routes::volume_backups::configure)
                        .configure(routes::instance_backups::configure)
                        .configure(routes::github::configure)
                        .configure(routes::github_repos::configure)
                        .configure(routes::metrics::configure)
                        .configure(routes::notifications::configure)
                        .configure(routes::nodes::configure)
                        .configure(routes::registry::configure)
                        .route("/openapi.json", web::get().to(openapi::document))
                        .route("/ws", web::get().to(ws::connect))
                        .route("/projects/{id}/exec", web::get().to(ws::exec::connect))
                        .default_service(web::to(api_not_found)),
                )
                .default_service(web::to(spa::serve)),
        );
}

/// The dashboard's policy for browsers: never framed (an app sharing the dashboard's site
/// must not clickjack an approval), scripts and styles from its own origin only (the SPA has
/// no inline script), no sniffing, no referrer beyond the origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn security_headers() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new()
        .add(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
        .add(("X-Frame-Options", "DENY"))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "strict-origin-when-cross-origin"))
}

async fn api_not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, AppError> {
    Err(AppError::NotFound(format!(
        "no API route {} {}",
        req.method(),
        req.path()
    )))
}

fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let app_error = match &err {
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => {
            AppError::PayloadTooLarge(format!("request body is larger than {limit} bytes"))
        }
        JsonPayloadError::ContentType => {
            AppError::BadRequest("expected Content-Type: application/json".into())
        }
        JsonPayloadError::Deserialize(e) if e.is_data() => {
            AppError::validation("body", e.to_string())
        }
        JsonPayloadError::Deserialize(e) => AppError::BadRequest(format!("malformed JSON: {e}")),
        other => AppError::BadRequest(format!("cannot read the request body: {other}")),
    };
    app_error.into()
}

/// An optional JSON body: empty means `T::default()`; anything else must parse (400 for broken
/// JSON, 422 for a wrong shape), never be taken as "no body".
pub fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, AppError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            AppError::validation("body", e.to_string())
        } else {
            AppError::BadRequest(format!("malformed JSON: {e}"))
        }
    })
}

fn path_error(err: PathError, _req: &HttpRequest) -> actix_web::Error {
    AppError::BadRequest(format!("invalid id in path: {err}")).into()
}

fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    AppError::BadRequest(format!("invalid query string: {err}")).into()
}
