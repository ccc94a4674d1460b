//! WebSocket passthrough: the app's handshake is made first (so its refusal reaches the
//! client as is), then the client's is accepted and messages are relayed both ways, frame by
//! frame, until either side closes. The upstream stays counted as in flight meanwhile.

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use awc::ws::{Frame, Message};
use bytestring::ByteString;
use futures_util::{SinkExt, StreamExt};

use super::forward::{Settings, upstream_headers};
use super::pages;
use super::table::{InflightGuard, Upstream};

/// True for a request asking to upgrade to WebSocket.
pub fn is_upgrade(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

pub async fn forward(
    req: &HttpRequest,
    payload: Payload,
    upstream: &Upstream,
    host: &str,
    client: &awc::Client,
    settings: &Settings,
) -> HttpResponse {
    let guard = upstream.enter();
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let authority = upstream.endpoint(upstream.pick().0);
    let mut request = client
        .ws(format!("ws://{authority}{path}"))
        .max_frame_size(settings.max_ws_frame_bytes);
    for (name, value) in upstream_headers(req, host, settings).iter() {
        // The handshake's own headers are made anew by the client side; compression
        // extensions are not relayed (frames are relayed as they are decoded).
        if name.as_str().starts_with("sec-websocket-") && name != header::SEC_WEBSOCKET_PROTOCOL {
            continue;
        }
        request = request.set_header(name.clone(), value.clone());
    }
    let (response, app) = match request.connect().await {
        Ok(connected) => connected,
        Err(awc::error::WsClientError::InvalidResponseStatus(status)) => {
            return HttpResponse::build(status).finish();
        }
        Err(e) => {
            tracing::debug!(upstream = %authority, error = %e, "websocket upstream failed");
            return pages::not_responding();
        }
    };
    let protocol: Option<HeaderValue> = response
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .cloned();
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
    A: futures_util::Sink<Message>
        + futures_util::Stream<Item = Result<Frame, awc::error::WsProtocolError>>
        + Unpin,
{
    loop {
        tokio::select! {
            message = from_client.recv() => {
                let out = match message {
                    Some(Ok(actix_ws::Message::Text(text))) => Message::Text(text),
                    Some(Ok(actix_ws::Message::Binary(data))) => Message::Binary(data),
                    Some(Ok(actix_ws::Message::Ping(data))) => Message::Ping(data),
                    Some(Ok(actix_ws::Message::Pong(data))) => Message::Pong(data),
                    Some(Ok(actix_ws::Message::Continuation(item))) => Message::Continuation(item),
                    Some(Ok(actix_ws::Message::Nop)) => continue,
                    Some(Ok(actix_ws::Message::Close(reason))) => {
                        let _ = app.send(Message::Close(reason)).await;
                        break;
                    }
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
