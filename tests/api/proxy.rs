//! The app proxy on the shared listener: host routing, the pages for unknown and stopped
//! apps, forwarded headers, WebSocket and SSE passthrough (against an upstream started here),
//! and, with Docker, real apps: preview hosts, a Docker-restarted container's new port, and
//! zero failed requests across a redeploy and a rollback under load.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use shard::db::deployments::{self as deps, Fields, NewDeployment};
use shard::deploy::DeploymentStatus as S;
use tokio_tungstenite::tungstenite::Message;

use crate::deploy::{app_files, docker_ids};
use crate::gitserver::GitServer;
use crate::helpers::*;

/// A plain upstream on loopback: `/echo` (request line and headers back), `/sse` (three
/// events, 200 ms apart), `/ws` (WebSocket echo, taking the first subprotocol offered),
/// `/ws-refused` (a handshake the app answers 403).
pub(crate) async fn start_upstream() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = actix_web::HttpServer::new(|| {
        actix_web::App::new()
            .route("/echo", web::to(echo))
            .route("/sse", web::get().to(sse))
            .route("/ws", web::get().to(ws_echo))
            .route(
                "/ws-refused",
                web::get().to(|| async { HttpResponse::Forbidden().body("no") }),
            )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    addr
}

async fn echo(req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let mut headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    headers.sort();
    HttpResponse::Ok().json(json!({
        "method": req.method().as_str(),
        "uri": req.uri().to_string(),
        "headers": headers.into_iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>(),
        "body_len": body.len(),
    }))
}

async fn sse() -> HttpResponse {
    let events = futures_util::stream::unfold(0u32, |n| async move {
        if n == 3 {
            return None;
        }
        if n > 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let chunk = web::Bytes::from(format!("data: event {n}\n\n"));
        Some((Ok::<_, actix_web::Error>(chunk), n + 1))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .streaming(events)
}

async fn ws_echo(req: HttpRequest, body: web::Payload) -> actix_web::Result<HttpResponse> {
    let (mut response, mut session, mut stream) = actix_ws::handle(&req, body)?;
    let offered = req
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|p| p.trim().to_string());
    if let Some(protocol) = offered {
        response.headers_mut().insert(
            actix_web::http::header::SEC_WEBSOCKET_PROTOCOL,
            protocol.parse().unwrap(),
        );
    }
    actix_web::rt::spawn(async move {
        while let Some(Ok(message)) = stream.recv().await {
            match message {
                actix_ws::Message::Text(text) => {
                    let _ = session.text(format!("echo: {text}")).await;
                }
                actix_ws::Message::Binary(data) => {
                    let _ = session.binary(data).await;
                }
                actix_ws::Message::Close(reason) => {
                    let _ = session.close(reason).await;
                    return;
                }
                _ => {}
            }
        }
    });
    Ok(response)
}

/// Makes `upstream` the live deployment of a new project `name` (as a deploy would).
pub(crate) async fn live_project(
    app: &TestApp,
    admin: &Session,
    name: &str,
    upstream: &str,
) -> (String, String) {
    let project = app.create_project(admin, name).await;
    let project_id: uuid::Uuid = project["id"].as_str().unwrap().parse().unwrap();
    let db = &app.state.db;
    let d = deps::create(db, NewDeployment::manual(project_id))
        .await
        .unwrap();
    let steps = [
        (S::Queued, S::Fetching),
        (S::Fetching, S::Building),
        (S::Building, S::Starting),
    ];
    for (from, to) in steps {
        assert!(
            deps::transition(db, d.id, &[from], to, Fields::default())
                .await
                .unwrap()
        );
    }
    // No container id: the Docker event follower would (rightly) find no such container
    // and call the app crashed.
    let fields = Fields {
        upstream: Some(upstream.to_string()),
        ..Fields::default()
    };
    assert!(
        deps::transition(db, d.id, &[S::Starting], S::HealthChecking, fields)
            .await
            .unwrap()
    );
    deps::switch(db, project_id, d.id).await.unwrap().unwrap();
    app.state.proxy.refresh().await.unwrap();
    (project_id.to_string(), d.id.to_string())
}

fn port_of(app: &TestApp) -> u16 {
    app.state.port
}

pub(crate) async fn get_host(app: &TestApp, host: &str, path: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{path}", app.base))
        .header("host", host)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn hosts_route_to_apps_and_everything_else_is_the_dashboard_or_a_page() {
    let upstream = start_upstream().await.to_string();
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    let (project, _) = live_project(&app, &admin, "blog", &upstream).await;
    let port = port_of(&app);

    for host in [
        format!("blog.localhost:{port}"),
        "blog.localhost".into(),
        "BLOG.Localhost.".into(),
    ] {
        let response = get_host(&app, &host, "/echo?x=1").await;
        assert_eq!(response.status(), StatusCode::OK, "{host}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["uri"], "/echo?x=1");
        let headers: Vec<String> = serde_json::from_value(body["headers"].clone()).unwrap();
        assert!(
            headers.contains(&format!("host: {host}")),
            "Host is preserved: {headers:?}"
        );
    }

    // Forwarding headers: a client's own values are replaced (no trusted proxy configured).
    let response = app
        .client
        .post(format!("{}/echo", app.base))
        .header("host", "blog.localhost")
        .header("x-forwarded-for", "6.6.6.6")
        .header("forwarded", "for=6.6.6.6")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret")
        .body(vec![b'a'; 5000])
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    let headers: Vec<String> = serde_json::from_value(body["headers"].clone()).unwrap();
    assert!(
        headers.contains(&"x-forwarded-for: 127.0.0.1".to_string()),
        "{headers:?}"
    );
    assert!(
        headers.contains(&"x-forwarded-proto: http".to_string()),
        "{headers:?}"
    );
    assert!(
        headers.contains(&"x-forwarded-host: blog.localhost".to_string()),
        "{headers:?}"
    );
    assert!(
        headers
            .iter()
            .any(|h| h.starts_with("forwarded: for=127.0.0.1;")),
        "{headers:?}"
    );
    assert!(
        !headers.iter().any(|h| h.starts_with("x-hop")),
        "hop-by-hop dropped: {headers:?}"
    );
    assert_eq!(body["body_len"], 5000);

    // The dashboard hosts are unaffected.
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let response = get_host(&app, &host, "/health").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.json::<Value>().await.unwrap()["status"], "ok");
    }

    // Unknown hosts get a small page that names nothing internal.
    let response = get_host(&app, "nothing.localhost", "/").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let page = response.text().await.unwrap();
    assert!(page.contains("No app here"), "{page}");
    assert!(
        !page.contains("127.0.0.1") && !page.contains(&upstream),
        "{page}"
    );
    assert_eq!(
        get_host(&app, "evil.example.com", "/health").await.status(),
        StatusCode::NOT_FOUND
    );

    // A project that never deployed says so.
    app.create_project(&admin, "fresh").await;
    let response = get_host(&app, "fresh.localhost", "/").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("fresh has no running deployment")
    );

    // The runtime state is on the project.
    let view: Value = app
        .get(&format!("/api/v1/projects/{project}"), Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["runtime"], "running", "{view}");

    // A rename moves the host at once.
    let renamed = app
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/projects/{project}"),
            Some(&admin.token),
            Some(json!({"name": "journal"})),
        )
        .await;
    assert_eq!(renamed.status(), StatusCode::OK);
    let slug = renamed.json::<Value>().await.unwrap()["slug"]
        .as_str()
        .unwrap()
        .to_string();
    if slug != "blog" {
        assert_eq!(
            get_host(&app, &format!("{slug}.localhost"), "/echo")
                .await
                .status(),
            StatusCode::OK
        );
        assert_eq!(
            get_host(&app, "blog.localhost", "/echo").await.status(),
            StatusCode::NOT_FOUND
        );
    }
}

