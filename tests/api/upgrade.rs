//! Upgrades in place on a real `shard serve`: under a bounded load on a deployed app and on
//! the dashboard, the process is replaced three times by `kill -USR2` (the same binary), and
//! not one request fails; the service manager is told READY (then the new MAINPID) and gets
//! watchdog pings; a dashboard WebSocket is closed with 1012 and, resumed with `since` on the
//! new process, has every line once. A deploy the old process is still building when it is
//! replaced is finished by it, and its viewer, moved to the new process, watches the rest of
//! the build live (SQLite and Postgres alike). A new process that cannot start leaves the old
//! serving.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::deploy::app_files;
use crate::gitserver::GitServer;
use crate::helpers::fresh_database_url;
use crate::process::Serve;

/// The pid written in `shard.lock` (the serving process's).
fn serving_pid(dir: &Path) -> u32 {
    std::fs::read_to_string(dir.join("shard.lock"))
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Whether the process is gone (or a zombie nobody has reaped yet).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// `GET /api/v1{path}` on the serving process.
async fn get(serve: &Serve, token: &str, path: &str) -> Value {
    serve.api(token, reqwest::Method::GET, path, None).await
}

/// Stops whichever process serves the data dir when the test ends, even by a panic.
struct Last<'a>(&'a Path);

