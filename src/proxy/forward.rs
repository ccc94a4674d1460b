//! Forwarding one request to an app container over the worker's keep-alive pool: hop-by-hop
//! headers dropped both ways, `Host` kept, `X-Forwarded-*` and `Forwarded` set (the client's
//! own values believed only from a trusted proxy), bodies streamed both ways with a size cap.

use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::Stream;

use super::pages;
use super::table::{InflightGuard, Upstream};

/// What forwarding needs from the config.
#[derive(Debug, Clone)]
pub struct Settings {
    pub max_body_bytes: u64,
    pub response_timeout: Duration,
    pub trusted_proxies: Vec<IpAddr>,
    pub max_ws_frame_bytes: usize,
}

/// Headers that describe one connection, never forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn is_hop_by_hop(name: &HeaderName, listed: &[String]) -> bool {
    HOP_BY_HOP.contains(&name.as_str()) || listed.iter().any(|l| l == name.as_str())
}

/// Header names a `Connection` header lists (they are hop-by-hop for this message).
fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .collect()
}

/// The request headers the app receives.
pub fn upstream_headers(req: &HttpRequest, host: &str, settings: &Settings) -> HeaderMap {
    let incoming = req.headers();
    let listed = connection_listed(incoming);
    let mut out = HeaderMap::with_capacity(incoming.len() + 4);
    for (name, value) in incoming.iter() {
        if is_hop_by_hop(name, &listed)
            || name.as_str().starts_with("x-forwarded-")
            || name == header::FORWARDED
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    if !out.contains_key(header::HOST)
        && let Ok(value) = HeaderValue::from_str(host)
    {
        out.insert(header::HOST, value);
    }
    let peer = req.peer_addr().map(|a| a.ip());
    let trusted = peer.is_some_and(|p| settings.trusted_proxies.contains(&p));
    let scheme = req.connection_info().scheme().to_string();
    let peer_text = peer.map_or_else(|| "unknown".to_string(), |p| p.to_string());
    let mut set = |name: &'static str, own: String| {
        let earlier = trusted
            .then(|| joined(incoming, name))
            .filter(|v| !v.is_empty());
        let value = match (name, earlier) {
            ("x-forwarded-for" | "forwarded", Some(earlier)) => format!("{earlier}, {own}"),
            (_, Some(earlier)) => earlier,
            (_, None) => own,
        };
        if let Ok(value) = HeaderValue::from_str(&value) {
            out.insert(HeaderName::from_static(name), value);
        }
    };
    set("x-forwarded-for", peer_text.clone());
    set("x-forwarded-proto", scheme.clone());
    set("x-forwarded-host", host.to_string());
    let node = match peer {
        Some(IpAddr::V6(v6)) => format!("\"[{v6}]\""),
        _ => peer_text,
    };
    set(
        "forwarded",
        format!(
            "for={node};host=\"{}\";proto={scheme}",
            host.replace('"', "")
        ),
    );
    out
}

fn joined(headers: &HeaderMap, name: &str) -> String {
    headers
        .get_all(name)
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The body the client sent, refused past the cap even when it lied about its length.
struct CappedBody {
    inner: Payload,
    seen: u64,
    limit: u64,
}

impl Stream for CappedBody {
    type Item = Result<Bytes, actix_web::error::PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.seen += chunk.len() as u64;
                if this.seen > this.limit {
                    return Poll::Ready(Some(Err(actix_web::error::PayloadError::Overflow)));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            other => other,
        }
    }
}

/// The app's response body, holding its upstream's in-flight count until it ends.
struct Counted<S> {
    inner: S,
    _guard: InflightGuard,
}

impl<S: Stream + Unpin> Stream for Counted<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

/// Forwards `req` to `upstream` and returns the app's response (or a page saying why not).
pub async fn forward(
    req: &HttpRequest,
    payload: Payload,
    upstream: &Upstream,
    host: &str,
    client: &awc::Client,
    settings: &Settings,
) -> HttpResponse {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > settings.max_body_bytes) {
        return pages::too_large(settings.max_body_bytes);
    }
    let guard = upstream.enter();
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let url = format!("http://{}{path}", upstream.authority);
    let mut request = client
        .request(req.method().clone(), url)
        .timeout(settings.response_timeout);
    *request.headers_mut() = upstream_headers(req, host, settings);
    let has_body = declared.is_some_and(|len| len > 0)
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    let sent = if has_body {
        request
            .send_stream(CappedBody {
                inner: payload,
                seen: 0,
                limit: settings.max_body_bytes,
            })
            .await
    } else {
        request.send().await
    };
    let response = match sent {
        Ok(response) => response,
        Err(awc::error::SendRequestError::Timeout) => return pages::timed_out(),
        Err(awc::error::SendRequestError::Body(_)) if has_body => {
            return pages::too_large(settings.max_body_bytes);
        }
        Err(e) => {
            tracing::debug!(upstream = %upstream.authority, error = %e, "upstream request failed");
            return pages::not_responding();
        }
    };
    let status = response.status();
    let length = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut builder = HttpResponse::build(status);
    let listed = connection_listed(response.headers());
    for (name, value) in response.headers().iter() {
        if !is_hop_by_hop(name, &listed) {
            builder.append_header((name.clone(), value.clone()));
        }
    }
    if req.method() == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || status.is_informational()
    {
        return builder.body(());
    }
    let body = Counted {
        inner: response,
        _guard: guard,
    };
    match length {
        Some(len) => builder
            .no_chunking(len)
            .body(actix_web::body::SizedStream::new(len, body)),
        None => builder.body(actix_web::body::BodyStream::new(body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn settings(trusted: &[&str]) -> Settings {
        Settings {
            max_body_bytes: 1024,
            response_timeout: Duration::from_secs(1),
            trusted_proxies: trusted.iter().map(|t| t.parse().unwrap()).collect(),
            max_ws_frame_bytes: 1024,
        }
    }

    #[test]
    fn client_forwarding_headers_are_replaced_unless_the_peer_is_trusted() {
        let req = TestRequest::get()
            .peer_addr("192.0.2.7:5000".parse().unwrap())
            .insert_header(("host", "blog.localhost:8080"))
            .insert_header(("x-forwarded-for", "6.6.6.6"))
            .insert_header(("x-forwarded-host", "evil.example"))
            .insert_header(("connection", "keep-alive, x-secret"))
            .insert_header(("x-secret", "hop"))
            .insert_header(("keep-alive", "timeout=5"))
            .insert_header(("accept", "text/html"))
            .to_http_request();
        let out = upstream_headers(&req, "blog.localhost", &settings(&[]));
        assert_eq!(out.get("x-forwarded-for").unwrap(), "192.0.2.7");
        assert_eq!(out.get("x-forwarded-host").unwrap(), "blog.localhost");
        assert_eq!(out.get("x-forwarded-proto").unwrap(), "http");
        assert_eq!(
            out.get("forwarded").unwrap(),
            "for=192.0.2.7;host=\"blog.localhost\";proto=http"
        );
        assert_eq!(
            out.get("host").unwrap(),
            "blog.localhost:8080",
            "Host is preserved"
        );
        assert_eq!(out.get("accept").unwrap(), "text/html");
        for gone in ["connection", "keep-alive", "x-secret"] {
            assert!(out.get(gone).is_none(), "{gone} is hop-by-hop");
        }

        let out = upstream_headers(&req, "blog.localhost", &settings(&["192.0.2.7"]));
        assert_eq!(out.get("x-forwarded-for").unwrap(), "6.6.6.6, 192.0.2.7");
        assert_eq!(out.get("x-forwarded-host").unwrap(), "evil.example");
    }
}