#[tokio::test]
async fn a_dead_upstream_gets_a_502_page_and_a_large_body_a_413() {
    let app = spawn_app_with(|c| c.proxy.max_body_mb = 1).await;
    let admin = app.setup_admin().await;
    // Nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap().to_string();
    drop(closed);
    live_project(&app, &admin, "gone", &addr).await;
    let response = get_host(&app, "gone.localhost", "/").await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert!(!response.text().await.unwrap().contains(&addr));

    let upstream = start_upstream().await.to_string();
    live_project(&app, &admin, "small", &upstream).await;
    let response = app
        .client
        .post(format!("{}/echo", app.base))
        .header("host", "small.localhost")
        .body(vec![0u8; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

/// An upstream that answers every request on a connection with a small keep-alive response and
/// counts the connections still open.
async fn counting_upstream() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let open = Arc::new(AtomicUsize::new(0));
    let counter = open.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let open = counter.clone();
            open.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 8192];
                let mut seen = Vec::new();
                loop {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => seen.extend_from_slice(&buffer[..n]),
                    }
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if socket.write_all(reply).await.is_err() {
                            break;
                        }
                    }
                }
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (addr, open)
}

#[tokio::test]
async fn idle_upstream_connections_are_closed_after_their_timeout() {
    let app = spawn_app_with(|c| c.proxy.upstream_idle_secs = 1).await;
    let admin = app.setup_admin().await;
    let (upstream, open) = counting_upstream().await;
    live_project(&app, &admin, "pooled", &upstream.to_string()).await;
    let requests = (0..8).map(|_| get_host(&app, "pooled.localhost", "/"));
    for response in futures_util::future::join_all(requests).await {
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert!(
        open.load(Ordering::SeqCst) > 0,
        "the proxy keeps its upstream connections for the next requests"
    );
    // Nothing asks for the app any more: the pool lets its connections go after 1 s (its
    // idle check runs at that interval too).
    let deadline = Instant::now() + Duration::from_secs(10);
    while open.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        open.load(Ordering::SeqCst),
        0,
        "idle upstream connections were still open 10 s after a 1 s idle timeout"
    );
}

