//! Crash safety on a real `shard serve` process: SIGKILL at chosen pipeline steps and at
//! random moments across many deploys, restart on the same data dir, then check that nothing
//! is left in progress, exactly one deployment is live and answers, and no container, image or
//! build directory is left behind.

use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{Value, json};

use crate::deploy::{app_files, docker_ids};
use crate::gitserver::{GitServer, Repo};
use crate::helpers::fresh_database_url;
use crate::process::Serve;

const IN_PROGRESS: &[&str] = &[
    "queued",
    "fetching",
    "building",
    "starting",
    "health_checking",
];

/// A build step that takes a moment and a health check that passes only after a second, so
/// every step lasts long enough to be hit.
fn slow_files(version: &str) -> crate::deploy::Files {
    let mut files = app_files(version, "RUN [\"/bin/busybox\", \"sleep\", \"0.5\"]\n");
    for file in files.iter_mut() {
        if file.0 == "Dockerfile" {
            let text = String::from_utf8(file.1.clone()).unwrap().replace(
                "CMD [\"/bin/busybox\", \"httpd\"",
                "CMD [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox sleep 1; exec /bin/busybox httpd -f -p 8080 -h /www\"]\n#",
            );
            file.1 = text.into_bytes();
        }
    }
    files
}

struct Harness {
    serve: Serve,
    _dir: tempfile::TempDir,
    token: String,
    project: String,
}

impl Harness {
    async fn start(repo: &Repo) -> Harness {
        let dir = tempfile::TempDir::new().unwrap();
        let serve = Serve::start(
            dir.path(),
            fresh_database_url().await,
            &[
                ("SHARD_DEPLOY__GRACE_SECS", "0"),
                ("SHARD_JOBS__LEASE_SECS", "5"),
            ],
        )
        .await;
        let token = serve.setup_admin().await;
        let body = json!({"name": "crashy", "git_url": repo.url, "health_timeout_secs": 30});
        let project = serve.create_project(&token, body).await;
        Harness {
            serve,
            _dir: dir,
            token,
            project,
        }
    }

    async fn api(&self, method: reqwest::Method, path: &str) -> Value {
        self.serve.api(&self.token, method, path, None).await
    }

    async fn deploy(&self) -> String {
        let path = format!("/projects/{}/deployments", self.project);
        let d = self.api(reqwest::Method::POST, &path).await;
        d["id"].as_str().unwrap().to_string()
    }

    async fn deployments(&self) -> Vec<Value> {
        let path = format!("/projects/{}/deployments?limit=500", self.project);
        let list = self.api(reqwest::Method::GET, &path).await;
        list.as_array().unwrap().clone()
    }

    async fn status(&self, id: &str) -> String {
        let d = self
            .api(reqwest::Method::GET, &format!("/deployments/{id}"))
            .await;
        d["status"].as_str().unwrap().to_string()
    }

    /// SIGKILL, then a new process on the same data dir and database.
    async fn crash_and_restart(&mut self) {
        self.serve.kill();
        self.serve.spawn().await;
    }

