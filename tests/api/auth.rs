use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn setup_token_flow() {
    let app = spawn_app().await;
    let token_file = app.dir.path().join("setup-token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "setup token must be private");
    }
    // Nobody can sign in before setup: there is no default account.
    assert_error(
        app.login("admin", "admin").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;

    // No token at all.
    let missing = app
        .post(
            "/api/v1/auth/setup",
            None,
            json!({"username": "admin", "password": PASSWORD}),
        )
        .await;
    assert_error(
        missing,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let empty = app
        .post(
            "/api/v1/auth/setup",
            None,
            json!({"token": "", "username": "admin", "password": PASSWORD}),
        )
        .await;
    assert_error(empty, StatusCode::FORBIDDEN, "forbidden").await;
    // Wrong token.
    let wrong = app
        .post(
            "/api/v1/auth/setup",
            None,
            json!({"token": "nope", "username": "admin", "password": PASSWORD}),
        )
        .await;
    assert_error(wrong, StatusCode::FORBIDDEN, "forbidden").await;
    // Right token, bad password: refused, token still valid.
    let weak = app
        .post(
            "/api/v1/auth/setup",
            None,
            json!({"token": app.setup_token(), "username": "admin", "password": "short"}),
        )
        .await;
    assert_invalid(weak, "password").await;

    let token = app.setup_token();
    let admin = app.setup_admin().await;
    assert!(!token_file.exists(), "setup token file removed once used");
    let me: serde_json::Value = app
        .get("/api/v1/auth/me", Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "admin");

    // Reuse of the used token.
    let reuse = app
        .post(
            "/api/v1/auth/setup",
            None,
            json!({"token": token, "username": "evil", "password": PASSWORD}),
        )
        .await;
    assert_error(reuse, StatusCode::CONFLICT, "conflict").await;
    assert_eq!(
        app.login("evil", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn login_refresh_rotation_reuse_detection_and_logout() {
    let app = spawn_app().await;
    app.setup_admin().await;
    assert_error(
        app.login("admin", "wrong password").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    assert_error(
        app.login("ghost", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;

    let response = app.login("Admin", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let set_cookie = response
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    let first = session_of(response).await;
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&first.token))
            .await
            .status(),
        StatusCode::OK
    );

    // Rotation: the refresh cookie is replaced on every use.
    let rotated = app.refresh_with(&first.refresh).await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let second = session_of(rotated).await;
    assert_ne!(second.refresh, first.refresh);
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&second.token))
            .await
            .status(),
        StatusCode::OK
    );

    // Reusing the old token revokes the whole family: the new refresh token and the
    // access tokens of this login stop working.
    assert_error(
        app.refresh_with(&first.refresh).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    assert_eq!(
        app.refresh_with(&second.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&second.token))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );

    // Logout revokes a fresh login.
    let third = session_of(app.login("admin", PASSWORD).await).await;
    let logout = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .header(
            reqwest::header::COOKIE,
            format!("shard_refresh={}", third.refresh),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.refresh_with(&third.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&third.token))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );

    // Garbage tokens.
    assert_eq!(
        app.refresh_with("garbage").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/v1/auth/me", Some("garbage")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/v1/auth/me", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn login_is_rate_limited_per_username_and_per_ip() {
    let app = spawn_app_with(|c| {
        c.auth.login_failures_per_username = 3;
        c.auth.login_attempts_per_ip = 8;
    })
    .await;
    app.setup_admin().await;
    for _ in 0..3 {
        assert_eq!(
            app.login("admin", "wrong password").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // Even the right password is refused while the username is locked.
    let limited = app.login("admin", PASSWORD).await;
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry_after));
    assert_error(limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;

    // Per IP: 8 attempts in the window in all, whatever the username (4 made above).
    for n in 0..4 {
        assert_eq!(
            app.login(&format!("user{n}"), "x-wrong-password")
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let limited = app.login("someone-else", PASSWORD).await;
    assert!(limited.headers().contains_key("retry-after"));
    assert_error(limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

/// Behind a trusted reverse proxy each client has its own per-IP budget; from anyone else a
/// forged `X-Forwarded-For` changes nothing.
#[tokio::test]
async fn forwarded_clients_are_limited_apart_only_behind_a_trusted_proxy() {
    async fn attempts_until_limited(app: &TestApp, forwarded_for: &str) -> usize {
        for n in 1..=10 {
            let response = app
                .client
                .post(app.url("/api/v1/auth/login"))
                .header("x-forwarded-for", forwarded_for)
                .json(&json!({"username": format!("nobody{n}"), "password": "x-wrong-password"}))
                .send()
                .await
                .unwrap();
            if response.status() == StatusCode::TOO_MANY_REQUESTS {
                return n - 1;
            }
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        }
        10
    }
    let limits = |c: &mut shard::config::Config| c.auth.login_attempts_per_ip = 3;

    let behind_proxy = spawn_app_with(|c| {
        limits(c);
        c.http.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    assert_eq!(
        attempts_until_limited(&behind_proxy, "198.51.100.1").await,
        3
    );
    assert_eq!(
        attempts_until_limited(&behind_proxy, "198.51.100.2").await,
        3,
        "another client behind the proxy has its own budget"
    );

    let direct = spawn_app_with(limits).await;
    assert_eq!(attempts_until_limited(&direct, "198.51.100.1").await, 3);
    assert_eq!(
        attempts_until_limited(&direct, "198.51.100.2").await,
        0,
        "a forged header from an untrusted peer does not buy a new budget"
    );
}

#[tokio::test]
async fn api_tokens_authenticate_and_can_be_revoked() {
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    let created = app
        .post("/api/v1/tokens", Some(&admin.token), json!({"name": "ci"}))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: serde_json::Value = created.json().await.unwrap();
    let token = created["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("shard_"));
    assert_eq!(
        app.get("/api/v1/projects", Some(&token)).await.status(),
        StatusCode::OK
    );
    let listed: serde_json::Value = app
        .get("/api/v1/tokens", Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        listed[0].get("token").is_none(),
        "the token is shown only once"
    );
    let id = created["id"].as_str().unwrap();
    let deleted = app
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/v1/projects", Some(&token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_invalid(
        app.post("/api/v1/tokens", Some(&admin.token), json!({"name": ""}))
            .await,
        "name",
    )
    .await;
}

/// A stranger failing logins for `admin` locks out only their own address: the real admin,
/// from theirs, still signs in.
#[tokio::test]
async fn a_stranger_cannot_lock_the_admin_out() {
    let app = spawn_app_with(|c| {
        c.auth.login_failures_per_username = 3;
        c.http.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    app.setup_admin().await;
    let login_from = |ip: &'static str, password: &'static str| {
        app.client
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", ip)
            .json(&json!({"username": "admin", "password": password}))
            .send()
    };
    for _ in 0..5 {
        let _ = login_from("203.0.113.9", "guess-guess-guess")
            .await
            .unwrap();
    }
    let stranger = login_from("203.0.113.9", PASSWORD).await.unwrap();
    assert_eq!(stranger.status(), StatusCode::TOO_MANY_REQUESTS);
    let admin = login_from("198.51.100.7", PASSWORD).await.unwrap();
    assert_eq!(
        admin.status(),
        StatusCode::OK,
        "the real admin was locked out"
    );
}
