//! The dashboard: `web/dist` embedded at build time. `index.html` is never cached; hashed
//! files under `assets/` are immutable; unknown paths without an extension get `index.html`
//! (client-side routes) and unknown asset-like paths are a 404.

use actix_web::ResponseError;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use actix_web::{HttpRequest, HttpResponse};
use rust_embed::RustEmbed;

use crate::http::error::AppError;

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
        return respond(&req, file, None, cache);
    }
    let last = path.rsplit('/').next().unwrap_or("");
    if last.contains('.') {
        return HttpResponse::NotFound()
            .insert_header((CACHE_CONTROL, "no-cache"))
            .body("not found");
    }
    match Dist::get("index.html") {
        Some(index) => respond(&req, index, Some("text/html; charset=utf-8"), "no-cache"),
        None => HttpResponse::NotFound().body("dashboard not built"),
    }
}

/// The file, or 304 when the client's cached copy (by ETag) is this one.
fn respond(
    req: &HttpRequest,
    file: rust_embed::EmbeddedFile,
    content_type: Option<&'static str>,
    cache: &'static str,
) -> HttpResponse {
    let hash = file.metadata.sha256_hash();
    let etag = format!("\"{}\"", hex::encode(&hash[..16]));
    let cached = req
        .headers()
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if cached {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((ETAG, etag))
        .insert_header((CACHE_CONTROL, cache));
    if cached {
        return response.finish();
    }
    let content_type =
        content_type.map_or_else(|| file.metadata.mimetype().to_string(), str::to_string);
    response
        .insert_header((CONTENT_TYPE, content_type))
        .body(file.data.into_owned())
}
