//! `shard doctor`: each check fails when its cause is real — Docker that does not answer, a
//! disk that is full (a small tmpfs), a database file that is not one, an expired
//! certificate, a config file holding the secret key that others can read — with exit code 1
//! and a fix; a healthy host passes; the server shows the same report to admins only.

use std::path::Path;
use std::process::{Command, Stdio};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;
use crate::process::BIN;

/// `shard [--config FILE] doctor --json` on `data_dir` with extra variables: exit code and
/// report.
fn doctor(data_dir: &Path, config: Option<&Path>, envs: &[(&str, &str)]) -> (i32, Value) {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SHARD_DATA_DIR", data_dir)
        .env("SHARD_LISTEN", format!("127.0.0.1:{}", free_port()))
        .envs(envs.iter().copied())
        .stderr(Stdio::inherit());
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    let out = command.args(["doctor", "--json"]).output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code().unwrap_or(-1), report)
}

/// The server's report, the checks run now (admins).
pub async fn server_report(app: &TestApp, admin: &Session) -> Value {
    app.get("/api/v1/system/doctor?run=true", Some(&admin.token))
        .await
        .json()
        .await
        .unwrap()
}

/// A check of the server's report, run now: its status, and a message that says `says`.
pub async fn assert_server_check(
    app: &TestApp,
    admin: &Session,
    name: &str,
    status: &str,
    says: &str,
) {
    let report = server_report(app, admin).await;
    let c = check(&report, name);
    assert_eq!(c["status"], status, "{c}");
    assert!(c["message"].as_str().unwrap().contains(says), "{c}");
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check: {report}"))
}

/// A field of a check, as text ("" when absent).
fn text<'a>(check: &'a Value, field: &str) -> &'a str {
    check[field].as_str().unwrap_or_default()
}

fn assert_warns(check: &Value, says: &str) {
    assert_eq!(check["status"], "warn", "{check}");
    assert!(text(check, "message").contains(says), "{check}");
    assert!(!text(check, "fix").is_empty(), "{check}");
}

fn assert_fails(report: &Value, name: &str, says: &str) {
    let c = check(report, name);
    assert_eq!(c["status"], "fail", "{c}");
    assert!(c["message"].as_str().unwrap().contains(says), "{c}");
    assert!(!c["fix"].as_str().unwrap_or_default().is_empty(), "{c}");
}

