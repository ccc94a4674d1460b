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

fn is_hop_by_hop(name: &str, listed: &[String]) -> bool {
    HOP_BY_HOP.contains(&name) || listed.iter().any(|l| l == name)
}

/// Header names the `Connection` header values list (hop-by-hop for this message); the
/// values come from actix's request headers or hyper's response headers alike.
fn connection_listed<'a>(values: impl Iterator<Item = &'a [u8]>) -> Vec<String> {
    values
        .filter_map(|v| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .collect()
}

/// The request headers the app receives, as an actix header map (WebSocket handshakes).
#[cfg(test)]
pub fn upstream_headers(req: &HttpRequest, host: &str, settings: &Settings) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(req.headers().len() + 4);
    each_upstream_header(req, host, settings, |name, value| {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            out.append(name, value);
        }
    });
    out
}

/// Hands every request header the app receives to `emit`, in one pass: the client's headers
/// minus hop-by-hop and forwarding ones, `Host` kept (or set), then `X-Forwarded-For/-Proto/
/// -Host` and `Forwarded` (extended, not replaced, only when the peer is a trusted proxy).
pub fn each_upstream_header(
    req: &HttpRequest,
    host: &str,
    settings: &Settings,
    mut emit: impl FnMut(&str, &[u8]),
) {
    let incoming = req.headers();
    let listed = connection_listed(
        incoming
            .get_all(header::CONNECTION)
            .map(HeaderValue::as_bytes),
    );
    for (name, value) in incoming.iter() {
        if is_hop_by_hop(name.as_str(), &listed)
            || name.as_str().starts_with("x-forwarded-")
            || name == header::FORWARDED
        {
            continue;
        }
        emit(name.as_str(), value.as_bytes());
    }
    if !incoming.contains_key(header::HOST) {
        emit("host", host.as_bytes());
    }
    let peer = req.peer_addr().map(|a| a.ip());
    let trusted = peer.is_some_and(|p| settings.trusted_proxies.contains(&p));
    // From the connection itself: `connection_info` would believe a client's own headers.
    let scheme = if req.app_config().secure() {
        "https"
    } else {
        "http"
    };
    let peer_text = peer.map_or_else(|| "unknown".to_string(), |p| p.to_string());
    let mut set = |name: &'static str, own: &str| {
        let earlier = trusted
            .then(|| joined(incoming, name))
            .filter(|v| !v.is_empty());
        match (name, earlier) {
            ("x-forwarded-for" | "forwarded", Some(earlier)) => {
                emit(name, format!("{earlier}, {own}").as_bytes())
            }
            (_, Some(earlier)) => emit(name, earlier.as_bytes()),
            (_, None) => emit(name, own.as_bytes()),
        }
    };
    set("x-forwarded-for", &peer_text);
    set("x-forwarded-proto", scheme);
    set("x-forwarded-host", host);
    let node = match peer {
        Some(IpAddr::V6(v6)) => format!("\"[{v6}]\""),
        _ => peer_text,
    };
    let host = host.replace('"', "");
    set(
        "forwarded",
        &format!("for={node};host=\"{host}\";proto={scheme}"),
    );
}

fn joined(headers: &HeaderMap, name: &str) -> String {
    headers
        .get_all(name)
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The upstream HTTP client one worker keeps: a keep-alive pool per app address.
pub type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    RequestBody,
>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A request body on its way to the app.
pub type RequestBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// Idle keep-alive connections one worker keeps per app container.
const MAX_IDLE_PER_APP: usize = 512;
/// How many replicas one request may try when connections are refused.
const MAX_ATTEMPTS: usize = 3;
/// Largest read buffer of one upstream connection.
const MAX_READ_BUFFER: usize = 64 * 1024;

pub fn http_client(connect_timeout: Duration, idle: Duration) -> HttpClient {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    super::table::load::set_idle(idle);
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        // Without a timer hyper-util never evicts an idle connection: a crowd's connections
        // (and their buffers) stayed until the next request to that app.
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .pool_idle_timeout(idle)
        .pool_max_idle_per_host(MAX_IDLE_PER_APP)
        // hyper's read buffer otherwise grows to ~400 KiB per connection on large bodies
        // and stays with the pooled connection: 256 connections held 150 MiB.
        .http1_max_buf_size(MAX_READ_BUFFER)
        .build(connector)
}

#[derive(Debug)]
struct TooLarge;

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body over the limit")
    }
}

