//! The `shard` binary itself: config errors, migrate, user create, setup token, SIGTERM.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::fresh_database_url;

const BIN: &str = env!("CARGO_BIN_EXE_shard");

async fn shard(dir: &std::path::Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SHARD_DATA_DIR", dir)
        .current_dir(dir);
    if let Some(url) = fresh_database_url().await {
        command.env("SHARD_DATABASE_URL", url);
    }
    command
}

#[tokio::test]
async fn bad_config_values_stop_startup_naming_the_key() {
    let dir = tempfile::TempDir::new().unwrap();
    let output = shard(dir.path())
        .await
        .env("SHARD_JOBS__CONCURRENCY", "0")
        .args(["serve"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("jobs.concurrency"), "{stderr}");

    let output = shard(dir.path())
        .await
        .env("SHARD_LISTEN", "not-an-address")
        .args(["config", "show"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .to_lowercase()
            .contains("listen")
    );

    std::fs::write(dir.path().join("bad.toml"), "[http]\nbody_limt_bytes = 5\n").unwrap();
    let output = shard(dir.path())
        .await
        .args(["config", "show", "--config", "bad.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("body_limt_bytes"));
}

#[tokio::test]
async fn config_init_and_show_redact_secrets() {
    let dir = tempfile::TempDir::new().unwrap();
    let init = shard(dir.path())
        .await
        .args(["config", "init"])
        .output()
        .unwrap();
    assert!(init.status.success());
    assert!(dir.path().join("shard.toml").exists());
    assert!(
        !shard(dir.path())
            .await
            .args(["config", "init"])
            .output()
            .unwrap()
            .status
            .success(),
        "init never overwrites"
    );
    let key = "ab".repeat(32);
    let show = shard(dir.path())
        .await
        .env("SHARD_SECRET_KEY", &key)
        .env("SHARD_AUTH__LOGIN_WINDOW_SECS", "42")
        .args(["config", "show"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        show.status.success(),
        "{}",
        String::from_utf8_lossy(&show.stderr)
    );
    assert!(text.contains("login_window_secs = 42"), "{text}");
    assert!(
        text.contains("[redacted]") && !text.contains(&key),
        "{text}"
    );
}

#[tokio::test]
async fn migrate_user_create_and_graceful_sigterm() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut command = shard(dir.path()).await;
    let migrate = command.args(["migrate"]).output().unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    let db_url = command
        .get_envs()
        .find(|(k, _)| *k == "SHARD_DATABASE_URL")
        .and_then(|(_, v)| v.map(|v| v.to_owned()));

    let with_db = |mut c: Command| {
        if let Some(url) = &db_url {
            c.env("SHARD_DATABASE_URL", url);
        }
        c
    };
    let mut create = with_db(Command::new(BIN));
    create
        .env("SHARD_DATA_DIR", dir.path())
        .args(["user", "create", "--username", "root", "--admin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = create.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a long enough password\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("created admin root"));

    // A user exists, so serve opens no setup token; sign in with the CLI-made account.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut serve = with_db(Command::new(BIN));
    serve
        .env("SHARD_DATA_DIR", dir.path())
        .env("SHARD_LISTEN", format!("127.0.0.1:{port}"))
        .args(["serve"])
        .stderr(Stdio::null());
    let mut server = serve.spawn().unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while client.get(format!("{base}/health")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!dir.path().join("setup-token").exists());
    let login = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "root", "password": "a long enough password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), reqwest::StatusCode::OK);

    let term = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let stopped = Instant::now();
    loop {
        if let Some(status) = server.try_wait().unwrap() {
            assert!(status.success(), "shard exited with {status} on SIGTERM");
            break;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(15),
            "shard did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        client.get(format!("{base}/health")).send().await.is_err(),
        "stopped accepting"
    );
}

/// Every config section takes `SHARD_<SECTION>__<KEY>`: the sections are read off
/// `config show` itself, so a new section is covered the day it is added.
#[tokio::test]
async fn every_config_section_takes_environment_overrides() {
    let dir = tempfile::TempDir::new().unwrap();
    let show = |envs: Vec<(String, String)>| {
        let dir = dir.path().to_path_buf();
        async move {
            let output = shard(&dir)
                .await
                .envs(envs)
                .args(["config", "show"])
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8(output.stdout)
                .unwrap()
                .parse::<toml::Table>()
                .unwrap()
        }
    };
    let defaults = show(Vec::new()).await;
    let mut overrides = Vec::new();
    let mut expected = Vec::new();
    for (section, value) in &defaults {
        let Some(table) = value.as_table() else {
            continue;
        };
        let (key, new) = match table.iter().find_map(|(k, v)| match v {
            toml::Value::Integer(n) => Some((k.clone(), toml::Value::Integer(n + 1))),
            toml::Value::Boolean(b) => Some((k.clone(), toml::Value::Boolean(!b))),
            _ => None,
        }) {
            Some(pair) => pair,
            None => match section.as_str() {
                "log" => ("level".into(), toml::Value::String("debug".into())),
                "apps" => (
                    "domain".into(),
                    toml::Value::String("apps.example.test".into()),
                ),
                "docker" => (
                    "host".into(),
                    toml::Value::String("unix:///tmp/x.sock".into()),
                ),
                "dns" => (
                    "resolver".into(),
                    toml::Value::String("127.0.0.1:5353".into()),
                ),
                "registry" => (
                    "url".into(),
                    toml::Value::String("registry.example.test:5000".into()),
                ),
                // A nested key: `SHARD_BUILD__IMAGES__NODE`.
                "build" => (
                    "images.node".into(),
                    toml::Value::String("images.example.test/node:{version}".into()),
                ),
                other => panic!("section [{other}] has no key this test knows how to change"),
            },
        };
        let text = match &new {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        overrides.push((
            format!(
                "SHARD_{}__{}",
                section.to_uppercase(),
                key.to_uppercase().replace('.', "__")
            ),
            text,
        ));
        expected.push((section.clone(), key, new));
    }
    assert!(expected.len() >= 10, "sections found: {expected:?}");
    let changed = show(overrides.clone()).await;
    for (section, key, value) in expected {
        let found = key
            .split('.')
            .try_fold(&changed[&section], |table, part| table.get(part));
        assert_eq!(
            found,
            Some(&value),
            "[{section}] {key} ignored its environment override ({overrides:?})"
        );
    }
}

/// A second `shard serve` on a data dir in use exits at once and says why.
#[tokio::test]
async fn a_second_serve_on_the_same_data_dir_exits_with_a_message() {
    let dir = tempfile::TempDir::new().unwrap();
    let first = crate::process::Serve::start(dir.path(), fresh_database_url().await, &[]).await;
    let started = Instant::now();
    let second = first
        .command()
        .env("SHARD_LISTEN", "127.0.0.1:0")
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!second.status.success());
    let message = String::from_utf8_lossy(&second.stderr);
    assert!(
        message.contains("in use by another shard process"),
        "{message}"
    );
    // The first one still serves.
    let health = reqwest::get(format!("{}/health", first.base))
        .await
        .unwrap();
    assert!(health.status().is_success());
    // The database and keys are the owner's only.
    use std::os::unix::fs::PermissionsExt;
    for file in ["secret.key", "shard.lock"] {
        let mode = std::fs::metadata(dir.path().join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{file} is readable by others ({mode:o})");
    }
    if first.db_url.is_none() {
        let mode = std::fs::metadata(dir.path().join("shard.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "shard.db mode {mode:o}");
    }
}
