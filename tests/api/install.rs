//! `shard install` and `uninstall` under a scratch root (`--root`, `--no-start`: this machine
//! runs no systemd): the files, their modes and the unit; the installed binary started as the
//! unit would start it says READY on its notify socket and answers the setup URL (the time from
//! install to that is printed); a second install is refused; uninstall keeps the data.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{PASSWORD, free_port};
use crate::process::BIN;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn install_writes_a_notify_unit_and_the_setup_url_answers() {
    let root = tempfile::TempDir::new().unwrap();
    let r = root.path();
    let port = free_port();
    let public_url = format!("http://127.0.0.1:{port}");
    let install = |extra: &[&str]| {
        Command::new(BIN)
            .env_clear()
            .args(["install", "--root"])
            .arg(r)
            .args([
                "--public-url",
                &public_url,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let started = Instant::now();
    let out = install(&["--no-start"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (binary, config, data, unit) = (
        r.join("usr/local/bin/shard"),
        r.join("etc/shard/shard.toml"),
        r.join("var/lib/shard"),
        r.join("etc/systemd/system/shard.service"),
    );
    assert_eq!(mode(&binary) & 0o111, 0o111);
    assert_eq!(mode(&config), 0o600);
    assert_eq!(mode(&data), 0o700);
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains(&format!("public_url = \"{public_url}\"")),
        "{text}"
    );
    let unit_text = std::fs::read_to_string(&unit).unwrap();
    for line in [
        "Type=notify",
        "NotifyAccess=all",
        "WatchdogSec=30",
        "ExecReload=/bin/kill -USR2 $MAINPID",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        &format!("ReadWritePaths={}", data.display()),
        &format!(
            "ExecStart={} --config {} serve",
            binary.display(),
            config.display()
        ),
    ] {
        assert!(
            unit_text.lines().any(|l| l == line),
            "no {line} in\n{unit_text}"
        );
    }

    // Started as the unit starts it, with a notify socket.
    let socket_path = r.join("notify.sock");
    let manager = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    manager
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut serve = Command::new(&binary)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NOTIFY_SOCKET", &socket_path)
        .args(["--config"])
        .arg(&config)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let setup = shard::install::setup_url(
        &data,
        &public_url,
        format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_secs(30),
    );
    let mut buffer = [0u8; 256];
    let told = manager.recv(&mut buffer).map(|n| buffer[..n].to_vec());
    let setup = setup.unwrap();
    let response = reqwest::get(&setup).await.unwrap();
    assert!(response.status().is_success(), "{setup}");
    eprintln!(
        "install to a setup URL answering: {} ms",
        started.elapsed().as_millis()
    );
    assert_eq!(told.unwrap(), b"READY=1");
    let token = setup.split("token=").nth(1).unwrap();
    let created = reqwest::Client::new()
        .post(format!("{public_url}/api/v1/auth/setup"))
        .json(&json!({"token": token, "username": "admin", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    let _ = serve.kill();
    let _ = serve.wait();

    // Installed already: refused, nothing overwritten.
    let again = install(&["--no-start"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("installed"));

    // Uninstalled: the unit goes, the data and the config stay.
    let out = Command::new(BIN)
        .env_clear()
        .args(["uninstall", "--no-start", "--root"])
        .arg(r)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!unit.exists());
    assert!(config.exists() && data.join("shard.db").exists());

    // A public URL that is not one is refused.
    let bad = Command::new(BIN)
        .env_clear()
        .args([
            "install",
            "--no-start",
            "--public-url",
            "shard.example.com",
            "--root",
        ])
        .arg(r.join("other"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--public-url"));
}