/// A data dir with a migrated database (`shard migrate`).
fn installed(dir: &Path) {
    let status = Command::new(BIN)
        .env_clear()
        .env("SHARD_DATA_DIR", dir)
        .arg("migrate")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn each_check_fails_on_its_cause_and_says_what_to_do() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("data");
    installed(&data);

    // Healthy but for what this machine cannot help (its disk): Docker, the database, the
    // config and the certificates pass.
    let (_, report) = doctor(&data, None, &[]);
    for name in ["docker", "database", "config", "certificates", "ports"] {
        assert_eq!(check(&report, name)["status"], "ok", "{report}");
    }

    // Docker that does not answer.
    let (code, report) = doctor(
        &data,
        None,
        &[("SHARD_DOCKER__HOST", "unix:///nonexistent/docker.sock")],
    );
    assert_eq!(code, 1);
    assert_fails(&report, "docker", "does not answer");

    // An expired certificate, and a config file with the secret key that others can read.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["old.example.test".to_string()]).unwrap();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(30);
    params.not_after = now - time::Duration::days(1);
    let cert = params.self_signed(&key).unwrap();
    let (cert_file, key_file) = (dir.path().join("old.pem"), dir.path().join("old.key"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let config = dir.path().join("shard.toml");
    std::fs::write(
        &config,
        format!(
            "secret_key = \"{}\"\n\n[[proxy.certificates]]\ndomain = \"old.example.test\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            "ab".repeat(32),
            cert_file.display(),
            key_file.display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let fresh = dir.path().join("fresh");
    installed(&fresh);
    let (code, report) = doctor(&fresh, Some(&config), &[]);
    assert_eq!(code, 1);
    assert_fails(&report, "certificates", "old.example.test has expired");
    assert_fails(&report, "config", "holds secret_key and has mode 644");
    assert!(
        check(&report, "config")["fix"]
            .as_str()
            .unwrap()
            .contains("chmod 600")
    );

    // A database file that is not one.
    std::fs::write(data.join("shard.db"), vec![0x5a; 64 * 1024]).unwrap();
    for side in ["shard.db-wal", "shard.db-shm"] {
        let _ = std::fs::remove_file(data.join(side));
    }
    let (code, report) = doctor(&data, None, &[]);
    assert_eq!(code, 1);
    let database = check(&report, "database");
    assert_eq!(database["status"], "fail", "{database}");
    assert!(
        database["fix"].as_str().unwrap().contains("snapshots"),
        "{database}"
    );
    assert_eq!(check(&report, "backups")["status"], "skip");
}

/// A data dir on a full 8 MiB tmpfs (root only, as CI runs).
#[test]
fn a_full_disk_fails_the_disk_check() {
    let dir = tempfile::TempDir::new().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(mounted.success(), "mounting a tmpfs needs root");
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(dir.path());
    let data = dir.path().join("data");
    installed(&data);
    // Fill what is left.
    let _ = std::fs::write(dir.path().join("filler"), vec![0u8; 16 * 1024 * 1024]);
    let (code, report) = doctor(&data, None, &[]);
    assert_eq!(code, 1);
    assert_fails(&report, "disk", "GiB free");
    assert!(
        check(&report, "disk")["message"]
            .as_str()
            .unwrap()
            .contains("(0 %)"),
        "{report}"
    );
}

/// A Postgres installation is backed up with the host's `pg_dump` and restored with its
/// `pg_restore`: missing, or older than the server, is a warning naming the package to install.
#[tokio::test]
async fn a_postgres_installation_without_usable_client_tools_is_warned() {
    let url = crate::instances::cluster_database().await;
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("data");
    let database = [("SHARD_DATABASE_URL", url.as_str())];
    let migrated = Command::new(BIN)
        .env_clear()
        .env("SHARD_DATA_DIR", &data)
        .envs(database)
        .arg("migrate")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(migrated.success());
    let backups = |path: &Path| {
        let path = path.to_str().unwrap();
        let (_, report) = doctor(&data, None, &[database[0], ("PATH", path)]);
        check(&report, "backups").clone()
    };

    // This host's tools (postgresql-client of the server's version): nothing to say.
    let host_path = std::env::var("PATH").unwrap();
    let fine = backups(Path::new(&host_path));
    assert_eq!(fine["status"], "ok", "{fine}");

    // Neither tool on PATH.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let missing = backups(&bin);
    assert_warns(&missing, "pg_dump is not installed");
    assert!(
        text(&missing, "fix").contains("apt install postgresql-client-"),
        "{missing}"
    );

    // A pg_dump older than the server (it would refuse to dump it).
    let old = bin.join("pg_dump");
    std::fs::write(&old, "#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let older = backups(&bin);
    assert_warns(&older, "pg_dump is version 9, older than the Postgres");
}

#[tokio::test]
async fn the_server_shows_the_report_to_admins() {
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    let member = app.member(&admin, "mia").await;
    let denied = app.get("/api/v1/system/doctor", Some(&member.token)).await;
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    let report = server_report(&app, &admin).await;
    let ports = check(&report, "ports");
    assert_eq!(ports["status"], "ok", "{report}");
    assert!(
        ports["message"]
            .as_str()
            .unwrap()
            .contains("held by this shard")
    );
    assert_eq!(check(&report, "database")["status"], "ok", "{report}");
    assert_eq!(check(&report, "docker")["status"], "ok", "{report}");
    // Kept: read again without `run`, the same report.
    let again: Value = app
        .get("/api/v1/system/doctor", Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["checked_at"], report["checked_at"]);
}