impl Drop for Last<'_> {
    fn drop(&mut self) {
        let pid = serving_pid(self.0);
        if pid != 0 && !exited(pid) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// Sends USR2 and waits until another process serves and the old one has exited.
async fn upgrade(dir: &Path) -> Duration {
    let old = serving_pid(dir);
    let started = Instant::now();
    signal(old, "USR2");
    loop {
        let now = serving_pid(dir);
        if now != old && now != 0 && exited(old) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no upgrade from {old}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A fake service manager on a `NOTIFY_SOCKET`: what it was told, read as it arrives.
struct Manager {
    told: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Manager {
    fn listen(path: &Path) -> Manager {
        let socket = tokio::net::UnixDatagram::bind(path).unwrap();
        let told = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = told.clone();
        tokio::spawn(async move {
            let mut buffer = [0u8; 512];
            while let Ok(n) = socket.recv(&mut buffer).await {
                let message = String::from_utf8_lossy(&buffer[..n]).into_owned();
                sink.lock().unwrap().push(message);
            }
        });
        Manager { told }
    }

    fn told(&self) -> Vec<String> {
        self.told.lock().unwrap().clone()
    }
}

#[derive(Default)]
struct Load {
    ok: AtomicU64,
    failed: AtomicU64,
    slowest_ms: AtomicU64,
}

/// Requests in a loop (a keep-alive pool per loop) until `stop`, at most `limit` each.
async fn load(base: String, host: Option<String>, stop: Arc<AtomicBool>, load: Arc<Load>) {
    let client = reqwest::Client::new();
    for _ in 0..20_000 {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let mut request = client.get(&base).timeout(Duration::from_secs(10));
        if let Some(host) = &host {
            request = request.header("host", host);
        }
        let started = Instant::now();
        let ok = match request.send().await {
            Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
            Ok(r) => {
                eprintln!("upgrade load: status {}", r.status());
                false
            }
            Err(e) => {
                eprintln!("upgrade load: {e:?}");
                false
            }
        };
        let took = started.elapsed().as_millis() as u64;
        load.slowest_ms.fetch_max(took, Ordering::Relaxed);
        match ok {
            true => load.ok.fetch_add(1, Ordering::Relaxed),
            false => load.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// A dashboard WebSocket subscribed to `topic` after `since`.
async fn subscribe(
    base: &str,
    token: &str,
    topic: &str,
    since: i64,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = base.replace("http://", "ws://") + "/api/v1/ws";
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    for message in [
        json!({"op": "auth", "token": token}),
        json!({"op": "subscribe", "topic": topic, "since": since}),
    ] {
        ws.send(Message::Text(message.to_string().into()))
            .await
            .unwrap();
    }
    ws
}

/// How reading a log socket ended.
#[derive(Debug, PartialEq)]
enum Ended {
    /// The server closed it with this code (`None`: no close frame, or a broken connection).
    Closed(Option<u16>),
    /// `each` asked to stop.
    Stopped,
}

/// Reads the socket until the server closes it, or until `each`, handed every event, breaks.
async fn until_closed(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    within: Duration,
    what: &str,
    mut each: impl FnMut(&Value) -> ControlFlow<()>,
) -> Ended {
    tokio::time::timeout(within, async {
        while let Some(frame) = ws.next().await {
            match frame {
                Ok(Message::Text(text)) => {
                    if events(&text).iter().try_for_each(&mut each).is_break() {
                        return Ended::Stopped;
                    }
                }
                Ok(Message::Close(Some(close))) => return Ended::Closed(Some(close.code.into())),
                Ok(_) => {}
                Err(_) => return Ended::Closed(None),
            }
        }
        Ended::Closed(None)
    })
    .await
    .unwrap_or_else(|_| panic!("{what}"))
}

/// The events in one text frame (a batch's elements, or the message itself).
fn events(text: &str) -> Vec<Value> {
    let message: Value = serde_json::from_str(text).unwrap();
    match message["type"].as_str() {
        Some("batch") => message["events"].as_array().unwrap().clone(),
        _ => vec![message],
    }
}

/// The seqs of the log and status events in one text frame.
fn seqs(text: &str) -> Vec<i64> {
    events(text)
        .iter()
        .filter_map(|e| e["seq"].as_i64())
        .collect()
}

#[tokio::test]
async fn upgrades_under_load_fail_no_request_and_lose_no_log_line() {
    let git = GitServer::start().await;
    let repo = git.repo("steady", &app_files("1", ""));
    let dir = tempfile::TempDir::new().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let manager = Manager::listen(&notify_path);
    let notify = notify_path.to_string_lossy().into_owned();
    let serve = Serve::start(
        dir.path(),
        fresh_database_url().await,
        &[
            ("NOTIFY_SOCKET", notify.as_str()),
            ("WATCHDOG_USEC", "400000"),
            ("SHARD_HTTP__SHUTDOWN_TIMEOUT_SECS", "10"),
        ],
    )
    .await;
    let _last = Last(dir.path());
    let first = serve.pid();
    assert_eq!(serving_pid(dir.path()), first);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let told = manager.told();
    assert!(told.iter().any(|m| m == "READY=1"), "{told:?}");
    assert!(told.iter().any(|m| m == "WATCHDOG=1"), "{told:?}");

    let token = serve.setup_admin().await;
    let project = serve
        .create_project(&token, json!({"name": "steady", "git_url": repo.url}))
        .await;
    let deployment = serve.deploy_live(&token, &project).await;

    // A viewer of the deployment's log, before the first upgrade.
    let topic = format!("deployment:{deployment}");
    let mut ws = subscribe(&serve.base, &token, &topic, 0).await;
    let mut seen: Vec<i64> = Vec::new();

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Load::default());
    let mut loops = Vec::new();
    for i in 0..4 {
        let host = (i < 3).then(|| "steady.localhost".to_string());
        let url = match host {
            Some(_) => format!("{}/", serve.base),
            None => format!("{}/health", serve.base),
        };
        loops.push(tokio::spawn(load(url, host, stop.clone(), counts.clone())));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut took = Vec::new();
    for round in 0..3 {
        took.push(upgrade(dir.path()).await);
        tokio::time::sleep(Duration::from_millis(500)).await;
        if round == 0 {
            // The old process closed the viewer's socket with 1012 after what it had; the
            // viewer resumes on the new one after the last seq it saw.
            let closed = until_closed(
                &mut ws,
                Duration::from_secs(20),
                "the old process closes the socket",
                |event| {
                    seen.extend(event["seq"].as_i64());
                    ControlFlow::Continue(())
                },
            )
            .await;
            assert_eq!(closed, Ended::Closed(Some(1012)));
            let since = seen.iter().copied().max().unwrap_or(0);
            ws = subscribe(&serve.base, &token, &topic, since).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.await.unwrap();
    }
    let (ok, failed) = (
        counts.ok.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed),
    );
    eprintln!(
        "upgrades took {took:?}; {ok} requests, {failed} failed, slowest {} ms",
        counts.slowest_ms.load(Ordering::Relaxed)
    );
    assert_eq!(failed, 0, "requests failed during upgrades ({ok} answered)");
    assert!(ok > 100, "too little load: {ok}");

    // Resumed: nothing new, nothing twice; together every persisted line and the status.
    let logs = get(&serve, &token, &format!("/deployments/{deployment}/logs")).await;
    let persisted: Vec<i64> = logs
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["seq"].as_i64().unwrap())
        .collect();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(frame)) = ws.next().await {
            if let Message::Text(text) = frame {
                seen.extend(seqs(&text));
            }
        }
    })
    .await;
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(unique, seen, "a seq twice");
    for seq in persisted {
        assert!(seen.contains(&seq), "line {seq} missed: {seen:?}");
    }

    // The service manager heard of each new main process.
    let pid = serving_pid(dir.path());
    assert_ne!(pid, first);
    let told = manager.told();
    assert!(
        told.iter().any(|m| m == &format!("MAINPID={pid}\nREADY=1")),
        "{told:?}"
    );
    // Still one process on the data dir: a second `shard serve` is refused.
    let second = serve.command().output().unwrap();
    assert!(!second.status.success());

    // SIGTERM drains and exits.
    signal(pid, "TERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !exited(pid) {
        assert!(Instant::now() < deadline, "{pid} did not exit on SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_new_process_that_cannot_start_leaves_the_old_one_serving() {
    let dir = tempfile::TempDir::new().unwrap();
    let db_url = fresh_database_url().await;
    let serve = Serve::start(dir.path(), db_url, &[]).await;
    let _last = Last(dir.path());
    let pid = serve.pid();
    // The new process will find a database from a newer shard and refuse it.
    let url = serve.db_url.clone().unwrap_or_else(|| {
        format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("shard.db").display()
        )
    });
    let db = shard::db::connect(&url).await.unwrap();
    use sea_orm::ConnectionTrait;
    db.execute_unprepared(
        "INSERT INTO seaql_migrations (version, applied_at) VALUES ('m20991231_000099_from_the_future', 0)",
    )
    .await
    .unwrap();
    db.close().await.unwrap();
    signal(pid, "USR2");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(serving_pid(dir.path()), pid);
    assert!(!exited(pid));
    let health = reqwest::get(format!("{}/health", serve.base))
        .await
        .unwrap();
    assert!(health.status().is_success());
}

/// A build that prints a line every quarter second for fifteen seconds.
const TICKING: &str = "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"i=0; while [ $i -lt 60 ]; do i=$((i+1)); echo tick $i; /bin/busybox sleep 0.25; done\"]\n";

/// One `GET /` for `host` on an open connection: the status and the head (lower case).
async fn ask(conn: &mut tokio::net::TcpStream, host: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut read = async |got: &mut Vec<u8>| {
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut chunk))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert!(n > 0, "closed before answering");
        got.extend_from_slice(&chunk[..n]);
    };
    let head_len = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        read(&mut got).await;
    };
    let head = String::from_utf8_lossy(&got[..head_len]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    while got.len() < head_len + length {
        read(&mut got).await;
    }
    (head[9..12].parse().unwrap(), head)
}

#[tokio::test]
async fn a_deploy_building_during_an_upgrade_ends_live_and_its_viewer_follows_it_on_the_new_process()
 {
    let git = GitServer::start().await;
    let repo = git.repo("ticking", &app_files("1", TICKING));
    let dir = tempfile::TempDir::new().unwrap();
    let serve = Serve::start(dir.path(), fresh_database_url().await, &[]).await;
    let _last = Last(dir.path());
    let old = serve.pid();
    let token = serve.setup_admin().await;
    let project = serve
        .create_project(&token, json!({"name": "ticking", "git_url": repo.url}))
        .await;
    let deployment = serve.start_deploy(&token, &project).await;
    let topic = format!("deployment:{deployment}");
    let mut ws = subscribe(&serve.base, &token, &topic, 0).await;
    let mut seen: Vec<i64> = Vec::new();
    // Keep-alive clients of the old process, for after the upgrade: no app is called "later".
    let mut kept = Vec::new();
    for _ in 0..12 {
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", serve.port))
            .await
            .unwrap();
        assert_eq!(ask(&mut conn, "later.localhost").await.0, 404);
        kept.push(conn);
    }

    // Upgrade once the build prints; the old process closes the viewer with 1012.
    let mut signalled = false;
    let closed = until_closed(
        &mut ws,
        Duration::from_secs(120),
        "the build prints and the old process closes the socket",
        |event| {
            seen.extend(event["seq"].as_i64());
            let line = event["line"].as_str().unwrap_or_default();
            if !signalled && line.contains("tick 4") {
                signal(old, "USR2");
                signalled = true;
            }
            assert_ne!(event["status"], "failed", "{event}");
            ControlFlow::Continue(())
        },
    )
    .await;
    assert!(signalled);
    assert_eq!(closed, Ended::Closed(Some(1012)));
    assert!(!exited(old), "the old process still finishes the deploy");

    // The new process makes a project (a fresh connection lands there); the old one, still
    // building, follows its routes (every 5 s): a kept client, back after the linger, is
    // answered with the new route (and told to go). One client a second, each answered once.
    serve
        .create_project(&token, json!({"name": "later", "git_url": repo.url}))
        .await;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut conn = kept
            .pop()
            .expect("the old process still routed \"later\" as unknown 12 s after it was made");
        let (status, head) = ask(&mut conn, "later.localhost").await;
        assert!(head.contains("connection: close"), "{head}");
        if status == 503 {
            break;
        }
        assert_eq!(status, 404, "{head}");
    }
    assert!(!exited(old), "the old process is still building");

    // Resumed on the new process: the rest of the build arrives as it is printed, then live.
    // A reconnect that raced the old process's pause is closed with 1012 again, and the
    // viewer resumes again, as the dashboard does.
    let mut ticks_at: Vec<Instant> = Vec::new();
    let mut ended = None;
    for attempt in 0..3 {
        if attempt > 0 {
            eprintln!("closed with 1012 again: resuming a {} time", attempt + 1);
        }
        let since = seen.iter().copied().max().unwrap_or(0);
        let mut ws = subscribe(&serve.base, &token, &topic, since).await;
        let how = until_closed(
            &mut ws,
            Duration::from_secs(120),
            "the deploy ends",
            |event| {
                seen.extend(event["seq"].as_i64());
                if event["line"].as_str().unwrap_or_default().contains("tick ") {
                    ticks_at.push(Instant::now());
                }
                let status = event["status"].as_str().unwrap_or_default();
                if event["type"] == "status" && ["live", "failed", "cancelled"].contains(&status) {
                    ended = Some((status.to_string(), Instant::now()));
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            },
        )
        .await;
        if how == Ended::Stopped {
            break;
        }
        assert_eq!(
            how,
            Ended::Closed(Some(1012)),
            "closed before the deploy ended"
        );
    }
    let ended = ended.expect("closed three times before the deploy ended");
    assert_eq!(ended.0, "live");
    let live_before_end = ticks_at
        .iter()
        .filter(|t| ended.1.duration_since(**t) > Duration::from_secs(1))
        .count();
    assert!(
        live_before_end >= 3,
        "lines came all at once at the end, not live: {} ticks, {live_before_end} a second or more before the end",
        ticks_at.len()
    );

    // The old process finished the deploy and exited; the new one serves the app.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !exited(old) {
        assert!(Instant::now() < deadline, "the old process did not exit");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(serving_pid(dir.path()), old);
    let answer = reqwest::Client::new()
        .get(format!("{}/", serve.base))
        .header("host", "ticking.localhost")
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    assert_eq!(answer.text().await.unwrap(), "version 1\n");

    // Every persisted line and the status reached the viewer once.
    let logs = get(&serve, &token, &format!("/deployments/{deployment}/logs")).await;
    let persisted: Vec<i64> = logs
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["seq"].as_i64().unwrap())
        .collect();
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(unique, seen, "a seq twice");
    for seq in persisted {
        assert!(seen.contains(&seq), "line {seq} missed: {seen:?}");
    }
}

/// The pool a stopping server leaves behind: connections opened on a runtime that has ended
/// (an actix worker's, when the server stops) are retired, and the main runtime's queries
/// get new ones instead of failing on a dead socket (Postgres; SQLite's connections have
/// threads of their own, and the same steps pass there too).
#[test]
fn the_pool_outlives_a_runtime_that_opened_its_connections() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let main = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = main
        .block_on(fresh_database_url())
        .unwrap_or_else(|| format!("sqlite://{}/pool.db?mode=rwc", dir.path().display()));
    let (db, retirement) = main.block_on(shard::db::connect_retiring(&url)).unwrap();
    // Eight transactions at once, so the pool opens eight connections on the caller's runtime.
    let busy = |db: shard::db::Db| async move {
        let tries = (0..8).map(|_| {
            let db = db.clone();
            async move {
                let txn = db.begin().await?;
                txn.execute_unprepared("SELECT 1").await?;
                tokio::time::sleep(Duration::from_millis(20)).await;
                txn.commit().await
            }
        });
        futures_util::future::join_all(tries).await
    };
    let worker = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for result in worker.block_on(busy(db.clone())) {
        result.expect("a query on the worker runtime");
    }
    drop(worker);
    retirement.retire();
    for result in main.block_on(busy(db.clone())) {
        result.expect("a query after the runtime that opened the pool's connections ended");
    }
    main.block_on(db.close()).ok();
}
