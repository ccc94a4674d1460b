//! Custom domains: what to set in DNS, verification against a DNS server started here
//! (dnsmasq on 127.0.0.1), routing only once verified, one project per domain, and the names
//! shard refuses.

use std::process::Command;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::proxy::{get_host, live_project, start_upstream};

/// dnsmasq answering only from the records given, NXDOMAIN for the rest of `example.test`.
struct Dns {
    _peer: crate::peers::Peer,
}

impl Dns {
    /// Starts dnsmasq on the held port, released at the last moment. Should something take the
    /// port in that moment, dnsmasq exits at once: it is tried again (the port is usually free
    /// again), and a failure shows what dnsmasq said.
    fn start(port: &mut crate::peers::HeldPort, records: &[String]) -> Dns {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut command = Command::new("dnsmasq");
            command
                .args([
                    "-k",
                    "--conf-file=/dev/null",
                    "--no-resolv",
                    "--no-hosts",
                    "--bind-interfaces",
                    "--listen-address=127.0.0.1",
                    "--user=root",
                    "--local=/example.test/",
                ])
                .arg(format!("--port={}", port.port))
                .args(records);
            port.release();
            let mut peer = crate::peers::Peer::spawn("dnsmasq", command);
            match wait_until_answering(&mut peer, port.port) {
                Ok(()) => return Dns { _peer: peer },
                Err(why) if attempt < 5 && peer.exited() => {
                    eprintln!("dnsmasq: {why}; trying again ({})", peer.output().trim());
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(why) => peer.fail(&why),
            }
        }
    }
}

/// Waits until a DNS server answers on 127.0.0.1:`port` (a busy machine may take more than
/// a moment to start dnsmasq): a query for `probe.example.test`, type A, until a reply comes.
fn wait_until_answering(peer: &mut crate::peers::Peer, port: u16) -> Result<(), String> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["probe", "example", "test"] {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut reply = [0u8; 512];
    loop {
        let _ = socket.send_to(&query, ("127.0.0.1", port));
        if matches!(socket.recv_from(&mut reply), Ok((n, _)) if n >= 12 && reply[..2] == [0x12, 0x34])
        {
            return Ok(());
        }
        if peer.exited() {
            return Err(format!("it exited instead of answering on port {port}"));
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("it did not answer on port {port} within 15 s"));
        }
    }
}

async fn add(app: &TestApp, session: &Session, project: &str, domain: &str) -> reqwest::Response {
    app.post(
        &format!("/api/v1/projects/{project}/domains"),
        Some(&session.token),
        json!({ "domain": domain }),
    )
    .await
}

async fn verify(
    app: &TestApp,
    session: &Session,
    project: &str,
    domain: &str,
) -> reqwest::Response {
    app.post(
        &format!("/api/v1/projects/{project}/domains/{domain}/verify"),
        Some(&session.token),
        json!({}),
    )
    .await
}

#[tokio::test]
async fn domains_verify_by_txt_or_cname_and_route_only_once_verified() {
    // The resolver's port is fixed before the app starts; dnsmasq starts once tokens exist.
    let mut dns_port = crate::peers::HeldPort::new();
    let port = dns_port.port;
    let upstream = start_upstream().await.to_string();
    let app = spawn_app_with(|c| {
        c.apps.domain = "apps.test".into();
        c.dns.resolver = Some(format!("127.0.0.1:{port}"));
    })
    .await;
    let admin = app.setup_admin().await;
    let (shop, _) = live_project(&app, &admin, "shop", &upstream).await;
    let other = app.create_project(&admin, "other").await["id"]
        .as_str()
        .unwrap()
        .to_string();

    let response = add(&app, &admin, &shop, "Shop.Example.test.").await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let added: Value = response.json().await.unwrap();
    assert_eq!(added["domain"], "shop.example.test");
    assert_eq!(added["status"], "pending");
    assert_eq!(added["verification"]["type"], "TXT");
    assert_eq!(
        added["verification"]["name"],
        "_shard-challenge.shop.example.test"
    );
    let token = added["verification"]["value"].as_str().unwrap().to_string();
    assert!(token.len() > 20);
    assert_eq!(added["routing"]["type"], "CNAME");
    assert_eq!(added["routing"]["value"], "shop.apps.test");
    assert_eq!(
        add(&app, &admin, &shop, "www.example.test").await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        add(&app, &admin, &shop, "wrong.example.test")
            .await
            .status(),
        StatusCode::CREATED
    );

    // One project per domain.
    let taken = add(&app, &admin, &other, "shop.example.test").await;
    assert_error(taken, StatusCode::CONFLICT, "conflict").await;
    // Names shard refuses.
    for bad in [
        "localhost",
        "10.0.0.1",
        "no_underscores.example.test",
        "x.apps.test",
        "apps.test",
        "a..b",
    ] {
        assert_invalid(add(&app, &admin, &other, bad).await, "domain").await;
    }
    let member = app.member(&admin, "bob").await;
    let mine = app.create_project(&member, "mine").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_invalid(add(&app, &member, &mine, "*.example.test").await, "domain").await;
    // Someone else's project is not found.
    assert_error(
        add(&app, &member, &shop, "x.example.test").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    // Pending domains do not route.
    assert_eq!(
        get_host(&app, "shop.example.test", "/echo").await.status(),
        StatusCode::NOT_FOUND
    );

    let _dns = Dns::start(
        &mut dns_port,
        &[
            format!("--txt-record=_shard-challenge.shop.example.test,{token}"),
            "--host-record=shop.apps.test,127.0.0.1".into(),
            "--cname=www.example.test,shop.apps.test".into(),
            "--txt-record=_shard-challenge.wrong.example.test,not-the-token".into(),
        ],
    );

    let verified = verify(&app, &admin, &shop, "shop.example.test").await;
    assert_eq!(verified.status(), StatusCode::OK);
    let verified: Value = verified.json().await.unwrap();
    assert_eq!(verified["status"], "verified", "{verified}");
    let response = get_host(&app, "shop.example.test", "/echo").await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "a verified domain routes at once"
    );

    let by_cname = verify(&app, &admin, &shop, "www.example.test").await;
    assert_eq!(by_cname.status(), StatusCode::OK);
    assert_eq!(
        get_host(&app, "www.example.test:8443", "/echo")
            .await
            .status(),
        StatusCode::OK
    );

    let wrong = verify(&app, &admin, &shop, "wrong.example.test").await;
    let body = assert_error(wrong, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("not-the-token"),
        "says what DNS answered: {message}"
    );
    assert_eq!(
        get_host(&app, "wrong.example.test", "/echo").await.status(),
        StatusCode::NOT_FOUND
    );

    let list: Value = app
        .get(
            &format!("/api/v1/projects/{shop}/domains"),
            Some(&admin.token),
        )
        .await
        .json()
        .await
        .unwrap();
    let statuses: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["domain"].as_str().unwrap(), d["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("shop.example.test", "verified"),
            ("wrong.example.test", "failed"),
            ("www.example.test", "verified")
        ]
    );

    let deleted = app
        .send(
            Method::DELETE,
            &format!("/api/v1/projects/{shop}/domains/shop.example.test"),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        get_host(&app, "shop.example.test", "/echo").await.status(),
        StatusCode::NOT_FOUND
    );
    let again = app
        .send(
            Method::DELETE,
            &format!("/api/v1/projects/{shop}/domains/shop.example.test"),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
}
