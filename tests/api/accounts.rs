//! Account management the dashboard offers: changing one's password (other logins end), admins
//! changing roles and removing users (never the last admin, never someone who owns projects),
//! the projects list's newest-deployment summary, and the embedded assets' ETags.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn password_change_keeps_this_login_and_ends_the_others() {
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    let other = session_of(app.login("admin", PASSWORD).await).await;

    let wrong = app
        .post(
            "/api/v1/auth/password",
            Some(&admin.token),
            json!({"current_password": "not-it-at-all", "new_password": "a-new-password-1"}),
        )
        .await;
    assert_invalid(wrong, "current_password").await;
    let weak = app
        .post(
            "/api/v1/auth/password",
            Some(&admin.token),
            json!({"current_password": PASSWORD, "new_password": "short"}),
        )
        .await;
    assert_invalid(weak, "new_password").await;

    let changed = app
        .post(
            "/api/v1/auth/password",
            Some(&admin.token),
            json!({"current_password": PASSWORD, "new_password": "a-new-password-1"}),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&admin.token))
            .await
            .status(),
        StatusCode::OK
    );
    // The other login is over, within the login cache's few seconds.
    let mut ended = false;
    for _ in 0..40 {
        if app
            .get("/api/v1/auth/me", Some(&other.token))
            .await
            .status()
            == StatusCode::UNAUTHORIZED
        {
            ended = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ended, "the other login still works");
    assert_eq!(
        app.refresh_with(&other.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("admin", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("admin", "a-new-password-1").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn admins_change_roles_and_remove_users_but_never_the_last_admin() {
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    let me: serde_json::Value = app
        .get("/api/v1/auth/me", Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    let admin_id = me["id"].as_str().unwrap().to_string();
    let bob = app.member(&admin, "bob").await;
    let bob_id = app
        .get("/api/v1/auth/me", Some(&bob.token))
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let patch = |id: &str, body: serde_json::Value| {
        let path = format!("/api/v1/users/{id}");
        let app = &app;
        let token = admin.token.clone();
        async move {
            app.send(reqwest::Method::PATCH, &path, Some(&token), Some(body))
                .await
        }
    };
    let delete = |id: &str, token: &str| {
        let path = format!("/api/v1/users/{id}");
        let token = token.to_string();
        let app = &app;
        async move {
            app.send(reqwest::Method::DELETE, &path, Some(&token), None)
                .await
        }
    };

    // A member may do neither.
    let forbidden = app
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/users/{admin_id}"),
            Some(&bob.token),
            Some(json!({"role": "member"})),
        )
        .await;
    assert_error(forbidden, StatusCode::FORBIDDEN, "forbidden").await;

    assert_invalid(patch(&bob_id, json!({"role": "owner"})).await, "role").await;
    assert_error(
        patch(&admin_id, json!({"role": "member"})).await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    assert_error(
        patch(&uuid::Uuid::nil().to_string(), json!({"role": "admin"})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    let promoted = patch(&bob_id, json!({"role": "admin"})).await;
    assert_eq!(promoted.status(), StatusCode::OK);
    assert_eq!(
        promoted.json::<serde_json::Value>().await.unwrap()["role"],
        "admin"
    );

    // Removing: not yourself, not someone who owns projects.
    assert_error(
        delete(&admin_id, &admin.token).await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    let bob = session_of(app.login("bob", PASSWORD).await).await;
    let project = app.create_project(&bob, "bobs-app").await;
    let refused = delete(&bob_id, &admin.token).await;
    let body = assert_error(refused, StatusCode::CONFLICT, "conflict").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("owns 1 project"),
        "{body}"
    );
    let gone = app
        .delete_project(&bob, project["id"].as_str().unwrap())
        .await;
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);

    assert_eq!(
        delete(&bob_id, &admin.token).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.login("bob", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let users: Vec<serde_json::Value> = app
        .get("/api/v1/users", Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(users.len(), 1);
    assert_error(
        delete(&bob_id, &admin.token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn dashboard_assets_carry_etags_and_answer_304() {
    let app = spawn_app().await;
    let index = app.get("/", None).await;
    assert_eq!(index.status(), StatusCode::OK);
    let etag = index.headers()["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with('"') && etag.len() > 10, "{etag}");
    let html = index.text().await.unwrap();
    let again = app
        .client
        .get(app.url("/projects/some-client-route"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    let asset = html
        .split('"')
        .find(|s| s.starts_with("/assets/") && s.ends_with(".js"))
        .expect("index.html names a script under /assets/");
    let first = app.get(asset, None).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(
        first.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let tag = first.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(tag, etag);
    let cached = app
        .client
        .get(app.url(asset))
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    assert!(cached.bytes().await.unwrap().is_empty());
    let stale = app
        .client
        .get(app.url(asset))
        .header("if-none-match", "\"old\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::OK);
}
