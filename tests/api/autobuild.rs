//! Builds without a Dockerfile, end to end and offline: repositories of `tests/apps/` go from a
//! push to live at their URL through the build plan, on base images made from Debian packages
//! (`scripts/test-images`: `shard-test/node:18`, `shard-test/python:3.11`, `shard-test/go:1.19`)
//! that `[build.images]` points at. Also: the plan endpoint, the plan step's failure, the
//! overrides' checks, and `shard plan` on a local tree.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::apps::{app_files, edited};
use crate::deploy::docker_ids;
use crate::gitserver::GitServer;
use crate::helpers::*;
use crate::proxy::get_host;

/// A server whose auto builds use the local base images.
async fn spawn_builder() -> TestApp {
    spawn_app_with(|c| {
        c.deploy.grace_secs = 0;
        let images = &mut c.build.images;
        images.node = "shard-test/node:{version}".into();
        images.python = "shard-test/python:{version}".into();
        images.go = "shard-test/go:{version}".into();
        let versions = &mut c.build.versions;
        versions.node = vec!["18".into()];
        versions.python = vec!["3.11".into()];
        versions.go = vec!["1.19".into()];
    })
    .await
}

const BUILD_TIME: Duration = Duration::from_secs(420);

async fn body_of(app: &TestApp, host: &str, path: &str) -> (StatusCode, String) {
    let response = get_host(app, host, path).await;
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}

/// Creates a project of `files` with no build settings at all and deploys it live.
async fn deploy_app(
    app: &TestApp,
    admin: &Session,
    git: &GitServer,
    name: &str,
) -> (String, String) {
    let repo = git.repo(name, &app_files(name));
    let project = app.project_for(admin, name, &repo.url).await;
    let id = app
        .deploy_live(admin, &project, json!({}), BUILD_TIME)
        .await;
    (project, id)
}

#[tokio::test]
async fn a_node_app_without_a_dockerfile_goes_live_and_a_code_change_reuses_the_install() {
    let git = GitServer::start().await;
    let app = spawn_builder().await;
    let admin = app.setup_admin().await;
    let repo = git.repo("node-express", &app_files("node-express"));
    let project = app.project_for(&admin, "express", &repo.url).await;
    let view: Value = app
        .get(&format!("/api/v1/projects/{project}"), Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["build_type"], "auto", "{view}");

    // The plan of the branch tip, before any deploy.
    let response = app
        .get(
            &format!("/api/v1/projects/{project}/plan"),
            Some(&admin.token),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let plan: Value = response.json().await.unwrap();
    assert_eq!(plan["language"], "node", "{plan}");
    assert_eq!(plan["framework"], "express", "{plan}");
    assert_eq!(plan["versions"][0]["version"], "18", "{plan}");
    assert!(
        plan["versions"][0]["source"]
            .as_str()
            .unwrap()
            .contains(".nvmrc"),
        "{plan}"
    );
    assert_eq!(plan["start"], "npm start", "{plan}");
    assert_eq!(plan["port"], 3000, "{plan}");
    let dockerfile = plan["dockerfile"].as_str().unwrap();
    assert!(
        dockerfile.contains("FROM shard-test/node:18"),
        "{dockerfile}"
    );
    assert!(dockerfile.contains("USER 10001:10001"), "{dockerfile}");
    assert!(!dockerfile.contains("# syntax"), "{dockerfile}");

    let first = app
        .deploy_live(&admin, &project, json!({}), BUILD_TIME)
        .await;
    let log = app.logs_text(&admin, &first).await;
    assert!(log.contains("==> Plan: node / express (npm)"), "{log}");
    let (status, body) = body_of(&app, "express.localhost", "/").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "express says VERSION-1");
    let container = docker_ids(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=shard.deployment={first}"),
    ]);
    let user = docker_ids(&["inspect", "-f", "{{.Config.User}}", &container]);
    assert_eq!(
        user, "10001:10001",
        "the app runs as the build user, not root"
    );

    // A change to the code alone: the install layer comes from the cache.
    repo.commit(
        &[edited(
            "node-express",
            "server.js",
            "VERSION-1",
            "VERSION-2",
        )],
        "change the greeting",
    );
    let second = app
        .deploy_live(&admin, &project, json!({}), BUILD_TIME)
        .await;
    let log = app.logs_text(&admin, &second).await;
    let lines: Vec<&str> = log.lines().collect();
    let install = lines
        .iter()
        .position(|l| l.contains(": RUN npm ci"))
        .unwrap_or_else(|| panic!("no install step in the log:\n{log}"));
    assert!(
        lines[install + 1..]
            .iter()
            .take(2)
            .any(|l| l.contains("Using cache")),
        "the install step ran again after a code-only change:\n{log}"
    );
    let copy = lines
        .iter()
        .position(|l| l.contains(": COPY --chown=10001:10001 . ."))
        .unwrap();
    assert!(
        !lines[copy + 1..]
            .iter()
            .take(2)
            .any(|l| l.contains("Using cache")),
        "the source layer must be rebuilt:\n{log}"
    );
    let (_, body) = body_of(&app, "express.localhost", "/").await;
    assert_eq!(body, "express says VERSION-2");
}

