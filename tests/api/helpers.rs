use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Client, Response, StatusCode};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use shard::app::App;
use shard::config::{Config, Secret};
use shard::state::AppState;
use tempfile::TempDir;

pub const PASSWORD: &str = "correct horse battery";
/// Statuses a deployment does not leave by itself.
pub const FINAL: &[&str] = &["live", "failed", "cancelled", "superseded", "stopped"];

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub dir: TempDir,
    pub state: Arc<AppState>,
}

/// A fresh database URL: a new Postgres database when SHARD_TEST_DATABASE_URL is set,
/// otherwise `None` (the app's SQLite file in its data dir).
pub async fn fresh_database_url() -> Option<String> {
    let base = std::env::var("SHARD_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())?;
    let name = format!("shard_t_{}", uuid::Uuid::new_v4().simple());
    let admin = sea_orm::Database::connect(base.as_str())
        .await
        .expect("SHARD_TEST_DATABASE_URL must point at a running Postgres");
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    admin.close().await.ok();
    let mut url = url::Url::parse(&base).expect("SHARD_TEST_DATABASE_URL is a URL");
    url.set_path(&name);
    Some(url.to_string())
}

/// Runs one statement written with Postgres placeholders (`$1`, `$2`...) on the app's
/// database, whichever it is (SQLite takes `?`), for tests that age or alter rows directly.
pub async fn execute_sql(app: &TestApp, sql: &str, values: Vec<sea_orm::Value>) {
    let db = &app.state.db;
    let sql = if shard::db::is_postgres(db) {
        sql.to_string()
    } else {
        let mut out = String::new();
        let mut chars = sql.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
                while chars.peek().is_some_and(char::is_ascii_digit) {
                    chars.next();
                }
                out.push('?');
            } else {
                out.push(c);
            }
        }
        out
    };
    db.execute_raw(sea_orm::Statement::from_sql_and_values(
        db.get_database_backend(),
        sql,
        values,
    ))
    .await
    .unwrap();
}

