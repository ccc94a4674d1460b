//! The dashboard: `web/dist` embedded at build time. `index.html` is never cached; hashed
//! files under `assets/` are immutable; unknown paths without an extension get `index.html`
//! (client-side routes) and unknown asset-like paths are a 404.

use actix_web::ResponseError;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse};
use rust_embed::RustEmbed;

use crate::error::AppError;

#[derive(RustEmbed)]
#[folder = "web/dist"]
struct Dist;

pub async fn serve(req: HttpRequest) -> HttpResponse {
    if req.method() != actix_web::http::Method::GET && req.method() != actix_web::http::Method::HEAD
    {
        return HttpResponse::MethodNotAllowed().finish();
    }
    let path = req.path().trim_start_matches('/');
    if path == "api" || path.starts_with("api/") {
        let error = AppError::NotFound(format!("no API route {} {}", req.method(), req.path()));
        return error.error_response();
    }
    if !path.is_empty()
        && let Some(file) = Dist::get(path)
    {
        let cache = if path.starts_with("assets/") {
            "public, max-age=31536000, immutable"
        } else {
            "public, max-age=3600"
        };
        return HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, file.metadata.mimetype()))
            .insert_header((CACHE_CONTROL, cache))
            .body(file.data.into_owned());
    }
    let last = path.rsplit('/').next().unwrap_or("");
    if last.contains('.') {
        return HttpResponse::NotFound()
            .insert_header((CACHE_CONTROL, "no-cache"))
            .body("not found");
    }
    match Dist::get("index.html") {
        Some(index) => HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, "text/html; charset=utf-8"))
            .insert_header((CACHE_CONTROL, "no-cache"))
            .body(index.data.into_owned()),
        None => HttpResponse::NotFound().body("dashboard not built"),
    }
}