#[tokio::test]
async fn a_vite_site_is_built_in_a_builder_stage_and_served_by_shard_without_a_container() {
    let git = GitServer::start().await;
    let app = spawn_builder().await;
    let admin = app.setup_admin().await;
    let (project, id) = deploy_app(&app, &admin, &git, "vite-site").await;
    let log = app.logs_text(&admin, &id).await;
    assert!(log.contains("==> Plan: node / vite (npm)"), "{log}");
    assert!(
        log.contains("a static site: serve dist/ of the build"),
        "{log}"
    );
    let deployment = app.deployment(&admin, &id).await;
    assert_eq!(deployment["upstream"], "static", "{deployment}");
    let running = docker_ids(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=shard.project={project}"),
    ]);
    assert!(running.is_empty(), "a site runs no container: {running}");
    let (status, body) = body_of(&app, "vite-site.localhost", "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("built by vite"), "{body}");
    // Vite bundled the script into a hashed asset that the page links.
    let asset = body
        .split('"')
        .find(|part| part.starts_with("/assets/") && part.ends_with(".js"))
        .unwrap_or_else(|| panic!("no bundled script in {body}"));
    let (status, script) = body_of(&app, "vite-site.localhost", asset).await;
    assert_eq!(status, StatusCode::OK);
    assert!(script.contains("ready"), "{script}");

    // A rollback to the site's image is a site again (the image says so).
    let again = app
        .deploy_live(&admin, &project, json!({"from_deployment": id}), BUILD_TIME)
        .await;
    assert_eq!(app.deployment(&admin, &again).await["upstream"], "static");
}

#[tokio::test]
async fn a_flask_app_without_a_dockerfile_goes_live() {
    let git = GitServer::start().await;
    let app = spawn_builder().await;
    let admin = app.setup_admin().await;
    let (_, id) = deploy_app(&app, &admin, &git, "python-flask").await;
    let log = app.logs_text(&admin, &id).await;
    assert!(log.contains("==> Plan: python / flask (pip)"), "{log}");
    assert!(
        log.contains("python 3.11 ← 3.11 in .python-version:1"),
        "{log}"
    );
    let (status, body) = body_of(&app, "python-flask.localhost", "/").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "flask says hello");
}

#[tokio::test]
async fn a_go_service_without_a_dockerfile_goes_live_from_scratch_and_writes_its_volume() {
    let git = GitServer::start().await;
    let app = spawn_builder().await;
    let admin = app.setup_admin().await;
    let repo = git.repo("go-service", &app_files("go-service"));
    let project = app.project_for(&admin, "go-service", &repo.url).await;
    // The app runs as uid 10001 in a FROM scratch image: the plan makes /data its own, so the
    // new volume mounted there is writable by it.
    let added = app
        .post(
            &format!("/api/v1/projects/{project}/volumes"),
            Some(&admin.token),
            json!({"name": "data", "mount_path": "/data"}),
        )
        .await;
    assert_eq!(added.status(), StatusCode::CREATED);
    let id = app
        .deploy_live(&admin, &project, json!({}), BUILD_TIME)
        .await;
    let log = app.logs_text(&admin, &id).await;
    assert!(log.contains("==> Plan: go (go modules)"), "{log}");
    assert!(
        log.contains("go 1.19 ← 1.19 in go.mod:3 (go line)"),
        "{log}"
    );
    assert!(
        log.contains("/data is in the image, owned by the app's user"),
        "{log}"
    );
    let (status, body) = body_of(&app, "go-service.localhost", "/").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "go says hello");
    let (status, body) = body_of(&app, "go-service.localhost", "/log?first").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "first\n"));
    // A redeploy mounts the same volume: the write is still there.
    app.deploy_live(&admin, &project, json!({}), BUILD_TIME)
        .await;
    let (_, body) = body_of(&app, "go-service.localhost", "/log?second").await;
    assert_eq!(body, "first\nsecond\n");
}

