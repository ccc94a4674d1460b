//! Apps across a two-node Docker Swarm made on this machine by `scripts/swarm-lab` (the host
//! engine as manager, a second dockerd in a network namespace, a registry with a throwaway
//! CA). One test walks every scenario in order, because stopping node 2 would disturb any
//! other Swarm test running beside it: replicas on both nodes, placement by label, a rolling
//! update under load, the loss of node 2.

use std::collections::{BTreeSet, HashMap};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::deploy::{app_files, docker_ids};
use crate::gitserver::GitServer;
use crate::helpers::*;
use crate::proxy::get_host;

const REGISTRY: &str = "10.251.0.1:5000";
/// The lab's registry that wants a user and password (see scripts/swarm-lab).
const AUTH_REGISTRY: &str = "10.251.0.1:5001";
const LAB_USER: &str = "shard-lab";
const LAB_PASSWORD: &str = "lab-registry-pass-7c1e";
const NODE2_ADDRESS: &str = "10.251.0.2";

fn lab(action: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/swarm-lab");
    let out = Command::new(script)
        .arg(action)
        .output()
        .expect("scripts/swarm-lab runs");
    assert!(
        out.status.success(),
        "swarm-lab {action}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The node ids the running tasks of `deployment`'s service are on, sorted (both lab nodes
/// share this machine's hostname, so ids tell them apart).
fn running_nodes(deployment: &str) -> Vec<String> {
    let services = docker_ids(&[
        "service",
        "ls",
        "-q",
        "--filter",
        &format!("label=shard.deployment={deployment}"),
    ]);
    let Some(service) = services.lines().next() else {
        return Vec::new();
    };
    let tasks = docker_ids(&[
        "service",
        "ps",
        "-q",
        service,
        "--filter",
        "desired-state=running",
    ]);
    if tasks.is_empty() {
        return Vec::new();
    }
    let mut args = vec!["inspect", "--format", "{{.NodeID}} {{.Status.State}}"];
    args.extend(tasks.lines());
    let mut nodes: Vec<String> = docker_ids(&args)
        .lines()
        .filter(|l| l.ends_with(" running"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    nodes.sort();
    nodes
}

/// The nodes as `GET /api/v1/nodes` lists them.
async fn nodes(app: &TestApp, admin: &Session) -> Vec<Value> {
    let response = app.get("/api/v1/nodes", Some(&admin.token)).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn swarm_app() -> TestApp {
    swarm_app_on(REGISTRY).await
}

async fn swarm_app_on(registry: &'static str) -> TestApp {
    spawn_app_with(move |c| {
        c.runtime.kind = shard::config::RuntimeKind::Swarm;
        // Polling all but off: the routes must follow Docker's events (a node down, a
        // replica's container starting) on their own.
        c.runtime.poll_ms = 60_000;
        c.registry.url = Some(registry.into());
        c.registry.ca_file = Some("/var/lib/shard-swarm-lab/ca.crt".into());
        c.deploy.grace_secs = 5;
        c.metrics.interval_secs = 1;
        // Only the live image is kept, so a redeploy prunes the previous one (registry too).
        c.deploy.keep_images = 1;
    })
    .await
}

async fn project(app: &TestApp, admin: &Session, name: &str, url: &str, extra: Value) -> String {
    let mut body = json!({"name": name, "git_url": url, "health_timeout_secs": 120});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let response = app.post("/api/v1/projects", Some(&admin.token), body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_string()
}

/// The distinct containers (their HOSTNAME) that answer `host` over `tries` requests.
async fn answering(app: &TestApp, host: &str, tries: usize) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for _ in 0..tries {
        let response = get_host(app, host, "/cgi-bin/env").await;
        assert_eq!(response.status(), StatusCode::OK);
        let text = response.text().await.unwrap();
        if let Some(name) = text.lines().find_map(|l| l.strip_prefix("HOSTNAME=")) {
            seen.insert(name.to_string());
        }
    }
    seen
}

/// Requests `host` from `workers` loops until stopped; counts answers by body and failures.
struct Load {
    stop: Arc<AtomicBool>,
    failures: Arc<AtomicUsize>,
    bodies: Arc<std::sync::Mutex<HashMap<String, usize>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(base: &str, host: &str, workers: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(AtomicUsize::new(0));
        let bodies = Arc::new(std::sync::Mutex::new(HashMap::new()));
        let tasks = (0..workers)
            .map(|_| {
                let (stop, failures, bodies) = (stop.clone(), failures.clone(), bodies.clone());
                let (url, host) = (format!("{base}/"), host.to_string());
                tokio::spawn(async move {
                    let client = reqwest::Client::new();
                    while !stop.load(Ordering::Relaxed) {
                        let answer = client
                            .get(&url)
                            .header("host", &host)
                            .timeout(Duration::from_secs(10))
                            .send()
                            .await;
                        match answer {
                            Ok(r) if r.status() == StatusCode::OK => {
                                let body = r.text().await.unwrap_or_default();
                                *bodies.lock().unwrap().entry(body).or_default() += 1;
                            }
                            _ => {
                                failures.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            failures,
            bodies,
            tasks,
        }
    }

    async fn finish(self) -> (usize, HashMap<String, usize>) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        let bodies = self.bodies.lock().unwrap().clone();
        (self.failures.load(Ordering::Relaxed), bodies)
    }
}

/// A registry that wants credentials: a deploy fails at the push until an admin sets them,
/// then node 2 (the only one labelled for the project) pulls with them; the password is never
/// answered back and is sealed in the database.
async fn registry_credentials(git: &GitServer, node2_id: &str) {
    let app = swarm_app_on(AUTH_REGISTRY).await;
    let admin = app.setup_admin().await;
    let member = app.member(&admin, "max").await;
    let shown: Value = app
        .get("/api/v1/registry", Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["url"], AUTH_REGISTRY, "{shown}");
    assert_eq!(shown["password_set"], false, "{shown}");
    let set = |token: String, body: Value| {
        let app = &app;
        async move {
            app.send(
                Method::PUT,
                "/api/v1/registry/credentials",
                Some(&token),
                Some(body),
            )
            .await
        }
    };
    let body = json!({"username": LAB_USER, "password": LAB_PASSWORD});
    assert_eq!(
        set(member.token.clone(), body.clone()).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_invalid(
        set(
            admin.token.clone(),
            json!({"username": " ", "password": "x"}),
        )
        .await,
        "username",
    )
    .await;
    assert_invalid(
        set(
            admin.token.clone(),
            json!({"username": LAB_USER, "password": ""}),
        )
        .await,
        "password",
    )
    .await;

    let repo = git.repo("locked", &app_files("locked", ""));
    let locked = project(
        &app,
        &admin,
        "locked",
        &repo.url,
        json!({"placement": {"group": "edge"}}),
    )
    .await;
    let refused = app.deploy(&admin, &locked, json!({})).await;
    let done = app
        .wait_for(&admin, &refused, FINAL, Duration::from_secs(240))
        .await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error_step"], "push", "{done}");

    let saved = set(admin.token.clone(), body).await;
    assert_eq!(saved.status(), StatusCode::OK);
    let saved = saved.text().await.unwrap();
    assert!(
        !saved.contains(LAB_PASSWORD),
        "the password is never answered: {saved}"
    );
    let saved: Value = serde_json::from_str(&saved).unwrap();
    assert_eq!(saved["username"], LAB_USER);
    assert_eq!(saved["password_set"], true);
    let deployed = app
        .deploy_live(&admin, &locked, json!({}), Duration::from_secs(240))
        .await;
    assert_eq!(
        running_nodes(&deployed),
        [node2_id.to_string()],
        "pulled on node 2 with the credentials"
    );
    let response = get_host(&app, &format!("locked.localhost:{}", app.state.port), "/").await;
    assert_eq!(response.text().await.unwrap(), "version locked\n");

    use sea_orm::{ConnectionTrait, Statement};
    let rows = app
        .state
        .db
        .query_all_raw(Statement::from_string(
            app.state.db.get_database_backend(),
            "SELECT value_sealed FROM shared_values",
        ))
        .await
        .unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        let value: Vec<u8> = row.try_get("", "value_sealed").unwrap();
        assert!(
            !String::from_utf8_lossy(&value).contains(LAB_PASSWORD),
            "sealed at rest"
        );
    }
    assert_eq!(
        app.send(
            Method::DELETE,
            "/api/v1/registry/credentials",
            Some(&admin.token),
            None
        )
        .await
        .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete_project(&admin, &locked).await.status(),
        StatusCode::NO_CONTENT
    );
}

/// The watchdog over a service: a replica that keeps exiting is started again by the swarm,
/// each ended task counts as a restart, and at `crash_loop_restarts` the service is scaled to
/// none and the app shows `crashed` (no replica comes back) until it is started again. A
/// second shard with a quick watchdog, so the main one's node-loss steps are judged by the
/// default settings.
async fn crash_loop_under_swarm(git: &GitServer) {
    let app = spawn_app_with(|c| {
        c.runtime.kind = shard::config::RuntimeKind::Swarm;
        c.registry.url = Some(REGISTRY.into());
        c.registry.ca_file = Some("/var/lib/shard-swarm-lab/ca.crt".into());
        c.deploy.grace_secs = 0;
        c.health.interval_secs = 1;
        c.health.failures = 2;
        c.health.crash_loop_restarts = 3;
        c.health.crash_loop_window_secs = 300;
    })
    .await;
    let admin = app.setup_admin().await;
    let files = crate::watchdog::app_running(
        "/bin/busybox httpd -p 8080 -h /www; /bin/busybox sleep 4; exit 1",
    );
    let repo = git.repo("crashy", &files);
    let crashy = project(
        &app,
        &admin,
        "crashy",
        &repo.url,
        json!({"health_path": "/health.html"}),
    )
    .await;
    let first = app
        .deploy_live(&admin, &crashy, json!({}), Duration::from_secs(240))
        .await;
    let view = async || -> Value {
        app.get(&format!("/api/v1/projects/{crashy}"), Some(&admin.token))
            .await
            .json()
            .await
            .unwrap()
    };
    // ("crashed" shows between the swarm's restarts too; the halt is the service's spec.)
    let service = docker_ids(&[
        "service",
        "ls",
        "-q",
        "--filter",
        &format!("label=shard.deployment={first}"),
    ]);
    let wanted = || {
        docker_ids(&[
            "service",
            "inspect",
            "-f",
            "{{.Spec.Mode.Replicated.Replicas}}",
            service.trim(),
        ])
    };
    crate::watchdog::until(
        "the crash-looping service scaled to none",
        120,
        async || (wanted().trim() == "0").then_some(()),
    )
    .await;
    let ended = docker_ids(&[
        "service",
        "ps",
        "-q",
        "--filter",
        "desired-state=shutdown",
        service.trim(),
    ]);
    assert!(
        ended.lines().count() >= 3,
        "halted after 3 restarts by the swarm: {ended}"
    );
    crate::watchdog::until("crashed once halted", 5, async || {
        (view().await["runtime"] == "crashed").then_some(())
    })
    .await;
    // And it stays so: the replica being stopped is not routed again, none comes back.
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(view().await["runtime"], "crashed");
    }
    assert!(running_nodes(&first).is_empty(), "no replica came back");
    // Started by hand, it runs again (until it crashes: it is the same app).
    let started = app
        .send(
            Method::POST,
            &format!("/api/v1/projects/{crashy}/start"),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(started.status(), StatusCode::OK);
    assert_eq!(view().await["runtime"], "running");
    assert_eq!(
        app.delete_project(&admin, &crashy).await.status(),
        StatusCode::NO_CONTENT
    );
}

/// The app files with a command that prints a line naming its replica before serving
/// (`httpd -v` then logs each request too).
fn announcing(mut files: crate::deploy::Files) -> crate::deploy::Files {
    let dockerfile = String::from_utf8(crate::deploy::dockerfile("")).unwrap();
    let cmd = r#"CMD ["/bin/busybox", "sh", "-c", "echo replica $HOSTNAME up; exec /bin/busybox httpd -f -v -p 8080 -h /www"]"#;
    let dockerfile: String = dockerfile
        .lines()
        .map(|l| if l.starts_with("CMD ") { cmd } else { l })
        .map(|l| format!("{l}\n"))
        .collect();
    for file in files.iter_mut().filter(|f| f.0 == "Dockerfile") {
        file.1 = dockerfile.clone().into_bytes();
    }
    files
}

/// What sits above the runtime seam works for a service as for a container: runtime logs
/// gather both replicas' output (one on each node), samples come from the replica on this
/// machine, and stop then start leaves the app running and routed the moment start answers.
async fn runtime_seam_under_swarm(app: &TestApp, admin: &Session, project: &str, host: &str) {
    let topic = format!("project:{project}:logs");
    let mut ws = crate::instances::subscribe(app, &admin.token, &topic).await;
    let mut replicas = BTreeSet::new();
    let started = Instant::now();
    crate::instances::events_until(&mut ws, |event| {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "runtime logs of both replicas within 60 s: {replicas:?}"
        );
        if event["topic"] == topic.as_str()
            && let Some(name) = event["line"]
                .as_str()
                .and_then(|l| l.strip_prefix("replica "))
        {
            replicas.insert(name.trim_end_matches(" up").to_string());
        }
        replicas.len() == 2
    })
    .await;

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let from = (chrono::Utc::now() - chrono::Duration::minutes(5)).timestamp();
        let view: Value = app
            .get(
                &format!("/api/v1/projects/{project}/metrics?from={from}&step=1"),
                Some(&admin.token),
            )
            .await
            .json()
            .await
            .unwrap();
        let points = view["points"].as_array().cloned().unwrap_or_default();
        if points.iter().any(|p| p["memory_bytes"].as_i64() > Some(0)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no samples of the service: {view}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let control = |action: &'static str| async move {
        app.post(
            &format!("/api/v1/projects/{project}/{action}"),
            Some(&admin.token),
            json!({}),
        )
        .await
    };
    let view = || async {
        let view: Value = app
            .get(&format!("/api/v1/projects/{project}"), Some(&admin.token))
            .await
            .json()
            .await
            .unwrap();
        view
    };
    assert_eq!(control("stop").await.status(), StatusCode::OK);
    let stopped = view().await;
    assert_eq!(stopped["runtime"], "stopped", "{stopped}");
    assert_eq!(control("start").await.status(), StatusCode::OK);
    let started = view().await;
    assert_eq!(
        started["runtime"], "running",
        "routed once start answers: {started}"
    );
    assert_eq!(get_host(app, host, "/").await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apps_spread_over_two_swarm_nodes_follow_placement_survive_updates_and_node_loss() {
    lab("up");
    // Services a crashed earlier run left behind (this is the only Swarm test).
    let leftovers = docker_ids(&[
        "service",
        "ls",
        "-q",
        "--filter",
        "label=shard.managed=true",
    ]);
    for id in leftovers.lines() {
        // One may be going already (its owner is deleting it): that is as good.
        let _ = Command::new("docker").args(["service", "rm", id]).output();
    }
    let app = swarm_app().await;
    let admin = app.setup_admin().await;
    let port = app.state.port;
    let git = GitServer::start().await;

    // The nodes, as the API lists them.
    let listed = nodes(&app, &admin).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().all(|n| n["state"] == "ready"), "{listed:?}");
    let node2 = listed
        .iter()
        .find(|n| n["address"] == NODE2_ADDRESS)
        .expect("node 2 listed at its address");
    assert!(listed.iter().any(|n| n["this_machine"] == true));
    let node2_id = node2["id"].as_str().unwrap().to_string();

    // 1. Two replicas land on both nodes and both answer through the proxy.
    let repo = git.repo("spread", &announcing(app_files("1", "")));
    let spread = project(&app, &admin, "spread", &repo.url, json!({"replicas": 2})).await;
    let started = Instant::now();
    let first = app
        .deploy_live(&admin, &spread, json!({}), Duration::from_secs(240))
        .await;
    println!("two-replica deploy: {:?}", started.elapsed());
    let on = running_nodes(&first);
    assert_eq!(on.len(), 2, "{on:?}");
    assert_ne!(on[0], on[1], "one replica on each node: {on:?}");
    let host = format!("spread.localhost:{port}");
    let seen = answering(&app, &host, 12).await;
    assert_eq!(seen.len(), 2, "both replicas answer: {seen:?}");
    let log = app.logs_text(&admin, &first).await;
    assert!(
        log.contains(&format!("==> Pushing {REGISTRY}/shard/spread:")),
        "{log}"
    );
    runtime_seam_under_swarm(&app, &admin, &spread, &host).await;
    // Start answers once one replica runs; the swarm brings the other up after it.
    let waited = Instant::now();
    loop {
        let with_replicas = nodes(&app, &admin).await;
        if with_replicas
            .iter()
            .all(|n| n["replicas"].as_u64() >= Some(1))
        {
            break;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "a replica on each node again within 30 s of start: {with_replicas:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // 2. Node labels through the API, then a placement that only node 2 satisfies.
    let member = app.member(&admin, "mia").await;
    let patch = |token: String, id: String, body: Value| {
        let app = &app;
        async move {
            app.send(
                Method::PATCH,
                &format!("/api/v1/nodes/{id}"),
                Some(&token),
                Some(body),
            )
            .await
        }
    };
    let refused = patch(
        member.token.clone(),
        node2_id.clone(),
        json!({"labels": {"group": "edge"}}),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_invalid(
        patch(
            admin.token.clone(),
            node2_id.clone(),
            json!({"labels": {"group": "a==b"}}),
        )
        .await,
        "labels",
    )
    .await;
    assert_invalid(
        patch(
            admin.token.clone(),
            node2_id.clone(),
            json!({"availability": "gone"}),
        )
        .await,
        "availability",
    )
    .await;
    let missing = patch(
        admin.token.clone(),
        "nosuchnode".into(),
        json!({"labels": {}}),
    )
    .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let labelled = patch(
        admin.token.clone(),
        node2_id.clone(),
        json!({"labels": {"group": "edge"}}),
    )
    .await;
    assert_eq!(labelled.status(), StatusCode::OK);
    let labelled: Value = labelled.json().await.unwrap();
    assert_eq!(labelled["labels"], json!({"group": "edge"}));
    assert_invalid(
        app.post(
            "/api/v1/projects",
            Some(&admin.token),
            json!({"name": "bad", "git_url": repo.url, "placement": {"group": "edge || x"}}),
        )
        .await,
        "placement",
    )
    .await;
    for replicas in [0, 33] {
        assert_invalid(
            app.post(
                "/api/v1/projects",
                Some(&admin.token),
                json!({"name": "bad", "git_url": repo.url, "replicas": replicas}),
            )
            .await,
            "replicas",
        )
        .await;
    }
    let edge_repo = git.repo("edge", &app_files("edge", ""));
    let edge = project(
        &app,
        &admin,
        "edge",
        &edge_repo.url,
        json!({"replicas": 2, "placement": {"group": "edge"}}),
    )
    .await;
    let edge_deploy = app
        .deploy_live(&admin, &edge, json!({}), Duration::from_secs(240))
        .await;
    assert_eq!(
        running_nodes(&edge_deploy),
        [node2_id.clone(), node2_id.clone()],
        "both edge replicas on node 2"
    );
    let response = get_host(&app, &format!("edge.localhost:{port}"), "/").await;
    assert_eq!(response.text().await.unwrap(), "version edge\n");
    assert_eq!(
        app.delete_project(&admin, &edge).await.status(),
        StatusCode::NO_CONTENT
    );
    registry_credentials(&git, &node2_id).await;
    crash_loop_under_swarm(&git).await;

    // 3. A rolling update under load: not one failed request, and the new version takes over.
    let load = Load::start(&app.base, &host, 4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    repo.commit(&app_files("2", ""), "version 2");
    let second = app
        .deploy_live(&admin, &spread, json!({}), Duration::from_secs(240))
        .await;
    tokio::time::sleep(Duration::from_secs(7)).await; // past the old service's drain
    let (failed, bodies) = load.finish().await;
    assert_eq!(
        failed, 0,
        "requests failed during the rolling update: {bodies:?}"
    );
    assert!(
        bodies.get("version 1\n").is_some_and(|n| *n > 0),
        "{bodies:?}"
    );
    assert!(
        bodies.get("version 2\n").is_some_and(|n| *n > 0),
        "{bodies:?}"
    );
    let first_status = app.deployment(&admin, &first).await;
    assert_eq!(first_status["status"], "superseded");
    assert!(running_nodes(&first).is_empty(), "the old service is gone");
    // The superseded image leaves the registry too; the live one stays. (The lab registry
    // outlives test runs, so only this run's tags are looked at.)
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let tags = registry_tags("shard/spread").await;
        if !tags.contains(&first) && tags.contains(&second) {
            break;
        }
        assert!(Instant::now() < deadline, "registry tags: {tags:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // 4. Node 2's engine stops: traffic moves to node 1, and the swarm reschedules there.
    let on = running_nodes(&second);
    assert_eq!(on.len(), 2);
    let load = Load::start(&app.base, &host, 4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let lost = Instant::now();
    lab("stop-node2");
    // Detection: the route table no longer lists a replica on node 2.
    let routed_away = loop {
        let routes = app.state.proxy.replica_endpoints(second.parse().unwrap());
        if !routes.is_empty() && routes.iter().all(|e| !e.starts_with(NODE2_ADDRESS)) {
            break lost.elapsed();
        }
        assert!(
            lost.elapsed() < Duration::from_secs(120),
            "still routed to node 2: {routes:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let failed_before = load.failures.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let failed_after = load.failures.load(Ordering::Relaxed) - failed_before;
    println!(
        "node loss: routed around node 2 after {routed_away:?}; failures before detection {failed_before}"
    );
    assert_eq!(failed_after, 0, "no failed request after detection");
    // The swarm puts the lost replica back on node 1.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let routes = app.state.proxy.replica_endpoints(second.parse().unwrap());
        if routes.len() == 2 && routes.iter().all(|e| e.starts_with("127.0.0.1:")) {
            println!("rescheduled on node 1 after {:?}", lost.elapsed());
            break;
        }
        assert!(Instant::now() < deadline, "not rescheduled: {routes:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (failed, _) = load.finish().await;
    assert_eq!(failed, failed_before, "no failure after detection");
    let listed = nodes(&app, &admin).await;
    let node2 = listed
        .iter()
        .find(|n| n["id"] == node2_id.as_str())
        .unwrap();
    assert_ne!(node2["state"], "ready", "{node2}");

    // A volume: the service is pinned to this machine's node, where shard made the volume, and
    // what the app writes there survives a redeploy; two replicas are refused.
    let this_node = listed
        .iter()
        .find(|n| n["this_machine"] == true)
        .expect("this machine listed")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let keeper_repo = git.repo("keeper", &crate::volumes::writer_files("1"));
    let keeper = project(&app, &admin, "keeper", &keeper_repo.url, json!({})).await;
    let added = app
        .post(
            &format!("/api/v1/projects/{keeper}/volumes"),
            Some(&admin.token),
            json!({"name": "data", "mount_path": "/data"}),
        )
        .await;
    assert_eq!(added.status(), StatusCode::CREATED);
    let pinned = app
        .deploy_live(&admin, &keeper, json!({}), Duration::from_secs(240))
        .await;
    assert_eq!(running_nodes(&pinned), vec![this_node.clone()]);
    assert!(
        app.logs_text(&admin, &pinned)
            .await
            .contains("where its volumes are"),
        "the log says why it is pinned"
    );
    assert_eq!(
        crate::volumes::log(&app, "keeper.localhost", "one").await,
        "one\n"
    );
    // A file mount travels as a Docker config, read-only at its path in the replica.
    let put = app
        .client
        .put(app.url(&format!("/api/v1/projects/{keeper}/files/www/motd.txt")))
        .bearer_auth(&admin.token)
        .body("hello from a config\n")
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    keeper_repo.commit(&[("www/index.html", b"version 2\n".to_vec(), false)], "v2");
    let again = app
        .deploy_live(&admin, &keeper, json!({}), Duration::from_secs(240))
        .await;
    assert_eq!(running_nodes(&again), vec![this_node]);
    assert_eq!(
        crate::volumes::log(&app, "keeper.localhost", "two").await,
        "one\ntwo\n"
    );
    let motd = get_host(&app, "keeper.localhost", "/motd.txt").await;
    assert_eq!(motd.text().await.unwrap(), "hello from a config\n");
    let configs = docker_ids(&["config", "ls", "-q", "--filter", "label=shard.managed=true"]);
    assert_eq!(configs.lines().count(), 1, "{configs}");
    let two = app
        .send(
            Method::PATCH,
            &format!("/api/v1/projects/{keeper}"),
            Some(&admin.token),
            Some(json!({"replicas": 2})),
        )
        .await;
    assert_eq!(two.status(), StatusCode::CONFLICT);
    assert_eq!(
        app.delete_project(&admin, &keeper).await.status(),
        StatusCode::NO_CONTENT
    );

    lab("start-node2");
    assert_eq!(
        app.delete_project(&admin, &spread).await.status(),
        StatusCode::NO_CONTENT
    );
    let left = docker_ids(&[
        "service",
        "ls",
        "-q",
        "--filter",
        "label=shard.managed=true",
    ]);
    assert!(
        left.is_empty(),
        "deleting the projects removed their services: {left}"
    );
    assert!(
        !registry_tags("shard/spread").await.contains(&second),
        "and their images in the registry"
    );
}

/// The tags the lab registry holds for `repository`.
async fn registry_tags(repository: &str) -> Vec<String> {
    let ca = std::fs::read("/var/lib/shard-swarm-lab/ca.crt").unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .no_proxy()
        .build()
        .unwrap();
    let response = client
        .get(format!("https://{REGISTRY}/v2/{repository}/tags/list"))
        .send()
        .await
        .unwrap();
    if response.status() == StatusCode::NOT_FOUND {
        return Vec::new();
    }
    let list: Value = response.json().await.unwrap();
    let mut tags: Vec<String> = list["tags"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    tags.sort();
    tags
}