impl std::error::Error for TooLarge {}

/// Streams the client's body (actix's payload is bound to this worker thread) to the app
/// through a small channel, refusing it past the cap even when it lied about its length.
fn request_body(
    mut payload: Payload,
    limit: u64,
    overflow: std::rc::Rc<std::cell::Cell<bool>>,
) -> RequestBody {
    use futures_util::StreamExt;
    use http_body_util::BodyExt;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<hyper::body::Frame<Bytes>, BoxError>>(4);
    actix_web::rt::spawn(async move {
        let mut seen = 0u64;
        while let Some(chunk) = payload.next().await {
            let item = match chunk {
                Ok(chunk) => {
                    seen += chunk.len() as u64;
                    if seen > limit {
                        overflow.set(true);
                        Err(Box::new(TooLarge) as BoxError)
                    } else {
                        Ok(hyper::body::Frame::data(chunk))
                    }
                }
                Err(e) => Err(Box::new(std::io::Error::other(e.to_string())) as BoxError),
            };
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    http_body_util::StreamBody::new(stream).boxed_unsync()
}

pub(super) fn empty_body() -> RequestBody {
    use http_body_util::BodyExt;
    http_body_util::Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
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
    client: &HttpClient,
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
    let has_body = declared.is_some_and(|len| len > 0)
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    let overflow = std::rc::Rc::new(std::cell::Cell::new(false));
    let mut body = Some(if has_body {
        request_body(payload, settings.max_body_bytes, overflow.clone())
    } else {
        empty_body()
    });
    let method = match http::Method::from_bytes(req.method().as_str().as_bytes()) {
        Ok(method) => method,
        Err(_) => return pages::bad_request("unsupported method"),
    };
    // A replica that refuses the connection never saw the request, so a request without a
    // body moves on to the next replica (a body already handed over cannot be sent twice);
    // an idempotent one also does when the connection broke before any answer came (a
    // replica killed mid-request), as nginx's proxy_next_upstream does by default.
    let idempotent = matches!(
        method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
    );
    let (first, endpoints) = upstream.pick();
    let attempts = if has_body {
        1
    } else {
        endpoints.min(MAX_ATTEMPTS)
    };
    let mut attempt = 0;
    let response = loop {
        let authority = upstream.endpoint(first + attempt);
        let mut request = http::Request::new(body.take().unwrap_or_else(empty_body));
        *request.method_mut() = method.clone();
        *request.uri_mut() = match format!("http://{authority}{path}").parse() {
            Ok(uri) => uri,
            Err(_) => return pages::bad_request("unsupported request target"),
        };
        let headers = request.headers_mut();
        headers.reserve(req.headers().len() + 4);
        each_upstream_header(req, host, settings, |name, value| {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_bytes(value),
            ) {
                headers.append(name, value);
            }
        });
        match tokio::time::timeout(settings.response_timeout, client.request(request)).await {
            Ok(Ok(response)) => break response,
            Err(_) => return pages::timed_out(),
            Ok(Err(_)) if overflow.get() => return pages::too_large(settings.max_body_bytes),
            Ok(Err(e)) if (e.is_connect() || idempotent) && attempt + 1 < attempts => {
                tracing::debug!(upstream = %authority, error = %e, "replica failed; trying the next");
                if e.is_connect() {
                    upstream.mark_down(first + attempt);
                }
                attempt += 1;
            }
            Ok(Err(e)) => {
                tracing::debug!(upstream = %authority, error = %e, "upstream request failed");
                return pages::not_responding();
            }
        }
    };
    let status =
        StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let length = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut builder = HttpResponse::build(status);
    let listed = connection_listed(
        response
            .headers()
            .get_all(http::header::CONNECTION)
            .iter()
            .map(http::HeaderValue::as_bytes),
    );
    for (name, value) in response.headers() {
        let lower = name.as_str();
        if is_hop_by_hop(lower, &listed) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(lower.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            builder.append_header((name, value));
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
        inner: http_body_util::BodyExt::into_data_stream(response.into_body()),
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
