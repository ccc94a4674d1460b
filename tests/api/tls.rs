//! HTTPS end to end against pebble (Let's Encrypt's test CA, started here with its own DNS,
//! pebble-challtestsrv, answering 127.0.0.1 for every name): certificates by HTTP-01 for an
//! app host and a verified custom domain, served by SNI, renewal of a short-lived certificate,
//! HTTP/2, the redirect from plain HTTP, and a failure recorded on the domain.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;
use crate::peers::Peer;
use crate::proxy::{get_host, live_project, start_upstream};

pub(crate) struct Pebble {
    _children: Vec<Peer>,
    dir: tempfile::TempDir,
    pub(crate) directory: String,
    management: u16,
    /// pebble-challtestsrv: the DNS server (for pebble and for shard's domain checks).
    pub(crate) dns: u16,
    dns_management: u16,
}

// Both programs are killed when the `Peer`s drop.

impl Pebble {
    /// pebble validating HTTP-01 on `http_port` of whatever name it is asked for.
    pub(crate) fn start(http_port: u16) -> Pebble {
        let dir = tempfile::TempDir::new().unwrap();
        // pebble's own HTTPS listener needs a certificate: a throwaway CA and a leaf.
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap()
                .signed_by(&leaf_key, &issuer)
                .unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), leaf_key.serialize_pem()).unwrap();
        // Ports are picked now and bound by pebble a moment later: should another process take
        // one meanwhile, pebble exits and is started again on new ones. A failure shows what
        // pebble and its DNS server printed.
        for attempt in 1.. {
            let (listen, management, dns, dns_management) =
                (free_port(), free_port(), free_port(), free_port());
            let config = serde_json::json!({"pebble": {
                "listenAddress": format!("127.0.0.1:{listen}"),
                "managementListenAddress": format!("127.0.0.1:{management}"),
                "certificate": dir.path().join("cert.pem"),
                "privateKey": dir.path().join("key.pem"),
                "httpPort": http_port,
                "tlsPort": free_port(),
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }});
            std::fs::write(dir.path().join("pebble.json"), config.to_string()).unwrap();
            let mut dns_server = Command::new("pebble-challtestsrv");
            dns_server.args([
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
            ]);
            dns_server.arg("-dns01").arg(format!("127.0.0.1:{dns}"));
            dns_server
                .arg("-management")
                .arg(format!("127.0.0.1:{dns_management}"));
            let mut pebble = Command::new("pebble");
            pebble
                .arg("-config")
                .arg(dir.path().join("pebble.json"))
                .arg("-dnsserver")
                .arg(format!("127.0.0.1:{dns}"))
                .env("PEBBLE_VA_NOSLEEP", "1")
                .env("PEBBLE_WFE_NONCEREJECT", "0");
            let mut children = vec![
                Peer::spawn("pebble-challtestsrv", dns_server),
                Peer::spawn("pebble", pebble),
            ];
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut exited = None;
            'wait: for (i, port) in [(1, listen), (0, dns_management)] {
                while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                    if children[i].exited() {
                        exited = Some(i);
                        break 'wait;
                    }
                    if Instant::now() > deadline {
                        children[i].fail("did not start within 20 s");
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            match exited {
                None => {
                    return Pebble {
                        _children: children,
                        directory: format!("https://127.0.0.1:{listen}/dir"),
                        management,
                        dns,
                        dns_management,
                        dir,
                    };
                }
                Some(i) if attempt < 3 => {
                    eprintln!(
                        "{} exited at start; trying new ports:\n{}",
                        children[i].name,
                        children[i].output()
                    );
                }
                Some(i) => children[i].fail("exited at start"),
            }
        }
        unreachable!("the loop returns or fails")
    }

    /// Publishes a TXT record in the test DNS.
    pub(crate) async fn set_txt(&self, name: &str, value: &str) {
        let response = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/set-txt", self.dns_management))
            .json(&serde_json::json!({"host": format!("{name}."), "value": value}))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }

    pub(crate) fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The root that signs pebble's issued certificates (new at every pebble start).
    pub(crate) async fn issuing_root(&self) -> Vec<u8> {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(self.ca_file()).unwrap()).unwrap();
        let client = reqwest::Client::builder()
            .add_root_certificate(ca)
            .build()
            .unwrap();
        let root = client
            .get(format!("https://127.0.0.1:{}/roots/0", self.management))
            .send()
            .await
            .unwrap();
        assert_eq!(root.status(), StatusCode::OK);
        root.bytes().await.unwrap().to_vec()
    }
}