#[tokio::test]
async fn a_tree_nothing_recognizes_fails_at_the_plan_step_saying_what_to_do() {
    let git = GitServer::start().await;
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    let repo = git.repo("notes", &[("README.md", b"# notes\n".to_vec(), false)]);
    let project = app.project_for(&admin, "notes", &repo.url).await;

    let response = app
        .get(
            &format!("/api/v1/projects/{project}/plan"),
            Some(&admin.token),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("Add a Dockerfile, or set start_command"),
        "{body}"
    );

    let id = app.deploy(&admin, &project, json!({})).await;
    let done = app
        .wait_for(&admin, &id, FINAL, Duration::from_secs(60))
        .await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error_step"], "plan", "{done}");
    assert!(
        done["error"].as_str().unwrap().contains("package.json"),
        "{done}"
    );

    // A start command alone is a way out: the plan runs it on the Debian image.
    let response = app
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/projects/{project}"),
            Some(&admin.token),
            Some(json!({"start_command": "./serve"})),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let plan: Value = app
        .get(
            &format!("/api/v1/projects/{project}/plan"),
            Some(&admin.token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(plan["language"], "shell", "{plan}");
    assert_eq!(plan["start"], "./serve", "{plan}");
    assert_eq!(plan["decisions"][0]["source"], "project settings", "{plan}");
}

#[tokio::test]
async fn plan_overrides_are_checked_and_shown() {
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    for (field, value) in [
        ("root_dir", json!("../elsewhere")),
        ("root_dir", json!("/abs")),
        ("static_dir", json!("dist/../../etc")),
        ("start_command", json!("")),
        ("build_command", json!("a\nb")),
        ("install_command", json!("x".repeat(5000))),
    ] {
        let mut body = json!({"name": "o", "git_url": "https://example.com/o.git"});
        body[field] = value;
        assert_invalid(
            app.post("/api/v1/projects", Some(&admin.token), body).await,
            field,
        )
        .await;
    }
    let bad = app
        .post(
            "/api/v1/projects",
            Some(&admin.token),
            json!({"name": "o", "git_url": "https://example.com/o.git", "static_dir": "dist", "start_command": "node x"}),
        )
        .await;
    assert_invalid(bad, "start_command").await;
    let response = app
        .post(
            "/api/v1/projects",
            Some(&admin.token),
            json!({"name": "mono", "git_url": "https://example.com/m.git", "root_dir": "apps/web",
                   "build_command": "npm run build:prod", "static_dir": "out"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let view: Value = response.json().await.unwrap();
    assert_eq!(view["build_type"], "auto");
    assert_eq!(view["root_dir"], "apps/web");
    assert_eq!(view["build_command"], "npm run build:prod");
    assert_eq!(view["static_dir"], "out");
    let id = view["id"].as_str().unwrap();
    let response = app
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/projects/{id}"),
            Some(&admin.token),
            Some(json!({"build_command": null, "root_dir": "apps/site"})),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let view: Value = response.json().await.unwrap();
    assert_eq!(view["build_command"], Value::Null);
    assert_eq!(view["root_dir"], "apps/site");
}

#[test]
fn shard_plan_plans_a_local_tree_offline_and_ejects_the_dockerfile() {
    let bin = env!("CARGO_BIN_EXE_shard");
    let tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/plans/python-flask-pip/tree");
    let run = |args: &[&str]| {
        Command::new(bin)
            .args(args)
            .env_remove("SHARD_CONFIG")
            .current_dir(&tree)
            .output()
            .unwrap()
    };
    let out = run(&["plan"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("==> Plan: python / flask (pip)"), "{text}");
    let out = run(&["plan", ".", "--json"]);
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["framework"], "flask");
    let out = run(&["plan", "--dockerfile"]);
    let expected = std::fs::read_to_string(tree.join("../Dockerfile.expected")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);

    let empty = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/plans/nothing-recognized/tree");
    let out = Command::new(bin)
        .args(["plan", empty.to_str().unwrap()])
        .env_remove("SHARD_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Add a Dockerfile, or set start_command"),
        "{stderr}"
    );
}