#[tokio::test]
async fn websocket_and_server_sent_events_pass_through() {
    let upstream = start_upstream().await.to_string();
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    live_project(&app, &admin, "live", &upstream).await;
    let port = port_of(&app);

    // SSE: events arrive one by one, not buffered until the end.
    let started = Instant::now();
    let mut response = get_host(&app, "live.localhost", "/sse").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let first = response.chunk().await.unwrap().unwrap();
    let first_at = started.elapsed();
    assert!(String::from_utf8_lossy(&first).contains("event 0"));
    let mut rest = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    assert!(String::from_utf8_lossy(&rest).contains("event 2"));
    assert!(
        started.elapsed() >= first_at + Duration::from_millis(300),
        "the first event came before the stream ended"
    );

    // WebSocket, through the same listener with the app's host.
    let mut request = ws_request(port, "/ws");
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "chat, superchat".parse().unwrap());
    let (mut socket, handshake) = tokio_tungstenite::connect_async(request).await.unwrap();
    // The app's choice of subprotocol reaches the client.
    assert_eq!(handshake.headers()["sec-websocket-protocol"], "chat");
    socket.send(Message::Text("hello".into())).await.unwrap();
    assert_eq!(
        next_message(&mut socket).await,
        Message::Text("echo: hello".into())
    );
    let binary = Message::Binary(vec![1, 2, 3].into());
    socket.send(binary.clone()).await.unwrap();
    assert_eq!(next_message(&mut socket).await, binary);
    // A message many reads long (the test app takes frames up to 64 KiB), both ways, whole.
    let big: String = (0..60 * 1024)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    socket
        .send(Message::Text(big.clone().into()))
        .await
        .unwrap();
    let Message::Text(reply) = next_message(&mut socket).await else {
        panic!("the large message came back as another kind");
    };
    assert!(
        reply.as_str() == format!("echo: {big}"),
        "the large message changed on the way"
    );
    socket.close(None).await.unwrap();

    // An app that refuses the handshake: its status reaches the client as is.
    match tokio_tungstenite::connect_async(ws_request(port, "/ws-refused")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("a refused handshake went through: {other:?}"),
    }
}

/// A WebSocket request to `path` through shard's listener, for the app at live.localhost.
fn ws_request(port: u16, path: &str) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://127.0.0.1:{port}{path}"
        ))
        .unwrap();
    request
        .headers_mut()
        .insert("host", "live.localhost".parse().unwrap());
    request
}

async fn next_message<S>(socket: &mut S) -> Message
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("a message within 5 s")
        .expect("the connection stays open")
        .unwrap()
}