/// A self-signed certificate for `name` that expires in two days, stored where shard keeps
/// issued ones: shard must renew it.
fn plant_short_lived(data_dir: &Path, name: &str) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    params.not_before = time_from_unix(now - 3600);
    params.not_after = time_from_unix(now + 2 * 24 * 3600);
    let cert = params.self_signed(&key).unwrap();
    let dir = data_dir.join("certs").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
}

fn time_from_unix(secs: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(secs).unwrap()
}

#[tokio::test]
async fn certificates_from_pebble_served_by_sni_renewed_and_redirected_to() {
    let (http_port, https_port) = (free_port(), free_port());
    let pebble = Pebble::start(http_port);
    let upstream = start_upstream().await.to_string();
    let (directory, ca_file, dns) = (pebble.directory.clone(), pebble.ca_file(), pebble.dns);
    // A certificate the user brings as files, for one domain.
    let own = tempfile::TempDir::new().unwrap();
    let own_cert_dir = own.path().to_path_buf();
    let own_key = rcgen::KeyPair::generate().unwrap();
    let own_cert = rcgen::CertificateParams::new(vec!["files.shop.test".to_string()])
        .unwrap()
        .self_signed(&own_key)
        .unwrap();
    std::fs::write(own.path().join("cert.pem"), own_cert.pem()).unwrap();
    std::fs::write(own.path().join("key.pem"), own_key.serialize_pem()).unwrap();
    let app = spawn_app_with(move |c| {
        c.listen = format!("127.0.0.1:{http_port}").parse().unwrap();
        c.apps.domain = "apps.test".into();
        c.proxy.https_listen = Some(format!("127.0.0.1:{https_port}").parse().unwrap());
        c.acme.directory_url = Some(directory);
        c.acme.ca_file = Some(ca_file);
        c.acme.check_interval_secs = 1;
        c.acme.retry_after_secs = 2;
        c.dns.resolver = Some(format!("127.0.0.1:{dns}"));
        plant_short_lived(&c.data_dir, "shop.apps.test");
        c.proxy.certificates = vec![shard::config::CertificateFiles {
            domain: "files.shop.test".into(),
            cert_file: own_cert_dir.join("cert.pem"),
            key_file: own_cert_dir.join("key.pem"),
        }];
    })
    .await;
    let admin = app.setup_admin().await;
    let (project, _) = live_project(&app, &admin, "shop", &upstream).await;
    // Certificate failures reach the owner's channels (once per streak of failures).
    let (receiver, received) = crate::notifications::start_receiver();
    let channel = app
        .post(
            "/api/v1/notifications/channels",
            Some(&admin.token),
            serde_json::json!({"kind": "webhook", "target": format!("{receiver}/certs"), "events": ["certificate.failed"]}),
        )
        .await;
    assert_eq!(channel.status(), StatusCode::CREATED);
    // Custom domains verified through DNS (the TXT token in the test DNS), as a user would.
    for name in ["www.shop.test", "*.wild.test", "files.shop.test"] {
        let added = app
            .post(
                &format!("/api/v1/projects/{project}/domains"),
                Some(&admin.token),
                serde_json::json!({ "domain": name }),
            )
            .await;
        assert_eq!(added.status(), StatusCode::CREATED);
        let added: Value = added.json().await.unwrap();
        let record = &added["verification"];
        pebble
            .set_txt(
                record["name"].as_str().unwrap(),
                record["value"].as_str().unwrap(),
            )
            .await;
        let verified = app
            .post(
                &format!("/api/v1/projects/{project}/domains/{name}/verify"),
                Some(&admin.token),
                serde_json::json!({}),
            )
            .await;
        assert_eq!(verified.status(), StatusCode::OK, "{name}");
    }

    // The custom domain gets its certificate; the wildcard's failure is on the domain.
    let deadline = Instant::now() + Duration::from_secs(90);
    let list = loop {
        let list: Value = app
            .get(
                &format!("/api/v1/projects/{project}/domains"),
                Some(&admin.token),
            )
            .await
            .json()
            .await
            .unwrap();
        let status = |name: &str| {
            list.as_array()
                .unwrap()
                .iter()
                .find(|d| d["domain"] == name)
                .map(|d| d["certificate"]["status"].as_str().unwrap().to_string())
                .unwrap()
        };
        if status("www.shop.test") == "issued"
            && status("*.wild.test") == "failed"
            && status("files.shop.test") == "file"
        {
            break list;
        }
        assert!(Instant::now() < deadline, "no certificate in time: {list}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let www = list
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["domain"] == "www.shop.test")
        .unwrap();
    assert!(www["certificate"]["expires_at"].is_string(), "{www}");
    let wild = list
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["domain"] == "*.wild.test")
        .unwrap();
    assert!(
        wild["certificate"]["message"]
            .as_str()
            .unwrap()
            .contains("DNS-01"),
        "{wild}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let notices: Vec<Value> = loop {
        let notices: Vec<Value> = received
            .lock()
            .unwrap()
            .requests
            .iter()
            .map(|(_, _, body)| serde_json::from_slice(body).unwrap())
            .collect();
        if !notices.is_empty() || Instant::now() > deadline {
            break notices;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(notices[0]["event"], "certificate.failed");
    // Retried every 2 s, still failing: no second notice for the same streak.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(received.lock().unwrap().requests.len(), 1);
    assert!(
        notices[0]["title"]
            .as_str()
            .unwrap()
            .contains("*.wild.test")
    );
    let key = app.dir.path().join("certs/www.shop.test/key.pem");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Served by SNI and valid against pebble's root: for the app host that only holds once
    // the planted two-day certificate was renewed.
    let root = pebble.issuing_root().await;
    std::fs::write(app.dir.path().join("pebble-root.pem"), &root).unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{https_port}").parse().unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&root).unwrap())
        .resolve("shop.apps.test", addr)
        .resolve("www.shop.test", addr)
        .build()
        .unwrap();
    for host in ["www.shop.test", "shop.apps.test"] {
        let deadline = Instant::now() + Duration::from_secs(60);
        let response = loop {
            match client
                .get(format!("https://{host}:{https_port}/echo"))
                .send()
                .await
            {
                Ok(response) => break response,
                Err(e) => {
                    assert!(Instant::now() < deadline, "{host} over TLS: {e:?}");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        };
        assert_eq!(response.status(), StatusCode::OK, "{host}");
        let body: Value = response.json().await.unwrap();
        let headers: Vec<String> = serde_json::from_value(body["headers"].clone()).unwrap();
        assert!(
            headers.contains(&"x-forwarded-proto: https".to_string()),
            "{headers:?}"
        );
    }

    // The certificate given as files is served for its name (and never replaced by ACME).
    let own_client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(own_cert.pem().as_bytes()).unwrap())
        .resolve("files.shop.test", addr)
        .build()
        .unwrap();
    let response = own_client
        .get(format!("https://files.shop.test:{https_port}/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // HTTP/2 is offered by ALPN.
    let version = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_version}", "--http2"])
        .arg("--resolve")
        .arg(format!("shop.apps.test:{https_port}:127.0.0.1"))
        .arg("--cacert")
        .arg(app.dir.path().join("pebble-root.pem"))
        .arg(format!("https://shop.apps.test:{https_port}/echo"))
        .output()
        .expect("curl is installed");
    assert_eq!(String::from_utf8_lossy(&version.stdout), "2");

    // Plain HTTP redirects for a name with a certificate; the dashboard's hosts do not.
    let response = get_host(&app, "www.shop.test", "/echo?a=1").await;
    assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        response.headers()["location"],
        format!("https://www.shop.test:{https_port}/echo?a=1").as_str()
    );
    assert_eq!(
        get_host(&app, &format!("127.0.0.1:{http_port}"), "/health")
            .await
            .status(),
        StatusCode::OK
    );
}

/// Two instances on one Postgres: the leader (A) orders the certificate, pebble checks the
/// HTTP-01 answer at the other one (B), which answers from the database; B then serves the
/// certificate A got, by SNI, and the key is sealed in the database (never stored as PEM).
#[tokio::test]
async fn two_instances_share_acme_answers_and_certificates() {
    let db = crate::instances::cluster_database().await;
    let (b_http, a_https, b_https) = (free_port(), free_port(), free_port());
    let pebble = Pebble::start(b_http);
    let upstream = start_upstream().await.to_string();
    let instance = |http: Option<u16>, https: u16| {
        let (db, directory, ca_file) = (db.clone(), pebble.directory.clone(), pebble.ca_file());
        let dns = pebble.dns;
        spawn_app_with(move |c| {
            if let Some(port) = http {
                c.listen = format!("127.0.0.1:{port}").parse().unwrap();
            }
            c.secret_key = Some(shard::config::Secret::new(crate::instances::cluster_key(
                &db,
            )));
            c.database_url = Some(shard::config::Secret::new(db));
            c.apps.domain = "apps.test".into();
            c.proxy.https_listen = Some(format!("127.0.0.1:{https}").parse().unwrap());
            c.acme.directory_url = Some(directory);
            c.acme.ca_file = Some(ca_file);
            c.acme.check_interval_secs = 1;
            c.acme.retry_after_secs = 2;
            c.dns.resolver = Some(format!("127.0.0.1:{dns}"));
        })
    };
    let a = instance(None, a_https).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !a.state.leadership.is_leader() {
        assert!(Instant::now() < deadline, "A never led");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let b = instance(Some(b_http), b_https).await;
    assert!(!b.state.leadership.is_leader(), "one leader at a time");
    let admin = a.setup_admin().await;
    live_project(&a, &admin, "shared", &upstream).await;

    let root = pebble.issuing_root().await;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{b_https}").parse().unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&root).unwrap())
        .resolve("shared.apps.test", addr)
        .build()
        .unwrap();
    // B serves A's certificate, and routes A's project (its route table follows A's changes).
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        match client
            .get(format!("https://shared.apps.test:{b_https}/echo"))
            .send()
            .await
        {
            Ok(response) if response.status() == StatusCode::OK => break,
            Ok(response) => assert!(
                Instant::now() < deadline,
                "B answered {} for A's project",
                response.status()
            ),
            Err(e) => assert!(
                Instant::now() < deadline,
                "B never served A's certificate: {e:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        b.dir.path().join("certs/shared.apps.test/key.pem").exists(),
        "B keeps its copy like one it issued"
    );

    // In the database the key is sealed: no PEM in any shared value.
    use sea_orm::{ConnectionTrait, Statement};
    let rows = a
        .state
        .db
        .query_all_raw(Statement::from_string(
            a.state.db.get_database_backend(),
            "SELECT key, value_sealed FROM shared_values",
        ))
        .await
        .unwrap();
    let mut keys = Vec::new();
    for row in rows {
        let key: String = row.try_get("", "key").unwrap();
        let value: Vec<u8> = row.try_get("", "value_sealed").unwrap();
        assert!(
            !String::from_utf8_lossy(&value).contains("PRIVATE KEY"),
            "{key} holds a plain key"
        );
        keys.push(key);
    }
    assert!(
        keys.contains(&"acme-cert:shared.apps.test".to_string()),
        "{keys:?}"
    );
    assert!(keys.contains(&"acme-account".to_string()), "{keys:?}");
    assert!(
        !keys.iter().any(|k| k.starts_with("acme-challenge:")),
        "answers are removed once the order ends: {keys:?}"
    );
}

#[tokio::test]
async fn a_teams_certificate_orders_stop_at_its_hourly_quota() {
    let (http_port, https_port) = (free_port(), free_port());
    let pebble = Pebble::start(http_port);
    let upstream = start_upstream().await.to_string();
    let (directory, ca_file, dns) = (pebble.directory.clone(), pebble.ca_file(), pebble.dns);
    let app = spawn_app_with(move |c| {
        c.listen = format!("127.0.0.1:{http_port}").parse().unwrap();
        // App hosts under localhost need no certificate: only the custom domains order.
        c.apps.domain = "localhost".into();
        c.proxy.https_listen = Some(format!("127.0.0.1:{https_port}").parse().unwrap());
        c.acme.directory_url = Some(directory);
        c.acme.ca_file = Some(ca_file);
        c.acme.check_interval_secs = 1;
        c.acme.retry_after_secs = 2;
        c.dns.resolver = Some(format!("127.0.0.1:{dns}"));
        c.quotas.acme_orders_per_hour_per_team = 1;
        // A failure shows each order the quota let through or held, and each issue.
        c.log.level = "warn,shard::proxy::acme=debug".into();
    })
    .await;
    let admin = app.setup_admin().await;
    let (project, _) = live_project(&app, &admin, "quota", &upstream).await;
    for name in ["one.quota.test", "two.quota.test"] {
        let added: Value = app
            .post(
                &format!("/api/v1/projects/{project}/domains"),
                Some(&admin.token),
                serde_json::json!({ "domain": name }),
            )
            .await
            .json()
            .await
            .unwrap();
        let record = &added["verification"];
        pebble
            .set_txt(
                record["name"].as_str().unwrap(),
                record["value"].as_str().unwrap(),
            )
            .await;
        let verified = app
            .post(
                &format!("/api/v1/projects/{project}/domains/{name}/verify"),
                Some(&admin.token),
                serde_json::json!({}),
            )
            .await;
        assert_eq!(verified.status(), StatusCode::OK, "{name}");
    }
    // One order in the hour: one domain gets its certificate, the other waits, saying why.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let list: Value = app
            .get(
                &format!("/api/v1/projects/{project}/domains"),
                Some(&admin.token),
            )
            .await
            .json()
            .await
            .unwrap();
        let certs: Vec<&Value> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|d| &d["certificate"])
            .collect();
        let issued = certs.iter().filter(|c| c["status"] == "issued").count();
        let waiting = certs
            .iter()
            .filter(|c| {
                c["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("acme_orders_per_hour_per_team"))
            })
            .count();
        if issued == 1 && waiting == 1 {
            break;
        }
        assert!(issued <= 1, "the quota let a second order through: {list}");
        assert!(Instant::now() < deadline, "{list}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
