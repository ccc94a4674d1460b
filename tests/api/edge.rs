use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn health_request_ids_and_openapi() {
    let app = spawn_app().await;
    let health = app.get("/health", None).await;
    assert_eq!(health.status(), StatusCode::OK);
    assert!(health.headers().contains_key("x-request-id"));
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );

    let doc: Value = app.openapi().await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/projects",
        "/api/v1/projects/{id}/env",
        "/api/v1/auth/login",
        "/health",
    ] {
        assert!(doc["paths"].get(path).is_some(), "openapi lacks {path}");
    }
}

#[tokio::test]
async fn oversized_and_malformed_bodies_are_client_errors() {
    let app = spawn_app_with(|c| c.http.body_limit_bytes = 4096).await;
    let admin = app.setup_admin().await;
    let big = json!({"name": "x", "git_url": "https://example.com/a/b.git", "branch": "a".repeat(10_000)});
    assert_error(
        app.post("/api/v1/projects", Some(&admin.token), big).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;

    let malformed = app
        .client
        .post(app.url("/api/v1/projects"))
        .bearer_auth(&admin.token)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    let body = assert_error(malformed, StatusCode::BAD_REQUEST, "bad_request").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 1"),
        "{body}"
    );

    let wrong_type = app
        .post(
            "/api/v1/projects",
            Some(&admin.token),
            json!({"name": 5, "git_url": "https://e.com/a"}),
        )
        .await;
    assert_error(
        wrong_type,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
}

#[tokio::test]
async fn unknown_api_routes_are_json_404_and_the_spa_falls_back() {
    let app = spawn_app().await;
    assert_error(
        app.get("/api/v1/nope", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        app.get("/api/other", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    let index = app.get("/", None).await;
    assert_eq!(index.status(), StatusCode::OK);
    assert_eq!(index.headers()["cache-control"], "no-cache");
    let html = index.text().await.unwrap();
    assert!(html.contains("<div id=\"root\">"));

    // Client-side routes get index.html; asset-like misses are 404.
    let deep = app.get("/projects/123/settings", None).await;
    assert_eq!(deep.status(), StatusCode::OK);
    assert_eq!(deep.headers()["cache-control"], "no-cache");
    assert_eq!(
        app.get("/assets/missing-abc123.js", None).await.status(),
        StatusCode::NOT_FOUND
    );

    let asset = html
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("index references its script");
    let script = app.get(asset, None).await;
    assert_eq!(script.status(), StatusCode::OK);
    assert!(
        script.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert!(
        script.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
}

/// A deploy request body that is broken or has the wrong shape is refused; it is never taken
/// as "no body" (which would start a plain deploy instead of the rollback that was asked for).
#[tokio::test]
async fn a_bad_deploy_body_is_refused_and_queues_nothing() {
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    let project = app.create_project(&admin, "careful").await;
    let path = format!(
        "/api/v1/projects/{}/deployments",
        project["id"].as_str().unwrap()
    );
    for (body, status, code) in [
        (r#"{"from_deployment":"nope"}"#, 422, "validation_failed"),
        (r#"{"from_deploymnet":null}"#, 422, "validation_failed"),
        (r#"{"from_deployment":"#, 400, "bad_request"),
        ("[1,2]", 422, "validation_failed"),
    ] {
        let response = app
            .client
            .post(app.url(&path))
            .bearer_auth(&admin.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], code, "{body}: {error}");
    }
    let listed: Value = app
        .get(&path, Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed, json!([]), "nothing was queued");
}

/// Every `{name}` in an operation's path is declared as a path parameter of that operation,
/// and nothing else is (OpenAPI 3 requires it; generated clients refuse the operation
/// otherwise).
#[tokio::test]
async fn every_path_parameter_is_declared_in_the_openapi_document() {
    let app = spawn_app().await;
    let doc: Value = app.openapi().await;
    let mut problems = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let mut in_path: Vec<String> = path
            .split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_string()))
            .collect();
        in_path.sort();
        for (method, op) in item.as_object().unwrap() {
            let mut declared: Vec<String> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .map(|p| {
                            assert_eq!(p["required"], true, "{method} {path}: {p}");
                            p["name"].as_str().unwrap().to_string()
                        })
                        .collect()
                })
                .unwrap_or_default();
            declared.sort();
            if declared != in_path {
                problems.push(format!("{method} {path}: declares {declared:?}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The document passes an OpenAPI validator (openapi-spec-validator, which scripts/test
/// installs from PyPI): a client generator or any OpenAPI tool accepts it.
#[tokio::test]
async fn the_openapi_document_validates() {
    let app = spawn_app().await;
    let doc = app
        .get("/api/v1/openapi.json", None)
        .await
        .text()
        .await
        .unwrap();
    let file = app.dir.path().join("openapi.json");
    std::fs::write(&file, doc).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("python3 runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("No module named"),
        "openapi-spec-validator is missing: pip install openapi-spec-validator ({text})"
    );
    assert!(
        out.status.success(),
        "the OpenAPI document is invalid:\n{text}"
    );
}