    /// Waits until nothing is in progress and Docker agrees with the database, then checks
    /// every invariant. Returns the live deployment.
    async fn assert_settled(&self, expect_live: Option<&str>) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        let project_label = format!("label=shard.project={}", self.project);
        loop {
            let list = self.deployments().await;
            let busy: Vec<&Value> = list
                .iter()
                .filter(|d| IN_PROGRESS.contains(&d["status"].as_str().unwrap()))
                .collect();
            let live: Vec<&Value> = list.iter().filter(|d| d["status"] == "live").collect();
            let containers = docker_ids(&["ps", "-aq", "--filter", &project_label]);
            let recorded: Vec<String> = list
                .iter()
                .filter_map(|d| d["image"].as_str().map(str::to_string))
                .collect();
            let images = docker_ids(&[
                "images",
                "--format",
                "{{.Repository}}:{{.Tag}}",
                "--filter",
                &project_label,
            ]);
            let stray_images: Vec<&str> = images
                .lines()
                .filter(|tag| !recorded.iter().any(|r| r == tag))
                .collect();
            // Intermediate layers of cut-off builds (labelled with the deployment only).
            let ours: Vec<&str> = list.iter().filter_map(|d| d["id"].as_str()).collect();
            let dangling = docker_ids(&[
                "images",
                "-q",
                "--filter",
                "dangling=true",
                "--filter",
                "label=shard.deployment",
            ]);
            let mut labels = String::new();
            if !dangling.is_empty() {
                let mut args = vec![
                    "inspect",
                    "--format",
                    "{{.Id}} {{index .Config.Labels \"shard.deployment\"}}",
                ];
                args.extend(dangling.lines());
                // The sweep may remove an image between the listing and this look: what is
                // gone is fine, so a failed inspect still yields the labels it could read.
                let out = std::process::Command::new("docker")
                    .args(&args)
                    .output()
                    .unwrap();
                labels = String::from_utf8_lossy(&out.stdout).into_owned();
            }
            let stray_layers: Vec<&str> = labels
                .lines()
                .filter(|l| ours.iter().any(|id| l.contains(id)))
                .collect();
            let builds = std::fs::read_dir(self.serve.dir.join("builds"))
                .map(|d| d.count())
                .unwrap_or(0);
            let settled = busy.is_empty()
                && live.len() == 1
                && containers.lines().count() == 1
                && stray_images.is_empty()
                && stray_layers.is_empty()
                && builds == 0;
            if settled {
                let live = live[0].clone();
                if let Some(expected) = expect_live {
                    assert_eq!(live["id"], expected, "another deployment is live");
                }
                let upstream = live["upstream"].as_str().unwrap();
                let page = reqwest::get(format!("http://{upstream}/")).await.unwrap();
                assert!(
                    page.status().is_success(),
                    "the live deployment does not answer"
                );
                assert!(page.text().await.unwrap().starts_with("version "));
                return live;
            }
            assert!(
                Instant::now() < deadline,
                "not settled: in progress {busy:?}, live {}, containers {containers:?}, stray images {stray_images:?}, stray build layers {stray_layers:?}, build dirs {builds}",
                live.len()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Deploys and waits for it to go live (no crash).
    async fn deploy_live(&self) -> String {
        let id = self.deploy().await;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let status = self.status(&id).await;
            if status == "live" {
                return id;
            }
            if ["failed", "cancelled"].contains(&status.as_str()) {
                let d = self
                    .api(reqwest::Method::GET, &format!("/deployments/{id}"))
                    .await;
                panic!(
                    "deploy {id} ended {status} at {}: {}",
                    d["error_step"], d["error"]
                );
            }
            assert!(Instant::now() < deadline, "deploy {id} stuck at {status}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

const ORDER: &[&str] = &[
    "queued",
    "fetching",
    "building",
    "starting",
    "health_checking",
    "live",
];

/// SIGKILL when a deploy reaches each step (or the first moment after it that polling sees):
/// the previous version keeps serving until the new one is live, and nothing is left behind.
#[tokio::test]
async fn a_crash_at_each_pipeline_step_leaves_one_live_deployment_and_nothing_behind() {
    let git = GitServer::start().await;
    let repo = git.repo("crashy", &slow_files("0"));
    let mut h = Harness::start(&repo).await;
    let mut live = h.deploy_live().await;
    for (n, step) in [
        "fetching",
        "building",
        "starting",
        "health_checking",
        "live",
    ]
    .into_iter()
    .enumerate()
    {
        repo.commit(&slow_files(&format!("{}", n + 1)), step);
        let id = h.deploy().await;
        let wanted = ORDER.iter().position(|s| *s == step).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let reached = loop {
            let status = h.status(&id).await;
            match ORDER.iter().position(|s| *s == status) {
                Some(at) if at >= wanted => break status,
                Some(_) => {}
                None => panic!("deploy ended {status} before {step}"),
            }
            assert!(Instant::now() < deadline, "never reached {step}");
            tokio::time::sleep(Duration::from_millis(3)).await;
        };
        h.crash_and_restart().await;
        let expect = if reached == "live" {
            id.clone()
        } else {
            live.clone()
        };
        let now_live = h.assert_settled(Some(&expect)).await;
        live = now_live["id"].as_str().unwrap().to_string();
        if reached != "live" {
            let status = h.status(&id).await;
            assert_eq!(
                status, "failed",
                "a deploy killed at {reached} ended {status}"
            );
        }
    }
}

/// SIGKILL at random moments across many deploys and restarts (`CHAOS_ROUNDS`, default 6),
/// then one clean deploy: it goes live and nothing else survives.
#[tokio::test]
async fn chaos_sigkill_at_random_moments_leaves_nothing_behind() {
    let rounds: usize = std::env::var("CHAOS_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(6);
    let seed: u64 = rand::rng().random();
    eprintln!("chaos seed {seed}, {rounds} rounds");
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    let git = GitServer::start().await;
    let repo = git.repo("crashy", &slow_files("0"));
    let mut h = Harness::start(&repo).await;
    h.deploy_live().await;
    for round in 0..rounds {
        repo.commit(&slow_files(&format!("chaos {round}")), "round");
        for _ in 0..rng.random_range(1..=2) {
            h.deploy().await;
        }
        let wait = rng.random_range(0..4000);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        h.crash_and_restart().await;
    }
    repo.commit(&slow_files("final"), "final");
    let last = h.deploy_live().await;
    h.assert_settled(Some(&last)).await;
}
