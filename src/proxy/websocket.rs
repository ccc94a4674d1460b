//! WebSocket passthrough: the app's handshake is made first, over the worker's own HTTP client
//! (hyper; an upgraded connection leaves its pool), so its refusal reaches the client as is.
//! Then the client's handshake is accepted and frames are relayed both ways — decoded and
//! encoded by actix's WebSocket codec on both sides, masked towards the app — until either
//! side closes. The upstream stays counted as in flight meanwhile.

use actix_http::ws::{Codec, Frame, Message, ProtocolError};
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use base64::Engine as _;
use bytestring::ByteString;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use hyper_util::rt::TokioIo;
use tokio_util::codec::Framed;

use super::forward::{HttpClient, Settings, each_upstream_header, empty_body};
use super::pages;
use super::table::{InflightGuard, Upstream};

/// True for a request asking to upgrade to WebSocket.
pub fn is_upgrade(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The app's side of the handshake: the request the client made, with a key of our own
/// (compression extensions are not relayed: frames are relayed as they are decoded).
fn handshake(
    req: &HttpRequest,
    authority: &str,
    host: &str,
    key: &str,
    settings: &Settings,
) -> Option<http::Request<super::forward::RequestBody>> {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut request = http::Request::new(empty_body());
    *request.uri_mut() = format!("http://{authority}{path}").parse().ok()?;
    let headers = request.headers_mut();
    each_upstream_header(req, host, settings, |name, value| {
        if name.starts_with("sec-websocket-") && name != "sec-websocket-protocol" {
            return;
        }
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    });
    headers.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("upgrade"),
    );
    headers.insert(
        http::header::UPGRADE,
        http::HeaderValue::from_static("websocket"),
    );
    headers.insert(
        http::header::SEC_WEBSOCKET_VERSION,
        http::HeaderValue::from_static("13"),
    );
    headers.insert(
        http::header::SEC_WEBSOCKET_KEY,
        http::HeaderValue::from_str(key).ok()?,
    );
    Some(request)
}

pub async fn forward(
    req: &HttpRequest,
    payload: Payload,
    upstream: &Upstream,
    host: &str,
    client: &HttpClient,
    settings: &Settings,
) -> HttpResponse {
    let guard = upstream.enter();
    let authority = upstream.endpoint(upstream.pick().0);
    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
    let Some(request) = handshake(req, authority, host, &key, settings) else {
        return pages::bad_request("unsupported request target");
    };
    let response =
        match tokio::time::timeout(settings.response_timeout, client.request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                tracing::debug!(upstream = %authority, error = %e, "websocket upstream failed");
                return pages::not_responding();
            }
            Err(_) => return pages::timed_out(),
        };
    if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        return HttpResponse::build(
            StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
        )
        .finish();
    }
    let accept = actix_http::ws::hash_key(key.as_bytes());
    if response
        .headers()
        .get(http::header::SEC_WEBSOCKET_ACCEPT)
        .is_none_or(|v| v.as_bytes() != accept.as_slice())
    {
        tracing::debug!(upstream = %authority, "websocket upstream answered a wrong accept key");
        return pages::not_responding();
    }
    let protocol = response
        .headers()
        .get(http::header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok());
    let app = match hyper::upgrade::on(response).await {
        Ok(upgraded) => Framed::new(
            TokioIo::new(upgraded),
            Codec::new()
                .client_mode()
                .max_size(settings.max_ws_frame_bytes),
        ),
        Err(e) => {
            tracing::debug!(upstream = %authority, error = %e, "websocket upstream did not upgrade");
            return pages::not_responding();
        }
    };
    let mut payload = payload;
    let body =
        match <actix_web::web::Payload as actix_web::FromRequest>::from_request(req, &mut payload)
            .await
        {
            Ok(body) => body,
            Err(e) => return pages::bad_request(&e.to_string()),
        };
    let (mut accepted, session, stream) = match actix_ws::handle(req, body) {
        Ok(parts) => parts,
        Err(e) => return pages::bad_request(&e.to_string()),
    };
    if let Some(protocol) = protocol {
        accepted
            .headers_mut()
            .insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    let stream = stream.max_frame_size(settings.max_ws_frame_bytes);
    actix_web::rt::spawn(relay(session, stream, app, guard));
    accepted
}

async fn relay<A>(
    mut client: actix_ws::Session,
    mut from_client: actix_ws::MessageStream,
    mut app: A,
    _guard: InflightGuard,
) where
    A: Sink<Message> + Stream<Item = Result<Frame, ProtocolError>> + Unpin,
{
    loop {
        tokio::select! {
            message = from_client.recv() => {
                let out = match message {
                    Some(Ok(Message::Nop)) => continue,
                    Some(Ok(Message::Close(reason))) => {
                        let _ = app.send(Message::Close(reason)).await;
                        break;
                    }
                    Some(Ok(message)) => message,
                    Some(Err(_)) | None => {
                        let _ = app.send(Message::Close(None)).await;
                        break;
                    }
                };
                if app.send(out).await.is_err() {
                    let _ = client.close(None).await;
                    break;
                }
            }
            frame = app.next() => {
                let sent = match frame {
                    Some(Ok(Frame::Text(data))) => match ByteString::try_from(data) {
                        Ok(text) => client.text(text).await,
                        Err(_) => break,
                    },
                    Some(Ok(Frame::Binary(data))) => client.binary(data).await,
                    Some(Ok(Frame::Ping(data))) => client.ping(&data).await,
                    Some(Ok(Frame::Pong(data))) => client.pong(&data).await,
                    Some(Ok(Frame::Continuation(item))) => client.continuation(item).await,
                    Some(Ok(Frame::Close(reason))) => {
                        let _ = client.close(reason).await;
                        break;
                    }
                    Some(Err(_)) | None => {
                        let _ = client.close(None).await;
                        break;
                    }
                };
                if sent.is_err() {
                    let _ = app.send(Message::Close(None)).await;
                    break;
                }
            }
        }
    }
}
