//! Static sites: a project with `build_type: "static"` builds its Dockerfile, the output
//! directory is copied out of the image and shard serves it (MIME types, SPA fallback, cache
//! headers by name) with no container running; redeploy, rollback and delete follow.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::deploy::docker_ids;
use crate::gitserver::GitServer;
use crate::helpers::*;
use crate::proxy::get_host;

type Files = Vec<(&'static str, Vec<u8>, bool)>;

fn site_files(version: &str) -> Files {
    vec![
        (
            "Dockerfile",
            b"FROM scratch\nCOPY site /app/dist\n".to_vec(),
            false,
        ),
        (
            "site/index.html",
            format!("<!doctype html><h1>site {version}</h1>").into_bytes(),
            false,
        ),
        (
            "site/assets/index-BxY7kL2q.js",
            b"console.log('hashed')".to_vec(),
            false,
        ),
        (
            "site/assets/logo.svg",
            b"<svg xmlns='http://www.w3.org/2000/svg'/>".to_vec(),
            false,
        ),
        ("site/docs/index.html", b"<p>docs</p>".to_vec(), false),
        ("site/.env", b"SECRET=1".to_vec(), false),
    ]
}

async fn wait_body(app: &TestApp, host: &str, path: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = get_host(app, host, path)
            .await
            .text()
            .await
            .unwrap_or_default();
        if body.contains(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{host}{path} never showed {want:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn static_sites_are_served_by_shard_with_spa_fallback_and_cache_headers() {
    let git = GitServer::start().await;
    let repo = git.repo("site", &site_files("1"));
    let app = spawn_app_with(|c| c.deploy.grace_secs = 0).await;
    let admin = app.setup_admin().await;

    let bad = app
        .post(
            "/api/v1/projects",
            Some(&admin.token),
            json!({"name": "x", "git_url": repo.url, "build_type": "static"}),
        )
        .await;
    assert_invalid(bad, "static_dir").await;
    let bad = app
        .post(
            "/api/v1/projects",
            Some(&admin.token),
            json!({"name": "x", "git_url": repo.url, "build_type": "zip"}),
        )
        .await;
    assert_invalid(bad, "build_type").await;
    let bad = app
        .post("/api/v1/projects", Some(&admin.token), json!({"name": "x", "git_url": repo.url, "build_type": "static", "static_dir": "/app/../etc"}))
        .await;
    assert_invalid(bad, "static_dir").await;

    let created = app
        .post(
            "/api/v1/projects",
            Some(&admin.token),
            json!({"name": "site", "git_url": repo.url, "build_type": "static", "static_dir": "/app/dist"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let project: Value = created.json().await.unwrap();
    assert_eq!(project["build_type"], "static");
    let project = project["id"].as_str().unwrap().to_string();

    let first = app.deploy(&admin, &project, json!({})).await;
    let live = app
        .wait_for(&admin, &first, FINAL, Duration::from_secs(120))
        .await;
    assert_eq!(
        live["status"],
        "live",
        "{live} {}",
        app.logs_text(&admin, &first).await
    );
    assert_eq!(live["upstream"], "static");
    assert!(live["container_id"].is_null());
    let filter = format!("label=shard.project={project}");
    assert_eq!(
        docker_ids(&["ps", "-aq", "--filter", &filter]),
        "",
        "no container runs"
    );

    let host = "site.localhost";
    let index = get_host(&app, host, "/").await;
    assert_eq!(index.status(), StatusCode::OK);
    assert!(
        index.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(index.headers()["cache-control"], "no-cache");
    let etag = index.headers()["etag"].clone();
    assert!(index.text().await.unwrap().contains("site 1"));

    let hashed = get_host(&app, host, "/assets/index-BxY7kL2q.js").await;
    assert_eq!(hashed.status(), StatusCode::OK);
    assert!(
        hashed.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
    assert_eq!(
        hashed.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let svg = get_host(&app, host, "/assets/logo.svg").await;
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert_eq!(svg.headers()["cache-control"], "public, max-age=300");

    // Directories serve their index; app routes fall back to the top index; files do not.
    assert_eq!(
        get_host(&app, host, "/docs/").await.text().await.unwrap(),
        "<p>docs</p>"
    );
    let route = get_host(&app, host, "/settings/profile").await;
    assert_eq!(route.status(), StatusCode::OK);
    assert!(route.text().await.unwrap().contains("site 1"));
    assert_eq!(
        get_host(&app, host, "/assets/missing.js").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get_host(&app, host, "/.env").await.status(),
        StatusCode::NOT_FOUND
    );
    // Clients fold `%2e%2e` away; whatever arrives stays inside the site.
    let escape = get_host(&app, host, "/%2e%2e/%2e%2e/etc/passwd")
        .await
        .text()
        .await
        .unwrap();
    assert!(!escape.contains("root:"), "{escape}");

    let cached = app
        .client
        .get(format!("{}/", app.base))
        .header("host", host)
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    let post = app
        .client
        .post(format!("{}/", app.base))
        .header("host", host)
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);

    // No container to stop.
    let stop = app
        .post(
            &format!("/api/v1/projects/{project}/stop"),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_error(stop, StatusCode::CONFLICT, "conflict").await;

    // Redeploy, then roll back: each switch serves the other files; old sites go.
    repo.commit(&site_files("2"), "v2");
    let second = app.deploy(&admin, &project, json!({})).await;
    let live2 = app
        .wait_for(&admin, &second, FINAL, Duration::from_secs(120))
        .await;
    assert_eq!(live2["status"], "live", "{live2}");
    wait_body(&app, host, "/", "site 2").await;
    let sites = app.dir.path().join("sites");
    let first_dir = sites.join(first.replace('-', ""));
    let deadline = Instant::now() + Duration::from_secs(10);
    while first_dir.exists() {
        assert!(Instant::now() < deadline, "the superseded site is removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let back = app
        .deploy(&admin, &project, json!({"from_deployment": first}))
        .await;
    let live3 = app
        .wait_for(&admin, &back, FINAL, Duration::from_secs(120))
        .await;
    assert_eq!(live3["status"], "live", "{live3}");
    wait_body(&app, host, "/", "site 1").await;

    let deleted = app
        .send(
            Method::DELETE,
            &format!("/api/v1/projects/{project}"),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        get_host(&app, host, "/").await.status(),
        StatusCode::NOT_FOUND
    );
    let left: Vec<_> = std::fs::read_dir(&sites)
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "site files removed with the project: {left:?}"
    );
}
