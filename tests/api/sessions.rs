//! Logins under attack: racing refreshes and logouts never leave a revoked login usable, the
//! session cookie works only from the dashboard's own origin, and an open WebSocket ends when
//! its login does.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::*;

/// What a refresh handed out, if anything.
async fn refreshed(response: reqwest::Response) -> Option<Session> {
    (response.status() == StatusCode::OK).then_some(())?;
    Some(session_of(response).await)
}

/// Nothing of `sessions` may work any more: no access token, no refresh cookie.
async fn assert_all_dead(app: &TestApp, sessions: &[Session]) {
    for s in sessions {
        assert_eq!(
            app.get("/api/v1/auth/me", Some(&s.token)).await.status(),
            StatusCode::UNAUTHORIZED,
            "an access token of a revoked login still works"
        );
        assert_eq!(
            app.refresh_with(&s.refresh).await.status(),
            StatusCode::UNAUTHORIZED,
            "a refresh token of a revoked login still works"
        );
    }
}

#[tokio::test]
async fn racing_refreshes_and_logouts_never_revive_a_revoked_login() {
    let app = spawn_app().await;
    app.setup_admin().await;
    for round in 0..5 {
        // Eight refreshes of one token at once: one may rotate it, the others are reuse,
        // which revokes the login — including whatever the winner was given.
        let login = session_of(app.login("admin", PASSWORD).await).await;
        let storm: Vec<_> = (0..8).map(|_| app.refresh_with(&login.refresh)).collect();
        let responses = futures_util::future::join_all(storm).await;
        let mut issued = vec![login];
        for response in responses {
            issued.extend(refreshed(response).await);
        }
        assert!(issued.len() <= 2, "round {round}: several refreshes won");
        assert_all_dead(&app, &issued).await;

        // A refresh racing a logout of the same login.
        let login = session_of(app.login("admin", PASSWORD).await).await;
        let logout = app
            .client
            .post(app.url("/api/v1/auth/logout"))
            .bearer_auth(&login.token)
            .send();
        let (refresh, logout) = tokio::join!(app.refresh_with(&login.refresh), logout);
        assert_eq!(logout.unwrap().status(), StatusCode::NO_CONTENT);
        let mut issued = vec![login];
        issued.extend(refreshed(refresh).await);
        assert_all_dead(&app, &issued).await;
    }
}

fn ws_request(
    app: &TestApp,
    origin: Option<&str>,
    cookie: Option<&str>,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let url = app.base.replace("http://", "ws://") + "/api/v1/ws";
    let mut request = url.into_client_request().unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    if let Some(cookie) = cookie {
        let value = format!("shard_refresh={cookie}");
        request
            .headers_mut()
            .insert("cookie", value.parse().unwrap());
    }
    request
}

#[tokio::test]
async fn the_session_cookie_only_works_from_the_dashboard_origin() {
    let app = spawn_app().await;
    app.setup_admin().await;
    let login = session_of(app.login("admin", PASSWORD).await).await;
    let port = app.base.rsplit(':').next().unwrap().to_string();
    // An app served on a subdomain is the same site as the dashboard, not the same origin.
    let app_origin = format!("http://blog.localhost:{port}");
    let post_with = |path: &str, cookie: &str, headers: &[(&str, &str)]| {
        let mut request = app
            .client
            .post(app.url(path))
            .header(reqwest::header::COOKIE, format!("shard_refresh={cookie}"));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.send()
    };
    for headers in [
        vec![("origin", app_origin.as_str())],
        vec![("origin", "null")],
        vec![("sec-fetch-site", "same-site")],
        vec![
            ("sec-fetch-site", "cross-site"),
            ("origin", app.base.as_str()),
        ],
    ] {
        let refused = post_with("/api/v1/auth/refresh", &login.refresh, &headers)
            .await
            .unwrap();
        assert_error(refused, StatusCode::FORBIDDEN, "forbidden").await;
        let refused = post_with("/api/v1/auth/logout", &login.refresh, &headers)
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{headers:?}");
    }
    // The cookie is untouched by the refused attempts and works from the dashboard.
    let own = [
        ("origin", app.base.as_str()),
        ("sec-fetch-site", "same-origin"),
    ];
    let ok = post_with("/api/v1/auth/refresh", &login.refresh, &own)
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let current = session_of(ok).await;

    // The WebSocket: a cookie from another origin is refused at the handshake ...
    let refused = tokio_tungstenite::connect_async(ws_request(
        &app,
        Some(&app_origin),
        Some(&current.refresh),
    ))
    .await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!(
            "cross-origin cookie WebSocket was not refused: {:?}",
            other.map(|_| ())
        ),
    }
    // ... from the dashboard it authenticates by itself ...
    let (mut ws, _) =
        tokio_tungstenite::connect_async(ws_request(&app, Some(&app.base), Some(&current.refresh)))
            .await
            .unwrap();
    ws.send(Message::Text(
        json!({"op": "subscribe", "topic": "system"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let reply = next_json(&mut ws).await;
    assert_eq!(reply["type"], "subscribed", "{reply}");
    // ... and a token works from anywhere (no cookie involved).
    let (mut ws, _) =
        tokio_tungstenite::connect_async(ws_request(&app, Some("https://elsewhere.example"), None))
            .await
            .unwrap();
    ws.send(Message::Text(
        json!({"op": "auth", "token": current.token})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "authenticated");
}

async fn next_json(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("a message within 30 s")
            .expect("socket open")
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// Signing out (or any revocation) ends the sockets of that login at once.
#[tokio::test]
async fn an_open_websocket_ends_when_its_login_is_revoked() {
    let app = spawn_app().await;
    app.setup_admin().await;
    let login = session_of(app.login("admin", PASSWORD).await).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_request(&app, None, None))
        .await
        .unwrap();
    ws.send(Message::Text(
        json!({"op": "auth", "token": login.token})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "authenticated");
    let logout = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(&login.token)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(&text).unwrap();
                    if value["type"] == "error" {
                        assert_eq!(value["code"], "session_ended", "{value}");
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the socket outlived its login");
}