/// A port to give a server that binds it later: picked at random below the kernel's ephemeral
/// range (32768–60999), so no outgoing connection of a test running alongside takes it in the
/// meantime (a port the kernel handed out as free would be one it hands out next), and checked
/// free now.
pub fn free_port() -> u16 {
    loop {
        let port = 20_000 + (uuid::Uuid::new_v4().as_u128() % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub async fn test_config(dir: &TempDir) -> Config {
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: fresh_database_url().await.map(Secret::new),
        ..Config::default()
    };
    config.log.level = "warn".into();
    // Nothing can be pulled here: one-click databases use the local stand-ins that
    // scripts/test-images makes, with the official images' interface.
    config.databases.images.postgres = "shard-test/postgres:{version}".into();
    config.databases.versions.postgres = "15".into();
    config.databases.images.redis = "shard-test/redis:{version}".into();
    config.databases.versions.redis = "7".into();
    config.databases.images.mariadb = "shard-test/mariadb:{version}".into();
    config.databases.versions.mariadb = "10.11".into();
    config
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let dir = TempDir::new().unwrap();
    let mut config = test_config(&dir).await;
    adjust(&mut config);
    shard::telemetry::init(&config.log);
    let app = App::build(config).await.expect("app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    // No cookie store: tests handle the refresh cookie explicitly.
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    TestApp {
        base,
        client,
        dir,
        state,
    }
}

pub fn cookie_value(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .find_map(|v| {
            let text = v.to_str().ok()?;
            let (pair, _) = text.split_once(';').unwrap_or((text, ""));
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| v.to_string())
        })
}

/// A signed-in user: access token and the refresh cookie value.
pub struct Session {
    pub token: String,
    pub refresh: String,
}

/// A test that fails half-way leaves its containers, images and volumes behind; whatever still carries
/// this app's `shard.instance` label is removed when the app goes away (only this test's own
/// objects: every test app has its own secret key, hence its own instance id).
impl Drop for TestApp {
    fn drop(&mut self) {
        let filter = format!("label=shard.instance={}", self.state.docker.instance());
        let ids = |args: &[&str]| -> Vec<String> {
            std::process::Command::new("docker")
                .args(args)
                .args(["--filter", &filter, "-q"])
                .output()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .split_whitespace()
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        let containers = ids(&["ps", "-a"]);
        if !containers.is_empty() {
            let _ = std::process::Command::new("docker")
                .args(["rm", "-f"])
                .args(&containers)
                .output();
        }
        let images = ids(&["images"]);
        if !images.is_empty() {
            let _ = std::process::Command::new("docker")
                .args(["rmi", "-f"])
                .args(&images)
                .output();
        }
        // Volumes outlive their projects by design; a test's go with the test.
        let volumes = ids(&["volume", "ls"]);
        if !volumes.is_empty() {
            let _ = std::process::Command::new("docker")
                .args(["volume", "rm", "-f"])
                .args(&volumes)
                .output();
        }
        let networks = ids(&["network", "ls"]);
        if !networks.is_empty() {
            let _ = std::process::Command::new("docker")
                .args(["network", "rm"])
                .args(&networks)
                .output();
        }
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn setup_token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("setup-token"))
            .unwrap()
            .trim()
            .to_string()
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.send(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.send(reqwest::Method::GET, path, token, None).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.send(reqwest::Method::PUT, path, token, Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Response {
        self.send(reqwest::Method::DELETE, path, token, None).await
    }

    /// The served OpenAPI document.
    pub async fn openapi(&self) -> Value {
        self.get("/api/v1/openapi.json", None)
            .await
            .json()
            .await
            .unwrap()
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    pub async fn refresh_with(&self, cookie: &str) -> Response {
        self.client
            .post(self.url("/api/v1/auth/refresh"))
            .header(reqwest::header::COOKIE, format!("shard_refresh={cookie}"))
            .send()
            .await
            .unwrap()
    }

    /// Completes first-run setup as `admin`.
    pub async fn setup_admin(&self) -> Session {
        let response = self
            .post(
                "/api/v1/auth/setup",
                None,
                json!({"token": self.setup_token(), "username": "admin", "password": PASSWORD}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        session_of(response).await
    }

    pub async fn login(&self, username: &str, password: &str) -> Response {
        self.post(
            "/api/v1/auth/login",
            None,
            json!({"username": username, "password": password}),
        )
        .await
    }

    /// Creates a member through the admin API and signs them in.
    pub async fn member(&self, admin: &Session, username: &str) -> Session {
        let created = self
            .post(
                "/api/v1/users",
                Some(&admin.token),
                json!({"username": username, "password": PASSWORD}),
            )
            .await;
        assert_eq!(created.status(), StatusCode::CREATED);
        let response = self.login(username, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::OK);
        session_of(response).await
    }

    pub async fn create_project(&self, session: &Session, name: &str) -> Value {
        let response = self
            .post("/api/v1/projects", Some(&session.token), json!({"name": name, "git_url": "https://example.com/acme/app.git", "branch": "main"}))
            .await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "{}",
            response.text().await.unwrap()
        );
        response.json().await.unwrap()
    }
}

pub async fn session_of(response: Response) -> Session {
    let refresh = cookie_value(&response, "shard_refresh").expect("refresh cookie set");
    let body: Value = response.json().await.unwrap();
    Session {
        token: body["access_token"].as_str().unwrap().to_string(),
        refresh,
    }
}

/// Asserts an error response: status, stable code, and (for 422) the field.
pub async fn assert_error(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body
}

pub async fn assert_invalid(response: Response, field: &str) {
    let body = assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(body["error"]["field"], field, "{body}");
}

/// Deploy helpers (the deploy and WebSocket tests).
impl TestApp {
    pub async fn project_for(&self, session: &Session, name: &str, url: &str) -> String {
        let response = self
            .post(
                "/api/v1/projects",
                Some(&session.token),
                json!({"name": name, "git_url": url, "health_timeout_secs": 20}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn deploy(&self, session: &Session, project: &str, body: Value) -> String {
        let response = self
            .post(
                &format!("/api/v1/projects/{project}/deployments"),
                Some(&session.token),
                body,
            )
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "queued");
        body["id"].as_str().unwrap().to_string()
    }

    /// `DELETE /api/v1/projects/{project}` as `session`.
    pub async fn delete_project(&self, session: &Session, project: &str) -> Response {
        self.send(
            reqwest::Method::DELETE,
            &format!("/api/v1/projects/{project}"),
            Some(&session.token),
            None,
        )
        .await
    }

    pub async fn deployment(&self, session: &Session, id: &str) -> Value {
        self.get(&format!("/api/v1/deployments/{id}"), Some(&session.token))
            .await
            .json()
            .await
            .unwrap()
    }

    pub async fn wait_for(
        &self,
        session: &Session,
        id: &str,
        statuses: &[&str],
        within: Duration,
    ) -> Value {
        self.deployment_when(session, id, within, |d| {
            statuses.contains(&d["status"].as_str().unwrap_or(""))
        })
        .await
    }

    /// The deployment as the API shows it once `ready` holds (failing after `within`).
    pub async fn deployment_when(
        &self,
        session: &Session,
        id: &str,
        within: Duration,
        ready: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let d = self.deployment(session, id).await;
            if ready(&d) {
                return d;
            }
            assert!(Instant::now() < deadline, "deployment stuck: {d}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Deploys `project` and waits (up to `within`) for the deployment to end live, failing
    /// with its log otherwise; answers its id.
    pub async fn deploy_live(
        &self,
        session: &Session,
        project: &str,
        body: Value,
        within: Duration,
    ) -> String {
        let id = self.deploy(session, project, body).await;
        let done = self.wait_for(session, &id, FINAL, within).await;
        assert_eq!(
            done["status"],
            "live",
            "{}",
            self.logs_text(session, &id).await
        );
        id
    }

    pub async fn logs_text(&self, session: &Session, id: &str) -> String {
        let lines: Vec<Value> = self
            .get(
                &format!("/api/v1/deployments/{id}/logs"),
                Some(&session.token),
            )
            .await
            .json()
            .await
            .unwrap();
        for (i, line) in lines.iter().enumerate() {
            assert_eq!(
                line["seq"],
                json!(i + 1),
                "log seq has a gap or is out of order"
            );
        }
        lines
            .iter()
            .map(|l| l["line"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }
}
