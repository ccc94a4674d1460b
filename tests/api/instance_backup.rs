//! `shard backup` / `shard restore` of a whole installation, end to end on real processes:
//! an installation with two users, a team, apps with a secret, a custom domain with a
//! certificate from pebble and a static site is backed up while it serves; a damaged archive
//! and a wrong passphrase are refused before anything is written; the archive is restored
//! into a new data dir (a new Postgres database on the Postgres run) after the first
//! installation and its containers are gone (one app's image too, as on a new machine); the
//! restored one signs both users in, opens the secret for the app, serves the certificate,
//! the site and both apps (one started again from its image, one rebuilt from its commit).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::deploy::{app_files, docker_ids};
use crate::gitserver::GitServer;
use crate::helpers::{PASSWORD, free_port, fresh_database_url};
use crate::process::{BIN, Serve};
use crate::tls::Pebble;

const PASSPHRASE: &str = "a long enough passphrase";

/// `shard <args>` with the installation's environment; its output.
fn shard(env: &[(&str, String)], args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Waits until `GET https://{host}{path}` on 127.0.0.1:`port`, checked against pebble's
/// `root`, answers a body containing `want`.
async fn answers(root: &[u8], port: u16, host: &str, path: &str, want: &str, within: Duration) {
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(root).unwrap())
        .resolve(host, format!("127.0.0.1:{port}").parse().unwrap())
        .build()
        .unwrap();
    let deadline = Instant::now() + within;
    let mut last = String::new();
    while Instant::now() < deadline {
        match client
            .get(format!("https://{host}:{port}{path}"))
            .send()
            .await
        {
            Ok(r) => {
                last = format!("{}: {}", r.status(), r.text().await.unwrap_or_default());
                if last.contains(want) {
                    return;
                }
            }
            Err(e) => last = format!("{e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("{host}{path} never answered {want:?}; last: {last}");
}

async fn login(serve: &Serve, username: &str) -> reqwest::StatusCode {
    reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", serve.base))
        .json(&json!({"username": username, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .status()
}

fn site_files() -> Vec<(&'static str, Vec<u8>, bool)> {
    vec![
        (
            "Dockerfile",
            b"FROM scratch\nCOPY site /app/dist\n".to_vec(),
            false,
        ),
        ("site/index.html", b"<h1>kept site</h1>".to_vec(), false),
    ]
}

#[tokio::test]
async fn an_installation_moves_to_a_new_data_dir_whole() {
    let (http_port, https_port) = (free_port(), free_port());
    let pebble = Pebble::start(http_port);
    let git = GitServer::start().await;
    let kept = git.repo("kept", &app_files("kept 1", ""));
    let rebuilt = git.repo("rebuilt", &app_files("rebuilt 1", ""));
    let site = git.repo("site", &site_files());
    let dir = tempfile::TempDir::new().unwrap();
    let db_url = fresh_database_url().await;
    let ca_file = pebble.ca_file().to_string_lossy().into_owned();
    let resolver = format!("127.0.0.1:{}", pebble.dns);
    let https = format!("127.0.0.1:{https_port}");
    let envs = [
        ("SHARD_APPS__DOMAIN", "apps.test"),
        ("SHARD_PROXY__HTTPS_LISTEN", https.as_str()),
        ("SHARD_ACME__DIRECTORY_URL", pebble.directory.as_str()),
        ("SHARD_ACME__CA_FILE", ca_file.as_str()),
        ("SHARD_ACME__CHECK_INTERVAL_SECS", "1"),
        ("SHARD_DNS__RESOLVER", resolver.as_str()),
        ("SHARD_DEPLOY__GRACE_SECS", "0"),
    ];
    let mut first = Serve::start_on(http_port, dir.path(), db_url.clone(), &envs).await;
    let admin = first.setup_admin().await;
    first
        .api(
            &admin,
            Method::POST,
            "/users",
            Some(json!({"username": "bob", "password": PASSWORD})),
        )
        .await;
    let team = first
        .api(
            &admin,
            Method::POST,
            "/teams",
            Some(json!({"name": "crew"})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut projects = Vec::new();
    for (name, repo) in [("kept", &kept), ("rebuilt", &rebuilt)] {
        let id = first
            .create_project(
                &admin,
                json!({"name": name, "git_url": repo.url, "team_id": team}),
            )
            .await;
        first
            .api(
                &admin,
                Method::PUT,
                &format!("/projects/{id}/env"),
                Some(json!({"vars": [{"key": "SECRET_WORD", "value": format!("swordfish-{name}"), "secret": true}]})),
            )
            .await;
        first.deploy_live(&admin, &id).await;
        projects.push(id);
    }
    let site_id = first
        .create_project(
            &admin,
            json!({"name": "site", "git_url": site.url, "build_type": "static", "static_dir": "/app/dist"}),
        )
        .await;
    first.deploy_live(&admin, &site_id).await;
    // A verified custom domain with its certificate from pebble.
    let domain = "www.kept.test";
    let added = first
        .api(
            &admin,
            Method::POST,
            &format!("/projects/{}/domains", projects[0]),
            Some(json!({ "domain": domain })),
        )
        .await;
    let record = &added["verification"];
    pebble
        .set_txt(
            record["name"].as_str().unwrap(),
            record["value"].as_str().unwrap(),
        )
        .await;
    first
        .api(
            &admin,
            Method::POST,
            &format!("/projects/{}/domains/{domain}/verify", projects[0]),
            Some(json!({})),
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let list = first
            .api(
                &admin,
                Method::GET,
                &format!("/projects/{}/domains", projects[0]),
                None,
            )
            .await;
        if list[0]["certificate"]["status"] == "issued" {
            break;
        }
        assert!(Instant::now() < deadline, "no certificate: {list}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let root = pebble.issuing_root().await;
    answers(
        &root,
        https_port,
        "kept.apps.test",
        "/cgi-bin/env",
        "SECRET_WORD=swordfish-kept",
        Duration::from_secs(60),
    )
    .await;

    // Backed up while it serves.
    let mut env = vec![
        ("SHARD_DATA_DIR", dir.path().to_string_lossy().into_owned()),
        ("SHARD_BACKUP_PASSPHRASE", PASSPHRASE.to_string()),
    ];
    if let Some(url) = &db_url {
        env.push(("SHARD_DATABASE_URL", url.clone()));
    }
    let out_dir = tempfile::TempDir::new().unwrap();
    let archive = out_dir.path().join("shard.backup");
    let archive_arg = archive.to_string_lossy().into_owned();
    let made = shard(&env, &["backup", "--out", &archive_arg]);
    assert!(made.status.success(), "{}", text(&made));
    assert!(text(&made).contains("2 users"), "{}", text(&made));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&archive).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let first_dir = dir.path().to_path_buf();
    let secret_key = std::fs::read_to_string(first_dir.join("secret.key")).unwrap();
    first.kill();
    // Gone as on a new machine: the first installation's containers, and one app's image.
    let label = format!(
        "label=shard.instance={}",
        shard::secrets::instance_id(&shard::config::parse_secret_key(&secret_key).unwrap())
    );
    let containers = docker_ids(&["ps", "-aq", "--filter", &label]);
    let mut rm = vec!["rm", "-f"];
    rm.extend(containers.split_whitespace());
    docker_ids(&rm);
    let rebuilt_images = docker_ids(&[
        "images",
        "-q",
        "--filter",
        &label,
        "--filter",
        &format!("label=shard.project={}", projects[1]),
    ]);
    assert!(!rebuilt_images.is_empty(), "the rebuilt app has an image");
    let mut rmi = vec!["rmi", "-f"];
    rmi.extend(rebuilt_images.split_whitespace());
    docker_ids(&rmi);

    // Refused before anything is written: a damaged archive, a wrong passphrase, a used dir.
    let target = tempfile::TempDir::new().unwrap();
    let new_dir = target.path().join("restored");
    let new_dir_arg = new_dir.to_string_lossy().into_owned();
    let new_db = fresh_database_url().await;
    let mut restore_env = vec![("SHARD_BACKUP_PASSPHRASE", PASSPHRASE.to_string())];
    if let Some(url) = &new_db {
        restore_env.push(("SHARD_DATABASE_URL", url.clone()));
    }
    let mut bytes = std::fs::read(&archive).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    let damaged = out_dir.path().join("damaged.backup");
    std::fs::write(&damaged, &bytes).unwrap();
    let refused = shard(
        &restore_env,
        &[
            "restore",
            &damaged.to_string_lossy(),
            "--data-dir",
            &new_dir_arg,
        ],
    );
    assert!(!refused.status.success());
    assert!(text(&refused).contains("damaged"), "{}", text(&refused));
    let wrong = shard(
        &[("SHARD_BACKUP_PASSPHRASE", "not the passphrase".to_string())],
        &["restore", &archive_arg, "--data-dir", &new_dir_arg],
    );
    assert!(!wrong.status.success());
    assert!(text(&wrong).contains("does not open"), "{}", text(&wrong));
    let used = shard(
        &restore_env,
        &[
            "restore",
            &archive_arg,
            "--data-dir",
            &first_dir.to_string_lossy(),
        ],
    );
    assert!(text(&used).contains("not empty"), "{}", text(&used));
    assert!(
        !new_dir.exists(),
        "a refused restore wrote {}",
        new_dir.display()
    );
    assert_eq!(
        std::fs::read_dir(target.path()).unwrap().count(),
        0,
        "a refused restore left files"
    );

    let restored = shard(
        &restore_env,
        &["restore", &archive_arg, "--data-dir", &new_dir_arg],
    );
    assert!(restored.status.success(), "{}", text(&restored));
    assert!(text(&restored).contains("2 users"), "{}", text(&restored));
    // The first data dir goes (before its `Serve` drops, which would clean Docker of the
    // instance label the restored installation shares).
    std::fs::remove_dir_all(&first_dir).ok();
    drop(first);

    // The restored installation, on the same ports (pebble checks HTTP-01 there).
    let second = Serve::start_on(http_port, &new_dir, new_db.clone(), &envs).await;
    assert_eq!(login(&second, "admin").await, reqwest::StatusCode::OK);
    assert_eq!(login(&second, "bob").await, reqwest::StatusCode::OK);
    let admin = second.login().await;
    let teams = second.api(&admin, Method::GET, "/teams", None).await;
    assert!(teams.to_string().contains("crew"), "{teams}");
    // The custom domain's certificate serves by SNI at once (restored, not ordered again).
    answers(&root, https_port, domain, "/", "", Duration::from_secs(5)).await;
    // Both apps come back with their secret opened: one from its image, one rebuilt.
    answers(
        &root,
        https_port,
        domain,
        "/cgi-bin/env",
        "SECRET_WORD=swordfish-kept",
        Duration::from_secs(120),
    )
    .await;
    answers(
        &root,
        https_port,
        "rebuilt.apps.test",
        "/cgi-bin/env",
        "SECRET_WORD=swordfish-rebuilt",
        Duration::from_secs(180),
    )
    .await;
    answers(
        &root,
        https_port,
        "rebuilt.apps.test",
        "/",
        "version rebuilt 1",
        Duration::from_secs(5),
    )
    .await;
    answers(
        &root,
        https_port,
        "site.apps.test",
        "/",
        "kept site",
        Duration::from_secs(30),
    )
    .await;
    let triggers = |list: Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|d| d["trigger"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let kept_history = second
        .api(
            &admin,
            Method::GET,
            &format!("/projects/{}/deployments", projects[0]),
            None,
        )
        .await;
    assert_eq!(triggers(kept_history)[0], "restart");
    let rebuilt_history = second
        .api(
            &admin,
            Method::GET,
            &format!("/projects/{}/deployments", projects[1]),
            None,
        )
        .await;
    assert_eq!(triggers(rebuilt_history)[0], "rebuild");
    assert!(Path::new(&new_dir).join("shard.toml").exists());
}

/// Instance backups taken by the server: admins only, encrypted to the schedule's age key,
/// stored in a destination and read back, listed, on a schedule with retention; refused by
/// the database restore and verify endpoints; restored by `shard restore --identity`.
#[tokio::test]
async fn the_server_backs_itself_up_to_an_age_key_on_a_schedule() {
    use crate::backups::{local_destination, wait_backup_at};
    use crate::doctor::assert_server_check;
    use crate::helpers::{assert_error, assert_invalid, spawn_app};
    use reqwest::StatusCode;

    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    let member = app.member(&admin, "mallory").await;
    let schedule = "/api/v1/system/backup-schedule";
    let list = "/api/v1/system/backups";
    let none: Value = app
        .get(schedule, Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert!(none["cron"].is_null(), "{none}");
    for denied in [
        app.get(list, Some(&member.token)).await,
        app.post(list, Some(&member.token), json!({})).await,
        app.put(schedule, Some(&member.token), json!({"cron": "@daily"}))
            .await,
    ] {
        assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    }
    let key = age::x25519::Identity::generate();
    let public = key.to_public().to_string();
    let body = json!({"cron": "0 3 * * *", "keep_last": 1, "recipients": [public]});
    assert_error(
        app.put(schedule, Some(&admin.token), body.clone()).await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    let dir = tempfile::TempDir::new().unwrap();
    local_destination(&app, &admin, "here", dir.path()).await;
    assert_invalid(
        app.put(schedule, Some(&admin.token), json!({"cron": "0 3 * * *"}))
            .await,
        "recipients",
    )
    .await;
    assert_invalid(
        app.put(
            schedule,
            Some(&admin.token),
            json!({"cron": "0 3 * * *", "recipients": ["age1notakey"]}),
        )
        .await,
        "recipients",
    )
    .await;
    assert_server_check(&app, &admin, "backups", "ok", "no backup schedule").await;
    let set = app.put(schedule, Some(&admin.token), body).await;
    assert_eq!(set.status(), StatusCode::OK);
    let set: Value = set.json().await.unwrap();
    assert_eq!(set["recipients"][0], public);
    // Scheduled but never taken: the doctor says so.
    assert_server_check(
        &app,
        &admin,
        "backups",
        "warn",
        "the installation has no good backup",
    )
    .await;

    // Now, to the schedule's key.
    let taken = app.post(list, Some(&admin.token), json!({})).await;
    assert_eq!(taken.status(), StatusCode::ACCEPTED);
    let id = taken.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let first = wait_backup_at(&app, &admin, list, &id, &["succeeded", "failed"]).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    for refused in [
        app.post(
            &format!("/api/v1/backups/{id}/restore"),
            Some(&admin.token),
            json!({"target": "new"}),
        )
        .await,
        app.post(
            &format!("/api/v1/backups/{id}/verify"),
            Some(&admin.token),
            json!({}),
        )
        .await,
    ] {
        let body = assert_error(refused, StatusCode::CONFLICT, "conflict").await;
        assert!(body.to_string().contains("shard restore"), "{body}");
    }
    let stored: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path().join("shard-instance"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_server_check(
        &app,
        &admin,
        "backups",
        "ok",
        "the installation has a good backup",
    )
    .await;

    // The schedule's run; retention keeps the newest one.
    let next = chrono::DateTime::parse_from_rfc3339(set["next_run_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    app.state
        .databases
        .run_due(next + chrono::Duration::seconds(1))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (newest, kept) = loop {
        let all: Vec<Value> = app
            .get(list, Some(&admin.token))
            .await
            .json()
            .await
            .unwrap();
        let files: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path().join("shard-instance"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "age"))
            .collect();
        if all.len() == 1 && all[0]["id"] != id.as_str() && files.len() == 1 {
            assert_eq!(all[0]["status"], "succeeded", "{all:?}");
            break (all[0].clone(), files[0].clone());
        }
        assert!(Instant::now() < deadline, "{all:?} {files:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(newest["size_bytes"].as_i64().unwrap() > 0);
    // Failed ones are kept as a record, the newest 20 (the query runs on both backends).
    let db = &app.state.db;
    let destination = uuid::Uuid::parse_str(newest["destination_id"].as_str().unwrap()).unwrap();
    for _ in 0..22 {
        let id = uuid::Uuid::now_v7();
        shard::db::backups::start(
            db,
            shard::db::backups::NewBackup {
                id,
                source: shard::db::backups::Source::Instance,
                source_name: "shard".into(),
                source_kind: shard::model::BackupKind::Instance,
                destination_id: destination,
                object_key: format!("shard-instance/{id}.age"),
                created_by: None,
                runner: "test".into(),
            },
        )
        .await
        .unwrap();
        shard::db::backups::failed(db, id, "dump", "on purpose")
            .await
            .unwrap();
    }
    let beyond = shard::db::backups::failed_beyond(db, shard::db::backups::Source::Instance, 20)
        .await
        .unwrap();
    assert_eq!(beyond.len(), 2);
    assert_server_check(
        &app,
        &admin,
        "backups",
        "warn",
        "the installation's last backup failed",
    )
    .await;

    // Restored with the private key only.
    let keys = tempfile::TempDir::new().unwrap();
    let identity = keys.path().join("key.txt");
    {
        use age::secrecy::ExposeSecret;
        std::fs::write(&identity, key.to_string().expose_secret()).unwrap();
    }
    let target = keys.path().join("restored");
    let mut env = Vec::new();
    if let Some(url) = fresh_database_url().await {
        env.push(("SHARD_DATABASE_URL", url));
    }
    let restored = shard(
        &env,
        &[
            "restore",
            &kept.to_string_lossy(),
            "--data-dir",
            &target.to_string_lossy(),
            "--identity",
            &identity.to_string_lossy(),
        ],
    );
    assert!(restored.status.success(), "{}", text(&restored));
    assert!(text(&restored).contains("2 users"), "{}", text(&restored));
    let passphrase = shard(
        &[("SHARD_BACKUP_PASSPHRASE", PASSPHRASE.to_string())],
        &[
            "restore",
            &kept.to_string_lossy(),
            "--data-dir",
            &keys.path().join("other").to_string_lossy(),
        ],
    );
    assert!(
        text(&passphrase).contains("--identity"),
        "{}",
        text(&passphrase)
    );
}
