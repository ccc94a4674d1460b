//! The proxy's own small pages: no app at this address, an app that is stopped, crashed, not
//! deployed yet or not answering. They name the project at most, never an internal address.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};

use super::table::RuntimeState;

pub fn unknown_host() -> HttpResponse {
    page(
        StatusCode::NOT_FOUND,
        "No app here",
        "Nothing is served at this address.",
    )
}

/// A preview behind basic auth, asked without the right credentials.
pub fn locked() -> HttpResponse {
    let mut response = page(
        StatusCode::UNAUTHORIZED,
        "Sign in to see this preview",
        "This preview is protected; its project's team has the credentials.",
    );
    response.headers_mut().insert(
        actix_web::http::header::WWW_AUTHENTICATE,
        actix_web::http::header::HeaderValue::from_static(
            "Basic realm=\"shard preview\", charset=\"UTF-8\"",
        ),
    );
    response
}

pub fn down(project: &str, state: RuntimeState) -> HttpResponse {
    let name = escape(project);
    match state {
        RuntimeState::Stopped => page(
            StatusCode::SERVICE_UNAVAILABLE,
            "App stopped",
            &format!("{name} is stopped. Start it from the dashboard."),
        ),
        RuntimeState::Crashed => page(
            StatusCode::BAD_GATEWAY,
            "App crashed",
            &format!("{name} has crashed and is not running."),
        ),
        RuntimeState::NotDeployed | RuntimeState::Running => page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Not deployed yet",
            &format!("{name} has no running deployment yet."),
        ),
    }
}

pub fn static_not_found() -> HttpResponse {
    page(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no file at this address.",
    )
}

pub fn not_responding() -> HttpResponse {
    page(
        StatusCode::BAD_GATEWAY,
        "App not responding",
        "The app did not answer. It may be starting or overloaded; try again shortly.",
    )
}

pub fn timed_out() -> HttpResponse {
    page(
        StatusCode::GATEWAY_TIMEOUT,
        "App too slow",
        "The app did not answer in time.",
    )
}

pub fn too_large(limit: u64) -> HttpResponse {
    page(
        StatusCode::PAYLOAD_TOO_LARGE,
        "Request too large",
        &format!("Request bodies may be at most {limit} bytes."),
    )
}

pub fn bad_request(why: &str) -> HttpResponse {
    page(StatusCode::BAD_REQUEST, "Bad request", &escape(why))
}

fn page(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>body{{font:16px system-ui,sans-serif;margin:15vh auto;max-width:32rem;color:#333}}\
         h1{{font-size:1.4rem}}</style></head><body><h1>{code} · {title}</h1><p>{message}</p>\
         <p><small>shard</small></p></body></html>",
        code = status.as_u16()
    );
    HttpResponse::build(status)
        .insert_header((CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((CACHE_CONTROL, "no-store"))
        .body(body)
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
