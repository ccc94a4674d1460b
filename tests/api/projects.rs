use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn projects_crud_and_derived_fields() {
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    let project = app.create_project(&admin, "My Blog").await;
    assert_eq!(project["slug"], "my-blog");
    assert_eq!(project["branch"], "main");
    assert_eq!(project["dockerfile"], "Dockerfile");
    assert_eq!(project["health_path"], "/");
    assert_eq!(project["status"], "new");
    assert!(project["live_deployment"].is_null());
    let port = app.base.rsplit(':').next().unwrap();
    assert_eq!(project["url"], format!("http://my-blog.localhost:{port}"));
    let id = project["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);

    let patched = app
        .send(
            Method::PATCH,
            &format!("/api/v1/projects/{id}"),
            Some(&admin.token),
            Some(json!({"port": 3000, "branch": "release/1"})),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    let patched: Value = patched.json().await.unwrap();
    assert_eq!(
        (patched["port"].clone(), patched["branch"].clone()),
        (json!(3000), json!("release/1"))
    );
    let cleared: Value = app
        .send(
            Method::PATCH,
            &format!("/api/v1/projects/{id}"),
            Some(&admin.token),
            Some(json!({"port": null})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(cleared["port"].is_null());
    assert_eq!(cleared["branch"], "release/1", "absent fields are kept");

    // Slugs are unique.
    let duplicate = app
        .post(
            "/api/v1/projects",
            Some(&admin.token),
            json!({"name": "my blog", "git_url": "https://example.com/a/b.git"}),
        )
        .await;
    assert_error(duplicate, StatusCode::CONFLICT, "conflict").await;
    let other = app.create_project(&admin, "other").await;
    let rename = app
        .send(
            Method::PATCH,
            &format!("/api/v1/projects/{}", other["id"].as_str().unwrap()),
            Some(&admin.token),
            Some(json!({"name": "My-Blog"})),
        )
        .await;
    assert_error(rename, StatusCode::CONFLICT, "conflict").await;

    let list: Vec<Value> = app
        .get("/api/v1/projects", Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.len(), 2);
    let deleted = app.delete_project(&admin, id).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_error(
        app.get(&format!("/api/v1/projects/{id}"), Some(&admin.token))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        app.get("/api/v1/projects/not-a-uuid", Some(&admin.token))
            .await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    // Who did what is in the audit log.
    let rows = app
        .state
        .db
        .query_all_raw(Statement::from_string(
            app.state.db.get_database_backend(),
            "SELECT action FROM audit_log ORDER BY id".to_string(),
        ))
        .await
        .unwrap();
    let actions: Vec<String> = rows
        .iter()
        .map(|r| r.try_get("", "action").unwrap())
        .collect();
    assert_eq!(actions.iter().filter(|a| *a == "project.create").count(), 2);
    assert!(
        actions.contains(&"setup".to_string()) && actions.contains(&"project.delete".to_string()),
        "{actions:?}"
    );
}

#[tokio::test]
async fn other_users_resources_are_404_and_admin_routes_403() {
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    let bob = app.member(&admin, "bob").await;
    let alice = app.member(&admin, "alice").await;
    let project = app.create_project(&bob, "bobs-app").await;
    let id = project["id"].as_str().unwrap();
    let path = format!("/api/v1/projects/{id}");

    assert_error(
        app.get(&path, Some(&alice.token)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let patch = app
        .send(
            Method::PATCH,
            &path,
            Some(&alice.token),
            Some(json!({"branch": "x"})),
        )
        .await;
    assert_error(patch, StatusCode::NOT_FOUND, "not_found").await;
    assert_error(
        app.get(&format!("{path}/env"), Some(&alice.token)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let put_env = app
        .send(
            Method::PUT,
            &format!("{path}/env"),
            Some(&alice.token),
            Some(json!({"vars": []})),
        )
        .await;
    assert_error(put_env, StatusCode::NOT_FOUND, "not_found").await;
    let delete = app
        .send(Method::DELETE, &path, Some(&alice.token), None)
        .await;
    assert_error(delete, StatusCode::NOT_FOUND, "not_found").await;
    let alice_list: Vec<Value> = app
        .get("/api/v1/projects", Some(&alice.token))
        .await
        .json()
        .await
        .unwrap();
    assert!(alice_list.is_empty());

    // Members cannot use admin routes.
    assert_error(
        app.get("/api/v1/users", Some(&alice.token)).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let create_user = app
        .post(
            "/api/v1/users",
            Some(&alice.token),
            json!({"username": "mallory", "password": PASSWORD, "role": "admin"}),
        )
        .await;
    assert_error(create_user, StatusCode::FORBIDDEN, "forbidden").await;

    // The owner and admins still see it, unchanged.
    let seen: Value = app.get(&path, Some(&bob.token)).await.json().await.unwrap();
    assert_eq!(seen["branch"], "main");
    assert_eq!(
        app.get(&path, Some(&admin.token)).await.status(),
        StatusCode::OK
    );
    let admin_list: Vec<Value> = app
        .get("/api/v1/projects", Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(admin_list.len(), 1);
}

#[tokio::test]
async fn every_validation_rule_answers_422_with_the_field() {
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    let create = |body: Value| {
        let mut full = json!({"name": "ok", "git_url": "https://example.com/a/b.git"});
        full.as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        full
    };
    let cases: Vec<(Value, &str)> = vec![
        (json!({"name": "!!!"}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": "x".repeat(64)}), "name"),
        (json!({"git_url": "file:///etc/passwd"}), "git_url"),
        (json!({"git_url": "ext::sh -c id"}), "git_url"),
        (json!({"git_url": "-uhttps://example.com/a"}), "git_url"),
        (
            json!({"git_url": "https://user:secret@example.com/a/b.git"}),
            "git_url",
        ),
        (json!({"git_url": "ftp://example.com/a/b.git"}), "git_url"),
        (json!({"branch": "a..b"}), "branch"),
        (json!({"branch": "-delete"}), "branch"),
        (json!({"branch": "has space"}), "branch"),
        (json!({"branch": "x.lock"}), "branch"),
        (json!({"dockerfile": "../Dockerfile"}), "dockerfile"),
        (json!({"dockerfile": "/etc/Dockerfile"}), "dockerfile"),
        (json!({"port": 0}), "port"),
        (json!({"port": 70000}), "port"),
        (json!({"health_path": "health"}), "health_path"),
        (json!({"health_timeout_secs": 0}), "health_timeout_secs"),
    ];
    for (body, field) in cases {
        let response = app
            .post("/api/v1/projects", Some(&admin.token), create(body.clone()))
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}"
        );
        assert_invalid(response, field).await;
    }
    let project = app.create_project(&admin, "valid").await;
    let env_path = format!("/api/v1/projects/{}/env", project["id"].as_str().unwrap());
    for (key, field) in [
        ("1ABC", "vars[0].key"),
        ("A-B", "vars[0].key"),
        ("", "vars[0].key"),
    ] {
        let response = app
            .send(
                Method::PUT,
                &env_path,
                Some(&admin.token),
                Some(json!({"vars": [{"key": key, "value": "v"}]})),
            )
            .await;
        assert_invalid(response, field).await;
    }
    let duplicate = json!({"vars": [{"key": "A", "value": "1"}, {"key": "A", "value": "2"}]});
    assert_invalid(
        app.send(Method::PUT, &env_path, Some(&admin.token), Some(duplicate))
            .await,
        "vars[1].key",
    )
    .await;
    let missing_value = json!({"vars": [{"key": "NEW"}]});
    assert_invalid(
        app.send(
            Method::PUT,
            &env_path,
            Some(&admin.token),
            Some(missing_value),
        )
        .await,
        "vars[0].value",
    )
    .await;
    // Usernames are validated too.
    let bad_user = app
        .post(
            "/api/v1/users",
            Some(&admin.token),
            json!({"username": "Bad Name!", "password": PASSWORD}),
        )
        .await;
    assert_invalid(bad_user, "username").await;
    // Unknown fields are refused rather than ignored.
    let unknown = app
        .post(
            "/api/v1/projects",
            Some(&admin.token),
            create(json!({"nmae": "typo"})),
        )
        .await;
    assert_error(
        unknown,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
}

#[tokio::test]
async fn secrets_are_masked_and_never_stored_in_clear() {
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    let project = app.create_project(&admin, "envy").await;
    let env_path = format!("/api/v1/projects/{}/env", project["id"].as_str().unwrap());
    let needle = format!("needle-{}", uuid::Uuid::new_v4().simple());
    let plain = format!("plain-{}", uuid::Uuid::new_v4().simple());
    let body = json!({"vars": [
        {"key": "API_KEY", "value": needle, "secret": true},
        {"key": "MODE", "value": plain, "build": true},
    ]});
    let put = app
        .send(Method::PUT, &env_path, Some(&admin.token), Some(body))
        .await;
    assert_eq!(put.status(), StatusCode::OK);
    let put_text = put.text().await.unwrap();
    assert!(!put_text.contains(&needle), "PUT response leaks the secret");

    let got: Value = app
        .get(&env_path, Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        got["vars"],
        json!([
            {"key": "API_KEY", "value": null, "secret": true, "build": false},
            {"key": "MODE", "value": plain, "secret": false, "build": true},
        ])
    );

    // Sending the masked set back (secret without value) keeps the stored secret.
    let resend =
        json!({"vars": [{"key": "API_KEY", "secret": true}, {"key": "MODE", "value": "changed"}]});
    assert_eq!(
        app.send(Method::PUT, &env_path, Some(&admin.token), Some(resend))
            .await
            .status(),
        StatusCode::OK
    );
    let rows = app
        .state
        .db
        .query_all_raw(Statement::from_string(
            app.state.db.get_database_backend(),
            "SELECT id, key, value_sealed FROM env_vars".to_string(),
        ))
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let key = std::fs::read_to_string(app.dir.path().join("secret.key")).unwrap();
    let sealer = shard::secrets::Sealer::new(&shard::config::parse_secret_key(&key).unwrap());
    for row in rows {
        let id: uuid::Uuid = row.try_get("", "id").unwrap();
        let key: String = row.try_get("", "key").unwrap();
        let sealed: Vec<u8> = row.try_get("", "value_sealed").unwrap();
        assert!(!contains(&sealed, needle.as_bytes()) && !contains(&sealed, b"changed"));
        let clear = String::from_utf8(sealer.open(&sealed, id.as_bytes()).unwrap()).unwrap();
        assert_eq!(
            clear,
            if key == "API_KEY" {
                needle.clone()
            } else {
                "changed".to_string()
            }
        );
    }

    // Nothing in the database files holds the values in clear.
    if app.state.config.database_url.is_none() {
        let mut scanned = 0;
        for entry in std::fs::read_dir(app.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("shard.db")
            {
                let bytes = std::fs::read(&path).unwrap();
                scanned += bytes.len();
                assert!(
                    !contains(&bytes, needle.as_bytes()),
                    "{} holds the secret in clear",
                    path.display()
                );
                assert!(
                    !contains(&bytes, plain.as_bytes()),
                    "{} holds an env value in clear",
                    path.display()
                );
            }
        }
        assert!(scanned > 0, "the SQLite files were scanned");
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Values sealed with one key cannot be opened with another: shard refuses to start with a
/// message naming the cause, instead of failing every env read and deploy with a 500 later.
#[tokio::test]
async fn a_changed_secret_key_stops_startup_with_a_clear_message() {
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    let project = app.create_project(&admin, "sealed").await;
    let env_path = format!("/api/v1/projects/{}/env", project["id"].as_str().unwrap());
    let body = json!({"vars": [{"key": "TOKEN", "value": "s3cret", "secret": true}]});
    let put = app
        .send(Method::PUT, &env_path, Some(&admin.token), Some(body))
        .await;
    assert_eq!(put.status(), StatusCode::OK);

    // A second process on the same database needs its own data dir (the first one holds its
    // data dir's lock); the database URL keeps pointing at the first one's database.
    let mut same = (*app.state.config).clone();
    let second_dir = tempfile::TempDir::new().unwrap();
    same.database_url = Some(shard::config::Secret::new(app.state.config.database_url()));
    same.data_dir = second_dir.path().to_path_buf();
    std::fs::copy(
        app.state.config.data_dir.join("secret.key"),
        second_dir.path().join("secret.key"),
    )
    .unwrap();
    same.listen = "127.0.0.1:0".parse().unwrap();
    let mut other = same.clone();
    let third_dir = tempfile::TempDir::new().unwrap();
    other.data_dir = third_dir.path().to_path_buf();
    other.secret_key = Some(shard::config::Secret::new(
        "ab".repeat(32), // 32 bytes in hex, not this installation's key
    ));
    let refused = shard::app::App::build(other).await;
    let message = format!("{:#}", refused.err().expect("another key must be refused"));
    assert!(
        message.contains("sealed with another key") && message.contains("SHARD_SECRET_KEY"),
        "{message}"
    );
    assert!(
        shard::app::App::build(same).await.is_ok(),
        "the original key still starts"
    );
}

/// A member's git URL may not reach the host's own networks; an admin's may, and so may
/// everyone's with `git.allow_private_networks`.
#[tokio::test]
async fn members_cannot_fetch_from_private_networks() {
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    let bob = app.member(&admin, "bob").await;
    for url in [
        "http://127.0.0.1:9/repo.git",
        "http://localhost/repo.git",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/repo.git",
        "https://10.0.0.8/team/repo.git",
    ] {
        let body = json!({"name": "sneaky", "git_url": url});
        let refused = app.post("/api/v1/projects", Some(&bob.token), body).await;
        assert_invalid(refused, "git_url").await;
    }
    let mine = app.create_project(&bob, "fine").await;
    let id = mine["id"].as_str().unwrap();
    let patch = app
        .send(
            Method::PATCH,
            &format!("/api/v1/projects/{id}"),
            Some(&bob.token),
            Some(json!({"git_url": "http://127.0.0.1:22/x.git"})),
        )
        .await;
    assert_invalid(patch, "git_url").await;
    let body = json!({"name": "internal", "git_url": "http://127.0.0.1:9/repo.git"});
    let created = app.post("/api/v1/projects", Some(&admin.token), body).await;
    assert_eq!(created.status(), StatusCode::CREATED, "admins decide");

    let open = spawn_app_with(|c| c.git.allow_private_networks = true).await;
    let admin = open.setup_admin().await;
    let bob = open.member(&admin, "bob").await;
    let body = json!({"name": "internal", "git_url": "http://127.0.0.1:9/repo.git"});
    let created = open.post("/api/v1/projects", Some(&bob.token), body).await;
    assert_eq!(created.status(), StatusCode::CREATED);
}

/// Re-sending an existing secret without `secret` (a script that only knows key and value)
/// keeps it secret: its value is never shown again.
#[tokio::test]
async fn a_secret_resent_without_the_flag_stays_secret() {
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    let project = app.create_project(&admin, "still-secret").await;
    let env_path = format!("/api/v1/projects/{}/env", project["id"].as_str().unwrap());
    let put = |body: Value| app.send(Method::PUT, &env_path, Some(&admin.token), Some(body));
    let first = json!({"vars": [{"key": "TOKEN", "value": "first-value", "secret": true}]});
    assert_eq!(put(first).await.status(), StatusCode::OK);
    let again =
        json!({"vars": [{"key": "TOKEN", "value": "rotated-value"}, {"key": "NEW", "value": "x"}]});
    let response = put(again).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.text().await.unwrap();
    assert!(!body.contains("rotated-value"), "{body}");
    let got: Value = app
        .get(&env_path, Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        got["vars"],
        json!([
            {"key": "NEW", "value": "x", "secret": false, "build": false},
            {"key": "TOKEN", "value": null, "secret": true, "build": false},
        ])
    );
    // Saying so explicitly still turns it into a plain variable.
    let plain = json!({"vars": [{"key": "TOKEN", "value": "public", "secret": false}]});
    assert_eq!(put(plain).await.status(), StatusCode::OK);
    let got: Value = app
        .get(&env_path, Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["vars"][0]["value"], "public");
}
