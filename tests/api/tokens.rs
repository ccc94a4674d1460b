//! API tokens: scopes, project limits, expiry, last use, minting, revocation; and the audit
//! log's reach (every authenticated state-changing route leaves an entry, env changes record
//! keys and never values, owners read their teams' entries only).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::teams::{create_in, fixture, newest_audit};

async fn mint(app: &TestApp, by: &str, body: Value) -> reqwest::Response {
    app.post("/api/v1/tokens", Some(by), body).await
}

async fn minted(app: &TestApp, by: &str, body: Value) -> (String, String) {
    let response = mint(app, by, body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let v: Value = response.json().await.unwrap();
    (
        v["id"].as_str().unwrap().to_string(),
        v["token"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn tokens_are_scoped_limited_expiring_and_never_mint_wider() {
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    let alice = app.member(&admin, "alice").await;
    let a = app.create_project(&alice, "alpha").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = app.create_project(&alice, "beta").await["id"]
        .as_str()
        .unwrap()
        .to_string();

    // A read token reads but changes nothing, not even its own account.
    let (read_id, read) =
        minted(&app, &alice.token, json!({"name": "dash", "scope": "read"})).await;
    assert_eq!(
        app.get(&format!("/api/v1/projects/{a}"), Some(&read))
            .await
            .status(),
        StatusCode::OK
    );
    let deploy = app
        .post(
            &format!("/api/v1/projects/{a}/deployments"),
            Some(&read),
            json!({}),
        )
        .await;
    let body = assert_error(deploy, StatusCode::FORBIDDEN, "forbidden").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'read'"),
        "{body}"
    );
    let channel = app
        .post(
            "/api/v1/notifications/channels",
            Some(&read),
            json!({"kind": "webhook", "target": "https://example.com/h"}),
        )
        .await;
    assert_error(channel, StatusCode::FORBIDDEN, "forbidden").await;

    // A deploy token limited to alpha deploys alpha, sees nothing of beta, changes no setting.
    let (_, ci) = minted(
        &app,
        &alice.token,
        json!({"name": "ci", "scope": "deploy", "project_ids": [a]}),
    )
    .await;
    let queued = app
        .post(
            &format!("/api/v1/projects/{a}/deployments"),
            Some(&ci),
            json!({}),
        )
        .await;
    assert_eq!(queued.status(), StatusCode::ACCEPTED);
    let other = app
        .post(
            &format!("/api/v1/projects/{b}/deployments"),
            Some(&ci),
            json!({}),
        )
        .await;
    assert_error(other, StatusCode::NOT_FOUND, "not_found").await;
    let list: Value = app
        .get("/api/v1/projects", Some(&ci))
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [a.as_str()]);
    let patch = app
        .send(
            Method::PATCH,
            &format!("/api/v1/projects/{a}"),
            Some(&ci),
            Some(json!({"branch": "dev"})),
        )
        .await;
    assert_error(patch, StatusCode::FORBIDDEN, "forbidden").await;

    // Minting: never wider in scope or reach; narrower is fine.
    assert_error(
        mint(
            &app,
            &ci,
            json!({"name": "x", "scope": "admin", "project_ids": [a]}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_error(
        mint(&app, &ci, json!({"name": "x", "scope": "deploy"})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_error(
        mint(
            &app,
            &ci,
            json!({"name": "x", "scope": "read", "project_ids": [b]}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let (_, child) = minted(
        &app,
        &ci,
        json!({"name": "child", "scope": "read", "project_ids": [a]}),
    )
    .await;
    assert_eq!(
        app.get(&format!("/api/v1/projects/{a}"), Some(&child))
            .await
            .status(),
        StatusCode::OK
    );
    assert_error(
        mint(&app, &read, json!({"name": "x", "scope": "deploy"})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    // Bad input is named.
    assert_invalid(
        mint(&app, &alice.token, json!({"name": "x", "scope": "root"})).await,
        "scope",
    )
    .await;
    assert_invalid(
        mint(
            &app,
            &alice.token,
            json!({"name": "x", "expires_in_days": 0}),
        )
        .await,
        "expires_in_days",
    )
    .await;
    assert_invalid(
        mint(&app, &alice.token, json!({"name": "x", "project_ids": []})).await,
        "project_ids",
    )
    .await;
    assert_invalid(mint(&app, &alice.token, json!({"name": ""})).await, "name").await;

    // Listing shows scope, reach, expiry and last use, never the secret.
    let (_, expiring) = minted(
        &app,
        &alice.token,
        json!({"name": "week", "scope": "read", "expires_in_days": 7}),
    )
    .await;
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&expiring)).await.status(),
        StatusCode::OK
    );
    let list: Value = app
        .get("/api/v1/tokens", Some(&alice.token))
        .await
        .json()
        .await
        .unwrap();
    let text = list.to_string();
    assert!(
        !text.contains(&read) && !text.contains(&ci),
        "a secret listed"
    );
    let dash = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "dash")
        .unwrap();
    assert_eq!(dash["scope"], "read");
    assert!(dash["last_used_at"].is_string(), "{dash}");
    let ci_row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ci")
        .unwrap();
    assert_eq!(ci_row["project_ids"], json!([a]));
    let week = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "week")
        .unwrap();
    assert!(week["expires_at"].is_string());

    // Expired: refused like a wrong token.
    expire_tokens(&app, "week").await;
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&expiring)).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Revocation: another member cannot, the owner and admins can; it stops at once.
    let bob = app.member(&admin, "bob").await;
    let by_bob = app
        .send(
            Method::DELETE,
            &format!("/api/v1/tokens/{read_id}"),
            Some(&bob.token),
            None,
        )
        .await;
    assert_error(by_bob, StatusCode::NOT_FOUND, "not_found").await;
    let all: Value = app
        .get("/api/v1/tokens?all=true", Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == read_id.as_str())
    );
    assert_error(
        app.get("/api/v1/tokens?all=true", Some(&bob.token)).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let revoked = app
        .send(
            Method::DELETE,
            &format!("/api/v1/tokens/{read_id}"),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&read)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn expire_tokens(app: &TestApp, name: &str) {
    let past = chrono::Utc::now() - chrono::Duration::minutes(1);
    let sql = "UPDATE api_tokens SET expires_at = $1 WHERE name = $2";
    execute_sql(app, sql, vec![past.into(), name.into()]).await;
}

/// Every authenticated route that changes state, from the OpenAPI document, leaves an entry
/// with its actor and status, whatever it answered.
#[tokio::test]
async fn every_authenticated_change_is_audited() {
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    let doc: Value = app.openapi().await;
    let random = uuid::Uuid::now_v7().to_string();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            let authenticated = op["security"].as_array().is_some_and(|s| !s.is_empty());
            if matches!(method, Method::GET | Method::HEAD) || !authenticated {
                continue;
            }
            let concrete = path
                .split('/')
                .map(|seg| {
                    if seg.starts_with('{') {
                        random.as_str()
                    } else {
                        seg
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            let before = newest_audit(&app, &admin).await;
            let body =
                (method != Method::DELETE).then(|| json!({"probe_field_no_route_knows": true}));
            let response = app
                .send(method.clone(), &concrete, Some(&admin.token), body)
                .await;
            let status = response.status().as_u16();
            let entry = newest_audit(&app, &admin).await;
            assert!(
                entry["id"].as_i64() > before["id"].as_i64(),
                "{method} {path} ({status}) left no entry"
            );
            assert_eq!(entry["actor"], "admin", "{method} {path}: {entry}");
            assert_eq!(entry["status"], status, "{method} {path}: {entry}");
            assert!(
                entry["ip"]
                    .as_str()
                    .is_some_and(|ip| ip.starts_with("127.")),
                "{entry}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} changing routes found");
}

#[tokio::test]
async fn the_audit_log_records_what_changed_and_only_owners_read_their_teams() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let olive = f.person("olive");
    let adam = f.person("adam");
    let env = app
        .send(
            Method::PUT,
            &format!("/api/v1/projects/{}/env", f.project),
            Some(&adam.token),
            Some(json!({"vars": [{"key": "DATABASE_URL", "value": "postgres://very-secret", "secret": true}, {"key": "PLAIN", "value": "visible-value"}]})),
        )
        .await;
    assert_eq!(env.status(), StatusCode::OK);
    let entries: Value = app
        .get(
            &format!("/api/v1/audit?team_id={}&action=env", f.team),
            Some(&olive.token),
        )
        .await
        .json()
        .await
        .unwrap();
    let entry = &entries[0];
    assert_eq!(entry["actor"], "adam");
    assert_eq!(entry["project_id"], f.project.as_str());
    assert_eq!(entry["detail"]["added"], json!(["DATABASE_URL", "PLAIN"]));
    let all: Value = app
        .get("/api/v1/audit?limit=500", Some(&f.admin.token))
        .await
        .json()
        .await
        .unwrap();
    let text = all.to_string();
    assert!(
        !text.contains("very-secret") && !text.contains("visible-value"),
        "a value in the audit log"
    );
    // Filters: actor and action prefix; deploys are recorded by name.
    let deploys: Value = app
        .get(
            &format!("/api/v1/audit?team_id={}&actor=olive&action=deploy", f.team),
            Some(&olive.token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(deploys[0]["target_id"], f.deployment.as_str());
    // The owner reads the team's entries; admins of the team, members and outsiders do not.
    for who in ["adam", "mia", "vic", "otto"] {
        let refused = app
            .get(
                &format!("/api/v1/audit?team_id={}", f.team),
                Some(&f.person(who).token),
            )
            .await;
        assert!(
            matches!(
                refused.status(),
                StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
            ),
            "{who}"
        );
    }
    // Without a team filter an owner sees their teams' entries only.
    let mine: Value = app
        .get("/api/v1/audit?limit=500", Some(&olive.token))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        mine.as_array()
            .unwrap()
            .iter()
            .all(|e| e["team_id"].is_string()),
        "{mine}"
    );
    let other = create_in(&app, &olive.token, &f.team, "acme-api").await;
    let created: Value = app
        .get(
            &format!("/api/v1/audit?project_id={other}"),
            Some(&olive.token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(created[0]["action"], "project.create");
    assert_invalid(
        app.get("/api/v1/audit?since=yesterday", Some(&olive.token))
            .await,
        "since",
    )
    .await;
}