async fn wait_status(
    app: &TestApp,
    host: &str,
    path: &str,
    want: StatusCode,
    within: Duration,
) -> String {
    let deadline = Instant::now() + within;
    loop {
        let response = get_host(app, host, path).await;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if status == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{host}{path} still {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `host` answers `/` with `want` (the route table swaps just after the switch).
async fn wait_body(app: &TestApp, host: &str, want: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let body = get_host(app, host, "/")
            .await
            .text()
            .await
            .unwrap_or_default();
        if body == want {
            return;
        }
        assert!(Instant::now() < deadline, "{host} still answers {body:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Requests the app in a loop from `workers` tasks until stopped; counts failures.
struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<std::sync::Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(app: &TestApp, host: &str, workers: usize) -> Load {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
        let tasks = (0..workers)
            .map(|_| {
                let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
                let (client, url, host) = (
                    reqwest::Client::new(),
                    format!("{}/", app.base),
                    host.to_string(),
                );
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let result = client.get(&url).header("host", &host).send().await;
                        match result {
                            Ok(r) if r.status().is_success() => {
                                let _ = r.bytes().await;
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(r) => failed
                                .lock()
                                .unwrap()
                                .push(format!("status {}", r.status())),
                            Err(e) => failed.lock().unwrap().push(format!("error {e}")),
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            tasks,
        }
    }

    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        let failed = self.failed.lock().unwrap().clone();
        (self.ok.load(Ordering::Relaxed), failed)
    }
}

#[tokio::test]
async fn real_apps_preview_restart_and_zero_downtime_redeploy_and_rollback() {
    let git = GitServer::start().await;
    let repo = git.repo("site", &app_files("1", ""));
    let app = spawn_app_with(|c| c.deploy.grace_secs = 5).await;
    let admin = app.setup_admin().await;
    let project = app.project_for(&admin, "site", &repo.url).await;
    let first = app.deploy(&admin, &project, json!({})).await;
    let live = app
        .wait_for(&admin, &first, FINAL, Duration::from_secs(120))
        .await;
    assert_eq!(live["status"], "live", "{live}");
    let body = wait_status(
        &app,
        "site.localhost",
        "/",
        StatusCode::OK,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(body, "version 1\n");
    // The CGI script sees the forwarded headers as the app would.
    let env = wait_status(
        &app,
        "site.localhost",
        "/cgi-bin/env",
        StatusCode::OK,
        Duration::from_secs(5),
    )
    .await;
    assert!(env.contains("HTTP_X_FORWARDED_FOR=127.0.0.1"), "{env}");
    assert!(env.contains("HTTP_HOST=site.localhost"), "{env}");

    // Preview host of the deployment.
    let preview = live["preview_url"]
        .as_str()
        .expect("preview_url")
        .to_string();
    let preview_host = preview
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        wait_status(
            &app,
            &preview_host,
            "/",
            StatusCode::OK,
            Duration::from_secs(5)
        )
        .await,
        "version 1\n"
    );

    // Docker restarts the container (a new published port): the route follows.
    let container = live["container_id"].as_str().unwrap().to_string();
    let old_upstream = live["upstream"].as_str().unwrap().to_string();
    docker_ids(&["restart", "-t", "1", &container]);
    wait_status(
        &app,
        "site.localhost",
        "/",
        StatusCode::OK,
        Duration::from_secs(10),
    )
    .await;
    let after = app.deployment(&admin, &first).await;
    assert_ne!(
        after["upstream"], old_upstream,
        "the new port is recorded: {after}"
    );

    // Docker kills it: the project's runtime turns crashed within a second or so, and its
    // host answers with the crashed page (before that, with "not responding": both 502).
    docker_ids(&["kill", &container]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let view: Value = app
            .get(&format!("/api/v1/projects/{project}"), Some(&admin.token))
            .await
            .json()
            .await
            .unwrap();
        if view["runtime"] == "crashed" {
            break;
        }
        assert!(Instant::now() < deadline, "never crashed: {view}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let page = get_host(&app, "site.localhost", "/").await;
    assert_eq!(page.status(), StatusCode::BAD_GATEWAY);
    assert!(page.text().await.unwrap().contains("has crashed"));
    docker_ids(&["start", &container]);
    wait_status(
        &app,
        "site.localhost",
        "/",
        StatusCode::OK,
        Duration::from_secs(10),
    )
    .await;

    // Stop and start through the API.
    let stop = app
        .post(
            &format!("/api/v1/projects/{project}/stop"),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_eq!(stop.status(), StatusCode::OK);
    let page = wait_status(
        &app,
        "site.localhost",
        "/",
        StatusCode::SERVICE_UNAVAILABLE,
        Duration::from_secs(5),
    )
    .await;
    assert!(page.contains("is stopped"), "{page}");
    let start = app
        .post(
            &format!("/api/v1/projects/{project}/start"),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_eq!(start.status(), StatusCode::OK);
    wait_status(
        &app,
        "site.localhost",
        "/",
        StatusCode::OK,
        Duration::from_secs(10),
    )
    .await;

    // A redeploy and then a rollback under load: no failed request, no non-2xx answer.
    repo.commit(&app_files("2", ""), "version 2");
    let load = Load::start(&app, "site.localhost", 8);
    let second = app.deploy(&admin, &project, json!({})).await;
    let live2 = app
        .wait_for(&admin, &second, FINAL, Duration::from_secs(120))
        .await;
    assert_eq!(live2["status"], "live", "{live2}");
    // The route table swaps right after the switch commits (a refresh: milliseconds).
    wait_body(
        &app,
        "site.localhost",
        "version 2\n",
        Duration::from_secs(2),
    )
    .await;
    let back = app
        .deploy(&admin, &project, json!({"from_deployment": first}))
        .await;
    let live3 = app
        .wait_for(&admin, &back, FINAL, Duration::from_secs(120))
        .await;
    assert_eq!(live3["status"], "live", "{live3}");
    wait_body(
        &app,
        "site.localhost",
        "version 1\n",
        Duration::from_secs(2),
    )
    .await;
    // Past the old containers' drain.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (ok, failed) = load.finish().await;
    assert!(ok > 100, "the load ran ({ok} requests)");
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        ok + failed.len(),
        &failed[..failed.len().min(5)]
    );

    app.delete_project(&admin, &project).await;
    let response = get_host(&app, "site.localhost", "/").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
