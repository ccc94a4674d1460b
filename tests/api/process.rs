//! `shard serve` as a child process, for what only a real process shows: its memory (VmRSS,
//! VmHWM from /proc), a SIGKILL at any moment, a restart on the same data dir, a second
//! process on a data dir in use.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, free_port};

pub const BIN: &str = env!("CARGO_BIN_EXE_shard");

pub struct Serve {
    pub base: String,
    pub port: u16,
    pub dir: PathBuf,
    pub db_url: Option<String>,
    envs: Vec<(String, String)>,
    child: Option<Child>,
}

impl Serve {
    /// Starts `shard serve` on `dir` with extra `SHARD_*` variables and waits for `/health`.
    pub async fn start(dir: &Path, db_url: Option<String>, envs: &[(&str, &str)]) -> Serve {
        Self::start_on(free_port(), dir, db_url, envs).await
    }

    /// [`Serve::start`] listening on `port`.
    pub async fn start_on(
        port: u16,
        dir: &Path,
        db_url: Option<String>,
        envs: &[(&str, &str)],
    ) -> Serve {
        let mut serve = Serve {
            base: format!("http://127.0.0.1:{port}"),
            port,
            dir: dir.to_path_buf(),
            db_url,
            envs: envs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
        };
        serve.spawn().await;
        serve
    }

    /// The command line of this server (also for a second process on the same data dir).
    pub fn command(&self) -> Command {
        let mut command = Command::new(BIN);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SHARD_DATA_DIR", &self.dir)
            .env("SHARD_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("SHARD_LOG__LEVEL", "warn")
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(["serve"])
            .stdout(Stdio::null());
        if let Some(url) = &self.db_url {
            command.env("SHARD_DATABASE_URL", url);
        }
        command
    }

    /// Starts the process again (after `kill`) and waits until it answers.
    pub async fn spawn(&mut self) {
        // SHARD_TEST_SERVE_STDERR=1 shows the server's log (for debugging a test).
        let stderr = match std::env::var_os("SHARD_TEST_SERVE_STDERR") {
            Some(_) => Stdio::inherit(),
            None => Stdio::null(),
        };
        let child = self.command().stderr(stderr).spawn().expect("shard binary");
        self.child = Some(child);
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = client.get(format!("{}/health", self.base)).send().await
                && r.status().is_success()
            {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("shard serve exited with {status} before it answered");
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "shard serve did not answer"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// A `/proc/<pid>/status` field in KiB (`VmRSS`, `VmHWM`).
    pub fn status_kib(&self, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    /// SIGKILL: no cleanup of any kind runs.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Creates the first admin with the setup token; returns an access token.
    pub async fn setup_admin(&self) -> String {
        let token = std::fs::read_to_string(self.dir.join("setup-token")).unwrap();
        let response = reqwest::Client::new()
            .post(format!("{}/api/v1/auth/setup", self.base))
            .json(&json!({"token": token.trim(), "username": "admin", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_string()
    }

    /// `method /api/v1{path}` as `token`; the JSON answer of a successful request.
    pub async fn api(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let mut request = reqwest::Client::new()
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    /// Creates a project from `body`; returns its id.
    pub async fn create_project(&self, token: &str, body: Value) -> String {
        let project = self
            .api(token, reqwest::Method::POST, "/projects", Some(body))
            .await;
        project["id"].as_str().unwrap().to_string()
    }

    /// Starts a deploy of `project`; answers the deployment's id.
    pub async fn start_deploy(&self, token: &str, project: &str) -> String {
        self.api(
            token,
            reqwest::Method::POST,
            &format!("/projects/{project}/deployments"),
            Some(json!({})),
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Deploys `project` and waits until it is live (the log in the panic otherwise);
    /// answers the deployment's id.
    pub async fn deploy_live(&self, token: &str, project: &str) -> String {
        let id = self.start_deploy(token, project).await;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let path = format!("/deployments/{id}");
            let d = self.api(token, reqwest::Method::GET, &path, None).await;
            if d["status"] == "live" {
                return id;
            }
            if d["status"] == "failed" || Instant::now() > deadline {
                let path = format!("/deployments/{id}/logs");
                let logs = self.api(token, reqwest::Method::GET, &path, None).await;
                panic!("{d}\n{logs}");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    pub async fn login(&self) -> String {
        let response = reqwest::Client::new()
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&json!({"username": "admin", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_string()
    }
}

impl Drop for Serve {
    /// Kills the process, then removes whatever its installation left in Docker (found by its
    /// instance label, derived from the data dir's secret key, as shard itself does).
    fn drop(&mut self) {
        self.kill();
        let Ok(text) = std::fs::read_to_string(self.dir.join("secret.key")) else {
            return;
        };
        let Some(key) = shard::config::parse_secret_key(text.trim()) else {
            return;
        };
        let filter = format!("label=shard.instance={}", shard::secrets::instance_id(&key));
        let ids = |args: &[&str]| -> Vec<String> {
            Command::new("docker")
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
        for (list, remove) in [
            (vec!["ps", "-a"], vec!["rm", "-f"]),
            (vec!["images"], vec!["rmi", "-f"]),
            (vec!["network", "ls"], vec!["network", "rm"]),
        ] {
            let found = ids(&list);
            if !found.is_empty() {
                let _ = Command::new("docker").args(&remove).args(&found).output();
            }
        }
    }
}
